// DockerClient: Engine API 1.41 calls, their JSON and their error mapping.
// Contract in docker_client.hpp.
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/docker_stream.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "controllers/docker/docker_client_internal.hpp"

namespace foundationd::docker {

using transport::HttpRequest;
using transport::HttpResponse;
using json = nlohmann::json;

namespace {

bool unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string percentEncode(std::string_view s, std::string_view keep) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (unreserved(c) || keep.find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string trim(std::string s) {
  const auto notSpace = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
  s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
  return s;
}

ErrorCode codeForStatus(int status) {
  switch (status) {
    case 400:
      return ErrorCode::invalid_argument;
    case 403:  // the Engine's "forbidden": e.g. already connected to the network
    case 409:
      return ErrorCode::conflict;
    case 404:
      return ErrorCode::not_found;
    default:
      return ErrorCode::peer;
  }
}

// The Engine's {"message": "..."} text, else the body (bounded), else the status.
std::string engineMessage(int status, std::string_view body) {
  auto doc = json::parse(body, nullptr, false);
  if (!doc.is_discarded() && doc.is_object()) {
    if (auto m = internal::stringField(doc, "message"); !m.empty()) return m;
  }
  std::string text = trim(std::string(body.substr(0, internal::kMaxErrorText)));
  if (!text.empty()) return text;
  return "HTTP status " + std::to_string(status);
}

}  // namespace

namespace internal {

std::string queryValue(std::string_view s) {
  return percentEncode(s, "");
}

std::string segment(std::string_view s) {
  return percentEncode(s, "");
}

std::string dumpBody(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string stringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  return (it != obj.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

Labels labelsFrom(const json& obj, const char* key) {
  Labels out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_object()) return out;  // null when there are none
  for (const auto& [k, v] : it->items()) {
    if (v.is_string()) out.emplace(k, v.get<std::string>());
  }
  return out;
}

Error engineError(const HttpResponse& r, std::string_view what) {
  return Error::make(codeForStatus(r.status),
                     std::string(what) + ": " + engineMessage(r.status, r.body), r.status);
}

Error withContext(Error e, std::string_view what) {
  e.message = std::string(what) + ": " + e.message;
  if (e.code == ErrorCode::unavailable) {
    e.message += " (is dockerd running, and may this user use its socket?)";
  }
  return e;
}

Result<json> parseJson(const HttpResponse& r, std::string_view what) {
  auto doc = json::parse(r.body, nullptr, false);
  if (doc.is_discarded()) {
    return Error::make(ErrorCode::protocol,
                       std::string(what) + ": the Engine answered HTTP " +
                           std::to_string(r.status) + " with a body that is not JSON",
                       r.status);
  }
  return doc;
}

Error protocolError(std::string_view what, std::string_view detail, int status) {
  return Error::make(ErrorCode::protocol, std::string(what) + ": " + std::string(detail), status);
}

}  // namespace internal

using namespace internal;

namespace {

// An image reference in a path ("/images/{name}/json"): the route takes the
// rest of the path, so '/' stays, as do ':' and '@' (valid in a path).
std::string imagePath(std::string_view s) {
  return percentEncode(s, "/:@");
}

// "&filters=" + URL-encoded {"label":["k=v",...]}, or "" for no filter.
std::string labelFilterQuery(const LabelFilter& f, char sep) {
  if (f.empty()) return {};
  json labels = json::array();
  for (const auto& [k, v] : f) labels.push_back(k + "=" + v);
  return std::string(1, sep) + "filters=" + queryValue(json{{"label", labels}}.dump());
}

std::string stripSlash(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

// "repo[:tag]" / "repo@digest" -> (fromImage, tag); a bare name gets
// "latest", because an empty tag makes the Engine pull every tag.
std::pair<std::string, std::string> splitReference(const std::string& ref) {
  if (auto at = ref.find('@'); at != std::string::npos) {
    return {ref.substr(0, at), ref.substr(at + 1)};
  }
  const auto slash = ref.rfind('/');
  const auto colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  }
  return {ref, "latest"};
}

// Splits Docker's JSON-lines progress stream and keeps the last error.
class PullProgress {
 public:
  void feed(std::string_view chunk) {
    pending_ += chunk;
    std::size_t start = 0;
    for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n', start)) {
      line(std::string_view(pending_).substr(start, nl - start));
      start = nl + 1;
    }
    pending_.erase(0, start);
  }
  void finish() {
    line(pending_);
    pending_.clear();
  }
  const std::string& error() const { return error_; }

