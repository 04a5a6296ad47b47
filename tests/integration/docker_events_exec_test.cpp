// DockerClient::events and DockerClient::exec against the real Docker Engine
// at /var/run/docker.sock (TESTING.md layer 2). Everything created carries a
// per-run label and is removed at the end, failures included.
//
// The Engine going away is shown through a relay in front of the real socket
// whose connections are then closed, which is what the kernel does to them
// when dockerd stops (dockerd 20.10 on SIGTERM closes an events stream
// mid-chunk: no terminating chunk). The shared dockerd is never stopped, and
// no second dockerd is started: a second instance with --bridge=none deletes
// the host's docker0 at startup and breaks every other user of the machine.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/async.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/transport/unix_http_client.hpp"
#include "integration/docker_support.hpp"

using foundationd::Status;
using foundationd::docker::DockerClient;
using foundationd::docker::DockerEvent;
using foundationd::docker::ExecOptions;
using foundationd::docker::LabelFilter;
using foundationd::testing::kDockerSocket;
using foundationd::testing::runSync;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kRunLabel = "foundationd.events-exec-test";

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

// One Engine session: a client, a unique run label, cleanup of what carries it.
struct Session {
  boost::asio::io_context io;
  DockerClient client{io.get_executor()};
  std::string run =
      "fdev-" + std::to_string(::getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  std::string image = foundationd::testing::testImage();

  std::string name(const std::string& n) const { return run + "-" + n; }
  LabelFilter mine() const { return {{kRunLabel, run}}; }

  // A container that idles until stopped, with no network (it needs none).
  // `label` is the run label's value: run() for this session's, anything
  // else for a container the subscription must not see.
  std::string createContainer(const std::string& n, const std::string& label) {
    const json body = {{"Image", image},
                       {"Cmd", {"sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"}},
                       {"Labels", {{kRunLabel, label}}},
                       {"HostConfig", {{"NetworkMode", "none"}}}};
    auto id = runSync(io, client.createContainer(name(n), body));
    REQUIRE_MESSAGE(id.ok(), why(id));
    created.push_back(id.value());
    return id.value();
  }
  std::string startedContainer(const std::string& n) {
    const auto id = createContainer(n, run);
    auto started = runSync(io, client.startContainer(id));
    REQUIRE_MESSAGE(started.ok(), why(started));
    return id;
  }

  // POST /containers/{id}/kill: a death behind foundationd's back.
  void kill(const std::string& id) {
    foundationd::transport::UnixHttpClient raw(io.get_executor(), kDockerSocket);
    foundationd::transport::HttpRequest req;
    req.method = "POST";
    req.target = "/v1.41/containers/" + id + "/kill";
    auto r = runSync(io, raw.request(req));
    REQUIRE_MESSAGE(r.ok(), why(r));
    REQUIRE(r->status == 204);
  }

  // Runs the io_context until `done()` or `limit` passed; whether done.
  bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    return runSync(io, [&]() -> boost::asio::awaitable<bool> {
      while (!done()) {
        if (Clock::now() >= until) co_return false;
        co_await foundationd::sleepFor(5ms);
      }
      co_return true;
    }());
  }

  std::vector<std::string> created;  // containers, also those without our label
  std::vector<std::string> rawDeletes;

  ~Session() {
    if (image.empty()) return;
    for (const auto& id : created) (void)runSync(io, client.removeContainer(id, true));
    foundationd::transport::UnixHttpClient raw(io.get_executor(), kDockerSocket);
    for (const auto& target : rawDeletes) {
      foundationd::transport::HttpRequest req;
      req.method = "DELETE";
      req.target = target;
      (void)runSync(io, raw.request(req));
    }
    auto nets = runSync(io, client.listNetworks(mine()));
    if (nets) {
      for (const auto& n : nets.value()) (void)runSync(io, client.removeNetwork(n.id));
    }
  }
};

// A subscription running in the background of the session's io_context.
// Destroying it cancels the call (asio terminal cancellation) and runs the
// io_context until the call returned, so a failed REQUIRE cannot leave a
// call running against destroyed test state.
class Subscription {
 public:
  struct Seen {
    DockerEvent event;
    Clock::time_point at;
  };
  using Stop = std::function<bool(const DockerEvent&)>;

