#include "daemon/converge.hpp"

#include <functional>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "daemon/buckets_step.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/forgejo_step.hpp"
#include "daemon/postgres_step.hpp"
#include "daemon/vault_step.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// The CLI's side of the pipeline: blocking work on two threads of its own
// (so that steps the graph lets run at once do), each step's controller as
// `apply --once` runs it, outcomes through the print hooks.
class CliExecutor final : public PipelineExecutor {
 public:
  CliExecutor(docker::DockerApi& api, state::Store* store, const state::UnlockedKey* key,
              const ConvergeHooks& hooks)
      : api_(api), store_(store), key_(key), hooks_(hooks) {
    offloader_ = [this](std::function<void()> work) -> asio::awaitable<void> {
      // `work` lives in this coroutine's frame until the pool has run it.
      std::function<void()>* w = &work;
      co_await offload(*w);
    };
  }

  asio::awaitable<void> offload(const std::function<void()>& work) override {
    // The spawned lambda holds a pointer only (GCC 12 destroys an owning
    // capture inside a co_await expression twice; see Daemon::onPool).
    const std::function<void()>* w = &work;
    auto run = [w]() -> asio::awaitable<void> {
      (*w)();
      co_return;
    };
    co_await asio::co_spawn(pool_, run, asio::use_awaitable);
  }
  void credentialsDone(const config::Spec&,
                       const Result<std::vector<credentials::Generated>>& generated) override {
    if (!generated || !hooks_.generated) return;
    for (const auto& g : generated.value()) hooks_.generated(g);
  }
  asio::awaitable<StepReport> rotated(
      const config::Spec& spec, const std::vector<credentials::Generated>& generated) override {
    co_return co_await rotatePostgresRolesOf(api_, spec, store_, key_, generated);
  }
  docker::ApplyObserver dockerObserver() override { return hooks_.docker; }
  void dockerPass(const config::Spec& spec, const docker::SecretResolver& secrets,
                  const docker::ReconcileResult& result, const docker::Scope&, bool first,
                  const std::set<config::ResourceKey>&) override {
    if (!store_) return;
    for (const auto& o : result.report.outcomes) {
      if (!o.ok || o.key.kind != config::Kind::container) continue;
      auto it = spec.containers.find(o.key.name);
      if (it == spec.containers.end()) continue;
      (void)store_->setAppliedHash("container", o.key.name,
                                   docker::desiredContainer(it->second, secrets).hash);
    }
    if (!first) return;
    nlohmann::json audit{{"project", spec.project},
                         {"changes", result.report.outcomes.size()},
                         {"converged", result.converged}};
    (void)store_->appendAudit("reconcile", audit.dump());
  }
  asio::awaitable<StepReport> step(config::Step step, const config::Spec& spec) override {
    switch (step) {
      case config::Step::vault: {
        StepReport report;
        StepReport* reportp = &report;
        const config::Spec* specp = &spec;
        state::Store* store = store_;
        const state::UnlockedKey* key = key_;
        const std::function<void()> work = [reportp, specp, store, key] {
          *reportp = convergeVaultOnce(*specp, store, key);
        };
        co_await offload(work);
        co_return report;
      }
      case config::Step::buckets:
        co_return co_await convergeBucketsOnce(api_, spec, store_, key_, offloader_);
      case config::Step::postgres:
        co_return co_await convergePostgresOnce(api_, spec, store_, key_);
      case config::Step::forgejo:
        co_return co_await convergeForgejoOnce(api_, spec, store_, key_, offloader_);
    }
    co_return StepReport{};
  }
  void outcomes(const StepReport& report) override {
    if (!hooks_.step) return;
    for (const auto& o : report.outcomes) hooks_.step(o);
  }
  void error(const char*, const Error&) override {}  // strict: never called
  void timing(const std::string&, double) override {}

 private:
  docker::DockerApi& api_;
  state::Store* store_;
  const state::UnlockedKey* key_;
  const ConvergeHooks& hooks_;
  Offload offloader_;
  asio::thread_pool pool_{2};  // last: joined before the rest is destroyed
};

}  // namespace

ConvergeOutcome convergeOnce(boost::asio::io_context& io, docker::DockerApi& api,
                             const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key, const docker::ApplyOptions& options,
                             const ConvergeHooks& hooks) {
  CliExecutor exec(api, store, key, hooks);
  PipelineInput in;
  in.spec = &spec;
  in.docker = &api;
  in.store = store;
  in.key = key;
  in.options = options;
  return runSync(io, runPipeline(exec, std::move(in)));
}

nlohmann::json applyJson(const config::Spec& spec, const ConvergeOutcome& out, double seconds,
                         std::uint64_t dockerCalls) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& g : out.generated) {
    changes.push_back({{"resource", "credential." + g.credential + "." + g.field},
                       {"action", g.rotated ? "rotate" : "generate"},
                       {"reason", g.rotated ? "rotate_every elapsed" : "not generated yet"},
                       {"result", "ok"},
                       {"message", "version " + std::to_string(g.version)}});
  }
  if (out.docker) {
    std::map<config::ResourceKey, std::string> reasons;
    for (const auto& c : out.docker->plan.changes) reasons[c.key] = c.reason;
    for (const auto& o : out.docker->report.outcomes) {
      auto r = reasons.find(o.key);
      const bool blocked = !o.ok && o.message.rfind("blocked", 0) == 0;
      changes.push_back({{"resource", o.key.str()},
                         {"action", docker::toString(o.action)},
                         {"reason", r == reasons.end() ? "" : r->second},
                         {"result", o.ok ? "ok" : blocked ? "blocked" : "failed"},
                         {"message", o.message},
                         {"seconds", static_cast<double>(o.took.count()) / 1000.0}});
    }
    for (const auto& c : out.docker->remaining.changes) {
      if (c.action == docker::Action::orphan) continue;
      bool reported = false;
      for (const auto& o : out.docker->report.outcomes) reported = reported || o.key == c.key;
      if (reported) continue;
      changes.push_back({{"resource", c.key.str()},
                         {"action", docker::toString(c.action)},
                         {"reason", c.reason},
                         {"result", "failed"},
                         {"message", "still differs after the apply"}});
    }
  }
  for (const auto& s : out.steps) {
    for (const auto& o : s.outcomes) {
      if (o.ok && !o.changed) continue;
      changes.push_back({{"resource", o.key.str()},
                         {"action", o.ok ? (o.drift ? "repair" : "change") : "none"},
                         {"reason", o.ok ? (o.drift ? "drift" : "differs from the spec") : ""},
                         {"result", o.ok ? "ok" : o.blocked ? "blocked" : "failed"},
                         {"message", o.message}});
    }
  }
  nlohmann::json timings = nlohmann::json::array();
  for (const auto& [step, secs] : out.timings) {
    timings.push_back({{"step", step}, {"seconds", secs}});
  }
  nlohmann::json doc{{"project", spec.project},
                     {"converged", out.converged()},
                     {"seconds", seconds},
                     {"docker_api_calls", dockerCalls},
                     {"changes", changes},
                     {"timings", timings}};
  if (out.error) doc["error"] = out.error->message;
  return doc;
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
