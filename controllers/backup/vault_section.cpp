// The Vault section: raft snapshot and restore. Contract in vault_section.hpp.
#include "controllers/backup/vault_section.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <sodium.h>

#include "controllers/backup/backup_internal.hpp"
#include "controllers/transport/http_client.hpp"
#include "controllers/vault/vault.hpp"
#include "controllers/vault/vault_client.hpp"

namespace foundationd::backup {

namespace {

constexpr const char* kSnapshotPath = "sys/storage/raft/snapshot";
constexpr const char* kRestorePath = "sys/storage/raft/snapshot-force";
constexpr const char* kNeedsRaft =
    "Vault's snapshot API needs integrated storage: declare storage \"raft\" in OpenBao's "
    "server configuration (docs/dr.md \"Vault\"); a Vault on \"file\" storage is not backed up";

std::string bodyErrors(const std::string& body) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  std::string e = vault::vaultErrors(j);
  if (e.empty()) e = body.substr(0, 200);
  for (auto& c : e) {
    if (c == '\n') c = ' ';
  }
  return e;
}

struct Wiped {
  std::string& s;
  ~Wiped() {
    if (!s.empty()) sodium_memzero(s.data(), s.size());
  }
};

Result<std::int64_t> countUnder(vault::VaultClient& client, const std::string& mount,
                                const std::string& folder, int depth) {
  if (depth > 32) return Error::make(ErrorCode::protocol, "vault: KV folders nested too deep");
  auto r = client.kvCall("LIST", mount + "/metadata/" + folder);
  if (!r) return std::move(r).error();
  if (r->status == 404) return std::int64_t{0};
  if (r->status != 200) {
    return Error::make(ErrorCode::peer, "vault: LIST " + mount + "/metadata/" + folder +
                                            ": HTTP " + std::to_string(r->status) + ": " +
                                            vault::vaultErrors(r->body));
  }
  std::int64_t n = 0;
  const auto& keys = r->body["data"]["keys"];
  if (!keys.is_array()) return n;
  for (const auto& k : keys) {
    if (!k.is_string()) continue;
    const std::string name = k.get<std::string>();
    if (!name.empty() && name.back() == '/') {
      auto sub = countUnder(client, mount, folder + name, depth + 1);
      if (!sub) return sub;
      n += *sub;
    } else {
      ++n;
    }
  }
  return n;
}

}  // namespace

Result<std::int64_t> countVaultKeys(const config::VaultSpec& vault, const std::string& token) {
  vault::VaultClient client(vault.address, std::chrono::seconds(30));
  client.setToken(token);
  return countUnder(client, vault.kvMount, "", 0);
}

std::string vaultCanaryDigest(const std::map<std::string, std::string>& value) {
  internal::Sha256 sha;
  sha.update(nlohmann::json(value).dump());
  return sha.hex();
}

