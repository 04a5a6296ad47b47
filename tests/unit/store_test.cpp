#include "state/store.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/temp_dir.hpp"
#include <sqlite3.h>
#include <sys/stat.h>

#include "state/migrations.hpp"

using namespace foundationd;
using namespace foundationd::state;
namespace fs = std::filesystem;

namespace {

// doctest cannot print ErrorCode (ADL finds foundationd::toString), so
// compare its name.
template <class R>
std::string codeOf(const R& r) {
  return foundationd::toString(r.error().code);
}

constexpr KdfProfile kFast = KdfProfile::interactive;

// A fresh directory under TMPDIR, removed at scope exit.
// Every case's scratch directory: /tmp/fd-store-test-XXXXXX.
struct TempDir : foundationd::test::TempDir {
  TempDir() : foundationd::test::TempDir("store-test") {}
};

// A deterministic, settable clock.
struct FakeClock {
  std::shared_ptr<TimePoint> now =
      std::make_shared<TimePoint>(TimePoint(std::chrono::seconds(1700000000)));
  Clock clock() const {
    return [n = now] { return *n; };
  }
};

std::unique_ptr<Store> openStore(const fs::path& file, StoreOptions options = {}) {
  auto store = Store::open(file, std::move(options));
  REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
  return std::move(store).value();
}

mode_t modeOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A second, raw connection: what someone with the file (or a bug) could do.
struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const fs::path& p) { REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  // The error message, or "" on success.
  std::string exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = rc == SQLITE_OK ? "" : (err != nullptr ? err : "error");
    sqlite3_free(err);
    return msg;
  }
  std::string dump(const std::string& sql) {
    std::string out;
    sqlite3_exec(
        db, sql.c_str(),
        [](void* acc, int n, char** values, char**) {
          auto* s = static_cast<std::string*>(acc);
          for (int i = 0; i < n; ++i)
            *s += (values[i] != nullptr ? values[i] : "NULL") + std::string("|");
          *s += "\n";
          return 0;
        },
        &out, nullptr);
    return out;
  }
};

const std::string kMetaDump = "SELECT key, hex(value) FROM meta ORDER BY key";

}  // namespace

TEST_CASE("open creates a private directory and file in WAL mode") {
  TempDir tmp;
  fs::path file = tmp.path / "a" / "b" / Store::kFileName;
  auto store = openStore(file);
  CHECK(fs::exists(file));
  CHECK(modeOf(file) == 0600);
  CHECK(modeOf(file.parent_path()) == 0700);
  CHECK(*store->journalMode() == "wal");
  CHECK(*store->schemaVersion() == latestSchemaVersion());
  REQUIRE(store->appendAudit("test.write").ok());
  fs::path wal = file.string() + "-wal";
  REQUIRE(fs::exists(wal));
  CHECK(modeOf(wal) == 0600);
}

TEST_CASE("open tightens an existing file's mode") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  { std::ofstream touch(file); }
  fs::permissions(file, fs::perms::all);
  auto store = openStore(file);
  CHECK(modeOf(file) == 0600);
}

TEST_CASE("openDir puts the file in the state directory") {
  TempDir tmp;
  auto store = Store::openDir(tmp.path / "state");
  REQUIRE(store.ok());
  CHECK((*store)->path() == tmp.path / "state" / Store::kFileName);
}

TEST_CASE("initialize, then unlock with the passphrase") {
  TempDir tmp;
  auto store = openStore(tmp.path / Store::kFileName);
  CHECK_FALSE(*store->isInitialized());
  CHECK(codeOf(store->unlock("pw")) == "not_found");
  CHECK(codeOf(store->initialize("", kFast)) == "invalid_argument");

  auto key = store->initialize("correct horse", kFast);
  REQUIRE(key.ok());
  CHECK(*store->isInitialized());
  CHECK(*store->kdfParams() == KdfParams::forProfile(kFast));

  auto again = store->initialize("another", kFast);
  REQUIRE_FALSE(again.ok());
  CHECK(codeOf(again) == "conflict");

  auto unlocked = store->unlock("correct horse");
  REQUIRE(unlocked.ok());
  CHECK(unlocked->fingerprint() == key->fingerprint());
}

