#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/async.hpp"

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

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
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

TEST_CASE("a scoped reconcile waits for a removal under way, then creates the container again") {
  // `docker rm -f`: the Engine marks the container as being removed, kills
  // it (the `die` event), then removes it (`destroy`). The reconcile that
  // the `die` starts sees it "removing": it waits for the removal to end
  // and creates it again in the same pass.
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  auto spec = specFrom(kSpec);
  REQUIRE(reconcile(fake, spec)->converged);
  const auto oldSolo = fake.containers["solo"].id;
  fake.containers["solo"].state = "removing";
  fake.containers["solo"].removedAfterInspections = 2;
  docker::NoSecrets none;
  docker::Scope scope;
  scope.only = std::set<config::ResourceKey>{{config::Kind::container, "solo"}};
  auto r = run(docker::reconcile(fake, spec, none, fast(), {}, scope));
  REQUIRE(r.ok());
  CHECK(r->converged);
  REQUIRE(fake.containers.count("solo") == 1);
  CHECK(fake.containers.at("solo").state == "running");
  CHECK(fake.containers.at("solo").id != oldSolo);
  REQUIRE(outcome(*r, "container.solo") != nullptr);
  CHECK(std::string(docker::toString(outcome(*r, "container.solo")->action)) == "create");
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

TEST_CASE("a container that appears after the observation: ours replaced, another's left alone") {
  // Docker finishing the create of an apply killed mid-call: a container named
  // as ours, there just after our listing, with a project label.
  for (const std::string project : {"demo", "another"}) {
    CAPTURE(project);
    FakeDocker fake;
    fake.images = {"img/db:1", "img/app:1"};
    FakeDocker::Container late;
    late.id = "late";
    late.name = "solo";
    late.labels = {{docker::kLabelProject, project}};
    fake.appearAfterList.push_back(late);
    auto r = reconcile(fake, specFrom(kSpec));
    REQUIRE(r.ok());
    const auto* solo = outcome(r.value(), "container.solo");
    REQUIRE(solo != nullptr);
    if (project == "demo") {
      CHECK_MESSAGE(solo->ok, solo->message);
      CHECK(fake.containers.at("solo").id != "late");
      CHECK(fake.containers.at("solo").state == "running");
      CHECK(indexOf(fake.log, "remove solo") < indexOf(fake.log, "start solo"));
    } else {
      CHECK_FALSE(solo->ok);
      CHECK(solo->message.find("not managed by project \"demo\"") != std::string::npos);
      CHECK(fake.containers.at("solo").id == "late");
    }
  }
}

TEST_CASE("a listed container that cannot be started as it is, is created afresh") {
  FakeDocker fake;
  fake.images = {"img/db:1", "img/app:1"};
  auto spec = specFrom(kSpec);
  REQUIRE(reconcile(fake, spec).ok());
  const std::string oldId = fake.containers.at("solo").id;
  bool refused = false;
  SUBCASE("gone when started (a create Docker rolled back)") {
    fake.containers.at("solo").state = "created";  // listed: start it
    fake.vanishAfterList.insert("solo");
  }
  SUBCASE("refused: containerd still holds its task (the Engine restarted under it)") {
    fake.containers.at("solo").state = "exited";
    fake.failNext["startContainer"] =
        Error::make(ErrorCode::peer, "start container " + oldId + ": task " + oldId +
                                         ": already exists", 500);
    refused = true;
  }
  fake.log.clear();
  auto r = reconcile(fake, spec);
  REQUIRE(r.ok());
  const auto* solo = outcome(r.value(), "container.solo");
  REQUIRE(solo != nullptr);
  CHECK_MESSAGE(solo->ok, solo->message);
  CHECK(indexOf(fake.log, "create solo") < indexOf(fake.log, "start solo"));
  CHECK(fake.containers.at("solo").state == "running");
  CHECK(fake.containers.at("solo").id != oldId);
  if (refused) {  // the old container removed before the new one is made
    CHECK(indexOf(fake.log, "remove solo") < indexOf(fake.log, "create solo"));
  }
}

namespace {

const char* kJobs = R"(
spec_version = 1
project = "demo"
[containers.migrate]
image = "img/app:1"
run = "once"
command = ["migrate"]
[containers.app]
image = "img/app:1"
depends_on = { migrate = "completed" }
)";

long countOf(const std::vector<std::string>& log, const std::string& entry) {
  return std::count(log.begin(), log.end(), entry);
}

}  // namespace

