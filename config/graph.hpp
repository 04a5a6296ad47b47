// The dependency graph between the resources of a spec.
//
// Edges (see docs/spec.md "Dependencies and order"): depends_on; every
// ${credentials...} reference (the credential before its consumer); the
// networks and volumes a container uses; the container hosting a service
// ([vault], [s3.*], [postgres.*], [forgejo]); a bucket's [s3.*]; the forgejo
// webhook/admin credentials; [vault] for a [forgejo] keeping its runner token
// there. Pure and deterministic.
#pragma once

#include <compare>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/spec.hpp"

namespace foundationd::config {

enum class Kind { network, volume, credential, container, vault, s3, bucket, postgres, forgejo };
const char* toString(Kind kind) noexcept;

struct ResourceKey {
  Kind kind;
  std::string name;  // "" for singletons ([vault], [forgejo])
  auto operator<=>(const ResourceKey&) const = default;
  bool operator==(const ResourceKey&) const = default;
  // "container.postgres", "vault", ...
  std::string str() const;
};

class Graph {
 public:
  // Every resource of the spec becomes a node. A reference to something the
  // spec does not declare, or to the resource itself, adds no edge: the
  // loader reports those as errors of their own, not as cycles.
  static Graph build(const Spec& spec);

  const std::set<ResourceKey>& nodes() const noexcept { return nodes_; }
  // What `key` must wait for.
  const std::set<ResourceKey>& dependencies(const ResourceKey& key) const;
  // What waits for `key`.
  const std::set<ResourceKey>& dependents(const ResourceKey& key) const;

  // A deterministic topological order (ties broken by ResourceKey order), or
  // nullopt when there is a cycle.
  std::optional<std::vector<ResourceKey>> topologicalOrder() const;

  // One cycle as a path that starts and ends at the same node
  // (a -> b -> a), or empty when acyclic.
  std::vector<ResourceKey> findCycle() const;

  void addNode(const ResourceKey& key);
  void addEdge(const ResourceKey& from, const ResourceKey& dependsOn);

 private:
  std::set<ResourceKey> nodes_;
  std::map<ResourceKey, std::set<ResourceKey>> deps_;
  std::map<ResourceKey, std::set<ResourceKey>> rdeps_;
};

}  // namespace foundationd::config