  Subscription(Session& s, DockerClient& client, Stop stopAfter)
      : session_(s), state_(std::make_shared<State>()) {
    state_->stopAfter = std::move(stopAfter);
    auto st = state_;
    boost::asio::co_spawn(
        s.io,
        client.events(s.mine(),
                      [st](const DockerEvent& e) {
                        if (st->detached) return false;
                        st->seen.push_back({e, Clock::now()});
                        return !st->stopAfter(e);
                      }),
        boost::asio::bind_cancellation_slot(
            st->cancel.slot(), [st](std::exception_ptr e, Status r) {
              // An exception is an end events() must not have: say so.
              st->ended = e ? Status(foundationd::Error::make(foundationd::ErrorCode::internal,
                                                              "events() threw"))
                            : std::move(r);
            }));
  }
  ~Subscription() {
    if (!state_->ended) {
      state_->cancel.emit(boost::asio::cancellation_type::terminal);
      session_.waitFor([st = state_] { return st->ended.has_value(); }, 5s);
    }
    state_->detached = true;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  const std::optional<Status>& ended() const { return state_->ended; }
  const Seen* find(const std::string& id, const std::string& action) const {
    for (const auto& s : state_->seen) {
      if (s.event.id == id && s.event.action == action) return &s;
    }
    return nullptr;
  }
  std::vector<std::string> actionsOf(const std::string& id) const {
    std::vector<std::string> out;
    for (const auto& s : state_->seen) {
      if (s.event.id == id) out.push_back(s.event.action);
    }
    return out;
  }
  void cancel() { state_->cancel.emit(boost::asio::cancellation_type::terminal); }

 private:
  struct State {
    std::vector<Seen> seen;
    std::optional<Status> ended;
    Stop stopAfter;
    bool detached = false;
    boost::asio::cancellation_signal cancel;  // lives until the call completed
  };
  Session& session_;
  std::shared_ptr<State> state_;
};

// The subscription is live once the Engine answered GET /events; there is
// no signal for that, so give it a moment on the io_context.
void letSubscribe(Session& s) {
  s.waitFor([] { return false; }, 300ms);
}

// A Unix-socket relay to the real Engine; cut() closes every relayed
// connection on both sides, as dockerd's exit does.
class EngineRelay {
 public:
  explicit EngineRelay(boost::asio::io_context& io) : state_(std::make_shared<State>(io)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fd-relay-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/docker.sock";
    state_->acceptor.open();
    state_->acceptor.bind(Local::endpoint(path_));
    state_->acceptor.listen();
    boost::asio::co_spawn(io, accept(state_), boost::asio::detached);
  }
  ~EngineRelay() {
    cut();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  EngineRelay(const EngineRelay&) = delete;
  EngineRelay& operator=(const EngineRelay&) = delete;

  const std::string& path() const { return path_; }
  void cut() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& sock : state_->sockets) {
      sock->shutdown(Local::socket::shutdown_both, ignored);
      sock->close(ignored);
    }
  }

 private:
  using Local = boost::asio::local::stream_protocol;
  struct State {
    explicit State(boost::asio::io_context& io) : acceptor(io) {}
    Local::acceptor acceptor;
    std::vector<std::shared_ptr<Local::socket>> sockets;
  };
  static constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  static boost::asio::awaitable<void> pump(std::shared_ptr<Local::socket> from,
                                           std::shared_ptr<Local::socket> to) {
    std::vector<char> buf(16 * 1024);
    for (;;) {
      auto [rec, n] = co_await from->async_read_some(boost::asio::buffer(buf), kTuple);
      if (rec) break;
      auto [wec, wn] =
          co_await boost::asio::async_write(*to, boost::asio::buffer(buf.data(), n), kTuple);
      if (wec) break;
    }
    boost::system::error_code ignored;
    to->shutdown(Local::socket::shutdown_send, ignored);
  }

