// The order of one converge, from the dependency graph (config/graph.hpp):
// a sequence of phases, each either one Docker pass over the containers
// whose dependencies are all done, or one service step (Vault, buckets,
// PostgreSQL, the forge). The first phase is the Docker pass of every
// container that waits for no service step; a container that uses what a
// step hands out (a role's password, a bucket's keys, the runner token)
// runs in a later pass, after that step. A failure blocks only what
// depends on it: those containers never run and are reported blocked, with
// the reason naming what failed. Pure; the converge pipeline
// (daemon/pipeline.hpp) drives it. docs/spec.md "Dependencies and order".
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/graph.hpp"

namespace foundationd::config {

// The service steps, in the order they run when nothing else decides.
enum class Step { vault, buckets, postgres, forgejo };
const char* toString(Step step) noexcept;
// The step that converges resources of `kind` (nullopt: the Docker kinds and
// credentials, which are done before any step).
std::optional<Step> stepOf(Kind kind) noexcept;

struct Phase {
  std::optional<Step> step;             // a service step, or
  std::set<ResourceKey> containers;     // a Docker pass over these containers
  bool first = false;                   // the first Docker pass (networks, volumes, orphans too)
};

class Phases {
 public:
  // `steps`: the service steps the spec has. `excluded`: containers this
  // converge leaves alone (locked out, waiting for a provided value): never
  // in a pass, never reported blocked here.
  Phases(const Graph& graph, std::set<Step> steps, std::set<ResourceKey> excluded = {});

  // Every container that waits (directly or through another container) for a
  // service step: not in the first Docker pass.
  const std::set<ResourceKey>& deferred() const noexcept { return deferred_; }

  // Every phase that can start now: the service steps whose resources'
  // dependencies are done, and one Docker pass over the containers whose
  // dependencies are done (while a pass runs, the next waits for it: one
  // Docker pass at a time). Each runs until finish(); what depends on a
  // running phase waits for it. Empty when nothing more can start until a
  // running phase finishes, or when nothing is left.
  std::vector<Phase> start();
  // `phase` (from start()) is done; report its failures (fail()) first.
  void finish(const Phase& phase);
  // Phases started and not finished.
  std::size_t running() const noexcept { return runningSteps_.size() + (passRunning_ ? 1 : 0); }

  // One phase at a time, for a caller that runs them in turn: the phase
  // returned before counts as finished, then the next one that can start.
  // nullopt when nothing is left.
  std::optional<Phase> next();

  // `key` failed (a container, or what a step converges: postgres.NAME,
  // bucket.NAME, forgejo, vault...): what depends on it is blocked.
  void fail(const ResourceKey& key, std::string why);

  // The containers that never ran because something they depend on failed
  // or was blocked, with the reason ("blocked: postgres.db failed: ...").
  const std::map<ResourceKey, std::string>& blocked() const noexcept { return blocked_; }

 private:
  // The failed or blocked dependency of `key`, with why; nullopt when none.
  std::optional<std::string> blockedBy(const ResourceKey& key) const;
  bool ready(const ResourceKey& key) const;
  bool stepReady(Step step) const;

  const Graph& graph_;
  std::set<ResourceKey> deferred_;
  std::set<ResourceKey> pending_;       // deferred containers not run yet
  std::set<Step> pendingSteps_;
  std::set<Step> runningSteps_;
  std::set<ResourceKey> runningContainers_;  // of the Docker pass running
  bool passRunning_ = false;
  std::vector<Phase> queued_;           // next(): started, not handed out yet
  std::optional<Phase> current_;        // next(): handed out, not finished
  std::map<ResourceKey, std::string> failed_;
  std::map<ResourceKey, std::string> blocked_;
  bool started_ = false;
};

}  // namespace foundationd::config
