#include "daemon/converge.hpp"

#include <chrono>
#include <functional>
#include <optional>

#include <nlohmann/json.hpp>

#include "controllers/docker/secret_files.hpp"
#include "daemon/buckets_step.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/files_step.hpp"
#include "daemon/forgejo_step.hpp"
#include "daemon/postgres_step.hpp"
#include "daemon/provided.hpp"
#include "daemon/vault_step.hpp"

namespace foundationd::daemon {

namespace {

// Times one part of the converge into out.timings.
class PartTimer {
 public:
  PartTimer(ConvergeOutcome& out, const char* name)
      : out_(out), name_(name), started_(std::chrono::steady_clock::now()) {}
  ~PartTimer() {
    out_.timings.emplace_back(
        name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
  PartTimer(const PartTimer&) = delete;
  PartTimer& operator=(const PartTimer&) = delete;

 private:
  ConvergeOutcome& out_;
  const char* name_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

ConvergeOutcome convergeOnce(boost::asio::io_context& io, docker::DockerApi& api,
                             const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key, const docker::ApplyOptions& options,
                             const ConvergeHooks& hooks) {
  ConvergeOutcome out;
  if (!spec.credentials.empty()) {
    PartTimer timer(out, "credentials");
    if (!store || !key || key->locked()) {
      out.error = Error::make(ErrorCode::unavailable,
                              "this spec declares [credentials]: the state must be unlocked");
      return out;
    }
    auto generated = credentials::ensureCredentials(spec, *store, *key,
                                                    std::chrono::system_clock::now());
    if (!generated) {
      out.error = generated.error();
      return out;
    }
    out.generated = std::move(generated).value();
    if (hooks.generated) {
      for (const auto& g : out.generated) hooks.generated(g);
    }
  }
  // A credential rotated by rotate_every: ALTER ROLE before its consumers are recreated.
  if (auto pre = rotatePostgresRolesOf(io, api, spec, store, key, out.generated);
      !pre.outcomes.empty()) {
    out.steps.push_back(std::move(pre));
  }
  StoreSecrets secrets(spec, store, key);
  // What needs a provided value not set yet is blocked (and left alone); the
  // runner token's consumers wait for the forge step (a second pass below).
  const auto blocks = blockedByProvided(spec, store);
  docker::Scope scope;
  scope.exclude = containersOf(blocks);
  const auto tokenWait = waitingForRunnerToken(spec, secrets);
  scope.exclude.insert(tokenWait.begin(), tokenWait.end());
  std::set<std::string> skip;
  for (const auto& k : scope.exclude) skip.insert(k.name);
  std::optional<PartTimer> dockerTimer(std::in_place, out, "docker");
  if (auto st = docker::writeSecretFiles(spec, secrets, options.secretsDir, skip); !st) {
    out.error = st.error();
    return out;
  }
  auto files = writeFilesStep(spec, secrets, store, options);
  if (!files) {
    out.error = files.error();
    return out;
  }
  auto result = runSync(io, docker::reconcile(api, spec, secrets, options, hooks.docker, scope));
  if (!result) {
    out.error = result.error();
    return out;
  }
  if (!spec.files.empty()) {  // consumers that follow a file without being recreated
    auto followed = runSync(io, followFiles(api, spec, secrets, store, options,
                                            freshContainers(result->report), files.value()));
    for (const auto& u : files->unavailable) {
      StepOutcome o;
      o.key = {config::Kind::container, ""};
      for (const auto& [cname, c] : spec.containers) {
        for (const auto& [path, m] : c.files) {
          if (m.file == u.first) o.key.name = cname;
        }
      }
      o.ok = false;
      o.blocked = true;
      o.message = "file " + u.first + " " + u.second;
      if (scope.exclude.count(o.key)) continue;  // reported as blocked or pending below
      if (!o.key.name.empty()) followed.outcomes.push_back(std::move(o));
    }
    if (hooks.step) for (const auto& o : followed.outcomes) hooks.step(o);
    if (!followed.outcomes.empty()) out.steps.push_back(std::move(followed));
  }
  if (store) {
    for (const auto& o : result->report.outcomes) {
      if (!o.ok || o.key.kind != config::Kind::container) continue;
      auto it = spec.containers.find(o.key.name);
      if (it == spec.containers.end()) continue;
      (void)store->setAppliedHash("container", o.key.name,
                                  docker::desiredContainer(it->second, secrets).hash);
    }
    nlohmann::json audit{{"project", spec.project},
                         {"changes", result->report.outcomes.size()},
                         {"converged", result->converged}};
    (void)store->appendAudit("reconcile", audit.dump());
  }
  out.docker = std::move(result).value();
  if (auto b = blockedContainers(blocks); !b.outcomes.empty()) {
    if (hooks.step) for (const auto& o : b.outcomes) hooks.step(o);
    out.steps.push_back(std::move(b));
  }
  dockerTimer.reset();

  // The service steps, in order (docs: vault -> buckets -> postgres -> forgejo).
  // Each appends its StepReport to out.steps and calls hooks.step per outcome.
  auto step = [&](bool present, const char* name, const std::function<StepReport()>& run) {
    std::optional<PartTimer> timer;
    if (present) timer.emplace(out, name);
    out.steps.push_back(run());
    markBlocked(out.steps.back(), blocks);
    if (hooks.step) for (const auto& o : out.steps.back().outcomes) hooks.step(o);
  };
  step(spec.vault.has_value(), "vault", [&] { return convergeVaultOnce(spec, store, key); });
  step(!spec.buckets.empty(), "buckets",
       [&] { return convergeBucketsOnce(io, api, spec, store, key); });
  step(!spec.postgres.empty(), "postgres",
       [&] { return convergePostgresOnce(io, api, spec, store, key); });
  step(spec.forgejo.has_value(), "forgejo",
       [&] { return convergeForgejoOnce(io, api, spec, store, key); });

  // The runner token's consumers, now that the forge step has run: created
  // with the token it produced, or recreated when it issued a new one.
  const auto consumers = runnerTokenConsumers(spec);
  if (!consumers.empty()) {
    PartTimer timer(out, "runner-token");
    docker::Scope second;
    second.only = consumers;
    second.only->insert(tokenWait.begin(), tokenWait.end());
    second.exclude = containersOf(blocks);
    std::set<std::string> blockedNames;
    for (const auto& k : second.exclude) blockedNames.insert(k.name);
    if (!secrets.digest(config::CredentialRef::forgejoRunnerToken())) {
      StepReport pending;
      for (const auto& k : tokenWait) {
        if (second.exclude.count(k)) continue;
        StepOutcome o;
        o.key = k;
        o.ok = false;
        o.blocked = true;
        o.message = kRunnerTokenPending;
        pending.outcomes.push_back(std::move(o));
      }
      if (hooks.step) for (const auto& o : pending.outcomes) hooks.step(o);
      if (!pending.outcomes.empty()) out.steps.push_back(std::move(pending));
      return out;
    }
    if (auto st = docker::writeSecretFiles(spec, secrets, options.secretsDir, blockedNames); !st) {
      out.error = st.error();
      return out;
    }
    if (!spec.files.empty()) {
      if (auto files = writeFilesStep(spec, secrets, store, options); !files) {
        out.error = files.error();
        return out;
      }
    }
    auto again = runSync(io, docker::reconcile(api, spec, secrets, options, hooks.docker, second));
    if (!again) {
      out.error = again.error();
      return out;
    }
    for (const auto& o : again->report.outcomes) {
      if (o.ok && o.key.kind == config::Kind::container && store) {
        (void)store->setAppliedHash("container", o.key.name,
                                    docker::desiredContainer(spec.containers.at(o.key.name),
                                                             secrets).hash);
      }
      out.docker->report.outcomes.push_back(o);
    }
    out.docker->converged = out.docker->converged && again->converged;
    for (const auto& c : again->remaining.changes) out.docker->remaining.changes.push_back(c);
  }
  return out;
}

std::vector<docker::CredentialChange> credentialChanges(
    const std::vector<credentials::FieldPlan>& plan) {
  std::vector<docker::CredentialChange> out;
  out.reserve(plan.size());
  for (const auto& c : plan) {
    out.push_back({c.credential, c.field, credentials::toString(c.action), c.reason});
  }
  return out;
}

}  // namespace foundationd::daemon