  static boost::asio::awaitable<void> accept(std::shared_ptr<State> st) {
    for (;;) {
      auto [aec, sock] = co_await st->acceptor.async_accept(kTuple);
      if (aec) co_return;
      auto client = std::make_shared<Local::socket>(std::move(sock));
      auto engine = std::make_shared<Local::socket>(st->acceptor.get_executor());
      auto [cec] = co_await engine->async_connect(Local::endpoint(kDockerSocket), kTuple);
      if (cec) continue;
      st->sockets.push_back(client);
      st->sockets.push_back(engine);
      const auto ex = st->acceptor.get_executor();
      boost::asio::co_spawn(ex, pump(client, engine), boost::asio::detached);
      boost::asio::co_spawn(ex, pump(engine, client), boost::asio::detached);
    }
  }

  std::shared_ptr<State> state_;
  std::string dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("events: a labelled container's lifecycle arrives in order, promptly; others' never") {
  Session s;
  if (s.image.empty()) return;
  std::string target;  // set below; the subscription stops at its destroy
  Subscription sub(s, s.client,
                   [&](const DockerEvent& e) { return e.id == target && e.action == "destroy"; });
  letSubscribe(s);

  target = s.createContainer("target", s.run);
  const std::string other = s.createContainer("other", s.run + "-not-mine");
  for (const auto& id : {target, other}) {
    auto started = runSync(s.io, s.client.startContainer(id));
    REQUIRE_MESSAGE(started.ok(), why(started));
  }
  s.kill(other);
  const auto killedAt = Clock::now();
  s.kill(target);
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.find(target, "die") != nullptr; }, 5s),
                  "no die event within 5 s");
  const auto dieLatency = sub.find(target, "die")->at - killedAt;

  REQUIRE(runSync(s.io, s.client.removeContainer(other, true)).ok());
  const auto removedAt = Clock::now();
  REQUIRE(runSync(s.io, s.client.removeContainer(target, false)).ok());
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.ended().has_value(); }, 5s),
                  "the subscription did not stop at destroy");
  CHECK_MESSAGE(sub.ended()->ok(), why(*sub.ended()));  // the callback stopped it
  const auto destroyLatency = sub.find(target, "destroy")->at - removedAt;

  CHECK(sub.actionsOf(target) ==
        std::vector<std::string>{"create", "start", "kill", "die", "destroy"});
  CHECK(sub.actionsOf(other).empty());
  const auto& die = sub.find(target, "die")->event;
  CHECK(die.type == "container");
  CHECK(die.name == s.name("target"));
  CHECK(die.attributes.at(kRunLabel) == s.run);
  CHECK(die.attributes.at("exitCode") == "137");
  CHECK(die.attributes.at("image") == s.image);
  CHECK(die.timeNano > 0);
  // Drift repair must start within a second of the change.
  CHECK(dieLatency < 1s);
  CHECK(destroyLatency < 1s);
  MESSAGE("die after kill: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(dieLatency).count()
          << " ms; destroy after remove: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(destroyLatency).count()
          << " ms");
}

TEST_CASE("events: silence outlasts the request timeout; networks and volumes pass the label") {
  Session s;
  if (s.image.empty()) return;
  DockerClient watcher(s.io.get_executor());
  watcher.setRequestTimeout(100ms);  // must not apply to the event stream
  const std::string net = s.name("net");
  const std::string vol = s.name("vol");
  Subscription sub(s, watcher,
                   [&](const DockerEvent& e) { return e.type == "volume" && e.name == vol; });
  s.waitFor([] { return false; }, 1500ms);  // 15 request timeouts of silence
  REQUIRE_FALSE(sub.ended().has_value());

  const json netBody = {{"Name", net}, {"Labels", {{kRunLabel, s.run}}}};
  auto netId = runSync(s.io, s.client.createNetwork(netBody));
  REQUIRE_MESSAGE(netId.ok(), why(netId));
  const json volBody = {{"Name", vol}, {"Labels", {{kRunLabel, s.run}}}};
  REQUIRE(runSync(s.io, s.client.createVolume(volBody)).ok());
  s.rawDeletes.push_back("/v1.41/volumes/" + vol);
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.ended().has_value(); }, 5s), "no volume event");
  CHECK_MESSAGE(sub.ended()->ok(), why(*sub.ended()));
  const auto* created = sub.find(netId.value(), "create");
  REQUIRE(created != nullptr);
  CHECK(created->event.type == "network");
  CHECK(created->event.name == net);
  CHECK(created->event.attributes.at("type") == "bridge");
}

