// The daemon's [backup] schedule (docs/dr.md "Schedule and reports"): a
// backup is due `schedule` after the last complete one (at once when there
// has never been one, 10 minutes after a failed attempt); it runs when the
// state is unlocked (the restic password is sealed in it) and no reconcile
// is under way. Each run, the daemon's or `foundationd backup`'s, is recorded
// in the state (backup::recordRun); status, GET /v1/status and /metrics
// report the last attempt, the last complete backup and the condition
// (never, ok, failed, offsite_failed, stale).
#include "build_info.hpp"
#include "controllers/backup/run.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// How often the schedule looks (a due time, an unseal, a backup taken by
// the CLI): a look is one read of two small rows of the state.
constexpr std::chrono::seconds kBackupPoll{5};

std::int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<api::TimePoint> timeOf(std::int64_t unixMs) {
  if (unixMs <= 0) return std::nullopt;
  return api::TimePoint(std::chrono::duration_cast<api::Clock::duration>(
      std::chrono::milliseconds(unixMs)));
}

std::optional<api::BackupRunState> runState(const std::optional<backup::RunRecord>& r) {
  if (!r) return std::nullopt;
  api::BackupRunState s;
  s.id = r->id;
  s.started = timeOf(r->startedUnixMs);
  s.finished = timeOf(r->finishedUnixMs);
  s.ok = r->ok;
  s.error = r->error;
  s.offsite = backup::toString(r->offsite);
  s.offsiteError = r->offsiteError;
  s.bytes = r->bytes;
  for (const auto& sec : r->sections) s.sections.push_back({sec.name, sec.bytes, sec.seconds});
  s.by = r->by;
  s.reason = r->reason;
  return s;
}

}  // namespace

// The backup history as the state has it now (a backup the CLI took shows
// up at the next look).
void Daemon::refreshBackupHistory() {
  if (!store_) return;
  auto history = backup::readHistory(*store_);
  if (!history) {
    log::warn("backup.history_unreadable", {{"error", history.error().message}});
    return;
  }
  backupHistory_ = std::move(history).value();
  // `backup verify` records (docs/dr.md "Verify"): a failed one seen for the
  // first time counts in /metrics (the CLI's too: it writes the state).
  auto verified = backup::readVerifyHistory(*store_);
  if (!verified) {
    log::warn("backup.verify_history_unreadable", {{"error", verified.error().message}});
    return;
  }
  verifyHistory_ = std::move(verified).value();
  const auto& last = verifyHistory_.last;
  const std::int64_t seen = last ? last->finishedUnixMs : 0;
  if (verifyCountedMs_ >= 0 && seen > verifyCountedMs_ && last && !last->ok) {
    metrics_.backupVerifyFailures().inc({last->reason.empty() ? "setup" : last->reason});
    log::error("backup.verify_failed", {{"id", last->id}, {"error", last->error}});
  }
  verifyCountedMs_ = seen;
  latestVerified_ = "never";
  if (backupHistory_.lastComplete) {
    auto v = backup::readVerify(*store_, backupHistory_.lastComplete->id);
    if (v) latestVerified_ = backup::verifiedColumn(*v);
  }
}

api::BackupState Daemon::backupState() const {
  api::BackupState b;
  if (!spec_ || !spec_->backup) return b;
  b.declared = true;
  const auto a = backup::assess(backupHistory_, spec_->backup->schedule, nowUnixMs());
  b.condition = backup::toString(a.condition);
  b.message = a.message;
  b.waiting = backupWaiting_;
  b.running = backupRunning_;
  b.nextDue = timeOf(a.nextDueUnixMs);
  b.lastAttempt = runState(backupHistory_.lastAttempt);
  b.lastComplete = runState(backupHistory_.lastComplete);
  b.latestVerified = latestVerified_;
  if (const auto& v = verifyHistory_.last) {
    b.lastVerify = api::BackupVerifyState{v->id, v->ok, v->reason, v->error,
                                          timeOf(v->finishedUnixMs), v->by};
  }
  if (verifyHistory_.lastOk) b.lastVerifiedOk = timeOf(verifyHistory_.lastOk->finishedUnixMs);
  b.verifyRunning = verifyRunning_;
  if (const auto at = backup::verifyDueUnixMs(backupHistory_, verifyHistory_,
                                              spec_->backup->verifySchedule)) {
    b.nextVerifyDue = timeOf(std::max(*at, verifyNotBeforeMs_));
  }
  return b;
}

