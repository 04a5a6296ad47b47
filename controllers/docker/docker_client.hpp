// DockerClient: the Docker Engine API over its Unix socket (DockerApi).
//
// Every path is versioned ("/v1.41/containers/json"; Debian's docker.io 20.10
// serves API 1.41). Engine errors become Result values: 400 invalid_argument,
// 403/409 conflict, 404 not_found, 5xx peer (anything else unexpected: peer);
// the message says what was being done and carries the Engine's own
// {"message": ...} text, e.g. "create container web: Conflict. The container
// name ...". Socket failures keep the transport's unavailable/timeout code.
// Request bodies are never put into messages.
//
// Thread: every call on the io_context's thread (the executor given). The
// counters (requestCount(), endpointCounts()) may be read from any thread.
// Ownership: owns its UnixHttpClient (and so its connection pool); in-flight
// calls must finish before the DockerClient is destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "controllers/docker/docker_api.hpp"
#include "controllers/transport/unix_http_client.hpp"

namespace foundationd::docker {

class DockerClient final : public DockerApi {
 public:
  explicit DockerClient(boost::asio::any_io_executor executor,
                        std::string socketPath = "/var/run/docker.sock",
                        std::string apiVersion = "v1.41");
  ~DockerClient() override;
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  Task<Result<std::vector<ContainerSummary>>> listContainers(const LabelFilter& f) override;
  Task<Result<ContainerInspect>> inspectContainer(const std::string& idOrName) override;
  Task<Result<std::string>> createContainer(const std::string& name,
                                            const nlohmann::json& body) override;
  Task<Status> startContainer(const std::string& id) override;
  // The HTTP deadline is `timeout` plus kStopMargin: the Engine answers only
  // after the container stopped (or was killed when `timeout` ran out).
  Task<Status> stopContainer(const std::string& id, std::chrono::seconds timeout) override;
  Task<Status> killContainer(const std::string& id, const std::string& signal) override;
  Task<Status> pauseContainer(const std::string& id, bool pause) override;
  Task<Status> removeContainer(const std::string& id, bool force) override;
  Task<Status> removeScratchContainer(const std::string& id) override;
  Task<Status> putArchive(const std::string& id, const std::string& dir, std::string tar) override;

  Task<Result<std::vector<NetworkSummary>>> listNetworks(const LabelFilter& f) override;
  Task<Result<std::string>> createNetwork(const nlohmann::json& body) override;
  Task<Status> removeNetwork(const std::string& idOrName) override;
  Task<Status> connectNetwork(const std::string& network, const std::string& containerId,
                              const std::vector<std::string>& aliases) override;

  Task<Result<std::vector<VolumeSummary>>> listVolumes(const LabelFilter& f) override;
  Task<Status> createVolume(const nlohmann::json& body) override;

  Task<Result<bool>> imagePresent(const std::string& ref) override;

  Task<Result<std::vector<std::string>>> imageEnv(const std::string& ref) override;
  // "repo" pulls "repo:latest" (never every tag); "repo@sha256:..." pulls the
  // digest. Any failure says the image is not present locally and could not
  // be pulled, with the Engine's reason.
  Task<Status> pullImage(const std::string& ref) override;

  // GET /events with no deadline (events may be silent for hours). The
  // Engine is asked for container, network and volume events only; the label
  // filter is applied here, to container events (see DockerApi::events), so
  // that network and volume events still arrive. A dockerd that stops closes
  // the connection: the call then ends at once with unavailable. A dockerd
  // that hangs with the socket open cannot be told from a quiet one (the
  // Engine sends no heartbeat). To end a subscription from outside, cancel
  // the coroutine (co_spawn with asio::bind_cancellation_slot, terminal
  // cancellation): it returns unavailable, "cancelled". Counted once, as
  // "GET /events", when it ends. Defined in docker_events.cpp.
  Task<Status> events(LabelFilter labels, std::function<bool(const DockerEvent&)> onEvent) override;

  // POST /containers/{id}/exec, POST /exec/{id}/start hijacked with
  // "Connection: Upgrade" (transport::UnixHttpClient::hijack): stdin is
  // written while the output is read, so neither side can block the other,
  // then the write side is half-closed; GET /exec/{id}/json for the exit
  // code (asked again, briefly, while the Engine still reports it running).
  // options.timeout bounds all of it. Defined in docker_exec.cpp.
  Task<Result<ExecResult>> exec(const std::string& container, const std::vector<std::string>& cmd,
                                const ExecOptions& options) override;

  // The log stream of a container without a TTY is multiplexed (the exec
  // framing, ExecStreamDemuxer); a TTY's is plain text and taken as is.
  Task<Result<std::string>> containerLogs(const std::string& id, int lines) override;

  std::uint64_t requestCount() const noexcept override;

  // --- beyond DockerApi: configuration and metrics ---

  static constexpr std::chrono::seconds kStopMargin{30};

  // Deadline of every request except pulls and stops (default 60 s).
  void setRequestTimeout(std::chrono::milliseconds t) { requestTimeout_ = t; }
  // Deadline of a whole pull, progress stream included (default 30 min).
  void setPullTimeout(std::chrono::milliseconds t) { pullTimeout_ = t; }

  const std::string& socketPath() const noexcept;
  const std::string& apiVersion() const noexcept { return apiVersion_; }

  // Requests per (endpoint, HTTP status); status 0 = no HTTP answer (socket
  // error, timeout). Endpoints are route templates: "POST /containers/{id}/start".
  struct EndpointCount {
    std::string endpoint;
    int status = 0;
    std::uint64_t count = 0;
    double seconds = 0;  // total time spent, for a mean
  };
  std::vector<EndpointCount> endpointCounts() const;

  // Called on the io thread after every Engine request (e.g. to feed a
  // duration histogram). Set it before the first request.
  using RequestObserver =
      std::function<void(std::string_view endpoint, int status, std::chrono::nanoseconds took)>;
  void setRequestObserver(RequestObserver observer) { observer_ = std::move(observer); }

 private:
  Task<Result<transport::HttpResponse>> call(std::string_view endpoint, transport::HttpRequest req);
  void record(std::string_view endpoint, int status, std::chrono::nanoseconds took);
  std::string path(std::string_view p) const { return "/" + apiVersion_ + std::string(p); }

  transport::UnixHttpClient http_;
  std::string apiVersion_;
  std::chrono::milliseconds requestTimeout_{std::chrono::seconds(60)};
  std::chrono::milliseconds pullTimeout_{std::chrono::minutes(30)};
  RequestObserver observer_;
  std::atomic<std::uint64_t> requests_{0};

  struct Tally {
    std::uint64_t count = 0;
    double seconds = 0;
  };
  mutable std::mutex countsMutex_;
  std::map<std::pair<std::string, int>, Tally> counts_;  // guarded by countsMutex_
};

}  // namespace foundationd::docker
