// `backup verify`'s Vault check (checkScratchVault, controllers/backup/
// vault_section.hpp) against a scripted OpenBao on loopback that behaves as a
// real one does around a forced snapshot restore from another cluster: for a
// moment after the restore, seal-status still answers for the core that was
// unsealed with the throwaway keys (whose tokens are not the snapshot's), and
// only then is the node sealed on the snapshot's keyring. The check must wait
// for that, and unseal with the backup's own keys.
#include <mutex>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "controllers/backup/vault_section.hpp"
#include "tests/unit/loopback_server.hpp"

using namespace foundationd;
using namespace foundationd::backup;
using foundationd::testing::jsonAnswer;
using foundationd::testing::LoopbackServer;
using foundationd::testing::Request;
using foundationd::testing::Response;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kThrowawayKey = "dGhyb3dhd2F5";
constexpr const char* kThrowawayRoot = "throwaway-root";
constexpr const char* kBackupKey = "YmFja3VwLWtleQ==";
constexpr const char* kBackupRoot = "backup-root";
const std::map<std::string, std::string> kCanary{{"backup", "20261204T120000Z"}};

// One OpenBao node: uninitialised, then on the throwaway keyring, then (after
// the restore) on the snapshot's, which holds two secrets and the canary.
class FakeOpenBao {
 public:
  // `staleAnswers`: how many seal-status answers after the restore still say
  // "unsealed" for the old core; -1 = it never reseals.
  explicit FakeOpenBao(int staleAnswers, bool refuseSnapshot = false)
      : stale_(staleAnswers), refuse_(refuseSnapshot) {}

  Response answer(const Request& req) {
    std::lock_guard lock(mutex_);
    const std::string target(req.target());
    const std::string method(req.method_string());
    const std::string token(req["X-Vault-Token"]);
    if (target == "/v1/sys/seal-status") {
      if (restored_ && !sealed_ && !snapshotCore_) {
        if (stale_ < 0) return status();
        if (stale_ > 0) {
          --stale_;
          return status();
        }
        sealed_ = true;  // the restore reseals the node on the snapshot's keyring
        snapshotCore_ = true;
      }
      return status();
    }
    if (target == "/v1/sys/init" && method == "PUT") {
      initialized_ = true;
      return jsonAnswer(
          200, json{{"keys_base64", {kThrowawayKey}}, {"root_token", kThrowawayRoot}}.dump());
    }
    if (target == "/v1/sys/unseal" && method == "PUT") {
      const std::string key = json::parse(req.body()).value("key", "");
      const std::string fits = snapshotCore_ ? kBackupKey : kThrowawayKey;
      if (key != fits) return jsonAnswer(400, R"({"errors":["Error: unseal key is wrong"]})");
      sealed_ = false;
      return status();
    }
    if (target == "/v1/sys/health") return jsonAnswer(sealed_ ? 503 : 200, "{}");
    if (target == "/v1/sys/storage/raft/snapshot-force" && method == "POST") {
      if (token != kThrowawayRoot || sealed_) return denied();
      if (refuse_) {
        return jsonAnswer(500, R"({"errors":["failed to read snapshot file: unexpected EOF"]})");
      }
      snapshot_ = req.body();
      restored_ = true;
      return jsonAnswer(204, "");
    }
    // Everything else needs the token of the core that answers.
    if (sealed_) return jsonAnswer(503, R"({"errors":["Vault is sealed"]})");
    if (token != (snapshotCore_ ? kBackupRoot : kThrowawayRoot)) return denied();
    if (!snapshotCore_) return jsonAnswer(404, R"({"errors":[]})");  // a fresh core: empty
    if (target == "/v1/foundation/metadata/" && method == "LIST") {
      return jsonAnswer(200, R"({"data":{"keys":["app/","foundationd/"]}})");
    }
    if (target == "/v1/foundation/metadata/app/" && method == "LIST") {
      return jsonAnswer(200, R"({"data":{"keys":["db"]}})");
    }
    if (target == "/v1/foundation/metadata/foundationd/" && method == "LIST") {
      return jsonAnswer(200, R"({"data":{"keys":["canary"]}})");
    }
    if (target == "/v1/foundation/data/foundationd/canary" && method == "GET") {
      return jsonAnswer(200,
                        json{{"data", {{"data", kCanary}, {"metadata", {{"version", 1}}}}}}.dump());
    }
    return jsonAnswer(404, R"({"errors":[]})");
  }

  std::string snapshot() {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }

 private:
  Response status() const {
    return jsonAnswer(
        200,
        json{
            {"initialized", initialized_}, {"sealed", sealed_}, {"t", 1}, {"n", 1}, {"progress", 0}}
            .dump());
  }
  static Response denied() { return jsonAnswer(403, R"({"errors":["permission denied"]})"); }

  std::mutex mutex_;
  int stale_;
  bool refuse_;
  bool initialized_ = false;
  bool sealed_ = true;
  bool restored_ = false;
  bool snapshotCore_ = false;
  std::string snapshot_;
};

ScratchVaultExpect expectation() {
  ScratchVaultExpect e;
  e.kvMount = "foundation";
  e.canaryPath = "foundationd/canary";
  e.canarySha256 = vaultCanaryDigest(kCanary);
  e.keys = 2;
  e.wait = 5s;
  return e;
}

}  // namespace

TEST_CASE("verify waits until the restored snapshot reseals the scratch Vault, then unseals it") {
  for (int stale : {0, 3}) {
    CAPTURE(stale);
    FakeOpenBao bao(stale);
    LoopbackServer server([&bao](const Request& r) { return bao.answer(r); });
    std::vector<std::string> reports;
    auto out =
        checkScratchVault(server.address(), "SNAPSHOT-BYTES", {kBackupKey}, kBackupRoot,
                          expectation(), [&](const std::string& s) { reports.push_back(s); });
    CHECK_MESSAGE(out.ok, (out.reason + ": " + out.detail));
    CHECK(bao.snapshot() == "SNAPSHOT-BYTES");
    CHECK(out.detail.find("2 secrets under foundation/ as in the manifest") != std::string::npos);
    CHECK(out.detail.find("the canary foundationd/canary equal") != std::string::npos);
    // The backup's key was sent (the snapshot's keyring), after the restore.
    int unsealsWithBackupKey = 0;
    for (const auto& r : server.requests()) {
      if (std::string(r.target()) == "/v1/sys/unseal" &&
          r.body().find(kBackupKey) != std::string::npos) {
        ++unsealsWithBackupKey;
      }
    }
    CHECK(unsealsWithBackupKey == 1);
    REQUIRE(reports.size() == 2);
    for (const auto& r : reports) {
      CHECK(r.find(kBackupKey) == std::string::npos);
      CHECK(r.find(kBackupRoot) == std::string::npos);
    }
  }
}

TEST_CASE("a scratch Vault that never reseals after the restore is a failed restore, not a pass") {
  FakeOpenBao bao(-1);
  LoopbackServer server([&bao](const Request& r) { return bao.answer(r); });
  auto e = expectation();
  e.wait = 1500ms;
  auto out = checkScratchVault(server.address(), "SNAPSHOT-BYTES", {kBackupKey}, kBackupRoot, e,
                               [](const std::string&) {});
  CHECK_FALSE(out.ok);
  CHECK(out.reason == "restore");
  CHECK(out.detail.find("did not reseal") != std::string::npos);
}

TEST_CASE("keys that do not fit the restored snapshot are a mismatch, named as such") {
  FakeOpenBao bao(1);
  LoopbackServer server([&bao](const Request& r) { return bao.answer(r); });
  auto out = checkScratchVault(server.address(), "SNAPSHOT-BYTES", {"b3RoZXIta2V5"}, kBackupRoot,
                               expectation(), [](const std::string&) {});
  CHECK_FALSE(out.ok);
  CHECK(out.reason == "mismatch");
  CHECK(out.detail.find("do not unseal the restored snapshot") != std::string::npos);
  CHECK(out.detail.find("b3RoZXIta2V5") == std::string::npos);
}

TEST_CASE("a snapshot the scratch Vault refuses fails the restore with Vault's own words") {
  FakeOpenBao bao(0, /*refuseSnapshot=*/true);
  LoopbackServer server([&bao](const Request& r) { return bao.answer(r); });
  auto out = checkScratchVault(server.address(), "TRUNCATED", {kBackupKey}, kBackupRoot,
                               expectation(), [](const std::string&) {});
  CHECK_FALSE(out.ok);
  CHECK(out.reason == "restore");
  CHECK(out.detail.find("HTTP 500") != std::string::npos);
  CHECK(out.detail.find("unexpected EOF") != std::string::npos);
  // Nothing was unsealed with the backup's keys.
  for (const auto& r : server.requests()) CHECK(r.body().find(kBackupKey) == std::string::npos);
}
