// A DaemonControl with canned answers and call records, for tests of the
// API's routes and server (TESTING.md: fakes at the interface boundary).
//
// Unseal: rate_limited while `retryAfter` > 0; else compares with
// `passphrase` (unlocked, and the snapshot becomes unlocked) unless
// `unsealOverride` is set. `delay` makes every coroutine take that long (a
// request in flight during stop()). `throwOnStatus` makes status() throw (a bug).
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "api/daemon_interface.hpp"

namespace foundationd::testing {

class FakeDaemon final : public api::DaemonControl {
 public:
  api::StatusSnapshot snapshot;
  std::string passphrase = "correct horse battery staple";
  std::chrono::seconds retryAfter{0};
  std::optional<api::UnsealResult> unsealOverride;
  Status sealStatus;
  Status reconcileStatus;
  Result<nlohmann::json> planResult = nlohmann::json{{"changes", nlohmann::json::array()}};
  Result<std::vector<api::AuditEvent>> eventsResult = std::vector<api::AuditEvent>{};
  std::chrono::milliseconds delay{0};
  bool throwOnStatus = false;

  // What was asked.
  int statusCalls = 0;
  int unsealCalls = 0;
  api::PeerKind lastUnsealFrom = api::PeerKind::remote;
  std::string lastPassphrase;  // tests only: what arrived, to check it was passed intact
  int sealCalls = 0;
  int reconcileCalls = 0;
  int planCalls = 0;
  std::int64_t lastSince = -1;
  std::size_t lastLimit = 0;

  api::StatusSnapshot status() override {
    ++statusCalls;
    if (throwOnStatus) throw std::runtime_error("status exploded");
    return snapshot;
  }

  api::Task<api::UnsealResult> unseal(state::SecretBytes secret, api::PeerKind from) override {
    ++unsealCalls;
    lastUnsealFrom = from;
    lastPassphrase = std::string(secret.view());
    co_await pause();
    if (unsealOverride) co_return *unsealOverride;
    api::UnsealResult r;
    if (retryAfter.count() > 0) {
      r.outcome = api::UnsealOutcome::rate_limited;
      r.retryAfter = retryAfter;
    } else if (secret.equals(passphrase)) {
      r.outcome = api::UnsealOutcome::unlocked;
      r.vaultUnsealed = snapshot.vault.present;
      snapshot.locked = false;
    } else {
      r.outcome = api::UnsealOutcome::wrong_passphrase;
    }
    co_return r;
  }

  api::Task<Status> seal() override {
    ++sealCalls;
    co_await pause();
    if (sealStatus) snapshot.locked = true;
    co_return sealStatus;
  }

  Status requestReconcile() override {
    ++reconcileCalls;
    return reconcileStatus;
  }

  api::Task<Result<nlohmann::json>> plan() override {
    ++planCalls;
    co_await pause();
    co_return planResult;
  }

  api::Task<Result<std::vector<api::AuditEvent>>> events(std::int64_t since,
                                                         std::size_t limit) override {
    lastSince = since;
    lastLimit = limit;
    co_await pause();
    co_return eventsResult;
  }

  // POST /v1/secrets: who the API said sent it (`by`), and the value's size.
  int setSecretCalls = 0;
  std::string lastSetSecretBy;
  api::Task<Result<api::RotateResult>> setSecret(std::string credential, std::string field,
                                                 state::SecretBytes value,
                                                 std::string by) override {
    ++setSecretCalls;
    lastSetSecretBy = by;
    co_await pause();
    api::RotateResult r;
    r.credential = credential;
    r.fields.emplace_back(field, static_cast<int>(value.size()));
    r.result = "converged";
    r.converged = true;
    co_return r;
  }

 private:
  api::Task<void> pause() {
    if (delay.count() <= 0) co_return;
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, delay);
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
};

}  // namespace foundationd::testing
