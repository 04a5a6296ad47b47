// `foundationd backup verify [ID]` (docs/dr.md "Verify"): a backup restored
// into scratch containers and compared with its manifest, so that a backup
// is known to restore before the day it must.
//
// What it does, in order:
// 1. `restic check` of the repository; the backup chosen (default the newest
//    complete one; an INCOMPLETE one is refused); every section read back in
//    full and its size and SHA-256 compared with the manifest (as restore).
// 2. Scratch resources, all named `fd-verify-ID-RRRR-...` (RRRR: 16 random
//    bits, so two verifies never share one) and labelled
//    `foundationd.verify=ID`, `foundationd.verify-project=PROJECT` (never the
//    project's own labels: the converge and its prune do not see them):
//    ONE network created with `Internal: true` (no route out), containers
//    with no published port. Leftovers of a verify that was killed are
//    removed first (by the project label above).
// 3. postgres/INSTANCE: a scratch PostgreSQL from the image the manifest
//    records for the instance's container, on the scratch network; the
//    globals and every database restored with restore.cpp's own steps
//    (restoreGlobals, restoreDatabase); every table's row count compared
//    with the manifest (a table missing or beyond it is a difference too).
// 4. forge/data: a scratch container of the forge's image, no network at
//    all; the section's tar extracted into it; for each repository of the
//    manifest, its HEAD compared and `git fsck` run.
// 5. Everything the verify created is removed, on success and on failure:
//    the containers with their anonymous volumes (removeScratchContainer),
//    then the network. Nothing else is touched.
//
// 5a. vault: a scratch OpenBao of the image the manifest records for the
//    [vault] container, on the scratch network, its configuration (raft
//    storage inside the container) put in by the archive API before it
//    starts. foundationd reaches its API from the host at the container's
//    address on the internal network (a Linux host reaches the bridge of an
//    internal network: only the route out is cut). Initialised with one
//    throwaway share, unsealed, the snapshot (read back, SHA-256 checked)
//    restored with snapshot-force; then unsealed with the unseal keys the
//    backup's OWN state section holds (read back into a private directory
//    and opened with the daemon's data key; the current state's keys when
//    that copy does not open with it, e.g. after a data-key rotation, and the
//    check says so); the canary the backup wrote (vault_section.hpp) read
//    with the restored root token and its SHA-256 compared, the secrets
//    under the KV mount counted and compared. No key or token is on a
//    command line or in a message.
//
// Not verified by this version (listed in the result as not checked): the
// state section (its SHA-256 is compared; it is opened only for the Vault
// keys), a vault canary of a backup taken before canaries.
//
// The result (VerifyRecord) is kept in the sealed state's small-records
// table (kind "backup-verify": one per backup id, "last", "last-ok"), so
// `backup list`, `status`, GET /v1/status and /metrics report it.
//
// Thread: verifyBackup on the io_context (Docker, restic); the Vault check's
// HTTP calls block it (libcurl, vault_section.hpp), as the backup's own Vault
// section does: fine for the CLI, the only caller. The rest is pure or a
// short Store call.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "controllers/backup/backup.hpp"
#include "controllers/backup/run.hpp"
#include "state/store.hpp"

namespace foundationd::backup {

// Why a verify failed, for /metrics (a bounded vocabulary).
inline constexpr const char* kVerifyReasons[] = {"setup", "integrity", "restore", "mismatch",
                                                 "cleanup"};

struct VerifyCheck {
  std::string section;  // "postgres/main", "forge/data", "sections", ...
  bool ok = false;
  std::string reason;   // one of kVerifyReasons when not ok
  std::string detail;   // what matched, or what differed
};

struct VerifyRecord {
  std::string id;  // the backup verified ("" when none could be chosen)
  std::int64_t startedUnixMs = 0;
  std::int64_t finishedUnixMs = 0;
  bool ok = false;
  std::string reason;  // the first failed check's (kVerifyReasons), "" when ok
  std::string error;   // one line: the first failure; never a secret
  std::vector<VerifyCheck> checks;
  std::vector<std::string> notChecked;  // sections this version does not restore
  std::string by;                       // "cli" or "daemon"
};

std::string toJson(const VerifyRecord& r);
Result<VerifyRecord> parseVerifyRecord(std::string_view text);

// Writes `r` as backup r.id's verification, as the last one, and as the
// last successful one when it is.
Status recordVerify(state::Store& store, const VerifyRecord& r);
// Backup `id`'s last verification; nullopt when it was never verified.
Result<std::optional<VerifyRecord>> readVerify(state::Store& store, std::string_view id);
// The last verification of any backup, and the last successful one.
struct VerifyHistory {
  std::optional<VerifyRecord> last;
  std::optional<VerifyRecord> lastOk;
};
Result<VerifyHistory> readVerifyHistory(state::Store& store);

// Whether a backup was chosen and checked (false: an incomplete or unknown
// backup was asked for, or none is complete: nothing to record).
bool wasChosen(const VerifyRecord& r);

// What `backup list` and `status` print for a backup: "verified",
// "failed: REASON" or "never".
std::string verifiedColumn(const std::optional<VerifyRecord>& r);

// --- pure helpers -------------------------------------------------------------

// How long after a failed verify the daemon tries again (at most `every`).
inline constexpr std::chrono::hours kVerifyRetryAfterFailure{1};

// When the daemon's next verify is due ([backup] verify_schedule = `every`):
// nullopt when there is nothing to verify (no complete backup) or `every` is
// nullopt ("off"). Never verified: as soon as a backup is complete. After a
// successful verify, `every` after it finished; after a failed one, `retry`
// after it (at most `every`). A verify by the CLI counts like the daemon's.
std::optional<std::int64_t> verifyDueUnixMs(const RunHistory& backups,
                                            const VerifyHistory& verifies,
                                            std::optional<std::chrono::milliseconds> every,
                                            std::chrono::milliseconds retry =
                                                kVerifyRetryAfterFailure);

// The prefix of every scratch resource: "fd-verify-ID-RRRR" (RRRR: 4 hex).
std::string scratchPrefix(std::string_view backupId, std::uint16_t random);
// The image a container ran when the backup was taken: the id in the
// manifest's "ref (sha256:...)" (else the ref alone); nullopt when the
// manifest has no image for it.
std::optional<std::string> manifestImage(const Manifest& m, const std::string& container);

// An uncompressed tar archive (ustar) of `entries`, owner root: what
// DockerApi::putArchive extracts into a container (the scratch OpenBao's
// configuration). A path ending in '/' is a directory (no content). Paths
// are relative and at most 99 bytes. Pure.
struct TarEntry {
  std::string path;
  std::string content{};
  unsigned mode = 0644;
};
std::string tarArchive(const std::vector<TarEntry>& entries);

struct VerifyRequest {
  std::string backupId;  // "" = the newest complete one
};

// Never fails as a whole: what went wrong is in the record. `report` gets a
// line per step.
Task<VerifyRecord> verifyBackup(BackupContext& ctx, Restic& repo, const VerifyRequest& request,
                                const Report& report, std::string by);

}  // namespace foundationd::backup
