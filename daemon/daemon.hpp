// The daemon (`foundationd serve`): wires the state store, the scheduler, the
// Docker controller (and the credentials controller), the Docker events
// stream and the HTTP API together, and implements api::DaemonControl.
//
// Threads: everything runs on the one io_context thread, except blocking work
// (Argon2id unlock, SQLite writes for credential generation) which runs on a
// small thread pool and is co_awaited back (STYLE.md).
//
// Lifecycle: start() opens the state (locked), binds the listeners, notifies
// READY=1 and returns; run() drives the scheduler, the events watcher, the
// watchdog and the signals until SIGTERM/SIGINT (clean stop: the current step
// finishes, nothing is cut mid-write); SIGHUP reloads the daemon config.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "api/daemon_interface.hpp"
#include "api/metrics.hpp"
#include "api/router.hpp"
#include "api/server.hpp"
#include "api/token.hpp"
#include "common/async.hpp"
#include "config/daemon_config.hpp"
#include "config/spec.hpp"
#include "controllers/backup/run.hpp"
#include "controllers/backup/verify.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/docker/restart_backoff.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/step_report.hpp"
#include "controllers/source/git_repo.hpp"
#include "controllers/vault/vault.hpp"
#include "daemon/plan.hpp"
#include "daemon/scheduler.hpp"
#include "state/store.hpp"
#include "state/unseal_gate.hpp"

namespace foundationd::docker {
struct ApplyOptions;
}  // namespace foundationd::docker

namespace foundationd::daemon {

class StoreSecrets;  // converge.hpp
class Daemon final : public api::DaemonControl {
 public:
  // `configPath` is reloaded on SIGHUP ("" = defaults, nothing to reload).
  Daemon(boost::asio::io_context& io, config::DaemonConfig config, std::string configPath);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the state, binds the API, READY=1. Errors are fatal at start.
  Status start();
  // Until a stop signal. Returns the process exit code.
  boost::asio::awaitable<int> run();

  // api::DaemonControl
  api::StatusSnapshot status() override;
  api::Task<api::UnsealResult> unseal(state::SecretBytes passphrase, api::PeerKind from) override;
  api::Task<Status> seal() override;
  Status requestReconcile() override;
  api::Task<Result<nlohmann::json>> plan() override;
  // The plan of `spec` against the live host (GET /v1/plan, pull requests).
  api::Task<Result<SpecPlan>> planSpec(const config::Spec& spec);
  api::Task<Result<std::vector<api::AuditEvent>>> events(std::int64_t since,
                                                         std::size_t limit) override;
  // daemon_source.cpp: POST /v1/hooks/forgejo.
  api::Task<Result<state::SecretBytes>> webhookSecret() override;
  api::Task<api::WebhookResult> webhook(api::WebhookDelivery delivery) override;
  void webhookRejected(const std::string& why) override;
  // daemon_rotate.cpp: POST /v1/rotate.
  api::Task<Result<api::RotateResult>> rotate(std::string credential) override;
  // daemon_rotate.cpp: POST /v1/secrets (`secret set` through the daemon).
  api::Task<Result<api::RotateResult>> setSecret(std::string credential, std::string field,
                                                 state::SecretBytes value,
                                                 std::string by) override;

  // Seconds to wait after `failures` failed unseal attempts.
  static std::chrono::seconds unsealBackoff(std::int64_t failures);

