#include "controllers/backup/freeze.hpp"

#include <exception>

namespace foundationd::backup {

Task<Status> whileFrozen(const Freezer& freezer, const std::function<Task<Status>()>& body,
                         std::chrono::milliseconds* held) {
  using Clock = std::chrono::steady_clock;
  if (auto st = co_await freezer.freeze(); !st) co_return st;
  const auto start = Clock::now();
  FreezeGuard guard(freezer.thawNow);
  Status result = Status::success();
  std::exception_ptr thrown;
  try {
    result = co_await body();
  } catch (...) {
    thrown = std::current_exception();
  }
  // The thaw is awaited here, not in a destructor (a destructor cannot
  // co_await); the guard covers only a frame destroyed before this line.
  Status thawed = Status::success();
  try {
    thawed = co_await freezer.thaw();
  } catch (...) {
    if (!thrown) thrown = std::current_exception();
    thawed = Error::make(ErrorCode::internal, "the thaw threw");
  }
  if (thawed) guard.release();  // else the guard tries the blocking fallback once more
  if (held) {
    *held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  }
  if (thrown) std::rethrow_exception(thrown);
  if (!result) co_return result;
  co_return thawed;
}

}  // namespace foundationd::backup
