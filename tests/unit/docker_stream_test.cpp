// The Engine's stream formats, split every way (docker_stream.hpp), and the
// events and exec behaviour of FakeDocker that controller tests rely on.
#include "controllers/docker/docker_stream.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include "fakes/fake_docker.hpp"
#include "fakes/run.hpp"

using foundationd::ErrorCode;
using foundationd::Status;
using foundationd::docker::DockerEvent;
using foundationd::docker::eventMatches;
using foundationd::docker::ExecStreamDemuxer;
using foundationd::docker::JsonStreamSplitter;
using foundationd::docker::parseEvent;
using foundationd::testing::FakeDocker;

namespace {

// Real API 1.41 events, as dockerd 20.10 wrote them (trimmed ids).
const std::string kDie =
    R"({"status":"die","id":"fef6d4af","from":"busybox","Type":"container","Action":"die",)"
    R"("Actor":{"ID":"fef6d4af","Attributes":{"exitCode":"137","image":"busybox",)"
    R"("name":"web","probe":"p1"}},"scope":"local","time":1795323183,)"
    R"("timeNano":1795323183031552930})";
const std::string kNetwork =
    R"({"Type":"network","Action":"connect","Actor":{"ID":"728e53d8","Attributes":)"
    R"({"container":"fef6d4af","name":"net-a","type":"bridge"}},"scope":"local",)"
    R"("time":1795323184,"timeNano":1795323184000000001})";
const std::string kVolume =
    R"({"Type":"volume","Action":"destroy","Actor":{"ID":"data","Attributes":{"driver":"local"}},)"
    R"("scope":"local","time":1795323185,"timeNano":1795323185000000000})";

std::string code(ErrorCode c) {
  return foundationd::toString(c);
}

// Feeds `stream` to a fresh splitter in pieces of `step` bytes.
std::vector<std::string> splitInSteps(const std::string& stream, std::size_t step) {
  JsonStreamSplitter splitter;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < stream.size(); i += step) {
    for (auto& v : splitter.feed(std::string_view(stream).substr(i, step))) out.push_back(v);
  }
  return out;
}

std::string frame(std::uint8_t stream, const std::string& payload) {
  const auto n = static_cast<std::uint32_t>(payload.size());
  std::string out = {static_cast<char>(stream),
                     0,
                     0,
                     0,
                     static_cast<char>(n >> 24),
                     static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8),
                     static_cast<char>(n)};
  return out + payload;
}

struct Demuxed {
  std::string out, err, system;
  int pieces = 0;
  int emptyPieces = 0;  // never wanted: a 0-byte frame produces nothing
  bool ok = true;
};

// Feeds `stream` to a fresh demuxer in pieces of `step` bytes.
Demuxed demux(const std::string& stream, std::size_t step, bool* boundary = nullptr) {
  ExecStreamDemuxer d;
  Demuxed got;
  const auto sink = [&](ExecStreamDemuxer::Stream s, std::string_view piece) {
    ++got.pieces;
    got.emptyPieces += piece.empty() ? 1 : 0;
    if (s == ExecStreamDemuxer::Stream::out) got.out += piece;
    if (s == ExecStreamDemuxer::Stream::err) got.err += piece;
    if (s == ExecStreamDemuxer::Stream::system) got.system += piece;
  };
  for (std::size_t i = 0; i < stream.size() && got.ok; i += step) {
    got.ok = d.feed(std::string_view(stream).substr(i, step), sink);
  }
  if (boundary) *boundary = d.atFrameBoundary();
  return got;
}

}  // namespace

TEST_CASE("JsonStreamSplitter: one value per event, however the chunks fall") {
  const std::string stream = kDie + "\n" + kNetwork + "\n" + kVolume + "\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{64},
                           std::size_t{100}, stream.size()}) {
    CAPTURE(step);
    const auto values = splitInSteps(stream, step);
    REQUIRE(values.size() == 3);
    CHECK(values[0] == kDie);
    CHECK(values[1] == kNetwork);
    CHECK(values[2] == kVolume);
  }
}

TEST_CASE("JsonStreamSplitter: no newline needed, brackets and quotes inside strings") {
  JsonStreamSplitter splitter;
  const std::string tricky = R"({"a":"}{ \"quoted\" ] [","b":[1,{"c":"\\"}]})";
  auto values = splitter.feed(tricky + tricky + "\r\n  " + R"({"x":)");
  REQUIRE(values.size() == 2);
  CHECK(values[0] == tricky);
  CHECK(values[1] == tricky);
  CHECK(splitter.pendingBytes() == 5);
  values = splitter.feed("1}");
  REQUIRE(values.size() == 1);
  CHECK(values[0] == R"({"x":1})");
  CHECK(splitter.pendingBytes() == 0);
  CHECK(splitter.feed("\n\n \t").empty());
}