asio::awaitable<void> Daemon::backupLoop() {
  std::string lastWaiting;
  while (!stopping_) {
    co_await sleepFor(kBackupPoll);
    if (stopping_) break;
    if (!spec_ || !spec_->backup) {
      backupWaiting_.clear();
      continue;
    }
    refreshBackupHistory();
    const std::int64_t now = nowUnixMs();
    const auto a = backup::assess(backupHistory_, spec_->backup->schedule, now);
    const bool backupDue = a.nextDueUnixMs <= now;
    // A verify (verify_schedule) when no backup is due: never both at once.
    const auto verifyAt = backup::verifyDueUnixMs(backupHistory_, verifyHistory_,
                                                  spec_->backup->verifySchedule);
    const bool verifyDue =
        !backupDue && verifyAt && *verifyAt <= now && verifyNotBeforeMs_ <= now;
    if (!backupDue && !verifyDue) {
      backupWaiting_.clear();
      continue;
    }
    const char* what = backupDue ? "a backup" : "a backup verify";
    if (key_.locked()) {
      backupWaiting_ = initialized_ ? std::string("locked: ") + what +
                                          " is due and waits for the unseal (the restic "
                                          "password is in the sealed state)"
                                    : "the state is not initialised (foundationd init)";
    } else if (!lastReconcile_.end || reconcileSince_ || (scheduler_ && scheduler_->busy())) {
      backupWaiting_ = std::string(what) + " is due and waits for the reconcile under way";
    } else {
      backupWaiting_.clear();
    }
    if (backupWaiting_ != lastWaiting) {
      if (!backupWaiting_.empty()) log::info("backup.waiting", {{"message", backupWaiting_}});
      lastWaiting = backupWaiting_;
    }
    if (!backupWaiting_.empty()) continue;
    const config::Spec spec = *spec_;  // this backup works on one revision
    if (backupDue) {
      (void)co_await runScheduledBackup(spec, "");
    } else {
      co_await runScheduledVerify(spec);
    }
    publishStatus();
  }
}

asio::awaitable<Result<backup::RunSetup>> Daemon::prepareScheduledRun(const config::Spec& spec) {
  // The repository password and the targets' keys come from the sealed
  // state: read on the pool, as everything that uses the key.
  state::Store* store = store_.get();
  const state::UnlockedKey* key = &key_;
  const config::Spec* specp = &spec;
  auto prepare = [store, key, specp] {
    StoreSecrets secrets(*specp, store, key);
    return backup::prepareRun(*specp, *store, *key, secrets);
  };
  co_return co_await onPool(prepare);
}

asio::awaitable<void> Daemon::runScheduledVerify(const config::Spec& spec) {
  verifyRunning_ = true;
  struct Running {
    bool& flag;
    ~Running() { flag = false; }
  } running{verifyRunning_};
  log::info("backup.verify_start", {{"project", spec.project}, {"by", "daemon"}});
  auto prepared = co_await prepareScheduledRun(spec);
  // Not started (no record to hold the retry): tried again after the
  // failure delay, and counted in /metrics as a setup failure.
  auto notStarted = [this](const std::string& why) {
    verifyNotBeforeMs_ = nowUnixMs() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                           backup::kVerifyRetryAfterFailure)
                                           .count();
    metrics_.backupVerifyFailures().inc({"setup"});
    log::error("backup.verify_failed", {{"error", why}});
  };
  if (!prepared) {
    notStarted(prepared.error().message);
    co_return;
  }
  // As the scheduled backup: in flight for quiescePool() while it runs (the
  // Vault check reads the key), so a seal, a re-key or the shutdown waits.
  while (keyWriters_ > 0) co_await sleepFor(std::chrono::milliseconds(2));
  if (key_.locked()) {
    notStarted("the state was sealed before the verify started");
    co_return;
  }
  backup::VerifyRecord r;
  {
    PoolWork inFlight{poolInFlight_};
    backup::BackupContext ctx{docker_, spec, *store_, config_.stateDir, FOUNDATIOND_VERSION};
    ctx.key = &key_;
    StoreSecrets bucketKeys(spec, store_.get(), &key_);
    ctx.secrets = &bucketKeys;
    backup::Restic restic(io_.get_executor(), prepared->targets.local, prepared->password.view(),
                          backup::resticBinary());
    const backup::Report report = [](const std::string& line) {
      log::info("backup.verify_progress", {{"message", line}});
    };
    backup::VerifyRequest req;
    r = co_await backup::verifyBackup(ctx, restic, req, report, "daemon");
  }
  if (!backup::wasChosen(r)) {  // no complete backup could be chosen: nothing verified
    notStarted(r.error);
    co_return;
  }
  state::Store* store = store_.get();
  const backup::VerifyRecord* rp = &r;
  auto record = [store, rp] { return backup::recordVerify(*store, *rp); };
  if (auto st = co_await onPool(record); !st) {
    log::error("backup.verify_record_failed", {{"error", st.error().message}});
    notStarted("the verification was not recorded: " + st.error().message);
  }
  (void)store_->appendAudit(r.ok ? "backup.verified" : "backup.verify_failed",
                            nlohmann::json{{"id", r.id}, {"reason", r.reason}, {"by", "daemon"}}
                                .dump());
  if (r.ok) log::info("backup.verified", {{"id", r.id}});
  refreshBackupHistory();  // counts and logs a failed one
}

