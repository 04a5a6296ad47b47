#include "controllers/docker/docker_apply.hpp"

#include <algorithm>
#include <filesystem>
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

// A start refused because containerd still holds a task (or container)
// of that ID, left over from before the Engine restarted: the Engine answers
// 500 "task ID: already exists" (or "container ID: already exists").
bool staleTask(const Error& e) {
  return e.code != ErrorCode::not_found && e.code != ErrorCode::conflict &&
         e.message.find("already exists") != std::string::npos;
}

// stop_timeout_ms of the canonical config in a container's label, in seconds.
std::optional<std::chrono::seconds> recordedStopTimeout(const Labels& labels) {
  auto it = labels.find(kLabelConfig);
  if (it == labels.end()) return std::nullopt;
  auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto ms = j.find("stop_timeout_ms");
  if (ms == j.end() || !ms->is_number_integer()) return std::nullopt;
  return std::chrono::seconds(ms->get<std::int64_t>() / 1000);
}

// The depends_on targets recorded in a container's label.
std::set<std::string> recordedDependsOn(const Labels& labels) {
  std::set<std::string> out;
  auto it = labels.find(kLabelDependsOn);
  if (it == labels.end()) return out;
  std::size_t start = 0;
  const std::string& v = it->second;
  while (start <= v.size()) {
    auto comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    if (comma > start) out.insert(v.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
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

  // The spec's stop_timeout; for a container no longer in the spec (pruned),
  // the one recorded in its config label when it was created.
  std::chrono::seconds stopTimeoutOf(const std::string& name) const {
    auto it = spec.containers.find(name);
    if (it != spec.containers.end()) {
      if (it->second.stopTimeout) {
        return std::chrono::duration_cast<std::chrono::seconds>(*it->second.stopTimeout);
      }
      return options.defaultStopTimeout;
    }
    auto live = liveContainers.find(name);
    if (live != liveContainers.end()) {
      if (auto recorded = recordedStopTimeout(live->second->labels)) return *recorded;
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

  // Waits until container `dep` meets its condition, for `c` (the dependent).
  // `depChanged`: it was acted on in this apply, so what observe() saw of it
  // is stale. Fails at once when the condition can no longer be met: the
  // dependency exited (a job: exited non-zero), or its healthcheck failed
  // `retries` times in a row (Docker's FailingStreak) while a healthy one is
  // awaited. Says every progressInterval what it waits for.
  Task<Status> waitFor(const config::ContainerSpec& c, const config::Dependency& dep,
                       bool depChanged) {
    using config::DependCondition;
    auto live = liveContainers.find(dep.container);
    if (!depChanged && live != liveContainers.end()) {
      const auto& s = *live->second;
      if (dep.condition == DependCondition::completed) {
        auto code = exitCodeOf(s);
        if (code && *code == 0) co_return Status::success();
      } else if (s.state == "running" &&
                 (dep.condition == DependCondition::started || s.health() == "healthy")) {
        co_return Status::success();
      }
    }
    const auto timeout = c.dependsTimeout
                             ? std::chrono::duration_cast<std::chrono::milliseconds>(*c.dependsTimeout)
                             : options.conditionTimeout;
    const auto begun = Clock::now();
    const auto deadline = begun + timeout;
    auto nextReport = begun + options.progressInterval;
    std::string last = "unknown";
    std::string lastOutput;
    const std::string want = config::toString(dep.condition);
    while (true) {
      auto inspect = co_await api.inspectContainer(dep.container);
      if (inspect) {
        const auto& i = inspect.value();
        if (!i.running && (i.state == "exited" || i.state == "dead")) {
          if (dep.condition == DependCondition::completed) {
            if (i.state == "exited" && i.exitCode == 0) co_return Status::success();
            co_return Error::make(ErrorCode::unavailable,
                                  "dependency " + dep.container + " (a job) failed: " + i.state +
                                      " with exit code " + std::to_string(i.exitCode));
          }
          co_return Error::make(ErrorCode::unavailable,
                                "dependency " + dep.container + " is " + i.state +
                                    " (exit code " + std::to_string(i.exitCode) + ")");
        }
        if (i.running && dep.condition == DependCondition::started) {
          co_return Status::success();
        }
        if (i.running && dep.condition == DependCondition::healthy) {
          if (i.health == "healthy") co_return Status::success();
          if (i.health == "unhealthy") {
            const auto [streak, retries] = failingStreak(i);
            if (streak >= retries) {
              std::string msg = "dependency " + dep.container +
                                " is unhealthy: its healthcheck failed " +
                                std::to_string(streak) + " time(s) in a row (retries = " +
                                std::to_string(retries) + ")";
              if (!i.lastHealthOutput.empty()) {
                msg += "; last health probe said: " + i.lastHealthOutput;
              }
              co_return Error::make(ErrorCode::unavailable, msg);
            }
          }
        }
        last = i.running ? (i.health.empty() ? "running, no health status" : i.health) : i.state;
        lastOutput = i.lastHealthOutput;
      } else if (inspect.error().code != ErrorCode::not_found) {
        co_return inspect.error();
      } else {
        last = "does not exist";
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        std::string msg = "dependency " + dep.container + " did not become " + want +
                          " within " + fmtMs(timeout) + " (last status: " + last + ")";
        if (!lastOutput.empty()) msg += "; last health probe said: " + lastOutput;
        co_return Error::make(ErrorCode::timeout, msg);
      }
      if (now >= nextReport) {
        nextReport = now + options.progressInterval;
        if (observer.waiting) {
          observer.waiting({config::Kind::container, c.name},
                           "waiting for " + dep.container + " to be " + want + " (status: " +
                               last + "; " +
                               fmtMs(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   now - begun)) +
                               " of " + fmtMs(timeout) + ")");
        }
      }
      co_await sleepFor(options.pollInterval);
    }
  }

  // Docker's health FailingStreak and the container's retries (0 or unset
  // means Docker's default, 3).
  static std::pair<int, int> failingStreak(const ContainerInspect& i) {
    int streak = 0;
    int retries = 3;
    const auto& raw = i.raw;
    if (raw.is_object()) {
      auto st = raw.find("State");
      if (st != raw.end() && st->is_object()) {
        auto h = st->find("Health");
        if (h != st->end() && h->is_object()) {
          auto f = h->find("FailingStreak");
          if (f != h->end() && f->is_number_integer()) streak = f->get<int>();
        }
      }
      auto cfg = raw.find("Config");
      if (cfg != raw.end() && cfg->is_object()) {
        auto hc = cfg->find("Healthcheck");
        if (hc != cfg->end() && hc->is_object()) {
          auto r = hc->find("Retries");
          if (r != hc->end() && r->is_number_integer() && r->get<int>() > 0) retries = r->get<int>();
        }
      }
    }
    return {streak, retries};
  }

  Task<Status> createAndStart(const config::ContainerSpec& c, const Desired& desired) {
    auto body = containerCreateBody(c, spec.project, desired, secrets, options.secretsDir,
                                    options.filesDir);
    if (!body) co_return body.error();
    auto hold = co_await limiter.hold();
    auto id = co_await api.createContainer(c.name, body.value());
    // The name is taken by a container the observation did not list. Docker
    // may still be finishing the requests of a foundationd killed mid-call
    // (an interrupted apply): a create it completes after our listing (the
    // container is ours: it carries our project's label), or one it rolls back
    // (gone when we look). Ours is removed and created afresh, as a recreate
    // would (containers hold no data: volumes are never touched); anyone
    // else's is left alone and reported.
    for (int attempt = 0; !id && id.error().code == ErrorCode::conflict && attempt < 3;
         ++attempt) {
      auto other = co_await api.inspectContainer(c.name);
      if (other) {
        const auto label = other->labels.find(kLabelProject);
        if (label == other->labels.end() || label->second != spec.project) {
          co_return Error::make(ErrorCode::conflict,
                                "a container named \"" + c.name +
                                    "\" already exists and is not managed by project \"" +
                                    spec.project + "\"; remove or rename it (" +
                                    id.error().message + ")");
        }
        auto st = co_await api.removeContainer(other->id, true);
        if (!st && st.error().code != ErrorCode::not_found) co_return st;
      } else if (other.error().code != ErrorCode::not_found) {
        co_return other.error();
      }
      id = co_await api.createContainer(c.name, body.value());
    }
    if (!id) co_return id.error();
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
      auto st = co_await waitFor(c, dep, node.changed);
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
        Status st;
        {
          auto hold = co_await limiter.hold();
          st = co_await api.startContainer(change.id);
        }
        // Gone since the observation (a create Docker rolled back after the
        // client that asked for it was killed): created afresh.
        if (!st && st.error().code == ErrorCode::not_found) {
          co_return co_await createAndStart(c, desired);
        }
        // The Engine restarted and containerd still holds the container's old
        // task ("task ID: already exists", moby#38346's kin): every start
        // fails the same way until the container is removed. Ours, and holding
        // no data (volumes are never touched): removed and created afresh.
        if (!st && staleTask(st.error())) {
          auto rm = co_await stopAndRemove(change.id, c.name);
          if (!rm) co_return rm;
          co_return co_await createAndStart(c, desired);
        }
        co_return st;
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

// Removes a pruned container's secret files (dir/<name>/), once the
// container that mounted them is gone.
void removeSecretFilesOf(const std::string& dir, const std::string& name) {
  if (dir.empty() || name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string::npos) {
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(dir) / name, ec);
}

// Pruned containers, in waves: a container is removed once every pruned
// container that depended on it (its recorded depends-on label) is gone;
// the containers of one wave are removed concurrently. Each is stopped
// within its recorded stop_timeout, and its secret files are deleted.
Task<void> pruneContainers(Run& run, const Plan& plan, boost::asio::any_io_executor ex) {
  std::map<std::string, const Change*> pending;
  for (const auto& change : plan.changes) {
    if (change.key.kind == Kind::container && change.action == Action::remove) {
      pending.emplace(change.key.name, &change);
    }
  }
  std::map<std::string, std::set<std::string>> dependsOn;  // among the pruned only
  for (const auto& [name, change] : pending) {
    auto live = run.liveContainers.find(name);
    if (live == run.liveContainers.end()) continue;
    for (const auto& d : recordedDependsOn(live->second->labels)) {
      if (pending.count(d) && d != name) dependsOn[name].insert(d);
    }
  }
  while (!pending.empty()) {
    // Those no remaining pruned container depends on.
    std::vector<const Change*> wave;
    for (const auto& [name, change] : pending) {
      bool needed = false;
      for (const auto& [other, deps] : dependsOn) {
        if (pending.count(other) && deps.count(name)) needed = true;
      }
      if (!needed) wave.push_back(change);
    }
    if (wave.empty()) {  // a cycle in the recorded labels: remove the rest at once
      for (const auto& [_, change] : pending) wave.push_back(change);
    }
    Event done(ex);
    std::size_t left = wave.size();
    for (const Change* change : wave) {
      auto one = [](Run& r, const Change* c) -> Task<void> {
        auto started = Clock::now();
        r.begin(*c);
        auto st = co_await r.stopAndRemove(c->id, c->key.name);
        if (st) removeSecretFilesOf(r.options.secretsDir, c->key.name);
        r.record(*c, st.ok(), st ? "removed" : st.error().message, started);
      };
      boost::asio::co_spawn(ex, one(run, change), [&](std::exception_ptr) {
        if (--left == 0) done.set();
      });
    }
    co_await done.wait();
    for (const Change* change : wave) pending.erase(change->key.name);
  }
}

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
  co_await pruneContainers(run, plan, ex);
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