 private:
  boost::asio::awaitable<std::set<Key>> reconcile(const Batch& batch);
  boost::asio::awaitable<void> watchDockerEvents();
  boost::asio::awaitable<void> watchdogLoop();
  // unseal() on a given backoff path (the API's peer, or the credential).
  boost::asio::awaitable<api::UnsealResult> unsealFrom(state::SecretBytes passphrase,
                                                       state::UnsealPath path);
  // systemd's LoadCredentialEncrypted=passphrase: tried at start and again
  // after each backoff (or busy) refusal until the state is unlocked.
  boost::asio::awaitable<void> unsealFromCredential();
  // Returns once no pool work is in flight; pool work asked for meanwhile
  // waits. The caller changes key_ right after, without suspending: pool
  // work (credentials, git token, webhook secret, the Vault step) reads the
  // key through a pointer and never sees it change or freed under it.
  boost::asio::awaitable<void> quiescePool();
  // A key change that itself needs the pool (the seal seals Vault with the
  // root token from the state): no other pool work starts between
  // beginKeyChange() and endKeyChange(), and none is in flight when
  // beginKeyChange() returns; only PoolGate::keyChange work runs meanwhile.
  boost::asio::awaitable<void> beginKeyChange();
  void endKeyChange() { --keyWriters_; }
  // keep_key_in_memory = false: once the converge that the unseal started
  // has finished, the key is wiped (unless it changed meanwhile).
  boost::asio::awaitable<void> dropKeyAfterConverge(std::uint64_t generation,
                                                    api::TimePoint unsealedAt);
  void reloadConfig();
  void loadSpec();
  void setResource(const Key& key, api::ResourceStatus status, const std::string& reason);
  // A service step's outcomes onto resource status and drift metrics; false
  // when any outcome failed or is blocked.
  bool applyStepReport(const StepReport& report);
  // The [s3.*]/[buckets.*] step (daemon_buckets.cpp).
  boost::asio::awaitable<StepReport> reconcileBuckets(const config::Spec& spec, const Batch& batch);
  // daemon_postgres.cpp: the [postgres.*] step (roles, databases).
  boost::asio::awaitable<StepReport> reconcilePostgres(const config::Spec& spec, const Batch& batch);
  // daemon_forgejo.cpp: the [forgejo] step (admin, orgs, repos, runner token, webhooks).
  boost::asio::awaitable<StepReport> reconcileForgejo(const config::Spec& spec, const Batch& batch);
  // ALTER ROLE for the roles of credentials rotate_every just rotated, before
  // their consumers are recreated.
  boost::asio::awaitable<void> alterRotatedRoles(const config::Spec& spec,
                                                 const std::vector<credentials::Generated>& generated);
  // daemon_reconcile.cpp: the daemon's side of the converge pipeline.
  class ConvergeExec;
  void publishStatus();
  // daemon_rotate.cpp: the rotations POST /v1/rotate asked for, run by a
  // reconcile of everything (`all`: so every consumer is covered) before its
  // credentials and Docker parts (new versions, PostgreSQL, Vault); and, at
  // its end, their answers.
  struct RotationRequest;
  boost::asio::awaitable<void> runRotations(const config::Spec& spec, bool locked, bool all);
  void finishRotations(const std::string& result);
  // daemon_source.cpp: the spec source (git: fetch loop, last good spec,
  // revision history; file: loadSpec above).
  struct SourceState;
  void startSource();
  boost::asio::awaitable<void> sourceLoop();
  boost::asio::awaitable<void> fetchSource();
  api::SpecState specState() const;
  // A refused (untrusted) revision: recorded, counted, reported.
  boost::asio::awaitable<void> refuseUntrusted(const std::string& commit,
                                               const source::GitRepo::Signature& sig);
  // SIGHUP: the source fetches (and verifies) the branch again at once.
  void sourceReloaded();
  // Automatic rollback: watch a new revision for [source] settle; re-apply
  // the last good one when it fails (the source loop runs rollBack()).
  void startSettle(const std::string& revision, const config::Spec& next);
  boost::asio::awaitable<void> settleLoop();
  boost::asio::awaitable<void> rollBack();
  // The settle watch in the state, so a restart continues it.
  void persistSettle();
  void restoreSettle();
  // A reconcile that started with `revision` in force finished.
  void specReconciled(const std::string& revision, bool converged);
  // The source's git cache (null before startSource or for a file source).
  source::GitRepo* sourceRepo();
  // daemon_pr.cpp: plans on pull requests (queued by the webhook, planned
  // and commented on by the source loop, one at a time).
  struct PullRequests;
  void startPullRequests();
  bool pullRequestsQueued() const;
  api::WebhookOutcome queuePullRequest(const api::PullRequestEvent& pr, std::string& message);
  boost::asio::awaitable<void> planPullRequest();
  // daemon_vault.cpp: the Vault step, the seal-status poll, Vault's part of
  // unseal/seal.
  vault::Context vaultContext(const config::VaultSpec& v);
  void noteVault(bool initialized, bool sealed);
  boost::asio::awaitable<StepReport> reconcileVault(const config::Spec& spec);
  boost::asio::awaitable<void> watchVault();
  boost::asio::awaitable<bool> unsealVault();
  // Only inside seal()'s beginKeyChange()/endKeyChange().
  boost::asio::awaitable<void> sealVault();
  // Rotated credentials written to Vault before the Docker step updates
  // their consumers (when Vault is already set up).
  boost::asio::awaitable<void> mirrorRotated(const config::Spec& spec,
                                             const std::vector<credentials::Generated>& generated);
  // daemon_backup.cpp: [backup] on schedule, and what status reports of it.
  boost::asio::awaitable<void> backupLoop();
  boost::asio::awaitable<backup::RunRecord> runScheduledBackup(const config::Spec& spec,
                                                               std::string reason);
  // ApplyOptions::beforeStatefulImageChange of the daemon's reconcile.
  // [backup] verify_schedule: `backup verify` of the newest complete backup,
  // recorded in the state as the CLI's is.
  boost::asio::awaitable<void> runScheduledVerify(const config::Spec& spec);
  // The repository password and the targets' keys of a scheduled backup or
  // verify, read from the sealed state on the pool.
  boost::asio::awaitable<Result<backup::RunSetup>> prepareScheduledRun(const config::Spec& spec);
  boost::asio::awaitable<Status> backupBeforeUpgrade(const config::Spec& spec,
                                                     const std::string& what);
  void refreshBackupHistory();
  api::BackupState backupState() const;
  // Counts as pool work in flight for quiescePool() while it lives.
  struct PoolWork {
    int& n;
    explicit PoolWork(int& count) : n(count) { ++n; }
    PoolWork(const PoolWork&) = delete;
    PoolWork& operator=(const PoolWork&) = delete;
    ~PoolWork() { --n; }
  };
  // Runs blocking `f` on the pool and co_awaits its result on the io thread.
  // PoolGate::keyChange: the caller is inside beginKeyChange()/endKeyChange().
  enum class PoolGate { normal, keyChange };
  template <typename F>
  // `f` lives in this coroutine's frame until the pool has run it, so the
  // spawned lambda holds only a pointer to it: GCC 12 destroys a lambda
  // temporary inside a co_await expression twice, which corrupted the heap
  // when the lambda owned `f` (e.g. a std::function).
  auto onPool(F f, PoolGate gate = PoolGate::normal) -> boost::asio::awaitable<decltype(f())> {
    using T = decltype(f());
    // quiescePool(): a change of the key in progress goes first.
    while (gate == PoolGate::normal && keyWriters_ > 0)
      co_await sleepFor(std::chrono::milliseconds(2));
    PoolWork inFlight{poolInFlight_};
    F* fp = &f;
    auto run = [fp]() -> boost::asio::awaitable<T> { co_return (*fp)(); };
    co_return co_await boost::asio::co_spawn(pool_, run, boost::asio::use_awaitable);
  }

