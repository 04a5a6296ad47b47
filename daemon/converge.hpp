// One converge of a whole spec, as `apply --once` and `rotate` run it: the
// converge pipeline (daemon/pipeline.hpp) with blocking work on the calling
// thread, the rest on `io`, and outcomes printed through `hooks`.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "config/spec.hpp"
#include "controllers/step_report.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/docker/secrets.hpp"
#include "daemon/pipeline.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// The credentials controller seen through the Docker controller's narrow
// SecretResolver interface.
class StoreSecrets final : public docker::SecretResolver {
 public:
  StoreSecrets(const config::Spec& spec, state::Store* store, const state::UnlockedKey* key)
      : resolver_(spec, store, key) {}
  std::optional<std::string> digest(const config::CredentialRef& ref) const override {
    return resolver_.digest(ref);
  }
  std::optional<std::string> value(const config::CredentialRef& ref) const override {
    return resolver_.value(ref);
  }

 private:
  credentials::Resolver resolver_;
};

// What `apply --once` ran: the pipeline's outcome (daemon/pipeline.hpp).
using ConvergeOutcome = PipelineOutcome;

struct ConvergeHooks {
  std::function<void(const credentials::Generated&)> generated;
  docker::ApplyObserver docker;
  std::function<void(const StepOutcome&)> step;  // each service step outcome, as it is known
};

// `store`/`key` may be null for a spec without [credentials]. Records the
// applied hash of each container it converged and an audit entry.
ConvergeOutcome convergeOnce(boost::asio::io_context& io, docker::DockerApi& api,
                             const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key, const docker::ApplyOptions& options,
                             const ConvergeHooks& hooks);

// `apply --once --json`: {"project", "converged", "error"?, "seconds",
// "docker_api_calls", "changes": [{"resource", "action", "reason", "result":
// "ok"|"failed"|"blocked", "message"}], "timings": [{"step", "seconds"}]}.
// Every change acted on (credentials generated or rotated, Docker, the
// service steps' changes) and every failed or blocked resource; no secret.
nlohmann::json applyJson(const config::Spec& spec, const ConvergeOutcome& out, double seconds,
                         std::uint64_t dockerCalls);

// The credentials controller's plan as the plan renderer shows it (`plan`
// and GET /v1/plan render the same document).
std::vector<docker::CredentialChange> credentialChanges(
    const std::vector<credentials::FieldPlan>& plan);

}  // namespace foundationd::daemon
