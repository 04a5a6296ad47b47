// Where the daemon's spec comes from (docs/source.md): the git source's
// fetch loop (webhook-triggered, polled as a fallback, retried with backoff),
// the webhook's decisions, the last good spec, and the revision history.
//
// Thread: everything here runs on the io thread; git (child processes) and
// SQLite run on the pool. One fetch at a time: the loop is the only caller
// of the GitRepo, so a burst of deliveries coalesces into the fetches the
// loop gets round to (one per wake-up, of the branch's newest commit).
#include <algorithm>
#include <deque>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/async.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/source/git_repo.hpp"
#include "controllers/source/spec_source.hpp"
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

constexpr std::size_t kDeliveries = 1024;

std::chrono::milliseconds fetchBackoff(int failures) {
  // 1 s, 2 s, 4 s, ... capped at 5 minutes.
  std::int64_t ms = 1000;
  for (int i = 1; i < failures && ms < 300000; ++i) ms *= 2;
  return std::chrono::milliseconds(std::min<std::int64_t>(ms, 300000));
}

std::string bounded(const std::string& s, std::size_t max) {
  return s.size() <= max ? s : s.substr(0, max) + "\n... (truncated)";
}

}  // namespace

void Daemon::startSource() {
  source_ = std::make_shared<SourceState>();
  if (config_.source.kind != "git") return;
  auto& s = *source_;
  s.timer = std::make_unique<asio::steady_timer>(io_);
  s.repoOptions = source::gitOptionsFor(config_);
  s.repo = std::make_unique<source::GitRepo>(s.repoOptions);
  s.nextDue = std::chrono::steady_clock::now();
  s.rejected = &metrics_.registry().counter(
      "foundationd_spec_rejected_total",
      "New spec revisions not applied, by reason (invalid, unsigned, unknown_key, "
      "bad_signature, unverifiable, rolled_back).",
      {"reason"});
  for (const char* r : {"invalid", "unsigned", "unknown_key", "bad_signature", "unverifiable",
                        "rolled_back"})
    s.rejected->inc({r}, 0);
  s.rollbacks = &metrics_.registry().counter(
      "foundationd_spec_rollbacks_total",
      "Spec revisions that failed within [source] settle and were rolled back.");
  s.rollbacks->inc({}, 0);

  // The last good spec survives a restart: the newest applied revision of
  // this source, read from the cache (no network, works while locked).
  const std::string name = source::describeSource(config_.source);
  auto revisions = store_->specRevisions(200);
  if (revisions) {
    for (const auto& r : revisions.value()) {
      if (r.source == name && r.status == state::SpecRevisionStatus::rejected &&
          r.errors.rfind(kRolledBackPrefix, 0) == 0)
        s.rolledBack.insert(r.revision);
    }
    for (const auto& r : revisions.value()) {
      if (r.source != name || r.status != state::SpecRevisionStatus::applied) continue;
      if (!s.repo->hasCommit(r.revision)) break;
      // Trusted when it was applied; checked again against today's trust list.
      FetchOutcome out;
      verifyThenLoad(*s.repo, out, r.revision, config_.source.specPath,
                     config_.source.allowedSigners, config_.source.requireSigned);
      if (out.signature && !out.signature->good()) {
        log::error("spec.untrusted", {{"revision", r.revision},
                                      {"reason", out.signature->reason},
                                      {"note", "the cached revision is not restored"}});
        break;
      }
      auto& loaded = out.loaded;
      if (loaded && loaded->spec) {
        if (out.signature) s.signedBy = out.signature->signer + " (" + out.signature->key + ")";
        s.trustedWith = config_.source.allowedSigners;
        spec_ = std::move(loaded->spec);
        specInForce_ = r.revision;
        s.applied = r.revision;
        s.latest = r.revision;  // an unchanged branch needs no reload after the first fetch
        s.specPath = config_.source.specPath;
        s.lastGood = r.revision;
        log::info("spec.restored", {{"revision", r.revision}, {"source", name}});
        restoreSettle();
      }
      break;
    }
  }
  if (!spec_)
    log::info("spec.waiting", {{"source", name}, {"note", "no cached revision: first fetch"}});

  startPullRequests();
  asio::co_spawn(io_, sourceLoop(), [](std::exception_ptr e) {
    if (!e) return;
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    log::error("source.crashed", {{"error", what}});
  });
  asio::co_spawn(io_, settleLoop(), [](std::exception_ptr e) {
    if (e) log::error("settle.crashed");
  });
}