asio::awaitable<Status> Daemon::backupBeforeUpgrade(const config::Spec& spec,
                                                    const std::string& what) {
  if (!spec.backup) co_return Status::success();
  if (key_.locked()) {
    co_return Error::make(ErrorCode::unavailable,
                          "locked: the backup before it needs the restic password in the state");
  }
  const auto r = co_await runScheduledBackup(
      spec, "before an upgrade: " + what + (specInForce_.empty() ? "" : " (revision " + specInForce_ + ")"));
  publishStatus();
  if (!r.ok) co_return Error::make(ErrorCode::unavailable, r.error);
  co_return Status::success();
}

asio::awaitable<backup::RunRecord> Daemon::runScheduledBackup(const config::Spec& spec,
                                                              std::string reason) {
  backupRunning_ = true;
  struct Running {
    bool& flag;
    ~Running() { flag = false; }
  } running{backupRunning_};
  log::info("backup.start", {{"project", spec.project}, {"reason", reason}});
  publishStatus();

  auto prepared = co_await prepareScheduledRun(spec);
  state::Store* store = store_.get();
  backup::RunRecord r;
  if (!prepared) {
    r.by = "daemon";
    r.startedUnixMs = r.finishedUnixMs = nowUnixMs();
    r.error = prepared.error().message;
    r.reason = reason;
  } else {
    backup::BackupContext ctx{docker_, spec, *store_, config_.stateDir, FOUNDATIOND_VERSION};
    ctx.reason = reason;
    ctx.unpauseNow = backup::blockingUnpauser(config_.dockerSocket);
    const backup::Report report = [](const std::string& line) {
      log::info("backup.progress", {{"message", line}});
    };
    // The Vault section reads the key (its root token and keys are sealed in
    // the state) on this thread: like pool work, the backup is in flight for
    // quiescePool(), so a seal, a re-key or the shutdown waits for it to end.
    // No pool work may be awaited while it holds the count (a quiesce would
    // wait for it and it for the quiesce).
    while (keyWriters_ > 0) co_await sleepFor(std::chrono::milliseconds(2));
    if (key_.locked()) {
      r.by = "daemon";
      r.startedUnixMs = r.finishedUnixMs = nowUnixMs();
      r.error = "the state was sealed before the backup started";
      r.reason = reason;
    } else {
      PoolWork inFlight{poolInFlight_};
      ctx.key = &key_;
      StoreSecrets bucketKeys(spec, store_.get(), &key_);  // [s3.*] keys, read on this thread too
      ctx.secrets = &bucketKeys;
      r = co_await backup::runBackup(ctx, prepared->targets, prepared->password.view(),
                                     backup::resticBinary(), report, "daemon");
    }
  }
  const backup::RunRecord* rp = &r;
  auto record = [store, rp] { return backup::recordRun(*store, *rp); };
  if (auto st = co_await onPool(record); !st) {
    log::error("backup.record_failed", {{"error", st.error().message}});
  }
  if (!r.ok) {
    metrics_.backupFailures().inc({"backup"});
    log::error("backup.failed", {{"error", r.error}});
    (void)store_->appendAudit("backup.failed", nlohmann::json{{"by", "daemon"}}.dump());
  } else if (r.offsite == backup::RunRecord::Offsite::failed) {
    metrics_.backupFailures().inc({"offsite"});
    log::error("backup.offsite_failed", {{"id", r.id}, {"error", r.offsiteError}});
    (void)store_->appendAudit("backup.taken",
                              nlohmann::json{{"id", r.id}, {"by", "daemon"}}.dump());
    (void)store_->appendAudit("backup.offsite_failed", nlohmann::json{{"id", r.id}}.dump());
  } else {
    log::info("backup.complete", {{"id", r.id},
                                  {"offsite", backup::toString(r.offsite)},
                                  {"bytes", std::to_string(r.bytes)}});
    (void)store_->appendAudit("backup.taken",
                              nlohmann::json{{"id", r.id}, {"by", "daemon"}}.dump());
    if (r.offsite == backup::RunRecord::Offsite::confirmed) {
      (void)store_->appendAudit("backup.offsite_copied", nlohmann::json{{"id", r.id}}.dump());
    }
  }
  if (!r.retentionError.empty()) {
    log::warn("backup.retention_failed", {{"error", r.retentionError}});
    (void)store_->appendAudit("backup.retention_failed", "{}");
  }
  refreshBackupHistory();
  co_return r;
}

}  // namespace foundationd::daemon
