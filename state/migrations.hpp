// Numbered schema migrations of the state database, private to state/.
//
// Contract: applyMigrations() creates `schema_migrations` if needed, then
// applies every migration whose number is not recorded there, in order, each
// in its own transaction (BEGIN IMMEDIATE ... COMMIT, recording its number), so
// a crash leaves the schema at a whole migration. Re-running is a no-op. A
// database recording a migration newer than this binary knows is refused
// (ErrorCode::conflict): it was written by a newer foundationd.
// Migrations are append-only: never edit one that has shipped, add the next.
#pragma once

#include <cstdint>

#include <sqlite3.h>

#include "common/result.hpp"

namespace foundationd::state {

// The number of the newest migration this binary knows.
int latestSchemaVersion() noexcept;

// `nowMs`: unix milliseconds recorded as each migration's applied_at.
Status applyMigrations(sqlite3* db, std::int64_t nowMs);

// The highest applied migration (0 for an empty database).
Result<int> schemaVersion(sqlite3* db);

}  // namespace foundationd::state
