// The Forgejo controller: the headless bootstrap of the forge ([forgejo] in
// SPEC.md), through `docker exec <container> forgejo ...` and the HTTP API.
//
// One converge step, forgejo::reconcile:
// - Waits (bounded by Options::waitReady) for the host container to run (and
//   be healthy if it has a healthcheck) and for GET /api/v1/version to answer;
//   until then every resource is reported blocked ("waiting ...").
// - The admin: checked by GET /api/v1/user with its basic auth (the no-op
//   path: one request). When that is refused, the admin is created or
//   repaired without its password ever reaching an argv or an environment:
//     1. `forgejo admin user generate-access-token --username U --raw ...`
//        (the user exists: its password or admin flag drifted), or, when the
//        user does not exist, `forgejo admin user create --admin
//        --random-password --must-change-password=false --access-token ...`;
//        either prints a short-lived access token on the exec's stdout (the
//        throwaway random password too, which is dropped);
//     2. PATCH /api/v1/admin/users/U with that token sets the real password
//        (in the request body), the admin flag and the email;
//     3. the token is deleted with the admin's basic auth.
//   The email and admin flag of an existing admin are kept as specified.
// - Organisations (POST /api/v1/orgs) and repositories: created when missing
//   (under an org, the admin, or another user through the admin API), their
//   `private` flag and description kept as specified. Nothing is deleted.
// - The Actions runner registration token: `forgejo actions
//   generate-runner-token` (global scope) via exec. When it differs from the
//   one last stored (compared by keyed digest), it is written to Vault at
//   [forgejo.runner_token].vault_path as {"token": ...} through
//   Deps::writeKv, then sealed in the state (Deps::state). When it is the one
//   stored, Vault is read back (Deps::readKv): a token deleted or changed in
//   Vault by hand is written again (drift).
// - The webhook on each [forgejo.webhooks."owner/repo"]: a "gitea"-type hook
//   (Forgejo accepts it and sends both X-Forgejo-* and X-Gitea-* headers),
//   JSON, push events, active, with the secret. Found by the id recorded in
//   the state, else by URL; url/content type/events/active are compared with
//   the live hook (a difference is drift), the secret (which the API never
//   returns) by the keyed digest recorded when it was last set (a difference
//   is a spec change, e.g. a rotation). A hook deleted by hand is recreated.
//
// - The Actions secrets and variables of organisations and repositories
//   (actions.hpp), once these exist.
//
// Keys: {Kind::forgejo, "admin/<user>"}, "org/<name>", "repo/<owner/name>",
// "runner-token", "webhook/<owner/name>", "actions/org/<name>",
// "actions/repo/<owner/name>".
// Locked (a secret cannot be resolved): everything that needs one is blocked.
// Thread: the io_context's (DockerApi's); blocking work (HTTP, SQLite, Vault)
// goes through Deps::offload. Nothing here logs or returns a secret.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/step_report.hpp"
#include "controllers/transport/http_client.hpp"

namespace foundationd::forgejo {

// What the controller remembers between converges, kept in the state store
// (the daemon adapts state::Store). Blocking: called through Deps::offload.
class StateAccess {
 public:
  virtual ~StateAccess() = default;
  // A keyed digest of `secret` (the state's digest key): comparable, not
  // reversible, safe to store.
  virtual Result<std::string> digestOf(std::string_view secret) = 0;
  // A non-secret memo by name ("webhook/olsitec/foundation"); nullopt = none.
  virtual Result<std::optional<std::string>> memo(const std::string& name) = 0;
  virtual Status setMemo(const std::string& name, const std::string& value) = 0;
  // Seals the runner registration token in the state (needs the key).
  virtual Status storeRunnerToken(std::string_view token) = 0;
};

// Writes one KV secret (the data object) at `path` under foundationd's KV
// mount in Vault. Blocking. Wired by the daemon to the Vault client.
using KvWriter = std::function<Status(const std::string& path, const nlohmann::json& data)>;

// Reads one field of the KV secret at `path` (its current version): nullopt
// when there is none (never written, deleted, destroyed, or no such field).
// Blocking. Wired by the daemon to the Vault client.
using KvReader =
    std::function<Result<std::optional<std::string>>(const std::string& path, const std::string& field)>;

// One blocking HTTP exchange (transport::peerRequest unless a test counts).
using HttpFn = std::function<Result<transport::PeerResponse>(const transport::PeerRequest&)>;

// Runs blocking `work` off the event loop (controllers/step_report.hpp).
// Tests may run it inline.
using Offload = foundationd::Offload;

struct Deps {
  docker::DockerApi* docker = nullptr;
  Offload offload;
  HttpFn http = transport::peerRequest;
  KvWriter writeKv;              // null: the runner token outcome fails ("no Vault writer")
  KvReader readKv;               // null: Vault is not read back (the state's memo is trusted)
  StateAccess* state = nullptr;  // null: runner token and webhooks fail ("no state")
};

struct Options {
  std::chrono::milliseconds waitReady{std::chrono::seconds(60)};
  std::chrono::milliseconds pollInterval{std::chrono::milliseconds(500)};
  std::chrono::milliseconds execTimeout{std::chrono::seconds(60)};
  std::chrono::milliseconds httpTimeout{std::chrono::seconds(15)};
  std::string binary = "forgejo";  // the CLI inside the container (on its PATH)
  std::string execUser = "git";    // the OS user the forge runs as (RUN_USER)
  // Overrides [forgejo].url (tests reach a published port).
  std::optional<std::string> url;
};

struct Report {
  StepReport step;
  std::uint64_t execs = 0;         // docker execs made (figures)
  std::uint64_t httpRequests = 0;  // API requests made (figures)
};

// Memo names, in the state.
inline constexpr const char* kRunnerTokenMemo = "runner-token";
std::string webhookMemo(const std::string& repo);  // "webhook/<owner/name>"

namespace detail {
// Whether a live hook (the forge's JSON) gets push and pull request events.
bool hookEventsCovered(const nlohmann::json& hook);
inline constexpr const char* kHookContentType = "json";
}  // namespace detail

boost::asio::awaitable<Report> reconcile(const config::Spec& spec,
                                         const docker::SecretResolver& secrets, const Deps& deps,
                                         const Options& options);

}  // namespace foundationd::forgejo
