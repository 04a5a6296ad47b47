#include <doctest/doctest.h>

#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/plan_render.hpp"
#include "fakes/fake_docker.hpp"
#include "fakes/run.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using foundationd::testing::FakeDocker;
using foundationd::testing::run;
using foundationd::testing::specFrom;
using docker::Action;

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
)";

docker::Plan planOf(FakeDocker& fake, const config::Spec& spec) {
  auto observed = run(docker::observe(fake, spec.project));
  REQUIRE(observed.ok());
  docker::NoSecrets none;
  return docker::plan(spec, observed.value(), none);
}

// Converges `spec` on `fake` and checks it worked.
void converge(FakeDocker& fake, const config::Spec& spec) {
  docker::NoSecrets none;
  auto r = run(docker::reconcile(fake, spec, none, {.pollInterval = std::chrono::milliseconds(1)}));
  REQUIRE(r.ok());
  REQUIRE(r->converged);
}

FakeDocker withImages() {
  FakeDocker f;
  f.images = {"img/db:1", "img/db:2", "img/app:1"};
  return f;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

}  // namespace

TEST_CASE("from nothing, everything is created, in a deterministic order") {
  FakeDocker fake = withImages();
  auto plan = planOf(fake, specFrom(kSpec));
  REQUIRE(plan.changes.size() == 4);
  CHECK(plan.changes[0].key.str() == "network.net");
  CHECK(plan.changes[1].key.str() == "volume.data");
  CHECK(plan.changes[2].key.str() == "container.app");
  CHECK(plan.changes[3].key.str() == "container.db");
  for (const auto& c : plan.changes) CHECK(std::string(docker::toString(c.action)) == "create");
  CHECK(plan.hasChanges());
  CHECK(docker::renderPlanJson(plan).dump() == docker::renderPlanJson(planOf(fake, specFrom(kSpec))).dump());
  auto text = docker::renderPlanText(plan);
  CHECK(text.find("  + container.db: create (does not exist)") != std::string::npos);
  CHECK(text.find("Plan: 4 to create, 0 to recreate, 0 to start, 0 to remove.") != std::string::npos);
}

TEST_CASE("a converged project plans no change") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);
  auto plan = planOf(fake, spec);
  CHECK_FALSE(plan.hasChanges());
  CHECK(plan.changes.empty());
  CHECK(docker::renderPlanText(plan).find("No changes.") != std::string::npos);
}

TEST_CASE("drift: stopped, dead, removed and reconfigured containers") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);

  fake.containers["db"].state = "exited";
  auto p1 = planOf(fake, spec);
  REQUIRE(p1.changes.size() == 1);
  CHECK(std::string(docker::toString(p1.changes[0].action)) == "start");
  CHECK(p1.changes[0].reason == "container exited (exit code 0)");

  fake.containers["db"].state = "dead";
  CHECK(std::string(docker::toString(planOf(fake, spec).changes.at(0).action)) == "recreate");

  fake.containers.erase("db");
  CHECK(std::string(docker::toString(planOf(fake, spec).changes.at(0).action)) == "create");

  converge(fake, spec);
  auto changed = specFrom(replaced(kSpec, "img/db:1", "img/db:2"));
  auto p2 = planOf(fake, changed);
  REQUIRE(p2.changes.size() == 1);
  CHECK(std::string(docker::toString(p2.changes[0].action)) == "recreate");
  REQUIRE(p2.changes[0].fields.size() == 1);
  CHECK(p2.changes[0].fields[0].field == "image");
  CHECK(p2.changes[0].fields[0].before == "img/db:1");
  CHECK(p2.changes[0].fields[0].after == "img/db:2");
  CHECK(p2.changes[0].reason == "image changed");
}

TEST_CASE("orphans: containers pruned only with prune = true, volumes never") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);
  // An owned volume that left the spec, and the app container removed from it.
  fake.volumes["old"] = {"old", "local", {{"foundationd.managed", "true"},
                                          {"foundationd.project", "demo"}}};
  std::string without = std::string(kSpec).substr(0, std::string(kSpec).find("[containers.app]"));
  auto kept = planOf(fake, specFrom(without));
  std::map<std::string, Action> byKey;
  for (const auto& c : kept.changes) byKey[c.key.str()] = c.action;
  CHECK(std::string(docker::toString(byKey.at("container.app"))) == "orphan");
  CHECK(std::string(docker::toString(byKey.at("volume.old"))) == "orphan");
  CHECK(byKey.count("volume.data") == 0);
  CHECK_FALSE(kept.hasChanges());

  auto pruned = planOf(fake, specFrom(replaced(without, "project = \"demo\"",
                                               "project = \"demo\"\nprune = true")));
  byKey.clear();
  for (const auto& c : pruned.changes) byKey[c.key.str()] = c.action;
  CHECK(std::string(docker::toString(byKey.at("container.app"))) == "remove");
  CHECK(std::string(docker::toString(byKey.at("volume.old"))) == "orphan");
}

