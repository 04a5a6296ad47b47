#include <doctest/doctest.h>

#include <algorithm>

#include "controllers/docker/docker_apply.hpp"
#include "fakes/fake_docker.hpp"
#include "fakes/run.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using foundationd::testing::FakeDocker;
using foundationd::testing::run;
using foundationd::testing::specFrom;

namespace {

const char* kSpec = R"(
spec_version = 1
project = "demo"
[networks.net]
[volumes.data]
[containers.db]
image = "img/db:1"
networks = ["net"]
volumes = ["data:/data"]
healthcheck = { test = ["CMD", "true"], interval = "1s" }
[containers.app]
image = "img/app:1"
networks = ["net"]
depends_on = { db = "healthy" }
[containers.solo]
image = "img/app:1"
)";

docker::ApplyOptions fast() {
  docker::ApplyOptions o;
  o.pollInterval = std::chrono::milliseconds(1);
  o.conditionTimeout = std::chrono::milliseconds(200);
  return o;
}

Result<docker::ReconcileResult> reconcile(FakeDocker& fake, const config::Spec& spec) {
  docker::NoSecrets none;
  return run(docker::reconcile(fake, spec, none, fast()));
}

std::ptrdiff_t indexOf(const std::vector<std::string>& log, const std::string& entry) {
  auto it = std::find(log.begin(), log.end(), entry);
  REQUIRE_MESSAGE(it != log.end(), "missing from log: " << entry);
  return it - log.begin();
}

const docker::Outcome* outcome(const docker::ReconcileResult& r, const std::string& key) {
  for (const auto& o : r.report.outcomes) {
    if (o.key.str() == key) return &o;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("apply from empty respects dependencies and health") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  fake.healthyAfterPolls = 3;
  auto r = reconcile(fake, specFrom(kSpec));
  REQUIRE(r.ok());
  CHECK(r->converged);
  CHECK(r->report.outcomes.size() == 5);
  const auto& log = fake.log;
  CHECK(indexOf(log, "create network net") < indexOf(log, "create db"));
  CHECK(indexOf(log, "create volume data") < indexOf(log, "create db"));
  // app waits until db's healthcheck says healthy, which takes 3 inspections.
  CHECK(indexOf(log, "start db") < indexOf(log, "create app"));
  CHECK(fake.containers.at("db").inspectionsSinceStart >= 3);
  for (const auto& name : {"db", "app", "solo"}) CHECK(fake.containers.at(name).state == "running");
}

TEST_CASE("a no-op reconcile makes exactly three Engine calls") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  auto spec = specFrom(kSpec);
  REQUIRE(reconcile(fake, spec)->converged);
  auto before = fake.requestCount();
  auto r = reconcile(fake, spec);
  REQUIRE(r.ok());
  CHECK(r->converged);
  CHECK(r->report.outcomes.empty());
  CHECK(fake.requestCount() - before == 3);
}

TEST_CASE("a dependency that never becomes healthy fails clearly and blocks only its dependents") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  fake.healthyAfterPolls = -1;
  auto r = reconcile(fake, specFrom(kSpec));
  REQUIRE(r.ok());
  CHECK_FALSE(r->converged);
  const auto* app = outcome(r.value(), "container.app");
  REQUIRE(app != nullptr);
  CHECK_FALSE(app->ok);
  CHECK(app->message.find("dependency db did not become healthy within") != std::string::npos);
  CHECK(app->message.find("unhealthy") != std::string::npos);
  CHECK(fake.containers.count("app") == 0);
  CHECK(fake.containers.at("solo").state == "running");
}

TEST_CASE("a failed create blocks dependents; a later reconcile finishes the job") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  fake.failNext["createContainer"] = Error::make(ErrorCode::peer, "boom", 500);
  auto spec = specFrom(kSpec);
  auto r = reconcile(fake, spec);
  REQUIRE(r.ok());
  CHECK_FALSE(r->converged);
  std::size_t failed = 0;
  for (const auto& o : r->report.outcomes) failed += o.ok ? 0 : 1;
  CHECK(failed >= 1);
  auto again = reconcile(fake, spec);
  REQUIRE(again.ok());
  CHECK(again->converged);
  for (const auto& name : {"db", "app", "solo"}) CHECK(fake.containers.at(name).state == "running");
}

TEST_CASE("a missing image never takes the running container down") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  auto spec = specFrom(kSpec);
  REQUIRE(reconcile(fake, spec)->converged);
  std::string text = kSpec;
  text.replace(text.find("img/db:1"), 8, "img/db:9");
  auto r = reconcile(fake, specFrom(text));
  REQUIRE(r.ok());
  const auto* db = outcome(r.value(), "container.db");
  REQUIRE(db != nullptr);
  CHECK_FALSE(db->ok);
  CHECK(db->message.find("img/db:9") != std::string::npos);
  CHECK(fake.containers.at("db").state == "running");
  CHECK(fake.containers.at("db").image == "img/db:1");
}

TEST_CASE("drift is repaired: removed restored, stopped started, changed recreated") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  auto spec = specFrom(kSpec);
  REQUIRE(reconcile(fake, spec)->converged);
  fake.containers.erase("solo");
  fake.containers["app"].state = "exited";
  auto oldDb = fake.containers["db"].id;
  fake.containers["db"].labels["foundationd.config-hash"] = "tampered";
  auto r = reconcile(fake, spec);
  REQUIRE(r.ok());
  CHECK(r->converged);
  CHECK(fake.containers.at("solo").state == "running");
  CHECK(fake.containers.at("app").state == "running");
  CHECK(fake.containers.at("db").id != oldDb);
}

TEST_CASE("prune removes owned orphan containers and networks, never volumes") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  REQUIRE(reconcile(fake, specFrom(kSpec))->converged);
  auto r = reconcile(fake, specFrom(R"(
spec_version = 1
project = "demo"
prune = true
[containers.solo]
image = "img/app:1"
)"));
  REQUIRE(r.ok());
  CHECK(r->converged);
  CHECK(fake.containers.count("db") == 0);
  CHECK(fake.containers.count("app") == 0);
  CHECK(fake.networks.count("net") == 0);
  CHECK(fake.volumes.count("data") == 1);
}

TEST_CASE("a same-named container of someone else is a clear error, left untouched") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  FakeDocker::Container theirs;
  theirs.id = "theirs";
  theirs.name = "solo";
  theirs.state = "running";
  fake.containers["solo"] = theirs;
  auto r = reconcile(fake, specFrom(kSpec));
  REQUIRE(r.ok());
  const auto* solo = outcome(r.value(), "container.solo");
  REQUIRE(solo != nullptr);
  CHECK_FALSE(solo->ok);
  CHECK(solo->message.find("not managed by project \"demo\"") != std::string::npos);
  CHECK(fake.containers.at("solo").id == "theirs");
}
