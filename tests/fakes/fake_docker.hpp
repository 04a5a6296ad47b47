// An in-memory Docker Engine behind the DockerApi interface, for unit tests
// of the Docker controller (TESTING.md: fakes at the client boundary only).
// Integration tests use the real Engine instead.
//
// Models what the controller relies on: names unique per kind (409 on a
// duplicate), 404 for missing objects, label filters, container states, a
// healthcheck that reports healthy `healthyAfterPolls` inspections after
// start, images present or pullable. Fault injection: failNext[method].
//
// Events: every mutation emits what the Engine would (container create,
// start, die+stop, kill+die+destroy on a forced removal, destroy; exec_create,
// exec_start, exec_die; network create/connect/destroy; volume create) to
// every events() subscriber, filtered as the real client does (labels select
// container events; network and volume events always pass). Tests add their
// own with emit() (crash() makes a running container die behind our back)
// and end every subscription with endEvents(). A subscriber waits on an
// Event (common/async.hpp), so events are delivered when the io_context runs;
// end subscriptions before destroying the fake.
//
// Exec: execHandler scripts the result from the call (container, argv,
// options with stdin); unset, every exec exits 0 with no output. Like the
// Engine: 404 for a missing container, 409 when it is not running.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/this_coro.hpp>

#include "common/async.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/docker_stream.hpp"

namespace foundationd::testing {

using docker::ContainerInspect;
using docker::ContainerSummary;
using docker::DockerEvent;
using docker::ExecOptions;
using docker::ExecResult;
using docker::LabelFilter;
using docker::NetworkSummary;
using docker::Task;
using docker::VolumeSummary;

class FakeDocker final : public docker::DockerApi {
 public:
  struct Container {
    std::string id, name, image, state = "created";
    docker::Labels labels;
    nlohmann::json body;
    bool hasHealthcheck = false;
    int inspectionsSinceStart = 0;
    std::vector<std::string> networks;
    int exitCode = 0;  // of the last exit
    // State "removing" (`docker rm -f` under way): gone after this many
    // more inspections; < 0: stays.
    int removedAfterInspections = -1;
  };

  std::map<std::string, Container> containers;  // by name
  std::map<std::string, NetworkSummary> networks;
  std::map<std::string, VolumeSummary> volumes;
  std::set<std::string> images;          // present locally
  std::set<std::string> pullable;        // a registry would serve these
  int healthyAfterPolls = 2;             // inspections after start until healthy; <0: never
  std::map<std::string, Error> failNext; // method name -> error returned once
  std::vector<std::string> log;          // "create web", "start web", "exec web psql", ...
  std::map<std::string, std::chrono::seconds> stopTimeouts;  // container -> last stop's timeout
  std::map<std::string, std::string> logs;  // container -> its output (containerLogs)
  std::uint64_t calls = 0;
  // What Docker does after an observation when it is still finishing the
  // requests of a client killed mid-call (an interrupted apply): containers
  // that appear just after the next listContainers answer (a create it
  // completed), and names that disappear then (a create it rolled back).
  std::vector<Container> appearAfterList;
  std::set<std::string> vanishAfterList;

  struct ExecCall {
    std::string container;  // the container's name
    std::vector<std::string> cmd;
    ExecOptions options;  // stdinData included, for assertions
  };
  using ExecHandler = std::function<Result<ExecResult>(const ExecCall&)>;
  ExecHandler execHandler;           // unset: exit 0, no output
  std::vector<ExecCall> execCalls;   // every exec that reached the handler
  std::vector<DockerEvent> emitted;  // every event emitted, in order

  std::uint64_t requestCount() const noexcept override { return calls; }

  Task<Result<std::vector<ContainerSummary>>> listContainers(const LabelFilter& f) override {
    ++calls;
    if (auto e = fail("listContainers")) co_return *e;
    std::vector<ContainerSummary> out;
    for (const auto& [name, c] : containers) {
      if (!matches(c.labels, f)) continue;
      std::string status =
          c.state == "running" ? "Up 1 second" : "Exited (" + std::to_string(c.exitCode) + ")";
      if (c.state == "running" && c.hasHealthcheck) status += " (" + health(c, false) + ")";
      // The fake has image IDs only for images named by one ("sha256:...").
      const std::string imageId = c.image.rfind("sha256:", 0) == 0 ? c.image : "";
      out.push_back({c.id, name, c.image, c.state, status, c.labels, imageId});
    }
    for (auto& c : appearAfterList) containers[c.name] = std::move(c);
    appearAfterList.clear();
    for (const auto& name : vanishAfterList) containers.erase(name);
    vanishAfterList.clear();
    co_return out;
  }

