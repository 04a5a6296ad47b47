// The recovery bundle (docs/dr.md "The recovery bundle"): what a restore on
// a fresh host needs beyond the spec repository and the master passphrase,
// sealed under that passphrase, for the operator to commit into the spec
// repository.
//
// Contents (sealed): the restic repository password, and each backup
// target's restic location with the environment its back end needs (the
// offsite S3 key pair). Outside the seal: the format, the project, when it
// was written and the wrapped key (salt, Argon2id parameters) — nothing
// secret, and all of it bound to the sealed part as associated data.
//
// Scheme: the state's own (state/sealing.hpp), reused, not re-implemented: a
// fresh random data key wrapped under the passphrase (Argon2id ->
// XChaCha20-Poly1305), the contents sealed under that data key
// (XChaCha20-Poly1305). The bundle has its own data key, so it never
// reveals the state's.
//
// Contract:
// - Pure functions of their arguments plus the CSPRNG; no I/O. Argon2id runs
//   here: 0.1 s to seconds (call off any event loop).
// - openRecoveryBundle: wrong_passphrase when the passphrase does not unwrap
//   the key (a wrong passphrase, or an altered key block: the two cannot be
//   told apart); protocol when the sealed part fails authentication
//   (altered, truncated, or its header edited); invalid_argument when the
//   text is not a bundle at all. Messages never carry a secret.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "controllers/backup/restic.hpp"
#include "state/sealing.hpp"
#include "state/secret.hpp"

namespace foundationd::backup {

inline constexpr const char* kRecoveryFormat = "foundationd-recovery-bundle";

struct RecoveryContents {
  std::string project;
  std::string createdAt;  // RFC 3339
  state::SecretBytes resticPassword;
  // "local", "offsite": the target's repository (location, back-end env).
  std::vector<std::pair<std::string, Repository>> targets;
  // The target of this name, or nullptr.
  const Repository* target(std::string_view name) const;
};

// The bundle's text (JSON, ends with a newline). invalid_argument for an
// empty passphrase or contents without a password.
Result<std::string> sealRecoveryBundle(const RecoveryContents& contents,
                                       std::string_view passphrase, state::KdfProfile profile);

// See the contract for the errors.
Result<RecoveryContents> openRecoveryBundle(std::string_view text, std::string_view passphrase);

}  // namespace foundationd::backup
