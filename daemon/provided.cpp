#include "daemon/provided.hpp"

#include <vector>

#include "controllers/credentials/credentials.hpp"

namespace foundationd::daemon {

using config::Kind;
using config::ResourceKey;

namespace {

bool usesRunnerToken(const config::Value& v) {
  for (const auto& ref : v.references()) {
    if (ref.runnerToken) return true;
  }
  return false;
}

// `roots` and everything that (transitively) depends on them.
template <typename Visit>
void walkDependents(const config::Graph& graph, std::vector<ResourceKey> todo, Visit visit) {
  std::set<ResourceKey> seen;
  while (!todo.empty()) {
    ResourceKey k = todo.back();
    todo.pop_back();
    if (!seen.insert(k).second) continue;
    visit(k);
    for (const auto& d : graph.dependents(k)) todo.push_back(d);
  }
}

}  // namespace

std::map<ResourceKey, std::string> blockedByProvided(const config::Spec& spec,
                                                     state::Store* store) {
  std::map<ResourceKey, std::string> out;
  auto unset = credentials::unsetProvided(spec, store);
  if (!unset || unset->empty()) return out;
  const auto graph = config::Graph::build(spec);
  for (const auto& ref : unset.value()) {
    const std::string why = "needs credential " + ref.name + "." + ref.field +
                            ", which is provided and not set yet; " +
                            credentials::provideHint(ref);
    const ResourceKey root{Kind::credential, ref.name};
    walkDependents(graph, {root}, [&](const ResourceKey& k) {
      if (k == root) return;
      out.emplace(k, why);  // the first unset field a resource needs names it
    });
    auto c = spec.credentials.find(ref.name);
    if (spec.vault && c != spec.credentials.end()) {
      out.emplace(ResourceKey{Kind::vault, "kv/" + c->second.vaultPath}, why);
    }
  }
  return out;
}

std::set<ResourceKey> runnerTokenConsumers(const config::Spec& spec) {
  std::set<ResourceKey> out;
  for (const auto& [name, c] : spec.containers) {
    bool uses = false;
    for (const auto& [_, v] : c.env) uses = uses || usesRunnerToken(v);
    for (const auto& [_, v] : c.secretFiles) uses = uses || usesRunnerToken(v);
    for (const auto& [_, m] : c.files) uses = uses || usesRunnerToken(m.content);
    if (uses) out.insert({Kind::container, name});
  }
  return out;
}

std::set<ResourceKey> containersOf(const std::map<ResourceKey, std::string>& keys) {
  std::set<ResourceKey> out;
  for (const auto& [k, _] : keys) {
    if (k.kind == Kind::container) out.insert(k);
  }
  return out;
}

void markBlocked(StepReport& report, const std::map<ResourceKey, std::string>& blocked) {
  for (auto& o : report.outcomes) {
    if (o.ok || o.blocked) continue;
    auto it = blocked.find(o.key);
    if (it == blocked.end()) {
      // postgres.db/role/app belongs to postgres.db; forgejo.admin/x to forgejo.
      const auto slash = o.key.name.find('/');
      const std::string service =
          o.key.kind == Kind::forgejo ? "" : o.key.name.substr(0, slash);
      it = blocked.find({o.key.kind, service});
    }
    if (it == blocked.end()) continue;
    o.blocked = true;
    o.message = it->second;
  }
}

StepReport blockedContainers(const std::map<ResourceKey, std::string>& keys) {
  StepReport out;
  for (const auto& [k, message] : keys) {
    if (k.kind != Kind::container) continue;
    StepOutcome o;
    o.key = k;
    o.ok = false;
    o.blocked = true;
    o.message = message;
    out.outcomes.push_back(std::move(o));
  }
  return out;
}

}  // namespace foundationd::daemon