TEST_CASE("resources foundationd does not own are conflicts or adopted, never taken over") {
  FakeDocker fake = withImages();
  fake.networks["net"] = {"other-id", "net", "bridge", {}};
  fake.volumes["data"] = {"data", "local", {}};
  auto plan = planOf(fake, specFrom(kSpec));
  const auto* net = plan.find({config::Kind::network, "net"});
  REQUIRE(net != nullptr);
  CHECK(std::string(docker::toString(net->action)) == "conflict");
  CHECK(net->reason.find("not managed by foundationd") != std::string::npos);
  // An existing volume of the same name is adopted as is: it may hold data.
  CHECK(plan.find({config::Kind::volume, "data"}) == nullptr);
  CHECK(plan.hasConflicts());

  fake.volumes["data"].driver = "nfs";
  const auto replanned = planOf(fake, specFrom(kSpec));
  const auto* vol = replanned.find({config::Kind::volume, "data"});
  REQUIRE(vol != nullptr);
  CHECK(std::string(docker::toString(vol->action)) == "conflict");
  CHECK(vol->reason.find("never deletes a volume") != std::string::npos);
}

TEST_CASE("a recreated network recreates the containers on it") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);
  auto internal = specFrom(replaced(kSpec, "[networks.net]\n", "[networks.net]\ninternal = true\n"));
  auto plan = planOf(fake, internal);
  std::map<std::string, std::string> reasons;
  for (const auto& c : plan.changes) {
    CHECK(std::string(docker::toString(c.action)) == "recreate");
    reasons[c.key.str()] = c.reason;
  }
  CHECK(reasons.at("network.net") == "internal changed");
  CHECK(reasons.at("container.db") == "network net is recreated");
  CHECK(reasons.at("container.app") == "network net is recreated");
  // The network's field in the spec's terms: false (the default) -> true.
  const auto* net = plan.find({config::Kind::network, "net"});
  REQUIRE(net != nullptr);
  REQUIRE(net->fields.size() == 1);
  CHECK(net->fields[0].before == false);
  CHECK(net->fields[0].after == true);
  converge(fake, internal);
}

TEST_CASE("a plan speaks the spec's keys and units, and its JSON is typed") {
  FakeDocker fake = withImages();
  auto spec = specFrom(replaced(kSpec, "image = \"img/db:1\"\n",
                                "image = \"img/db:1\"\nstop_timeout = \"2s\"\n"));
  converge(fake, spec);
  auto changed = specFrom(replaced(
      kSpec, "image = \"img/db:1\"\n",
      "image = \"img/db:1\"\nstop_timeout = \"3s\"\nmemory = \"64MiB\"\ncpus = 1.5\n"
      "restart = \"always\"\n"));
  auto plan = planOf(fake, changed);
  REQUIRE(plan.changes.size() == 1);
  const auto& c = plan.changes[0];
  CHECK(c.reason == "cpus, memory, restart, stop_timeout changed");

  auto text = docker::renderPlanText(plan);
  CHECK(text.find("~ container.db: recreate (cpus, memory, restart, stop_timeout changed)\n") !=
        std::string::npos);
  CHECK(text.find("      stop_timeout: \"2s\" -> \"3s\"\n") != std::string::npos);
  CHECK(text.find("      memory: (none) -> \"64MiB\"\n") != std::string::npos);
  CHECK(text.find("      cpus: (none) -> 1.5\n") != std::string::npos);
  CHECK(text.find("      restart: \"no\" -> \"always\"\n") != std::string::npos);
  CHECK(text.find("_ms") == std::string::npos);
  CHECK(text.find("67108864") == std::string::npos);
  CHECK(text.find("will recreate") == std::string::npos);

  auto doc = docker::renderPlanJson(plan);
  const auto& fields = doc.at("changes").at(0).at("fields");
  std::map<std::string, nlohmann::json> byField;
  for (const auto& f : fields) byField[f.at("field").get<std::string>()] = f;
  CHECK(byField.at("memory").at("before").is_null());
  CHECK(byField.at("memory").at("after") == "64MiB");
  CHECK(byField.at("stop_timeout").at("before") == "2s");
  CHECK(byField.at("cpus").at("after") == 1.5);
  CHECK(byField.at("restart").at("before") == "no");
  CHECK(doc.at("credentials").empty());
}

TEST_CASE("a healthcheck change is shown per key, in the spec's durations") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);
  auto plan = planOf(fake, specFrom(replaced(kSpec, "interval = \"1s\"", "interval = \"1500ms\"")));
  REQUIRE(plan.changes.size() == 1);
  REQUIRE(plan.changes[0].fields.size() == 1);
  CHECK(plan.changes[0].fields[0].field == "healthcheck.interval");
  CHECK(plan.changes[0].fields[0].before == "1s");
  CHECK(plan.changes[0].fields[0].after == "1500ms");
}

