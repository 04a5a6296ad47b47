// The settle watch and the automatic rollback of the git source
// (docs/source.md "Rollback"): a new revision is watched for its settle period
// once applied; one whose containers fail in it is rolled back to the last
// good revision, marked in the revision history, and not applied again. The
// watch survives a restart (it is kept in the state).
//
// Thread: the io thread; the rollback reads the good revision on the pool.
#include <algorithm>
#include <set>

#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/async.hpp"
#include "controllers/docker/container_config.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "daemon/source_state.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

using source_detail::FetchOutcome;
using source_detail::kRolledBackPrefix;
using source_detail::verifyThenLoad;

// Where the settle watch is kept in the state (a memo of the source).
constexpr const char* kSettleKind = "spec-source";
std::string settleMemo(const std::string& source) {
  return "settle:" + source;
}

std::int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Daemon::specReconciled(const std::string& revision, bool converged) {
  if (!source_ || revision.empty()) return;
  // A pass that began on a revision replaced while it ran (rolled back, or a
  // newer push loaded), or one being rolled back, says nothing of the one in
  // force: a rolled-back revision must not be recorded applied again (a
  // restart would restore it) nor become the last good one.
  auto& s = *source_;
  if (revision != specInForce_ || revision == s.rollingBack) return;
  if (s.settle && s.settle->revision == revision && s.settle->problem.empty()) {
    // A resource that fails since this revision came: the revision failed.
    for (const auto& [key, r] : resources_) {
      if (r.status == api::ResourceStatus::failed && !s.settle->failedBefore.count(key.str())) {
        s.settle->problem = key.str() + " failed: " + r.reason;
        s.requested = true;  // the source loop rolls back
        if (s.timer) s.timer->cancel();
        break;
      }
    }
    if (converged && s.settle->problem.empty() && !s.settle->applied) {
      s.settle->applied = true;
      s.settle->until = std::chrono::steady_clock::now() + s.settle->period;
      s.settle->deadlineUnixMs = unixMs() + s.settle->period.count();
      persistSettle();
    }
  }
  if (!converged) return;
  if (!s.settle) s.lastGood = revision;
  if (s.applied == revision) return;
  s.applied = revision;
  const std::string name = source::describeSource(config_.source);
  log::info("spec.applied", {{"revision", revision}});
  // Small and rare (once per revision): written here, not worth the pool.
  (void)store_->recordSpecRevision(revision, name, state::SpecRevisionStatus::applied);
  (void)store_->appendAudit("spec.applied",
                            nlohmann::json{{"revision", revision}, {"source", name}}.dump());
}

void Daemon::startSettle(const std::string& revision, const config::Spec& next) {
  auto& s = *source_;
  s.settle.reset();
  // The new revision's own [rollout] settle, else the daemon config's.
  const auto period = next.settle ? *next.settle : config_.source.settle;
  if (period.count() <= 0 || s.lastGood.empty() || s.lastGood == revision) {
    persistSettle();
    return;
  }
  SourceState::Settle w;
  w.revision = revision;
  w.previous = s.lastGood;
  w.period = period;
  // The containers this revision changes or adds (their desired config
  // differs from the spec in force).
  const state::UnlockedKey* key = key_.locked() ? nullptr : &key_;
  StoreSecrets secrets(next, store_.get(), key);
  std::optional<StoreSecrets> before;
  if (spec_) before.emplace(*spec_, store_.get(), key);
  for (const auto& [name, c] : next.containers) {
    bool changed = !spec_ || !spec_->containers.count(name);
    if (!changed) {
      changed = docker::desiredContainer(spec_->containers.at(name), *before).hash !=
                docker::desiredContainer(c, secrets).hash;
    }
    if (changed) w.containers.insert(name);
  }
  for (const auto& [key, r] : resources_) {
    if (r.status == api::ResourceStatus::failed) w.failedBefore.insert(key.str());
  }
  log::info("spec.settle", {{"revision", revision},
                            {"previous", w.previous},
                            {"containers", std::to_string(w.containers.size())},
                            {"settle_s", std::to_string(period.count() / 1000)}});
  s.settle = std::move(w);
  persistSettle();
}

