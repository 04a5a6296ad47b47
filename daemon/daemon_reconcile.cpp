// The daemon's reconcile step and plan: what one scheduler batch does.
#include <boost/asio/this_coro.hpp>

#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/docker/secret_files.hpp"
#include "daemon/buckets_step.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/files_step.hpp"
#include "daemon/log.hpp"
#include "daemon/provided.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

using config::Kind;

bool needsSecrets(const config::ContainerSpec& c) {
  if (!c.secretFiles.empty()) return true;
  for (const auto& [_, m] : c.files) {
    if (m.content.sensitive()) return true;
  }
  for (const auto& [_, v] : c.env) {
    if (v.sensitive()) return true;
  }
  return false;
}

// While locked: the containers that need a secret, and everything that
// (transitively) depends on them, are left alone.
std::set<Key> lockedOut(const config::Spec& spec) {
  auto graph = config::Graph::build(spec);
  std::set<Key> out;
  std::vector<Key> todo;
  for (const auto& [name, c] : spec.containers) {
    if (needsSecrets(c)) todo.push_back({Kind::container, name});
  }
  while (!todo.empty()) {
    Key k = todo.back();
    todo.pop_back();
    if (!out.insert(k).second) continue;
    for (const auto& d : graph.dependents(k)) todo.push_back(d);
  }
  return out;
}

}  // namespace

