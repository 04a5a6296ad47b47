// Store: applied config hashes, spec revisions, unseal attempts, audit log.
#include "state/store.hpp"
#include "state/store_internal.hpp"

namespace foundationd::state {

namespace {

Status requireNonEmpty(std::string_view what, std::string_view value) {
  if (!value.empty()) return {};
  return Error::make(ErrorCode::invalid_argument, std::string(what) + " must not be empty");
}

std::optional<SpecRevisionStatus> parseRevisionStatus(std::string_view s) {
  if (s == "seen") return SpecRevisionStatus::seen;
  if (s == "applied") return SpecRevisionStatus::applied;
  if (s == "rejected") return SpecRevisionStatus::rejected;
  return std::nullopt;
}

UnsealAttempts readAttempts(const sqlite::Statement& q) {
  UnsealAttempts a;
  a.failures = q.getInt(0);
  if (!q.isNull(1)) a.lastFailureAt = detail::fromMs(q.getInt(1));
  return a;
}

}  // namespace

// --- applied ------------------------------------------------------------------

Result<std::optional<std::string>> Store::appliedHash(std::string_view kind,
                                                      std::string_view name) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(), "SELECT config_hash FROM applied WHERE kind = ? AND name = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, kind).bindText(2, name);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(q->getText(0));
}

Status Store::setAppliedHash(std::string_view kind, std::string_view name, std::string_view hash) {
  if (Status st = requireNonEmpty("resource kind", kind); !st) return st;
  if (Status st = requireNonEmpty("resource name", name); !st) return st;
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "INSERT INTO applied (kind, name, config_hash, applied_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (kind, name) DO UPDATE SET config_hash = excluded.config_hash, "
      "applied_at = excluded.applied_at");
  if (!q) return q.error();
  q->bindText(1, kind).bindText(2, name).bindText(3, hash).bind(4, nowMs());
  return q->run();
}

Status Store::clearAppliedHash(std::string_view kind, std::string_view name) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(db_.get(), "DELETE FROM applied WHERE kind = ? AND name = ?");
  if (!q) return q.error();
  q->bindText(1, kind).bindText(2, name);
  return q->run();
}

Result<std::vector<AppliedRecord>> Store::listApplied() {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(), "SELECT kind, name, config_hash, applied_at FROM applied ORDER BY kind, name");
  if (!q) return std::move(q).error();
  std::vector<AppliedRecord> out;
  for (;;) {
    auto row = q->step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    out.push_back({q->getText(0), q->getText(1), q->getText(2), detail::fromMs(q->getInt(3))});
  }
  return out;
}

// --- spec revisions -----------------------------------------------------------

Status Store::recordSpecRevision(std::string_view revision, std::string_view source,
                                 SpecRevisionStatus status, std::string_view errors) {
  if (Status st = requireNonEmpty("spec revision", revision); !st) return st;
  std::lock_guard lock(mu_);
  const std::int64_t now = nowMs();
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "INSERT INTO spec_revisions (revision, source, status, errors, seen_at, applied_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?3 = 'applied' THEN ?5 END) "
      "ON CONFLICT (revision) DO UPDATE SET source = excluded.source, status = excluded.status, "
      "errors = excluded.errors, "
      "applied_at = CASE WHEN excluded.status = 'applied' THEN ?5 ELSE applied_at END");
  if (!q) return q.error();
  q->bindText(1, revision).bindText(2, source).bindText(3, toString(status)).bindText(4, errors);
  q->bind(5, now);
  return q->run();
}

