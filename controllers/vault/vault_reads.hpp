// What a Vault converge and its plan read with foundationd's token before
// anything is changed, all at once (runConcurrently): sys/mounts,
// foundationd's own policy, each [vault.policies] entry, each mirrored
// credential's KV secret. Internal to controllers/vault (vault.cpp,
// vault_plan.cpp); the values read are zeroed when cleared or destroyed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/vault/vault_client.hpp"

namespace foundationd::vault {

struct Reads {
  Result<nlohmann::json> mounts;
  Result<std::optional<std::string>> own;                              // foundationd's policy
  std::map<std::string, Result<std::optional<std::string>>> policies;  // [vault.policies]
  std::map<std::string, Result<std::optional<KvSecret>>> kv;           // vault path ->
  Reads() = default;
  Reads(const Reads&) = delete;
  Reads& operator=(const Reads&) = delete;
  ~Reads() { clear(); }
  void clear();
  // The first read refused (403: the token may be gone); null when none was.
  const Error* refusedBy() const;
};

// Every read at once, into `r` (cleared first): sys/mounts and foundationd's
// policy when `withBootstrap`, each [vault.policies] entry, the KV secret at
// each of `alsoRead` and of each credential's vault path.
void readAll(const config::Spec& spec, VaultClient& client, bool withBootstrap, Reads& r,
             const std::vector<std::string>& alsoRead = {});

}  // namespace foundationd::vault