asio::awaitable<void> Daemon::sourceLoop() {
  auto& s = *source_;
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    const bool unlockedNow = s.blockedByLock && !key_.locked();
    if (!s.requested && !unlockedNow && now < s.nextDue && !pullRequestsQueued()) {
      // Sleep in short slices: a stop must not wait for the poll interval.
      s.timer->expires_after(
          std::min<std::chrono::steady_clock::duration>(s.nextDue - now, std::chrono::seconds(1)));
      boost::system::error_code ec;
      co_await s.timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (config_.source.kind != "git") {  // a reload switched to a file source
      s.nextDue = std::chrono::steady_clock::time_point::max();
      s.requested = false;
      continue;
    }
    // A rollback first: the loop is the only user of the GitRepo.
    if (s.settle && !s.settle->problem.empty()) {
      s.requested = false;
      co_await rollBack();
      continue;
    }
    // Then pull requests (a plan each, nothing applied); a fetch of the
    // branch asked for meanwhile still follows.
    if (pullRequestsQueued()) {
      co_await planPullRequest();
      continue;
    }
    s.requested = false;
    co_await fetchSource();
  }
}

asio::awaitable<void> Daemon::fetchSource() {
  auto& s = *source_;
  const auto poll =
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.source.pollInterval);
  // A reload may have changed the url or branch: start a new cache.
  auto options = source::gitOptionsFor(config_);
  if (options.url != s.repoOptions.url || options.branch != s.repoOptions.branch) {
    s.repoOptions = options;
    s.repo = std::make_unique<source::GitRepo>(options);
    s.latest.clear();
  }
  if (config_.source.specPath != s.specPath) {  // reload: read the same commit again
    s.specPath = config_.source.specPath;
    s.latest.clear();
  }

  // The token, when one is configured, lives in the sealed state.
  std::optional<state::SecretBytes> token;
  if (config_.source.token) {
    if (key_.locked()) {
      s.blockedByLock = true;
      s.fetchError = "locked: the git token " + config_.source.token->name + "." +
                     config_.source.token->field +
                     " is in the sealed state; fetching resumes after POST /v1/unseal";
      s.nextDue = std::chrono::steady_clock::now() + poll;
      publishStatus();
      co_return;
    }
    state::Store* store = store_.get();
    const state::UnlockedKey* key = &key_;
    const config::CredentialRef ref = *config_.source.token;
    const config::CredentialRef* refp = &ref;
    auto read = [store, key, refp] {
      return store->currentSecret(*key, credentials::kKind, refp->name, refp->field);
    };
    auto secret = co_await onPool(read);
    if (!secret) {
      s.blockedByLock = false;
      s.fetchError = "cannot read the git token credential " + ref.name + "." + ref.field + ": " +
                     secret.error().message;
      ++s.failures;
      s.nextDue = std::chrono::steady_clock::now() + fetchBackoff(s.failures);
      publishStatus();
      co_return;
    }
    token.emplace(std::move(secret->value));
  }
  s.blockedByLock = false;

  source::GitRepo* repo = s.repo.get();
  const state::SecretBytes* tokenp = token ? &*token : nullptr;
  const std::string latest = s.latest;
  const std::string* latestp = &latest;
  const std::string specPath = config_.source.specPath;
  const std::string* specPathp = &specPath;
  const std::string signers = config_.source.allowedSigners;
  const std::string* signersp = &signers;
  const bool require = config_.source.requireSigned;
  const std::set<std::string>* skipp = &s.rolledBack;
  auto job = [repo, tokenp, latestp, specPathp, signersp, require, skipp] {
    FetchOutcome out;
    out.head = repo->fetch(tokenp);
    if (out.head && out.head.value() != *latestp) {
      out.loadedNew = true;
      if (skipp->count(out.head.value())) {
        out.skipped = true;
        return out;
      }
      verifyThenLoad(*repo, out, out.head.value(), *specPathp, *signersp, require);
    }
    return out;
  };
  FetchOutcome out = co_await onPool(job);
  if (token) token->wipe();
  s.lastFetch = api::Clock::now();

  const std::string name = source::describeSource(config_.source);
  Result<std::string> head = out.head;
  if (head && out.read && !out.loaded)
    head = out.loaded.error();  // reading at the commit failed
  if (!head) {
    metrics_.specFetches().inc({"failed"});
    ++s.failures;
    const auto retry = fetchBackoff(s.failures);
    const bool changed = s.fetchError != head.error().message;
    s.fetchError = head.error().message;
    s.nextDue = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(retry, poll);
    log::warn("source.fetch_failed", {{"error", s.fetchError},
                                      {"failures", std::to_string(s.failures)},
                                      {"retry_in_ms", std::to_string(retry.count())}});
    if (changed) {
      auto fields = nlohmann::json{{"source", name}, {"error", s.fetchError}}.dump();
      state::Store* store = store_.get();
      const std::string* fieldsp = &fields;
      auto audit = [store, fieldsp] { return store->appendAudit("spec.fetch_failed", *fieldsp); };
      (void)co_await onPool(audit);
    }
    publishStatus();
    co_return;
  }
  metrics_.specFetches().inc({"ok"});
  metrics_.specLastFetch().set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (s.failures > 0) {
    log::info("source.fetch_recovered", {{"after_failures", std::to_string(s.failures)}});
    auto fields = nlohmann::json{{"source", name}, {"after_failures", s.failures}}.dump();
    state::Store* store = store_.get();
    const std::string* fieldsp = &fields;
    auto audit = [store, fieldsp] { return store->appendAudit("spec.fetch_recovered", *fieldsp); };
    (void)co_await onPool(audit);
  }
  s.failures = 0;
  s.fetchError.clear();
  s.nextDue = std::chrono::steady_clock::now() + poll;
  const std::string commit = head.value();
  // Deliveries that arrived while this fetch ran are served by it when it
  // got their commit; one announcing another commit asks again.
  if (s.wanted == commit) {
    s.wanted.clear();
    s.requested = false;
  }
  log::info("source.fetched", {{"revision", commit}, {"new", out.loadedNew ? "true" : "false"}});
  if (!out.loadedNew) {
    publishStatus();
    co_return;
  }

  s.latest = commit;
  s.trustedWith = signers;
  if (out.skipped) {
    s.latestError = "revision " + source::shortRevision(commit) +
                    " was rolled back and is not applied again; push a newer commit (" +
                    (specInForce_.empty() ? std::string("no revision is in force")
                                          : "revision " + source::shortRevision(specInForce_) +
                                                " stays in force") +
                    ")";
    log::warn("spec.skipped", {{"revision", commit}, {"reason", "rolled back before"}});
    publishStatus();
    co_return;
  }
  if (out.signature && !out.signature->good()) {
    co_await refuseUntrusted(commit, *out.signature);
    co_return;
  }
  config::LoadResult loaded = std::move(out.loaded).value();
  state::SpecRevisionStatus verdict = state::SpecRevisionStatus::seen;
  std::string errors;
  specWarnings_ = loaded.diagnostics.formatAll(config::Severity::warning);
  if (!loaded.spec) {
    verdict = state::SpecRevisionStatus::rejected;
    s.rejected->inc({"invalid"});
    errors = loaded.diagnostics.formatAll(config::Severity::error);
    s.latestError = "revision " + source::shortRevision(commit) + " rejected (" +
                    std::to_string(loaded.diagnostics.errorCount()) + " error(s)); " +
                    (specInForce_.empty()
                         ? std::string("no revision is in force")
                         : "revision " + source::shortRevision(specInForce_) + " stays in force") +
                    ":\n" + errors;
    log::error("spec.rejected",
               {{"revision", commit}, {"errors", std::to_string(loaded.diagnostics.errorCount())}});
    for (const auto& d : loaded.diagnostics.sorted()) {
      log::write(d.severity == config::Severity::warning ? log::Level::warning : log::Level::error, "spec.diagnostic",
                 {{"revision", source::shortRevision(commit)}, {"at", d.format()}});
    }
  } else {
    s.latestError.clear();
    startSettle(commit, *loaded.spec);
    spec_ = std::move(loaded.spec);
    specInForce_ = commit;
    s.signedBy = out.signature ? out.signature->signer + " (" + out.signature->key + ")" : "";
    log::info("spec.loaded",
              {{"revision", commit}, {"containers", std::to_string(spec_->containers.size())}});
  }
  auto fields = nlohmann::json{{"revision", commit}, {"source", name}};
  if (!errors.empty()) fields["errors"] = bounded(errors, 8000);
  if (out.signature) {
    fields["signer"] = out.signature->signer;
    fields["key"] = out.signature->key;
  }
  const std::string fieldsText = fields.dump();
  state::Store* store = store_.get();
  const std::string* namep = &name;
  const std::string* commitp = &commit;
  const std::string* errorsp = &errors;
  const std::string* fieldsp = &fieldsText;
  // Seen again (a reload): an applied revision stays applied in the history.
  const bool downgrade = verdict == state::SpecRevisionStatus::seen && commit == s.applied;
  auto record = [store, namep, commitp, errorsp, fieldsp, verdict, downgrade] {
    if (!downgrade) (void)store->recordSpecRevision(*commitp, *namep, verdict, *errorsp);
    return store->appendAudit(
        verdict == state::SpecRevisionStatus::rejected ? "spec.rejected" : "spec.seen", *fieldsp);
  };
  (void)co_await onPool(record);
  publishStatus();
  if (verdict != state::SpecRevisionStatus::rejected) {
    scheduler_->triggerAll("spec revision " + source::shortRevision(commit));
  }
}

