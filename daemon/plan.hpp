// The whole-spec plan: every controller's observe + pure plan against the
// live host and the state, nothing changed. ONE code path for `plan`, `plan
// --json` (the CLI), GET /v1/plan and the plans posted on pull requests (the
// daemon): planWholeSpec(). The only difference is where blocking work runs
// (PlanInputs::offload) and whether the state is unlocked.
//
// Locked (no key), what needs a secret to be compared (a role's password,
// Vault's KV behind foundationd's token, the forge behind its admin) is
// listed as unknown with why ("cannot compare while locked"), never guessed
// and never counted as a change. Without the state at all, what depends on a
// credential is unknown too.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/plan_change.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// A whole-spec plan against the live host: what GET /v1/plan and `plan
// --json` serve as JSON, `plan` and a pull request's comment show as text.
struct SpecPlan {
  docker::Plan docker;
  std::vector<docker::CredentialChange> credentials;
  std::optional<nlohmann::json> files;    // the spec has [files]
  std::optional<nlohmann::json> buckets;  // the spec has [s3.*]
  std::vector<PlanChange> vault;          // [vault] and the mirrored credentials
  std::vector<PlanChange> postgres;       // [postgres.*]
  std::vector<PlanChange> forgejo;        // [forgejo]
  std::vector<PlanChange> bucketChanges;  // `buckets` as changes (and unknowns)
  // Docker and credentials not compared without the state: (resource, why).
  std::vector<std::pair<std::string, std::string>> unknown;
  std::string noState;  // "no state in DIR" when there is none
  bool locked = true;   // the state's key was not available
  nlohmann::json json() const;  // `plan --json`'s document
  std::string text(bool color = false) const;  // as `plan` prints it
  bool hasChanges() const;
};

struct PlanInputs {
  docker::DockerApi* docker = nullptr;
  state::Store* store = nullptr;             // null: no state
  const state::UnlockedKey* key = nullptr;   // null or locked: locked
  std::string stateDir;                      // where [files] without secrets live
  // Runs blocking work (HTTP, SQLite) off the event loop; null: inline.
  std::function<boost::asio::awaitable<void>(std::function<void()>)> offload;
};

boost::asio::awaitable<Result<SpecPlan>> planWholeSpec(const config::Spec& spec,
                                                       const PlanInputs& in);

// `plan --graph`: the dependency graph of the spec as Graphviz DOT.
std::string graphDot(const config::Spec& spec);

}  // namespace foundationd::daemon
