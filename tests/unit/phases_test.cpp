// The order of a converge (config/phases.hpp) and the implicit edges of the
// graph it follows: a container that uses a role's password, a bucket's
// keys or the runner token runs after the step that makes them; a failure
// blocks exactly what depends on it.
#include <doctest/doctest.h>

#include "config/graph.hpp"
#include "config/phases.hpp"
#include "spec_fixture.hpp"

using namespace foundationd::config;
using foundationd::testing::specFrom;

namespace {

ResourceKey container(const std::string& n) { return {Kind::container, n}; }

std::string joined(const std::set<ResourceKey>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : " ") + k.str();
  return out;
}

// A phase as a line: "docker: container.a container.b" or "step: postgres".
std::string str(const Phase& p) {
  if (p.step) return std::string("step: ") + toString(*p.step);
  return std::string(p.first ? "docker*: " : "docker: ") + joined(p.containers);
}

// Runs every phase, failing what `fails` names when its phase comes (a
// step's resource when the step runs, a container when its pass runs).
std::vector<std::string> run(Phases& phases, const std::map<ResourceKey, std::string>& fails = {}) {
  std::vector<std::string> out;
  while (auto p = phases.next()) {
    out.push_back(str(*p));
    for (const auto& [k, why] : fails) {
      const bool now = p->step ? stepOf(k.kind) == p->step : p->containers.count(k) > 0;
      if (now) phases.fail(k, why);
    }
  }
  return out;
}

// Every edge kind: a PostgreSQL instance with a role, an S3 server with a
// bucket, the forge with the runner token, Vault mirroring the credentials.
const char* kStack = R"(
spec_version = 1
project = "t"
[credentials.pg-super]
fields = { password = { generate = "password" } }
[credentials.app-db]
fields = { password = { generate = "password" } }
[credentials.s3-keys]
fields = { access = { generate = "hex" }, secret = { generate = "hex" } }
[credentials.admin]
fields = { password = { generate = "password" } }
[containers.pg]
image = "postgres:16"
env = { POSTGRES_PASSWORD = "${credentials.pg-super.password}" }
[containers.s3]
image = "s3:1"
env = { KEY = "${credentials.s3-keys.access}", SECRET = "${credentials.s3-keys.secret}" }
[containers.bao]
image = "bao:1"
[containers.forge]
image = "forge:1"
env = { DB_PASSWORD = "${credentials.app-db.password}" }
[containers.app]
image = "app:1"
env = { DB = "${credentials.app-db.password}", S3 = "${credentials.s3-keys.secret}" }
[containers.runner]
image = "runner:1"
env = { TOKEN = "${forgejo.runner_token}" }
[containers.sidecar]
image = "side:1"
depends_on = ["app"]
[containers.plain]
image = "plain:1"
[vault]
container = "bao"
address = "http://127.0.0.1:8200"
[s3.main]
container = "s3"
endpoint = "http://127.0.0.1:9000"
access_key = "${credentials.s3-keys.access}"
secret_key = "${credentials.s3-keys.secret}"
[buckets.data]
s3 = "main"
[postgres.db]
container = "pg"
superuser = "postgres"
[postgres.db.roles.app]
password = "${credentials.app-db.password}"
[postgres.db.databases.app]
owner = "app"
[forgejo]
container = "forge"
url = "http://127.0.0.1:3000"
[forgejo.admin]
username = "admin"
email = "admin@example.org"
password = "${credentials.admin.password}"
[forgejo.runner_token]
vault_path = "forgejo/runner"
)";

}  // namespace