TEST_CASE("a wrong passphrase fails and changes nothing") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  auto store = openStore(file);
  REQUIRE(store->initialize("correct horse", kFast).ok());
  RawDb raw(file);
  const std::string before = raw.dump(kMetaDump) + raw.dump("SELECT * FROM unseal_limits") +
                             raw.dump("SELECT count(*) FROM audit_log");

  auto r = store->unlock("wrong horse");
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "wrong_passphrase");
  CHECK(r.error().message == "wrong passphrase");
  CHECK(codeOf(store->rekey("wrong horse", "new", kFast)) == "wrong_passphrase");

  const std::string after = raw.dump(kMetaDump) + raw.dump("SELECT * FROM unseal_limits") +
                            raw.dump("SELECT count(*) FROM audit_log");
  CHECK(before == after);
  CHECK(store->unlock("correct horse").ok());
}

TEST_CASE("secrets: versions, current, digests") {
  TempDir tmp;
  FakeClock clock;
  auto store = openStore(tmp.path / Store::kFileName, {clock.clock()});
  auto key = store->initialize("pw", kFast);
  REQUIRE(key.ok());

  CHECK(codeOf(store->currentSecret(*key, "credential", "pg", "password")) == "not_found");
  CHECK(codeOf(store->secretDigest("credential", "pg", "password")) == "not_found");
  CHECK_FALSE(store->currentSecretInfo("credential", "pg", "password")->has_value());

  auto v1 = store->putSecret(*key, "credential", "pg", "password", "first-value",
                             R"({"generator":"password","length":32})");
  REQUIRE(v1.ok());
  CHECK(*v1 == 1);
  *clock.now += std::chrono::seconds(10);
  auto v2 = store->putSecret(*key, "credential", "pg", "password", "second-value");
  REQUIRE(v2.ok());
  CHECK(*v2 == 2);
  REQUIRE(store->putSecret(*key, "credential", "pg", "username", "postgres").ok());

  auto current = store->currentSecret(*key, "credential", "pg", "password");
  REQUIRE(current.ok());
  CHECK(current->value.view() == "second-value");
  CHECK(current->info.version == 2);
  CHECK(current->info.createdAt == *clock.now);
  CHECK(current->info.paramsJson == "{}");
  CHECK(store->getSecret(*key, "credential", "pg", "password", 1)->view() == "first-value");
  CHECK(codeOf(store->getSecret(*key, "credential", "pg", "password", 3)) == "not_found");

  auto digest = store->secretDigest("credential", "pg", "password");
  REQUIRE(digest.ok());
  CHECK(digest->size() == 64);
  CHECK(*digest == *store->digestOf("second-value"));
  CHECK(*digest != *store->digestOf("first-value"));

  auto versions = store->secretVersions("credential", "pg", "password");
  REQUIRE(versions.ok());
  REQUIRE(versions->size() == 2);
  CHECK((*versions)[0].version == 1);
  CHECK((*versions)[0].paramsJson == R"({"generator":"password","length":32})");
  CHECK((*versions)[1].version == 2);

  auto all = store->listSecrets();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].field == "password");
  CHECK((*all)[0].version == 2);
  CHECK((*all)[1].field == "username");
  CHECK((*all)[1].version == 1);
}

TEST_CASE("secrets: names, params and keys are checked") {
  TempDir tmp;
  auto store = openStore(tmp.path / Store::kFileName);
  auto key = store->initialize("pw", kFast);
  REQUIRE(key.ok());
  CHECK(codeOf(store->putSecret(*key, "credential", "a/b", "f", "v")) == "invalid_argument");
  CHECK(codeOf(store->putSecret(*key, "", "a", "f", "v")) == "invalid_argument");
  CHECK(codeOf(store->putSecret(*key, "credential", "a", "f g", "v")) == "invalid_argument");
  CHECK(codeOf(store->putSecret(*key, "credential", "a", "f", "v", "not json")) ==
        "invalid_argument");
  CHECK(codeOf(store->putSecret(*key, "credential", "a", "f", "v", "[1]")) == "invalid_argument");

  TempDir other;
  auto otherStore = openStore(other.path / Store::kFileName);
  auto otherKey = otherStore->initialize("pw", kFast);
  REQUIRE(otherKey.ok());
  CHECK(codeOf(store->putSecret(*otherKey, "credential", "a", "f", "v")) == "invalid_argument");

  REQUIRE(store->putSecret(*key, "credential", "a", "f", "v").ok());
  CHECK(codeOf(store->currentSecret(*otherKey, "credential", "a", "f")) == "invalid_argument");
  // Digests of the same value differ between stores (per-store digest key).
  CHECK(*store->digestOf("v") != *otherStore->digestOf("v"));

  UnlockedKey locked = std::move(key).value();
  locked.lock();
  CHECK(codeOf(store->putSecret(locked, "credential", "a", "f", "v2")) == "unavailable");
  CHECK(codeOf(store->currentSecret(locked, "credential", "a", "f")) == "unavailable");
}

