// The Docker Engine client interface the Docker controller uses.
//
// Narrow on purpose: the calls the controller needs, Engine errors mapped to
// Result values (404 -> not_found, 409 -> conflict, 400 -> invalid_argument,
// 5xx -> peer, socket failures -> unavailable). Create bodies are passed as
// JSON in the Engine's own shape (the controller builds them), so the
// interface does not re-model the Engine API. Implemented by DockerClient
// (controllers/docker/docker_client.hpp) and by fakes in tests/fakes/.
// Thread: the io_context's.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace foundationd::docker {

template <typename T>
using Task = boost::asio::awaitable<T>;

using Labels = std::map<std::string, std::string>;

// Label filter, ANDed: {"foundationd.managed": "true", ...}.
using LabelFilter = Labels;

// One entry of GET /containers/json?all=1.
struct ContainerSummary {
  std::string id;
  std::string name;   // without the leading '/'
  std::string image;
  std::string state;  // created | running | paused | restarting | removing | exited | dead
  std::string status; // "Up 3 minutes (healthy)"; health is parsed from it
  Labels labels;
  // "healthy" | "unhealthy" | "starting" | "" (no healthcheck / unknown)
  std::string health() const;
};

// The parts of GET /containers/{id}/json the controller needs.
struct ContainerInspect {
  std::string id;
  std::string name;
  std::string state;      // State.Status
  bool running = false;
  int exitCode = 0;
  std::string health;     // State.Health.Status or ""
  std::string lastHealthOutput;  // output of the last health probe, trimmed
  Labels labels;
  nlohmann::json raw;     // the whole document
};

struct NetworkSummary {
  std::string id;
  std::string name;
  std::string driver;
  Labels labels;
};

struct VolumeSummary {
  std::string name;
  std::string driver;
  Labels labels;
};

class DockerApi {
 public:
  virtual ~DockerApi() = default;

  virtual Task<Result<std::vector<ContainerSummary>>> listContainers(const LabelFilter& f) = 0;
  virtual Task<Result<ContainerInspect>> inspectContainer(const std::string& idOrName) = 0;
  // POST /containers/create?name=NAME with `body`; returns the new id.
  virtual Task<Result<std::string>> createContainer(const std::string& name,
                                                    const nlohmann::json& body) = 0;
  virtual Task<Status> startContainer(const std::string& id) = 0;  // 304 is success
  virtual Task<Status> stopContainer(const std::string& id, std::chrono::seconds timeout) = 0;
  // force kills a running container; volumes are never removed (v=false).
  virtual Task<Status> removeContainer(const std::string& id, bool force) = 0;

  // Empty filter = every network / volume.
  virtual Task<Result<std::vector<NetworkSummary>>> listNetworks(const LabelFilter& f) = 0;
  // POST /networks/create (body includes Name; CheckDuplicate set); returns id.
  virtual Task<Result<std::string>> createNetwork(const nlohmann::json& body) = 0;
  virtual Task<Status> removeNetwork(const std::string& idOrName) = 0;
  // POST /networks/{network}/connect: attach a created container to a further
  // network (API 1.41 takes only one network at create time).
  virtual Task<Status> connectNetwork(const std::string& network, const std::string& containerId,
                                      const std::vector<std::string>& aliases) = 0;

  virtual Task<Result<std::vector<VolumeSummary>>> listVolumes(const LabelFilter& f) = 0;
  virtual Task<Status> createVolume(const nlohmann::json& body) = 0;
  // There is deliberately no removeVolume: foundationd never deletes a volume.

  // GET /images/{ref}/json: true if present, false on 404.
  virtual Task<Result<bool>> imagePresent(const std::string& ref) = 0;
  // POST /images/create?fromImage=...; reads the progress stream to the end
  // and fails with the stream's error message if one came.
  virtual Task<Status> pullImage(const std::string& ref) = 0;

  // Number of Engine API requests made so far (benchmarks, metrics).
  virtual std::uint64_t requestCount() const noexcept = 0;
};

}  // namespace foundationd::docker
