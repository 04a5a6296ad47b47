// Small coroutine primitives for code running on one io_context thread.
//
// Not thread-safe by design: everything here is used from the io_context's
// single thread (STYLE.md), so plain members need no locks.
#pragma once

#include <chrono>
#include <cstddef>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace foundationd {

// Sleeps for `d` (cancellation returns early, silently).
inline boost::asio::awaitable<void> sleepFor(std::chrono::steady_clock::duration d) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, d);
  boost::system::error_code ec;
  co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

// A one-shot event: wait() completes once set() has been called.
class Event {
 public:
  explicit Event(boost::asio::any_io_executor ex)
      : timer_(ex, boost::asio::steady_timer::time_point::max()) {}
  void set() {
    set_ = true;
    timer_.cancel();
  }
  bool isSet() const noexcept { return set_; }
  boost::asio::awaitable<void> wait() {
    while (!set_) {
      boost::system::error_code ec;
      co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
  }

 private:
  boost::asio::steady_timer timer_;
  bool set_ = false;
};

// A counting limiter: at most `limit` holders at once.
class Limiter {
 public:
  Limiter(boost::asio::any_io_executor ex, std::size_t limit)
      : timer_(ex, boost::asio::steady_timer::time_point::max()), limit_(limit ? limit : 1) {}

  boost::asio::awaitable<void> acquire() {
    while (inUse_ >= limit_) {
      boost::system::error_code ec;
      co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    ++inUse_;
  }
  void release() {
    --inUse_;
    timer_.cancel();  // wake the waiters; each re-checks
  }

  // RAII holder for use inside a coroutine.
  class Hold {
   public:
    explicit Hold(Limiter& l) : l_(&l) {}
    Hold(Hold&& o) noexcept : l_(o.l_) { o.l_ = nullptr; }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    Hold& operator=(Hold&&) = delete;
    ~Hold() {
      if (l_) l_->release();
    }

   private:
    Limiter* l_;
  };
  boost::asio::awaitable<Hold> hold() {
    co_await acquire();
    co_return Hold(*this);
  }

 private:
  boost::asio::steady_timer timer_;
  std::size_t limit_;
  std::size_t inUse_ = 0;
};

}  // namespace foundationd
