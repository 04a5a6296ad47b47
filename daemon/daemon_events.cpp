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
// they coalesce into cheap no-op reconciles.
bool isDrift(const std::string& action) {
  static const char* kActions[] = {"die", "destroy", "stop", "kill", "oom", "pause", "rename",
                                   "update", "health_status: unhealthy"};
  for (const char* a : kActions) {
    if (action == a) return true;
  }
  return false;
}

}  // namespace

asio::awaitable<void> Daemon::watchDockerEvents() {
  std::chrono::milliseconds backoff{500};
  bool reconnect = false;
  while (!stopping_) {
    docker::LabelFilter filter;
    filter[docker::kLabelManaged] = "true";
    if (reconnect) scheduler_->triggerAll("docker events reconnected");
    auto st = co_await docker_.events(filter, [this](const docker::DockerEvent& e) {
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
    log::warn("docker.events_lost", {{"error", st ? std::string("stream ended") : st.error().message},
                                     {"retry_in_ms", std::to_string(backoff.count())}});
    co_await sleepFor(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(30000));
    reconnect = true;
    if (st) backoff = std::chrono::milliseconds(500);
  }
}

}  // namespace foundationd::daemon