Result<VaultSnapshot> takeVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                                        const state::UnlockedKey& key,
                                        const std::string& backupId) {
  auto material = vault::loadInitMaterial(store, key);
  if (!material) {
    return Error::make(material.error().code,
                       "vault: the state holds no root token for [vault] (" +
                           material.error().message + ")");
  }
  // The canary, written before the snapshot so that the snapshot holds it.
  std::map<std::string, std::string> canary;
  {
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    char hex[sizeof raw * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    canary["backup"] = backupId;
    canary["nonce"] = hex;
  }
  const std::string canaryDigest = vaultCanaryDigest(canary);
  {
    vault::VaultClient client(vault.address, std::chrono::seconds(30));
    client.setToken(material->rootToken);
    auto meta = client.kvMetadata(vault.kvMount, kVaultCanaryPath);
    Result<int> written = meta ? client.kvWrite(vault.kvMount, kVaultCanaryPath, canary,
                                                meta->currentVersion)
                               : Result<int>(meta.error());
    client.clearToken();
    if (!written) {
      return Error::make(written.error().code,
                         "vault: writing the backup canary " + vault.kvMount + "/" +
                             kVaultCanaryPath + " (docs/dr.md \"Verify\"): " +
                             written.error().message);
    }
  }
  transport::PeerRequest req;
  req.method = "GET";
  req.url = vault.address + "/v1/" + kSnapshotPath;
  req.timeout = std::chrono::minutes(30);
  req.headers.emplace_back("X-Vault-Token", material->rootToken);
  auto resp = transport::peerRequest(req);
  for (auto& [k, v] : req.headers) sodium_memzero(v.data(), v.size());
  if (!resp) return Error::make(resp.error().code, "vault: snapshot: " + resp.error().message);
  if (resp->status != 200) {
    return Error::make(ErrorCode::unavailable,
                       "vault: GET /v1/" + std::string(kSnapshotPath) + " answered HTTP " +
                           std::to_string(resp->status) + " (" + bodyErrors(resp->body) +
                           "): " + kNeedsRaft);
  }
  if (resp->body.size() < 64) {
    return Error::make(ErrorCode::protocol, "vault: the snapshot is " +
                                                std::to_string(resp->body.size()) +
                                                " bytes: not a snapshot");
  }
  auto keys = countVaultKeys(vault, material->rootToken);
  if (!keys) return std::move(keys).error();
  return VaultSnapshot{std::move(resp->body), *keys, kVaultCanaryPath, canaryDigest};
}

Status restoreVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                            const state::UnlockedKey& key, const std::string& snapshot,
                            const VaultRestoreOptions& options,
                            const std::function<void(const std::string&)>& report) {
  vault::VaultClient client(vault.address, std::chrono::seconds(30));
  // Just started (a fresh host): it answers within seconds.
  auto seal = client.sealStatus();
  for (const auto until = std::chrono::steady_clock::now() + options.waitActive;
       !seal && std::chrono::steady_clock::now() < until; seal = client.sealStatus()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (!seal) return Error::make(seal.error().code, "vault: " + seal.error().message);
  std::string token;
  Wiped wipeToken{token};
  if (!seal->initialized) {
    // A throwaway init, kept in memory only: the snapshot carries the keyring
    // and tokens that count. Same shares and threshold as the spec's: the
    // running Vault keeps the seal configuration it was initialised with,
    // and the restored keys must fit it.
    auto init = client.init(vault.keyShares, vault.keyThreshold);
    if (!init) return Error::make(init.error().code, "vault: init before the restore: " +
                                                          init.error().message);
    if (init->keysBase64.size() < static_cast<std::size_t>(vault.keyThreshold) ||
        init->rootToken.empty()) {
      return Error::make(ErrorCode::protocol, "vault: the init answer has no keys or token");
    }
    for (int i = 0; i < vault.keyThreshold; ++i) {
      auto u = client.unseal(init->keysBase64[static_cast<std::size_t>(i)]);
      if (!u) return Error::make(u.error().code, "vault: unseal after init: " + u.error().message);
    }
    token = init->rootToken;
    report("vault: initialised with a throwaway key to take the snapshot");
  } else {
    if (!options.force) {
      return Error::make(ErrorCode::conflict,
                         "vault: " + vault.container + " is initialised: a restore replaces "
                         "all its data (--force restores over it); nothing was restored");
    }
    if (seal->sealed) {
      auto u = vault::unsealFromState(client, store, key);
      if (!u) return Error::make(u.error().code, "vault: " + u.error().message);
    }
    auto material = vault::loadInitMaterial(store, key);
    if (!material) return Error::make(material.error().code, "vault: " + material.error().message);
    token = material->rootToken;
  }
  if (auto st = vault::waitUntilActive(client, options.waitActive); !st) return st;
  transport::PeerRequest req;
  req.method = "POST";
  req.url = vault.address + "/v1/" + kRestorePath;
  req.timeout = std::chrono::minutes(30);
  req.headers.emplace_back("X-Vault-Token", token);
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  req.body = snapshot;
  auto resp = transport::peerRequest(req);
  for (auto& [k, v] : req.headers) sodium_memzero(v.data(), v.size());
  if (!resp) return Error::make(resp.error().code, "vault: restore: " + resp.error().message);
  if (resp->status != 204 && resp->status != 200) {
    return Error::make(ErrorCode::peer, "vault: POST /v1/" + std::string(kRestorePath) +
                                            " answered HTTP " + std::to_string(resp->status) +
                                            " (" + bodyErrors(resp->body) + ")");
  }
  report("vault: snapshot restored (" + std::to_string(snapshot.size()) + " bytes)");
  // Now on the snapshot's keyring: unsealed with the restored state's keys.
  const auto until = std::chrono::steady_clock::now() + options.waitActive;
  for (;;) {
    auto s = client.sealStatus();
    if (s && s->sealed) {
      auto u = vault::unsealFromState(client, store, key);
      if (!u) return Error::make(u.error().code, "vault: unseal with the restored keys: " +
                                                     u.error().message);
      if (!u->sealed) break;
    } else if (s && !s->sealed) {
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      return Error::make(ErrorCode::timeout, "vault: not unsealed after the restore");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (auto st = vault::waitUntilActive(client, options.waitActive); !st) return st;
  report("vault: unsealed with the keys of the state");
  auto material = vault::loadInitMaterial(store, key);
  if (!material) return Error::make(material.error().code, "vault: " + material.error().message);
  auto keys = countVaultKeys(vault, material->rootToken);
  if (!keys) return Error::make(keys.error().code, keys.error().message);
  if (options.expectedKeys >= 0 && *keys != options.expectedKeys) {
    return Error::make(ErrorCode::protocol,
                       "vault: restored, but it holds " + std::to_string(*keys) +
                           " secrets under " + vault.kvMount + "/ and the manifest " +
                           std::to_string(options.expectedKeys));
  }
  report("vault: " + std::to_string(*keys) + " secrets under " + vault.kvMount + "/" +
         (options.expectedKeys >= 0 ? ", as in the manifest" : ""));
  return Status::success();
}

std::string scratchVaultConfig(const std::string& dataDir) {
  // disable_mlock: older images need it without IPC_LOCK (OpenBao 2.4 warns
  // that it is unknown, and runs).
  return "ui = false\n"
         "disable_mlock = true\n"
         "api_addr = \"http://127.0.0.1:8200\"\n"
         "cluster_addr = \"http://127.0.0.1:8201\"\n"
         "storage \"raft\" {\n"
         "  path = \"" + dataDir + "\"\n"
         "  node_id = \"fd-verify\"\n"
         "}\n"
         "listener \"tcp\" {\n"
         "  address = \"0.0.0.0:8200\"\n"
         "  tls_disable = true\n"
         "}\n";
}

namespace {

ScratchVaultOutcome failed(std::string reason, std::string detail) {
  ScratchVaultOutcome o;
  o.reason = std::move(reason);
  o.detail = std::move(detail);
  return o;
}

// Unseals with `keys` (each until Vault says unsealed); the status after.
Result<vault::SealStatus> unsealWith(vault::VaultClient& client,
                                     const std::vector<std::string>& keys) {
  auto s = client.sealStatus();
  if (!s) return s;
  for (const auto& k : keys) {
    if (!s->sealed) break;
    s = client.unseal(k);
    if (!s) return s;
  }
  return s;
}

}  // namespace

ScratchVaultOutcome checkScratchVault(const std::string& address, const std::string& snapshot,
                                      const std::vector<std::string>& unsealKeys,
                                      const std::string& rootToken,
                                      const ScratchVaultExpect& expect,
                                      const std::function<void(const std::string&)>& report) {
  vault::VaultClient client(address, std::chrono::seconds(30));
  auto seal = client.sealStatus();
  for (const auto until = std::chrono::steady_clock::now() + expect.wait;
       !seal && std::chrono::steady_clock::now() < until; seal = client.sealStatus()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (!seal) return failed("setup", "the scratch OpenBao does not answer: " + seal.error().message);
  if (seal->initialized) return failed("setup", "the scratch OpenBao is already initialised");
  // Throwaway keys, in memory only: the snapshot brings its own keyring. The
  // same shares and threshold as the keys that must open it.
  std::string token;
  Wiped wipeToken{token};
  {
    const int shares = std::max(1, expect.shares);
    const int threshold = std::clamp(expect.threshold, 1, shares);
    auto init = client.init(shares, threshold);
    if (!init) return failed("setup", "init of the scratch OpenBao: " + init.error().message);
    if (init->keysBase64.size() < static_cast<std::size_t>(threshold) ||
        init->rootToken.empty()) {
      return failed("setup", "the scratch OpenBao's init answer has no keys or token");
    }
    auto u = unsealWith(client, init->keysBase64);  // stops at the threshold
    if (!u || u->sealed) {
      return failed("setup", "the scratch OpenBao does not unseal after its init" +
                                 (u ? std::string() : ": " + u.error().message));
    }
    token = init->rootToken;
  }
  if (auto st = vault::waitUntilActive(client, expect.wait); !st) {
    return failed("setup", "the scratch OpenBao: " + st.error().message);
  }
  {
    transport::PeerRequest req;
    req.method = "POST";
    req.url = address + "/v1/" + kRestorePath;
    req.timeout = std::chrono::minutes(30);
    req.headers.emplace_back("X-Vault-Token", token);
    req.headers.emplace_back("Content-Type", "application/octet-stream");
    req.body = snapshot;
    auto resp = transport::peerRequest(req);
    for (auto& [k, v] : req.headers) sodium_memzero(v.data(), v.size());
    if (!resp) return failed("restore", "POST /v1/" + std::string(kRestorePath) + ": " +
                                            resp.error().message);
    if (resp->status != 204 && resp->status != 200) {
      return failed("restore", "POST /v1/" + std::string(kRestorePath) + " answered HTTP " +
                                   std::to_string(resp->status) + " (" + bodyErrors(resp->body) +
                                   ")");
    }
  }
  report("vault: the snapshot (" + std::to_string(snapshot.size()) +
         " bytes) restored into the scratch OpenBao");
  // Now on the snapshot's keyring: the backup's keys must unseal it. A forced
  // restore from another cluster reseals the node, but not at once: for a moment
  // seal-status still answers for the core that was unsealed with the throwaway
  // keys, whose tokens are not the snapshot's. Only "sealed" ends the wait.
  const auto until = std::chrono::steady_clock::now() + expect.wait;
  for (;;) {
    auto s = client.sealStatus();
    if (s && s->sealed) {
      auto u = unsealWith(client, unsealKeys);
      if (!u) {
        return failed(u.error().code == ErrorCode::invalid_argument ? "mismatch" : "restore",
                      "the unseal keys do not unseal the restored snapshot: " +
                          u.error().message);
      }
      if (u->sealed) {
        return failed("mismatch", "still sealed after all " + std::to_string(unsealKeys.size()) +
                                      " unseal keys (threshold " + std::to_string(u->threshold) +
                                      "): the keys do not fit the restored snapshot");
      }
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      return failed("restore", s ? std::string("the scratch OpenBao did not reseal on the "
                                               "snapshot's keyring after the restore")
                                 : "the scratch OpenBao does not answer after the restore: " +
                                       s.error().message);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (auto st = vault::waitUntilActive(client, expect.wait); !st) {
    return failed("restore", "after the restore: " + st.error().message);
  }
  report("vault: unsealed with the keys of the backup's state");
  client.setToken(rootToken);
  std::string detail = "snapshot restored into a scratch OpenBao, unsealed with the state's keys";
  auto keys = countUnder(client, expect.kvMount, "", 0);
  if (!keys) {
    client.clearToken();
    return failed(keys.error().code == ErrorCode::peer ? "restore" : "mismatch",
                  "counting the secrets under " + expect.kvMount + "/ with the restored root "
                  "token: " + keys.error().message);
  }
  if (expect.keys >= 0 && *keys != expect.keys) {
    client.clearToken();
    return failed("mismatch", "the restored Vault holds " + std::to_string(*keys) +
                                  " secrets under " + expect.kvMount + "/ and the manifest " +
                                  std::to_string(expect.keys));
  }
  detail += ", " + std::to_string(*keys) + " secrets under " + expect.kvMount + "/" +
            (expect.keys >= 0 ? " as in the manifest" : " (the manifest records no count)");
  if (expect.canaryPath.empty()) {
    client.clearToken();
    ScratchVaultOutcome o;
    o.ok = true;
    o.detail = detail + "; canary not checked: the backup has none (taken before canaries)";
    return o;
  }
  auto canary = client.kvRead(expect.kvMount, expect.canaryPath);
  client.clearToken();
  if (!canary) {
    return failed("restore", "reading the canary " + expect.kvMount + "/" + expect.canaryPath +
                                 " with the restored root token: " + canary.error().message);
  }
  if (!*canary || (*canary)->deleted) {
    return failed("mismatch", "the canary " + expect.kvMount + "/" + expect.canaryPath +
                                  " is not in the restored Vault");
  }
  std::string digest = vaultCanaryDigest((*canary)->data);
  for (auto& [k, v] : (*canary)->data) sodium_memzero(v.data(), v.size());
  if (digest != expect.canarySha256) {
    return failed("mismatch", "the canary " + expect.kvMount + "/" + expect.canaryPath +
                                  " read back differs from the manifest's (SHA-256 " +
                                  digest.substr(0, 16) + "..., the manifest " +
                                  expect.canarySha256.substr(0, 16) + "...)");
  }
  ScratchVaultOutcome o;
  o.ok = true;
  o.detail = detail + ", the canary " + expect.canaryPath + " equal to the manifest's";
  return o;
}

}  // namespace foundationd::backup