asio::awaitable<std::set<Key>> Daemon::reconcile(const Batch& batch) {
  const auto started = std::chrono::steady_clock::now();
  // lastReconcile_ keeps the last finished one until this one ends.
  const api::TimePoint startedAt = api::Clock::now();
  reconcileSince_ = startedAt;
  loadSpec();
  if (!spec_) {
    lastReconcile_.start = startedAt;
    lastReconcile_.end = api::Clock::now();
    lastReconcile_.result = "no valid spec";
    lastReconcile_.converged = false;
    reconcileSince_.reset();
    publishStatus();
    co_return std::set<Key>{};
  }
  const config::Spec spec = *spec_;  // this batch works on one revision
  const std::string revision = specInForce_;
  const bool locked = key_.locked();
  log::info("reconcile.start", {{"reason", batch.reason}, {"scope", batch.all ? "all" : std::to_string(batch.keys.size()) + " key(s)"},
                                {"locked", locked ? "true" : "false"}});

  // Per-step figures: foundationd_reconcile_step_duration_seconds{step}, the
  // step names `apply --once` prints.
  auto stepStarted = std::chrono::steady_clock::now();
  auto stepDone = [this, &stepStarted](const char* step) {
    const auto now = std::chrono::steady_clock::now();
    metrics_.recordStep(step, now - stepStarted);
    stepStarted = now;
  };
  co_await runRotations(spec, locked, batch.all);  // POST /v1/rotate (daemon_rotate.cpp)
  docker::Scope scope;
  if (!batch.all) scope.only = batch.keys;
  std::set<Key> blocked;
  if (locked) {
    blocked = lockedOut(spec);
    scope.exclude = blocked;
  } else if (!spec.credentials.empty()) {
    // Named lambdas of plain pointers: GCC 12 destroys a lambda temporary
    // inside a co_await expression twice when it owns a capture.
    state::Store* store = store_.get();
    const state::UnlockedKey* key = &key_;
    const config::Spec* specp = &spec;
    auto generate = [store, key, specp] {
      return credentials::ensureCredentials(*specp, *store, *key, std::chrono::system_clock::now());
    };
    auto generated = co_await onPool(generate);
    if (!generated) {
      log::error("credentials.failed", {{"error", generated.error().message}});
      for (const auto& [name, _] : spec.credentials) {
        setResource({Kind::credential, name}, api::ResourceStatus::failed, generated.error().message);
      }
    } else {
      for (const auto& g : generated.value()) {
        log::info(g.rotated ? "credential.rotated" : "credential.generated",
                  {{"credential", g.credential}, {"field", g.field}, {"version", std::to_string(g.version)}});
      }
      for (const auto& [name, _] : spec.credentials) {
        setResource({Kind::credential, name}, api::ResourceStatus::converged, "");
      }
      co_await alterRotatedRoles(spec, generated.value());  // PostgreSQL before the consumers
      co_await mirrorRotated(spec, generated.value());  // Vault before the consumers
    }
    stepDone("credentials");
  }
  stepStarted = std::chrono::steady_clock::now();
  StoreSecrets secrets(spec, store_.get(), locked ? nullptr : &key_);
  // Provided values not set yet block what needs them (left alone); the
  // runner token's consumers wait for the forge step (a second pass below).
  const auto blocks = blockedByProvided(spec, store_.get());
  const auto tokenWait = waitingForRunnerToken(spec, secrets);
  for (const auto& k : containersOf(blocks)) scope.exclude.insert(k);
  scope.exclude.insert(tokenWait.begin(), tokenWait.end());
  std::set<std::string> waitingNames;
  for (const auto& k : scope.exclude) waitingNames.insert(k.name);
  docker::ApplyOptions options;
  options.restarts = &restarts_;
  options.filesDir = config_.stateDir + "/files";
  // A stateful service's new image: a backup first ([backup]; stateful_guard.hpp).
  const config::Spec* specForBackup = &spec;
  options.beforeStatefulImageChange = [this, specForBackup](const std::string& what) {
    return backupBeforeUpgrade(*specForBackup, what);
  };
  docker::FilesWritten filesWritten;
  if (!spec.files.empty()) {  // those without secrets are written while locked too
    const config::Spec* specp = &spec;
    const StoreSecrets* secretsp = &secrets;
    state::Store* store = store_.get();
    const docker::ApplyOptions* optionsp = &options;
    auto write = [specp, secretsp, store, optionsp] {
      return writeFilesStep(*specp, *secretsp, store, *optionsp);
    };
    auto written = co_await onPool(write);
    if (!written) log::error("files.failed", {{"error", written.error().message}});
    else filesWritten = std::move(written).value();
    for (const auto& name : filesWritten.changed) log::info("file.written", {{"file", name}});
  }
  if (!locked) {
    const config::Spec* specp = &spec;
    const StoreSecrets* secretsp = &secrets;
    const std::string* dirp = &options.secretsDir;
    const std::set<std::string>* skipp = &waitingNames;
    auto write = [specp, secretsp, dirp, skipp] {
      return docker::writeSecretFiles(*specp, *secretsp, *dirp, *skipp);
    };
    auto written = co_await onPool(write);
    if (!written) log::error("secret_files.failed", {{"error", written.error().message}});
  }

  const auto before = resources_;
  docker::ApplyObserver observer;
  observer.finished = [](const docker::Outcome& o) {
    log::write(o.ok ? log::Level::info : log::Level::error, "apply.done",
               {{"resource", o.key.str()}, {"action", docker::toString(o.action)},
                {"ok", o.ok ? "true" : "false"}, {"message", o.message}});
  };
  observer.waiting = [this](const Key& key, const std::string& message) {
    log::info("apply.waiting", {{"resource", key.str()}, {"message", message}});
    setResource(key, api::ResourceStatus::pending, message);
    publishStatus();
  };
  auto r = co_await docker::reconcile(docker_, spec, secrets, options, observer, scope);
  std::set<Key> failed;
  std::string result;
  if (!r) {
    log::error("reconcile.failed", {{"error", r.error().message}});
    result = "docker unreachable";
  } else {
    // Every Docker resource of the spec that this batch covered: converged
    // unless a change says otherwise.
    std::set<Key> covered;
    for (const auto& [n, _] : spec.networks) covered.insert({Kind::network, n});
    for (const auto& [n, _] : spec.volumes) covered.insert({Kind::volume, n});
    for (const auto& [n, _] : spec.containers) covered.insert({Kind::container, n});
    for (const auto& k : covered) {
      if (!batch.all && !batch.keys.count(k)) continue;
      if (auto b = blocks.find(k); b != blocks.end()) {
        log::warn("resource.blocked", {{"resource", k.str()}, {"message", b->second}});
        setResource(k, api::ResourceStatus::blocked, b->second);  // unlocked or not
      } else if (blocked.count(k)) {
        // Not acted on while locked; what is true of it is known all the
        // same (secrets are compared by digest, which needs no passphrase).
        const docker::Change* c = r->excluded.find(k);
        if (c == nullptr || c->action == docker::Action::orphan) {
          setResource(k, api::ResourceStatus::converged,
                      "locked: matches the spec and runs; what needs a secret cannot change "
                      "until unsealed");
        } else {
          setResource(k, api::ResourceStatus::blocked,
                      std::string("locked: to ") + docker::toString(c->action) + " (" + c->reason +
                          ") it needs a secret; unseal (`foundationd unseal` or POST /v1/unseal)");
        }
      } else if (tokenWait.count(k)) {
        setResource(k, api::ResourceStatus::pending, kRunnerTokenPending);
      } else {
        setResource(k, api::ResourceStatus::converged, "");
      }
    }
    for (const auto& o : r->report.outcomes) {
      if (!o.ok) {
        failed.insert(o.key);
        setResource(o.key, o.message.rfind("blocked", 0) == 0 ? api::ResourceStatus::blocked
                                                              : api::ResourceStatus::failed,
                    o.message);
      } else {
        auto prev = before.find(o.key);
        if (prev != before.end() && prev->second.status == api::ResourceStatus::converged) {
          metrics_.driftRepairs().inc({config::toString(o.key.kind)});
        }
        metrics_.changes().inc({config::toString(o.key.kind)});  // created, recreated, started, removed
      }
    }
    for (const auto& c : r->remaining.changes) {
      if (c.action == docker::Action::orphan) continue;
      if (!failed.count(c.key) && covered.count(c.key)) {
        setResource(c.key, c.action == docker::Action::conflict ? api::ResourceStatus::failed
                                                                : api::ResourceStatus::pending,
                    c.reason);
        if (c.action == docker::Action::conflict) failed.insert(c.key);
      }
    }
    // Services in a crash loop: failed (exit code, last output) until their
    // backoff lets them start again.
    for (const auto& h : r->held) {
      log::warn("container.crash_loop", {{"resource", h.key.str()}, {"message", h.message}});
      setResource(h.key, api::ResourceStatus::failed, h.message);
      scheduler_->triggerAfter(h.key, h.retryIn, "restart backoff");
    }
    result = r->converged ? "converged" : "not converged";
    if (!spec.files.empty()) {  // consumers that follow a file without being recreated
      // Named arguments: GCC 12 mishandles temporaries inside a co_await expression.
      const std::set<std::string> fresh = freshContainers(r->report);
      auto followed = co_await followFiles(docker_, spec, secrets, store_.get(), options, fresh,
                                           filesWritten);
      logStepOutcomes("file.followed", followed);
      if (!applyStepReport(followed) && result == "converged") result = "not converged";
    }
  }

  stepDone("docker");

  // The service steps, in order: vault -> buckets -> postgres -> forgejo.
  // Each: `stepsOk = applyStepReport(co_await reconcileX(spec)) && stepsOk;`
  // A failure of what needs an unset provided value is "blocked" (markBlocked);
  // each step's figure is taken when the spec has it.
  bool stepsOk = true;
  StepReport vaultReport = co_await reconcileVault(spec);
  markBlocked(vaultReport, blocks);
  stepsOk = applyStepReport(vaultReport) && stepsOk;
  if (spec.vault) stepDone("vault");
  stepStarted = std::chrono::steady_clock::now();
  StepReport bucketsReport = co_await reconcileBuckets(spec, batch);
  markBlocked(bucketsReport, blocks);
  stepsOk = applyStepReport(bucketsReport) && stepsOk;
  if (!spec.buckets.empty()) stepDone("buckets");
  stepStarted = std::chrono::steady_clock::now();
  StepReport postgresReport = co_await reconcilePostgres(spec, batch);
  markBlocked(postgresReport, blocks);
  stepsOk = applyStepReport(postgresReport) && stepsOk;
  if (!spec.postgres.empty()) stepDone("postgres");
  stepStarted = std::chrono::steady_clock::now();
  StepReport forgejoReport = co_await reconcileForgejo(spec, batch);
  markBlocked(forgejoReport, blocks);
  stepsOk = applyStepReport(forgejoReport) && stepsOk;
  if (spec.forgejo) stepDone("forgejo");
  if (!locked && r) {
    // Named arguments: GCC 12 mishandles temporaries inside a co_await expression.
    const std::set<Key> skipKeys = containersOf(blocks);
    const bool tokenOk =
        co_await runnerTokenPass(spec, batch, secrets, options, tokenWait, skipKeys, failed);
    if (!tokenOk && result == "converged") result = "not converged";
  }

  if (result == "converged" && (!stepsOk || !blocked.empty() || !blocks.empty())) {
    // Locked, or waiting for `secret set`, with nothing failed: what needs no
    // secret converged and the rest waits. That is "blocked", not "failed".
    bool failedSome = false;
    for (const auto& [_, res] : resources_) failedSome |= res.status == api::ResourceStatus::failed;
    result = (locked || !blocks.empty()) && !failedSome ? "blocked" : "not converged";
  }
  lastReconcile_.start = startedAt;
  lastReconcile_.end = api::Clock::now();
  lastReconcile_.result = result;
  lastReconcile_.converged = result == "converged";
  reconcileSince_.reset();
  metrics_.recordReconcile(result == "converged" || result == "blocked" ? result : "failed",
                           std::chrono::steady_clock::now() - started);
  log::info("reconcile.done", {{"result", result}, {"failed", std::to_string(failed.size())}});
  specReconciled(revision, result == "converged");
  finishRotations(result);
  publishStatus();
  co_return failed;
}