TEST_CASE("events: the Engine going away ends the stream as unavailable, at once") {
  Session s;
  if (s.image.empty()) return;
  EngineRelay relay(s.io);
  DockerClient viaRelay(s.io.get_executor(), relay.path());
  Subscription sub(s, viaRelay, [](const DockerEvent&) { return false; });
  letSubscribe(s);
  const auto id = s.createContainer("alive", s.run);  // proves the stream is live
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.find(id, "create") != nullptr; }, 5s),
                  "no event through the relay");

  relay.cut();
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.ended().has_value(); }, 5s),
                  "a closed Engine connection was not noticed");
  REQUIRE_FALSE(sub.ended()->ok());
  CHECK(codeOf(*sub.ended()) == "unavailable");
  CHECK(contains(sub.ended()->error().message, "watch Engine events: "));
  CHECK(contains(sub.ended()->error().message, "is dockerd running"));
  MESSAGE("as reported: " << sub.ended()->error().message);

  // A new subscription fails fast while the Engine is away.
  auto again = runSync(s.io, viaRelay.events(s.mine(), [](const DockerEvent&) { return true; }));
  CHECK(codeOf(again) == "unavailable");
}

TEST_CASE("events: cancelling the coroutine ends a silent subscription") {
  Session s;
  if (s.image.empty()) return;
  Subscription sub(s, s.client, [](const DockerEvent&) { return false; });
  letSubscribe(s);
  sub.cancel();
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.ended().has_value(); }, 5s), "cancel did nothing");
  CHECK(codeOf(*sub.ended()) == "unavailable");
  CHECK(sub.ended()->error().message == "watch Engine events: cancelled");
}

TEST_CASE("events: cancelled before its first request, it ends as cancelled, not thrown") {
  Session s;
  if (s.image.empty()) return;
  Subscription sub(s, s.client, [](const DockerEvent&) { return false; });
  sub.cancel();  // before the coroutine has run at all
  REQUIRE_MESSAGE(s.waitFor([&] { return sub.ended().has_value(); }, 5s), "cancel did nothing");
  REQUIRE_FALSE(sub.ended()->ok());
  CHECK(sub.ended()->error().message == "watch Engine events: cancelled");
}

