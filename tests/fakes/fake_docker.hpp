// An in-memory Docker Engine behind the DockerApi interface, for unit tests
// of the Docker controller (TESTING.md: fakes at the client boundary only).
// Integration tests use the real Engine instead.
//
// Models what the controller relies on: names unique per kind (409 on a
// duplicate), 404 for missing objects, label filters, container states, a
// healthcheck that reports healthy `healthyAfterPolls` inspections after
// start, images present or pullable. Fault injection: failNext[method].
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "controllers/docker/docker_api.hpp"

namespace foundationd::testing {

using docker::ContainerInspect;
using docker::ContainerSummary;
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
  };

  std::map<std::string, Container> containers;  // by name
  std::map<std::string, NetworkSummary> networks;
  std::map<std::string, VolumeSummary> volumes;
  std::set<std::string> images;          // present locally
  std::set<std::string> pullable;        // a registry would serve these
  int healthyAfterPolls = 2;             // inspections after start until healthy; <0: never
  std::map<std::string, Error> failNext; // method name -> error returned once
  std::vector<std::string> log;          // "create web", "start web", ...
  std::uint64_t calls = 0;

  std::uint64_t requestCount() const noexcept override { return calls; }

  Task<Result<std::vector<ContainerSummary>>> listContainers(const LabelFilter& f) override {
    ++calls;
    if (auto e = fail("listContainers")) co_return *e;
    std::vector<ContainerSummary> out;
    for (const auto& [name, c] : containers) {
      if (!matches(c.labels, f)) continue;
      std::string status = c.state == "running" ? "Up 1 second" : "Exited (0)";
      if (c.state == "running" && c.hasHealthcheck) status += " (" + health(c, false) + ")";
      out.push_back({c.id, name, c.image, c.state, status, c.labels});
    }
    co_return out;
  }

  Task<Result<ContainerInspect>> inspectContainer(const std::string& idOrName) override {
    ++calls;
    if (auto e = fail("inspectContainer")) co_return *e;
    Container* c = find(idOrName);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container: " + idOrName, 404);
    if (c->state == "running") ++c->inspectionsSinceStart;
    ContainerInspect i;
    i.id = c->id;
    i.name = c->name;
    i.state = c->state;
    i.running = c->state == "running";
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
    co_return c.id;
  }

  Task<Status> startContainer(const std::string& id) override {
    ++calls;
    if (auto e = fail("startContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("start " + c->name);
    c->state = "running";
    c->inspectionsSinceStart = 0;
    co_return Status::success();
  }

  Task<Status> stopContainer(const std::string& id, std::chrono::seconds) override {
    ++calls;
    if (auto e = fail("stopContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("stop " + c->name);
    c->state = "exited";
    co_return Status::success();
  }

  Task<Status> removeContainer(const std::string& id, bool) override {
    ++calls;
    if (auto e = fail("removeContainer")) co_return *e;
    Container* c = find(id);
    if (!c) co_return Error::make(ErrorCode::not_found, "No such container", 404);
    log.push_back("remove " + c->name);
    containers.erase(c->name);
    co_return Status::success();
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
        networks.erase(it);
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

 private:
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
};

}  // namespace foundationd::testing
