// The Docker controller against the real Docker Engine: converge, drift and
// re-converge real containers (TESTING.md layer 2).
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

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

TEST_CASE("a missing image fails clearly; an unhealthy dependency fails fast, a slow one times out") {
  if (foundationd::testing::testImage().empty()) return;  // local opt-out only
  Harness h;
  // waiter's depends_timeout is a minute: it fails long before, because sick
  // is unhealthy past its retries. slowpoke never leaves "starting" (its first
  // probe is an hour away): waiter2 times out after its own 2 s.
  auto spec = h.spec(R"(
[containers.@ghost]
image = "foundationd-test/does-not-exist:1"
[containers.@sick]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD-SHELL", "echo db not ready on port 5432; false"], interval = "200ms", timeout = "1s", retries = 2 }
[containers.@waiter]
image = "${versions.busybox}"
command = ["sleep", "3600"]
depends_on = { @sick = "healthy" }
depends_timeout = "60s"
[containers.@slowpoke]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD", "true"], interval = "1h" }
[containers.@waiter2]
image = "${versions.busybox}"
command = ["sleep", "3600"]
depends_on = { @slowpoke = "healthy" }
depends_timeout = "2s"
)");
  std::vector<std::string> progress;
  docker::ApplyOptions o;
  o.pollInterval = std::chrono::milliseconds(100);
  o.progressInterval = std::chrono::milliseconds(500);
  docker::ApplyObserver observer;
  observer.waiting = [&](const config::ResourceKey& key, const std::string& message) {
    progress.push_back(key.name + ": " + message);
  };
  auto r = foundationd::testing::runSync(h.io, docker::reconcile(h.client, spec, h.none, o, observer));
  REQUIRE(r.ok());
  CHECK_FALSE(r->converged);
  std::map<std::string, docker::Outcome> byKey;
  for (const auto& o : r->report.outcomes) byKey[o.key.name] = o;
  REQUIRE(byKey.count(h.name("ghost")));
  CHECK_FALSE(byKey[h.name("ghost")].ok);
  CHECK(byKey[h.name("ghost")].message.find("foundationd-test/does-not-exist:1") != std::string::npos);
  REQUIRE(byKey.count(h.name("waiter")));
  CHECK_FALSE(byKey[h.name("waiter")].ok);
  const std::string& why = byKey[h.name("waiter")].message;
  INFO(why);
  CHECK(why.find("dependency " + h.name("sick") + " is unhealthy: its healthcheck failed ") == 0);
  CHECK(why.find("(retries = 2); last health probe said: db not ready on port 5432") !=
        std::string::npos);
  REQUIRE(byKey.count(h.name("waiter2")));
  CHECK(byKey[h.name("waiter2")].message ==
        "dependency " + h.name("slowpoke") +
            " did not become healthy within 2.0s (last status: starting)");
  // While waiting, it said what it waited for.
  bool said = false;
  for (const auto& p : progress) {
    said = said || p.find(h.name("waiter2") + ": waiting for " + h.name("slowpoke") +
                          " to be healthy (status: starting; ") == 0;
  }
  CHECK(said);
  CHECK(h.inspect("sick").running);
  CHECK_FALSE(h.exists("waiter"));
  CHECK_FALSE(h.exists("waiter2"));
}

TEST_CASE("jobs, crash loops and prune on the real engine") {
  if (foundationd::testing::testImage().empty()) return;  // local opt-out only
  Harness h;
  docker::RestartBackoff backoff({.initial = std::chrono::hours(1), .max = std::chrono::hours(2)});
  docker::ApplyOptions o;
  o.pollInterval = std::chrono::milliseconds(100);
  o.conditionTimeout = std::chrono::seconds(60);
  o.restarts = &backoff;
  auto reconcile = [&](const config::Spec& s) {
    return foundationd::testing::runSync(h.io, docker::reconcile(h.client, s, h.none, o));
  };
  auto startedAt = [&](const std::string& n) {
    return h.inspect(n).raw["State"]["StartedAt"].get<std::string>();
  };
  const std::string body = R"(
[containers.@migrate]
image = "${versions.busybox}"
command = ["sh", "-c", "echo migrating; echo migrated"]
run = "once"
[containers.@broken]
image = "${versions.busybox}"
command = ["sh", "-c", "echo step 1; sleep 0.3; echo no such table >&2; exit 4"]
run = "once"
[containers.@crashy]
image = "${versions.busybox}"
command = ["sh", "-c", "sleep 1; echo fatal: no config; exit 3"]
[containers.@app]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
depends_on = { @migrate = "completed" }
[containers.@web]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "2s"
depends_on = ["@app"]
)";
  auto spec = h.spec(body);
  auto first = reconcile(spec);
  REQUIRE(first.ok());
  CHECK(first->report.ok());
  CHECK(h.inspect("app").running);
  CHECK(h.inspect("migrate").state == "exited");
  CHECK(h.inspect("migrate").exitCode == 0);
  const auto migrated = startedAt("migrate");
  // The failed job: reported with its exit code and output (the Engine's
  // multiplexed log stream), never started again.
  while (h.inspect("broken").running || h.inspect("crashy").running) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto brokenAt = startedAt("broken");
  auto second = reconcile(spec);
  REQUIRE(second.ok());
  CHECK_FALSE(second->converged);
  std::map<std::string, docker::Outcome> byKey;
  for (const auto& oc : second->report.outcomes) byKey[oc.key.name] = oc;
  REQUIRE(byKey.count(h.name("broken")));
  CHECK(byKey[h.name("broken")].message ==
        "job exited with code 4; it runs once per config: change its config, or remove the "
        "container to run it again; last output: step 1 | no such table");
  // crashy exited once: restarted at once. migrate completed: left alone.
  REQUIRE(byKey.count(h.name("crashy")));
  CHECK(byKey[h.name("crashy")].ok);
  CHECK(second->held.empty());
  while (h.inspect("crashy").running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto third = reconcile(spec);
  REQUIRE(third.ok());
  REQUIRE(third->held.size() == 1);
  CHECK(third->held[0].key.name == h.name("crashy"));
  CHECK(third->held[0].message.find("exited with code 3 after 1 restart in a row; next restart in ") == 0);
  CHECK(third->held[0].message.find("; last output: fatal: no config | fatal: no config") != std::string::npos);
  CHECK_FALSE(h.inspect("crashy").running);
  CHECK(startedAt("migrate") == migrated);
  CHECK(startedAt("broken") == brokenAt);

  // Prune: web before app (recorded depends-on), then app; all removed.
  auto pruned = reconcile(h.spec("[containers.@migrate]\nimage = \"${versions.busybox}\"\n"
                                 "command = [\"sh\", \"-c\", \"echo migrating; echo migrated\"]\n"
                                 "run = \"once\"\n",
                                 /*prune=*/true));
  REQUIRE(pruned.ok());
  std::vector<std::string> removed;
  for (const auto& oc : pruned->report.outcomes) {
    if (oc.action == docker::Action::remove) removed.push_back(oc.key.name);
  }
  auto pos = [&](const std::string& n) {
    return std::find(removed.begin(), removed.end(), h.name(n)) - removed.begin();
  };
  REQUIRE(removed.size() == 4);
  CHECK(pos("web") < pos("app"));
  CHECK_FALSE(h.exists("web"));
  CHECK_FALSE(h.exists("app"));
  CHECK(startedAt("migrate") == migrated);
}