asio::awaitable<void> Daemon::refuseUntrusted(const std::string& commit,
                                              const source::GitRepo::Signature& sig) {
  auto& s = *source_;
  const std::string name = source::describeSource(config_.source);
  const std::string reason = std::string(source::verdictName(sig.verdict)) + ": " + sig.reason;
  s.latestError = "revision " + source::shortRevision(commit) +
                  " refused: not signed by a trusted key: " + sig.reason + "; " +
                  (specInForce_.empty()
                       ? std::string("no revision is in force")
                       : "revision " + source::shortRevision(specInForce_) + " stays in force");
  s.rejected->inc({source::verdictName(sig.verdict)});
  log::error("spec.untrusted", {{"revision", commit},
                                {"verdict", source::verdictName(sig.verdict)},
                                {"key", sig.key},
                                {"reason", sig.reason}});
  const std::string fields = nlohmann::json{{"revision", commit},
                                            {"source", name},
                                            {"verdict", source::verdictName(sig.verdict)},
                                            {"key", sig.key},
                                            {"reason", sig.reason}}
                                 .dump();
  state::Store* store = store_.get();
  const std::string* namep = &name;
  const std::string* commitp = &commit;
  const std::string* reasonp = &reason;
  const std::string* fieldsp = &fields;
  auto record = [store, namep, commitp, reasonp, fieldsp] {
    (void)store->recordSpecRevision(*commitp, *namep, state::SpecRevisionStatus::rejected,
                                    "untrusted: " + *reasonp);
    return store->appendAudit("spec.untrusted", *fieldsp);
  };
  (void)co_await onPool(record);
  publishStatus();
}