 private:
  void line(std::string_view text) {
    if (trim(std::string(text)).empty()) return;
    auto doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return;
    std::string msg = stringField(doc, "error");
    if (auto d = doc.find("errorDetail"); msg.empty() && d != doc.end() && d->is_object()) {
      msg = stringField(*d, "message");
    }
    if (!msg.empty()) error_ = msg;
  }
  std::string pending_;
  std::string error_;
};

}  // namespace

std::string ContainerSummary::health() const {
  if (status.find("(unhealthy)") != std::string::npos) return "unhealthy";
  if (status.find("(healthy)") != std::string::npos) return "healthy";
  if (status.find("(health: starting)") != std::string::npos) return "starting";
  return "";
}

DockerClient::DockerClient(boost::asio::any_io_executor executor, std::string socketPath,
                           std::string apiVersion)
    : http_(std::move(executor), std::move(socketPath)), apiVersion_(std::move(apiVersion)) {
  if (!apiVersion_.empty() && apiVersion_.front() == '/') apiVersion_.erase(0, 1);
}

DockerClient::~DockerClient() = default;

const std::string& DockerClient::socketPath() const noexcept {
  return http_.socketPath();
}

std::uint64_t DockerClient::requestCount() const noexcept {
  return requests_.load(std::memory_order_relaxed);
}

std::vector<DockerClient::EndpointCount> DockerClient::endpointCounts() const {
  std::lock_guard lock(countsMutex_);
  std::vector<EndpointCount> out;
  out.reserve(counts_.size());
  for (const auto& [key, tally] : counts_) {
    out.push_back({key.first, key.second, tally.count, tally.seconds});
  }
  return out;
}

void DockerClient::record(std::string_view endpoint, int status, std::chrono::nanoseconds took) {
  {
    std::lock_guard lock(countsMutex_);
    auto& tally = counts_[{std::string(endpoint), status}];
    ++tally.count;
    tally.seconds += std::chrono::duration<double>(took).count();
  }
  if (observer_) observer_(endpoint, status, took);
}

Task<Result<HttpResponse>> DockerClient::call(std::string_view endpoint, HttpRequest req) {
  const std::string name(endpoint);  // the caller's view may not outlive a suspension
  requests_.fetch_add(1, std::memory_order_relaxed);
  const auto start = std::chrono::steady_clock::now();
  auto r = co_await http_.request(std::move(req));
  record(name, r.ok() ? r->status : 0, std::chrono::steady_clock::now() - start);
  co_return r;
}

Task<Result<std::vector<ContainerSummary>>> DockerClient::listContainers(const LabelFilter& f) {
  const std::string what = "list containers";
  HttpRequest req;
  req.target = path("/containers/json?all=1") + labelFilterQuery(f, '&');
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /containers/json", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  if (!doc->is_array()) co_return protocolError(what, "expected a JSON array", r->status);

  std::vector<ContainerSummary> out;
  for (const auto& c : *doc) {
    if (!c.is_object()) continue;
    ContainerSummary s;
    s.id = stringField(c, "Id");
    if (auto names = c.find("Names");
        names != c.end() && names->is_array() && !names->empty() && names->front().is_string()) {
      s.name = stripSlash(names->front().get<std::string>());
    }
    s.image = stringField(c, "Image");
    s.imageId = stringField(c, "ImageID");
    s.state = stringField(c, "State");
    s.status = stringField(c, "Status");
    s.labels = labelsFrom(c);
    out.push_back(std::move(s));
  }
  co_return out;
}

Task<Result<ContainerInspect>> DockerClient::inspectContainer(const std::string& idOrName) {
  const std::string what = "inspect container " + idOrName;
  HttpRequest req;
  req.target = path("/containers/" + segment(idOrName) + "/json");
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /containers/{id}/json", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  if (!doc->is_object()) co_return protocolError(what, "expected a JSON object", r->status);

  ContainerInspect out;
  const json& d = *doc;
  out.id = stringField(d, "Id");
  out.name = stripSlash(stringField(d, "Name"));
  if (auto st = d.find("State"); st != d.end() && st->is_object()) {
    out.state = stringField(*st, "Status");
    out.running = st->value("Running", false);
    if (auto code = st->find("ExitCode"); code != st->end() && code->is_number_integer()) {
      out.exitCode = code->get<int>();
    }
    if (auto h = st->find("Health"); h != st->end() && h->is_object()) {
      out.health = stringField(*h, "Status");
      if (auto log = h->find("Log");
          log != h->end() && log->is_array() && !log->empty() && log->back().is_object()) {
        out.lastHealthOutput = trim(stringField(log->back(), "Output"));
      }
    }
  }
  if (auto cfg = d.find("Config"); cfg != d.end() && cfg->is_object()) {
    out.labels = labelsFrom(*cfg);
  }
  out.raw = std::move(doc).value();
  co_return out;
}

Task<Result<std::string>> DockerClient::createContainer(const std::string& name, const json& body) {
  const std::string what = "create container " + name;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/containers/create?name=" + queryValue(name));
  req.body = dumpBody(body);
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /containers/create", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 201 && r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  std::string id = doc->is_object() ? stringField(*doc, "Id") : std::string();
  if (id.empty()) co_return protocolError(what, "the Engine's answer has no Id", r->status);
  co_return id;
}

Task<Status> DockerClient::startContainer(const std::string& id) {
  const std::string what = "start container " + id;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/containers/" + segment(id) + "/start");
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /containers/{id}/start", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 304 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Result<std::string>> DockerClient::containerLogs(const std::string& id, int lines) {
  const std::string what = "logs of container " + id;
  HttpRequest req;
  req.target = path("/containers/" + segment(id) + "/logs?stdout=1&stderr=1&tail=" +
                    std::to_string(lines));
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /containers/{id}/logs", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  std::string text;
  ExecStreamDemuxer demux;
  const bool framed = demux.feed(r->body, [&](ExecStreamDemuxer::Stream, std::string_view p) {
    text.append(p);
  });
  co_return framed ? text : r->body;
}

Task<Status> DockerClient::stopContainer(const std::string& id, std::chrono::seconds timeout) {
  const std::string what = "stop container " + id;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/containers/" + segment(id) + "/stop?t=" + std::to_string(timeout.count()));
  req.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout + kStopMargin);
  auto r = co_await call("POST /containers/{id}/stop", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 304 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::killContainer(const std::string& id, const std::string& signal) {
  const std::string what = "signal " + signal + " to container " + id;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/containers/" + segment(id) + "/kill?signal=" + segment(signal));
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /containers/{id}/kill", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::pauseContainer(const std::string& id, bool pause) {
  const std::string what = std::string(pause ? "pause" : "unpause") + " container " + id;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/containers/" + segment(id) + (pause ? "/pause" : "/unpause"));
  req.timeout = requestTimeout_;
  auto r = co_await call(pause ? "POST /containers/{id}/pause" : "POST /containers/{id}/unpause",
                         std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::removeContainer(const std::string& id, bool force) {
  const std::string what = "remove container " + id;
  HttpRequest req;
  req.method = "DELETE";
  req.target =
      path("/containers/" + segment(id) + (force ? "?force=true" : "?force=false") + "&v=false");
  req.timeout = requestTimeout_;
  auto r = co_await call("DELETE /containers/{id}", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::removeScratchContainer(const std::string& id) {
  const std::string what = "remove scratch container " + id;
  HttpRequest req;
  req.method = "DELETE";
  req.target = path("/containers/" + segment(id) + "?force=true&v=true");
  req.timeout = requestTimeout_;
  auto r = co_await call("DELETE /containers/{id}", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::putArchive(const std::string& id, const std::string& dir,
                                       std::string tar) {
  const std::string what = "copy files into container " + id + " at " + dir;
  HttpRequest req;
  req.method = "PUT";
  req.target = path("/containers/" + segment(id) + "/archive?path=" + queryValue(dir));
  req.body = std::move(tar);
  req.contentType = "application/x-tar";
  req.timeout = requestTimeout_;
  auto r = co_await call("PUT /containers/{id}/archive", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Result<std::vector<NetworkSummary>>> DockerClient::listNetworks(const LabelFilter& f) {
  const std::string what = "list networks";
  HttpRequest req;
  req.target = path("/networks") + labelFilterQuery(f, '?');
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /networks", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  if (!doc->is_array()) co_return protocolError(what, "expected a JSON array", r->status);

  std::vector<NetworkSummary> out;
  for (const auto& n : *doc) {
    if (!n.is_object()) continue;
    out.push_back(
        {stringField(n, "Id"), stringField(n, "Name"), stringField(n, "Driver"), labelsFrom(n)});
  }
  co_return out;
}

Task<Result<std::string>> DockerClient::createNetwork(const json& body) {
  const std::string name = body.is_object() ? stringField(body, "Name") : std::string();
  const std::string what = "create network " + name;
  json payload = body;
  if (payload.is_object() && !payload.contains("CheckDuplicate")) {
    payload["CheckDuplicate"] = true;  // a second network of the same name is a 409
  }
  HttpRequest req;
  req.method = "POST";
  req.target = path("/networks/create");
  req.body = dumpBody(payload);
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /networks/create", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 201 && r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  std::string id = doc->is_object() ? stringField(*doc, "Id") : std::string();
  if (id.empty()) co_return protocolError(what, "the Engine's answer has no Id", r->status);
  co_return id;
}

Task<Status> DockerClient::removeNetwork(const std::string& idOrName) {
  const std::string what = "remove network " + idOrName;
  HttpRequest req;
  req.method = "DELETE";
  req.target = path("/networks/" + segment(idOrName));
  req.timeout = requestTimeout_;
  auto r = co_await call("DELETE /networks/{id}", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 204 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Status> DockerClient::connectNetwork(const std::string& network,
                                          const std::string& containerId,
                                          const std::vector<std::string>& aliases) {
  const std::string what = "connect container " + containerId + " to network " + network;
  json body = {{"Container", containerId}};
  if (!aliases.empty()) body["EndpointConfig"] = {{"Aliases", aliases}};
  HttpRequest req;
  req.method = "POST";
  req.target = path("/networks/" + segment(network) + "/connect");
  req.body = dumpBody(body);
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /networks/{id}/connect", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 200 || r->status == 204) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Result<std::vector<VolumeSummary>>> DockerClient::listVolumes(const LabelFilter& f) {
  const std::string what = "list volumes";
  HttpRequest req;
  req.target = path("/volumes") + labelFilterQuery(f, '?');
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /volumes", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  auto doc = parseJson(*r, what);
  if (!doc) co_return std::move(doc).error();
  if (!doc->is_object()) co_return protocolError(what, "expected a JSON object", r->status);

  std::vector<VolumeSummary> out;
  auto vols = doc->find("Volumes");  // null when there are none
  if (vols != doc->end() && vols->is_array()) {
    for (const auto& v : *vols) {
      if (!v.is_object()) continue;
      out.push_back({stringField(v, "Name"), stringField(v, "Driver"), labelsFrom(v)});
    }
  }
  co_return out;
}

Task<Status> DockerClient::createVolume(const json& body) {
  const std::string name = body.is_object() ? stringField(body, "Name") : std::string();
  const std::string what = "create volume " + name;
  HttpRequest req;
  req.method = "POST";
  req.target = path("/volumes/create");
  req.body = dumpBody(body);
  req.timeout = requestTimeout_;
  auto r = co_await call("POST /volumes/create", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 201 || r->status == 200) co_return Status::success();
  co_return engineError(*r, what);
}

Task<Result<bool>> DockerClient::imagePresent(const std::string& ref) {
  const std::string what = "inspect image " + ref;
  HttpRequest req;
  req.target = path("/images/" + imagePath(ref) + "/json");
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /images/{name}/json", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status == 200) co_return true;
  if (r->status == 404) co_return false;
  co_return engineError(*r, what);
}

Task<Result<std::vector<std::string>>> DockerClient::imageEnv(const std::string& ref) {
  const std::string what = "inspect image " + ref;
  HttpRequest req;
  req.target = path("/images/" + imagePath(ref) + "/json");
  req.timeout = requestTimeout_;
  auto r = co_await call("GET /images/{name}/json", std::move(req));
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) co_return engineError(*r, what);
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  std::vector<std::string> env;
  if (doc.is_discarded()) co_return Error::make(ErrorCode::protocol, what + ": not JSON");
  if (doc.contains("Config") && doc["Config"].is_object() && doc["Config"].contains("Env") &&
      doc["Config"]["Env"].is_array()) {
    for (const auto& e : doc["Config"]["Env"]) {
      if (e.is_string()) env.push_back(e.get<std::string>());
    }
  }
  co_return env;
}

Task<Status> DockerClient::pullImage(const std::string& ref) {
  const std::string what = "image " + ref + " is not present locally and could not be pulled";
  const auto [repo, tag] = splitReference(ref);
  HttpRequest req;
  req.method = "POST";
  req.target = path("/images/create?fromImage=" + queryValue(repo) + "&tag=" + queryValue(tag));
  req.timeout = pullTimeout_;

  // A 200 body is the JSON-lines progress stream; any other is one error document.
  PullProgress progress;
  std::string errorBody;
  int status = 0;
  requests_.fetch_add(1, std::memory_order_relaxed);
  const auto start = std::chrono::steady_clock::now();
  auto r = co_await http_.stream(
      std::move(req),
      [&status](const HttpResponse& head) {
        status = head.status;
        return true;
      },
      [&](std::string_view chunk) {
        if (status == 200) {
          progress.feed(chunk);
        } else if (errorBody.size() < kMaxErrorText) {
          errorBody += chunk;
        }
        return true;
      });
  record("POST /images/create", r.ok() ? r->status : 0, std::chrono::steady_clock::now() - start);
  if (!r) co_return withContext(std::move(r).error(), what);
  if (r->status != 200) {
    HttpResponse failed = *r;
    failed.body = std::move(errorBody);
    co_return engineError(failed, what);
  }
  progress.finish();
  if (!progress.error().empty()) {
    co_return Error::make(ErrorCode::peer, what + ": " + progress.error(), r->status);
  }
  co_return Status::success();
}

}  // namespace foundationd::docker