asio::awaitable<bool> Daemon::runnerTokenPass(const config::Spec& spec, const Batch& batch,
                                              const StoreSecrets& secrets,
                                              const docker::ApplyOptions& options,
                                              const std::set<Key>& waiting,
                                              const std::set<Key>& skip, std::set<Key>& failed) {
  // The runner token's consumers, now that the forge step has run: created
  // with the token it produced, or recreated when it issued a new one.
  docker::Scope second;
  second.only = runnerTokenConsumers(spec);
  if (second.only->empty()) co_return true;
  second.only->insert(waiting.begin(), waiting.end());
  second.exclude = skip;
  if (!batch.all) {
    bool touched = false;
    for (const auto& k : batch.keys) touched |= second.only->count(k) || k.kind == Kind::forgejo;
    if (!touched) co_return true;
  }
  if (!secrets.digest(config::CredentialRef::forgejoRunnerToken())) co_return waiting.empty();
  std::set<std::string> skipNames;
  for (const auto& k : skip) skipNames.insert(k.name);
  const config::Spec* specp = &spec;
  const StoreSecrets* secretsp = &secrets;
  const docker::ApplyOptions* optionsp = &options;
  const std::set<std::string>* skipp = &skipNames;
  state::Store* store = store_.get();
  auto write = [specp, secretsp, optionsp, skipp, store]() -> Status {
    if (auto st = docker::writeSecretFiles(*specp, *secretsp, optionsp->secretsDir, *skipp); !st) {
      return st;
    }
    if (specp->files.empty()) return Status::success();
    auto files = writeFilesStep(*specp, *secretsp, store, *optionsp);
    if (!files) return files.error();
    return Status::success();
  };
  if (auto st = co_await onPool(write); !st) {
    log::error("runner_token.files_failed", {{"error", st.error().message}});
  }
  docker::ApplyObserver observer;
  observer.finished = [](const docker::Outcome& o) {
    log::write(o.ok ? log::Level::info : log::Level::error, "apply.done",
               {{"resource", o.key.str()}, {"action", docker::toString(o.action)},
                {"ok", o.ok ? "true" : "false"}, {"message", o.message}});
  };
  auto r = co_await docker::reconcile(docker_, spec, secrets, options, observer, second);
  if (!r) {
    log::error("reconcile.failed", {{"error", r.error().message}});
    co_return false;
  }
  for (const auto& k : *second.only) {
    if (!second.exclude.count(k)) setResource(k, api::ResourceStatus::converged, "");
  }
  for (const auto& o : r->report.outcomes) {
    if (o.ok) continue;
    failed.insert(o.key);
    setResource(o.key, api::ResourceStatus::failed, o.message);
  }
  for (const auto& c : r->remaining.changes) {
    if (c.action == docker::Action::orphan || failed.count(c.key)) continue;
    setResource(c.key, api::ResourceStatus::pending, c.reason);
  }
  co_return r->converged;
}