void Daemon::sourceReloaded() {
  if (!source_ || config_.source.kind != "git" || !source_->timer) return;
  auto& s = *source_;
  // A rotated trust list (or a new policy) is applied to the branch's head
  // at once: the next fetch verifies and reads it again.
  if (config_.source.allowedSigners != s.trustedWith || config_.source.requireSigned ||
      !s.signedBy.empty())
    s.latest.clear();
  s.requested = true;
  s.timer->cancel();
}

api::SpecState Daemon::specState() const {
  api::SpecState st;
  st.source = source::describeSource(config_.source);
  if (config_.source.kind != "git" || !source_) {
    st.revision = specRevision_;
    st.lastError = specError_;
    st.appliedRevision = source_ ? source_->applied : "";
    return st;
  }
  const auto& s = *source_;
  st.revision = s.latest.empty() ? specInForce_ : s.latest;
  st.appliedRevision = s.applied;
  st.lastError = s.latestError;
  if (!spec_ && st.lastError.empty() && s.latest.empty()) {
    st.lastError = "no spec yet: waiting for the first fetch of the git source";
  }
  st.lastFetch = s.lastFetch;
  st.fetchError = s.fetchError;
  st.inForce = specInForce_;
  st.signedBy = s.signedBy;
  st.rolledBack = s.rolledBackInfo;
  return st;
}

source::GitRepo* Daemon::sourceRepo() { return source_ ? source_->repo.get() : nullptr; }

