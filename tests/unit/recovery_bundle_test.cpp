// The recovery bundle (controllers/backup/recovery_bundle.hpp): what a fresh
// host needs beyond the spec repository and the passphrase, sealed under the
// passphrase. Round trip, wrong passphrase, a flipped byte anywhere, a
// truncated file, an edited header.
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "controllers/backup/recovery_bundle.hpp"

using namespace foundationd;
using namespace foundationd::backup;

namespace {

RecoveryContents sample() {
  RecoveryContents c;
  c.project = "demo";
  c.createdAt = "2026-12-03T15:00:00Z";
  c.resticPassword = state::SecretBytes::copyOf("restic-pass-0123456789");
  Repository local{"s3:http://127.0.0.1:8333/backups", {{"AWS_ACCESS_KEY_ID", "lk"},
                                                        {"AWS_SECRET_ACCESS_KEY", "ls"}},
                   "s3:http://127.0.0.1:8333/backups", {}, {}};
  Repository off{"s3:https://offsite.example/fd", {{"AWS_ACCESS_KEY_ID", "ok"},
                                                   {"AWS_SECRET_ACCESS_KEY", "offsite-secret"}},
                 "s3:https://offsite.example/fd", {}, {}};
  c.targets.emplace_back("local", std::move(local));
  c.targets.emplace_back("offsite", std::move(off));
  return c;
}

const char* kPass = "correct horse battery staple";

std::string sealed() {
  auto text = sealRecoveryBundle(sample(), kPass, state::KdfProfile::interactive);
  REQUIRE(text.ok());
  return *text;
}

}  // namespace

TEST_CASE("recovery bundle: round trip, and no secret in clear in the file") {
  REQUIRE(sodium_init() >= 0);
  const std::string text = sealed();
  CHECK(text.find("restic-pass") == std::string::npos);
  CHECK(text.find("offsite-secret") == std::string::npos);
  CHECK(text.find("offsite.example") == std::string::npos);  // the endpoint is sealed too
  auto c = openRecoveryBundle(text, kPass);
  REQUIRE(c.ok());
  CHECK(c->project == "demo");
  CHECK(c->createdAt == "2026-12-03T15:00:00Z");
  CHECK(c->resticPassword.view() == "restic-pass-0123456789");
  REQUIRE(c->target("offsite") != nullptr);
  CHECK(c->target("offsite")->location == "s3:https://offsite.example/fd");
  REQUIRE(c->target("offsite")->env.size() == 2);
  CHECK(c->target("offsite")->env[1].second == "offsite-secret");
  REQUIRE(c->target("local") != nullptr);
  CHECK(c->target("nowhere") == nullptr);
  // Two bundles of the same contents differ (fresh key, salt, nonce).
  CHECK(sealed() != text);
}

TEST_CASE("recovery bundle: a wrong passphrase is refused as such") {
  auto c = openRecoveryBundle(sealed(), "correct horse battery stapler");
  REQUIRE_FALSE(c.ok());
  CHECK((c.error().code == ErrorCode::wrong_passphrase));
  CHECK(c.error().message.find("passphrase does not open") != std::string::npos);
}

TEST_CASE("recovery bundle: one flipped byte in the sealed part or the key is refused") {
  const std::string text = sealed();
  auto j = nlohmann::json::parse(text);
  for (const char* field : {"sealed", "key"}) {
    auto t = j;
    std::string& b = field == std::string("sealed")
                         ? t["sealed"].get_ref<std::string&>()
                         : t["wrapped_key"]["ciphertext"].get_ref<std::string&>();
    // Flip a bit of the decoded bytes: re-encode with one character changed
    // in the middle (still valid base64, other bytes).
    const std::size_t at = b.size() / 2;
    b[at] = b[at] == 'A' ? 'B' : 'A';
    auto c = openRecoveryBundle(t.dump(2), kPass);
    REQUIRE_FALSE(c.ok());
    if (field == std::string("sealed")) {
      CHECK((c.error().code == ErrorCode::protocol));
      CHECK(c.error().message.find("altered or truncated") != std::string::npos);
    } else {
      CHECK((c.error().code == ErrorCode::wrong_passphrase));
    }
  }
}

TEST_CASE("recovery bundle: an edited header does not open") {
  auto j = nlohmann::json::parse(sealed());
  SUBCASE("project") { j["project"] = "other"; }
  SUBCASE("date") { j["created_at"] = "2030-01-01T00:00:00Z"; }
  auto c = openRecoveryBundle(j.dump(), kPass);
  REQUIRE_FALSE(c.ok());
  CHECK((c.error().code == ErrorCode::protocol));
}

TEST_CASE("recovery bundle: truncated, empty or another file is refused") {
  const std::string text = sealed();
  for (std::size_t keep : {std::size_t(0), std::size_t(10), text.size() / 2, text.size() - 3}) {
    auto c = openRecoveryBundle(text.substr(0, keep), kPass);
    REQUIRE_FALSE(c.ok());
    CHECK((c.error().code == ErrorCode::invalid_argument));
  }
  auto other = openRecoveryBundle(R"({"format":"foundationd-vault-keys","format_version":1})", kPass);
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message.find("not a recovery bundle") != std::string::npos);
  auto future = nlohmann::json::parse(text);
  future["format_version"] = 2;
  auto f = openRecoveryBundle(future.dump(), kPass);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().message.find("version 2") != std::string::npos);
}

TEST_CASE("recovery bundle: no password, no bundle; an empty passphrase is refused") {
  RecoveryContents c = sample();
  c.resticPassword = state::SecretBytes();
  CHECK_FALSE(sealRecoveryBundle(c, kPass, state::KdfProfile::interactive).ok());
  CHECK_FALSE(sealRecoveryBundle(sample(), "", state::KdfProfile::interactive).ok());
}
