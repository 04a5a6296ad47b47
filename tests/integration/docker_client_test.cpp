// DockerClient against the real Docker Engine at /var/run/docker.sock
// (TESTING.md layer 2). Everything it creates carries a per-run label and is
// removed at the end, failures included.
#include "controllers/docker/docker_client.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "controllers/transport/unix_http_client.hpp"
#include "integration/docker_support.hpp"

using foundationd::Result;
using foundationd::Status;
using foundationd::docker::ContainerSummary;
using foundationd::docker::DockerClient;
using foundationd::docker::LabelFilter;
using foundationd::testing::kDockerSocket;
using foundationd::testing::runSync;
using json = nlohmann::json;

namespace {

constexpr const char* kRunLabel = "foundationd.client-test";

template <class R>
std::string why(const R& r) {
  return r.ok() ? std::string() : r.error().message;
}

template <class R>
std::string codeOf(const R& r) {
  return r.ok() ? std::string("ok") : std::string(foundationd::toString(r.error().code));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One Engine session: a client, a unique run label, and cleanup of every
// container, network and volume carrying it.
struct Session {
  boost::asio::io_context io;
  DockerClient client{io.get_executor()};
  std::string run =
      "fdct-" + std::to_string(::getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  std::string image = foundationd::testing::testImage();

  std::string name(const std::string& n) const { return run + "-" + n; }
  LabelFilter mine() const { return {{kRunLabel, run}}; }
  json labels(const std::string& role) const { return {{kRunLabel, run}, {"role", role}}; }

  json containerBody(const std::string& role, json extra = json::object()) const {
    json body = {{"Image", image},
                 // busybox sh as PID 1 exits on TERM only with a trap.
                 {"Cmd", {"sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"}},
                 {"Labels", labels(role)}};
    body.update(extra);
    return body;
  }

  std::string createContainer(const std::string& n, const std::string& role,
                              json extra = json::object()) {
    auto id = runSync(io, client.createContainer(name(n), containerBody(role, std::move(extra))));
    REQUIRE_MESSAGE(id.ok(), why(id));
    return id.value();
  }

  ~Session() {
    if (image.empty()) return;
    auto cs = runSync(io, client.listContainers(mine()));
    if (cs) {
      for (const auto& c : cs.value()) (void)runSync(io, client.removeContainer(c.id, true));
    }
    auto ns = runSync(io, client.listNetworks(mine()));
    if (ns) {
      for (const auto& n : ns.value()) (void)runSync(io, client.removeNetwork(n.id));
    }
    // The product never removes volumes; the test does, through the raw API.
    auto vs = runSync(io, client.listVolumes(mine()));
    foundationd::transport::UnixHttpClient raw(io.get_executor(), kDockerSocket);
    if (vs) {
      for (const auto& v : vs.value()) {
        foundationd::transport::HttpRequest req;
        req.method = "DELETE";
        req.target = "/v1.41/volumes/" + v.name;
        (void)runSync(io, raw.request(req));
      }
    }
  }
};

std::vector<std::string> names(const auto& items) {
  std::vector<std::string> out;
  for (const auto& i : items) out.push_back(i.name);
  std::sort(out.begin(), out.end());
  return out;
}

// A stand-in Engine for what the real one cannot show on a machine without a
// registry (a pull that streams progress, or fails mid-stream): answers the
// requests with canned raw HTTP responses, in order, and records targets.
class CannedEngine {
 public:
  CannedEngine(boost::asio::io_context& io, std::vector<std::string> replies)
      : state_(std::make_shared<State>(io)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fd-engine-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/docker.sock";
    state_->replies = std::move(replies);
    state_->acceptor.open();
    state_->acceptor.bind(Local::endpoint(path_));
    state_->acceptor.listen();
    boost::asio::co_spawn(io, serve(state_), boost::asio::detached);
  }
  ~CannedEngine() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    std::error_code fsIgnored;
    std::filesystem::remove_all(dir_, fsIgnored);
  }
  CannedEngine(const CannedEngine&) = delete;
  CannedEngine& operator=(const CannedEngine&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<std::string>& targets() const { return state_->targets; }

  // A chunked 200 response whose chunks are `parts` (split anywhere).
  static std::string chunked(const std::vector<std::string>& parts) {
    std::string out =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (const auto& p : parts) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", p.size());
      out += size + p + "\r\n";
    }
    return out + "0\r\n\r\n";
  }
  static std::string plain(int status, const std::string& reason, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

 private:
  using Local = boost::asio::local::stream_protocol;
  struct State {
    explicit State(boost::asio::io_context& io) : acceptor(io) {}
    Local::acceptor acceptor;
    std::vector<std::string> replies;
    std::vector<std::string> targets;
  };

  static boost::asio::awaitable<void> serve(std::shared_ptr<State> st) {
    constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
    namespace http = boost::beast::http;
    for (;;) {
      auto [aec, sock] = co_await st->acceptor.async_accept(tuple);
      if (aec) co_return;
      boost::beast::flat_buffer buffer;
      for (;;) {
        http::request<http::string_body> req;
        auto [rec, rn] = co_await http::async_read(sock, buffer, req, tuple);
        if (rec) break;
        st->targets.emplace_back(req.target());
        if (st->targets.size() > st->replies.size()) co_return;
        const std::string& reply = st->replies[st->targets.size() - 1];
        auto [wec, wn] = co_await boost::asio::async_write(sock, boost::asio::buffer(reply), tuple);
        if (wec) break;
      }
    }
  }

  std::shared_ptr<State> state_;
  std::string dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("ContainerSummary::health parses the Engine's status text") {
  ContainerSummary s;
  s.status = "Up 3 minutes (healthy)";
  CHECK(s.health() == "healthy");
  s.status = "Up 3 minutes (unhealthy)";
  CHECK(s.health() == "unhealthy");
  s.status = "Up Less than a second (health: starting)";
  CHECK(s.health() == "starting");
  s.status = "Up 2 hours";
  CHECK(s.health() == "");
  s.status = "Exited (0) 5 seconds ago";
  CHECK(s.health() == "");
}

TEST_CASE("volumes, networks and containers: create, list by label, inspect, start, stop, remove") {
  Session s;
  if (s.image.empty()) return;
  auto& io = s.io;
  auto& client = s.client;

  REQUIRE_MESSAGE(
      runSync(io, client.createVolume({{"Name", s.name("data")}, {"Labels", s.labels("data")}}))
          .ok(),
      "create volume");
  auto netId =
      runSync(io, client.createNetwork({{"Name", s.name("net")}, {"Labels", s.labels("net")}}));
  REQUIRE_MESSAGE(netId.ok(), why(netId));
  auto otherNet =
      runSync(io, client.createNetwork({{"Name", s.name("back")}, {"Labels", s.labels("back")}}));
  REQUIRE_MESSAGE(otherNet.ok(), why(otherNet));

  const json hostConfig = {
      {"HostConfig",
       {{"NetworkMode", s.name("net")},
        {"Mounts", {{{"Type", "volume"}, {"Source", s.name("data")}, {"Target", "/data"}}}}}}};
  const std::string webId = s.createContainer("web", "web", hostConfig);
  const std::string otherId = s.createContainer("other", "other");

  // Label filters select exactly this run's resources (and AND together).
  auto listed = runSync(io, client.listContainers(s.mine()));
  REQUIRE_MESSAGE(listed.ok(), why(listed));
  CHECK(names(*listed) == std::vector<std::string>{s.name("other"), s.name("web")});
  auto onlyWeb = runSync(io, client.listContainers({{kRunLabel, s.run}, {"role", "web"}}));
  REQUIRE(onlyWeb.ok());
  REQUIRE(onlyWeb->size() == 1);
  const auto& web = onlyWeb->front();
  CHECK(web.id == webId);
  CHECK(web.name == s.name("web"));
  CHECK(web.image == s.image);
  CHECK(web.state == "created");
  CHECK(web.labels.at("role") == "web");
  CHECK(web.health() == "");

  auto nets = runSync(io, client.listNetworks(s.mine()));
  REQUIRE_MESSAGE(nets.ok(), why(nets));
  CHECK(names(*nets) == std::vector<std::string>{s.name("back"), s.name("net")});
  CHECK(nets->front().driver == "bridge");
  auto vols = runSync(io, client.listVolumes(s.mine()));
  REQUIRE_MESSAGE(vols.ok(), why(vols));
  CHECK(names(*vols) == std::vector<std::string>{s.name("data")});
  CHECK(vols->front().driver == "local");
  CHECK(vols->front().labels.at("role") == "data");
  auto noVols = runSync(io, client.listVolumes({{kRunLabel, s.run + "-nothing"}}));
  REQUIRE(noVols.ok());
  CHECK(noVols->empty());

  auto inspected = runSync(io, client.inspectContainer(s.name("web")));
  REQUIRE_MESSAGE(inspected.ok(), why(inspected));
  CHECK(inspected->id == webId);
  CHECK(inspected->name == s.name("web"));
  CHECK(inspected->state == "created");
  CHECK_FALSE(inspected->running);
  CHECK(inspected->labels.at(kRunLabel) == s.run);
  CHECK(inspected->raw["HostConfig"]["NetworkMode"] == s.name("net"));

  auto connected = runSync(io, client.connectNetwork(s.name("back"), webId, {"web-alias"}));
  REQUIRE_MESSAGE(connected.ok(), why(connected));

  REQUIRE_MESSAGE(runSync(io, client.startContainer(webId)).ok(), "start");
  auto again = runSync(io, client.startContainer(webId));  // 304: already started
  CHECK_MESSAGE(again.ok(), why(again));
  auto running = runSync(io, client.inspectContainer(webId));
  REQUIRE(running.ok());
  CHECK(running->running);
  CHECK(running->state == "running");
  const auto aliases = running->raw["NetworkSettings"]["Networks"][s.name("back")]["Aliases"];
  CHECK(std::find(aliases.begin(), aliases.end(), json("web-alias")) != aliases.end());

  auto stopped = runSync(io, client.stopContainer(webId, std::chrono::seconds(5)));
  REQUIRE_MESSAGE(stopped.ok(), why(stopped));
  auto stopAgain = runSync(io, client.stopContainer(webId, std::chrono::seconds(5)));  // 304
  CHECK_MESSAGE(stopAgain.ok(), why(stopAgain));
  auto exited = runSync(io, client.inspectContainer(webId));
  REQUIRE(exited.ok());
  CHECK_FALSE(exited->running);
  CHECK(exited->state == "exited");
  CHECK(exited->exitCode == 0);  // the TERM trap ran: stopped, not killed

  REQUIRE_MESSAGE(runSync(io, client.removeContainer(webId, false)).ok(), "remove web");
  REQUIRE_MESSAGE(runSync(io, client.removeContainer(otherId, true)).ok(), "remove other");
  auto gone = runSync(io, client.inspectContainer(webId));
  CHECK(codeOf(gone) == "not_found");
  auto afterList = runSync(io, client.listContainers(s.mine()));
  REQUIRE(afterList.ok());
  CHECK(afterList->empty());

  REQUIRE_MESSAGE(runSync(io, client.removeNetwork(s.name("back"))).ok(), "remove network");
  REQUIRE_MESSAGE(runSync(io, client.removeNetwork(netId.value())).ok(), "remove network");
  auto netGone = runSync(io, client.removeNetwork(s.name("net")));
  CHECK(codeOf(netGone) == "not_found");
  // The volume survives its container (v=false): the product never deletes data.
  auto volsAfter = runSync(io, client.listVolumes(s.mine()));
  REQUIRE(volsAfter.ok());
  CHECK(volsAfter->size() == 1);
}

TEST_CASE("health: starting, healthy and unhealthy from real healthchecks") {
  Session s;
  if (s.image.empty()) return;
  auto& io = s.io;
  const auto ms = [](int n) { return static_cast<std::int64_t>(n) * 1'000'000; };  // ns
  auto check = [&](const std::string& test, int intervalMs) {
    return json{{"Healthcheck",
                 {{"Test", {"CMD-SHELL", test}},
                  {"Interval", ms(intervalMs)},
                  {"Timeout", ms(5000)},
                  {"Retries", 1}}}};
  };
  const auto good = s.createContainer("good", "good", check("echo fine", 200));
  const auto bad = s.createContainer("bad", "bad", check("echo failing; exit 1", 200));
  const auto slow = s.createContainer("slow", "slow", check("true", 3'600'000));
  for (const auto& id : {good, bad, slow}) {
    auto started = runSync(io, s.client.startContainer(id));
    REQUIRE_MESSAGE(started.ok(), why(started));
  }

  std::map<std::string, std::string> health;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto listed = runSync(io, s.client.listContainers(s.mine()));
    REQUIRE_MESSAGE(listed.ok(), why(listed));
    for (const auto& c : *listed) health[c.labels.at("role")] = c.health();
    if (health["good"] == "healthy" && health["bad"] == "unhealthy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(health["good"] == "healthy");
  CHECK(health["bad"] == "unhealthy");
  CHECK(health["slow"] == "starting");

  auto good_ = runSync(io, s.client.inspectContainer(good));
  REQUIRE(good_.ok());
  CHECK(good_->health == "healthy");
  CHECK(good_->lastHealthOutput == "fine");
  auto bad_ = runSync(io, s.client.inspectContainer(bad));
  REQUIRE(bad_.ok());
  CHECK(bad_->health == "unhealthy");
  CHECK(bad_->lastHealthOutput == "failing");
  auto slow_ = runSync(io, s.client.inspectContainer(slow));
  REQUIRE(slow_.ok());
  CHECK(slow_->health == "starting");
}

TEST_CASE("Engine errors map to codes and say what was being done") {
  Session s;
  if (s.image.empty()) return;
  auto& io = s.io;
  auto& client = s.client;

  auto missing = runSync(io, client.inspectContainer(s.name("missing")));
  REQUIRE_FALSE(missing.ok());
  CHECK(codeOf(missing) == "not_found");
  CHECK(missing.error().httpStatus == 404);
  CHECK(contains(missing.error().message, "inspect container " + s.name("missing") + ": "));
  CHECK(contains(missing.error().message, "No such container"));

  s.createContainer("dup", "dup");
  auto dup = runSync(io, client.createContainer(s.name("dup"), s.containerBody("dup")));
  REQUIRE_FALSE(dup.ok());
  CHECK(codeOf(dup) == "conflict");
  CHECK(contains(dup.error().message, "create container " + s.name("dup") + ": Conflict."));

  auto bad = runSync(
      io, client.createContainer(
              s.name("bad"),
              s.containerBody("bad", {{"HostConfig", {{"RestartPolicy", {{"Name", "bogus"}}}}}})));
  REQUIRE_FALSE(bad.ok());
  CHECK(codeOf(bad) == "invalid_argument");
  CHECK(contains(bad.error().message, "restart policy"));

  REQUIRE(runSync(io, client.createNetwork({{"Name", s.name("net")}, {"Labels", s.labels("net")}}))
              .ok());
  auto dupNet =
      runSync(io, client.createNetwork({{"Name", s.name("net")}, {"Labels", s.labels("net")}}));
  REQUIRE_FALSE(dupNet.ok());
  CHECK(codeOf(dupNet) == "conflict");
  CHECK(contains(dupNet.error().message, "create network " + s.name("net")));

  auto noStart = runSync(io, client.startContainer(s.name("missing")));
  CHECK(codeOf(noStart) == "not_found");
}

TEST_CASE("images: present, absent (escaped refs), and a pull that cannot succeed") {
  Session s;
  if (s.image.empty()) return;
  auto& io = s.io;
  auto& client = s.client;

  auto present = runSync(io, client.imagePresent(s.image));
  REQUIRE_MESSAGE(present.ok(), why(present));
  CHECK(present.value());

  // A slash, a tag and a digest go through the path intact: 404, not 400.
  for (const std::string ref :
       {"foundationd-test/does-not-exist:nope", "localhost:5000/foundationd-test/missing:v1",
        "foundationd-test/busybox@sha256:"
        "0000000000000000000000000000000000000000000000000000000000000000"}) {
    auto absent = runSync(io, client.imagePresent(ref));
    REQUIRE_MESSAGE(absent.ok(), (ref + ": " + why(absent)));
    CHECK_FALSE(absent.value());
  }

  const std::string ghost = "foundationd-test/ghost-" + s.run + ":v1";
  client.setPullTimeout(std::chrono::seconds(120));
  auto pulled = runSync(io, client.pullImage(ghost));
  REQUIRE_FALSE(pulled.ok());
  CHECK(contains(pulled.error().message,
                 "image " + ghost + " is not present locally and could not be pulled: "));
  MESSAGE("pull failure as reported: " << pulled.error().message);
  auto stillAbsent = runSync(io, client.imagePresent(ghost));
  REQUIRE(stillAbsent.ok());
  CHECK_FALSE(stillAbsent.value());
}

TEST_CASE("every Engine request is counted, per endpoint too") {
  Session s;
  if (s.image.empty()) return;
  auto& io = s.io;
  const auto before = s.client.requestCount();
  (void)runSync(io, s.client.inspectContainer(s.name("nothing-here")));
  (void)runSync(io, s.client.listContainers(s.mine()));
  (void)runSync(io, s.client.imagePresent(s.image));
  CHECK(s.client.requestCount() == before + 3);

  std::uint64_t notFound = 0;
  for (const auto& e : s.client.endpointCounts()) {
    if (e.endpoint == "GET /containers/{id}/json" && e.status == 404) notFound = e.count;
  }
  CHECK(notFound == 1);
}

TEST_CASE("a missing Engine socket is unavailable and names the socket") {
  boost::asio::io_context io;
  DockerClient client(io.get_executor(), "/nonexistent-fd/docker.sock");
  auto r = runSync(io, client.listContainers({}));
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "unavailable");
  CHECK(contains(r.error().message, "list containers: "));
  CHECK(contains(r.error().message, "/nonexistent-fd/docker.sock"));
  CHECK(client.requestCount() == 1);
}

TEST_CASE("pullImage reads the progress stream to its end and reports an error line") {
  boost::asio::io_context io;
  const std::string failLine =
      R"({"errorDetail":{"message":"manifest for example.org/team/app:1.2 not found"},)"
      R"("error":"manifest for example.org/team/app:1.2 not found"})";
  CannedEngine engine(
      io, {CannedEngine::chunked({R"({"status":"Pulling from team/app","id":"1.2"})"
                                  "\n{\"sta",
                                  R"(tus":"Download complete"})"
                                  "\n"}),
           CannedEngine::chunked({R"({"status":"Pulling from team/app"})"
                                  "\n",
                                  failLine + "\n"}),
           CannedEngine::plain(404, "Not Found", R"({"message":"pull access denied for ghost"})"),
           CannedEngine::chunked({"{\"status\":\"Digest: sha256:ab\"}"})});
  DockerClient client(io.get_executor(), engine.path());

  auto ok = runSync(io, client.pullImage("example.org/team/app"));
  CHECK_MESSAGE(ok.ok(), why(ok));

  auto failed = runSync(io, client.pullImage("example.org:5000/team/app:1.2"));
  REQUIRE_FALSE(failed.ok());
  CHECK(codeOf(failed) == "peer");
  CHECK(failed.error().message ==
        "image example.org:5000/team/app:1.2 is not present locally and could not be pulled: "
        "manifest for example.org/team/app:1.2 not found");

  auto denied = runSync(io, client.pullImage("ghost"));
  REQUIRE_FALSE(denied.ok());
  CHECK(codeOf(denied) == "not_found");
  CHECK(denied.error().message ==
        "image ghost is not present locally and could not be pulled: pull access denied for ghost");

  auto byDigest = runSync(io, client.pullImage("team/app@sha256:ab"));
  CHECK_MESSAGE(byDigest.ok(), why(byDigest));

  // A bare name pulls :latest, never every tag; a digest goes in `tag`.
  REQUIRE(engine.targets().size() == 4);
  CHECK(engine.targets()[0] ==
        "/v1.41/images/create?fromImage=example.org%2Fteam%2Fapp&tag=latest");
  CHECK(engine.targets()[1] ==
        "/v1.41/images/create?fromImage=example.org%3A5000%2Fteam%2Fapp&tag=1.2");
  CHECK(engine.targets()[2] == "/v1.41/images/create?fromImage=ghost&tag=latest");
  CHECK(engine.targets()[3] == "/v1.41/images/create?fromImage=team%2Fapp&tag=sha256%3Aab");
  CHECK(client.requestCount() == 4);
}