TEST_CASE("a job runs to completion once per config; its dependents wait for it") {
  FakeDocker fake;
  fake.images = {"img/app:1"};
  auto spec = specFrom(kJobs);
  docker::NoSecrets none;
  auto options = fast();
  options.conditionTimeout = std::chrono::seconds(10);
  // The job "runs" until the test ends it: app waits for it to complete.
  bool exited = false;
  auto first = run([&]() -> docker::Task<Result<docker::ReconcileResult>> {
    auto ex = co_await boost::asio::this_coro::executor;
    boost::asio::co_spawn(ex, [&]() -> docker::Task<void> {
      while (!fake.containers.count("migrate") || fake.containers["migrate"].state != "running") {
        co_await sleepFor(std::chrono::milliseconds(1));
      }
      co_await sleepFor(std::chrono::milliseconds(20));
      CHECK_FALSE(fake.containers.count("app"));  // still waiting for the job
      fake.crash("migrate", 0);
      exited = true;
    }, boost::asio::detached);
    co_return co_await docker::reconcile(fake, spec, none, options);
  }());
  REQUIRE(first.ok());
  CHECK(exited);
  CHECK(first->report.ok());
  CHECK(indexOf(fake.log, "start migrate") < indexOf(fake.log, "create app"));
  // Completed: later reconciles (events, resyncs) never start it again.
  for (int i = 0; i < 3; ++i) {
    auto again = reconcile(fake, spec);
    REQUIRE(again.ok());
    CHECK(again->converged);
    CHECK(again->plan.changes.empty());
  }
  CHECK(countOf(fake.log, "start migrate") == 1);
  // A new config runs it once more.
  auto changed = specFrom(replaced(kJobs, "[\"migrate\"]", "[\"migrate\", \"--v2\"]"));
  auto recreated = run([&]() -> docker::Task<Result<docker::ReconcileResult>> {
    auto ex = co_await boost::asio::this_coro::executor;
    boost::asio::co_spawn(ex, [&]() -> docker::Task<void> {
      co_await sleepFor(std::chrono::milliseconds(5));
      fake.crash("migrate", 0);
    }, boost::asio::detached);
    co_return co_await docker::reconcile(fake, changed, none, options);
  }());
  REQUIRE(recreated.ok());
  CHECK(countOf(fake.log, "start migrate") == 2);
  CHECK(reconcile(fake, changed)->converged);
  CHECK(countOf(fake.log, "start migrate") == 2);
}

TEST_CASE("a failed job is reported with its exit code and output, and not run again") {
  FakeDocker fake;
  fake.images = {"img/app:1"};
  auto spec = specFrom(R"(
spec_version = 1
project = "demo"
[containers.migrate]
image = "img/app:1"
run = "once"
)");
  REQUIRE(reconcile(fake, spec).ok());
  fake.logs["migrate"] = "connecting\nrelation \"users\" already exists\n\n";
  fake.crash("migrate", 3);
  for (int i = 0; i < 2; ++i) {
    auto r = reconcile(fake, spec);
    REQUIRE(r.ok());
    CHECK_FALSE(r->converged);
    const auto* o = outcome(*r, "container.migrate");
    REQUIRE(o != nullptr);
    CHECK_FALSE(o->ok);
    CHECK(o->message ==
          "job exited with code 3; it runs once per config: change its config, or remove the "
          "container to run it again; last output: connecting | relation \"users\" already "
          "exists");
  }
  CHECK(countOf(fake.log, "start migrate") == 1);
}