  Task<Result<ContainerInspect>> inspectContainer(const std::string& idOrName) override {
    ++calls;
    if (auto e = fail("inspectContainer")) co_return *e;
    Container* c = find(idOrName);
    if (c && c->state == "removing" && c->removedAfterInspections >= 0 &&
        c->removedAfterInspections-- == 0) {
      containers.erase(c->name);
      c = nullptr;
    }
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container: " + idOrName, 404);
    if (c->state == "running") ++c->inspectionsSinceStart;
    ContainerInspect i;
    i.id = c->id;
    i.name = c->name;
    i.state = c->state;
    i.running = c->state == "running";
    i.exitCode = c->exitCode;
    i.health = c->hasHealthcheck && i.running ? health(*c, true) : "";
    i.labels = c->labels;
    co_return i;
  }

  Task<Result<std::string>> createContainer(const std::string& name,
                                            const nlohmann::json& body) override {
    ++calls;
    if (auto e = fail("createContainer")) co_return *e;
    if (containers.count(name)) {
      co_return Error::make(ErrorCode::conflict, "Conflict. The container name is in use", 409);
    }
    if (!images.count(body.at("Image").get<std::string>())) {
      co_return Error::make(ErrorCode::not_found, "No such image", 404);
    }
    Container c;
    c.id = "id-" + name + "-" + std::to_string(++serial_);
    c.name = name;
    c.image = body.at("Image");
    c.body = body;
    c.hasHealthcheck = body.contains("Healthcheck");
    for (const auto& [k, v] : body.at("Labels").items()) c.labels[k] = v;
    if (body.contains("HostConfig") && body["HostConfig"].contains("NetworkMode")) {
      std::string net = body["HostConfig"]["NetworkMode"];
      if (!networks.count(net)) {
        co_return Error::make(ErrorCode::not_found, "network " + net + " not found", 404);
      }
      c.networks.push_back(net);
    }
    log.push_back("create " + name);
    containers[name] = c;
    emit(containerEvent(name, "create"));
    co_return c.id;
  }