TEST_CASE("a sealed value copied to another row does not open") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  auto store = openStore(file);
  auto key = store->initialize("pw", kFast);
  REQUIRE(key.ok());
  REQUIRE(store->putSecret(*key, "credential", "a", "password", "value-a").ok());
  REQUIRE(store->putSecret(*key, "credential", "b", "password", "value-b").ok());
  RawDb raw(file);
  // Stored versions are immutable even to raw SQL...
  CHECK(raw.exec("UPDATE secrets SET sealed = x'00' WHERE name = 'b'").find("immutable") !=
        std::string::npos);
  // ...so move the blob the hard way: drop b and re-insert it with a's blob.
  REQUIRE(raw.exec("DELETE FROM secrets WHERE name = 'b'") == "");
  REQUIRE(raw.exec("INSERT INTO secrets SELECT kind, 'b', field, version, sealed, value_digest, "
                   "created_at, params_json FROM secrets WHERE name = 'a'") == "");
  auto moved = store->currentSecret(*key, "credential", "b", "password");
  REQUIRE_FALSE(moved.ok());
  CHECK(codeOf(moved) == "internal");
  CHECK(store->currentSecret(*key, "credential", "a", "password")->value.view() == "value-a");
}

TEST_CASE("rekey: the new passphrase works, the old one stops, secrets still open") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  auto store = openStore(file);
  auto key = store->initialize("old passphrase", kFast);
  REQUIRE(key.ok());
  REQUIRE(store->putSecret(*key, "vault", "init", "root_token", "hvs.root-token-value").ok());
  RawDb raw(file);
  const std::string saltBefore = raw.dump("SELECT hex(value) FROM meta WHERE key = 'kdf_salt'");

  REQUIRE(store->rekey("old passphrase", "new passphrase", kFast).ok());
  CHECK(raw.dump("SELECT hex(value) FROM meta WHERE key = 'kdf_salt'") != saltBefore);
  CHECK(codeOf(store->unlock("old passphrase")) == "wrong_passphrase");
  auto fresh = store->unlock("new passphrase");
  REQUIRE(fresh.ok());
  CHECK(fresh->fingerprint() == key->fingerprint());  // same data key
  auto secret = store->currentSecret(*fresh, "vault", "init", "root_token");
  REQUIRE(secret.ok());
  CHECK(secret->value.view() == "hvs.root-token-value");
  // The key unlocked before the rekey still works: rekey changes no data key.
  CHECK(store->currentSecret(*key, "vault", "init", "root_token").ok());
  CHECK(codeOf(store->rekey("new passphrase", "", kFast)) == "invalid_argument");
  CHECK(store->unlock("new passphrase").ok());
}

TEST_CASE("reopening keeps everything and applies no migration twice") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  std::string fingerprint, digest;
  {
    auto store = openStore(file);
    auto key = store->initialize("pw", kFast);
    REQUIRE(key.ok());
    fingerprint = key->fingerprint();
    REQUIRE(store->putSecret(*key, "credential", "pg", "password", "v").ok());
    digest = *store->secretDigest("credential", "pg", "password");
    REQUIRE(store->setAppliedHash("container", "postgres", "sha256:abc").ok());
  }
  for (int i = 0; i < 3; ++i) {
    auto store = openStore(file);
    CHECK(*store->schemaVersion() == latestSchemaVersion());
    CHECK(*store->isInitialized());
    CHECK(*store->digestOf("v") == digest);  // the digest key is kept
    CHECK(**store->appliedHash("container", "postgres") == "sha256:abc");
    auto key = store->unlock("pw");
    REQUIRE(key.ok());
    CHECK(key->fingerprint() == fingerprint);
    CHECK(store->currentSecret(*key, "credential", "pg", "password")->value.view() == "v");
  }
  RawDb raw(file);
  CHECK(raw.dump("SELECT count(*) FROM schema_migrations") ==
        std::to_string(latestSchemaVersion()) + "|\n");
  CHECK(raw.dump("SELECT count(*) FROM meta WHERE key = 'digest_key'") == "1|\n");
}