void logStepOutcomes(const char* event, const StepReport& report) {
  for (const auto& o : report.outcomes) {
    if (!o.changed && o.ok) continue;
    log::write(o.ok ? log::Level::info : log::Level::warning, event,
               {{"resource", o.key.str()},
                {"ok", o.ok ? "true" : "false"},
                {"drift", o.drift ? "true" : "false"},
                {"message", o.message}});
  }
}

bool Daemon::applyStepReport(const StepReport& report) {
  for (const auto& o : report.outcomes) {
    if (o.blocked) {
      setResource(o.key, api::ResourceStatus::blocked, o.message);
    } else if (!o.ok) {
      setResource(o.key, api::ResourceStatus::failed, o.message);
    } else {
      setResource(o.key, api::ResourceStatus::converged, "");
      if (o.changed && o.drift) metrics_.driftRepairs().inc({config::toString(o.key.kind)});
      if (o.changed) metrics_.changes().inc({config::toString(o.key.kind)});
    }
  }
  return report.ok();
}

api::Task<Result<nlohmann::json>> Daemon::plan() {
  loadSpec();
  if (!spec_) co_return Error::make(ErrorCode::invalid_argument, "no valid spec: " + specError_);
  const config::Spec spec = *spec_;
  auto p = co_await planSpec(spec);
  if (!p) co_return p.error();
  co_return p->json();
}

