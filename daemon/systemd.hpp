// systemd's notify protocol (sd_notify): READY=1, STATUS=, WATCHDOG=1,
// STOPPING=1, RELOADING=1. Harmless without systemd (NOTIFY_SOCKET unset).
// Thread: any; sd_notify is a single datagram send.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace foundationd::daemon::systemd {

void ready(const std::string& status);
void status(const std::string& status);
void stopping();
void reloading();
void reloaded();  // READY=1 again after a reload
void watchdog();

// Half the watchdog interval when systemd asked for one (WATCHDOG_USEC), the
// period at which to send WATCHDOG=1; nullopt otherwise.
std::optional<std::chrono::microseconds> watchdogPeriod();

}  // namespace foundationd::daemon::systemd