TEST_CASE("a database from a newer foundationd is refused") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  { auto store = openStore(file); }
  {
    RawDb raw(file);
    REQUIRE(raw.exec("INSERT INTO schema_migrations VALUES (999, 'future', 0)") == "");
  }
  auto store = Store::open(file);
  REQUIRE_FALSE(store.ok());
  CHECK(codeOf(store) == "conflict");
  CHECK(store.error().message.find("newer") != std::string::npos);
}

TEST_CASE("the audit log is append-only") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  FakeClock clock;
  auto store = openStore(file, {clock.clock()});
  auto a = store->appendAudit("unseal.failed", R"({"remote":"unix"})");
  auto b = store->appendAudit("unseal.succeeded");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*b > *a);
  CHECK(codeOf(store->appendAudit("", "{}")) == "invalid_argument");
  CHECK(codeOf(store->appendAudit("x", "{oops")) == "invalid_argument");
  CHECK(codeOf(store->appendAudit("x", "\"a string\"")) == "invalid_argument");

  auto all = store->auditSince(0);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].event == "unseal.failed");
  CHECK((*all)[0].fieldsJson == R"({"remote":"unix"})");
  CHECK((*all)[0].at == *clock.now);
  CHECK((*all)[1].fieldsJson == "{}");
  CHECK(store->auditSince(*a)->size() == 1);
  CHECK(store->auditSince(0, 1)->size() == 1);

  RawDb raw(file);
  CHECK(raw.exec("UPDATE audit_log SET event = 'forged'").find("append-only") != std::string::npos);
  CHECK(raw.exec("DELETE FROM audit_log").find("append-only") != std::string::npos);
  CHECK(store->auditSince(0)->size() == 2);
  // Ids are never reused (AUTOINCREMENT).
  auto c = store->appendAudit("reconcile.done");
  REQUIRE(c.ok());
  CHECK(*c == *b + 1);
}

TEST_CASE("the unseal-attempt counter survives a reopen") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  FakeClock clock;
  {
    auto store = openStore(file, {clock.clock()});
    auto none = store->unsealAttempts();
    REQUIRE(none.ok());
    CHECK(none->failures == 0);
    CHECK_FALSE(none->lastFailureAt.has_value());
    REQUIRE(store->recordUnsealFailure().ok());
    *clock.now += std::chrono::seconds(5);
    auto two = store->recordUnsealFailure();
    REQUIRE(two.ok());
    CHECK(two->failures == 2);
    CHECK(two->lastFailureAt == *clock.now);
  }
  {
    auto store = openStore(file, {clock.clock()});
    auto kept = store->unsealAttempts();
    REQUIRE(kept.ok());
    CHECK(kept->failures == 2);
    CHECK(kept->lastFailureAt == *clock.now);
    REQUIRE(store->resetUnsealFailures().ok());
  }
  auto store = openStore(file);
  CHECK(store->unsealAttempts()->failures == 0);
  CHECK_FALSE(store->unsealAttempts()->lastFailureAt.has_value());
}

TEST_CASE("applied config hashes") {
  TempDir tmp;
  auto store = openStore(tmp.path / Store::kFileName);
  CHECK_FALSE(store->appliedHash("container", "pg")->has_value());
  REQUIRE(store->setAppliedHash("container", "pg", "h1").ok());
  REQUIRE(store->setAppliedHash("container", "pg", "h2").ok());
  REQUIRE(store->setAppliedHash("network", "backend", "h3").ok());
  CHECK(**store->appliedHash("container", "pg") == "h2");
  auto all = store->listApplied();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].kind == "container");
  CHECK((*all)[0].configHash == "h2");
  REQUIRE(store->clearAppliedHash("container", "pg").ok());
  CHECK_FALSE(store->appliedHash("container", "pg")->has_value());
  CHECK(codeOf(store->setAppliedHash("", "x", "h")) == "invalid_argument");
}

