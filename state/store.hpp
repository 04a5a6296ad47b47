// Store: foundationd's state in one SQLite database (INTERFACES.md "State").
//
// Holds the wrapped data key and KDF parameters, sealed secrets with versions
// (credentials, Vault's init material), the last applied config hash per
// resource, spec revisions, the unseal-attempt counter and the audit log.
//
// Contract:
// - Ownership: the Store owns its sqlite3 handle; it is the process's one
//   writer to the file. Non-copyable, non-movable: hold it by unique_ptr.
// - Threads: every method is safe to call from any thread; calls are
//   serialised by an internal mutex. They block (SQLite commits fsync;
//   initialize/unlock/rekey run Argon2id, outside that mutex), so call them
//   from the thread pool, not the event loop.
// - Durability: WAL with synchronous=FULL; every mutating call has committed
//   and fsynced before it returns. In particular putSecret() returns only once
//   the sealed value is on disk: persist first, then use (write-ahead).
// - Errors are values: not_found (no such row), conflict (already
//   initialised, constraint, newer schema), wrong_passphrase, unavailable
//   (database locked by another process; or the key is locked), invalid_argument
//   (bad names, a key of another store, malformed JSON), io, internal
//   (corruption: a sealed value that fails authentication).
// - Secrets: plaintext only ever passes through; it is stored sealed under the
//   data key with its id ("KIND/NAME/FIELD/vN") as associated data, plus a
//   keyed BLAKE2b digest under a per-store, non-secret digest key so `plan`
//   compares values without the passphrase. Nothing here logs.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "state/sealing.hpp"
#include "state/secret.hpp"
#include "state/sqlite.hpp"

namespace foundationd::state {

using Clock = std::function<std::chrono::system_clock::time_point()>;
using TimePoint = std::chrono::system_clock::time_point;

struct StoreOptions {
  Clock clock;  // default: system_clock::now (tests inject their own)
  std::chrono::milliseconds busyTimeout{5000};
};

// One stored version of a secret, without its value.
struct SecretInfo {
  std::string kind;   // "credential", "vault", ...
  std::string name;   // e.g. "postgres-superuser"
  std::string field;  // e.g. "password"
  int version = 0;
  std::string digest;      // hex keyed BLAKE2b-256 of the plaintext
  std::string paramsJson;  // how it was made (e.g. the generator); never a value
  TimePoint createdAt;
};

struct Secret {
  SecretInfo info;
  SecretBytes value;
};

struct AppliedRecord {
  std::string kind;
  std::string name;
  std::string configHash;
  TimePoint appliedAt;
};

enum class SpecRevisionStatus { seen, applied, rejected };
const char* toString(SpecRevisionStatus status) noexcept;

struct SpecRevision {
  std::string revision;  // git commit, or a content hash for a file source
  std::string source;    // e.g. "file:/srv/foundation/foundation.toml"
  SpecRevisionStatus status = SpecRevisionStatus::seen;
  std::string errors;  // rejected: the diagnostics, one per line
  TimePoint seenAt;    // first sighting
  std::optional<TimePoint> appliedAt;
};

// Where an unseal attempt came from; each path has its own failure counter
// and backoff. trusted: the Unix socket (file permissions decide who) and
// the systemd credential; remote: TCP (loopback included).
enum class UnsealPath { trusted, remote };
const char* toString(UnsealPath path) noexcept;  // "trusted" | "remote"

struct UnsealAttempts {
  std::int64_t failures = 0;  // consecutive failures since the last success
  std::optional<TimePoint> lastFailureAt;
};

struct AuditEntry {
  std::int64_t id = 0;  // increasing, never reused
  TimePoint at;
  std::string event;       // e.g. "unseal.failed", "credential.generated"
  std::string fieldsJson;  // a JSON object
};

class Store {
 public:
  // The database file's name inside a state directory.
  static constexpr const char* kFileName = "state.db";

  // Opens (creating if needed) the database at `file`: its directory is
  // created with mode 0700 when missing, the file (and so its -wal/-shm) is
  // made mode 0600 (a symlink in its place is refused), WAL mode and pending
  // migrations are applied.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& file,
                                             StoreOptions options = {});
  // open(stateDir / kFileName).
  static Result<std::unique_ptr<Store>> openDir(const std::filesystem::path& stateDir,
                                                StoreOptions options = {});

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::filesystem::path& path() const noexcept { return path_; }
  Result<int> schemaVersion();
  Result<std::string> journalMode();  // "wal"

  // --- the data key ---------------------------------------------------------
  Result<bool> isInitialized();
  // Creates the data key and wraps it under `passphrase`. conflict when the
  // store is already initialised; invalid_argument for an empty passphrase.
  Result<UnlockedKey> initialize(std::string_view passphrase, KdfProfile profile);
  // wrong_passphrase (nothing is changed or counted: the caller keeps the
  // unseal-attempt counter); not_found when not initialised.
  Result<UnlockedKey> unlock(std::string_view passphrase);
  // Rewraps the same data key under `newPassphrase` (new salt, `profile`);
  // secrets are untouched. wrong_passphrase leaves everything as it was.
  // Then the WAL is checkpointed and truncated (secure_delete on), so the
  // old wrapped key does not linger there; unavailable when another process
  // keeps it from truncating (the rekey itself is committed then).
  // The data key is unchanged: an old copy of the database or an export
  // still opens with the old passphrase. rotateDataKey closes that.
  Status rekey(std::string_view oldPassphrase, std::string_view newPassphrase, KdfProfile profile);
  // A new random data key, wrapped under `newPassphrase` (which may equal the
  // old one): every stored secret version is opened with the old key and
  // sealed under the new one, the wrapped key and fingerprint replaced, all
  // in ONE transaction (all or nothing); then the WAL is scrubbed as for
  // rekey. Keys unlocked before (a running daemon's) no longer fit the state.
  Status rotateDataKey(std::string_view oldPassphrase, std::string_view newPassphrase,
                       KdfProfile profile);
  Result<KdfParams> kdfParams();
  // The wrapped data key as stored (not secret: it needs the passphrase), for
  // `export-vault-keys`.
  Result<WrappedKey> wrappedKey();

