// Holding a service's writes while its files are read (docs/dr.md "The
// forge's data"): freeze, run the body, thaw — the thaw ALWAYS happens.
//
// Contract:
// - whileFrozen awaits `freeze`; when it fails the body is not run and
//   nothing is thawed. Otherwise the body runs and `thaw` is awaited after
//   it whatever it returned or threw (an exception is rethrown after the
//   thaw). The result is the body's failure, else the thaw's.
// - If the coroutine is destroyed while frozen (its io_context stopped and
//   destroyed: the process is shutting down), the guard's destructor calls
//   `thawNow`, a blocking fallback (it may not co_await).
// - `held` receives how long the service was frozen (freeze returned to
//   thaw returned), also when the body failed.
// - A `limit` bounds the freeze: when it passes with the body still running,
//   the service is thawed there and then, the body is cancelled (and awaited
//   until it ends), and the result is a timeout error naming the limit and
//   `limitHint` — what was read is not a consistent cut. The thaw is not
//   cancelled by the body ending meanwhile, and never runs twice.
// - Thread: the io_context's.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "controllers/backup/child_process.hpp"

namespace foundationd::backup {

struct Freezer {
  std::function<Task<Status>()> freeze;
  std::function<Task<Status>()> thaw;
  std::function<void()> thawNow;  // blocking fallback, see above; may be empty
  std::chrono::milliseconds limit{0};  // the longest freeze; 0 = none
  std::string limitHint;               // appended to the limit's error (what to change)
};

// RAII part of the contract: thawNow on destruction unless released.
class FreezeGuard {
 public:
  explicit FreezeGuard(std::function<void()> thawNow) : thawNow_(std::move(thawNow)) {}
  FreezeGuard(const FreezeGuard&) = delete;
  FreezeGuard& operator=(const FreezeGuard&) = delete;
  ~FreezeGuard() {
    if (held_ && thawNow_) thawNow_();
  }
  void release() noexcept { held_ = false; }

 private:
  std::function<void()> thawNow_;
  bool held_ = true;
};

Task<Status> whileFrozen(const Freezer& freezer, const std::function<Task<Status>()>& body,
                         std::chrono::milliseconds* held);

}  // namespace foundationd::backup
