#include "controllers/docker/docker_apply.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/async.hpp"
#include "controllers/docker/container_config.hpp"

namespace foundationd::docker {
namespace {

using config::Kind;
using config::ResourceKey;
using Clock = std::chrono::steady_clock;

std::string fmtMs(std::chrono::milliseconds d) {
  if (d.count() < 1000) return std::to_string(d.count()) + "ms";
  auto tenths = d.count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

// Shared by every node coroutine of one apply. Lives until all are done.
struct Run {
  DockerApi& api;
  const config::Spec& spec;
  const Plan& plan;
  const SecretResolver& secrets;
  const ApplyOptions& options;
  const ApplyObserver& observer;
  Limiter limiter;

  struct Node {
    std::unique_ptr<Event> done;
    bool ok = true;
    bool changed = false;     // acted on in this apply
    std::string failure;      // why !ok
  };
  std::map<ResourceKey, Node> nodes;
  std::map<std::string, const ContainerSummary*> liveContainers;
  std::set<ResourceKey> preRemoved;  // containers removed in phase 1

  struct ImageCheck {
    std::unique_ptr<Event> done;
    Status status;
  };
  std::map<std::string, ImageCheck> images;

  ApplyReport report;

  Run(DockerApi& a, const config::Spec& s, const Plan& p, const SecretResolver& sec,
      const ApplyOptions& o, const ApplyObserver& obs, boost::asio::any_io_executor ex)
      : api(a), spec(s), plan(p), secrets(sec), options(o), observer(obs),
        limiter(ex, o.maxConcurrent) {}

  void record(const Change& change, bool ok, std::string message, Clock::time_point started) {
    Outcome o{change.key, change.action, ok, std::move(message),
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started)};
    if (observer.finished) observer.finished(o);
    report.outcomes.push_back(std::move(o));
  }
  void begin(const Change& change) {
    if (observer.started) observer.started(change);
  }

  std::chrono::seconds stopTimeoutOf(const std::string& name) const {
    auto it = spec.containers.find(name);
    if (it != spec.containers.end() && it->second.stopTimeout) {
      return std::chrono::duration_cast<std::chrono::seconds>(*it->second.stopTimeout);
    }
    return options.defaultStopTimeout;
  }

  // Stops (gracefully, within the stop timeout) and removes a container.
  Task<Status> stopAndRemove(const std::string& id, const std::string& name) {
    auto hold = co_await limiter.hold();
    auto st = co_await api.stopContainer(id, stopTimeoutOf(name));
    if (!st && st.error().code != ErrorCode::not_found) co_return st;
    auto rm = co_await api.removeContainer(id, /*force=*/true);
    if (!rm && rm.error().code != ErrorCode::not_found) co_return rm;
    co_return Status::success();
  }

  // Makes sure `image` is present, pulling it once per apply if absent.
  Task<Status> ensureImage(const std::string& image) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto it = images.find(image);
    if (it != images.end()) {
      co_await it->second.done->wait();
      co_return it->second.status;
    }
    auto& check = images[image];
    check.done = std::make_unique<Event>(ex);
    Status status;
    {
      auto hold = co_await limiter.hold();
      auto present = co_await api.imagePresent(image);
      if (!present) {
        status = present.error();
      } else if (!present.value()) {
        auto pulled = co_await api.pullImage(image);
        if (!pulled) status = pulled.error();
      }
    }
    check.status = status;
    check.done->set();
    co_return status;
  }

