// The Docker controller against the real Docker Engine: converge, drift and
// re-converge real containers (TESTING.md layer 2).
#include <doctest/doctest.h>

#include <unistd.h>

#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_client.hpp"
#include "integration/docker_support.hpp"
#include "controllers/transport/unix_http_client.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using foundationd::testing::specFrom;

namespace {

// One engine session per test: a unique project whose resources are all
// removed at the end (the test removes its volumes through the raw API; the
// product has no way to).
struct Harness {
  boost::asio::io_context io;
  docker::DockerClient client{io.get_executor()};
  std::string project = "fd-it-" + std::to_string(getpid());
  std::string image = foundationd::testing::testImage();
  docker::NoSecrets none;

  std::string name(const std::string& n) const { return project + "-" + n; }

  config::Spec spec(const std::string& body, bool prune = false) {
    std::string text = "spec_version = 1\nproject = \"" + project + "\"\nversions = \"V\"\n";
    if (prune) text += "prune = true\n";
    std::string out;
    // "@" stands for the project prefix in resource names below.
    for (char c : body) {
      if (c == '@') out += project + "-";
      else out += c;
    }
    return specFrom(text + out, "[images]\nbusybox = \"" + image + "\"\n");
  }

  Result<docker::ReconcileResult> reconcile(const config::Spec& s,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    docker::ApplyOptions o;
    o.conditionTimeout = timeout;
    o.pollInterval = std::chrono::milliseconds(100);
    return foundationd::testing::runSync(io, docker::reconcile(client, s, none, o));
  }

  docker::ContainerInspect inspect(const std::string& n) {
    auto r = foundationd::testing::runSync(io, client.inspectContainer(name(n)));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return r.value();
  }

  bool exists(const std::string& n) {
    auto r = foundationd::testing::runSync(io, client.inspectContainer(name(n)));
    return r.ok();
  }

  ~Harness() {
    docker::LabelFilter mine{{"foundationd.project", project}};
    auto cs = foundationd::testing::runSync(io, client.listContainers(mine));
    if (cs) for (const auto& c : cs.value()) (void)foundationd::testing::runSync(io, client.removeContainer(c.id, true));
    auto ns = foundationd::testing::runSync(io, client.listNetworks(mine));
    if (ns) for (const auto& n : ns.value()) (void)foundationd::testing::runSync(io, client.removeNetwork(n.id));
    auto vs = foundationd::testing::runSync(io, client.listVolumes(mine));
    transport::UnixHttpClient raw(io.get_executor(), "/var/run/docker.sock");
    if (vs) {
      for (const auto& v : vs.value()) {
        transport::HttpRequest req;
        req.method = "DELETE";
        req.target = "/v1.41/volumes/" + v.name;
        (void)foundationd::testing::runSync(io, raw.request(req));
      }
    }
  }
};

const char* kStack = R"(
[networks.@net]
[volumes.@data]
[containers.@db]
image = "${versions.busybox}"
command = ["sh", "-c", "touch /data/ready; exec sleep 3600"]
networks = [{ name = "@net", aliases = ["db"] }]
volumes = ["@data:/data"]
stop_timeout = "1s"
healthcheck = { test = ["CMD", "test", "-f", "/data/ready"], interval = "500ms", timeout = "2s", retries = 3 }
[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { MODE = "one" }
networks = ["@net"]
stop_timeout = "1s"
depends_on = { @db = "healthy" }
)";

}  // namespace

