#include <doctest/doctest.h>

#include "config/graph.hpp"
#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

ResourceKey container(const std::string& n) { return {Kind::container, n}; }
ResourceKey credential(const std::string& n) { return {Kind::credential, n}; }

std::string joined(const std::vector<ResourceKey>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : " ") + k.str();
  return out;
}

Spec exampleSpec() {
  auto r = loadSpecFile("config/examples/foundation.toml");
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec);
  return *r.spec;
}

}  // namespace

TEST_CASE("ResourceKey names and order") {
  CHECK(container("postgres").str() == "container.postgres");
  CHECK(ResourceKey{Kind::vault, ""}.str() == "vault");
  CHECK(ResourceKey{Kind::forgejo, ""}.str() == "forgejo");
  CHECK(ResourceKey{Kind::bucket, "x"}.str() == "bucket.x");
  CHECK(std::string(toString(Kind::s3)) == "s3");
  CHECK(ResourceKey{Kind::network, "z"} < ResourceKey{Kind::volume, "a"});  // kind first
  CHECK(container("a") < container("b"));
}

TEST_CASE("a hand-built graph: dependencies, dependents, order") {
  Graph g;
  g.addEdge(container("web"), container("db"));
  g.addEdge(container("web"), credential("pw"));
  g.addEdge(container("db"), credential("pw"));
  g.addNode(container("lonely"));
  CHECK(g.nodes().size() == 4);
  CHECK(g.dependencies(container("web")) == std::set<ResourceKey>{container("db"), credential("pw")});
  CHECK(g.dependents(credential("pw")) == std::set<ResourceKey>{container("db"), container("web")});
  CHECK(g.dependencies(container("lonely")).empty());
  CHECK(g.dependents(container("nope")).empty());
  auto order = g.topologicalOrder();
  REQUIRE(order);
  CHECK(joined(*order) == "credential.pw container.db container.lonely container.web");
  CHECK(g.findCycle().empty());
}

TEST_CASE("topologicalOrder breaks ties by ResourceKey order, whatever the insertion order") {
  Graph a, b;
  const std::vector<ResourceKey> keys{container("c"), container("a"), ResourceKey{Kind::network, "n"},
                                      container("b")};
  for (const auto& k : keys) a.addNode(k);
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) b.addNode(*it);
  a.addEdge(container("a"), container("c"));
  b.addEdge(container("a"), container("c"));
  CHECK(joined(*a.topologicalOrder()) == "network.n container.b container.c container.a");
  CHECK(joined(*a.topologicalOrder()) == joined(*b.topologicalOrder()));
}

TEST_CASE("findCycle returns a closed path starting at the smallest node") {
  Graph g;
  g.addEdge(container("c"), container("a"));
  g.addEdge(container("a"), container("b"));
  g.addEdge(container("b"), container("c"));
  g.addEdge(container("d"), container("a"));  // leads into the cycle, not part of it
  CHECK_FALSE(g.topologicalOrder());
  CHECK(joined(g.findCycle()) == "container.a container.b container.c container.a");
}

TEST_CASE("findCycle finds a self-loop and a two-node cycle") {
  Graph self;
  self.addEdge(container("a"), container("a"));
  CHECK(joined(self.findCycle()) == "container.a container.a");
  Graph two;
  two.addEdge(container("b"), container("a"));
  two.addEdge(container("a"), container("b"));
  CHECK(joined(two.findCycle()) == "container.a container.b container.a");
}

TEST_CASE("findCycle handles deep chains without recursion") {
  Graph g;
  for (int i = 0; i < 20000; ++i) {
    g.addEdge(container("n" + std::to_string(i)), container("n" + std::to_string(i + 1)));
  }
  CHECK(g.findCycle().empty());
  CHECK(g.topologicalOrder()->size() == 20001);
}

TEST_CASE("build: every resource of the example is a node") {
  const Spec s = exampleSpec();
  const Graph g = Graph::build(s);
  const std::size_t expected = s.networks.size() + s.volumes.size() + s.credentials.size() +
                               s.containers.size() + 1 /*vault*/ + s.s3.size() +
                               s.buckets.size() + s.postgres.size() + 1 /*forgejo*/ +
                               s.credentials.size() /*their copies in Vault*/;
  CHECK(g.nodes().size() == expected);
  CHECK(g.nodes().contains(ResourceKey{Kind::vault, ""}));
  CHECK(g.nodes().contains(ResourceKey{Kind::bucket, "foundation-backups"}));
}

