#include "state/migrations.hpp"

#include <array>
#include <string>

#include "state/sqlite.hpp"

namespace foundationd::state {

namespace {

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Times are unix milliseconds. Nothing here ever holds a plaintext secret:
// `sealed` is XChaCha20-Poly1305 ciphertext, `value_digest` a keyed BLAKE2b.
constexpr const char* kMigration1 = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per version of a secret; the current version is the highest.
CREATE TABLE secrets (
  kind         TEXT NOT NULL CHECK (kind <> ''),
  name         TEXT NOT NULL CHECK (name <> ''),
  field        TEXT NOT NULL CHECK (field <> ''),
  version      INTEGER NOT NULL CHECK (version >= 1),
  sealed       BLOB NOT NULL,
  value_digest TEXT NOT NULL,  -- hex keyed BLAKE2b-256
  created_at   INTEGER NOT NULL,
  params_json  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params_json)),
  PRIMARY KEY (kind, name, field, version)
) WITHOUT ROWID;

CREATE VIEW current_secrets AS
  SELECT s.* FROM secrets AS s
  WHERE s.version = (SELECT MAX(m.version) FROM secrets AS m
                     WHERE m.kind = s.kind AND m.name = s.name AND m.field = s.field);

-- A stored version may be what alone remains of a secret (Vault's unseal
-- keys): it is never rewritten in place; a rotation adds a version.
CREATE TRIGGER secrets_immutable BEFORE UPDATE ON secrets
BEGIN
  SELECT RAISE(ABORT, 'secrets are immutable: add a new version');
END;

CREATE TABLE applied (
  kind        TEXT NOT NULL,
  name        TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  applied_at  INTEGER NOT NULL,
  PRIMARY KEY (kind, name)
) WITHOUT ROWID;

CREATE TABLE spec_revisions (
  revision   TEXT PRIMARY KEY NOT NULL,
  source     TEXT NOT NULL,
  status     TEXT NOT NULL CHECK (status IN ('seen', 'applied', 'rejected')),
  errors     TEXT NOT NULL DEFAULT '',
  seen_at    INTEGER NOT NULL,
  applied_at INTEGER
);

CREATE TABLE unseal_attempts (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  failures        INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  last_failure_at INTEGER
);
INSERT INTO unseal_attempts (id, failures) VALUES (1, 0);

CREATE TABLE audit_log (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL,
  event  TEXT NOT NULL CHECK (event <> ''),
  fields TEXT NOT NULL DEFAULT '{}'
         CHECK (CASE WHEN json_valid(fields) THEN json_type(fields) = 'object' ELSE 0 END)
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;
)sql";

// The unseal backoff per path: a trusted path (the Unix socket, the systemd
// credential) keeps its own counter, so failures from TCP clients cannot
// lock the operator out. The old single counter carries over to both.
constexpr const char* kMigration2 = R"sql(
CREATE TABLE unseal_limits (
  path            TEXT PRIMARY KEY NOT NULL CHECK (path IN ('trusted', 'remote')),
  failures        INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  last_failure_at INTEGER
) WITHOUT ROWID;
INSERT INTO unseal_limits (path, failures, last_failure_at)
  SELECT 'trusted', failures, last_failure_at FROM unseal_attempts WHERE id = 1;
INSERT INTO unseal_limits (path, failures, last_failure_at)
  SELECT 'remote', failures, last_failure_at FROM unseal_attempts WHERE id = 1;
INSERT OR IGNORE INTO unseal_limits (path, failures) VALUES ('trusted', 0), ('remote', 0);
DROP TABLE unseal_attempts;
)sql";

constexpr std::array kMigrations = {
    Migration{1, "initial schema", kMigration1},
    Migration{2, "unseal backoff per path (trusted, remote)", kMigration2},
};

Status applyOne(sqlite3* db, const Migration& m, std::int64_t nowMs) {
  auto txn = sqlite::Transaction::begin(db);
  if (!txn) return std::move(txn).error();
  // Checked again inside the write lock: another process may have applied it.
  auto check = sqlite::Statement::prepare(db, "SELECT 1 FROM schema_migrations WHERE version = ?");
  if (!check) return std::move(check).error();
  check->bind(1, m.version);
  auto present = check->step();
  if (!present) return std::move(present).error();
  if (*present) return {};
  if (Status st = sqlite::exec(db, m.sql); !st) {
    return Error::make(st.error().code, "schema migration " + std::to_string(m.version) + " (" +
                                            m.description + "): " + st.error().message);
  }
  auto record = sqlite::Statement::prepare(
      db, "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)");
  if (!record) return std::move(record).error();
  record->bind(1, m.version).bindText(2, m.description).bind(3, nowMs);
  if (Status st = record->run(); !st) return st;
  return txn->commit();
}

}  // namespace

int latestSchemaVersion() noexcept {
  return kMigrations.back().version;
}

Result<int> schemaVersion(sqlite3* db) {
  auto q =
      sqlite::Statement::prepare(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!q) return std::move(q).error();
  auto row = q->step();
  if (!row) return std::move(row).error();
  return static_cast<int>(q->getInt(0));
}

Status applyMigrations(sqlite3* db, std::int64_t nowMs) {
  if (Status st = sqlite::exec(db,
                               "CREATE TABLE IF NOT EXISTS schema_migrations ("
                               " version INTEGER PRIMARY KEY,"
                               " description TEXT NOT NULL,"
                               " applied_at INTEGER NOT NULL)");
      !st) {
    return st;
  }
  auto current = schemaVersion(db);
  if (!current) return std::move(current).error();
  if (*current > latestSchemaVersion()) {
    return Error::make(ErrorCode::conflict,
                       "the state database has schema version " + std::to_string(*current) +
                           ", newer than this foundationd knows (" +
                           std::to_string(latestSchemaVersion()) +
                           "): run the newer foundationd, or restore a backup");
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= *current) continue;
    if (Status st = applyOne(db, m, nowMs); !st) return st;
  }
  return {};
}

}  // namespace foundationd::state
