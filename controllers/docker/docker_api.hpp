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
#include <cstddef>
#include <cstdint>
#include <functional>
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
  std::string imageId;  // "sha256:..." of the image's config (ImageID): what actually runs
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

// Why the container hosting a service ([postgres.*], [forgejo]) is not ready
// for it yet — "container X does not exist yet", "... is not running
// (exited)", "... is starting" — or nullopt when it runs and is healthy (or
// has no healthcheck): SPEC.md "Dependencies and order".
inline std::optional<std::string> hostNotReady(const std::string& name,
                                               const Result<ContainerInspect>& inspected) {
  if (!inspected) {
    if (inspected.error().code == ErrorCode::not_found) {
      return "container " + name + " does not exist yet";
    }
    return inspected.error().message;
  }
  if (!inspected->running) return "container " + name + " is not running (" + inspected->state + ")";
  if (!inspected->health.empty() && inspected->health != "healthy") {
    return "container " + name + " is " + inspected->health;
  }
  return std::nullopt;
}

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

// One Engine event (GET /events), in the Engine's terms.
struct DockerEvent {
  std::string type;  // container | network | volume
  // die, destroy, stop, start, kill, oom, "health_status: unhealthy",
  // rename, update, create, connect, disconnect, mount, ... (the Engine's)
  std::string action;
  std::string id;  // Actor.ID: container id, network id, volume name
  // Actor.Attributes["name"] (container and network name); for volumes the
  // volume name (their Actor.ID).
  std::string name;
  // Actor.Attributes: for containers their labels plus "name", "image", and
  // per action "exitCode", "signal", ...; for networks "name", "type" and
  // (connect/disconnect) "container"; for volumes "driver" (and "container").
  Labels attributes;
  std::int64_t timeNano = 0;  // when the Engine logged it, ns since the epoch
};

struct ExecOptions {
  // Fed to the process's stdin, which is then closed; nullopt: no stdin at
  // all. The way to pass secrets (a password for psql): never logged, never
  // in an error message. argv and env are visible to anyone who can list the
  // container's processes, so keep secrets out of them.
  std::optional<std::string> stdinData;
  std::string user;              // "" = the container's user
  std::vector<std::string> env;  // "KEY=value", added to the container's
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // the whole exec
  std::size_t maxOutput = std::size_t{16} << 20;                // stdout + stderr bytes
  // Streaming, binary-safe (backups: a dump piped into restic, a restore
  // piped from it). When set, stdout goes to stdoutSink piece by piece as it
  // arrives, never into ExecResult::stdoutText, and maxOutput bounds stderr
  // alone; a failed Status stops the exec's reading (the call fails with it).
  std::function<Task<Status>(std::string_view)> stdoutSink;
  // When set (instead of stdinData), stdin is fed from it until it returns an
  // empty string, then closed; an error ends the exec's stdin early and the
  // call fails with it.
  std::function<Task<Result<std::string>>()> stdinSource;
};

struct ExecResult {
  int exitCode = -1;
  std::string stdoutText;
  std::string stderrText;
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
  // DELETE /containers/{id}?force=true&v=true: a scratch container of `backup
  // verify` (docs/dr.md "Verify"), killed, with its ANONYMOUS volumes (those
  // the image's VOLUME lines made for it alone: the Engine never removes a
  // named volume this way). Nothing else uses it. Not pure: fakes need not
  // model it.
  virtual Task<Status> removeScratchContainer(const std::string& id) {
    co_return Error::make(ErrorCode::internal, "removeScratchContainer is not implemented for " + id);
  }

  // PUT /containers/{id}/archive?path=DIR: extracts `tar` (an uncompressed
  // tar archive) into the container's file system under DIR (an existing
  // directory), before or after it starts: how `backup verify` gives its
  // scratch OpenBao a configuration file without a bind mount. Not pure:
  // fakes need not model it.
  virtual Task<Status> putArchive(const std::string& id, const std::string& dir, std::string tar) {
    (void)dir;
    (void)tar;
    co_return Error::make(ErrorCode::internal, "putArchive is not implemented for " + id);
  }

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
  // GET /images/{ref}/json: the image's Config.Env ("KEY=value"). Not pure:
  // fakes need not model it (not_found: the caller treats it as unknown).
  virtual Task<Result<std::vector<std::string>>> imageEnv(const std::string& ref) {
    co_return Error::make(ErrorCode::not_found, "no environment for image " + ref);
  }
  // POST /images/create?fromImage=...; reads the progress stream to the end
  // and fails with the stream's error message if one came.
  virtual Task<Status> pullImage(const std::string& ref) = 0;

  // GET /events, streaming: calls onEvent for each container, network and
  // volume event, in the Engine's order, until the callback returns false,
  // the stream ends, or the connection fails. No deadline: the stream may be
  // silent for hours. `labels` (ANDed) selects container events by their
  // labels. Network and volume events carry no labels in the Engine (API
  // 1.41), so a label filter cannot select them: they are all delivered, and
  // the caller matches them by name against what it manages.
  // Returns success only when onEvent returned false. Any other end is an
  // error: unavailable when the Engine closed the stream or went away (the
  // caller resubscribes with backoff and re-lists, since events in between
  // are lost), protocol for an event that is not JSON, or the Engine's
  // mapped error for a refused subscription.
  // Both arguments are taken by value: the call is usually co_spawned to run
  // in the background, where a reference would dangle.
  virtual Task<Status> events(LabelFilter labels,
                              std::function<bool(const DockerEvent&)> onEvent) = 0;

  // Runs `cmd` (argv, no shell) in the running container `container`
  // (docker exec) and waits for it: its exit code, stdout and stderr.
  // A command that cannot be started is not an error: the Engine reports
  // exit code 126 or 127 and its reason as stdout text ("OCI runtime exec
  // failed: ..."). Errors: not_found (no such container), conflict (not
  // running), timeout when options.timeout passed (the process is then left
  // running: the Engine cannot kill an exec, it ends with the container),
  // protocol when the output exceeds options.maxOutput, unavailable when the
  // Engine went away. Messages name the container and argv[0] only.
  virtual Task<Result<ExecResult>> exec(const std::string& container,
                                        const std::vector<std::string>& cmd,
                                        const ExecOptions& options) = 0;

  // POST /containers/{id}/kill?signal=SIG: sends `signal` ("SIGHUP") to the
  // container's main process. conflict when it is not running. Not pure so
  // that test doubles which never signal need not implement it.
  virtual Task<Status> killContainer(const std::string& id, const std::string& signal) {
    (void)id;
    (void)signal;
    co_return Error::make(ErrorCode::internal, "killContainer is not implemented here");
  }

  // POST /containers/{id}/pause (pause = true) or /unpause: freezes or thaws
  // every process of the container (the cgroup freezer; backups hold the
  // forge's writes with it). conflict when it is not running or not paused.
  // Not pure: fakes need not model it.
  virtual Task<Status> pauseContainer(const std::string& id, bool pause) {
    (void)pause;
    co_return Error::make(ErrorCode::internal, "pauseContainer is not implemented for " + id);
  }

  // GET /containers/{id}/logs?stdout=1&stderr=1&tail=N: the last `lines`
  // lines of the container's output (stdout and stderr interleaved), for a
  // failure report. Not pure: fakes need not model it.
  virtual Task<Result<std::string>> containerLogs(const std::string& id, int lines) {
    (void)lines;
    co_return Error::make(ErrorCode::not_found, "no logs for " + id);
  }

  // Number of Engine API requests made so far (benchmarks, metrics).
  virtual std::uint64_t requestCount() const noexcept = 0;
};

}  // namespace foundationd::docker
