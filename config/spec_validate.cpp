// Checks that need the whole parsed spec.

#include "config/graph.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

SourceLoc locOf(const Spec& spec, const ResourceKey& key) {
  auto find = [&](const auto& map) -> SourceLoc {
    auto it = map.find(key.name);
    return it == map.end() ? SourceLoc{spec.file, 0, 0} : it->second.loc;
  };
  switch (key.kind) {
    case Kind::network: return find(spec.networks);
    case Kind::volume: return find(spec.volumes);
    case Kind::credential: return find(spec.credentials);
    case Kind::container: return find(spec.containers);
    case Kind::vault: return spec.vault ? spec.vault->loc : SourceLoc{spec.file, 0, 0};
    case Kind::s3: return find(spec.s3);
    case Kind::bucket: return find(spec.buckets);
    case Kind::postgres: return find(spec.postgres);
    case Kind::forgejo: return spec.forgejo ? spec.forgejo->loc : SourceLoc{spec.file, 0, 0};
  }
  return SourceLoc{spec.file, 0, 0};
}

void checkHealthyDependencies(SpecReader& r, const Spec& spec) {
  for (const auto& [name, c] : spec.containers) {
    for (const auto& d : c.dependsOn) {
      if (d.condition != DependCondition::healthy) continue;
      auto target = spec.containers.find(d.container);
      if (target == spec.containers.end()) continue;  // reported where it is written
      const auto& hc = target->second.healthcheck;
      const std::string subject = "container " + quote(name) + " depends on " +
                                  quote(d.container) + " being healthy, but [containers." +
                                  tomlKey(d.container) + "]";
      if (!hc) {
        r.error(d.loc, subject + " has no healthcheck; add one or use \"started\"");
      } else if (!hc->test.empty() && hc->test.front() == "NONE") {
        r.error(d.loc, subject + " disables its healthcheck (test = [\"NONE\"])");
      }
    }
  }
}

// A job (run = "once") exits when it is done: a dependency on it waits for
// "completed"; a service never completes.
void checkJobDependencies(SpecReader& r, const Spec& spec) {
  for (const auto& [name, c] : spec.containers) {
    for (const auto& d : c.dependsOn) {
      auto target = spec.containers.find(d.container);
      if (target == spec.containers.end()) continue;  // reported where it is written
      const std::string subject = "container " + quote(name) + " depends on " +
                                  quote(d.container) + " being " + toString(d.condition);
      if (target->second.runOnce && d.condition != DependCondition::completed) {
        r.error(d.loc, subject + ", but [containers." + tomlKey(d.container) +
                           "] is a job (run = \"once\") that exits when done; use " +
                           "depends_on = { " + tomlKey(d.container) + " = \"completed\" }");
      } else if (!target->second.runOnce && d.condition == DependCondition::completed) {
        r.error(d.loc, subject + ", but [containers." + tomlKey(d.container) +
                           "] is a service that is kept running; \"completed\" needs a job "
                           "(run = \"once\")");
      }
    }
  }
}

// Two resources writing the same KV path would overwrite each other.
void checkVaultPaths(SpecReader& r, const Spec& spec) {
  std::map<std::string, std::string> owners;  // path -> "[credentials.x]"
  for (const auto& [name, c] : spec.credentials) {
    const std::string owner = "[credentials." + tomlKey(name) + "]";
    auto [it, inserted] = owners.emplace(c.vaultPath, owner);
    if (!inserted) {
      r.error(c.loc, "vault_path " + quote(c.vaultPath) + " of " + owner +
                         " is already used by " + it->second);
    }
  }
  if (spec.forgejo && spec.forgejo->runnerTokenVaultPath) {
    auto it = owners.find(*spec.forgejo->runnerTokenVaultPath);
    if (it != owners.end()) {
      r.error(spec.forgejo->loc, "vault_path " + quote(it->first) +
                                     " of [forgejo.runner_token] is already used by " +
                                     it->second);
    }
  }
}

bool anyAddress(const std::string& ip) { return ip.empty() || ip == "0.0.0.0" || ip == "::"; }

// Docker refuses to start a second container on a host port already bound.
void checkHostPorts(SpecReader& r, const Spec& spec) {
  struct Bound {
    const PortMapping* port;
    std::string container;
  };
  std::vector<Bound> seen;
  for (const auto& [name, c] : spec.containers) {
    for (const auto& p : c.ports) {
      if (!p.hostPort) continue;
      for (const auto& b : seen) {
        const bool sameIp = b.port->hostIp == p.hostIp || anyAddress(b.port->hostIp) ||
                            anyAddress(p.hostIp);
        if (sameIp && *b.port->hostPort == *p.hostPort && b.port->protocol == p.protocol) {
          const std::string by = b.container == name
                                     ? "earlier in the same container"
                                     : "by [containers." + tomlKey(b.container) + "]";
          r.error(p.loc, "host port " + std::to_string(*p.hostPort) + "/" + p.protocol +
                             " of [containers." + tomlKey(name) + "] is already published " +
                             by);
          break;
        }
      }
      seen.push_back({&p, name});
    }
  }
}

// A file no container mounts is rendered for nothing: probably a typo.
void checkUnusedFiles(SpecReader& r, const Spec& spec) {
  std::set<std::string> used;
  for (const auto& [_, c] : spec.containers) {
    for (const auto& [path, m] : c.files) used.insert(m.file);
  }
  for (const auto& [name, f] : spec.files) {
    if (!used.contains(name)) {
      r.warning(f.loc, "[files." + tomlKey(name) + "] is mounted by no container (add it to a "
                           "container's \"files\")");
    }
  }
}

// A backup pauses the forge's container for its cut (docs/dr.md "The forge's
// data"). A health probe that Docker is starting at that instant is frozen
// with it, and `docker unpause` then waits until the probe's timeout: the
// healthcheck's timeout (Docker's default 30 s) bounds the worst freeze.
void checkForgeFreezeBound(SpecReader& r, const Spec& spec) {
  if (!spec.backup || !spec.forgejo) return;
  const auto c = spec.containers.find(spec.forgejo->container);
  if (c == spec.containers.end() || !c->second.healthcheck) return;
  const Healthcheck& h = *c->second.healthcheck;
  if (!h.test.empty() && h.test.front() == "NONE") return;
  constexpr Duration kBound = std::chrono::seconds(10);
  if (h.timeout && *h.timeout <= kBound) return;
  r.warning(c->second.loc,
            "the healthcheck of the forge's container \"" + c->first + "\" has " +
                (h.timeout ? "a timeout over 10s" : "no timeout (Docker's default: 30s)") +
                ": a backup pauses the forge, and a health probe caught starting by the pause "
                "holds the unpause until that timeout; set timeout = \"5s\"");
}

void checkCycles(SpecReader& r, const Spec& spec) {
  const auto cycle = Graph::build(spec).findCycle();
  if (cycle.empty()) return;
  std::string path;
  for (const auto& key : cycle) path += (path.empty() ? "" : " -> ") + key.str();
  r.error(locOf(spec, cycle.front()), "dependency cycle: " + path);
}

}  // namespace

void validateSpec(SpecReader& r, const Spec& spec) {
  checkHealthyDependencies(r, spec);
  checkJobDependencies(r, spec);
  checkVaultPaths(r, spec);
  checkHostPorts(r, spec);
  checkUnusedFiles(r, spec);
  checkForgeFreezeBound(r, spec);
  checkCycles(r, spec);
}

}  // namespace foundationd::config::detail