  Task<Status> startContainer(const std::string& id) override {
    ++calls;
    if (auto e = fail("startContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("start " + c->name);
    const bool wasRunning = c->state == "running";
    c->state = "running";
    c->inspectionsSinceStart = 0;
    if (!wasRunning) emit(containerEvent(c->name, "start"));
    co_return Status::success();
  }

  Task<Status> stopContainer(const std::string& id, std::chrono::seconds timeout) override {
    ++calls;
    if (auto e = fail("stopContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("stop " + c->name);
    stopTimeouts[c->name] = timeout;
    if (c->state == "running") {
      c->state = "exited";
      c->exitCode = 0;
      emit(containerEvent(c->name, "kill", {{"signal", "15"}}));
      emit(containerEvent(c->name, "die", {{"exitCode", "0"}}));
      emit(containerEvent(c->name, "stop"));
    }
    co_return Status::success();
  }

  Task<Status> removeContainer(const std::string& id, bool) override {
    ++calls;
    if (auto e = fail("removeContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("remove " + c->name);
    if (c->state == "running") {
      emit(containerEvent(c->name, "kill", {{"signal", "9"}}));
      emit(containerEvent(c->name, "die", {{"exitCode", "137"}}));
    }
    DockerEvent destroyed = containerEvent(c->name, "destroy");
    containers.erase(c->name);
    emit(std::move(destroyed));
    co_return Status::success();
  }

  Task<Result<std::string>> containerLogs(const std::string& id, int lines) override {
    ++calls;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    (void)lines;
    co_return logs[c->name];
  }

  Task<Result<std::vector<NetworkSummary>>> listNetworks(const LabelFilter& f) override {
    ++calls;
    if (auto e = fail("listNetworks")) co_return *e;
    std::vector<NetworkSummary> out;
    for (const auto& [_, n] : networks) {
      if (matches(n.labels, f)) out.push_back(n);
    }
    co_return out;
  }

  Task<Result<std::string>> createNetwork(const nlohmann::json& body) override {
    ++calls;
    if (auto e = fail("createNetwork")) co_return *e;
    std::string name = body.at("Name");
    if (networks.count(name)) co_return Error::make(ErrorCode::conflict, "network exists", 409);
    NetworkSummary n{"net-" + name + "-" + std::to_string(++serial_), name,
                     body.value("Driver", "bridge"), {}};
    for (const auto& [k, v] : body.at("Labels").items()) n.labels[k] = v;
    networks[name] = n;
    log.push_back("create network " + name);
    emit(networkEvent(n, "create"));
    co_return n.id;
  }

  Task<Status> removeNetwork(const std::string& idOrName) override {
    ++calls;
    if (auto e = fail("removeNetwork")) co_return *e;
    for (auto it = networks.begin(); it != networks.end(); ++it) {
      if (it->first == idOrName || it->second.id == idOrName) {
        for (const auto& [_, c] : containers) {
          for (const auto& n : c.networks) {
            if (n == it->first) {
              co_return Error::make(ErrorCode::peer, "network has active endpoints", 403);
            }
          }
        }
        log.push_back("remove network " + it->first);
        DockerEvent destroyed = networkEvent(it->second, "destroy");
        networks.erase(it);
        emit(std::move(destroyed));
        co_return Status::success();
      }
    }
    co_return Error::make(ErrorCode::not_found, "No such network", 404);
  }

  Task<Status> connectNetwork(const std::string& network, const std::string& containerId,
                              const std::vector<std::string>&) override {
    ++calls;
    if (auto e = fail("connectNetwork")) co_return *e;
    Container* c = find(containerId);
    if (!c || !networks.count(network)) co_return Error::make(ErrorCode::not_found, "no", 404);
    c->networks.push_back(network);
    log.push_back("connect " + c->name + " " + network);
    DockerEvent connected = networkEvent(networks[network], "connect");
    connected.attributes["container"] = c->id;
    emit(std::move(connected));
    co_return Status::success();
  }

  Task<Result<std::vector<VolumeSummary>>> listVolumes(const LabelFilter& f) override {
    ++calls;
    if (auto e = fail("listVolumes")) co_return *e;
    std::vector<VolumeSummary> out;
    for (const auto& [_, v] : volumes) {
      if (matches(v.labels, f)) out.push_back(v);
    }
    co_return out;
  }

  Task<Status> createVolume(const nlohmann::json& body) override {
    ++calls;
    if (auto e = fail("createVolume")) co_return *e;
    std::string name = body.at("Name");
    if (!volumes.count(name)) {
      VolumeSummary v{name, body.value("Driver", "local"), {}};
      for (const auto& [k, val] : body.at("Labels").items()) v.labels[k] = val;
      volumes[name] = v;
      log.push_back("create volume " + name);
      DockerEvent created;
      created.type = "volume";
      created.action = "create";
      created.id = created.name = name;
      created.attributes = {{"driver", v.driver}};
      emit(std::move(created));
    }
    co_return Status::success();
  }

  Task<Result<bool>> imagePresent(const std::string& ref) override {
    ++calls;
    if (auto e = fail("imagePresent")) co_return *e;
    co_return images.count(ref) > 0;
  }

  Task<Status> pullImage(const std::string& ref) override {
    ++calls;
    if (auto e = fail("pullImage")) co_return *e;
    if (!pullable.count(ref)) {
      co_return Error::make(ErrorCode::not_found,
                            "image " + ref + " is not present locally and could not be pulled");
    }
    images.insert(ref);
    log.push_back("pull " + ref);
    co_return Status::success();
  }

  Task<Status> events(LabelFilter f, std::function<bool(const DockerEvent&)> onEvent) override {
    ++calls;
    if (auto e = fail("events")) co_return *e;
    auto sub = std::make_shared<Subscriber>();
    sub->filter = std::move(f);
    subscribers_.push_back(sub);
    const Unsubscribe leave{this, sub};
    const auto ex = co_await boost::asio::this_coro::executor;
    for (;;) {
      while (!sub->queue.empty()) {
        DockerEvent e = std::move(sub->queue.front());
        sub->queue.pop_front();
        if (!onEvent(e)) co_return Status::success();
      }
      if (sub->end) co_return *sub->end;
      Event wake(ex);
      sub->wake = &wake;
      co_await wake.wait();
      sub->wake = nullptr;
    }
  }

  Task<Result<ExecResult>> exec(const std::string& container, const std::vector<std::string>& cmd,
                                const ExecOptions& options) override {
    ++calls;
    if (auto e = fail("exec")) co_return *e;
    Container* c = find(container);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container: " + container, 404);
    if (c->state != "running") {
      co_return Error::make(ErrorCode::conflict, "Container " + c->id + " is not running", 409);
    }
    if (cmd.empty()) co_return Error::make(ErrorCode::invalid_argument, "empty command");
    log.push_back("exec " + c->name + " " + cmd.front());
    execCalls.push_back({c->name, cmd, options});
    const std::string execId = "exec-" + std::to_string(++serial_);
    std::string argv;
    for (const auto& a : cmd) argv += (argv.empty() ? "" : " ") + a;
    emit(containerEvent(c->name, "exec_create: " + argv, {{"execID", execId}}));
    emit(containerEvent(c->name, "exec_start: " + argv, {{"execID", execId}}));
    Result<ExecResult> r = execHandler ? execHandler(execCalls.back()) : ExecResult{0, "", ""};
    if (r.ok()) {
      if (r->stdoutText.size() + r->stderrText.size() > options.maxOutput) {
        co_return Error::make(ErrorCode::protocol, "exec " + cmd.front() + " in container " +
                                                       container + ": the output exceeded " +
                                                       std::to_string(options.maxOutput) +
                                                       " bytes");
      }
      emit(containerEvent(c->name, "exec_die",
                          {{"execID", execId}, {"exitCode", std::to_string(r->exitCode)}}));
    }
    co_return r;
  }

  // --- events, for tests ---

  // Delivers `e` to every subscriber whose filter it passes, and records it.
  void emit(DockerEvent e) {
    if (e.timeNano == 0) e.timeNano = ++eventClock_;
    emitted.push_back(e);
    for (const auto& sub : subscribers_) {
      if (sub->end || !docker::eventMatches(e, sub->filter)) continue;
      sub->queue.push_back(e);
      if (sub->wake) sub->wake->set();
    }
  }
  // Ends every current subscription once its queued events are delivered:
  // events() returns `reason` (default: unavailable, as when dockerd stops).
  void endEvents(Error reason = Error::make(ErrorCode::unavailable,
                                            "watch Engine events: the fake Engine went away")) {
    for (const auto& sub : subscribers_) {
      sub->end = reason;
      if (sub->wake) sub->wake->set();
    }
  }
  std::size_t eventSubscribers() const { return subscribers_.size(); }

  // A container event as the Engine writes it: labels, name and image as
  // attributes, plus `extra`.
  DockerEvent containerEvent(const std::string& name, const std::string& action,
                             const docker::Labels& extra = {}) const {
    DockerEvent e;
    e.type = "container";
    e.action = action;
    e.name = name;
    if (auto it = containers.find(name); it != containers.end()) {
      e.id = it->second.id;
      e.attributes = it->second.labels;
      e.attributes["image"] = it->second.image;
    }
    e.attributes["name"] = name;
    for (const auto& [k, v] : extra) e.attributes[k] = v;
    return e;
  }
  // A running container dies behind foundationd's back (crash, OOM, docker kill).
  void crash(const std::string& name, int exitCode = 137) {
    Container* c = find(name);
    if (!c || c->state != "running") return;
    c->state = "exited";
    c->exitCode = exitCode;
    emit(containerEvent(name, "die", {{"exitCode", std::to_string(exitCode)}}));
  }

 private:
  struct Subscriber {
    LabelFilter filter;
    std::deque<DockerEvent> queue;
    Event* wake = nullptr;  // set while the subscriber waits
    std::optional<Error> end;
  };
  struct Unsubscribe {
    FakeDocker* self;
    std::shared_ptr<Subscriber> sub;
    ~Unsubscribe() { std::erase(self->subscribers_, sub); }
  };
  static DockerEvent networkEvent(const NetworkSummary& n, const std::string& action) {
    DockerEvent e;
    e.type = "network";
    e.action = action;
    e.id = n.id;
    e.name = n.name;
    e.attributes = {{"name", n.name}, {"type", n.driver}};
    return e;
  }

  std::optional<Error> fail(const std::string& method) {
    auto it = failNext.find(method);
    if (it == failNext.end()) return std::nullopt;
    Error e = it->second;
    failNext.erase(it);
    return e;
  }
  static bool matches(const docker::Labels& labels, const LabelFilter& f) {
    for (const auto& [k, v] : f) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != v) return false;
    }
    return true;
  }
  Container* find(const std::string& idOrName) {
    for (auto& [name, c] : containers) {
      if (name == idOrName || c.id == idOrName) return &c;
    }
    return nullptr;
  }
  std::string health(const Container& c, bool) const {
    if (healthyAfterPolls < 0) return "unhealthy";
    return c.inspectionsSinceStart >= healthyAfterPolls ? "healthy" : "starting";
  }
  int serial_ = 0;
  std::int64_t eventClock_ = 1'700'000'000'000'000'000;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace foundationd::testing