TEST_CASE("build: the edges of the header's contract") {
  const Graph g = Graph::build(exampleSpec());
  const auto& forgejo = g.dependencies(container("forgejo"));
  // depends_on
  CHECK(forgejo.contains(container("postgres")));
  CHECK(forgejo.contains(container("rustfs")));
  // credential references in env
  CHECK(forgejo.contains(credential("forgejo-db")));
  CHECK(forgejo.contains(credential("rustfs-root")));
  // networks and named volumes, not bind mounts
  CHECK(forgejo.contains(ResourceKey{Kind::network, "foundation-net"}));
  CHECK(forgejo.contains(ResourceKey{Kind::volume, "forgejo-data"}));
  // secret_files references
  CHECK(g.dependencies(container("postgres")).contains(credential("postgres-superuser")));
  // hosted services wait for their container
  CHECK(g.dependencies(ResourceKey{Kind::vault, ""}) == std::set<ResourceKey>{container("vault")});
  CHECK(g.dependencies(ResourceKey{Kind::s3, "rustfs"}) ==
        std::set<ResourceKey>{container("rustfs"), credential("rustfs-root")});
  CHECK(g.dependencies(ResourceKey{Kind::bucket, "forgejo-lfs"}) ==
        std::set<ResourceKey>{ResourceKey{Kind::s3, "rustfs"}});
  CHECK(g.dependencies(ResourceKey{Kind::postgres, "main"}) ==
        std::set<ResourceKey>{container("postgres"), credential("forgejo-db")});
  CHECK(g.dependencies(ResourceKey{Kind::forgejo, ""}) ==
        std::set<ResourceKey>{container("forgejo"), credential("forgejo-admin"),
                              credential("forgejo-webhook"),
                              credential("rustfs-root"),  // the CI's Actions secrets
                              ResourceKey{Kind::vault, ""}});  // the runner token's home
  CHECK(g.dependencies(container("runner")).count(ResourceKey{Kind::forgejo, ""}) == 1);
  CHECK(g.dependents(credential("forgejo-db")) ==
        std::set<ResourceKey>{container("forgejo"), ResourceKey{Kind::postgres, "main"},
                              ResourceKey{Kind::vault, "kv/forgejo/db-credentials"}});
  // Implicit: the forge uses the role's password and the S3 keys, so it
  // waits for the role's instance and the server's buckets.
  CHECK(forgejo.contains(ResourceKey{Kind::postgres, "main"}));
  CHECK(forgejo.contains(ResourceKey{Kind::bucket, "forgejo-lfs"}));
  // ... but the S3 server's own container, which uses those keys, does not.
  CHECK_FALSE(g.dependencies(container("rustfs")).contains(ResourceKey{Kind::bucket, "forgejo-lfs"}));
}

TEST_CASE("build: the example's order is deterministic and respects every edge") {
  const Spec s = exampleSpec();
  const Graph g = Graph::build(s);
  auto order = g.topologicalOrder();
  REQUIRE(order);
  CHECK(joined(*order) ==
        "network.foundation-net volume.caddy-config volume.caddy-data volume.forgejo-data "
        "volume.pg-data volume.registry-cache volume.runner-data volume.rustfs-data volume.vault-data "
        "credential.forgejo-admin credential.forgejo-app credential.forgejo-db "
        "credential.forgejo-webhook credential.postgres-superuser credential.rustfs-root "
        "container.postgres container.registry-cache container.rustfs container.vault vault "
        "vault.kv/forgejo/admin-credentials vault.kv/forgejo/app-credentials "
        "vault.kv/forgejo/db-credentials vault.kv/forgejo/webhook-credentials "
        "vault.kv/postgres/superuser-credentials vault.kv/rustfs/root-credentials s3.rustfs "
        "bucket.forgejo-artifacts bucket.forgejo-lfs bucket.forgejo-packages "
        "bucket.foundation-backups postgres.main "
        "container.forgejo "  // its role and buckets first
        "container.caddy forgejo "
        "container.runner");  // it uses ${forgejo.runner_token}: after the forge step
  std::map<ResourceKey, std::size_t> position;
  for (std::size_t i = 0; i < order->size(); ++i) position[(*order)[i]] = i;
  for (const auto& n : g.nodes()) {
    for (const auto& d : g.dependencies(n)) CHECK(position[d] < position[n]);
  }
  CHECK(joined(*Graph::build(s).topologicalOrder()) == joined(*order));
}

TEST_CASE("build: dangling and self references add no edges (the validator reports them)") {
  Spec s;
  ContainerSpec a;
  a.name = "a";
  a.dependsOn = {Dependency{"a", DependCondition::started, {}}, Dependency{"ghost", DependCondition::started, {}}};
  a.networks = {NetworkAttachment{"bridge", {}, {}}};
  a.volumes = {Mount{"/srv", "/srv", false, true, {}}};
  s.containers["a"] = a;
  const Graph g = Graph::build(s);
  CHECK(g.nodes() == std::set<ResourceKey>{container("a")});
  CHECK(g.dependencies(container("a")).empty());
  CHECK(g.findCycle().empty());
}

TEST_CASE("build: a cycle through depends_on is found") {
  Spec s;
  for (const char* n : {"a", "b", "c"}) s.containers[n].name = n;
  s.containers["a"].dependsOn = {Dependency{"b", DependCondition::started, {}}};
  s.containers["b"].dependsOn = {Dependency{"c", DependCondition::started, {}}};
  s.containers["c"].dependsOn = {Dependency{"a", DependCondition::started, {}}};
  const Graph g = Graph::build(s);
  CHECK_FALSE(g.topologicalOrder());
  CHECK(joined(g.findCycle()) == "container.a container.b container.c container.a");
}
