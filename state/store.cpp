// Store: opening, pragmas, meta and the data key (initialize/unlock/rekey).
// Secrets are in store_secrets.cpp, the other records in store_records.cpp.
#include "state/store.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/migrations.hpp"
#include "state/store_internal.hpp"

namespace foundationd::state {

namespace detail {

Result<std::optional<std::string>> getMeta(sqlite3* db, std::string_view key) {
  auto q = sqlite::Statement::prepare(db, "SELECT value FROM meta WHERE key = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, key);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(q->getBlob(0));
}

Result<std::optional<std::int64_t>> getMetaInt(sqlite3* db, std::string_view key) {
  auto q = sqlite::Statement::prepare(db, "SELECT value FROM meta WHERE key = ?");
  if (!q) return std::move(q).error();
  q->bindText(1, key);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(q->getInt(0));
}

namespace {
Status setMeta(sqlite3* db, std::string_view key, auto&& bindValue) {
  auto q = sqlite::Statement::prepare(db,
                                      "INSERT INTO meta (key, value) VALUES (?, ?) "
                                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  if (!q) return std::move(q).error();
  q->bindText(1, key);
  bindValue(*q);
  return q->run();
}
}  // namespace

Status setMetaBlob(sqlite3* db, std::string_view key, std::string_view value) {
  return setMeta(db, key, [&](sqlite::Statement& q) { q.bindBlob(2, value); });
}

Status setMetaInt(sqlite3* db, std::string_view key, std::int64_t value) {
  return setMeta(db, key, [&](sqlite::Statement& q) { q.bind(2, value); });
}

Status validateName(std::string_view what, std::string_view value) {
  bool ok = !value.empty() && value.size() <= 200;
  for (char c : value) ok = ok && c > 0x20 && c < 0x7f && c != '/';
  if (ok) return {};
  return Error::make(ErrorCode::invalid_argument,
                     std::string(what) + " \"" + std::string(value.substr(0, 200)) +
                         "\" is not a valid name: use 1-200 printable characters without '/'");
}

Status validateJsonObject(sqlite3* db, std::string_view what, std::string_view json) {
  auto q = sqlite::Statement::prepare(
      db, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END");
  if (!q) return std::move(q).error();
  q->bindText(1, json);
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (*row && q->getInt(0) == 1) return {};
  return Error::make(ErrorCode::invalid_argument, std::string(what) + " must be a JSON object");
}

}  // namespace detail

namespace {

// Meta keys. The wrapped key's parts are stored apart (readable with sqlite3)
// and bound together by the wrap's associated data.
constexpr std::string_view kFormatVersion = "format_version";
constexpr std::string_view kCreatedAt = "created_at";
constexpr std::string_view kDigestKey = "digest_key";
constexpr std::string_view kWrapVersionKey = "wrap_version";
constexpr std::string_view kKdfAlg = "kdf_alg";
constexpr std::string_view kKdfOps = "kdf_ops";
constexpr std::string_view kKdfMem = "kdf_mem";
constexpr std::string_view kKdfSalt = "kdf_salt";
constexpr std::string_view kWrappedKey = "wrapped_key";
constexpr std::string_view kKeyFingerprint = "key_fingerprint";
constexpr std::int64_t kStoreFormatVersion = 1;

Error ioError(const std::filesystem::path& p, std::string_view what, int err) {
  return Error::make(ErrorCode::io,
                     std::string(what) + " " + p.string() + ": " + std::strerror(err));
}

// The directory (0700 when we create it) and the file (always 0600) before
// SQLite sees them: SQLite gives the -wal and -shm files the file's mode.
Status prepareFile(const std::filesystem::path& file) {
  std::filesystem::path dir = file.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (ec) return ioError(dir, "cannot create the state directory", ec.value());
      if (::chmod(dir.c_str(), 0700) != 0) {
        return ioError(dir, "cannot restrict the state directory", errno);
      }
    }
  }
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ioError(file, "cannot open the state database", errno);
  int rc = ::fchmod(fd, 0600);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ioError(file, "cannot restrict the state database", err);
  return {};
}

Status ensureWal(sqlite3* db) {
  auto q = sqlite::Statement::prepare(db, "PRAGMA journal_mode = WAL");
  if (!q) return std::move(q).error();
  auto row = q->step();
  if (!row) return std::move(row).error();
  if (!*row || q->getText(0) != "wal") {
    return Error::make(ErrorCode::io,
                       "the state database cannot use WAL mode (is it on a network filesystem?)");
  }
  return {};
}

}  // namespace

const char* toString(SpecRevisionStatus status) noexcept {
  switch (status) {
    case SpecRevisionStatus::seen:
      return "seen";
    case SpecRevisionStatus::applied:
      return "applied";
    case SpecRevisionStatus::rejected:
      return "rejected";
  }
  return "seen";
}

std::string secretId(std::string_view kind, std::string_view name, std::string_view field,
                     int version) {
  std::string id;
  id.reserve(kind.size() + name.size() + field.size() + 16);
  id.append(kind).append("/").append(name).append("/").append(field);
  id.append("/v").append(std::to_string(version));
  return id;
}

Store::Store(std::filesystem::path path, sqlite::DbPtr db, StoreOptions options)
    : path_(std::move(path)), options_(std::move(options)), db_(std::move(db)) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::openDir(const std::filesystem::path& stateDir,
                                              StoreOptions options) {
  return open(stateDir / kFileName, std::move(options));
}

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& file,
                                           StoreOptions options) {
  ensureSodium();
  if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
  if (Status st = prepareFile(file); !st) return st.error();

  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(file.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  sqlite::DbPtr db(raw);  // a handle is returned even on failure
  if (rc != SQLITE_OK) return sqlite::makeError(raw, rc, "opening " + file.string());
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), static_cast<int>(options.busyTimeout.count()));