  // Waits until container `dep` meets `cond`. `depChanged`: it was acted on
  // in this apply, so what observe() saw of it is stale.
  Task<Status> waitFor(const config::Dependency& dep, bool depChanged) {
    auto live = liveContainers.find(dep.container);
    if (!depChanged && live != liveContainers.end()) {
      const auto& s = *live->second;
      if (s.state == "running" &&
          (dep.condition == config::DependCondition::started || s.health() == "healthy")) {
        co_return Status::success();
      }
    }
    const auto deadline = Clock::now() + options.conditionTimeout;
    std::string last = "unknown";
    std::string lastOutput;
    while (true) {
      auto inspect = co_await api.inspectContainer(dep.container);
      if (inspect) {
        const auto& i = inspect.value();
        if (!i.running && (i.state == "exited" || i.state == "dead")) {
          co_return Error::make(ErrorCode::unavailable,
                                "dependency " + dep.container + " is " + i.state +
                                    " (exit code " + std::to_string(i.exitCode) + ")");
        }
        if (i.running && dep.condition == config::DependCondition::started) {
          co_return Status::success();
        }
        if (i.running && i.health == "healthy") co_return Status::success();
        last = i.running ? (i.health.empty() ? "running, no health status" : i.health) : i.state;
        lastOutput = i.lastHealthOutput;
      } else if (inspect.error().code != ErrorCode::not_found) {
        co_return inspect.error();
      }
      if (Clock::now() >= deadline) {
        std::string msg = "dependency " + dep.container + " did not become " +
                          config::toString(dep.condition) + " within " +
                          fmtMs(options.conditionTimeout) + " (last status: " + last + ")";
        if (!lastOutput.empty()) msg += "; last health probe said: " + lastOutput;
        co_return Error::make(ErrorCode::timeout, msg);
      }
      co_await sleepFor(options.pollInterval);
    }
  }

  Task<Status> createAndStart(const config::ContainerSpec& c, const Desired& desired) {
    auto body = containerCreateBody(c, spec.project, desired, secrets, options.secretsDir,
                                    options.filesDir);
    if (!body) co_return body.error();
    auto hold = co_await limiter.hold();
    auto id = co_await api.createContainer(c.name, body.value());
    if (!id) {
      if (id.error().code == ErrorCode::conflict) {
        co_return Error::make(ErrorCode::conflict,
                              "a container named \"" + c.name +
                                  "\" already exists and is not managed by project \"" +
                                  spec.project + "\"; remove or rename it (" +
                                  id.error().message + ")");
      }
      co_return id.error();
    }
    for (const auto& extra : extraNetworks(c)) {
      auto st = co_await api.connectNetwork(extra.network, id.value(), extra.aliases);
      if (!st) co_return st;
    }
    co_return co_await api.startContainer(id.value());
  }

  Task<Status> applyContainer(const Change& change) {
    const auto& c = spec.containers.at(change.key.name);
    Desired desired = desiredContainer(c, secrets);
    if (change.action == Action::create || change.action == Action::recreate) {
      // The image first: never take a running container down for an image
      // that cannot be had.
      auto img = co_await ensureImage(c.image);
      if (!img) co_return img;
    }
    for (const auto& dep : c.dependsOn) {
      const auto& node = nodes.at({Kind::container, dep.container});
      auto st = co_await waitFor(dep, node.changed);
      if (!st) co_return st;
    }
    switch (change.action) {
      case Action::create:
        co_return co_await createAndStart(c, desired);
      case Action::recreate: {
        if (!preRemoved.count(change.key)) {
          auto st = co_await stopAndRemove(change.id, c.name);
          if (!st) co_return st;
        }
        co_return co_await createAndStart(c, desired);
      }
      case Action::start: {
        auto hold = co_await limiter.hold();
        co_return co_await api.startContainer(change.id);
      }
      default:
        co_return Status::success();
    }
  }

  Task<Status> applyNetwork(const Change& change) {
    const auto& n = spec.networks.at(change.key.name);
    auto hold = co_await limiter.hold();
    auto id = co_await api.createNetwork(networkCreateBody(n, spec.project, desiredNetwork(n)));
    if (!id) co_return id.error();
    co_return Status::success();
  }

  Task<Status> applyVolume(const Change& change) {
    const auto& v = spec.volumes.at(change.key.name);
    auto hold = co_await limiter.hold();
    co_return co_await api.createVolume(volumeCreateBody(v, spec.project, desiredVolume(v)));
  }

