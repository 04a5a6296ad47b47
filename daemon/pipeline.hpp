// The converge pipeline: the one sequence of steps that `apply --once`
// (daemon/converge.cpp), `rotate` and the daemon's reconcile
// (daemon_reconcile.cpp) all run. Credentials first (generated and made
// durable before any use, rotations pushed to PostgreSQL and Vault), then
// the files and secret files, then the phases of config/phases.hpp in the
// order of the dependency graph: the first Docker pass, each service step,
// and a Docker pass for the containers that waited for one. A failure
// blocks only its dependents, reported blocked with what failed.
//
// What differs between the CLI and the daemon is a PipelineExecutor: where
// blocking work runs (inline, or the daemon's pool), how each controller
// step is run, and what is done with outcomes (printed, or resource status,
// metrics and logs). Per-step timings come from here for both.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/result.hpp"
#include "config/phases.hpp"
#include "config/spec.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

struct PipelineInput {
  const config::Spec* spec = nullptr;
  docker::DockerApi* docker = nullptr;
  state::Store* store = nullptr;              // may be null (no [credentials])
  const state::UnlockedKey* key = nullptr;    // null while locked
  docker::ApplyOptions options;
  // A partial converge (the daemon's batch of keys); nullopt: everything.
  std::optional<std::set<config::ResourceKey>> only;
  // Containers left alone (locked out while the state is locked).
  std::set<config::ResourceKey> exclude;
  bool writeSecretFiles = true;
  // The CLI: an error of the credentials, the files or the Docker Engine
  // ends the converge (the daemon logs it and goes on with the steps).
  bool strict = true;
};

struct PipelineOutcome {
  std::vector<credentials::Generated> generated;
  std::optional<Error> error;  // a failure outside the changes (credentials, files, Docker)
  // Every Docker pass merged: plan, outcomes, remaining changes.
  std::optional<docker::ReconcileResult> docker;
  // The other outcomes, in the order they were known: rotations, files
  // followed, service steps, blocked containers.
  std::vector<StepReport> steps;
  // How long each part took, seconds, in the order first run; the Docker
  // passes add up under "docker".
  std::vector<std::pair<std::string, double>> timings;
  // The whole converge, seconds: less than the timings' sum when phases ran
  // at once. 0 when it ended early (an error of a strict converge).
  double seconds = 0;
  bool converged() const {
    if (error || !docker || !docker->converged) return false;
    for (const auto& s : steps) {
      if (!s.ok()) return false;
    }
    return true;
  }
};

class PipelineExecutor {
 public:
  virtual ~PipelineExecutor() = default;
  // Runs blocking `work` where this caller runs blocking work. `work` is a
  // named function object of the caller's frame (GCC 12 destroys a
  // temporary that owns a capture inside a co_await expression twice).
  virtual boost::asio::awaitable<void> offload(const std::function<void()>& work) = 0;
  // The credentials were generated (or failed, `strict` false).
  virtual void credentialsDone(const config::Spec& spec,
                               const Result<std::vector<credentials::Generated>>& generated) = 0;
  // Rotated credentials pushed where they are used before their consumers
  // are recreated (ALTER ROLE, the Vault copy). Its outcomes.
  virtual boost::asio::awaitable<StepReport> rotated(
      const config::Spec& spec, const std::vector<credentials::Generated>& generated) = 0;
  virtual docker::ApplyObserver dockerObserver() = 0;
  // One Docker pass done (`first`: the pass of everything that waits for no
  // service step; `deferred`: the containers that wait for one).
  virtual void dockerPass(const config::Spec& spec, const docker::SecretResolver& secrets,
                          const docker::ReconcileResult& result, const docker::Scope& scope,
                          bool first, const std::set<config::ResourceKey>& deferred) = 0;
  // Runs one service step's controller.
  virtual boost::asio::awaitable<StepReport> step(config::Step step, const config::Spec& spec) = 0;
  // Outcomes known (a step's, files followed, blocked containers).
  virtual void outcomes(const StepReport& report) = 0;
  // A failure outside the changes, `strict` false: logged, the converge goes on.
  virtual void error(const char* what, const Error& error) = 0;
  virtual void timing(const std::string& step, double seconds) = 0;
};

boost::asio::awaitable<PipelineOutcome> runPipeline(PipelineExecutor& exec, PipelineInput in);

// The resources a failed step outcome stands for in the graph (what waits
// for it): postgres.db/role/app -> postgres.db; s3.x -> every bucket of x.
std::vector<config::ResourceKey> failedNodes(const config::Spec& spec, const StepOutcome& o);

}  // namespace foundationd::daemon