TEST_CASE("JsonStreamSplitter: stray text comes out on its own; oversized values stop it") {
  JsonStreamSplitter splitter;
  auto values = splitter.feed("garbage line\n{\"a\":1}oops{\"b\":2}");
  REQUIRE(values.size() == 4);
  CHECK(values[0] == "garbage line");
  CHECK(values[1] == R"({"a":1})");
  CHECK(values[2] == "oops");
  CHECK(values[3] == R"({"b":2})");

  JsonStreamSplitter small(16);
  CHECK(small.feed(R"({"a":"0123456789abcdef"})").empty());
  CHECK(small.overflowed());
  CHECK(small.feed(R"({"a":1})").empty());
}

TEST_CASE("parseEvent reads API 1.41 events") {
  auto die = parseEvent(kDie);
  REQUIRE(die.has_value());
  CHECK(die->type == "container");
  CHECK(die->action == "die");
  CHECK(die->id == "fef6d4af");
  CHECK(die->name == "web");
  CHECK(die->attributes.at("exitCode") == "137");
  CHECK(die->attributes.at("probe") == "p1");
  CHECK(die->timeNano == 1795323183031552930);

  auto net = parseEvent(kNetwork);
  REQUIRE(net.has_value());
  CHECK(net->type == "network");
  CHECK(net->name == "net-a");
  CHECK(net->attributes.at("container") == "fef6d4af");

  auto vol = parseEvent(kVolume);
  REQUIRE(vol.has_value());
  CHECK(vol->name == "data");  // a volume's name is its Actor.ID

  auto health = parseEvent(
      R"({"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"x"},"time":5})");
  REQUIRE(health.has_value());
  CHECK(health->action == "health_status: unhealthy");
  CHECK(health->attributes.empty());
  CHECK(health->timeNano == 5'000'000'000);

  CHECK_FALSE(parseEvent("not json").has_value());
  CHECK_FALSE(parseEvent("[1,2]").has_value());
  CHECK_FALSE(parseEvent(R"({"Type":"container"})").has_value());
}

TEST_CASE("eventMatches: labels select container events; networks and volumes always pass") {
  const auto die = parseEvent(kDie).value();
  CHECK(eventMatches(die, {}));
  CHECK(eventMatches(die, {{"probe", "p1"}}));
  CHECK(eventMatches(die, {{"probe", "p1"}, {"name", "web"}}));
  CHECK_FALSE(eventMatches(die, {{"probe", "p2"}}));
  CHECK_FALSE(eventMatches(die, {{"probe", "p1"}, {"other", "x"}}));
  CHECK(eventMatches(parseEvent(kNetwork).value(), {{"probe", "p2"}}));
  CHECK(eventMatches(parseEvent(kVolume).value(), {{"probe", "p2"}}));
}

TEST_CASE("ExecStreamDemuxer: frames split across reads, empty and large frames") {
  const std::string big(300'000, 'b');  // several reads' worth in one frame
  const std::string stream = frame(1, "hello ") + frame(2, "err\n") + frame(1, "") +
                             frame(0, "stdin-as-out ") + frame(1, big) + frame(2, "") +
                             frame(1, "end");
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{9},
                           std::size_t{4096}, stream.size()}) {
    CAPTURE(step);
    bool boundary = false;
    const auto got = demux(stream, step, &boundary);
    CHECK(got.ok);
    CHECK(boundary);
    CHECK(got.out == "hello stdin-as-out " + big + "end");
    CHECK(got.err == "err\n");
    CHECK(got.system.empty());
    CHECK(got.emptyPieces == 0);
  }
  // A large frame is handed on as it arrives, not buffered whole.
  CHECK(demux(stream, 4096).pieces > 70);
}

TEST_CASE("ExecStreamDemuxer: a cut stream is not at a frame boundary; bad headers fail") {
  const std::string whole = frame(1, "abcdef");
  bool boundary = true;
  auto got = demux(whole.substr(0, 11), 4, &boundary);
  CHECK(got.ok);
  CHECK(got.out == "abc");
  CHECK_FALSE(boundary);
  demux(whole.substr(0, 5), 5, &boundary);  // inside the header
  CHECK_FALSE(boundary);

  got = demux(frame(3, "exec failed"), 100);
  CHECK(got.system == "exec failed");

  got = demux(frame(1, "ok") + frame(7, "?"), 100);
  CHECK_FALSE(got.ok);
  // Unframed text (a Tty exec) is refused, not misread as frames.
  CHECK_FALSE(demux("hello world\n", 100).ok);
}

// --- FakeDocker: what scheduler tests rely on ---

namespace {

nlohmann::json body(const std::string& role) {
  return {{"Image", "busybox"}, {"Labels", {{"fd.project", "p"}, {"role", role}}}};
}

struct Recorder {
  std::vector<std::string> seen;  // "type action name"
  std::optional<Status> ended;
};

}  // namespace

