// Shared helpers for the integration tests against the real Docker Engine.
//
// testImage(): the local test image named by FOUNDATIOND_TEST_IMAGE (a busybox
//   image built by tests/peers/, never pulled). If the variable is unset the
//   current test FAILS, unless FOUNDATIOND_SKIP_INTEGRATION=1 is set and CI is
//   not "true": then it returns "" and the caller skips by returning early:
//       const auto image = foundationd::testing::testImage();
//       if (image.empty()) return;  // explicit local opt-out (TESTING.md)
//   Call it inside a TEST_CASE (it uses doctest's FAIL).
//
// runSync(io, task): co_spawns `task` on `io`, runs `io` until the task is
//   done (then stops it, so pending background work such as a server's accept
//   loop does not keep it running), and returns the task's value or rethrows
//   its exception. Works for any T, including types with no default
//   constructor (Result<T>). Not reentrant: do not call it from inside `io`.
#pragma once

#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

namespace foundationd::testing {

inline constexpr const char* kDockerSocket = "/var/run/docker.sock";

inline std::string testImage() {
  const char* image = std::getenv("FOUNDATIOND_TEST_IMAGE");
  if (image != nullptr && *image != '\0') return image;
  const char* skip = std::getenv("FOUNDATIOND_SKIP_INTEGRATION");
  const char* ci = std::getenv("CI");
  const bool inCi = ci != nullptr && std::string_view(ci) == "true";
  if (!inCi && skip != nullptr && std::string_view(skip) == "1") {
    MESSAGE("skipped: FOUNDATIOND_SKIP_INTEGRATION=1 and FOUNDATIOND_TEST_IMAGE is unset");
    return {};
  }
  FAIL(
      "FOUNDATIOND_TEST_IMAGE is not set: build the local test image (tests/peers/, or "
      "scripts/test) and export FOUNDATIOND_TEST_IMAGE=<image>; to skip the integration "
      "suite locally set FOUNDATIOND_SKIP_INTEGRATION=1 (never honoured when CI=true)");
  return {};
}

namespace detail {
template <class T>
boost::asio::awaitable<void> storeResult(boost::asio::awaitable<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}
}  // namespace detail

template <class T>
T runSync(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, detail::storeResult(std::move(task), &out), [&](std::exception_ptr e) {
    error = e;
    done = true;
    io.stop();
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  if (!done || !out) throw std::logic_error("runSync: io_context stopped before the task finished");
  return std::move(*out);
}

inline void runSync(boost::asio::io_context& io, boost::asio::awaitable<void> task) {
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    error = e;
    done = true;
    io.stop();
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  if (!done) throw std::logic_error("runSync: io_context stopped before the task finished");
}

}  // namespace foundationd::testing
