// The reconcile scheduler (STYLE.md "Controllers", controller-runtime's
// workqueue): triggers are keyed by resource (kind, name); duplicates
// coalesce; one reconcile runs at a time, so no key is ever reconciled twice
// at once; a key whose reconcile failed is retried with exponential backoff;
// everything is resynced every `resync` interval. Triggers come from start-up,
// unlock, the API, Docker events and the resync timer.
//
// Thread: the io_context's (single thread); trigger() may be called from any
// coroutine or handler on it. The reconcile function is awaited; it receives
// the batch of keys (or `all`) and returns the keys that failed.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/async.hpp"
#include "config/graph.hpp"

namespace foundationd::daemon {

using Key = config::ResourceKey;

struct SchedulerOptions {
  std::chrono::milliseconds resync{std::chrono::seconds(60)};
  std::chrono::milliseconds backoffInitial{std::chrono::seconds(1)};
  std::chrono::milliseconds backoffMax{std::chrono::minutes(5)};
  // A key is reconciled at most once per this interval on its own triggers
  // (events, retries): a trigger that comes sooner is held until the
  // interval has passed, and further ones coalesce into it. Whatever the
  // containers do (die in a loop, flap their health), the reconcile rate
  // stays bounded. `all` batches (start-up, resync, API) are not held.
  std::chrono::milliseconds minKeyInterval{std::chrono::seconds(1)};
};

struct Batch {
  bool all = false;    // reconcile everything (start-up, unlock, resync, API)
  std::set<Key> keys;  // otherwise just these
  std::string reason;  // why, for logs ("docker event: die", "resync", ...)
};

// Whether a service step (buckets, PostgreSQL, the forge) has work in
// `batch`: everything, a key of one of its `kinds`, or one of the `hosts`
// containers its instances live in (a recreated host may have lost them).
bool batchConcerns(const Batch& batch, std::initializer_list<config::Kind> kinds,
                   const std::set<std::string>& hosts);

class Scheduler {
 public:
  using Reconcile = std::function<boost::asio::awaitable<std::set<Key>>(const Batch&)>;

  Scheduler(boost::asio::any_io_executor ex, SchedulerOptions options, Reconcile reconcile);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void trigger(const Key& key, const std::string& reason);
  void triggerAll(const std::string& reason);
  // trigger(key) after `delay` (a container waiting out its restart backoff).
  // A later call for the same key replaces the earlier one.
  void triggerAfter(const Key& key, std::chrono::milliseconds delay, const std::string& reason);

  // Runs batches until stop(); the resync timer starts with it.
  boost::asio::awaitable<void> run();
  // Lets the running batch finish, then run() returns.
  void stop();

  // Observability.
  std::uint64_t batchesRun() const noexcept { return batches_; }
  std::uint64_t triggersCoalesced() const noexcept { return coalesced_; }
  // Triggers held back by minKeyInterval.
  std::uint64_t triggersHeld() const noexcept { return held_; }
  bool busy() const noexcept { return busy_; }
  // Failures in a row for `key` (0 when healthy).
  int failures(const Key& key) const;
  // Delay before retry number `n` (1-based): initial * 2^(n-1), capped.
  std::chrono::milliseconds backoffFor(int n) const;

 private:
  void wake();
  boost::asio::awaitable<void> resyncLoop();
  void scheduleRetry(const Key& key);
  void enqueue(const Key& key, const std::string& reason);

  boost::asio::any_io_executor ex_;
  SchedulerOptions options_;
  Reconcile reconcile_;
  Batch pending_;
  bool hasPending_ = false;
  bool busy_ = false;
  bool stopping_ = false;
  std::unique_ptr<boost::asio::steady_timer> wakeTimer_;
  std::unique_ptr<boost::asio::steady_timer> resyncTimer_;
  std::map<Key, int> failures_;
  std::map<Key, std::unique_ptr<boost::asio::steady_timer>> retryTimers_;
  std::map<Key, std::unique_ptr<boost::asio::steady_timer>> delayTimers_;  // triggerAfter
  std::map<Key, std::unique_ptr<boost::asio::steady_timer>> heldTimers_;   // minKeyInterval
  std::map<Key, std::chrono::steady_clock::time_point> lastRun_;  // start of its last batch
  std::set<Key> heldKeys_;  // a trigger waits for minKeyInterval
  std::uint64_t batches_ = 0;
  std::uint64_t coalesced_ = 0;
  std::uint64_t held_ = 0;
};

}  // namespace foundationd::daemon