TEST_CASE("FakeDocker: mutations emit Engine-like events to filtered subscribers") {
  boost::asio::io_context io;
  FakeDocker docker;
  docker.images.insert("busybox");
  Recorder all, mine;
  auto watch = [&](Recorder& r, foundationd::docker::LabelFilter f) {
    boost::asio::co_spawn(io,
                          docker.events(f,
                                        [&r](const DockerEvent& e) {
                                          r.seen.push_back(e.type + " " + e.action + " " + e.name);
                                          return e.action != "destroy" || e.name != "web";
                                        }),
                          [&r](std::exception_ptr, Status s) { r.ended = s; });
  };
  watch(all, {});
  watch(mine, {{"role", "web"}});
  io.poll();
  CHECK(docker.eventSubscribers() == 2);

  auto script = [&]() -> foundationd::docker::Task<void> {
    const nlohmann::json network = {{"Name", "net"}, {"Labels", nlohmann::json::object()}};
    const auto webBody = body("web");
    const auto dbBody = body("db");
    (void)co_await docker.createNetwork(network);
    auto web = co_await docker.createContainer("web", webBody);
    auto db = co_await docker.createContainer("db", dbBody);
    const std::vector<std::string> none;
    (void)co_await docker.connectNetwork("net", db.value(), none);
    (void)co_await docker.startContainer(web.value());
    (void)co_await docker.startContainer(db.value());
    docker.crash("db", 1);
    (void)co_await docker.stopContainer(web.value(), std::chrono::seconds(1));
    (void)co_await docker.removeContainer(web.value(), false);
  };
  boost::asio::co_spawn(io, script(), boost::asio::detached);
  io.run();  // until both subscribers stopped at "destroy web"

  REQUIRE(mine.ended.has_value());
  CHECK(mine.ended->ok());  // the callback said stop
  CHECK(mine.seen == std::vector<std::string>{"network create net", "container create web",
                                              "network connect net", "container start web",
                                              "container kill web", "container die web",
                                              "container stop web", "container destroy web"});
  CHECK(all.ended->ok());
  CHECK(all.seen.size() == 11);  // + create, start and die of db
  CHECK(std::find(all.seen.begin(), all.seen.end(), "container die db") != all.seen.end());
  CHECK(docker.eventSubscribers() == 0);
}

TEST_CASE("FakeDocker: endEvents ends waiting subscribers; failNext refuses one") {
  boost::asio::io_context io;
  FakeDocker docker;
  Recorder r;
  boost::asio::co_spawn(io,
                        docker.events({},
                                      [&r](const DockerEvent& e) {
                                        r.seen.push_back(e.action);
                                        return true;
                                      }),
                        [&r](std::exception_ptr, Status s) { r.ended = s; });
  io.poll();
  DockerEvent custom;
  custom.type = "container";
  custom.action = "oom";
  docker.emit(custom);
  docker.endEvents();
  io.poll();
  CHECK(r.seen == std::vector<std::string>{"oom"});  // queued events first, then the end
  REQUIRE(r.ended.has_value());
  REQUIRE_FALSE(r.ended->ok());
  CHECK(code(r.ended->error().code) == "unavailable");
  CHECK(docker.emitted.size() == 1);

  docker.failNext["events"] = foundationd::Error::make(ErrorCode::unavailable, "down");
  auto refused =
      foundationd::testing::run(docker.events({}, [](const DockerEvent&) { return true; }));
  CHECK_FALSE(refused.ok());
}

TEST_CASE("FakeDocker: exec is scripted, checks the container, records the call") {
  FakeDocker docker;
  docker.images.insert("busybox");
  auto id = foundationd::testing::run(docker.createContainer("db", body("db")));
  REQUIRE(id.ok());
  foundationd::docker::ExecOptions opts;
  opts.stdinData = "s3cret";
  const std::vector<std::string> cmd = {"psql", "-f", "-"};

  auto notRunning = foundationd::testing::run(docker.exec("db", cmd, opts));
  REQUIRE_FALSE(notRunning.ok());
  CHECK(code(notRunning.error().code) == "conflict");
  auto missing = foundationd::testing::run(docker.exec("nope", cmd, opts));
  CHECK(code(missing.error().code) == "not_found");

  REQUIRE(foundationd::testing::run(docker.startContainer("db")).ok());
  auto plain = foundationd::testing::run(docker.exec("db", cmd, opts));
  REQUIRE(plain.ok());
  CHECK(plain->exitCode == 0);

  docker.execHandler =
      [](const FakeDocker::ExecCall& call) -> foundationd::Result<foundationd::docker::ExecResult> {
    return foundationd::docker::ExecResult{3, "got " + call.options.stdinData.value_or(""),
                                           "err\n"};
  };
  auto scripted = foundationd::testing::run(docker.exec("db", cmd, opts));
  REQUIRE(scripted.ok());
  CHECK(scripted->exitCode == 3);
  CHECK(scripted->stdoutText == "got s3cret");
  CHECK(scripted->stderrText == "err\n");
  REQUIRE(docker.execCalls.size() == 2);
  CHECK(docker.execCalls[1].cmd == cmd);
  CHECK(docker.log.back() == "exec db psql");
  CHECK(docker.emitted.back().action == "exec_die");
  CHECK(docker.emitted.back().attributes.at("exitCode") == "3");

  opts.maxOutput = 4;
  auto tooMuch = foundationd::testing::run(docker.exec("db", cmd, opts));
  CHECK(code(tooMuch.error().code) == "protocol");
}