TEST_CASE("exec: stdin in, stdout and stderr apart, the exit code") {
  Session s;
  if (s.image.empty()) return;
  const auto id = s.startedContainer("exec");
  const auto before = s.client.requestCount();

  ExecOptions opts;
  opts.stdinData = "hello";
  const std::vector<std::string> cmd = {"sh", "-c", "cat; echo err >&2; exit 3"};
  auto r = runSync(s.io, s.client.exec(s.name("exec"), cmd, opts));
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK(r->stdoutText == "hello");
  CHECK(r->stderrText == "err\n");
  CHECK(r->exitCode == 3);
  CHECK(s.client.requestCount() >= before + 3);  // create, start, inspect
  bool upgraded = false;  // we asked for "Connection: Upgrade"; the Engine said 101
  for (const auto& e : s.client.endpointCounts()) {
    if (e.endpoint == "POST /exec/{id}/start" && e.status == 101) upgraded = true;
  }
  CHECK(upgraded);

  SUBCASE("no stdin; user and env") {
    ExecOptions as;
    as.user = "nobody";
    as.env = {"GREETING=hi there"};
    const std::vector<std::string> who = {"sh", "-c",
                                          "id -u; echo \"$GREETING\"; read x || echo eof"};
    auto w = runSync(s.io, s.client.exec(id, who, as));
    REQUIRE_MESSAGE(w.ok(), why(w));
    CHECK(w->stdoutText == "65534\nhi there\neof\n");
    CHECK(w->stderrText == "");
    CHECK(w->exitCode == 0);
  }
  SUBCASE("1 MiB out, 1 MiB through stdin, both ways at once") {
    const std::vector<std::string> head = {"head", "-c", "1048576", "/dev/zero"};
    auto big = runSync(s.io, s.client.exec(id, head, ExecOptions{}));
    REQUIRE_MESSAGE(big.ok(), why(big));
    CHECK(big->stdoutText == std::string(1 << 20, '\0'));
    CHECK(big->exitCode == 0);

    std::string input(1 << 20, 'x');
    for (std::size_t i = 0; i < input.size(); i += 4099) input[i] = static_cast<char>('a' + i % 26);
    ExecOptions piped;
    piped.stdinData = input;
    const std::vector<std::string> tee = {"sh", "-c", "tee /dev/stderr"};
    auto echoed = runSync(s.io, s.client.exec(id, tee, piped));
    REQUIRE_MESSAGE(echoed.ok(), why(echoed));
    CHECK(echoed->stdoutText == input);
    CHECK(echoed->stderrText == input);
  }
  SUBCASE("more output than maxOutput is an error, not a truncation") {
    ExecOptions small;
    small.maxOutput = 64 * 1024;
    const std::vector<std::string> head = {"head", "-c", "1048576", "/dev/zero"};
    auto over = runSync(s.io, s.client.exec(id, head, small));
    REQUIRE_FALSE(over.ok());
    CHECK(codeOf(over) == "protocol");
    CHECK(contains(over.error().message, "exec head in container " + id + ": "));
    CHECK(contains(over.error().message, "65536"));
  }
}

TEST_CASE("exec: what the Engine says about commands that cannot run, and about containers") {
  Session s;
  if (s.image.empty()) return;
  s.startedContainer("exec");
  const std::vector<std::string> missing = {"no-such-command-fd", "--flag"};
  auto r = runSync(s.io, s.client.exec(s.name("exec"), missing, ExecOptions{}));
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((r->exitCode == 126 || r->exitCode == 127));
  CHECK(contains(r->stdoutText, "no-such-command-fd"));
  MESSAGE("exit " << r->exitCode << ", Engine says: " << r->stdoutText);

  const std::vector<std::string> cmd = {"true"};
  auto gone = runSync(s.io, s.client.exec(s.name("nothing-here"), cmd, ExecOptions{}));
  CHECK(codeOf(gone) == "not_found");
  CHECK(contains(gone.error().message, "exec true in container " + s.name("nothing-here")));

  s.createContainer("idle", s.run);  // created, never started
  auto idle = runSync(s.io, s.client.exec(s.name("idle"), cmd, ExecOptions{}));
  CHECK(codeOf(idle) == "conflict");
  CHECK(contains(idle.error().message, "is not running"));
}

TEST_CASE("exec: a timeout is ErrorCode::timeout, says the process stays, never shows stdin") {
  Session s;
  if (s.image.empty()) return;
  s.startedContainer("exec");
  ExecOptions opts;
  opts.timeout = 500ms;
  opts.stdinData = "hunter2-password";
  const std::vector<std::string> cmd = {"sh", "-c", "sleep 30", "argument-not-shown"};
  const auto start = Clock::now();
  auto r = runSync(s.io, s.client.exec(s.name("exec"), cmd, opts));
  const auto took = Clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "timeout");
  CHECK(contains(r.error().message, "exec sh in container " + s.name("exec")));
  CHECK(contains(r.error().message, "500 ms"));
  CHECK(contains(r.error().message, "left running"));
  CHECK_FALSE(contains(r.error().message, "hunter2"));
  CHECK_FALSE(contains(r.error().message, "argument-not-shown"));
  CHECK(took < 10s);  // not the 30 s of the command

  // The client is fine afterwards.
  const std::vector<std::string> echo = {"echo", "after"};
  auto next = runSync(s.io, s.client.exec(s.name("exec"), echo, ExecOptions{}));
  REQUIRE_MESSAGE(next.ok(), why(next));
  CHECK(next->stdoutText == "after\n");
}
