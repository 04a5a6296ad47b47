// Thin RAII over the SQLite C API, private to state/.
//
// Contract: every handle is owned by a unique_ptr with a deleter; errors are
// values (Error with ErrorCode::unavailable for SQLITE_BUSY/LOCKED, conflict
// for constraint violations, io otherwise). Messages come from sqlite3_errmsg
// and never contain bound values. Not thread-safe: the Store serialises use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <sqlite3.h>

#include "common/result.hpp"

namespace foundationd::state::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// An Error for result code `rc` on `db`, prefixed with `what`.
Error makeError(sqlite3* db, int rc, std::string_view what);

// Runs one or more statements without parameters.
Status exec(sqlite3* db, const char* sql);

// A prepared statement. Bind calls chain; the first failure is remembered and
// returned by step()/run().
class Statement {
 public:
  static Result<Statement> prepare(sqlite3* db, std::string_view sql);

  Statement& bind(int index, std::int64_t value);
  Statement& bindText(int index, std::string_view value);
  Statement& bindBlob(int index, std::string_view value);
  Statement& bindNull(int index);

  // true: a row is available; false: done.
  Result<bool> step();
  // Steps to completion (for statements that return no rows).
  Status run();

  bool isNull(int column) const;
  std::int64_t getInt(int column) const;
  std::string getText(int column) const;
  std::string getBlob(int column) const;

 private:
  Statement(sqlite3* db, StmtPtr stmt) : db_(db), stmt_(std::move(stmt)) {}
  void check(int rc);

  sqlite3* db_ = nullptr;
  StmtPtr stmt_;
  int bindError_ = SQLITE_OK;
};

// BEGIN IMMEDIATE (takes the write lock up front, so a read-then-write inside
// cannot deadlock); rolls back on destruction unless committed.
class Transaction {
 public:
  static Result<Transaction> begin(sqlite3* db);
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  // COMMIT; with synchronous=FULL the WAL is fsynced before this returns.
  Status commit();

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

}  // namespace foundationd::state::sqlite
