// The Vault controller (SPEC.md "[vault]", CONTEXT.md "The one secret").
//
// One converge step, vault::reconcile: wait (bounded) for the [vault]
// container to answer; initialise it when it is uninitialised (the response
// sealed and fsynced into the state before anything else); unseal it from the
// state; then, with foundationd's own periodic token, keep the KV v2 mount,
// the [vault.policies] and every [credentials] entry in Vault equal to the
// spec and the state (drift repaired, counted as drift).
//
// Never twice: an initialised Vault whose keys the state lacks blocks with a
// clear status, and an uninitialised Vault while the state holds keys (its
// storage was lost) blocks too. The init itself runs under an exclusive file
// lock in the state directory, re-checking seal-status under it, and in the
// daemon inside a helper process that survives a kill of the daemon (see
// init_helper.hpp), so a crash at any instant neither loses the keys nor
// initialises twice.
//
// In the state (kind "vault"): "init"/"material" = the init response as JSON
// {"keys_base64": [...], "root_token": "...", "key_shares": N,
// "key_threshold": M} (one secret: one commit, never half of it);
// "token"/"foundationd" = the periodic token for routine work. The root token
// is used only to bootstrap (mount, foundationd's own policy, a new token) and
// to seal.
//
// Thread: blocking (HTTP and SQLite): the daemon's pool, or the CLI's thread;
// reconcile's reads with the token go out together, from up to three threads
// of its own besides (joined before it goes on; the state only from the
// caller's). Nothing here logs or returns a secret.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/step_report.hpp"
#include "controllers/vault/vault_client.hpp"
#include "state/store.hpp"

namespace foundationd::vault {

inline constexpr const char* kKind = "vault";
inline constexpr const char* kInitName = "init";
inline constexpr const char* kInitField = "material";
inline constexpr const char* kTokenName = "token";
inline constexpr const char* kTokenField = "foundationd";
inline constexpr const char* kOwnPolicy = "foundationd";
inline constexpr const char* kInitLockFile = "vault-init.lock";
// The state's applied table, kind kTokenCheck, name kTokenField: "<the
// token's secret version> <unix seconds>", the moment its renewal may be due
// (half its period left); until then a no-op makes no lookup-self.
inline constexpr const char* kTokenCheck = "vault-token";

// The init material, opened.
struct InitMaterial {
  std::vector<std::string> keysBase64;
  std::string rootToken;
  int shares = 0;
  int threshold = 0;
  ~InitMaterial();
};

// Whether the state holds init material (no key needed).
Result<bool> hasInitMaterial(state::Store& store);
Result<InitMaterial> loadInitMaterial(state::Store& store, const state::UnlockedKey& key);

enum class InitResult { initialized, already_initialized };
// The init, in this process: takes the exclusive lock `lockFile` (waits for
// it), re-reads seal-status, and only if Vault is still uninitialised calls
// sys/init and persists the answer before returning (or before anything else
// is done with it: init_answer.hpp; checked only after). Errors: the answer
// could not be stored (internal, naming the sealed fallback file); an answer
// foundationd cannot use, e.g. recovery keys only (protocol; kept sealed in
// the state all the same).
Result<InitResult> initializeLocked(VaultClient& client, state::Store& store,
                                    const state::UnlockedKey& key, int shares, int threshold,
                                    const std::filesystem::path& lockFile);
// True while another process holds `lockFile` (an init in flight).
bool initInProgress(const std::filesystem::path& lockFile);

// Submits the state's keys until Vault is unsealed (at most the threshold).
Result<SealStatus> unsealFromState(VaultClient& client, state::Store& store,
                                   const state::UnlockedKey& key);
// Waits (bounded) until Vault answers sys/health 200: unsealed and active.
// Integrated storage (raft) elects its leader a moment after the unseal;
// until then writes answer "local node not active". timeout after `limit`.
Status waitUntilActive(VaultClient& client, std::chrono::milliseconds limit);
// Seals Vault with the root token from the state.
Status sealWithRoot(VaultClient& client, state::Store& store, const state::UnlockedKey& key);

// A policy's rules as compared with the live ones (surrounding whitespace off).
std::string normalisePolicy(const std::string& rules);

// The policy of foundationd's own token, derived from the spec.
std::string ownPolicy(const config::VaultSpec& vault);

// How an init is carried out: the daemon and `apply --once` use a helper
// process (init_helper.hpp); tests may call initializeLocked directly.
using Initializer = std::function<Result<InitResult>(int shares, int threshold)>;

struct Context {
  state::Store* store = nullptr;
  const state::UnlockedKey* key = nullptr;  // null or locked: observe only
  std::filesystem::path stateDir;           // where the init lock lives
  Initializer initializer;                  // default: initializeLocked in-process
  // foundationd_vault_requests_total{code}. Called from several threads at
  // once: a no-op's reads go out together, each on a connection of its own.
  RequestObserver observer;
  std::chrono::milliseconds waitForVault{30'000};  // bounded wait for it to answer
  std::chrono::milliseconds requestTimeout{10'000};
  state::Clock clock;  // when the token's lookup-self is due; default system_clock::now
};

// What the step saw of Vault, for status and metrics.
struct Observation {
  bool reachable = false;
  bool initialized = false;
  bool sealed = true;
  std::string problem;  // why it is blocked, "" when not
};

// The whole step. Outcomes: {vault, ""} (init/unseal/token), {vault,
// "mount/<kv>"}, {vault, "policy/<name>"}, {vault, "kv/<vault_path>"}.
// An empty report when the spec has no [vault].
StepReport reconcile(const config::Spec& spec, Context& ctx, Observation* seen = nullptr);

// Writes the current values of credential `name` to Vault (rotation: before
// the consumers are updated). Needs Vault unsealed and foundationd's token.
Status mirrorCredential(const config::Spec& spec, Context& ctx, const std::string& name);

// Only seal-status (no key needed).
Result<SealStatus> observe(const config::VaultSpec& vault, const Context& ctx);

}  // namespace foundationd::vault
