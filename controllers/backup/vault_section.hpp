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

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>
#include <string>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "state/store.hpp"

namespace foundationd::backup {

// The canary (docs/dr.md "Verify"): just before the snapshot, the backup
// writes {"backup": ID, "nonce": 32 random hex digits} to
// KV_MOUNT/foundationd/backup-canary with the root token; the manifest
// records the path and vaultCanaryDigest of the value (not the value: a
// random nonce is no secret, but nothing read from Vault is ever printed).
// `backup verify` reads it back from the snapshot restored into a scratch
// OpenBao and compares the digest.
inline constexpr const char* kVaultCanaryPath = "foundationd/backup-canary";

// Hex SHA-256 of a KV value as its JSON object (keys in order): the same
// text for the same fields whatever order Vault answers them in. Pure.
std::string vaultCanaryDigest(const std::map<std::string, std::string>& value);

struct VaultSnapshot {
  std::string bytes;       // the snapshot as Vault sent it (gzip'ed tar)
  std::int64_t keys = 0;   // secrets under the KV mount (the canary included)
  std::string canaryPath;    // kVaultCanaryPath
  std::string canarySha256;  // vaultCanaryDigest of what was written
};

// Writes the canary of backup `backupId`, then takes the snapshot.
Result<VaultSnapshot> takeVaultSnapshot(const config::VaultSpec& vault, state::Store& store,
                                        const state::UnlockedKey& key,
                                        const std::string& backupId);

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

// --- backup verify: a scratch OpenBao (verify.hpp) ---------------------------

// The scratch server's configuration: integrated storage under `dataDir`,
// plain HTTP on 0.0.0.0:8200 (the scratch network is internal and nothing
// is published). Pure.
std::string scratchVaultConfig(const std::string& dataDir);

// What the restored Vault must show (from the manifest).
struct ScratchVaultExpect {
  std::string kvMount;
  std::string canaryPath;    // "" = the backup has no canary: not checked
  std::string canarySha256;
  std::int64_t keys = -1;    // -1 = not recorded
  // The seal configuration of the Vault the keys come from: the throwaway
  // init uses it, as a running Vault keeps the seal configuration it was
  // initialised with and the restored keys must fit it.
  int shares = 1;
  int threshold = 1;
  std::chrono::milliseconds wait{90'000};  // each wait for the server
};

struct ScratchVaultOutcome {
  bool ok = false;
  std::string reason;  // "setup", "restore" or "mismatch" when not ok
  std::string detail;  // what matched, or what went wrong; never a secret
};

// Against the scratch OpenBao at `address` (uninitialised, just started):
// initialised with throwaway keys (expect.shares/threshold; kept in memory
// only), unsealed,
// POST sys/storage/raft/snapshot-force with `snapshot`; then unsealed with
// `keys` (the unseal keys and root token the backup's own state holds),
// the canary read with that root token and compared, and the secrets under
// the KV mount counted. Blocking (libcurl; the CLI's thread).
ScratchVaultOutcome checkScratchVault(const std::string& address, const std::string& snapshot,
                                      const std::vector<std::string>& unsealKeys,
                                      const std::string& rootToken,
                                      const ScratchVaultExpect& expect,
                                      const std::function<void(const std::string&)>& report);

}  // namespace foundationd::backup
