#include "controllers/docker/restart_backoff.hpp"

#include <algorithm>

namespace foundationd::docker {

std::chrono::milliseconds RestartBackoff::delayFor(int n) const {
  if (n <= 1) return std::chrono::milliseconds(0);
  auto d = options_.initial;
  for (int i = 2; i < n && d < options_.max; ++i) d *= 2;
  return std::min(d, options_.max);
}

std::optional<std::chrono::milliseconds> RestartBackoff::admit(const std::string& name,
                                                               Clock::time_point now) {
  auto it = entries_.find(name);
  if (it != entries_.end() && !it->second.held && now - it->second.lastStart >= options_.stable) {
    entries_.erase(it);  // it ran long enough: a new crash, not a loop
    it = entries_.end();
  }
  if (it == entries_.end()) {
    entries_[name] = Entry{1, now};
    return std::nullopt;
  }
  Entry& e = it->second;
  const auto due = e.lastStart + delayFor(e.restarts + 1);
  if (now < due) {
    e.held = true;  // waiting, not running: the time that passes is no sign of health
    return std::chrono::ceil<std::chrono::milliseconds>(due - now);
  }
  ++e.restarts;
  e.lastStart = now;
  e.held = false;
  return std::nullopt;
}

int RestartBackoff::restarts(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? 0 : it->second.restarts;
}

}  // namespace foundationd::docker
