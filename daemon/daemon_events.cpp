// Event-driven drift repair: the Docker events stream, label-filtered to what
// foundationd manages. A managed container that dies, is removed, or is
// changed behind foundationd's back triggers a reconcile of that container
// only (no polling). When the Engine goes away the stream ends; the watcher
// reconnects with backoff and resyncs everything once it is back.
#include "common/async.hpp"
#include "controllers/docker/container_config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// Container actions that can mean drift. Our own create/start also arrive;
// they coalesce into cheap no-op reconciles. Not `kill`: it is sent before
// the container stops (its `die` follows when the signal ends it; a signal
// it handles changes nothing), and a reconcile started on it would see the
// container still running and hold the `die` or `destroy` that matters for
// the key's minimum interval (a second, in `docker rm -f`'s repair).
bool isDrift(const std::string& action) {
  static const char* kActions[] = {"die",    "destroy", "stop",
                                   "oom",    "pause",   "rename",
                                   "update", "health_status: unhealthy"};
  for (const char* a : kActions) {
    if (action == a) return true;
  }
  return false;
}

}  // namespace

asio::awaitable<void> Daemon::watchDockerEvents() {
  using std::chrono::milliseconds;
  // Waits between attempts while the Engine is away: 0.5 s, 1 s, 2 s, ... 30 s.
  const milliseconds initial{500};
  const milliseconds cap{30000};
  // A subscription that lived this long was healthy: the next loss starts
  // the backoff over. One that ends sooner keeps growing it (an Engine that
  // answers pings but drops the stream must not be hammered).
  const auto healthy = std::chrono::seconds(10);
  milliseconds backoff = initial;
  bool lost = false;  // the stream ended; the Engine is not known to be back
  docker::LabelFilter managed;
  managed[docker::kLabelManaged] = "true";
  while (!stopping_) {
    if (lost) {
      co_await sleepFor(backoff);
      if (stopping_) break;
      backoff = std::min(backoff * 2, cap);
      // Is the Engine back? One cheap request before subscribing again.
      auto probe = co_await docker_.listNetworks(managed);
      if (stopping_) break;
      if (!probe) {
        log::warn("docker.unreachable", {{"error", probe.error().message},
                                         {"retry_in_ms", std::to_string(backoff.count())}});
        // Say so in the status: the state of the Engine's resources is not
        // known any more (blocked ones stay blocked: that is the lock's).
        for (auto& [key, r] : resources_) {
          if (key.kind != config::Kind::container && key.kind != config::Kind::network &&
              key.kind != config::Kind::volume) {
            continue;
          }
          if (r.status != api::ResourceStatus::blocked) {
            setResource(key, api::ResourceStatus::pending,
                        "Docker unreachable; waiting for the Engine to come back");
          }
        }
        publishStatus();
        continue;
      }
      log::info("docker.events_reconnected");
      // What happened while the stream was down was not seen: resync.
      scheduler_->triggerAll("docker events reconnected");
      lost = false;
    }
    const auto subscribed = std::chrono::steady_clock::now();
    auto st = co_await docker_.events(managed, [this](const docker::DockerEvent& e) {
      if (stopping_) return false;
      if (!spec_) return true;
      if (e.type == "network") {
        // Network events carry no labels: match by name against the spec.
        if ((e.action == "destroy" || e.action == "disconnect") && spec_->networks.count(e.name)) {
          scheduler_->trigger({config::Kind::network, e.name}, "docker event: network " + e.action);
        }
        return true;
      }
      auto project = e.attributes.find(docker::kLabelProject);
      if (project == e.attributes.end() || project->second != spec_->project) return true;
      if (e.type == "container" && isDrift(e.action) && !e.name.empty()) {
        log::info("docker.event", {{"container", e.name}, {"action", e.action}});
        scheduler_->trigger({config::Kind::container, e.name}, "docker event: " + e.action);
      }
      return true;
    });
    if (stopping_) break;
    if (std::chrono::steady_clock::now() - subscribed >= healthy) backoff = initial;
    log::warn("docker.events_lost",
              {{"error", st ? std::string("stream ended") : st.error().message},
               {"retry_in_ms", std::to_string(backoff.count())}});
    lost = true;
    // A reconcile now reports in the status whether the Engine is reachable
    // (last_reconcile "docker unreachable", /readyz 503).
    scheduler_->triggerAll("docker events lost");
  }
}

}  // namespace foundationd::daemon
