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
#include "daemon/pipeline.hpp"
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

// The daemon's side of the converge pipeline (daemon/pipeline.hpp): blocking
// work on the pool, each step's controller as the daemon runs it (scoped to
// the batch), outcomes onto resource status, metrics and the log.
class Daemon::ConvergeExec final : public PipelineExecutor {
 public:
  ConvergeExec(Daemon& d, const Batch& batch, const std::set<Key>& lockedOut)
      : d_(d), batch_(batch), lockedOut_(lockedOut), before_(d.resources_) {}

  std::set<Key> failed;     // what the scheduler retries
  bool dockerOk = true;     // every Docker pass answered and converged
  bool dockerAnswered = true;
  std::map<Key, std::string> blocks;  // waiting for a provided value

  asio::awaitable<void> offload(const std::function<void()>& work) override {
    const std::function<void()>* w = &work;
    auto run = [w] {
      (*w)();
      return true;
    };
    (void)co_await d_.onPool(run);
  }

  void credentialsDone(const config::Spec& spec,
                       const Result<std::vector<credentials::Generated>>& generated) override {
    if (!generated) {
      log::error("credentials.failed", {{"error", generated.error().message}});
      for (const auto& [name, _] : spec.credentials) {
        d_.setResource({Kind::credential, name}, api::ResourceStatus::failed,
                       generated.error().message);
      }
      return;
    }
    for (const auto& g : generated.value()) {
      log::info(g.rotated ? "credential.rotated" : "credential.generated",
                {{"credential", g.credential}, {"field", g.field}, {"version", std::to_string(g.version)}});
    }
    for (const auto& [name, _] : spec.credentials) {
      d_.setResource({Kind::credential, name}, api::ResourceStatus::converged, "");
    }
  }

  asio::awaitable<StepReport> rotated(
      const config::Spec& spec, const std::vector<credentials::Generated>& generated) override {
    co_await d_.alterRotatedRoles(spec, generated);  // PostgreSQL before the consumers
    co_await d_.mirrorRotated(spec, generated);      // Vault before the consumers
    co_return StepReport{};
  }

  docker::ApplyObserver dockerObserver() override {
    docker::ApplyObserver observer;
    observer.finished = [](const docker::Outcome& o) {
      log::write(o.ok ? log::Level::info : log::Level::error, "apply.done",
                 {{"resource", o.key.str()}, {"action", docker::toString(o.action)},
                  {"ok", o.ok ? "true" : "false"}, {"message", o.message}});
    };
    Daemon* d = &d_;
    observer.waiting = [d](const Key& key, const std::string& message) {
      log::info("apply.waiting", {{"resource", key.str()}, {"message", message}});
      d->setResource(key, api::ResourceStatus::pending, message);
      d->publishStatus();
    };
    return observer;
  }

  void dockerPass(const config::Spec& spec, const docker::SecretResolver&,
                  const docker::ReconcileResult& r, const docker::Scope& scope, bool first,
                  const std::set<Key>& deferred) override {
    dockerOk = dockerOk && r.converged;
    if (first) {
      // Every Docker resource of the spec that this batch covered: converged
      // unless a change says otherwise.
      std::set<Key> covered;
      for (const auto& [n, _] : spec.networks) covered.insert({Kind::network, n});
      for (const auto& [n, _] : spec.volumes) covered.insert({Kind::volume, n});
      for (const auto& [n, _] : spec.containers) covered.insert({Kind::container, n});
      for (const auto& k : covered) {
        if (!batch_.all && !batch_.keys.count(k)) continue;
        if (auto b = blocks.find(k); b != blocks.end()) {
          log::warn("resource.blocked", {{"resource", k.str()}, {"message", b->second}});
          d_.setResource(k, api::ResourceStatus::blocked, b->second);  // unlocked or not
        } else if (lockedOut_.count(k)) {
          // Not acted on while locked; what is true of it is known all the
          // same (secrets are compared by digest, which needs no passphrase).
          const docker::Change* c = r.excluded.find(k);
          if (c == nullptr || c->action == docker::Action::orphan) {
            d_.setResource(k, api::ResourceStatus::converged,
                           "locked: matches the spec and runs; what needs a secret cannot change "
                           "until unsealed");
          } else {
            d_.setResource(k, api::ResourceStatus::blocked,
                           std::string("locked: to ") + docker::toString(c->action) + " (" +
                               c->reason +
                               ") it needs a secret; unseal (`foundationd unseal` or POST /v1/unseal)");
          }
        } else if (deferred.count(k)) {
          d_.setResource(k, api::ResourceStatus::pending,
                         "waits for the service step(s) it uses (a role, a bucket, the runner "
                         "token) in this converge");
        } else {
          d_.setResource(k, api::ResourceStatus::converged, "");
        }
      }
    } else {
      for (const auto& k : *scope.only) {
        if (!scope.exclude.count(k)) d_.setResource(k, api::ResourceStatus::converged, "");
      }
    }
    for (const auto& o : r.report.outcomes) {
      if (!o.ok) {
        failed.insert(o.key);
        d_.setResource(o.key, o.message.rfind("blocked", 0) == 0 ? api::ResourceStatus::blocked
                                                                 : api::ResourceStatus::failed,
                       o.message);
      } else {
        auto prev = before_.find(o.key);
        if (prev != before_.end() && prev->second.status == api::ResourceStatus::converged) {
          d_.metrics_.driftRepairs().inc({config::toString(o.key.kind)});
        }
        d_.metrics_.changes().inc({config::toString(o.key.kind)});  // created, recreated, started, removed
      }
    }
    for (const auto& c : r.remaining.changes) {
      if (c.action == docker::Action::orphan || failed.count(c.key)) continue;
      if (!scope.includes(c.key)) continue;
      d_.setResource(c.key, c.action == docker::Action::conflict ? api::ResourceStatus::failed
                                                                 : api::ResourceStatus::pending,
                     c.reason);
      if (c.action == docker::Action::conflict) failed.insert(c.key);
    }
    // Services in a crash loop: failed (exit code, last output) until their
    // backoff lets them start again.
    for (const auto& h : r.held) {
      log::warn("container.crash_loop", {{"resource", h.key.str()}, {"message", h.message}});
      d_.setResource(h.key, api::ResourceStatus::failed, h.message);
      d_.scheduler_->triggerAfter(h.key, h.retryIn, "restart backoff");
    }
  }

