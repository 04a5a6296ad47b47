#include "config/graph.hpp"

#include <algorithm>

namespace foundationd::config {

namespace {

const std::set<ResourceKey>& emptySet() {
  static const std::set<ResourceKey> empty;
  return empty;
}

// Adds an edge only when both ends are resources of the spec and distinct:
// dangling and self references are the validator's to report, not cycles.
void link(Graph& g, const ResourceKey& from, const ResourceKey& to) {
  if (from == to) return;
  if (!g.nodes().contains(from) || !g.nodes().contains(to)) return;
  g.addEdge(from, to);
}

// Whether `from` is reachable from `to` through dependencies: an edge
// from -> to would then close a cycle.
bool reaches(const Graph& g, const ResourceKey& to, const ResourceKey& from) {
  std::set<ResourceKey> seen;
  std::vector<ResourceKey> todo{to};
  while (!todo.empty()) {
    ResourceKey k = todo.back();
    todo.pop_back();
    if (k == from) return true;
    if (!seen.insert(k).second) continue;
    for (const auto& d : g.dependencies(k)) todo.push_back(d);
  }
  return false;
}

// An implicit edge (what a container uses, not what the spec says it
// depends on): added unless it would close a cycle. The host of a service
// often uses the very credential the service hands out (an S3 server's
// container its access key): it cannot wait for itself.
void linkImplicit(Graph& g, const ResourceKey& from, const ResourceKey& to) {
  if (from == to || !g.nodes().contains(from) || !g.nodes().contains(to)) return;
  if (reaches(g, to, from)) return;
  g.addEdge(from, to);
}

// The credentials a value uses.
void credentialsOf(const Value& v, std::set<std::string>& out) {
  for (const auto& ref : v.references()) {
    if (!ref.runnerToken) out.insert(ref.name);
  }
}

std::set<std::string> credentialsOf(const Spec& spec, const ContainerSpec& c) {
  std::set<std::string> out;
  for (const auto& [key, v] : c.env) credentialsOf(v, out);
  for (const auto& [path, v] : c.secretFiles) credentialsOf(v, out);
  for (const auto& [path, m] : c.files) {
    auto f = spec.files.find(m.file);
    if (f != spec.files.end()) credentialsOf(f->second.content, out);
  }
  return out;
}

bool shares(const std::set<std::string>& a, const std::set<std::string>& b) {
  for (const auto& x : a) {
    if (b.contains(x)) return true;
  }
  return false;
}

void linkValue(Graph& g, const ResourceKey& from, const Value& v) {
  for (const auto& ref : v.references()) {
    // ${forgejo.runner_token}: the forge step produces it.
    link(g, from, ref.runnerToken ? ResourceKey{Kind::forgejo, ""}
                                  : ResourceKey{Kind::credential, ref.name});
  }
}

}  // namespace

const char* toString(Kind kind) noexcept {
  switch (kind) {
    case Kind::network: return "network";
    case Kind::volume: return "volume";
    case Kind::credential: return "credential";
    case Kind::container: return "container";
    case Kind::vault: return "vault";
    case Kind::s3: return "s3";
    case Kind::bucket: return "bucket";
    case Kind::postgres: return "postgres";
    case Kind::forgejo: return "forgejo";
  }
  return "unknown";
}

std::string ResourceKey::str() const {
  std::string out = toString(kind);
  if (!name.empty()) out += "." + name;
  return out;
}

void Graph::addNode(const ResourceKey& key) { nodes_.insert(key); }

void Graph::addEdge(const ResourceKey& from, const ResourceKey& dependsOn) {
  nodes_.insert(from);
  nodes_.insert(dependsOn);
  deps_[from].insert(dependsOn);
  rdeps_[dependsOn].insert(from);
}

const std::set<ResourceKey>& Graph::dependencies(const ResourceKey& key) const {
  auto it = deps_.find(key);
  return it == deps_.end() ? emptySet() : it->second;
}

const std::set<ResourceKey>& Graph::dependents(const ResourceKey& key) const {
  auto it = rdeps_.find(key);
  return it == rdeps_.end() ? emptySet() : it->second;
}

Graph Graph::build(const Spec& spec) {
  Graph g;
  for (const auto& [name, n] : spec.networks) g.addNode({Kind::network, name});
  for (const auto& [name, v] : spec.volumes) g.addNode({Kind::volume, name});
  for (const auto& [name, c] : spec.credentials) g.addNode({Kind::credential, name});
  for (const auto& [name, c] : spec.containers) g.addNode({Kind::container, name});
  if (spec.vault) {
    g.addNode({Kind::vault, ""});
    // Each credential's copy in Vault: written by the Vault step.
    for (const auto& [name, c] : spec.credentials) g.addNode({Kind::vault, "kv/" + c.vaultPath});
  }
  for (const auto& [name, s] : spec.s3) g.addNode({Kind::s3, name});
  for (const auto& [name, b] : spec.buckets) g.addNode({Kind::bucket, name});
  for (const auto& [name, p] : spec.postgres) g.addNode({Kind::postgres, name});
  if (spec.forgejo) g.addNode({Kind::forgejo, ""});

  for (const auto& [name, c] : spec.containers) {
    const ResourceKey self{Kind::container, name};
    for (const auto& d : c.dependsOn) link(g, self, {Kind::container, d.container});
    for (const auto& n : c.networks) link(g, self, {Kind::network, n.network});
    for (const auto& m : c.volumes) {
      if (!m.bind) link(g, self, {Kind::volume, m.source});
    }
    for (const auto& [key, v] : c.env) linkValue(g, self, v);
    for (const auto& [path, v] : c.secretFiles) linkValue(g, self, v);
    for (const auto& [path, m] : c.files) {  // a file's credentials, through the file
      auto f = spec.files.find(m.file);
      if (f != spec.files.end()) linkValue(g, self, f->second.content);
    }
  }
  if (spec.vault) {
    link(g, {Kind::vault, ""}, {Kind::container, spec.vault->container});
    // A mirrored credential waits for Vault (and for its own value).
    for (const auto& [name, c] : spec.credentials) {
      const ResourceKey copy{Kind::vault, "kv/" + c.vaultPath};
      link(g, copy, {Kind::vault, ""});
      link(g, copy, {Kind::credential, name});
    }
  }
  for (const auto& [name, s] : spec.s3) {
    const ResourceKey self{Kind::s3, name};
    link(g, self, {Kind::container, s.container});
    linkValue(g, self, s.accessKey);
    linkValue(g, self, s.secretKey);
  }
  for (const auto& [name, b] : spec.buckets) link(g, {Kind::bucket, name}, {Kind::s3, b.s3});
  for (const auto& [name, p] : spec.postgres) {
    const ResourceKey self{Kind::postgres, name};
    link(g, self, {Kind::container, p.container});
    for (const auto& [role, r] : p.roles) linkValue(g, self, r.password);
  }
  if (spec.forgejo) {
    const ResourceKey self{Kind::forgejo, ""};
    link(g, self, {Kind::container, spec.forgejo->container});
    if (spec.forgejo->admin) linkValue(g, self, spec.forgejo->admin->password);
    // The runner token is kept in Vault's KV with foundationd's own token:
    // the forge step waits for the Vault step.
    if (spec.forgejo->runnerTokenVaultPath && spec.vault) linkImplicit(g, self, {Kind::vault, ""});
    for (const auto& [repo, w] : spec.forgejo->webhooks) linkValue(g, self, w.secret);
    for (const auto& [repo, o] : spec.forgejo->repoOptions) {
      for (const auto& [name, v] : o.actions.secrets) linkValue(g, self, v);
    }
    for (const auto& [org, a] : spec.forgejo->orgActions) {
      for (const auto& [name, v] : a.secrets) linkValue(g, self, v);
    }
  }

  // Implicit edges: a container waits for what hands out the credentials it
  // uses. A PostgreSQL role's password: the instance's step (the role is
  // created, or its password set, before the consumer starts). An [s3.*]
  // server's keys: the buckets of that server. ${forgejo.runner_token} is an
  // edge to the forge step above already.
  for (const auto& [name, c] : spec.containers) {
    const ResourceKey self{Kind::container, name};
    const auto uses = credentialsOf(spec, c);
    if (uses.empty()) continue;
    for (const auto& [pname, p] : spec.postgres) {
      std::set<std::string> roles;
      for (const auto& [role, r] : p.roles) credentialsOf(r.password, roles);
      if (shares(uses, roles)) linkImplicit(g, self, {Kind::postgres, pname});
    }
    for (const auto& [sname, s] : spec.s3) {
      std::set<std::string> keys;
      credentialsOf(s.accessKey, keys);
      credentialsOf(s.secretKey, keys);
      if (!shares(uses, keys)) continue;
      for (const auto& [bname, b] : spec.buckets) {
        if (b.s3 == sname) linkImplicit(g, self, {Kind::bucket, bname});
      }
    }
  }
  return g;
}

std::optional<std::vector<ResourceKey>> Graph::topologicalOrder() const {
  // Kahn's algorithm; the ready set is ordered, so ties go to the smallest key.
  std::map<ResourceKey, std::size_t> waiting;
  std::set<ResourceKey> ready;
  for (const auto& n : nodes_) {
    const std::size_t count = dependencies(n).size();
    waiting[n] = count;
    if (count == 0) ready.insert(n);
  }
  std::vector<ResourceKey> order;
  order.reserve(nodes_.size());
  while (!ready.empty()) {
    const ResourceKey next = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(next);
    for (const auto& dependent : dependents(next)) {
      if (--waiting[dependent] == 0) ready.insert(dependent);
    }
  }
  if (order.size() != nodes_.size()) return std::nullopt;
  return order;
}

std::vector<ResourceKey> Graph::findCycle() const {
  enum class Mark { unvisited, active, done };
  std::map<ResourceKey, Mark> mark;
  std::vector<ResourceKey> cycle;

  // Iterative DFS (deep graphs must not overflow the stack): each frame is a
  // node and an iterator over its dependencies.
  struct Frame {
    ResourceKey key;
    std::set<ResourceKey>::const_iterator next, end;
  };
  for (const auto& root : nodes_) {
    if (mark[root] != Mark::unvisited) continue;
    std::vector<Frame> frames;
    const auto& rootDeps = dependencies(root);
    frames.push_back({root, rootDeps.begin(), rootDeps.end()});
    mark[root] = Mark::active;
    while (!frames.empty()) {
      Frame& top = frames.back();
      if (top.next == top.end) {
        mark[top.key] = Mark::done;
        frames.pop_back();
        continue;
      }
      const ResourceKey dep = *top.next++;
      if (mark[dep] == Mark::active) {
        auto from = std::find_if(frames.begin(), frames.end(),
                                 [&](const Frame& f) { return f.key == dep; });
        for (auto it = from; it != frames.end(); ++it) cycle.push_back(it->key);
        // Start the path at the smallest key so the report does not depend on
        // where the search happened to enter the cycle.
        auto smallest = std::min_element(cycle.begin(), cycle.end());
        std::rotate(cycle.begin(), smallest, cycle.end());
        cycle.push_back(cycle.front());
        return cycle;
      }
      if (mark[dep] == Mark::unvisited) {
        mark[dep] = Mark::active;
        const auto& deps = dependencies(dep);
        frames.push_back({dep, deps.begin(), deps.end()});
      }
    }
  }
  return {};
}

}  // namespace foundationd::config