TEST_CASE("spec revisions: seen, then applied or rejected") {
  TempDir tmp;
  FakeClock clock;
  auto store = openStore(tmp.path / Store::kFileName, {clock.clock()});
  const TimePoint t0 = *clock.now;
  REQUIRE(store->recordSpecRevision("aaa", "git:main", SpecRevisionStatus::seen).ok());
  *clock.now += std::chrono::seconds(1);
  REQUIRE(store
              ->recordSpecRevision("bbb", "git:main", SpecRevisionStatus::rejected,
                                   "foundation.toml:3:1: error: unknown key")
              .ok());
  *clock.now += std::chrono::seconds(1);
  REQUIRE(store->recordSpecRevision("aaa", "git:main", SpecRevisionStatus::applied).ok());

  auto revs = store->specRevisions();
  REQUIRE(revs.ok());
  REQUIRE(revs->size() == 2);
  CHECK((*revs)[0].revision == "bbb");  // newest first sighting first
  CHECK(((*revs)[0].status == SpecRevisionStatus::rejected));
  CHECK((*revs)[0].errors == "foundation.toml:3:1: error: unknown key");
  CHECK_FALSE((*revs)[0].appliedAt.has_value());
  CHECK((*revs)[1].revision == "aaa");
  CHECK(((*revs)[1].status == SpecRevisionStatus::applied));
  CHECK((*revs)[1].seenAt == t0);
  CHECK((*revs)[1].appliedAt == *clock.now);
  CHECK(store->specRevisions(1)->size() == 1);
  CHECK(std::string(toString(SpecRevisionStatus::rejected)) == "rejected");
}

TEST_CASE("a committed secret is visible to another connection at once") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  auto writer = openStore(file);
  auto key = writer->initialize("pw", kFast);
  REQUIRE(key.ok());
  REQUIRE(writer->putSecret(*key, "vault", "init", "unseal_key_1", "k1").ok());
  auto reader = openStore(file);
  CHECK(reader->currentSecret(*key, "vault", "init", "unseal_key_1")->value.view() == "k1");
}

TEST_CASE("no plaintext secret ever reaches the database files") {
  TempDir tmp;
  fs::path file = tmp.path / Store::kFileName;
  const std::vector<std::string> secrets = {
      "Plaintext-Password-0001-unmistakable",
      "hvs.ROOTTOKENPLAINTEXTMARKER0123456789",
      "unseal-key-plaintext-marker-abcdefghijklmnop",
  };
  const std::string passphrase = "master-passphrase-plaintext-marker";
  auto assertAbsent = [&](const std::string& where) {
    for (const auto& s : secrets) {
      INFO(where << " must not contain a plaintext secret");
      CHECK(where.find(s) == std::string::npos);
      CHECK(where.find(s.substr(0, 16)) == std::string::npos);
    }
    CHECK(where.find(passphrase) == std::string::npos);
  };
  {
    auto store = openStore(file);
    auto key = store->initialize(passphrase, kFast);
    REQUIRE(key.ok());
    int i = 0;
    for (const auto& s : secrets) {
      REQUIRE(store->putSecret(*key, "credential", "c" + std::to_string(i++), "value", s).ok());
    }
    REQUIRE(store->putSecret(*key, "credential", "c0", "value", secrets[0] + "-rotated").ok());
    auto wal = readFile(file.string() + "-wal");
    CHECK_FALSE(wal.empty());  // the test reads what was really written
    assertAbsent(readFile(file) + wal);
    // Sanity: the check finds a value that is stored in clear.
    REQUIRE(store->appendAudit("marker", R"({"note":"visible-audit-marker"})").ok());
    CHECK(readFile(file.string() + "-wal").find("visible-audit-marker") != std::string::npos);
  }
  // After close SQLite checkpoints the WAL into the main file.
  assertAbsent(readFile(file) + readFile(file.string() + "-wal"));
}

TEST_CASE("the store serialises calls from several threads") {
  TempDir tmp;
  auto store = openStore(tmp.path / Store::kFileName);
  auto key = store->initialize("pw", kFast);
  REQUIRE(key.ok());
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!store->appendAudit("thread.event").ok()) ++failures;
        if (!store->putSecret(*key, "credential", "shared", "value", "v" + std::to_string(t))
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(store->auditSince(0)->size() == kThreads * kEach);
  auto versions = store->secretVersions("credential", "shared", "value");
  REQUIRE(versions.ok());
  REQUIRE(versions->size() == kThreads * kEach);
  for (int i = 0; i < kThreads * kEach; ++i) CHECK((*versions)[i].version == i + 1);
}
