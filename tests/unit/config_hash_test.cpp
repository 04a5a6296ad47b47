#include <map>

#include <doctest/doctest.h>

#include "controllers/docker/container_config.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using foundationd::testing::specFrom;

namespace {

// Digests and values keyed by "name.field"; records what was asked.
class MapSecrets final : public docker::SecretResolver {
 public:
  std::map<std::string, std::string> digests, values;
  std::optional<std::string> digest(const config::CredentialRef& r) const override {
    auto it = digests.find(r.name + "." + r.field);
    if (it == digests.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> value(const config::CredentialRef& r) const override {
    auto it = values.find(r.name + "." + r.field);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

const char* kBase = R"(
spec_version = 1
project = "p"
[networks.net]
[volumes.data]
[credentials.db]
[credentials.db.fields]
password = { generate = "password", length = 32 }
[containers.db]
image = "img/db:1"
env = { A = "1", B = "two", PW = "${credentials.db.password}" }
networks = ["net"]
volumes = ["data:/var/lib/db", "/etc/x.conf:/etc/x.conf:ro"]
ports = ["127.0.0.1:5432:5432"]
restart = "unless-stopped"
healthcheck = { test = ["CMD", "true"], interval = "1s", timeout = "2s", retries = 3 }
[containers.app]
image = "img/app:1"
depends_on = { db = "healthy" }
)";

}  // namespace

TEST_CASE("sha256Hex matches the FIPS 180-2 test vector") {
  CHECK(docker::sha256Hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("the config hash is deterministic and is the hash of the canonical document") {
  auto spec = specFrom(kBase);
  docker::NoSecrets none;
  auto a = docker::desiredContainer(spec.containers.at("db"), none);
  auto b = docker::desiredContainer(specFrom(kBase).containers.at("db"), none);
  CHECK(a.hash == b.hash);
  CHECK(a.hash == docker::sha256Hex(a.canonical.dump()));
  CHECK(a.canonical.at("image") == "img/db:1");
  CHECK(a.canonical.at("restart") == "unless-stopped");
  // Defaults are left out so that new optional fields never change old hashes.
  auto app = docker::desiredContainer(spec.containers.at("app"), none);
  CHECK_FALSE(app.canonical.contains("restart"));
  CHECK_FALSE(app.canonical.contains("privileged"));
  CHECK(app.canonical.size() == 1);
}

TEST_CASE("what changes the hash, and what does not") {
  docker::NoSecrets none;
  auto base = docker::desiredContainer(specFrom(kBase).containers.at("db"), none).hash;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = kBase;
    auto pos = text.find(from);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, from.size(), to);
    return docker::desiredContainer(specFrom(text).containers.at("db"), none).hash;
  };
  CHECK(with("img/db:1", "img/db:2") != base);
  CHECK(with("B = \"two\"", "B = \"three\"") != base);
  CHECK(with("127.0.0.1:5432:5432", "127.0.0.1:5433:5432") != base);
  CHECK(with("retries = 3", "retries = 4") != base);
  // The order of env keys is not part of the identity.
  CHECK(with("A = \"1\", B = \"two\"", "B = \"two\", A = \"1\"") == base);
  // depends_on orders work; it is not the container's config.
  auto app = docker::desiredContainer(specFrom(kBase).containers.at("app"), none).hash;
  std::string text = kBase;
  text.replace(text.find("depends_on = { db = \"healthy\" }"), 31, "depends_on = [\"db\"]");
  CHECK(docker::desiredContainer(specFrom(text).containers.at("app"), none).hash == app);
}

TEST_CASE("secrets enter the hash as digests, never as values") {
  auto spec = specFrom(kBase);
  MapSecrets s1, s2;
  s1.digests["db.password"] = "digest-one";
  s1.values["db.password"] = "hunter2-super-secret";
  s2.digests["db.password"] = "digest-two";
  auto d1 = docker::desiredContainer(spec.containers.at("db"), s1);
  auto d2 = docker::desiredContainer(spec.containers.at("db"), s2);
  CHECK(d1.hash != d2.hash);  // a rotation is a change plan() can see without the value
  CHECK(d1.canonical.dump().find("hunter2") == std::string::npos);
  CHECK(d1.canonical.at("env").at("PW").contains("sensitive"));
  auto labels = docker::ownedLabels({}, "p", d1);
  for (const auto& [k, v] : labels) CHECK(v.find("hunter2") == std::string::npos);

  auto body = docker::containerCreateBody(spec.containers.at("db"), "p", d1, s1, "/run/x");
  REQUIRE(body.ok());
  bool found = false;
  for (const auto& e : body->at("Env")) found |= e == "PW=hunter2-super-secret";
  CHECK(found);
  CHECK(body->at("Labels").dump().find("hunter2") == std::string::npos);

  auto missing = docker::containerCreateBody(spec.containers.at("db"), "p", d2, s2, "/run/x");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("db.password") != std::string::npos);
}

TEST_CASE("the Engine create body carries every field") {
  auto spec = specFrom(kBase);
  MapSecrets s;
  s.values["db.password"] = "x";
  auto d = docker::desiredContainer(spec.containers.at("db"), s);
  auto body = docker::containerCreateBody(spec.containers.at("db"), "p", d, s, "/run/x");
  REQUIRE(body.ok());
  const auto& b = body.value();
  CHECK(b.at("Image") == "img/db:1");
  CHECK(b.at("Labels").at("foundationd.managed") == "true");
  CHECK(b.at("Labels").at("foundationd.project") == "p");
  CHECK(b.at("Labels").at("foundationd.config-hash") == d.hash);
  CHECK(b.at("HostConfig").at("Binds") ==
        nlohmann::json::array({"data:/var/lib/db", "/etc/x.conf:/etc/x.conf:ro"}));
  CHECK(b.at("HostConfig").at("PortBindings").at("5432/tcp")[0].at("HostIp") == "127.0.0.1");
  CHECK(b.at("HostConfig").at("PortBindings").at("5432/tcp")[0].at("HostPort") == "5432");
  CHECK(b.at("ExposedPorts").contains("5432/tcp"));
  CHECK(b.at("HostConfig").at("RestartPolicy").at("Name") == "unless-stopped");
  CHECK(b.at("HostConfig").at("NetworkMode") == "net");
  CHECK(b.at("Healthcheck").at("Interval") == 1000000000LL);
  CHECK(b.at("Healthcheck").at("Retries") == 3);
}

TEST_CASE("diffCanonical names each changed field and hides secrets") {
  nlohmann::json before = {{"image", "a"}, {"env", {{"X", "1"}, {"S", {{"sensitive", "d1"}}}}}};
  nlohmann::json after = {{"image", "b"}, {"env", {{"X", "1"}, {"S", {{"sensitive", "d2"}}}}},
                          {"user", "999"}};
  auto d = docker::diffCanonical(before, after);
  REQUIRE(d.size() == 3);
  CHECK(d[0].field == "env.S");
  CHECK(d[0].before == "(sensitive)");
  CHECK(d[0].sensitive);
  CHECK(d[1].field == "image");
  CHECK(d[1].before == "a");
  CHECK(d[1].after == "b");
  CHECK(d[2].field == "user");
  CHECK(d[2].before.is_null());
  CHECK(d[2].after == "999");
}

TEST_CASE("diffCanonical speaks the spec's keys and units, not the canonical form's") {
  config::ContainerSpec a;
  a.name = "x";
  a.image = "img";
  a.stopTimeout = std::chrono::seconds(2);
  config::NetworkAttachment net;
  net.network = "net";
  a.networks = {net};
  config::ContainerSpec b = a;
  b.stopTimeout = std::chrono::seconds(3);
  b.memoryBytes = 64LL << 20;
  b.cpus = 2.0;
  net.aliases = {"db"};
  b.networks = {net};
  docker::NoSecrets none;
  auto d = docker::diffCanonical(docker::desiredContainer(a, none).canonical,
                                 docker::desiredContainer(b, none).canonical);
  std::map<std::string, docker::FieldChange> byField;
  for (const auto& f : d) byField[f.field] = f;
  REQUIRE(byField.size() == 4);
  CHECK(byField.at("stop_timeout").before == "2s");
  CHECK(byField.at("stop_timeout").after == "3s");
  CHECK(byField.at("memory").before.is_null());
  CHECK(byField.at("memory").after == "64MiB");
  CHECK(byField.at("cpus").after == 2);
  CHECK(byField.at("networks").before == nlohmann::json::array({"net"}));
  CHECK(byField.at("networks").after ==
        nlohmann::json::parse(R"([{"name": "net", "aliases": ["db"]}])"));
}

TEST_CASE("a container's quoted output has every secret value cut out, literals kept") {
  const std::string toml = R"(
spec_version = 1
project = "p"
[credentials.db]
[credentials.db.fields]
user = "app"
password = { generate = "password", length = 32 }
short = { generate = "hex", bytes = 8 }
[containers.db]
image = "img/db:1"
env = { PW = "${credentials.db.password}", U = "${credentials.db.user}", S = "${credentials.db.short}" }
)";
  const config::Spec spec = specFrom(toml);
  MapSecrets secrets;
  secrets.values["db.password"] = "s3cr3t-Pa55word";
  secrets.values["db.user"] = "app";
  secrets.values["db.short"] = "ab";
  const std::string out = docker::redactSecrets(
      "login app:s3cr3t-Pa55word failed\nretry s3cr3t-Pa55words3cr3t-Pa55word ab\n", spec, secrets);
  CHECK(out.find("s3cr3t") == std::string::npos);
  CHECK(out ==
        "login app:[secret credentials.db.password] failed\n"
        "retry [secret credentials.db.password][secret credentials.db.password] ab\n");
  // Cut before the lines are cut to size: no tail of a secret survives the "...".
  const std::string quoted = docker::lastLines(out, 5, 40);
  CHECK(quoted.find("Pa55") == std::string::npos);
  CHECK(docker::redactSecrets("nothing here", spec, docker::NoSecrets()) == "nothing here");
}
