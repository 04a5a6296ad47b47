// Store::rotateDataKey (`foundationd rekey --rotate-data-key`) and the WAL
// scrub after rekey: what an old passphrase plus an old copy of state.db can
// and cannot open afterwards.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/temp_dir.hpp"

#include "state/store.hpp"

using namespace foundationd;
using namespace foundationd::state;
namespace fs = std::filesystem;

namespace {

// Every case's scratch directory: /tmp/fd-rotate-test-XXXXXX.
struct TempDir : foundationd::test::TempDir {
  TempDir() : foundationd::test::TempDir("rotate-test") {}
};

std::unique_ptr<Store> openStore(const fs::path& file) {
  auto store = Store::open(file);
  REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
  return std::move(store).value();
}

std::string bytesOf(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Everything of the database on disk: the main file and its WAL.
std::string onDisk(const fs::path& file) {
  std::string all = bytesOf(file);
  if (fs::exists(file.string() + "-wal")) all += bytesOf(file.string() + "-wal");
  return all;
}

constexpr const char* kPass = "the same passphrase before and after";

}  // namespace

TEST_CASE("rotating the data key: an old copy plus the old passphrase opens only the old secrets") {
  TempDir tmp;
  const fs::path file = tmp.path / Store::kFileName;
  const fs::path copyDir = tmp.path / "old-copy";
  fs::create_directories(copyDir);
  std::string oldWrapped, oldSealed, oldFingerprint;
  {
    auto store = openStore(file);
    auto key = store->initialize(kPass, KdfProfile::interactive);
    REQUIRE(key.ok());
    oldFingerprint = key->fingerprint();
    REQUIRE(store->putSecret(*key, "credential", "db", "password", "old-value-1").ok());
    REQUIRE(store->putSecret(*key, "credential", "db", "password", "old-value-2").ok());
    oldWrapped = store->wrappedKey()->ciphertext;
    oldSealed = *store->sealedSecret("credential", "db", "password", 2);
  }
  // An old copy of the state (database and WAL), as a backup would have it.
  fs::copy_file(file, copyDir / Store::kFileName);
  if (fs::exists(file.string() + "-wal")) {
    fs::copy_file(file.string() + "-wal", copyDir / (std::string(Store::kFileName) + "-wal"));
  }

  auto store = openStore(file);
  REQUIRE(store->rotateDataKey(kPass, kPass, KdfProfile::interactive).ok());
  auto key = store->unlock(kPass);
  REQUIRE(key.ok());
  CHECK(key->fingerprint() != oldFingerprint);
  // Every version kept, same values, same digests, now under the new key.
  CHECK(store->getSecret(*key, "credential", "db", "password", 1)->view() == "old-value-1");
  CHECK(store->getSecret(*key, "credential", "db", "password", 2)->view() == "old-value-2");
  CHECK(*store->secretDigest("credential", "db", "password") == *store->digestOf("old-value-2"));
  REQUIRE(store->putSecret(*key, "credential", "db", "password", "today").ok());
  const std::string todaySealed = *store->sealedSecret("credential", "db", "password", 3);
  // Neither the old wrapped key nor an old sealed blob is left on disk (WAL truncated).
  CHECK(fs::file_size(file.string() + "-wal") < 4096 * 4);  // only what came after
  const std::string disk = onDisk(file);
  CHECK(disk.find(oldWrapped) == std::string::npos);
  CHECK(disk.find(oldSealed) == std::string::npos);

  // The old copy with the old passphrase: its own (old) secrets open ...
  auto old = openStore(copyDir / Store::kFileName);
  auto oldKey = old->unlock(kPass);
  REQUIRE(oldKey.ok());
  CHECK(oldKey->fingerprint() == oldFingerprint);
  CHECK(old->getSecret(*oldKey, "credential", "db", "password", 2)->view() == "old-value-2");
  // ... but not today's: its key is not the one that seals them.
  auto opened = oldKey->open(secretId("credential", "db", "password", 3), todaySealed);
  REQUIRE_FALSE(opened.ok());
  CHECK((opened.error().code == ErrorCode::internal));
  auto rotatedVersion = oldKey->open(secretId("credential", "db", "password", 2),
                                     *store->sealedSecret("credential", "db", "password", 2));
  CHECK_FALSE(rotatedVersion.ok());
}

TEST_CASE("rotating with a wrong passphrase changes nothing") {
  TempDir tmp;
  const fs::path file = tmp.path / Store::kFileName;
  auto store = openStore(file);
  auto key = store->initialize(kPass, KdfProfile::interactive);
  REQUIRE(key.ok());
  REQUIRE(store->putSecret(*key, "credential", "x", "y", "value").ok());
  const std::string before = *store->sealedSecret("credential", "x", "y", 1);
  auto st = store->rotateDataKey("not it", "new one", KdfProfile::interactive);
  REQUIRE_FALSE(st.ok());
  CHECK((st.error().code == ErrorCode::wrong_passphrase));
  CHECK(*store->sealedSecret("credential", "x", "y", 1) == before);
  CHECK(store->unlock(kPass).ok());
}

TEST_CASE("rekey scrubs the old wrapped key from the WAL") {
  TempDir tmp;
  const fs::path file = tmp.path / Store::kFileName;
  auto store = openStore(file);
  REQUIRE(store->initialize(kPass, KdfProfile::interactive).ok());
  const std::string oldWrapped = store->wrappedKey()->ciphertext;
  REQUIRE(store->rekey(kPass, "a new passphrase", KdfProfile::interactive).ok());
  CHECK(fs::file_size(file.string() + "-wal") == 0);
  CHECK(onDisk(file).find(oldWrapped) == std::string::npos);
  CHECK(store->unlock("a new passphrase").ok());
  CHECK((store->unlock(kPass).error().code == ErrorCode::wrong_passphrase));
}