  boost::asio::io_context& io_;
  config::DaemonConfig config_;
  std::string configPath_;
  boost::asio::thread_pool pool_{2};

  std::unique_ptr<state::Store> store_;
  bool initialized_ = false;
  state::UnlockedKey key_;  // locked until unseal; changed only after quiescePool()
  std::unique_ptr<state::UnsealGate> unsealGate_;  // the backoff (start())
  int poolInFlight_ = 0;  // onPool work not yet back on the io thread
  int keyWriters_ = 0;    // quiescePool() callers waiting
  std::uint64_t keyGeneration_ = 0;  // +1 whenever key_ is set or wiped

  std::optional<config::Spec> spec_;  // the last good spec
  std::string specDigest_;            // of the file text, to see a change
  std::string specError_;
  std::string specRevision_;
  std::string specWarnings_;  // the newest revision's warnings (status: apart from errors)
  std::string specInForce_;              // the revision spec_ was loaded from
  std::shared_ptr<SourceState> source_;  // daemon_source.cpp
  std::shared_ptr<PullRequests> prs_;    // daemon_pr.cpp

  docker::DockerClient docker_;
  api::Metrics metrics_;
  std::optional<api::ApiToken> token_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<api::Server> server_;
  std::unique_ptr<Scheduler> scheduler_;

  std::map<Key, api::ResourceState> resources_;
  docker::RestartBackoff restarts_;  // services that exit again and again
  api::VaultState vault_;  // what the last look at Vault saw
  bool vaultRetry_ = false;  // the last Vault step failed: the poll retries it
  api::ReconcileState lastReconcile_;
  std::vector<std::shared_ptr<RotationRequest>> rotations_;  // daemon_rotate.cpp
  std::optional<api::TimePoint> reconcileSince_;  // the reconcile under way
  bool stopping_ = false;
  backup::RunHistory backupHistory_;  // daemon_backup.cpp
  backup::VerifyHistory verifyHistory_;
  std::string latestVerified_ = "never";  // the last complete backup's verification
  std::int64_t verifyCountedMs_ = -1;     // the last failed verify counted in /metrics
  std::string backupWaiting_;
  bool backupRunning_ = false;
  bool verifyRunning_ = false;
  // A scheduled verify that could not start (nothing recorded): not again
  // before this time.
  std::int64_t verifyNotBeforeMs_ = 0;
  boost::asio::cancellation_signal eventsStop_;  // run() ends watchDockerEvents() with it
};

// Logs a service step's changes (info) and failures (warning) as `event`
// ("buckets.apply", ...); a converged, unchanged resource says nothing.
void logStepOutcomes(const char* event, const StepReport& report);

}  // namespace foundationd::daemon
