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

}  // namespace foundationd::backup::internal
