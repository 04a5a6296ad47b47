// VaultClient's KV v2 calls against a scripted Beast HTTP/1.1 server on
// loopback: a mount still being upgraded to versioned data (400 "Upgrading
// from non-versioned to versioned data", what OpenBao answers for a moment
// after a kv-v2 mount is enabled) is waited out; any other 400 is not, and the
// wait has an end.
#include "controllers/vault/vault_client.hpp"

#include <string>

#include <doctest/doctest.h>

#include "tests/unit/loopback_server.hpp"

using foundationd::testing::LoopbackServer;
using foundationd::testing::script;
using namespace foundationd;
using namespace std::chrono_literals;

namespace {

constexpr const char* kUpgrading =
    R"({"errors":["Upgrading from non-versioned to versioned data. This backend will be )"
    R"(unavailable for a brief period and will resume service shortly."]})";

}  // namespace

TEST_CASE("kv calls wait out a mount being upgraded to versioned data") {
  LoopbackServer server(
      script({{400, kUpgrading},
              {400, kUpgrading},
              {400, kUpgrading},
              {200, R"({"data":{"data":{"token":"t"},"metadata":{"version":3}}})"}}));
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto r = c.kvRead("foundation", "app/key");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  REQUIRE(r->has_value());
  CHECK((*r)->data.at("token") == "t");
  CHECK((*r)->version == 3);
  CHECK(server.targets().size() == 4);
  for (const auto& p : server.targets()) CHECK(p == "/v1/foundation/data/app/key");
}

TEST_CASE("kv writes are retried the same way, with the same body") {
  LoopbackServer server(script({{400, kUpgrading}, {200, R"({"data":{"version":1}})"}}));
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto v = c.kvWrite("foundation", "app/key", {{"token", "t"}}, 0);
  REQUIRE_MESSAGE(v.ok(), v.error().message);
  CHECK(*v == 1);
  auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].body().find("\"token\":\"t\"") != std::string::npos);
  CHECK(seen[1].body() == seen[0].body());
}

TEST_CASE("another 400 is not retried") {
  LoopbackServer server(script({{400, R"({"errors":["check-and-set parameter did not match"]})"}}));
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto v = c.kvWrite("foundation", "app/key", {{"token", "t"}}, 0);
  REQUIRE_FALSE(v.ok());
  CHECK((v.error().code == ErrorCode::conflict));
  CHECK(server.targets().size() == 1);
}

TEST_CASE("the wait for an upgrade has an end, and the error says what Vault said") {
  LoopbackServer server(script({{400, kUpgrading}}));
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  c.setKvUpgradeWait(400ms);
  auto r = c.kvRead("foundation", "app/key");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("Upgrading from non-versioned") != std::string::npos);
  CHECK(server.targets().size() >= 2);
  CHECK(server.targets().size() <= 6);
}
