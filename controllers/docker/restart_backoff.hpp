// Crash-loop backoff for services (run = "service") that exit on their own.
//
// A service that exited is started again by the reconcile that its `die`
// event triggers. Done every time, a command that exits at once would be
// restarted in a tight loop (a start, a die, a reconcile, a start, ...). So
// each container's restarts in a row are counted: the first is immediate,
// then each waits initial * 2^(n-2) after the previous start (1 s, 2 s, 4 s,
// ... capped), like the kubelet's CrashLoopBackOff. A container that stayed
// up `stable` after its last restart starts the count over; a new config
// (create, recreate) forgets it. Jobs (run = "once") are never restarted:
// docker_plan decides that. Pure bookkeeping on the caller's clock, no I/O.
// Thread: the io_context's (the daemon's reconcile).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace foundationd::docker {

struct RestartBackoffOptions {
  std::chrono::milliseconds initial{std::chrono::seconds(1)};
  std::chrono::milliseconds max{std::chrono::minutes(5)};
  std::chrono::milliseconds stable{std::chrono::minutes(1)};
};

class RestartBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RestartBackoff(RestartBackoffOptions options = {}) : options_(options) {}

  // `name` exited on its own and the plan would start it. nullopt: start it
  // now (counted as a restart); otherwise how long to wait first.
  std::optional<std::chrono::milliseconds> admit(const std::string& name, Clock::time_point now);
  // Restarts in a row of `name` (0: none, or it was stable since).
  int restarts(const std::string& name) const;
  // The delay before restart number `n` (1-based) after the previous start.
  std::chrono::milliseconds delayFor(int n) const;
  // A new config (create, recreate) or no longer ours: start over.
  void forget(const std::string& name) { entries_.erase(name); }

 private:
  struct Entry {
    int restarts = 0;
    Clock::time_point lastStart;
    bool held = false;  // a restart was deferred since lastStart
  };
  RestartBackoffOptions options_;
  std::map<std::string, Entry> entries_;
};

}  // namespace foundationd::docker