  Task<void> runNode(ResourceKey key, const config::Graph& graph) {
    auto& node = nodes.at(key);
    const Change* change = plan.find(key);
    std::string blockedBy;
    for (const auto& dep : graph.dependencies(key)) {
      auto it = nodes.find(dep);
      if (it == nodes.end()) continue;  // not a Docker resource (credentials, ...)
      co_await it->second.done->wait();
      if (!it->second.ok && blockedBy.empty()) blockedBy = dep.str();
    }
    if (change == nullptr || change->action == Action::orphan || change->action == Action::remove) {
      if (!blockedBy.empty()) node.ok = false, node.failure = "blocked by " + blockedBy;
      node.done->set();
      co_return;
    }
    const auto started = Clock::now();
    begin(*change);
    if (!blockedBy.empty()) {
      node.ok = false;
      node.failure = "blocked: " + blockedBy + " failed";
    } else if (change->action == Action::conflict) {
      node.ok = false;
      node.failure = change->reason;
    } else {
      Status st;
      try {
        if (key.kind == Kind::network) st = co_await applyNetwork(*change);
        else if (key.kind == Kind::volume) st = co_await applyVolume(*change);
        else st = co_await applyContainer(*change);
      } catch (const std::exception& e) {
        st = Error::make(ErrorCode::internal, std::string("unexpected error: ") + e.what());
      }
      node.changed = true;
      if (!st) {
        node.ok = false;
        node.failure = st.error().message;
      }
    }
    record(*change, node.ok, node.ok ? std::string(pastTense(change->action)) : node.failure,
           started);
    node.done->set();
  }
};

}  // namespace

bool ApplyReport::ok() const {
  for (const auto& o : outcomes) {
    if (!o.ok) return false;
  }
  return true;
}

Task<ApplyReport> apply(DockerApi& api, const config::Spec& spec, const Plan& plan,
                        const Observed& observed, const SecretResolver& secrets,
                        const ApplyOptions& options, const ApplyObserver& observer) {
  auto ex = co_await boost::asio::this_coro::executor;
  Run run(api, spec, plan, secrets, options, observer, ex);
  for (const auto& c : observed.containers) run.liveContainers.emplace(c.name, &c);

  // Phase 1: removals that must precede creation. Pruned containers; and the
  // containers on a network that is recreated, then that network itself.
  for (const auto& change : plan.changes) {
    if (change.key.kind != Kind::container || change.action != Action::remove) continue;
    auto started = Clock::now();
    run.begin(change);
    auto st = co_await run.stopAndRemove(change.id, change.key.name);
    run.record(change, st.ok(), st ? "removed" : st.error().message, started);
  }
  std::set<std::string> recreatedNetworks;
  for (const auto& change : plan.changes) {
    if (change.key.kind == Kind::network && change.action == Action::recreate) {
      recreatedNetworks.insert(change.key.name);
    }
  }
  std::set<std::string> failedNetworkRemovals;
  if (!recreatedNetworks.empty()) {
    for (const auto& change : plan.changes) {
      if (change.key.kind != Kind::container || change.action != Action::recreate) continue;
      const auto& c = spec.containers.at(change.key.name);
      bool onRecreated = false;
      for (const auto& n : c.networks) onRecreated |= recreatedNetworks.count(n.network) > 0;
      if (!onRecreated) continue;
      auto st = co_await run.stopAndRemove(change.id, change.key.name);
      if (st) run.preRemoved.insert(change.key);
    }
    for (const auto& name : recreatedNetworks) {
      auto st = co_await api.removeNetwork(name);
      if (!st && st.error().code != ErrorCode::not_found) failedNetworkRemovals.insert(name);
    }
  }

  // Phase 2: every network, volume and container of the spec as a node that
  // waits for its dependencies, acting only where the plan has a change.
  config::Graph graph = config::Graph::build(spec);
  for (const auto& key : graph.nodes()) {
    if (key.kind != Kind::network && key.kind != Kind::volume && key.kind != Kind::container) {
      continue;
    }
    auto& node = run.nodes[key];
    node.done = std::make_unique<Event>(ex);
    if (key.kind == Kind::network && failedNetworkRemovals.count(key.name)) {
      node.ok = false;
      node.failure = "could not remove the network to recreate it";
    }
  }
  Event allDone(ex);
  std::size_t pending = run.nodes.size();
  if (pending == 0) allDone.set();
  for (auto& [key, node] : run.nodes) {
    boost::asio::co_spawn(ex, run.runNode(key, graph), [&](std::exception_ptr) {
      if (--pending == 0) allDone.set();
    });
  }
  co_await allDone.wait();

  // Phase 3: pruned networks, now that no container of ours is on them.
  for (const auto& change : plan.changes) {
    if (change.key.kind != Kind::network || change.action != Action::remove) continue;
    auto started = Clock::now();
    run.begin(change);
    auto st = co_await api.removeNetwork(change.id);
    run.record(change, st.ok(), st ? "removed" : st.error().message, started);
  }
  co_return std::move(run.report);
}

}  // namespace foundationd::docker

