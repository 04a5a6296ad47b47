// The Vault section of a backup (docs/dr.md "Vault"): OpenBao's integrated
// storage (raft) snapshot API.
//
// - Backup: GET /v1/sys/storage/raft/snapshot with the root token from the
//   state (the endpoint needs sudo on sys/storage/raft/snapshot), and the
//   number of secrets under the KV mount (LIST of its metadata, recursively)
//   for the manifest. A Vault on another storage (`file`) answers the
//   snapshot call with an error: the backup fails with a message that says
//   integrated storage is required (docs/dr.md), never a silent gap.
// - Restore: into a Vault that is uninitialised (a fresh host): it is
//   initialised with throwaway keys (never stored: the snapshot
//   brings its own keyring), unsealed, waited for until it is active, then
//   POST /v1/sys/storage/raft/snapshot-force with the snapshot; Vault then
//   runs on the snapshot's keyring and is unsealed with the keys of the
//   (restored) state, and the restored key count compared with the manifest.
//   An initialised Vault is refused unless `force` (then the state's root
//   token is used and the same happens).
//
// Blocking (libcurl, through VaultClient): the CLI's thread. Nothing here
// logs or returns a secret; the snapshot itself is sealed by Vault's barrier.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "state/store.hpp"

namespace foundationd::backup {

struct VaultSnapshot {
  std::string bytes;       // the snapshot as Vault sent it (gzip'ed tar)
  std::int64_t keys = 0;   // secrets under the KV mount
};

Result<VaultSnapshot> takeVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                                        const state::UnlockedKey& key);

// The secrets under `mount` (KV v2), counted through LIST of its metadata.
Result<std::int64_t> countVaultKeys(const config::VaultSpec& vault, const std::string& token);

struct VaultRestoreOptions {
  bool force = false;          // into an initialised Vault
  std::int64_t expectedKeys = -1;  // from the manifest; -1 = not checked
  std::chrono::milliseconds waitActive{60'000};
};

Status restoreVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                            const state::UnlockedKey& key, const std::string& snapshot,
                            const VaultRestoreOptions& options,
                            const std::function<void(const std::string&)>& report);

}  // namespace foundationd::backup
