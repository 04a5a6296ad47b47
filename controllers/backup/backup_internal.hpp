// Internal to controllers/backup/: what backup.cpp and restore.cpp share.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <sodium.h>

#include "controllers/backup/backup.hpp"

namespace foundationd::backup::internal {

// SHA-256 of a stream, with its length.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  std::string hex();  // once, at the end
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  crypto_hash_sha256_state state_;
  std::uint64_t bytes_ = 0;
};

std::vector<std::string> psqlArgv(const std::string& superuser, const std::string& db);
// psql in the instance's container with `script` on stdin; its stdout, or
// an error naming the container and database with psql's message.
Task<Result<std::string>> psql(BackupContext& ctx, const config::PostgresSpec& pg,
                               const std::string& db, std::string script);
// Up to 600 characters of `text`, on one line.
std::string firstLines(std::string_view text);
// Every database that takes connections, templates excepted.
Task<Result<std::vector<std::string>>> databases(BackupContext& ctx,
                                                 const config::PostgresSpec& pg);
// "FROM ... WHERE ...": the user tables (ordinary and partitioned) of a database.
extern const char* kUserRelations;
Task<Result<std::map<std::string, std::int64_t>>> rowCounts(BackupContext& ctx,
                                                            const config::PostgresSpec& pg,
                                                            const std::string& db);
// The file a section is stored as inside its snapshot.
std::string sectionPath(const Section& s);

// --- shared by restore.cpp and verify.cpp (restore.cpp) ---------------------

// Reads a section back in full through restic (which authenticates every
// blob) and compares its size and SHA-256 with the manifest.
Task<Status> verifySection(Restic& repo, const Section& s);

// A database as the restore finds it.
struct DbTarget {
  bool exists = false;
  std::int64_t tables = 0;
};
Task<Result<DbTarget>> inspectDatabase(BackupContext& ctx, const config::PostgresSpec& pg,
                                       const std::string& db);

// `cmd` in `container` as `user` ("" = ctx.execUser), its stdin streamed from
// the section in the repository. The exec's result (its exit code is the
// caller's to judge).
Task<Result<docker::ExecResult>> execFromSection(BackupContext& ctx, Restic& repo,
                                                 const Section& s, const std::string& container,
                                                 std::vector<std::string> cmd,
                                                 std::string user = "");

// A postgres-globals section through psql into pg.container: the number of
// statements refused (roles that exist already).
Task<Result<int>> restoreGlobals(BackupContext& ctx, Restic& repo, const config::PostgresSpec& pg,
                                 const Section& s);
// A postgres-database section through pg_restore into pg.container, as `t`
// says the database is: into it in one transaction (--clean --if-exists when
// it has tables), else --create.
Task<Status> restoreDatabase(BackupContext& ctx, Restic& repo, const config::PostgresSpec& pg,
                             const Section& s, const DbTarget& t);

// "" when every table of `manifest` has its row count in `observed`; else
// what differs ("public.items 499 rows, 500 in the manifest"), with the
// tables `observed` has beyond the manifest when `extraTables`.
std::string rowCountDiff(const std::map<std::string, std::int64_t>& manifest,
                         const std::map<std::string, std::int64_t>& observed, bool extraTables);

// The backup `id` ("" = the newest complete one) of `list`: not_found when
// there is none, conflict when it is incomplete. `where` names the repository.
Result<const BackupEntry*> pickBackup(const std::vector<BackupEntry>& list,
                                      const std::string& id, const std::string& where);

}  // namespace foundationd::backup::internal