// GET /v1/plan and the plans posted on pull requests (daemon_pr.cpp): the
// desired `spec` against the live host, nothing changed.
api::Task<Result<SpecPlan>> Daemon::planSpec(const config::Spec& spec) {
  auto observed = co_await docker::observe(docker_, spec.project);
  if (!observed) co_return observed.error();
  StoreSecrets secrets(spec, store_.get(), nullptr);
  SpecPlan out;
  if (!spec.credentials.empty()) {  // the same document as `plan --json`
    auto p = credentials::planCredentials(spec, *store_, std::chrono::system_clock::now());
    if (!p) co_return p.error();
    out.credentials = credentialChanges(p.value());
  }
  out.docker = docker::plan(spec, observed.value(), secrets);
  if (!spec.files.empty()) out.files = planFiles(spec, secrets, store_.get(), config_.stateDir);
  if (!spec.s3.empty()) {  // buckets: a dry run against each S3 server (needs the keys)
    const config::Spec* specp = &spec;
    state::Store* store = store_.get();
    const state::UnlockedKey* key = key_.locked() ? nullptr : &key_;
    auto dry = [specp, store, key] { return planBucketsJson(*specp, store, key); };
    out.buckets = co_await onPool(dry);
  }
  co_return out;
}

nlohmann::json SpecPlan::json() const {
  auto doc = docker::renderPlanJson(docker, credentials);
  if (files) doc["files"] = *files;
  if (buckets) doc["buckets"] = *buckets;
  return doc;
}

std::string SpecPlan::text() const {
  std::string out;
  if (files) out += renderFilesPlanText(*files);
  out += docker::renderPlanText(docker, {}, credentials);
  if (buckets) out += "Buckets (dry run): " + buckets->dump() + "\n";
  return out;
}

bool SpecPlan::hasChanges() const {
  return docker::hasChanges(docker, credentials) || docker.hasConflicts() ||
         (files && filesPlanHasChanges(*files));
}

}  // namespace foundationd::daemon