TEST_CASE("credentials are part of the plan's lines, summary and JSON") {
  FakeDocker fake = withImages();
  auto spec = specFrom(kSpec);
  converge(fake, spec);
  auto plan = planOf(fake, spec);
  REQUIRE_FALSE(plan.hasChanges());
  std::vector<docker::CredentialChange> creds{
      {"db", "password", "generate", "not generated yet"},
      {"api", "token", "rotate", "rotate_every elapsed"},
      {"old", "key", "params_changed", "length changed; takes effect on rotation"}};
  CHECK(docker::hasChanges(plan, creds));
  auto text = docker::renderPlanText(plan, {}, creds);
  CHECK(text.find("  + credential.db.password: generate (not generated yet)\n") != std::string::npos);
  CHECK(text.find("  ~ credential.api.token: rotate (rotate_every elapsed)\n") != std::string::npos);
  CHECK(text.find("No changes") == std::string::npos);
  CHECK(text.find("Plan: 0 to create, 0 to recreate, 0 to start, 0 to remove; 1 credential(s) to "
                  "generate, 1 to rotate.") != std::string::npos);
  auto doc = docker::renderPlanJson(plan, creds);
  CHECK(doc.at("has_changes") == true);
  CHECK(doc.at("summary").at("generate") == 1);
  CHECK(doc.at("summary").at("rotate") == 1);
  REQUIRE(doc.at("credentials").size() == 3);
  CHECK(doc.at("credentials").at(0).at("resource") == "credential.db.password");

  // Informational only: no change, so "No changes".
  std::vector<docker::CredentialChange> info{creds[2]};
  CHECK_FALSE(docker::hasChanges(plan, info));
  CHECK(docker::renderSummary(plan, info).rfind("No changes.", 0) == 0);
}

TEST_CASE("an applied change is reported in the past tense") {
  CHECK(std::string(docker::pastTense(Action::create)) == "created");
  CHECK(std::string(docker::pastTense(Action::recreate)) == "recreated");
  CHECK(std::string(docker::pastTense(Action::start)) == "started");
  CHECK(std::string(docker::pastTense(Action::remove)) == "removed");
}

TEST_CASE("digest pins: a container that runs another image than its pin is recreated, and says why") {
  const std::string id = "sha256:" + std::string(64, 'a');
  const std::string other = "sha256:" + std::string(64, 'b');
  const std::string byDigest = "img/db:1@sha256:" + std::string(64, 'c');
  // The pure rule: image IDs against ImageID, repository digests against the
  // reference the container was made from, tags never.
  CHECK_FALSE(docker::imagePinProblem(id, id, id));
  CHECK_FALSE(docker::imagePinProblem(id, "img/db:1", id));
  auto byId = docker::imagePinProblem(id, "img/other:1", other);
  REQUIRE(byId);
  CHECK(*byId == "runs image img/other:1 (" + other + "), not the pinned image ID " + id);
  CHECK_FALSE(docker::imagePinProblem(byDigest, byDigest, other));
  auto moved = docker::imagePinProblem(byDigest, other, other);
  REQUIRE(moved);
  CHECK(moved->find("not the pinned digest " + byDigest) != std::string::npos);
  CHECK_FALSE(docker::imagePinProblem("img/db:1", "img/db:2", other));
  CHECK_FALSE(docker::imagePinProblem("img/db@sha256:short", "x", other));

  // Through plan(): the same config hash, another image running.
  FakeDocker fake = withImages();
  fake.images.insert(id);
  auto spec = specFrom(replaced(kSpec, "img/db:1", id));
  converge(fake, spec);
  auto observed = run(docker::observe(fake, spec.project));
  REQUIRE(observed.ok());
  docker::NoSecrets none;
  for (auto& c : observed->containers) c.imageId = c.image == id ? id : other;
  auto clean = docker::plan(spec, observed.value(), none);
  CHECK_FALSE(clean.hasChanges());
  CHECK(clean.runningImages.at("db") == id);
  CHECK(docker::renderPlanJson(clean)["running_images"]["app"] == other);
  for (auto& c : observed->containers) {
    if (c.name == "db") {
      c.image = "img/db:2";
      c.imageId = other;
    }
  }
  auto drift = docker::plan(spec, observed.value(), none);
  const auto* change = drift.find({config::Kind::container, "db"});
  REQUIRE(change);
  CHECK(std::string(docker::toString(change->action)) == "recreate");
  CHECK(change->reason == "runs image img/db:2 (" + other + "), not the pinned image ID " + id);
  REQUIRE(change->fields.size() == 1);
  CHECK(change->fields[0].field == "image");
  CHECK(drift.runningImages.count("db") == 0);
}
