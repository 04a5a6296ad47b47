#include <doctest/doctest.h>

#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/async.hpp"
#include "daemon/scheduler.hpp"

using namespace foundationd;
using namespace std::chrono_literals;
using daemon::Batch;
using daemon::Key;
using daemon::Scheduler;
namespace asio = boost::asio;

namespace {

Key ctr(const std::string& n) { return Key{config::Kind::container, n}; }

// Runs the io_context until `done` or a generous deadline (a safety net, not
// a timing assertion).
void runUntil(asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(5ms);
    io.restart();
  }
  REQUIRE(done());
}

}  // namespace

TEST_CASE("duplicate triggers coalesce into one batch") {
  asio::io_context io;
  std::vector<Batch> seen;
  Scheduler s(io.get_executor(), {.resync = 1h}, [&](const Batch& b) -> asio::awaitable<std::set<Key>> {
    seen.push_back(b);
    co_return std::set<Key>{};
  });
  for (int i = 0; i < 5; ++i) s.trigger(ctr("web"), "event");
  s.trigger(ctr("db"), "event");
  asio::co_spawn(io, s.run(), asio::detached);
  runUntil(io, [&] { return seen.size() == 1 && !s.busy(); });
  CHECK(s.triggersCoalesced() == 4);
  CHECK(seen[0].keys == std::set<Key>{ctr("web"), ctr("db")});
  CHECK_FALSE(seen[0].all);
  s.triggerAll("api");
  s.trigger(ctr("web"), "event");  // covered by the pending "all"
  runUntil(io, [&] { return seen.size() == 2; });
  CHECK(seen[1].all);
  CHECK(s.triggersCoalesced() == 5);
  s.stop();
  io.run_for(20ms);
}

TEST_CASE("one batch at a time; triggers during a batch run next, once") {
  asio::io_context io;
  int running = 0, maxRunning = 0;
  std::vector<Batch> seen;
  Scheduler* sp = nullptr;
  Scheduler s(io.get_executor(), {.resync = 1h}, [&](const Batch& b) -> asio::awaitable<std::set<Key>> {
    ++running;
    maxRunning = std::max(maxRunning, running);
    seen.push_back(b);
    if (seen.size() == 1) {
      // New triggers while this batch is busy.
      sp->trigger(ctr("web"), "event");
      sp->trigger(ctr("web"), "event");
    }
    co_await sleepFor(20ms);
    --running;
    co_return std::set<Key>{};
  });
  sp = &s;
  s.trigger(ctr("web"), "start");
  asio::co_spawn(io, s.run(), asio::detached);
  runUntil(io, [&] { return seen.size() == 2 && !s.busy(); });
  CHECK(maxRunning == 1);
  CHECK(seen[1].keys == std::set<Key>{ctr("web")});
  io.run_for(50ms);
  CHECK(seen.size() == 2);  // nothing further pending
  s.stop();
  io.run_for(20ms);
}

TEST_CASE("failed keys back off exponentially and recover") {
  asio::io_context io;
  int attempts = 0;
  std::vector<std::chrono::steady_clock::time_point> at;
  Scheduler s(io.get_executor(),
              {.resync = 1h, .backoffInitial = 10ms, .backoffMax = 40ms, .minKeyInterval = 0ms},
              [&](const Batch&) -> asio::awaitable<std::set<Key>> {
                at.push_back(std::chrono::steady_clock::now());
                if (++attempts <= 3) co_return std::set<Key>{ctr("db")};
                co_return std::set<Key>{};
              });
  CHECK(s.backoffFor(1) == 10ms);
  CHECK(s.backoffFor(2) == 20ms);
  CHECK(s.backoffFor(3) == 40ms);
  CHECK(s.backoffFor(9) == 40ms);
  s.trigger(ctr("db"), "start");
  asio::co_spawn(io, s.run(), asio::detached);
  runUntil(io, [&] { return attempts == 3; });
  CHECK(s.failures(ctr("db")) == 3);
  runUntil(io, [&] { return attempts == 4 && !s.busy(); });
  CHECK(s.failures(ctr("db")) == 0);
  // Each retry waited at least its backoff (lower bounds only: never an upper
  // bound on wall time).
  CHECK(at[1] - at[0] >= 10ms);
  CHECK(at[2] - at[1] >= 20ms);
  CHECK(at[3] - at[2] >= 40ms);
  io.run_for(100ms);
  CHECK(attempts == 4);
  s.stop();
  io.run_for(20ms);
}