  // --- secrets ------------------------------------------------------------------
  // kind, name and field are non-empty, printable and free of '/'.
  // Seals `value` as the next version (1 for a new secret) and returns that
  // version once committed and fsynced. `paramsJson` must be a JSON object.
  Result<int> putSecret(const UnlockedKey& key, std::string_view kind, std::string_view name,
                        std::string_view field, std::string_view value,
                        std::string_view paramsJson = "{}");
  Result<SecretBytes> getSecret(const UnlockedKey& key, std::string_view kind,
                                std::string_view name, std::string_view field, int version);
  // The highest version, opened. not_found when there is none.
  Result<Secret> currentSecret(const UnlockedKey& key, std::string_view kind, std::string_view name,
                               std::string_view field);
  // The highest version's metadata, without the key; nullopt when none.
  Result<std::optional<SecretInfo>> currentSecretInfo(std::string_view kind, std::string_view name,
                                                      std::string_view field);
  // The current version's digest (hex); not_found when none. No key needed.
  Result<std::string> secretDigest(std::string_view kind, std::string_view name,
                                   std::string_view field);
  // The digest this store would record for `plaintext` (to compare a value
  // observed elsewhere with the stored one).
  Result<std::string> digestOf(std::string_view plaintext);
  // One version's sealed blob as stored (ciphertext under the data key, its
  // id as associated data), for `export-vault-keys`; not_found when none.
  Result<std::string> sealedSecret(std::string_view kind, std::string_view name,
                                   std::string_view field, int version);
  // Current versions of every secret, ordered by kind, name, field.
  Result<std::vector<SecretInfo>> listSecrets();
  // Every version of one secret, oldest first.
  Result<std::vector<SecretInfo>> secretVersions(std::string_view kind, std::string_view name,
                                                 std::string_view field);

  // --- applied config hashes --------------------------------------------------
  Result<std::optional<std::string>> appliedHash(std::string_view kind, std::string_view name);
  Status setAppliedHash(std::string_view kind, std::string_view name, std::string_view hash);
  Status clearAppliedHash(std::string_view kind, std::string_view name);
  Result<std::vector<AppliedRecord>> listApplied();

  // --- spec revisions -------------------------------------------------------------
  // Records a sighting or a verdict. The first sighting fixes seen_at; a later
  // call updates status, source and errors (applied also sets applied_at).
  Status recordSpecRevision(std::string_view revision, std::string_view source,
                            SpecRevisionStatus status, std::string_view errors = {});
  // Newest first (by first sighting), at most `limit`.
  Result<std::vector<SpecRevision>> specRevisions(int limit = 50);

  // --- unseal attempts (survive restarts, for the API's backoff) -------------
  // One counter per UnsealPath. The daemon counts an attempt as a failure
  // *before* its KDF runs (state/unseal_gate.hpp), so a crash mid-KDF leaves
  // it counted; a success resets it.
  Result<UnsealAttempts> unsealAttempts(UnsealPath path = UnsealPath::remote);
  // +1, last_failure_at = now; committed and fsynced before it returns.
  Result<UnsealAttempts> recordUnsealFailure(UnsealPath path = UnsealPath::remote);
  // last_failure_at = now when failures > 0 (the backoff runs from the end
  // of a failed KDF, not its start).
  Status restartUnsealBackoff(UnsealPath path = UnsealPath::remote);
  Status resetUnsealFailures(UnsealPath path = UnsealPath::remote);

  // --- a consistent copy (backups) ----------------------------------------------
  // VACUUM INTO `file`: one transaction's view of the whole database, written
  // to a new file (conflict when it exists) while this store stays usable.
  // The copy holds the same sealed values: it opens only with the passphrase.
  Status copyTo(const std::filesystem::path& file);

  // --- audit log (append-only: there is no update or delete) ------------------
  // `fieldsJson` must be a JSON object and must not contain secret values.
  Result<std::int64_t> appendAudit(std::string_view event, std::string_view fieldsJson = "{}");
  // Entries with id > `afterId`, oldest first, at most `limit`.
  Result<std::vector<AuditEntry>> auditSince(std::int64_t afterId, int limit = 1000);

 private:
  Store(std::filesystem::path path, sqlite::DbPtr db, StoreOptions options);

  std::int64_t nowMs() const;
  Result<WrappedKey> loadWrappedKeyLocked();
  Status checkKeyLocked(const UnlockedKey& key);
  Status scrubLocked();  // wal_checkpoint(TRUNCATE); mu_ held
  Result<std::string> digestLocked(std::string_view plaintext);
  Result<std::optional<SecretInfo>> currentInfoLocked(std::string_view kind, std::string_view name,
                                                      std::string_view field);
  Result<SecretBytes> openVersionLocked(const UnlockedKey& key, std::string_view kind,
                                        std::string_view name, std::string_view field, int version);

  const std::filesystem::path path_;
  const StoreOptions options_;
  std::mutex mu_;     // guards db_ and the statements run on it
  sqlite::DbPtr db_;  // guarded by mu_
};

// "KIND/NAME/FIELD/vVERSION": a secret's identity, its associated data.
std::string secretId(std::string_view kind, std::string_view name, std::string_view field,
                     int version);

}  // namespace foundationd::state
