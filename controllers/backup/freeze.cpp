#include "controllers/backup/freeze.hpp"

#include <exception>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/units.hpp"

namespace foundationd::backup {

namespace asio = boost::asio;

Task<Status> whileFrozen(const Freezer& freezer, const std::function<Task<Status>()>& body,
                         std::chrono::milliseconds* held) {
  using namespace asio::experimental::awaitable_operators;
  using Clock = std::chrono::steady_clock;
  if (auto st = co_await freezer.freeze(); !st) co_return st;
  const auto start = Clock::now();
  FreezeGuard guard(freezer.thawNow);
  Status result = Status::success();
  std::exception_ptr thrown;
  auto heldUntil = [&] {
    if (held) *held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  };

  if (freezer.limit.count() > 0) {
    // The body runs in a coroutine of its own, cancelled through `stop`; the
    // watch thaws when the limit passes first. Neither throws, so `&&` waits
    // for both and cancels neither: the thaw, once begun, completes.
    const auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal stop;
    asio::steady_timer timer(ex, freezer.limit);
    bool bodyDone = false;
    bool overran = false;
    Status thawedEarly = Status::success();
    auto runBody = [&]() -> Task<void> {
      try {
        result = co_await asio::co_spawn(
            ex, body(), asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable));
      } catch (...) {
        thrown = std::current_exception();
      }
      bodyDone = true;
      timer.cancel();
    };
    auto watch = [&]() -> Task<void> {
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec || bodyDone) co_return;  // the body ended first
      overran = true;
      try {
        thawedEarly = co_await freezer.thaw();
      } catch (...) {
        thawedEarly = Error::make(ErrorCode::internal, "the thaw threw");
      }
      heldUntil();
      stop.emit(asio::cancellation_type::terminal);
    };
    co_await (runBody() && watch());
    if (overran) {
      // What the body returned or threw is the cancellation's (or a cut
      // taken past the limit): not a consistent cut either way.
      if (!thawedEarly) {  // the guard's fallback tries once more on the way out
        co_return Error::make(thawedEarly.error().code, "thawing at the freeze's limit of " +
                                                            config::formatDuration(freezer.limit) +
                                                            ": " + thawedEarly.error().message);
      }
      guard.release();
      std::string msg = "frozen for the limit of " + config::formatDuration(freezer.limit) +
                        " with the read still under way: thawed then, and this cut is not "
                        "consistent, so it is not kept";
      if (!freezer.limitHint.empty()) msg += "; " + freezer.limitHint;
      co_return Error::make(ErrorCode::timeout, msg);
    }
  } else {
    try {
      result = co_await body();
    } catch (...) {
      thrown = std::current_exception();
    }
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
  heldUntil();
  if (thrown) std::rethrow_exception(thrown);
  if (!result) co_return result;
  co_return thawed;
}

}  // namespace foundationd::backup