TEST_CASE("graph: the implicit edges of what a container uses") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  // A role's password: the consumer waits for the instance's step.
  CHECK(g.dependencies(container("app")).count({Kind::postgres, "db"}) == 1);
  CHECK(g.dependencies(container("forge")).count({Kind::postgres, "db"}) == 1);
  // An S3 server's keys: the consumer waits for the server's buckets.
  CHECK(g.dependencies(container("app")).count({Kind::bucket, "data"}) == 1);
  // The runner token: the forge step.
  CHECK(g.dependencies(container("runner")).count({Kind::forgejo, ""}) == 1);
  // The runner token kept in Vault: the forge step waits for the Vault step.
  CHECK(g.dependencies({Kind::forgejo, ""}).count({Kind::vault, ""}) == 1);
  // A mirrored credential waits for Vault (and for its value).
  CHECK(g.dependencies({Kind::vault, "kv/app-db"}) ==
        std::set<ResourceKey>{{Kind::vault, ""}, {Kind::credential, "app-db"}});
  // A host uses what its own service hands out: no edge that would close a
  // cycle (the S3 server's container its keys).
  CHECK(g.dependencies(container("s3")).count({Kind::bucket, "data"}) == 0);
  CHECK(g.findCycle().empty());
  // Explicit edges are unchanged.
  CHECK(g.dependencies(container("sidecar")) == std::set<ResourceKey>{container("app")});
  CHECK(g.dependencies({Kind::postgres, "db"}).count(container("pg")) == 1);
  CHECK(g.dependencies({Kind::bucket, "data"}) == std::set<ResourceKey>{{Kind::s3, "main"}});
}

TEST_CASE("graph: the loader refuses a cycle, as a path") {
  auto loaded = loadSpecText(R"(
spec_version = 1
project = "t"
[containers.a]
image = "a:1"
depends_on = ["b"]
[containers.b]
image = "b:1"
depends_on = ["a"]
)", "test.toml", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
  CHECK_FALSE(loaded.spec);
  CHECK(loaded.diagnostics.formatAll().find(
            "dependency cycle: container.a -> container.b -> container.a") != std::string::npos);
}

TEST_CASE("phases: each consumer after what it uses, every step once") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  CHECK(joined(phases.deferred()) ==
        "container.app container.forge container.runner container.sidecar");
  CHECK(run(phases) == std::vector<std::string>{
                           "docker*: container.bao container.pg container.plain container.s3",
                           "step: vault",
                           "step: buckets",
                           "step: postgres",
                           "docker: container.app container.forge",
                           "docker: container.sidecar",
                           "step: forgejo",
                           "docker: container.runner",
                       });
  CHECK(phases.blocked().empty());
}

// The phases start() hands out at once, one line each.
std::vector<std::string> strs(const std::vector<Phase>& phases) {
  std::vector<std::string> out;
  for (const auto& p : phases) out.push_back(str(p));
  return out;
}

const Phase& stepPhase(const std::vector<Phase>& phases, Step step) {
  for (const auto& p : phases) {
    if (p.step == step) return p;
  }
  FAIL("no phase of step " << toString(step));
  return phases.front();
}

TEST_CASE("phases: independent phases start together; what waits starts when they finish") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  const auto first = phases.start();
  CHECK(strs(first) ==
        std::vector<std::string>{"docker*: container.bao container.pg container.plain container.s3"});
  CHECK(phases.start().empty());  // every step waits for its host, in the first pass
  CHECK(phases.running() == 1);
  phases.finish(first.front());

  // Three steps at once; the forge's waits for its container (and for Vault).
  const auto steps = phases.start();
  CHECK(strs(steps) ==
        std::vector<std::string>{"step: vault", "step: buckets", "step: postgres"});
  CHECK(phases.running() == 3);
  phases.finish(stepPhase(steps, Step::postgres));
  // The forge's container needed only the role; app waits for the bucket too.
  const auto forge = phases.start();
  CHECK(strs(forge) == std::vector<std::string>{"docker: container.forge"});
  phases.finish(stepPhase(steps, Step::buckets));
  CHECK(phases.start().empty());  // app is ready, but one Docker pass at a time
  phases.finish(forge.front());
  const auto app = phases.start();
  CHECK(strs(app) == std::vector<std::string>{"docker: container.app"});  // forgejo: Vault runs
  phases.finish(stepPhase(steps, Step::vault));
  const auto forgejo = phases.start();
  CHECK(strs(forgejo) == std::vector<std::string>{"step: forgejo"});
  phases.finish(app.front());
  const auto sidecar = phases.start();
  CHECK(strs(sidecar) == std::vector<std::string>{"docker: container.sidecar"});
  phases.finish(forgejo.front());
  CHECK(phases.start().empty());  // the runner waits for the sidecar's pass to end
  phases.finish(sidecar.front());
  const auto runner = phases.start();
  CHECK(strs(runner) == std::vector<std::string>{"docker: container.runner"});
  phases.finish(runner.front());
  CHECK(phases.start().empty());
  CHECK(phases.running() == 0);
  CHECK(phases.blocked().empty());
}

