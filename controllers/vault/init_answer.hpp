// Vault's init answer: the only copy of Vault's unseal (or recovery) keys and
// root token. Persisted first, exactly as Vault gave it, then checked.
//
// saveInitAnswer seals the answer (keys_base64, recovery_keys_base64,
// root_token, the share counts and the whole raw answer, as one JSON secret
// vault/init/material) and commits it (fsync). When the commit fails it
// writes a sealed fallback file into the state directory at once, in the
// export-vault-keys format (`foundationd import-vault-keys FILE` restores it),
// and keeps retrying the commit (`attempts` times, then it returns an error
// naming the fallback file). When neither the commit nor the fallback file
// can be written it keeps retrying both: the keys are never discarded.
//
// checkInitAnswer then says whether the answer is usable by foundationd
// (unseal keys for every share and a root token). An answer with recovery
// keys only (a Vault with auto-unseal) is kept in the state as it is and
// reported as a protocol error, never thrown away.
//
// Thread: blocking (SQLite, fsync, sleeps between attempts). Nothing here
// logs a secret; messages to stderr (the init helper's) name files only.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "common/result.hpp"
#include "controllers/vault/vault_client.hpp"
#include "state/store.hpp"

namespace foundationd::vault {

struct SaveOptions {
  int attempts = 10;                            // commits tried before giving up (fallback kept)
  std::chrono::milliseconds delay{200};         // first pause between attempts, doubled up to 5 s
};

// The version stored. Errors: internal, naming the fallback file when the
// state could not take the answer.
Result<int> saveInitAnswer(state::Store& store, const state::UnlockedKey& key,
                           const InitResponse& answer, int shares, int threshold,
                           const std::filesystem::path& stateDir, SaveOptions options = {});

// Success when the answer has `shares` unseal keys and a root token.
Status checkInitAnswer(const InitResponse& answer, int shares);

// The export-vault-keys file (format "foundationd-vault-keys" 1): `sealed` is
// vault/init/material version `version` sealed under the data key `wrapped`
// wraps; it opens only with the master passphrase.
std::string keysFileText(const state::WrappedKey& wrapped, int version,
                         const std::string& paramsJson, const std::string& sealed);

// The fallback files' names: vault-init-answer.<unix ms>.json in the state directory.
inline constexpr const char* kFallbackPrefix = "vault-init-answer.";

}  // namespace foundationd::vault
