// Helpers shared by the Store's translation units (store*.cpp); private to state/.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "state/sqlite.hpp"

namespace foundationd::state::detail {

inline std::int64_t toMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point fromMs(std::int64_t ms) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(ms)));
}

// A meta value (blob, text or integer as stored); nullopt when absent.
Result<std::optional<std::string>> getMeta(sqlite3* db, std::string_view key);
Result<std::optional<std::int64_t>> getMetaInt(sqlite3* db, std::string_view key);
Status setMetaBlob(sqlite3* db, std::string_view key, std::string_view value);
Status setMetaInt(sqlite3* db, std::string_view key, std::int64_t value);

// kind/name/field of a secret or resource: non-empty, at most 200 bytes,
// printable ASCII without '/' (it separates the parts of a secret's id).
Status validateName(std::string_view what, std::string_view value);

// A JSON object (checked by SQLite's json_valid/json_type).
Status validateJsonObject(sqlite3* db, std::string_view what, std::string_view json);

}  // namespace foundationd::state::detail
