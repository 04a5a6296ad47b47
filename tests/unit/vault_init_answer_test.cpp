// Vault's init answer (controllers/vault/init_answer.hpp) with the real
// Store: persisted as Vault gave it before it is checked; an answer with
// recovery keys only is kept sealed and reported; a state that cannot take
// it gets a sealed fallback file and retries, never a lost key.
#include "controllers/vault/init_answer.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "controllers/vault/vault.hpp"
#include "state/sealing.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace foundationd;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Fixture {
  test::TempDir dir{"vault-init"};
  std::unique_ptr<state::Store> store;
  state::UnlockedKey key;
  explicit Fixture(std::chrono::milliseconds busy = std::chrono::milliseconds(5000)) {
    state::StoreOptions o;
    o.busyTimeout = busy;
    auto s = state::Store::openDir(dir.path, o);
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto k = store->initialize("vault init passphrase", state::KdfProfile::interactive);
    REQUIRE(k.ok());
    key = std::move(k).value();
  }
  json material() {
    auto s = store->currentSecret(key, vault::kKind, vault::kInitName, vault::kInitField);
    REQUIRE(s.ok());
    return json::parse(s->value.view());
  }
};

vault::InitResponse recoveryOnly() {
  vault::InitResponse a;
  a.recoveryKeysBase64 = {"cmVjb3Zlcnkx", "cmVjb3Zlcnky"};
  a.rootToken = "s.root-token-of-an-auto-unseal-vault";
  a.raw = json{{"keys", json::array()},
               {"keys_base64", json::array()},
               {"recovery_keys", {"72", "73"}},
               {"recovery_keys_base64", a.recoveryKeysBase64},
               {"root_token", a.rootToken}}
              .dump();
  return a;
}

vault::InitResponse shamir(int shares) {
  vault::InitResponse a;
  for (int i = 0; i < shares; ++i) a.keysBase64.push_back("a2V5" + std::to_string(i));
  a.rootToken = "s.root";
  a.raw = json{{"keys_base64", a.keysBase64}, {"root_token", a.rootToken}}.dump();
  return a;
}

std::vector<fs::path> fallbacks(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(vault::kFallbackPrefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

}  // namespace

TEST_CASE("an answer with recovery keys only is kept sealed with its root token, and reported") {
  Fixture f;
  const auto answer = recoveryOnly();
  auto v = vault::saveInitAnswer(*f.store, f.key, answer, 3, 2, f.dir.path);
  REQUIRE(v.ok());
  const json m = f.material();
  CHECK(m["recovery_keys_base64"] == json(answer.recoveryKeysBase64));
  CHECK(m["root_token"] == answer.rootToken);
  CHECK(m["answer"]["recovery_keys"] == json({"72", "73"}));
  auto st = vault::checkInitAnswer(answer, 3);
  REQUIRE_FALSE(st.ok());
  CHECK((st.error().code == ErrorCode::protocol));
  CHECK(st.error().message.find("recovery keys") != std::string::npos);
  CHECK(st.error().message.find("kept sealed") != std::string::npos);
  CHECK(st.error().message.find(answer.rootToken) == std::string::npos);
}

TEST_CASE("a complete Shamir answer passes the check; a short one does not") {
  CHECK(vault::checkInitAnswer(shamir(3), 3).ok());
  auto shortAnswer = shamir(2);
  CHECK_FALSE(vault::checkInitAnswer(shortAnswer, 3).ok());
  auto noToken = shamir(3);
  noToken.rootToken.clear();
  CHECK_FALSE(vault::checkInitAnswer(noToken, 3).ok());
}

TEST_CASE("a state that cannot take the answer: a sealed fallback file, retries, an error naming it") {
  Fixture f(std::chrono::milliseconds(20));
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open((f.dir.path / state::Store::kFileName).c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  const auto answer = shamir(3);
  vault::SaveOptions o;
  o.attempts = 3;
  o.delay = std::chrono::milliseconds(5);
  auto v = vault::saveInitAnswer(*f.store, f.key, answer, 3, 2, f.dir.path, o);
  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  REQUIRE_FALSE(v.ok());
  const auto files = fallbacks(f.dir.path);
  REQUIRE(files.size() == 1);
  CHECK(v.error().message.find(files[0].string()) != std::string::npos);
  CHECK(v.error().message.find("import-vault-keys") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat(files[0].c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  // The file is an export: the passphrase opens its data key, which opens the answer.
  std::ifstream in(files[0]);
  const json j = json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  CHECK(j["format"] == "foundationd-vault-keys");
  auto wrapped = f.store->wrappedKey();
  REQUIRE(wrapped.ok());
  auto dataKey = state::unwrapKey(*wrapped, "vault init passphrase");
  REQUIRE(dataKey.ok());
  std::string sealed(j["secret"]["sealed"].get<std::string>().size(), '\0');
  std::size_t len = 0;
  const std::string b64 = j["secret"]["sealed"];
  REQUIRE(sodium_base642bin(reinterpret_cast<unsigned char*>(sealed.data()), sealed.size(),
                            b64.data(), b64.size(), nullptr, &len, nullptr,
                            sodium_base64_VARIANT_ORIGINAL) == 0);
  sealed.resize(len);
  auto opened = state::open(*dataKey, state::secretId(vault::kKind, vault::kInitName,
                                                      vault::kInitField, j["secret"]["version"]),
                            sealed);
  REQUIRE(opened.ok());
  const json m = json::parse(opened->view());
  CHECK(m["keys_base64"] == json(answer.keysBase64));
  CHECK(m["root_token"] == answer.rootToken);
}

TEST_CASE("a state that takes the answer after a few tries: stored, the fallback removed") {
  Fixture f(std::chrono::milliseconds(20));
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open((f.dir.path / state::Store::kFileName).c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::thread release([other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  });
  const auto answer = shamir(3);
  vault::SaveOptions o;
  o.attempts = 50;
  o.delay = std::chrono::milliseconds(20);
  auto v = vault::saveInitAnswer(*f.store, f.key, answer, 3, 2, f.dir.path, o);
  release.join();
  sqlite3_close(other);
  REQUIRE(v.ok());
  CHECK(f.material()["keys_base64"] == json(answer.keysBase64));
  CHECK(fallbacks(f.dir.path).empty());
}