  asio::awaitable<StepReport> step(config::Step step, const config::Spec& spec) override {
    switch (step) {
      case config::Step::vault: co_return co_await d_.reconcileVault(spec);
      case config::Step::buckets: co_return co_await d_.reconcileBuckets(spec, batch_);
      case config::Step::postgres: co_return co_await d_.reconcilePostgres(spec, batch_);
      case config::Step::forgejo: co_return co_await d_.reconcileForgejo(spec, batch_);
    }
    co_return StepReport{};
  }

  void outcomes(const StepReport& report) override {
    // Each step logs its own outcomes; what the pipeline blocked is logged here.
    for (const auto& o : report.outcomes) {
      if (o.blocked && o.message.rfind("blocked: ", 0) == 0) {
        log::warn("resource.blocked", {{"resource", o.key.str()}, {"message", o.message}});
      }
    }
    stepsOk = d_.applyStepReport(report) && stepsOk;
  }
  bool stepsOk = true;

  void error(const char* what, const Error& error) override {
    log::error(what, {{"error", error.message}});
    if (std::string(what) == "reconcile.failed") dockerAnswered = false;
  }

  void timing(const std::string& step, double seconds) override {
    d_.metrics_.recordStep(step, std::chrono::duration<double>(seconds));
  }

 private:
  Daemon& d_;
  const Batch& batch_;
  const std::set<Key>& lockedOut_;
  const std::map<Key, api::ResourceState> before_;
};

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

  co_await runRotations(spec, locked, batch.all);  // POST /v1/rotate (daemon_rotate.cpp)
  const std::set<Key> blocked = locked ? lockedOut(spec) : std::set<Key>{};
  ConvergeExec exec(*this, batch, blocked);
  exec.blocks = blockedByProvided(spec, store_.get());
  PipelineInput in;
  in.spec = &spec;
  in.docker = &docker_;
  in.store = store_.get();
  in.key = locked ? nullptr : &key_;
  in.options.restarts = &restarts_;
  in.options.filesDir = config_.stateDir + "/files";
  // A stateful service's new image: a backup first ([backup]; stateful_guard.hpp).
  const config::Spec* specForBackup = &spec;
  in.options.beforeStatefulImageChange = [this, specForBackup](const std::string& what) {
    return backupBeforeUpgrade(*specForBackup, what);
  };
  if (!batch.all) in.only = batch.keys;
  in.exclude = blocked;
  in.writeSecretFiles = !locked;  // files without secrets are written while locked too
  in.strict = false;
  // Per-step figures (foundationd_reconcile_step_duration_seconds{step}) come
  // from the pipeline, the step names `apply --once` prints.
  const auto out = co_await runPipeline(exec, std::move(in));

  std::string result;
  if (!exec.dockerAnswered || !out.docker) {
    result = "docker unreachable";
  } else {
    result = exec.dockerOk ? "converged" : "not converged";
  }
  if (result == "converged" && (!exec.stepsOk || !blocked.empty() || !exec.blocks.empty())) {
    // Locked, or waiting for `secret set`, with nothing failed: what needs no
    // secret converged and the rest waits. That is "blocked", not "failed".
    bool failedSome = false;
    for (const auto& [_, res] : resources_) failedSome |= res.status == api::ResourceStatus::failed;
    result = (locked || !exec.blocks.empty()) && !failedSome ? "blocked" : "not converged";
  }
  lastReconcile_.start = startedAt;
  lastReconcile_.end = api::Clock::now();
  lastReconcile_.result = result;
  lastReconcile_.converged = result == "converged";
  reconcileSince_.reset();
  metrics_.recordReconcile(result == "converged" || result == "blocked" ? result : "failed",
                           std::chrono::steady_clock::now() - started);
  log::info("reconcile.done", {{"result", result}, {"failed", std::to_string(exec.failed.size())}});
  specReconciled(revision, result == "converged");
  finishRotations(result);
  publishStatus();
  co_return exec.failed;
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

}  // namespace foundationd::daemon
