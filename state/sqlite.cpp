#include "state/sqlite.hpp"

#include <utility>

namespace foundationd::state::sqlite {

Error makeError(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      msg += " (the state database is locked by another process; retry)";
      return Error::make(ErrorCode::unavailable, std::move(msg));
    case SQLITE_CONSTRAINT:
      return Error::make(ErrorCode::conflict, std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error::make(ErrorCode::internal, std::move(msg));
    default:
      return Error::make(ErrorCode::io, std::move(msg));
  }
}

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  sqlite3_free(err);  // sqlite3_errmsg(db) says the same
  if (rc != SQLITE_OK) return makeError(db, rc, "state database");
  return {};
}

Result<Statement> Statement::prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return makeError(db, rc, "preparing a state query");
  }
  return Statement(db, StmtPtr(raw));
}

void Statement::check(int rc) {
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
}

Statement& Statement::bind(int index, std::int64_t value) {
  check(sqlite3_bind_int64(stmt_.get(), index, value));
  return *this;
}

Statement& Statement::bindText(int index, std::string_view value) {
  // An empty view may have a null data(), which SQLite would bind as NULL.
  check(sqlite3_bind_text64(stmt_.get(), index, value.empty() ? "" : value.data(), value.size(),
                            SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bindBlob(int index, std::string_view value) {
  // A zero-length blob must still be a blob, not NULL.
  static const char empty = 0;
  check(sqlite3_bind_blob64(stmt_.get(), index, value.empty() ? &empty : value.data(), value.size(),
                            SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bindNull(int index) {
  check(sqlite3_bind_null(stmt_.get(), index));
  return *this;
}

Result<bool> Statement::step() {
  if (bindError_ != SQLITE_OK) return makeError(db_, bindError_, "binding a state query");
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return makeError(db_, rc, "state database");
}

Status Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return std::move(row).error();
    if (!*row) return {};
  }
}

bool Statement::isNull(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

std::int64_t Statement::getInt(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}

std::string Statement::getText(int column) const {
  const auto* p = sqlite3_column_text(stmt_.get(), column);
  int n = sqlite3_column_bytes(stmt_.get(), column);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::string Statement::getBlob(int column) const {
  const void* p = sqlite3_column_blob(stmt_.get(), column);
  int n = sqlite3_column_bytes(stmt_.get(), column);
  if (p == nullptr) return {};
  return std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

Result<Transaction> Transaction::begin(sqlite3* db) {
  if (Status st = exec(db, "BEGIN IMMEDIATE"); !st) return st.error();
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Status Transaction::commit() {
  Status st = exec(db_, "COMMIT");
  if (st) db_ = nullptr;  // on failure the destructor rolls back
  return st;
}

}  // namespace foundationd::state::sqlite
