#include "config/phases.hpp"

namespace foundationd::config {

const char* toString(Step step) noexcept {
  switch (step) {
    case Step::vault: return "vault";
    case Step::buckets: return "buckets";
    case Step::postgres: return "postgres";
    case Step::forgejo: return "forgejo";
  }
  return "unknown";
}

std::optional<Step> stepOf(Kind kind) noexcept {
  switch (kind) {
    case Kind::vault: return Step::vault;
    case Kind::s3:
    case Kind::bucket: return Step::buckets;
    case Kind::postgres: return Step::postgres;
    case Kind::forgejo: return Step::forgejo;
    default: return std::nullopt;
  }
}

Phases::Phases(const Graph& graph, std::set<Step> steps, std::set<ResourceKey> excluded)
    : graph_(graph), pendingSteps_(std::move(steps)) {
  // A container is deferred when it waits for a step, or for a deferred
  // container: walk the dependents of every step's resources.
  std::vector<ResourceKey> todo;
  for (const auto& k : graph.nodes()) {
    if (stepOf(k.kind)) todo.push_back(k);
  }
  std::set<ResourceKey> seen;
  while (!todo.empty()) {
    ResourceKey k = todo.back();
    todo.pop_back();
    for (const auto& d : graph.dependents(k)) {
      if (d.kind != Kind::container || !seen.insert(d).second) continue;
      deferred_.insert(d);
      todo.push_back(d);
    }
  }
  for (const auto& k : deferred_) {
    if (!excluded.count(k)) pending_.insert(k);
  }
}

std::optional<std::string> Phases::blockedBy(const ResourceKey& key) const {
  for (const auto& d : graph_.dependencies(key)) {
    if (auto f = failed_.find(d); f != failed_.end()) {
      return "blocked: " + d.str() + " failed: " + f->second;
    }
    if (auto b = blocked_.find(d); b != blocked_.end()) return "blocked: " + d.str() + " is blocked";
  }
  return std::nullopt;
}

// Every dependency done: a container run (or left out of this converge), a
// step's resource whose step has run.
bool Phases::ready(const ResourceKey& key) const {
  for (const auto& d : graph_.dependencies(key)) {
    if (d.kind == Kind::container && (pending_.count(d) || runningContainers_.count(d))) {
      return false;
    }
    if (auto s = stepOf(d.kind); s && (pendingSteps_.count(*s) || runningSteps_.count(*s))) {
      return false;
    }
  }
  return true;
}

// A step waits for the containers its resources depend on (their hosts,
// what their credentials come from) and for the other steps they use.
bool Phases::stepReady(Step step) const {
  for (const auto& k : graph_.nodes()) {
    if (stepOf(k.kind) != step) continue;
    for (const auto& d : graph_.dependencies(k)) {
      if (d.kind == Kind::container && (pending_.count(d) || runningContainers_.count(d))) {
        return false;
      }
      auto s = stepOf(d.kind);
      if (s && *s != step && (pendingSteps_.count(*s) || runningSteps_.count(*s))) return false;
    }
  }
  return true;
}

std::vector<Phase> Phases::start() {
  std::vector<Phase> out;
  if (!started_) {
    started_ = true;
    Phase p;
    p.first = true;
    for (const auto& k : graph_.nodes()) {
      if (k.kind == Kind::container && !deferred_.count(k)) p.containers.insert(k);
    }
    runningContainers_ = p.containers;
    passRunning_ = true;
    out.push_back(std::move(p));
    return out;
  }
  // What waits for a failure will never run: blocked, which may block more.
  bool more = true;
  while (more) {
    more = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (auto why = blockedBy(*it); why && ready(*it)) {
        blocked_.emplace(*it, *why);
        it = pending_.erase(it);
        more = true;
      } else {
        ++it;
      }
    }
  }
  if (!passRunning_) {
    Phase p;
    for (const auto& k : pending_) {
      if (ready(k)) p.containers.insert(k);
    }
    if (!p.containers.empty()) {
      for (const auto& k : p.containers) pending_.erase(k);
      runningContainers_ = p.containers;
      passRunning_ = true;
      out.push_back(std::move(p));
    }
  }
  std::vector<Step> steps;
  for (Step s : pendingSteps_) {
    if (stepReady(s)) steps.push_back(s);
  }
  for (Step s : steps) {
    pendingSteps_.erase(s);
    runningSteps_.insert(s);
    Phase p;
    p.step = s;
    out.push_back(std::move(p));
  }
  if (!out.empty() || running() > 0) return out;
  // Only steps whose hosts wait for another step, in a ring through
  // several instances: run the first anyway (what is not there yet reports
  // itself); nothing is left waiting forever.
  if (!pendingSteps_.empty()) {
    Phase p;
    p.step = *pendingSteps_.begin();
    pendingSteps_.erase(pendingSteps_.begin());
    runningSteps_.insert(*p.step);
    out.push_back(std::move(p));
    return out;
  }
  // Containers that wait for a container that waits for them cannot be
  // here (the loader refuses cycles); block what is left, to be safe.
  for (const auto& k : pending_) blocked_.emplace(k, "blocked: its dependencies never ran");
  pending_.clear();
  return out;
}

void Phases::finish(const Phase& phase) {
  if (phase.step) {
    runningSteps_.erase(*phase.step);
    return;
  }
  runningContainers_.clear();
  passRunning_ = false;
}

std::optional<Phase> Phases::next() {
  if (current_) {
    finish(*current_);
    current_.reset();
  }
  if (queued_.empty()) {
    // Those started together run in turn: each counts as running until
    // handed out and asked past.
    queued_ = start();
    if (queued_.empty()) return std::nullopt;
  }
  current_ = std::move(queued_.front());
  queued_.erase(queued_.begin());
  return current_;
}

void Phases::fail(const ResourceKey& key, std::string why) { failed_[key] = std::move(why); }

}  // namespace foundationd::config
