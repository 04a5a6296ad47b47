// Store: sealed secrets with versions.
#include "state/store.hpp"
#include "state/store_internal.hpp"

namespace foundationd::state {

namespace {

constexpr const char* kInfoColumns =
    "kind, name, field, version, value_digest, params_json, created_at";

SecretInfo readInfo(const sqlite::Statement& q) {
  SecretInfo info;
  info.kind = q.getText(0);
  info.name = q.getText(1);
  info.field = q.getText(2);
  info.version = static_cast<int>(q.getInt(3));
  info.digest = q.getText(4);
  info.paramsJson = q.getText(5);
  info.createdAt = detail::fromMs(q.getInt(6));
  return info;
}

Status validateSecretNames(std::string_view kind, std::string_view name, std::string_view field) {
  if (Status st = detail::validateName("secret kind", kind); !st) return st;
  if (Status st = detail::validateName("secret name", name); !st) return st;
  return detail::validateName("secret field", field);
}

Error notFound(std::string_view kind, std::string_view name, std::string_view field) {
  return Error::make(ErrorCode::not_found, "no stored secret " + std::string(kind) + "/" +
                                               std::string(name) + "/" + std::string(field));
}

}  // namespace

Result<int> Store::putSecret(const UnlockedKey& key, std::string_view kind, std::string_view name,
                             std::string_view field, std::string_view value,
                             std::string_view paramsJson) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  sqlite3* db = db_.get();
  if (Status st = detail::validateJsonObject(db, "secret params", paramsJson); !st) {
    return st.error();
  }
  if (Status st = checkKeyLocked(key); !st) return st.error();

  auto txn = sqlite::Transaction::begin(db);
  if (!txn) return std::move(txn).error();
  auto next = sqlite::Statement::prepare(db,
                                         "SELECT COALESCE(MAX(version), 0) + 1 FROM secrets WHERE "
                                         "kind = ? AND name = ? AND field = ?");
  if (!next) return std::move(next).error();
  next->bindText(1, kind).bindText(2, name).bindText(3, field);
  auto row = next->step();
  if (!row) return std::move(row).error();
  const int version = static_cast<int>(next->getInt(0));

  auto sealed = key.seal(secretId(kind, name, field, version), value);
  if (!sealed) return std::move(sealed).error();
  auto digest = digestLocked(value);
  if (!digest) return std::move(digest).error();

  auto insert = sqlite::Statement::prepare(
      db,
      "INSERT INTO secrets (kind, name, field, version, sealed, value_digest, created_at, "
      "params_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert) return std::move(insert).error();
  insert->bindText(1, kind)
      .bindText(2, name)
      .bindText(3, field)
      .bind(4, version)
      .bindBlob(5, *sealed)
      .bindText(6, *digest)
      .bind(7, nowMs())
      .bindText(8, paramsJson);
  if (Status st = insert->run(); !st) return st.error();
  // synchronous=FULL: the WAL is fsynced when COMMIT returns.
  if (Status st = txn->commit(); !st) return st.error();
  return version;
}

Result<SecretBytes> Store::openVersionLocked(const UnlockedKey& key, std::string_view kind,
                                             std::string_view name, std::string_view field,
                                             int version) {
  if (Status st = checkKeyLocked(key); !st) return st.error();
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "SELECT sealed FROM secrets WHERE kind = ? AND name = ? AND field = ? AND version = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, kind).bindText(2, name).bindText(3, field).bind(4, version);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) {
    return Error::make(ErrorCode::not_found,
                       "no stored secret " + secretId(kind, name, field, version));
  }
  return key.open(secretId(kind, name, field, version), q->getBlob(0));
}

Result<std::string> Store::sealedSecret(std::string_view kind, std::string_view name,
                                        std::string_view field, int version) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(
      db_.get(),
      "SELECT sealed FROM secrets WHERE kind = ? AND name = ? AND field = ? AND version = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, kind).bindText(2, name).bindText(3, field).bind(4, version);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) {
    return Error::make(ErrorCode::not_found,
                       "no stored secret " + secretId(kind, name, field, version));
  }
  return q->getBlob(0);
}

Result<SecretBytes> Store::getSecret(const UnlockedKey& key, std::string_view kind,
                                     std::string_view name, std::string_view field, int version) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  return openVersionLocked(key, kind, name, field, version);
}

Result<std::optional<SecretInfo>> Store::currentInfoLocked(std::string_view kind,
                                                           std::string_view name,
                                                           std::string_view field) {
  auto q = sqlite::Statement::prepare(db_.get(),
                                      std::string("SELECT ") + kInfoColumns +
                                          " FROM secrets WHERE kind = ? AND name = ? AND field = ?"
                                          " ORDER BY version DESC LIMIT 1");
  if (!q) return std::move(q).error();
  q->bindText(1, kind).bindText(2, name).bindText(3, field);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<SecretInfo>();
  return std::optional<SecretInfo>(readInfo(*q));
}

Result<Secret> Store::currentSecret(const UnlockedKey& key, std::string_view kind,
                                    std::string_view name, std::string_view field) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  auto info = currentInfoLocked(kind, name, field);
  if (!info) return std::move(info).error();
  if (!info->has_value()) return notFound(kind, name, field);
  auto value = openVersionLocked(key, kind, name, field, (*info)->version);
  if (!value) return std::move(value).error();
  return Secret{std::move(**info), std::move(value).value()};
}

Result<std::optional<SecretInfo>> Store::currentSecretInfo(std::string_view kind,
                                                           std::string_view name,
                                                           std::string_view field) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  return currentInfoLocked(kind, name, field);
}

Result<std::string> Store::secretDigest(std::string_view kind, std::string_view name,
                                        std::string_view field) {
  auto info = currentSecretInfo(kind, name, field);
  if (!info) return std::move(info).error();
  if (!info->has_value()) return notFound(kind, name, field);
  return (*info)->digest;
}

Result<std::vector<SecretInfo>> Store::listSecrets() {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(db_.get(), std::string("SELECT ") + kInfoColumns +
                                                     " FROM current_secrets"
                                                     " ORDER BY kind, name, field");
  if (!q) return std::move(q).error();
  std::vector<SecretInfo> out;
  for (;;) {
    auto row = q->step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    out.push_back(readInfo(*q));
  }
  return out;
}

Result<std::vector<SecretInfo>> Store::secretVersions(std::string_view kind, std::string_view name,
                                                      std::string_view field) {
  if (Status st = validateSecretNames(kind, name, field); !st) return st.error();
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(db_.get(), std::string("SELECT ") + kInfoColumns +
                                                     " FROM secrets WHERE kind = ? AND name = ?"
                                                     " AND field = ? ORDER BY version");
  if (!q) return std::move(q).error();
  q->bindText(1, kind).bindText(2, name).bindText(3, field);
  std::vector<SecretInfo> out;
  for (;;) {
    auto row = q->step();
    if (!row) return std::move(row).error();
    if (!*row) break;
    out.push_back(readInfo(*q));
  }
  return out;
}

}  // namespace foundationd::state