// The watch survives a restart: written (small, rare: on the io thread) when
// it starts, when its revision converged, and cleared when it ends.
void Daemon::persistSettle() {
  if (!source_ || !store_) return;
  const auto& s = *source_;
  const std::string memo = settleMemo(source::describeSource(config_.source));
  if (!s.settle || !s.settle->problem.empty()) {
    (void)store_->clearAppliedHash(kSettleKind, memo);
    return;
  }
  source::SettleRecord r;
  r.revision = s.settle->revision;
  r.previous = s.settle->previous;
  r.periodMs = s.settle->period.count();
  r.deadlineUnixMs = s.settle->deadlineUnixMs;
  r.containers = s.settle->containers;
  r.failedBefore = s.settle->failedBefore;
  (void)store_->setAppliedHash(kSettleKind, memo, r.toJson());
}

// At start: the watch of the restored revision, when a restart interrupted
// it, continues. Its revision must converge again, then it is watched for
// what was left of its settle period (at least one look at its containers).
void Daemon::restoreSettle() {
  auto& s = *source_;
  const std::string memo = settleMemo(source::describeSource(config_.source));
  auto text = store_->appliedHash(kSettleKind, memo);
  if (!text || !text.value()) return;
  auto r = source::SettleRecord::fromJson(**text);
  if (!r || r->revision != specInForce_ || !s.repo->hasCommit(r->previous)) {
    (void)store_->clearAppliedHash(kSettleKind, memo);
    return;
  }
  SourceState::Settle w;
  w.revision = r->revision;
  w.previous = r->previous;
  w.period = std::chrono::milliseconds(r->periodMs);
  if (r->deadlineUnixMs) {
    // What is left; counted from the first converge after the restart.
    w.period = std::chrono::milliseconds(std::max<std::int64_t>(0, *r->deadlineUnixMs - unixMs()));
  }
  w.containers = r->containers;
  w.failedBefore = r->failedBefore;
  s.lastGood = r->previous;
  log::info("spec.settle", {{"revision", w.revision},
                            {"previous", w.previous},
                            {"restored", "true"},
                            {"settle_s", std::to_string(w.period.count() / 1000)}});
  s.settle = std::move(w);
}

asio::awaitable<void> Daemon::settleLoop() {
  auto& s = *source_;
  while (!stopping_) {
    co_await sleepFor(std::chrono::seconds(1));
    if (!s.settle || !s.settle->problem.empty() || !spec_) continue;
    const std::string revision = s.settle->revision;
    const std::set<std::string> watched = s.settle->containers;
    std::string problem;
    if (!watched.empty()) {
      docker::LabelFilter mine;
      mine[docker::kLabelManaged] = "true";
      mine[docker::kLabelProject] = spec_->project;
      auto list = co_await docker_.listContainers(mine);
      if (list) {
        for (const auto& c : list.value()) {
          if (!watched.count(c.name)) continue;
          if (c.health() == "unhealthy") {
            problem = "container " + c.name + " is unhealthy (its healthcheck fails): " + c.status;
          } else if (c.state == "restarting") {
            problem = "container " + c.name + " is restarting again and again: " + c.status;
          } else if ((c.state == "exited" || c.state == "dead") &&
                     c.status.rfind("Exited (0)", 0) != 0) {
            problem = "container " + c.name + " stopped: " + c.status;
          }
          if (!problem.empty()) break;
        }
      }
    }
    if (!s.settle || s.settle->revision != revision || !s.settle->problem.empty()) continue;
    if (!problem.empty()) {
      s.settle->problem = problem;
      s.requested = true;  // the source loop rolls back
      if (s.timer) s.timer->cancel();
      continue;
    }
    if (s.settle->applied && std::chrono::steady_clock::now() >= s.settle->until) {
      const auto settled = s.settle->period;
      s.lastGood = revision;
      s.settle.reset();
      persistSettle();
      log::info("spec.settled", {{"revision", revision}});
      (void)store_->appendAudit(
          "spec.settled",
          nlohmann::json{{"revision", revision}, {"settle_s", settled.count() / 1000}}.dump());
    }
  }
}

