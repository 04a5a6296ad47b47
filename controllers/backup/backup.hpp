// The backup controller (docs/dr.md): one backup is a set of restic
// snapshots tagged `foundationd` and `fd-backup=ID`, one per section, the
// manifest last; `backup list` reads them back; restore verifies before it
// writes anything.
//
// Sections of this version:
// - postgres/INSTANCE/globals: `pg_dumpall --globals-only`, and
//   postgres/INSTANCE/db/NAME: `pg_dump -Fc` of every database the instance
//   holds (spec-declared or not; templates excepted), each run INSIDE the
//   instance's container over a binary-safe docker exec stream
//   (Tty=false, demultiplexed), piped into `restic backup --stdin`; the
//   stream's SHA-256 and size are computed on the way. Row counts per table
//   are taken just before each dump.
// - state: foundationd's own database (Store::copyTo: VACUUM INTO a private
//   temporary directory, then into restic), with the spec revision and the
//   images in force in the manifest.
// - forge/data (forge_section.hpp), buckets/NAME (bucket_section.hpp), vault
//   (vault_section.hpp).
// - manifest: manifest.hpp, written last.
//
// Thread: the io_context's (DockerApi, Restic). Store calls block briefly
// (one VACUUM INTO); fine for the CLI, which is the only caller today.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/spec.hpp"
#include "controllers/backup/manifest.hpp"
#include "controllers/backup/restic.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"
#include "state/store.hpp"

namespace foundationd::backup {

// The repository password in the sealed state (kind "backup", name
// "restic", field "password").
inline constexpr const char* kSecretKind = "backup";
inline constexpr const char* kSecretName = "restic";
inline constexpr const char* kSecretField = "password";

// The restic repository of a target, with the back end's keys resolved
// (unavailable when a referenced credential is not there).
Result<Repository> repositoryFor(const config::Spec& spec, const config::BackupTarget& target,
                                 const docker::SecretResolver& secrets);

// The repository password from the state; with `create`, a new one (32
// random bytes, base64url) is generated and made durable first when there
// is none. not_found without `create`.
Result<state::SecretBytes> resticPassword(state::Store& store, const state::UnlockedKey& key,
                                          bool create);

// The current UTC time as a manifest (and a recovery bundle) records it:
// "2026-12-03T12:00:00Z".
std::string nowRfc3339();

// Progress lines for the operator ("postgres/main/db/appdb: 1.2 MiB").
using Report = std::function<void(const std::string& line)>;

struct BackupContext {
  docker::DockerApi& docker;
  const config::Spec& spec;
  state::Store& store;
  std::string stateDir;  // where the temporary copy of the state is made
  std::string foundationdVersion;
  std::string execUser = "postgres";  // OS user pg_dump runs as in the container
  std::chrono::milliseconds execTimeout{std::chrono::hours(12)};
  // Unpauses a container without the io_context (blocking): the fallback
  // of a freeze whose coroutine is destroyed (freeze.hpp). May be empty.
  std::function<void(const std::string& container)> unpauseNow = nullptr;
  // Why this backup is taken, for its manifest and record ("" = on request or
  // schedule; e.g. "before an upgrade: postgres.main (container pg: a -> b), revision R").
  std::string reason{};
  // The unlocked key, for the Vault section (its root token and keys are in
  // the state); null: Vault is listed as not included.
  const state::UnlockedKey* key = nullptr;
  bool forceVault = false;  // restore: over an initialised Vault
  // Resolves the [s3.*] keys of the bucket sections (bucket_section.hpp);
  // null: the buckets are listed as not included.
  const docker::SecretResolver* secrets = nullptr;
};

// Takes one backup into `repo` (initialised first when there is none) and
// returns its manifest. A failure leaves no manifest: the backup is then
// listed as incomplete, never as a backup.
Task<Result<Manifest>> takeBackup(BackupContext& ctx, Restic& repo, const Report& report);

struct BackupEntry {
  std::string id;
  std::string time;  // of its first snapshot
  bool complete = false;
  std::optional<Manifest> manifest;  // complete ones
  std::vector<std::string> sections;  // the sections present (incomplete ones too)
  // Section -> its snapshot id in THIS repository (a copy's ids differ from
  // the ones the manifest recorded where the backup was taken).
  std::map<std::string, std::string> snapshotOf;
};
// Every backup in the repository, oldest first, manifests read back.
Task<Result<std::vector<BackupEntry>>> listBackups(Restic& repo);

struct RestoreRequest {
  std::string backupId;  // "" = the newest complete one
  std::string section;   // a section name or prefix ("postgres/main")
  bool force = false;    // restore into a database that has data
  std::string stateOut;  // the state section: the file it is written to
};

// Restores the selected sections. Before anything is written: the
// repository is checked, the manifest read, and every selected section read
// back in full and compared with its manifest size and SHA-256; a database
// that has data is refused without `force`. Volumes and databases are never
// dropped.
Task<Status> restore(BackupContext& ctx, Restic& repo, const RestoreRequest& request,
                     const Report& report);

}  // namespace foundationd::backup
