// A client of the Vault HTTP API (OpenBao and HashiCorp Vault speak the same
// one), on the blocking libcurl transport (controllers/transport/http_client).
// Only the calls foundationd needs: seal status, init, unseal, seal, mounts,
// ACL policies, tokens and KV v2.
//
// Contract:
// - Blocking: call from the daemon's thread pool or the CLI's thread. One
//   thread at a time per client; a copy is a client of its own (its own
//   connection, a copy of the token) for another thread.
// - Errors are values. A transport failure -> unavailable/timeout; a Vault
//   error status -> peer (5xx), not_found (404), conflict (400 on a
//   check-and-set mismatch or "already initialized"), invalid_argument (other
//   4xx; 403 keeps httpStatus = 403). Messages carry Vault's own `errors`
//   text (which never contains a secret) and never a token or key.
// - Tokens, unseal keys and KV values pass through as std::string held by the
//   caller; nothing here logs.
// - Every exchange is reported to the observer (for
//   foundationd_vault_requests_total{code}); code 0 = no response.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "controllers/transport/http_client.hpp"

namespace foundationd::vault {

struct SealStatus {
  bool initialized = false;
  bool sealed = true;
  int threshold = 0;  // t
  int shares = 0;     // n
  int progress = 0;   // keys submitted towards the threshold
};

// sys/init's answer as Vault gave it: nothing is checked before it is
// persisted (init_answer.hpp). A Vault with auto-unseal answers recovery
// keys and no unseal keys.
struct InitResponse {
  std::vector<std::string> keysBase64;
  std::vector<std::string> recoveryKeysBase64;
  std::string rootToken;
  std::string raw;  // the whole JSON body
  InitResponse() = default;
  InitResponse(InitResponse&&) noexcept = default;
  InitResponse& operator=(InitResponse&&) noexcept = default;
  InitResponse(const InitResponse&) = delete;
  InitResponse& operator=(const InitResponse&) = delete;
  ~InitResponse();  // wipes the keys, the token and the raw body
};

struct KvSecret {
  std::map<std::string, std::string> data;  // string fields only (what foundationd writes)
  int version = 0;                          // the version read
  bool deleted = false;                     // the current version is soft-deleted or destroyed
};

struct KvMetadata {
  int currentVersion = 0;  // 0 = never written (or metadata deleted)
};

// sys/health's answer: the state seal-status gives, and whether this node is
// the active one (HTTP 200; 429 standby, 501 uninitialised, 503 sealed).
struct Health {
  bool initialized = false;
  bool sealed = true;
  bool active = false;
};

struct TokenInfo {
  std::vector<std::string> policies;
  long long ttlSeconds = 0;  // 0 = no expiry (root)
  bool renewable = false;
  long long period = 0;
};

using RequestObserver = std::function<void(int code)>;

class VaultClient {
 public:
  explicit VaultClient(std::string address,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : address_(std::move(address)), timeout_(timeout) {}

  void setToken(std::string token) { token_ = std::move(token); }
  void clearToken();  // zeroed, then cleared
  void setObserver(RequestObserver observer) { observer_ = std::move(observer); }
  const std::string& address() const noexcept { return address_; }

  // --- unauthenticated --------------------------------------------------------------
  Result<SealStatus> sealStatus();
  // GET sys/health: every status it documents (200, 429, 472, 473, 501, 503)
  // is an answer; anything else, or a body without `initialized`, is an error.
  Result<Health> health();
  // PUT sys/init, with no client timeout (a slow answer must not be given
  // up: it is the only copy of the keys). Only the HTTP status is checked:
  // persist the answer first, then check it (init_answer.hpp).
  Result<InitResponse> init(int shares, int threshold);
  // PUT sys/unseal with one key; the status after it.
  Result<SealStatus> unseal(const std::string& key);

  // --- with the token ----------------------------------------------------------------
  Status seal();
  // The mounts as Vault lists them: "path/" -> {"type": ..., "options": {...}}.
  Result<nlohmann::json> mounts();
  Status enableKv2(const std::string& path);
  // The rules text, or nullopt when there is no such policy.
  Result<std::optional<std::string>> readPolicy(const std::string& name);
  Status writePolicy(const std::string& name, const std::string& rules);
  Result<TokenInfo> lookupSelf();
  Status renewSelf();
  // A periodic orphan token with these policies (needs root or sudo).
  Result<std::string> createPeriodicToken(const std::vector<std::string>& policies,
                                          const std::string& period,
                                          const std::string& displayName);
  Status revokeToken(const std::string& token);

  // --- KV v2 ---------------------------------------------------------------------------
  // nullopt: nothing there (never written, or metadata deleted). A soft-deleted
  // current version reads as deleted = true.
  Result<std::optional<KvSecret>> kvRead(const std::string& mount, const std::string& path);
  Result<KvMetadata> kvMetadata(const std::string& mount, const std::string& path);
  // Writes a new version with check-and-set `cas` (0: only when none exists);
  // conflict when Vault's current version is not `cas`. Returns the new version.
  Result<int> kvWrite(const std::string& mount, const std::string& path,
                      const std::map<std::string, std::string>& data, int cas);
  // Test and break-glass helpers.
  Status kvDeleteLatest(const std::string& mount, const std::string& path);
  Status kvDeleteMetadata(const std::string& mount, const std::string& path);

  // One raw exchange: `body` may be null. The parsed JSON body (null when empty).
  struct Raw {
    int status = 0;
    nlohmann::json body;
  };
  Result<Raw> call(const std::string& method, const std::string& path,
                   const nlohmann::json* body = nullptr, bool withToken = true);

  // How long a KV v2 call waits out a mount that is still being upgraded to
  // versioned data (a new mount answers 400 "Upgrading from non-versioned to
  // versioned data" for a moment, longer on a loaded host).
  void setKvUpgradeWait(std::chrono::milliseconds wait) { kvUpgradeWait_ = wait; }

  // call() for a KV v2 path: retried, with backoff, while the mount upgrades.
  Result<Raw> kvCall(const std::string& method, const std::string& path,
                     const nlohmann::json* body = nullptr);

 private:
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::string token_;
  RequestObserver observer_;
  std::chrono::milliseconds kvUpgradeWait_ = std::chrono::seconds(30);
  transport::Session session_;  // one connection for this client's requests
};

// Runs `tasks` over up to four connections at once: `client`'s own, on this
// thread, and copies of `client` (a copy opens a connection of its own), one
// thread each; the copies' tokens are zeroed after. Returns when every task
// has run; an exception in a task is rethrown here.
void runConcurrently(VaultClient& client,
                     const std::vector<std::function<void(VaultClient&)>>& tasks);

// Runs `attempt` until `settled(result)` holds, or until the next pause would
// end past `wait`: the pauses start at `first` and double up to 1 s. Returns
// the last result. Blocking, like the client.
template <class Attempt, class Settled>
auto withBackoff(std::chrono::milliseconds wait, std::chrono::milliseconds first, Attempt&& attempt,
                 Settled&& settled) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = first;
  for (;;) {
    auto result = attempt();
    if (settled(result) || std::chrono::steady_clock::now() + pause >= deadline) return result;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

// Vault's `errors` array of a response body, joined ("" when none).
std::string vaultErrors(const nlohmann::json& body);

}  // namespace foundationd::vault