  if (Status st = ensureWal(db.get()); !st) return st.error();
  // FULL: each commit fsyncs the WAL, so a committed secret survives power loss.
  if (Status st = sqlite::exec(db.get(), "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
      !st) {
    return st.error();
  }
  const std::int64_t now = detail::toMs(options.clock());
  if (Status st = applyMigrations(db.get(), now); !st) return st.error();

  // The per-store digest key is not secret; it only makes digests
  // incomparable across stores. Created once, in one transaction.
  {
    auto txn = sqlite::Transaction::begin(db.get());
    if (!txn) return std::move(txn).error();
    auto existing = detail::getMeta(db.get(), kDigestKey);
    if (!existing) return std::move(existing).error();
    if (!existing->has_value()) {
      std::string key(crypto_generichash_KEYBYTES, '\0');
      randombytes_buf(key.data(), key.size());
      if (Status st = detail::setMetaBlob(db.get(), kDigestKey, key); !st) return st.error();
      if (Status st = detail::setMetaInt(db.get(), kFormatVersion, kStoreFormatVersion); !st) {
        return st.error();
      }
      if (Status st = detail::setMetaInt(db.get(), kCreatedAt, now); !st) return st.error();
    }
    if (Status st = txn->commit(); !st) return st.error();
  }
  return std::unique_ptr<Store>(new Store(file, std::move(db), std::move(options)));
}

std::int64_t Store::nowMs() const {
  return detail::toMs(options_.clock());
}

Result<int> Store::schemaVersion() {
  std::lock_guard lock(mu_);
  return state::schemaVersion(db_.get());
}

Result<std::string> Store::journalMode() {
  std::lock_guard lock(mu_);
  auto q = sqlite::Statement::prepare(db_.get(), "PRAGMA journal_mode");
  if (!q) return std::move(q).error();
  auto row = q->step();
  if (!row) return std::move(row).error();
  return q->getText(0);
}

Result<bool> Store::isInitialized() {
  std::lock_guard lock(mu_);
  auto v = detail::getMeta(db_.get(), kWrappedKey);
  if (!v) return std::move(v).error();
  return v->has_value();
}

Result<WrappedKey> Store::wrappedKey() {
  std::lock_guard lock(mu_);
  return loadWrappedKeyLocked();
}

Result<WrappedKey> Store::loadWrappedKeyLocked() {
  sqlite3* db = db_.get();
  auto blob = detail::getMeta(db, kWrappedKey);
  if (!blob) return std::move(blob).error();
  if (!blob->has_value()) {
    return Error::make(
        ErrorCode::not_found,
        "the state at " + path_.string() + " is not initialised: run `foundationd init` first");
  }
  WrappedKey w;
  w.ciphertext = std::move(**blob);
  auto salt = detail::getMeta(db, kKdfSalt);
  if (!salt) return std::move(salt).error();
  auto version = detail::getMetaInt(db, kWrapVersionKey);
  if (!version) return std::move(version).error();
  auto alg = detail::getMetaInt(db, kKdfAlg);
  if (!alg) return std::move(alg).error();
  auto ops = detail::getMetaInt(db, kKdfOps);
  if (!ops) return std::move(ops).error();
  auto mem = detail::getMetaInt(db, kKdfMem);
  if (!mem) return std::move(mem).error();
  if (!salt->has_value() || !version->has_value() || !alg->has_value() || !ops->has_value() ||
      !mem->has_value() || **version < 0 || **version > 255 || **ops < 0 || **mem < 0) {
    return Error::make(ErrorCode::internal,
                       "the state's key parameters are incomplete or corrupt (restore a backup)");
  }
  w.salt = std::move(**salt);
  w.version = static_cast<std::uint8_t>(**version);
  w.kdf.alg = static_cast<int>(**alg);
  w.kdf.opsLimit = static_cast<std::uint64_t>(**ops);
  w.kdf.memLimit = static_cast<std::uint64_t>(**mem);
  return w;
}

namespace {
Status writeWrappedKey(sqlite3* db, const WrappedKey& w) {
  if (Status st = detail::setMetaInt(db, kWrapVersionKey, w.version); !st) return st;
  if (Status st = detail::setMetaInt(db, kKdfAlg, w.kdf.alg); !st) return st;
  if (Status st = detail::setMetaInt(db, kKdfOps, static_cast<std::int64_t>(w.kdf.opsLimit)); !st) {
    return st;
  }
  if (Status st = detail::setMetaInt(db, kKdfMem, static_cast<std::int64_t>(w.kdf.memLimit)); !st) {
    return st;
  }
  if (Status st = detail::setMetaBlob(db, kKdfSalt, w.salt); !st) return st;
  return detail::setMetaBlob(db, kWrappedKey, w.ciphertext);
}
}  // namespace

Result<UnlockedKey> Store::initialize(std::string_view passphrase, KdfProfile profile) {
  auto already = isInitialized();  // fail fast, before the expensive KDF
  if (!already) return std::move(already).error();
  if (*already) {
    return Error::make(ErrorCode::conflict, "the state at " + path_.string() +
                                                " is already initialised (use `foundationd rekey` "
                                                "to change the passphrase)");
  }
  SecretBytes dataKey = newDataKey();
  auto wrapped = wrapKey(dataKey, passphrase, profile);  // Argon2id, outside the mutex
  if (!wrapped) return std::move(wrapped).error();

  std::lock_guard lock(mu_);
  auto txn = sqlite::Transaction::begin(db_.get());
  if (!txn) return std::move(txn).error();
  auto existing = detail::getMeta(db_.get(), kWrappedKey);  // another process may have won
  if (!existing) return std::move(existing).error();
  if (existing->has_value()) {
    return Error::make(ErrorCode::conflict,
                       "the state at " + path_.string() + " is already initialised");
  }
  if (Status st = writeWrappedKey(db_.get(), *wrapped); !st) return st.error();
  if (Status st = detail::setMetaBlob(db_.get(), kKeyFingerprint, keyFingerprint(dataKey)); !st) {
    return st.error();
  }
  if (Status st = txn->commit(); !st) return st.error();
  return UnlockedKey(std::move(dataKey));
}

Result<UnlockedKey> Store::unlock(std::string_view passphrase) {
  Result<WrappedKey> wrapped = [&] {
    std::lock_guard lock(mu_);
    return loadWrappedKeyLocked();
  }();
  if (!wrapped) return std::move(wrapped).error();
  auto dataKey = unwrapKey(*wrapped, passphrase);  // Argon2id, outside the mutex
  if (!dataKey) return std::move(dataKey).error();
  return UnlockedKey(std::move(dataKey).value());
}

Status Store::rekey(std::string_view oldPassphrase, std::string_view newPassphrase,
                    KdfProfile profile) {
  Result<WrappedKey> before = [&] {
    std::lock_guard lock(mu_);
    return loadWrappedKeyLocked();
  }();
  if (!before) return before.error();
  auto after = rewrap(*before, oldPassphrase, newPassphrase, profile);
  if (!after) return after.error();

  std::lock_guard lock(mu_);
  if (Status st = sqlite::exec(db_.get(), "PRAGMA secure_delete = ON"); !st) return st;
  auto txn = sqlite::Transaction::begin(db_.get());
  if (!txn) return txn.error();
  auto current = loadWrappedKeyLocked();
  if (!current) return current.error();
  if (!(*current == *before)) {
    return Error::make(ErrorCode::conflict,
                       "the passphrase was changed concurrently; run rekey again");
  }
  if (Status st = writeWrappedKey(db_.get(), *after); !st) return st;
  if (Status st = txn->commit(); !st) return st;
  return scrubLocked();
}

Status Store::scrubLocked() {
  // The old wrapped key (or old sealed rows) may still sit in the WAL:
  // copy everything into the main file and truncate the WAL to zero bytes.
  // secure_delete (on for rekey and rotation) zeroed the freed content.
  auto q = sqlite::Statement::prepare(db_.get(), "PRAGMA wal_checkpoint(TRUNCATE)");
  if (!q) return q.error();
  auto row = q->step();
  if (!row) return row.error();
  if (*row && q->getInt(0) != 0) {
    return Error::make(ErrorCode::unavailable,
                       "the change is committed, but the WAL of " + path_.string() +
                           " could not be truncated (another process has the state open: stop "
                           "the daemon and run the command again to scrub the old key)");
  }
  return {};
}

Status Store::rotateDataKey(std::string_view oldPassphrase, std::string_view newPassphrase,
                            KdfProfile profile) {
  Result<WrappedKey> before = [&] {
    std::lock_guard lock(mu_);
    return loadWrappedKeyLocked();
  }();
  if (!before) return before.error();
  auto oldKey = unwrapKey(*before, oldPassphrase);  // Argon2id, outside the mutex
  if (!oldKey) return oldKey.error();
  SecretBytes newKey = newDataKey();
  auto after = wrapKey(newKey, newPassphrase, profile);
  if (!after) return after.error();

  std::lock_guard lock(mu_);
  sqlite3* db = db_.get();
  if (Status st = sqlite::exec(db, "PRAGMA secure_delete = ON"); !st) return st;
  auto txn = sqlite::Transaction::begin(db);
  if (!txn) return txn.error();
  auto current = loadWrappedKeyLocked();
  if (!current) return current.error();
  if (!(*current == *before)) {
    return Error::make(ErrorCode::conflict,
                       "the passphrase was changed concurrently; run the rotation again");
  }
  struct Row {
    std::string kind, name, field, sealed, digest, params;
    std::int64_t version = 0, createdAt = 0;
  };
  std::vector<Row> rows;
  {
    auto q = sqlite::Statement::prepare(
        db,
        "SELECT kind, name, field, version, sealed, value_digest, created_at, params_json "
        "FROM secrets");
    if (!q) return q.error();
    for (;;) {
      auto more = q->step();
      if (!more) return more.error();
      if (!*more) break;
      Row r;
      r.kind = q->getText(0);
      r.name = q->getText(1);
      r.field = q->getText(2);
      r.version = q->getInt(3);
      const std::string id = secretId(r.kind, r.name, r.field, static_cast<int>(r.version));
      auto plain = state::open(*oldKey, id, q->getBlob(4));
      if (!plain) return plain.error();  // corruption: nothing is changed
      auto resealed = state::seal(newKey, id, plain->view());
      if (!resealed) return resealed.error();
      r.sealed = std::move(resealed).value();
      r.digest = q->getText(5);
      r.createdAt = q->getInt(6);
      r.params = q->getText(7);
      rows.push_back(std::move(r));
    }
  }
  // Stored versions are immutable (no UPDATE): every row is replaced by the
  // same row sealed under the new key, in this one transaction.
  if (Status st = sqlite::exec(db, "DELETE FROM secrets"); !st) return st;
  for (const Row& r : rows) {
    auto insert = sqlite::Statement::prepare(
        db,
        "INSERT INTO secrets (kind, name, field, version, sealed, value_digest, created_at, "
        "params_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!insert) return insert.error();
    insert->bindText(1, r.kind)
        .bindText(2, r.name)
        .bindText(3, r.field)
        .bind(4, r.version)
        .bindBlob(5, r.sealed)
        .bindText(6, r.digest)
        .bind(7, r.createdAt)
        .bindText(8, r.params);
    if (Status st = insert->run(); !st) return st;
  }
  if (Status st = writeWrappedKey(db, *after); !st) return st;
  if (Status st = detail::setMetaBlob(db, kKeyFingerprint, keyFingerprint(newKey)); !st) {
    return st;
  }
  if (Status st = txn->commit(); !st) return st;
  return scrubLocked();
}

Result<KdfParams> Store::kdfParams() {
  std::lock_guard lock(mu_);
  auto w = loadWrappedKeyLocked();
  if (!w) return std::move(w).error();
  return w->kdf;
}

Status Store::checkKeyLocked(const UnlockedKey& key) {
  if (key.locked()) return Error::make(ErrorCode::unavailable, "the state is locked: unseal first");
  auto fp = detail::getMeta(db_.get(), kKeyFingerprint);
  if (!fp) return fp.error();
  if (!fp->has_value()) {
    return Error::make(ErrorCode::not_found, "the state at " + path_.string() +
                                                 " is not initialised: run `foundationd init`");
  }
  if (**fp != key.fingerprint()) {
    return Error::make(ErrorCode::invalid_argument,
                       "the key does not belong to the state at " + path_.string());
  }
  return {};
}

Result<std::string> Store::digestLocked(std::string_view plaintext) {
  auto key = detail::getMeta(db_.get(), kDigestKey);
  if (!key) return std::move(key).error();
  if (!key->has_value() || (*key)->size() != crypto_generichash_KEYBYTES) {
    return Error::make(ErrorCode::internal, "the state's digest key is missing or corrupt");
  }
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(plaintext.data()),
                     plaintext.size(), reinterpret_cast<const unsigned char*>((*key)->data()),
                     (*key)->size());
  char hex[2 * sizeof out + 1];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return std::string(hex, 2 * sizeof out);
}

Result<std::string> Store::digestOf(std::string_view plaintext) {
  std::lock_guard lock(mu_);
  return digestLocked(plaintext);
}

}  // namespace foundationd::state