api::Task<Result<state::SecretBytes>> Daemon::webhookSecret() {
  if (config_.source.kind != "git" || !config_.source.webhookSecret) {
    co_return Error::make(ErrorCode::not_found,
                          "no webhook is configured: set [source] kind = \"git\" and "
                          "webhook_secret = \"${credentials.NAME.FIELD}\" in the daemon config");
  }
  if (key_.locked()) {
    co_return Error::make(ErrorCode::unavailable, "locked: the webhook secret is sealed");
  }
  state::Store* store = store_.get();
  const state::UnlockedKey* key = &key_;
  const config::CredentialRef ref = *config_.source.webhookSecret;
  const config::CredentialRef* refp = &ref;
  auto read = [store, key, refp] {
    return store->currentSecret(*key, credentials::kKind, refp->name, refp->field);
  };
  auto secret = co_await onPool(read);
  if (!secret) {
    if (secret.error().code == ErrorCode::not_found) {
      co_return Error::make(ErrorCode::not_found,
                            "the webhook secret credential " + ref.name + "." + ref.field +
                                " has not been generated yet (declare it in the spec's "
                                "[credentials] and let a reconcile run)");
    }
    co_return Error::make(secret.error().code, "cannot read the webhook secret credential " +
                                                   ref.name + "." + ref.field);
  }
  co_return std::move(secret->value);
}

api::Task<api::WebhookResult> Daemon::webhook(api::WebhookDelivery delivery) {
  api::WebhookResult result;
  auto& s = *source_;
  std::string event = "webhook.ignored";
  nlohmann::json fields{{"delivery", delivery.delivery}, {"event", delivery.event}};
  if (!delivery.delivery.empty() && s.deliveries.count(delivery.delivery)) {
    result.outcome = api::WebhookOutcome::duplicate;
    result.message = "delivery " + delivery.delivery + " was processed already";
    event = "webhook.duplicate";
  } else {
    if (!delivery.delivery.empty()) {
      s.deliveries.insert(delivery.delivery);
      s.deliveryOrder.push_back(delivery.delivery);
      if (s.deliveryOrder.size() > kDeliveries) {
        s.deliveries.erase(s.deliveryOrder.front());
        s.deliveryOrder.pop_front();
      }
    }
    const std::string tracked = "refs/heads/" + config_.source.branch;
    if (delivery.pullRequest) {
      const auto& pr = *delivery.pullRequest;
      fields["pull_request"] = pr.number;
      fields["action"] = pr.action;
      fields["commit"] = pr.headSha;
      result.outcome = queuePullRequest(pr, result.message);
      if (result.outcome == api::WebhookOutcome::accepted) {
        event = "webhook.accepted";
        if (s.timer) s.timer->cancel();
      }
    } else if (!delivery.push) {
      result.message = "event \"" + delivery.event + "\" is not a push";
    } else if (delivery.push->ref != tracked) {
      fields["ref"] = delivery.push->ref;
      result.message = "push to " + delivery.push->ref + ", not the tracked " + tracked;
    } else {
      fields["ref"] = delivery.push->ref;
      fields["commit"] = delivery.push->after;
      if (!delivery.push->repository.empty()) fields["repository"] = delivery.push->repository;
      result.outcome = api::WebhookOutcome::accepted;
      event = "webhook.accepted";
      if (delivery.push->after == s.latest && s.fetchError.empty()) {
        result.message =
            "commit " + source::shortRevision(delivery.push->after) + " is already fetched";
      } else {
        s.wanted = delivery.push->after;
        s.requested = true;
        if (s.timer) s.timer->cancel();
        result.message = "fetching " + source::shortRevision(delivery.push->after);
      }
    }
  }
  fields["result"] = api::webhookOutcomeName(result.outcome);
  log::info(
      event,
      {{"delivery", delivery.delivery}, {"event", delivery.event}, {"reason", result.message}});
  const std::string text = fields.dump();
  state::Store* store = store_.get();
  const std::string* eventp = &event;
  const std::string* textp = &text;
  auto audit = [store, eventp, textp] { return store->appendAudit(*eventp, *textp); };
  (void)co_await onPool(audit);
  co_return result;
}

void Daemon::webhookRejected(const std::string& why) {
  log::warn("webhook.rejected", {{"reason", why}});
  if (!source_) return;
  auto& s = *source_;
  // A flood of forged deliveries must not flood the audit log: one entry
  // per 10 s, with the number suppressed since the last.
  const auto now = std::chrono::steady_clock::now();
  if (now - s.lastRejectAudit < std::chrono::seconds(10)) {
    ++s.rejectsSuppressed;
    return;
  }
  s.lastRejectAudit = now;
  (void)store_->appendAudit(
      "webhook.rejected",
      nlohmann::json{{"reason", why}, {"suppressed_since_last", s.rejectsSuppressed}}.dump());
  s.rejectsSuppressed = 0;
}

}  // namespace foundationd::daemon