TEST_CASE("a service that keeps exiting is restarted with a growing backoff, then held") {
  FakeDocker fake;
  fake.images = {"img/app:1"};
  auto spec = specFrom(R"(
spec_version = 1
project = "demo"
[containers.web]
image = "img/app:1"
)");
  docker::RestartBackoff backoff({.initial = std::chrono::hours(1), .max = std::chrono::hours(2)});
  auto options = fast();
  options.restarts = &backoff;
  docker::NoSecrets none;
  REQUIRE(run(docker::reconcile(fake, spec, none, options))->converged);
  fake.logs["web"] = "listening\npanic: no config\n";
  // The first exit is repaired at once (a single crash of a healthy service).
  fake.crash("web", 2);
  auto first = run(docker::reconcile(fake, spec, none, options));
  REQUIRE(first.ok());
  CHECK(first->converged);
  CHECK(first->held.empty());
  CHECK(fake.containers.at("web").state == "running");
  // Exiting again at once: held for its backoff, not started, reported.
  for (int i = 0; i < 3; ++i) {
    fake.crash("web", 2);
    auto r = run(docker::reconcile(fake, spec, none, options));
    REQUIRE(r.ok());
    CHECK_FALSE(r->converged);
    REQUIRE(r->held.size() == 1);
    CHECK(r->held[0].key.str() == "container.web");
    CHECK(r->held[0].retryIn > std::chrono::minutes(59));
    CHECK(r->held[0].message.find("exited with code 2 after 1 restart in a row") == 0);
    CHECK(r->held[0].message.find("last output: listening | panic: no config") !=
          std::string::npos);
    CHECK(r->remaining.changes.empty());
  }
  CHECK(fake.containers.at("web").state == "exited");
  CHECK(countOf(fake.log, "start web") == 2);  // the create's start and one restart
  // A new config starts over at once.
  auto changed = specFrom(R"(
spec_version = 1
project = "demo"
[containers.web]
image = "img/app:1"
command = ["serve", "--fixed"]
)");
  auto fixed = run(docker::reconcile(fake, changed, none, options));
  REQUIRE(fixed.ok());
  CHECK(fixed->converged);
  CHECK(backoff.restarts("web") == 0);
}

TEST_CASE("restart backoff: immediate once, then doubling from the last start, capped, reset when stable") {
  using namespace std::chrono_literals;
  docker::RestartBackoff b({.initial = 1s, .max = 4s, .stable = 60s});
  CHECK(b.delayFor(1) == 0ms);
  CHECK(b.delayFor(2) == 1s);
  CHECK(b.delayFor(3) == 2s);
  CHECK(b.delayFor(4) == 4s);
  CHECK(b.delayFor(9) == 4s);
  const auto t0 = docker::RestartBackoff::Clock::time_point{} + 1000h;
  CHECK_FALSE(b.admit("web", t0).has_value());  // restart 1: now
  CHECK(b.admit("web", t0 + 100ms) == 900ms);   // restart 2: 1 s after restart 1
  CHECK(b.admit("web", t0 + 500ms) == 500ms);
  CHECK_FALSE(b.admit("web", t0 + 1s).has_value());
  CHECK(b.restarts("web") == 2);
  CHECK(b.admit("web", t0 + 1s) == 2s);         // restart 3: 2 s after restart 2
  // Held for longer than `stable` is not a sign of health.
  CHECK(b.admit("web", t0 + 1s + 90s) == std::nullopt);
  CHECK(b.restarts("web") == 3);
  // Up for `stable` since its last restart: the next exit is a new crash.
  CHECK_FALSE(b.admit("web", t0 + 1s + 90s + 61s).has_value());
  CHECK(b.restarts("web") == 1);
  CHECK_FALSE(b.admit("other", t0).has_value());  // per container
  b.forget("web");
  CHECK(b.restarts("web") == 0);
}

TEST_CASE("prune removes dependents first, within their recorded stop_timeout, with their secret files") {
  FakeDocker fake;
  fake.images = {"img/app:1"};
  const auto dir = std::filesystem::temp_directory_path() /
                   ("fd-prune-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "db");
  std::filesystem::create_directories(dir / "keep");
  { std::ofstream(dir / "db" / "run_secrets_pw") << "x"; }
  auto options = fast();
  options.secretsDir = dir.string();
  docker::NoSecrets none;
  auto spec = specFrom(R"(
spec_version = 1
project = "demo"
[containers.db]
image = "img/app:1"
stop_timeout = "7s"
[containers.api]
image = "img/app:1"
depends_on = ["db"]
[containers.web]
image = "img/app:1"
depends_on = ["api"]
[containers.keep]
image = "img/app:1"
)");
  REQUIRE(run(docker::reconcile(fake, spec, none, options))->converged);
  auto pruned = specFrom(R"(
spec_version = 1
project = "demo"
prune = true
[containers.keep]
image = "img/app:1"
)");
  auto r = run(docker::reconcile(fake, pruned, none, options));
  REQUIRE(r.ok());
  CHECK(r->converged);
  CHECK(indexOf(fake.log, "remove web") < indexOf(fake.log, "stop api"));
  CHECK(indexOf(fake.log, "remove api") < indexOf(fake.log, "stop db"));
  CHECK(fake.stopTimeouts.at("db") == std::chrono::seconds(7));
  CHECK(fake.stopTimeouts.at("web") == std::chrono::seconds(10));
  CHECK_FALSE(std::filesystem::exists(dir / "db"));
  CHECK(std::filesystem::exists(dir / "keep"));
  std::filesystem::remove_all(dir);
}
