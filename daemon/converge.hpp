// One converge of a whole spec, as `apply --once`, `rotate` and `serve` run it:
// credentials first (generated and made durable before any use), then the
// secret files, then the Docker kinds. Blocking parts (the store) run on the
// calling thread; the Docker part on `io`.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/spec.hpp"
#include "controllers/step_report.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/docker/secrets.hpp"
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

struct ConvergeOutcome {
  std::vector<credentials::Generated> generated;
  std::optional<docker::ReconcileResult> docker;
  std::optional<Error> error;  // a failure before or outside the Docker apply
  // The service steps after Docker (vault, buckets, postgres, forgejo), in order.
  std::vector<StepReport> steps;
  // How long each part took, in order ("credentials", "docker", "vault",
  // "buckets", "postgres", "forgejo"; only the parts the spec has), seconds.
  std::vector<std::pair<std::string, double>> timings;
  bool converged() const {
    if (error || !docker || !docker->converged) return false;
    for (const auto& s : steps) {
      if (!s.ok()) return false;
    }
    return true;
  }
};

struct ConvergeHooks {
  std::function<void(const credentials::Generated&)> generated;
  docker::ApplyObserver docker;
  std::function<void(const StepOutcome&)> step;  // each service step outcome, as it is known
};

// `store`/`key` may be null for a spec without [credentials].
ConvergeOutcome convergeOnce(boost::asio::io_context& io, docker::DockerApi& api,
                             const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key, const docker::ApplyOptions& options,
                             const ConvergeHooks& hooks);

// The credentials controller's plan as the plan renderer shows it (`plan`
// and GET /v1/plan render the same document).
std::vector<docker::CredentialChange> credentialChanges(
    const std::vector<credentials::FieldPlan>& plan);

}  // namespace foundationd::daemon
