#include "daemon/systemd.hpp"

#include <systemd/sd-daemon.h>

namespace foundationd::daemon::systemd {

void ready(const std::string& s) { sd_notifyf(0, "READY=1\nSTATUS=%s", s.c_str()); }
void status(const std::string& s) { sd_notifyf(0, "STATUS=%s", s.c_str()); }
void stopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }
void reloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration"); }
void reloaded() { sd_notify(0, "READY=1"); }
void watchdog() { sd_notify(0, "WATCHDOG=1"); }

std::optional<std::chrono::microseconds> watchdogPeriod() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace foundationd::daemon::systemd
