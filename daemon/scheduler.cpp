#include "daemon/scheduler.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

bool batchConcerns(const Batch& batch, std::initializer_list<config::Kind> kinds,
                   const std::set<std::string>& hosts) {
  if (batch.all) return true;
  for (const auto& k : batch.keys) {
    if (std::find(kinds.begin(), kinds.end(), k.kind) != kinds.end()) return true;
    if (k.kind == config::Kind::container && hosts.count(k.name) != 0) return true;
  }
  return false;
}

Scheduler::Scheduler(asio::any_io_executor ex, SchedulerOptions options, Reconcile reconcile)
    : ex_(ex),
      options_(options),
      reconcile_(std::move(reconcile)),
      wakeTimer_(std::make_unique<asio::steady_timer>(ex, asio::steady_timer::time_point::max())),
      resyncTimer_(std::make_unique<asio::steady_timer>(ex)) {}

void Scheduler::trigger(const Key& key, const std::string& reason) {
  if (hasPending_ && (pending_.all || pending_.keys.count(key))) {
    ++coalesced_;
    return;
  }
  if (heldKeys_.count(key)) {  // already waiting for its interval
    ++coalesced_;
    return;
  }
  auto last = lastRun_.find(key);
  if (last != lastRun_.end() && options_.minKeyInterval.count() > 0) {
    const auto due = last->second + options_.minKeyInterval;
    if (std::chrono::steady_clock::now() < due) {
      ++held_;
      heldKeys_.insert(key);
      auto& timer = heldTimers_[key];
      if (!timer) timer = std::make_unique<asio::steady_timer>(ex_);
      timer->expires_at(due);
      timer->async_wait([this, key, reason](const boost::system::error_code& ec) {
        heldKeys_.erase(key);
        if (!ec && !stopping_) enqueue(key, reason);
      });
      return;
    }
  }
  enqueue(key, reason);
}

void Scheduler::enqueue(const Key& key, const std::string& reason) {
  if (hasPending_ && (pending_.all || pending_.keys.count(key))) {
    ++coalesced_;
    return;
  }
  if (!hasPending_) pending_.reason = reason;
  pending_.keys.insert(key);
  hasPending_ = true;
  wake();
}

void Scheduler::triggerAll(const std::string& reason) {
  if (hasPending_ && pending_.all) {
    ++coalesced_;
    return;
  }
  if (hasPending_) coalesced_ += pending_.keys.size();
  pending_.all = true;
  pending_.keys.clear();
  pending_.reason = reason;
  hasPending_ = true;
  wake();
}

void Scheduler::triggerAfter(const Key& key, std::chrono::milliseconds delay,
                             const std::string& reason) {
  auto& timer = delayTimers_[key];
  if (!timer) timer = std::make_unique<asio::steady_timer>(ex_);
  timer->expires_after(delay);  // cancels an earlier wait (operation_aborted)
  timer->async_wait([this, key, reason](const boost::system::error_code& ec) {
    if (!ec && !stopping_) trigger(key, reason);
  });
}

void Scheduler::wake() { wakeTimer_->cancel(); }

void Scheduler::stop() {
  stopping_ = true;
  wake();
  resyncTimer_->cancel();
  for (auto& [_, t] : retryTimers_) t->cancel();
  for (auto& [_, t] : delayTimers_) t->cancel();
  for (auto& [_, t] : heldTimers_) t->cancel();
}

int Scheduler::failures(const Key& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::chrono::milliseconds Scheduler::backoffFor(int n) const {
  auto d = options_.backoffInitial;
  for (int i = 1; i < n && d < options_.backoffMax; ++i) d *= 2;
  return std::min(d, options_.backoffMax);
}

void Scheduler::scheduleRetry(const Key& key) {
  const int n = ++failures_[key];
  auto& timer = retryTimers_[key];
  if (!timer) timer = std::make_unique<asio::steady_timer>(ex_);
  timer->expires_after(backoffFor(n));
  timer->async_wait([this, key](const boost::system::error_code& ec) {
    if (!ec && !stopping_) trigger(key, "retry after failure");
  });
}

asio::awaitable<void> Scheduler::resyncLoop() {
  while (!stopping_) {
    resyncTimer_->expires_after(options_.resync);
    boost::system::error_code ec;
    co_await resyncTimer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!stopping_ && !ec) triggerAll("resync");
  }
}

asio::awaitable<void> Scheduler::run() {
  asio::co_spawn(ex_, resyncLoop(), [](std::exception_ptr e) {
    if (e) log::error("scheduler.resync_failed");
  });
  while (!stopping_) {
    if (!hasPending_) {
      boost::system::error_code ec;
      co_await wakeTimer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    Batch batch = std::move(pending_);
    pending_ = Batch{};
    hasPending_ = false;
    busy_ = true;
    ++batches_;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& k : batch.keys) lastRun_[k] = now;
    std::set<Key> failed;
    try {
      failed = co_await reconcile_(batch);
    } catch (const std::exception& e) {
      log::error("reconcile.exception", {{"error", e.what()}});
    }
    busy_ = false;
    // Keys that succeeded are healthy again; failed ones back off.
    if (batch.all) {
      for (auto it = failures_.begin(); it != failures_.end();) {
        it = failed.count(it->first) ? std::next(it) : failures_.erase(it);
      }
    } else {
      for (const auto& k : batch.keys) {
        if (!failed.count(k)) failures_.erase(k);
      }
    }
    for (const auto& k : failed) scheduleRetry(k);
  }
}

}  // namespace foundationd::daemon
