// The forge's Actions secrets and variables of a repository or an
// organisation (`actions_secrets` / `actions_variables` in [forgejo.repos.*]
// and [forgejo.orgs.*]): part of the Forgejo step (forgejo.hpp), after the
// repositories and organisations exist.
//
// Secrets: the forge never returns a value, so the keyed digest of the value
// last written is kept in the state (memo actionsSecretMemo). A secret is
// written (PUT .../actions/secrets/NAME, the value in the body) when the
// forge's list lacks it (created, or deleted by hand: restored, drift) or
// when the spec's value no longer has the recorded digest (a rotation or a
// spec change). Variables are read back (GET .../actions/variables) and
// created (POST) or updated (PUT) when they differ; the value last written is
// the memo (actionsVariableMemo: variables are not secret) so that a value
// changed by hand (drift) is told from a changed spec. Nothing the spec does
// not declare is touched or deleted.
//
// One outcome per scope: {Kind::forgejo, "actions/repo/<owner/name>"} or
// "actions/org/<name>". Nothing here logs or returns a value.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/step_report.hpp"
#include "controllers/transport/http_client.hpp"

namespace foundationd::forgejo {

class StateAccess;

// Memo names, in the state (kind "forgejo"): scope is "repo/<owner/name>"
// or "org/<name>".
std::string actionsSecretMemo(const std::string& scope, const std::string& name);
std::string actionsVariableMemo(const std::string& scope, const std::string& name);

namespace detail {

// What the Actions part needs of the bootstrap.
class ActionsApi {
 public:
  virtual ~ActionsApi() = default;
  // METHOD /api/v1<path> with the admin's credentials; `body` must live
  // until the call completes.
  virtual boost::asio::awaitable<Result<transport::PeerResponse>> adminCall(
      const std::string& method, const std::string& path,
      const std::optional<nlohmann::json>& body) = 0;
  // Runs blocking work (the state) off the event loop.
  virtual boost::asio::awaitable<void> offload(std::function<void()> work) = 0;
};

struct ActionsScope {
  std::string scope;    // "repo/<owner/name>" or "org/<name>"
  std::string apiPath;  // "/repos/<owner>/<name>" or "/orgs/<name>" (encoded)
  const config::ForgejoActions* actions = nullptr;
};

config::ResourceKey actionsKey(const std::string& scope);  // "actions/<scope>"

boost::asio::awaitable<StepOutcome> reconcileActions(const ActionsScope& scope,
                                                     const docker::SecretResolver& secrets,
                                                     StateAccess* state, ActionsApi& api);

}  // namespace detail
}  // namespace foundationd::forgejo