namespace foundationd::docker {

Task<Status> refresh(DockerApi& api, const std::string& project,
                     const std::set<config::ResourceKey>& keys, Observed& observed) {
  for (const auto& key : keys) {
    if (key.kind != config::Kind::container) continue;
    auto it = std::find_if(observed.containers.begin(), observed.containers.end(),
                           [&](const ContainerSummary& c) { return c.name == key.name; });
    auto inspected = co_await api.inspectContainer(key.name);
    if (!inspected) {
      if (inspected.error().code != ErrorCode::not_found) co_return inspected.error();
      if (it != observed.containers.end()) observed.containers.erase(it);
      continue;
    }
    const auto& i = inspected.value();
    auto p = i.labels.find(kLabelProject);
    if (p == i.labels.end() || p->second != project) continue;  // not ours: create will say so
    ContainerSummary fresh;
    fresh.id = i.id;
    fresh.name = key.name;
    fresh.state = i.state;
    fresh.status = i.health.empty() ? "" : "(" + i.health + ")";
    fresh.labels = i.labels;
    if (it != observed.containers.end()) {
      fresh.image = it->image;
      *it = fresh;
    } else {
      observed.containers.push_back(fresh);
    }
  }
  co_return Status::success();
}

Plan restrict(const Plan& full, const Scope& scope) {
  Plan out;
  out.project = full.project;
  for (const auto& c : full.changes) {
    if (scope.includes(c.key)) out.changes.push_back(c);
  }
  return out;
}

Task<Result<ReconcileResult>> reconcile(DockerApi& api, const config::Spec& spec,
                                        const SecretResolver& secrets, const ApplyOptions& options,
                                        const ApplyObserver& observer, const Scope& scope) {
  ReconcileResult result;
  auto observed = co_await observe(api, spec.project);
  if (!observed) co_return std::move(observed).error();
  if (scope.only) {
    auto st = co_await refresh(api, spec.project, *scope.only, observed.value());
    if (!st) co_return st.error();
  }
  const Plan full = plan(spec, observed.value(), secrets);
  result.plan = restrict(full, scope);
  result.excluded.project = full.project;
  for (const auto& c : full.changes) {
    if (scope.exclude.count(c.key) && (!scope.only || scope.only->count(c.key))) {
      result.excluded.changes.push_back(c);
    }
  }
  if (!result.plan.hasChanges() && !result.plan.hasConflicts()) {
    result.converged = true;
    co_return result;
  }
  result.report = co_await apply(api, spec, result.plan, observed.value(), secrets, options,
                                 observer);
  auto after = co_await observe(api, spec.project);
  if (!after) co_return std::move(after).error();
  result.remaining = restrict(plan(spec, after.value(), secrets), scope);
  result.converged = result.report.ok() && !result.remaining.hasChanges() &&
                     !result.remaining.hasConflicts();
  co_return result;
}

}  // namespace foundationd::docker
