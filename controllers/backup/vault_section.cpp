// The Vault section: raft snapshot and restore. Contract in vault_section.hpp.
#include "controllers/backup/vault_section.hpp"

#include <chrono>
#include <thread>

#include <sodium.h>

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
  auto r = client.call("LIST", mount + "/metadata/" + folder);
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

Result<VaultSnapshot> takeVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                                        const state::UnlockedKey& key) {
  auto material = vault::loadInitMaterial(store, key);
  if (!material) {
    return Error::make(material.error().code,
                       "vault: the state holds no root token for [vault] (" +
                           material.error().message + ")");
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
  return VaultSnapshot{std::move(resp->body), *keys};
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

}  // namespace foundationd::backup