Result<std::vector<SpecRevision>> Store::specRevisions(int limit) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "SELECT revision, source, status, errors, seen_at, applied_at FROM spec_revisions "
      "ORDER BY rowid DESC LIMIT ?");
  if (!q) return std::move(q).error();
  q->bind(1, limit);
  std::vector<SpecRevision> out;
  for (;;) {
    auto row = q->step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    SpecRevision r;
    r.revision = q->getText(0);
    r.source = q->getText(1);
    auto status = parseRevisionStatus(q->getText(2));
    if (!status) return Error::make(ErrorCode::internal, "corrupt spec revision status");
    r.status = *status;
    r.errors = q->getText(3);
    r.seenAt = detail::fromMs(q->getInt(4));
    if (!q->isNull(5)) r.appliedAt = detail::fromMs(q->getInt(5));
    out.push_back(std::move(r));
  }
  return out;
}

// --- unseal attempts ----------------------------------------------------------

const char* toString(UnsealPath path) noexcept {
  return path == UnsealPath::trusted ? "trusted" : "remote";
}

Result<UnsealAttempts> Store::unsealAttempts(UnsealPath path) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(), "SELECT failures, last_failure_at FROM unseal_limits WHERE path = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, toString(path));
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return Error::make(ErrorCode::internal, "the unseal_limits row is missing");
  return readAttempts(*q);
}

Result<UnsealAttempts> Store::recordUnsealFailure(UnsealPath path) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "UPDATE unseal_limits SET failures = failures + 1, last_failure_at = ? WHERE path = ? "
      "RETURNING failures, last_failure_at");
  if (!q) return std::move(q).error();
  q->bind(1, nowMs()).bindText(2, toString(path));
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return Error::make(ErrorCode::internal, "the unseal_limits row is missing");
  UnsealAttempts a = readAttempts(*q);
  if (Status st = q->run(); !st) return st.error();  // finish the statement: commit
  return a;
}

Status Store::restartUnsealBackoff(UnsealPath path) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(), "UPDATE unseal_limits SET last_failure_at = ? WHERE path = ? AND failures > 0");
  if (!q) return std::move(q).error();
  q->bind(1, nowMs()).bindText(2, toString(path));
  return q->run();
}

Status Store::resetUnsealFailures(UnsealPath path) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "UPDATE unseal_limits SET failures = 0, last_failure_at = NULL WHERE path = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, toString(path));
  return q->run();
}

// --- audit log ----------------------------------------------------------------

Result<std::int64_t> Store::appendAudit(std::string_view event, std::string_view fieldsJson) {
  if (Status st = requireNonEmpty("audit event", event); !st) return st.error();
  std::lock_guard lock(mu_);
  if (Status st = detail::validateJsonObject(db_.get(), "audit fields", fieldsJson); !st) {
    return st.error();
  }
  auto q = sqlite::Statement::prepare(
      db_.get(), "INSERT INTO audit_log (at, event, fields) VALUES (?, ?, ?) RETURNING id");
  if (!q) return std::move(q).error();
  q->bind(1, nowMs()).bindText(2, event).bindText(3, fieldsJson);
  auto row = q->step();
  if (!row) return std::move(row).error();
  const std::int64_t id = q->getInt(0);
  if (Status st = q->run(); !st) return st.error();
  return id;
}

Result<std::vector<AuditEntry>> Store::auditSince(std::int64_t afterId, int limit) {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(), "SELECT id, at, event, fields FROM audit_log WHERE id > ? ORDER BY id LIMIT ?");
  if (!q) return std::move(q).error();
  q->bind(1, afterId).bind(2, limit);
  std::vector<AuditEntry> out;
  for (;;) {
    auto row = q->step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    out.push_back({q->getInt(0), detail::fromMs(q->getInt(1)), q->getText(2), q->getText(3)});
  }
  return out;
}

Status Store::copyTo(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::symlink_status(file, ec).type() != std::filesystem::file_type::not_found) {
    return Error::make(ErrorCode::conflict, "cannot copy the state to " + file.string() +
                                                ": it exists");
  }
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(db_.get(), "VACUUM INTO ?1");
  if (!q) return std::move(q).error();
  q->bindText(1, file.string());
  return q->run();
}

}  // namespace foundationd::state
