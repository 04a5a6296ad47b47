// The forge's plan: [forgejo] (the admin, organisations, repositories, the
// webhook, Actions secrets and variables, the runner registration token)
// against what the forge's API answers, nothing changed.
//
// observeForPlan() makes the apply's reads (GET /version, /user with the
// admin's basic auth, /orgs/NAME, /repos/OWNER/NAME, the hooks, the Actions
// secrets and variables lists) and reads the state's memos (digests of the
// webhook and Actions secrets last written, of the runner token stored); it
// never runs a CLI command in the container (generating a runner token is a
// change). plan() is pure: observed + spec -> the changes with their reasons
// and field diffs. Secrets are compared by keyed digest only. Without the
// admin password (locked), what needs it is listed as unknown with why.
//
// Thread: blocking (HTTP, the state through StateAccess).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/spec.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/forgejo/forgejo.hpp"
#include "controllers/plan_change.hpp"

namespace foundationd::forgejo {

struct PlanObservation {
  enum class State {
    live,         // GET /version answered
    absent,       // its container does not exist yet: everything is created with it
    unreachable,  // does not answer: `why`
  };
  State state = State::unreachable;
  std::string why;
  // Why what needs the admin's login was not read (locked, login refused);
  // nullopt: read below.
  std::optional<std::string> adminUnknown;
  enum class Admin { ok, refused, unknown };
  Admin admin = Admin::unknown;
  bool isAdmin = false;
  std::string email;
  std::map<std::string, bool> orgs;  // name -> exists
  struct Repo {
    bool exists = false;
    bool isPrivate = false;
    std::string description;
  };
  std::map<std::string, Repo> repos;
  struct Hook {
    bool exists = false;
    std::string url;
    std::string contentType;
    bool active = false;
    bool eventsOk = false;
    // The secret last set has the spec's digest (and this hook's id);
    // nullopt: not compared (locked: `secretWhy`).
    std::optional<bool> secretSame;
    std::string secretWhy;
  };
  std::map<std::string, Hook> hooks;  // by repo
  struct Actions {
    // NAME -> listed by the forge with the spec's digest recorded; nullopt:
    // not compared (`secretWhy`). Absent from the map: not listed.
    std::map<std::string, std::optional<bool>> secrets;
    std::string secretWhy;
    std::map<std::string, std::string> variables;  // NAME -> live value (listed ones)
  };
  std::map<std::string, Actions> actions;  // "repo/<owner/name>" or "org/<name>"
  std::optional<std::string> actionsError;  // listing failed
  // The runner token: the state has stored one (its memo); Vault's copy has
  // its digest (nullopt: not compared, `runnerWhy`).
  bool runnerStored = false;
  std::optional<bool> runnerInVault;
  std::string runnerWhy;
};

// Pure. Keys as the apply's: "admin/<user>", "org/<name>", "repo/<o/n>",
// "runner-token", "webhook/<o/n>", "actions/org/<name>", "actions/repo/<o/n>".
std::vector<PlanChange> plan(const config::Spec& spec, const PlanObservation& observed);

struct PlanDeps {
  HttpFn http = transport::peerRequest;
  StateAccess* state = nullptr;  // memos and digests; null: no state (not compared)
  // The keyed digest of the runner token's copy in Vault (field "token");
  // nullopt inside: none there. Null function: not compared (locked).
  std::function<Result<std::optional<std::string>>()> runnerTokenVaultDigest;
  std::optional<std::string> url;  // overrides [forgejo].url
  std::chrono::milliseconds httpTimeout{std::chrono::seconds(15)};
};

PlanObservation observeForPlan(const config::Spec& spec, const docker::SecretResolver& secrets,
                               const PlanDeps& deps, bool hostAbsent);

}  // namespace foundationd::forgejo