asio::awaitable<void> Daemon::rollBack() {
  auto& s = *source_;
  const std::string bad = s.settle->revision;
  const std::string good = s.settle->previous;
  const std::string why = s.settle->problem;
  s.settle.reset();
  persistSettle();
  // A pass over `bad` that ends while the good revision is read below is
  // not counted as applying it (specReconciled).
  s.rollingBack = bad;
  const std::string name = source::describeSource(config_.source);
  log::error("spec.failed", {{"revision", bad}, {"reason", why}});

  // The last good revision, read (and verified) at its commit again.
  source::GitRepo* repo = s.repo.get();
  const std::string* goodp = &good;
  const std::string specPath = config_.source.specPath;
  const std::string* specPathp = &specPath;
  const std::string signers = config_.source.allowedSigners;
  const std::string* signersp = &signers;
  const bool require = config_.source.requireSigned;
  auto job = [repo, goodp, specPathp, signersp, require] {
    FetchOutcome out;
    verifyThenLoad(*repo, out, *goodp, *specPathp, *signersp, require);
    return out;
  };
  FetchOutcome out = co_await onPool(job);
  s.rollingBack.clear();  // from here on, no wait: `bad` stays in force or is replaced
  if (!out.read || !out.loaded || !out.loaded->spec) {
    const std::string cannot =
        out.signature && !out.signature->good()
            ? out.signature->reason
            : (out.loaded ? std::string("it no longer loads") : out.loaded.error().message);
    s.rolledBackInfo = "revision " + source::shortRevision(bad) + " failed (" + why +
                       ") but revision " + source::shortRevision(good) +
                       " cannot be re-applied: " + cannot;
    log::error("spec.rollback_failed", {{"revision", bad}, {"to", good}, {"reason", cannot}});
    (void)store_->appendAudit(
        "spec.rollback_failed",
        nlohmann::json{{"revision", bad}, {"to", good}, {"failure", why}, {"reason", cannot}}
            .dump());
    publishStatus();
    co_return;
  }
  spec_ = std::move(out.loaded->spec);
  specInForce_ = good;
  s.signedBy = out.signature ? out.signature->signer + " (" + out.signature->key + ")" : "";
  s.applied.clear();  // recorded applied again once the rollback converged
  s.rolledBack.insert(bad);
  s.rolledBackInfo = "revision " + source::shortRevision(bad) + " rolled back to " +
                     source::shortRevision(good) + " at " + api::formatTime(api::Clock::now()) +
                     ": " + why;
  if (s.latest == bad) {
    s.latestError = "revision " + source::shortRevision(bad) + " was rolled back to " +
                    source::shortRevision(good) + " (" + why +
                    "); it is not applied again: push a newer commit";
  }
  s.rollbacks->inc();
  s.rejected->inc({"rolled_back"});
  log::error("spec.rolled_back", {{"revision", bad}, {"to", good}, {"reason", why}});
  (void)store_->recordSpecRevision(bad, name, state::SpecRevisionStatus::rejected,
                                   std::string(kRolledBackPrefix) + why);
  (void)store_->appendAudit(
      "spec.rolled_back",
      nlohmann::json{{"revision", bad}, {"to", good}, {"reason", why}, {"source", name}}.dump());
  publishStatus();
  scheduler_->triggerAll("rollback to " + source::shortRevision(good));
}

}  // namespace foundationd::daemon