TEST_CASE("a key that triggers itself again and again is reconciled at most once per interval") {
  // A container that dies as soon as it is started: each reconcile of it
  // brings the next `die` event at once.
  asio::io_context io;
  std::vector<std::chrono::steady_clock::time_point> at;
  Scheduler* sp = nullptr;
  Scheduler s(io.get_executor(), {.resync = 1h, .minKeyInterval = 30ms},
              [&](const Batch& b) -> asio::awaitable<std::set<Key>> {
                at.push_back(std::chrono::steady_clock::now());
                for (int i = 0; i < 3; ++i) sp->trigger(*b.keys.begin(), "docker event: die");
                co_return std::set<Key>{};
              });
  sp = &s;
  s.trigger(ctr("web"), "start");
  asio::co_spawn(io, s.run(), asio::detached);
  runUntil(io, [&] { return at.size() == 5; });
  // 3 triggers per batch: one held for the interval, two coalesced into it.
  CHECK(s.triggersHeld() >= 4);
  CHECK(s.triggersCoalesced() >= 8);
  for (std::size_t i = 1; i < at.size(); ++i) CHECK(at[i] - at[i - 1] >= 30ms);
  // Another key is not held by this one's interval; `all` is never held.
  s.trigger(ctr("db"), "event");
  s.triggerAll("api");
  s.stop();
  io.run_for(50ms);
}

TEST_CASE("triggerAfter reconciles a key once after its delay; a later call replaces it") {
  asio::io_context io;
  std::vector<Batch> seen;
  Scheduler s(io.get_executor(), {.resync = 1h, .minKeyInterval = 0ms},
              [&](const Batch& b) -> asio::awaitable<std::set<Key>> {
                seen.push_back(b);
                co_return std::set<Key>{};
              });
  asio::co_spawn(io, s.run(), asio::detached);
  const auto t0 = std::chrono::steady_clock::now();
  s.triggerAfter(ctr("web"), 10ms, "restart backoff");
  s.triggerAfter(ctr("web"), 40ms, "restart backoff");
  runUntil(io, [&] { return seen.size() == 1; });
  CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
  CHECK(seen[0].reason == "restart backoff");
  CHECK(seen[0].keys == std::set<Key>{ctr("web")});
  io.run_for(60ms);
  CHECK(seen.size() == 1);
  s.stop();
  io.run_for(20ms);
}

TEST_CASE("resync reconciles everything periodically, and stop() ends run()") {
  asio::io_context io;
  int alls = 0;
  bool ended = false;
  Scheduler s(io.get_executor(), {.resync = 10ms}, [&](const Batch& b) -> asio::awaitable<std::set<Key>> {
    if (b.all && b.reason == "resync") ++alls;
    co_return std::set<Key>{};
  });
  asio::co_spawn(io, s.run(), [&](std::exception_ptr) { ended = true; });
  runUntil(io, [&] { return alls >= 3; });
  s.stop();
  runUntil(io, [&] { return ended; });
}

TEST_CASE("batchConcerns: everything, a key of the step's kinds, or one of its host containers") {
  using foundationd::config::Kind;
  using foundationd::daemon::Batch;
  using foundationd::daemon::batchConcerns;
  const std::set<std::string> hosts{"pg"};
  Batch all;
  all.all = true;
  CHECK(batchConcerns(all, {Kind::postgres}, hosts));
  Batch role;
  role.keys.insert({Kind::postgres, "main/role/app"});
  CHECK(batchConcerns(role, {Kind::postgres}, hosts));
  CHECK_FALSE(batchConcerns(role, {Kind::s3, Kind::bucket}, {}));
  Batch host;
  host.keys.insert({Kind::container, "pg"});
  CHECK(batchConcerns(host, {Kind::postgres}, hosts));
  Batch other;
  other.keys.insert({Kind::container, "web"});
  other.keys.insert({Kind::network, "pg"});
  CHECK_FALSE(batchConcerns(other, {Kind::postgres}, hosts));
  CHECK_FALSE(batchConcerns(Batch{}, {Kind::postgres}, hosts));
}