TEST_CASE("converge, no-op, drift repair and reconfiguration on the real engine") {
  if (foundationd::testing::testImage().empty()) return;  // local opt-out only
  Harness h;
  auto spec = h.spec(kStack);

  auto first = h.reconcile(spec);
  REQUIRE_MESSAGE(first.ok(), (first.ok() ? "" : first.error().message));
  for (const auto& o : first->report.outcomes) INFO(o.key.str() << ": " << o.message);
  REQUIRE(first->converged);
  CHECK(first->report.outcomes.size() == 4);
  auto db = h.inspect("db");
  CHECK(db.running);
  CHECK(db.health == "healthy");  // app waited for it
  CHECK(db.labels.at("foundationd.managed") == "true");
  CHECK(db.labels.at("foundationd.project") == h.project);
  CHECK(db.labels.at("foundationd.config-hash").size() == 64);
  CHECK(h.inspect("app").running);

  SUBCASE("a no-op converge makes exactly three Engine calls") {
    auto before = h.client.requestCount();
    auto again = h.reconcile(spec);
    REQUIRE(again.ok());
    CHECK(again->converged);
    CHECK(again->report.outcomes.empty());
    CHECK(h.client.requestCount() - before == 3);
  }

  SUBCASE("a removed container is restored and a stopped one started") {
    REQUIRE(foundationd::testing::runSync(h.io, h.client.removeContainer(h.name("app"), true)).ok());
    REQUIRE(foundationd::testing::runSync(
                h.io, h.client.stopContainer(h.name("db"), std::chrono::seconds(1))).ok());
    auto fixed = h.reconcile(spec);
    REQUIRE(fixed.ok());
    CHECK(fixed->converged);
    CHECK(h.inspect("app").running);
    CHECK(h.inspect("db").running);
  }

  SUBCASE("a changed field recreates that container only") {
    auto dbId = h.inspect("db").id;
    auto appId = h.inspect("app").id;
    std::string changed = kStack;
    changed.replace(changed.find("MODE = \"one\""), 12, "MODE = \"two\"");
    auto next = h.spec(changed);
    auto r = h.reconcile(next);
    REQUIRE(r.ok());
    CHECK(r->converged);
    REQUIRE(r->plan.changes.size() == 1);
    CHECK(r->plan.changes[0].fields.at(0).field == "env.MODE");
    CHECK(h.inspect("app").id != appId);
    CHECK(h.inspect("db").id == dbId);
    bool found = false;
    const auto app = h.inspect("app");
    for (const auto& e : app.raw["Config"]["Env"]) found |= e == "MODE=two";
    CHECK(found);
  }

  SUBCASE("prune removes the orphaned container and network but keeps the volume") {
    auto pruned = h.spec(R"(
[containers.@solo]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
)", /*prune=*/true);
    auto r = h.reconcile(pruned);
    REQUIRE(r.ok());
    CHECK(r->converged);
    CHECK_FALSE(h.exists("db"));
    CHECK_FALSE(h.exists("app"));
    CHECK(h.inspect("solo").running);
    auto vols = foundationd::testing::runSync(h.io, h.client.listVolumes({{"foundationd.project", h.project}}));
    REQUIRE(vols.ok());
    REQUIRE(vols->size() == 1);
    CHECK(vols->at(0).name == h.name("data"));
  }
}

TEST_CASE("a missing image fails clearly and an unhealthy dependency times out clearly") {
  if (foundationd::testing::testImage().empty()) return;  // local opt-out only
  Harness h;
  auto spec = h.spec(R"(
[containers.@ghost]
image = "foundationd-test/does-not-exist:1"
[containers.@sick]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD", "false"], interval = "200ms", timeout = "1s", retries = 1 }
[containers.@waiter]
image = "${versions.busybox}"
command = ["sleep", "3600"]
depends_on = { @sick = "healthy" }
)");
  auto r = h.reconcile(spec, std::chrono::seconds(3));
  REQUIRE(r.ok());
  CHECK_FALSE(r->converged);
  std::map<std::string, docker::Outcome> byKey;
  for (const auto& o : r->report.outcomes) byKey[o.key.name] = o;
  REQUIRE(byKey.count(h.name("ghost")));
  CHECK_FALSE(byKey[h.name("ghost")].ok);
  CHECK(byKey[h.name("ghost")].message.find("foundationd-test/does-not-exist:1") != std::string::npos);
  REQUIRE(byKey.count(h.name("waiter")));
  CHECK_FALSE(byKey[h.name("waiter")].ok);
  CHECK(byKey[h.name("waiter")].message.find("did not become healthy") != std::string::npos);
  CHECK(h.inspect("sick").running);
  CHECK_FALSE(h.exists("waiter"));
}