TEST_CASE("phases: a step failing while others run blocks its dependents only") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  phases.finish(phases.start().front());
  const auto steps = phases.start();
  REQUIRE(steps.size() == 3);
  phases.fail({Kind::postgres, "db"}, "role app: permission denied");
  phases.finish(stepPhase(steps, Step::postgres));
  // The forge's container is blocked at once; app when it would be ready
  // (it waits for the bucket too); buckets and Vault run on.
  CHECK(phases.start().empty());
  CHECK(phases.blocked().size() == 1);
  CHECK(phases.blocked().count(container("forge")) == 1);
  CHECK(phases.running() == 2);
  phases.finish(stepPhase(steps, Step::buckets));
  CHECK(phases.start().empty());
  CHECK(phases.blocked().size() == 3);  // app, and the sidecar with it
  CHECK(phases.blocked().at(container("app")) ==
        "blocked: postgres.db failed: role app: permission denied");
  phases.finish(stepPhase(steps, Step::vault));
  CHECK(strs(phases.start()) == std::vector<std::string>{"step: forgejo"});
}

TEST_CASE("phases: a failed role blocks exactly its consumers, the rest goes on") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  const auto phasesRun = run(phases, {{{Kind::postgres, "db"}, "role app: permission denied"}});
  CHECK(phasesRun == std::vector<std::string>{
                         "docker*: container.bao container.pg container.plain container.s3",
                         "step: vault",
                         "step: buckets",
                         "step: postgres",
                         "step: forgejo",  // its container was blocked: the step says so itself
                         "docker: container.runner",
                     });
  REQUIRE(phases.blocked().size() == 3);
  CHECK(phases.blocked().at(container("app")) ==
        "blocked: postgres.db failed: role app: permission denied");
  CHECK(phases.blocked().at(container("forge")) ==
        "blocked: postgres.db failed: role app: permission denied");
  CHECK(phases.blocked().at(container("sidecar")) == "blocked: container.app is blocked");
}

TEST_CASE("phases: an unreachable S3 server blocks the consumers of its keys only") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  run(phases, {{{Kind::bucket, "data"}, "s3.main: connection refused"}});
  REQUIRE(phases.blocked().size() == 2);
  CHECK(phases.blocked().at(container("app")) ==
        "blocked: bucket.data failed: s3.main: connection refused");
  CHECK(phases.blocked().count(container("sidecar")) == 1);
  CHECK(phases.blocked().count(container("forge")) == 0);
  CHECK(phases.blocked().count(container("runner")) == 0);
}

TEST_CASE("phases: a failed container of the first pass blocks what waits for it later") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo});
  // app's pass fails app: sidecar (depends_on app) never runs.
  run(phases, {{container("app"), "image not found"}});
  REQUIRE(phases.blocked().size() == 1);
  CHECK(phases.blocked().at(container("sidecar")) ==
        "blocked: container.app failed: image not found");
}

TEST_CASE("phases: excluded containers are left out, not blocked") {
  const Spec s = specFrom(kStack);
  const Graph g = Graph::build(s);
  Phases phases(g, {Step::vault, Step::buckets, Step::postgres, Step::forgejo},
                {container("runner")});
  const auto phasesRun = run(phases);
  CHECK(phasesRun.back() == "step: forgejo");
  CHECK(phases.blocked().empty());
}

TEST_CASE("phases: a spec without service steps is one Docker pass") {
  const Spec s = specFrom(R"(
spec_version = 1
project = "t"
[containers.a]
image = "a:1"
[containers.b]
image = "b:1"
depends_on = ["a"]
)");
  const Graph g = Graph::build(s);
  Phases phases(g, {});
  CHECK(phases.deferred().empty());
  CHECK(run(phases) == std::vector<std::string>{"docker*: container.a container.b"});
}
