// UnixHttpClient against a real Beast HTTP/1.1 server on a Unix socket in a
// temporary directory, run on the same io_context (STYLE.md "Tests").
#include "controllers/transport/unix_http_client.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using local = asio::local::stream_protocol;
using foundationd::Result;
using foundationd::Status;
using foundationd::transport::HijackedConnection;
using foundationd::transport::HttpRequest;
using foundationd::transport::HttpResponse;
using foundationd::transport::UnixHttpClient;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// What the server saw and how it misbehaves; shared with its coroutines.
struct ServerState {
  explicit ServerState(asio::io_context& io) : acceptor(io) {}
  local::acceptor acceptor;
  int connections = 0;
  int requests = 0;
  bool closeAfterResponse = false;  // answer with keep-alive, then close anyway
  bool dropReusedRequests = false;  // on a reused connection: read, close, never answer
  std::string lastUpgradeHeader;    // the Upgrade header of the last "/raw" request
};

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(kTuple);
}

// "/chunks": five chunks with pauses between them, so they arrive apart.
asio::awaitable<bool> sendChunks(local::socket& sock) {
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain");
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  auto [hec, hn] = co_await http::async_write_header(sock, sr, kTuple);
  if (hec) co_return false;
  for (int i = 0; i < 5; ++i) {
    co_await pause(std::chrono::milliseconds(30));
    const std::string piece = "piece-" + std::to_string(i) + "\n";
    auto [ec, n] = co_await asio::async_write(sock, http::make_chunk(asio::buffer(piece)), kTuple);
    if (ec) co_return false;
  }
  auto [ec, n] = co_await asio::async_write(sock, http::make_chunk_last(), kTuple);
  co_return !ec;
}

// "/chunks-then-die": one chunk, then the server goes away mid-body (what a
// stopping dockerd does to an events stream).
asio::awaitable<void> sendChunkThenClose(local::socket& sock) {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\nfirst\n\r\n";
  co_await asio::async_write(sock, asio::buffer(head), kTuple);
  co_await pause(std::chrono::milliseconds(30));
  boost::system::error_code ignored;
  sock.shutdown(local::socket::shutdown_both, ignored);
  sock.close(ignored);
}

// "/raw" (POST): answers like the Docker Engine's exec start: "101 UPGRADED"
// when the request asked for an upgrade, else "200 OK", with the first raw
// bytes ("hello:") in the same write as the header. Then echoes every byte
// upper-cased until the client half-closes, sends "bye" and closes.
// "/raw-silent": the 101 header, then nothing for an hour.
asio::awaitable<void> rawEcho(local::socket& sock, boost::beast::flat_buffer& buffer, bool upgrade,
                              bool silent) {
  std::string head =
      upgrade ? "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
              : "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n";
  if (silent) {
    co_await asio::async_write(sock, asio::buffer(head), kTuple);
    co_await pause(std::chrono::hours(1));
    co_return;
  }
  head += "hello:";
  auto [hec, hn] = co_await asio::async_write(sock, asio::buffer(head), kTuple);
  if (hec) co_return;
  std::string early = boost::beast::buffers_to_string(buffer.data());
  buffer.consume(buffer.size());
  std::array<char, 4096> data{};
  for (bool first = true;; first = false) {
    std::string piece;
    if (first && !early.empty()) {
      piece = std::move(early);
    } else {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(data), kTuple);
      if (ec) break;  // eof: the client half-closed
      piece.assign(data.data(), n);
    }
    for (auto& c : piece) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(piece), kTuple);
    if (wec) co_return;
  }
  const std::string bye = "bye";
  co_await asio::async_write(sock, asio::buffer(bye), kTuple);
  boost::system::error_code ignored;
  sock.shutdown(local::socket::shutdown_both, ignored);
}

asio::awaitable<void> session(local::socket sock, std::shared_ptr<ServerState> st) {
  boost::beast::flat_buffer buffer;
  int served = 0;
  for (;;) {
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(sock, buffer, req, kTuple);
    if (ec) co_return;
    ++st->requests;
    if (served++ > 0 && st->dropReusedRequests) co_return;  // closes the socket

    const std::string target(req.target());
    if (target == "/hang") {
      co_await pause(std::chrono::hours(1));
      co_return;
    }
    if (target == "/raw" || target == "/raw-silent") {
      st->lastUpgradeHeader = std::string(req["Upgrade"]);
      co_await rawEcho(sock, buffer, req["Upgrade"] == "tcp", target == "/raw-silent");
      co_return;  // the connection is no longer HTTP
    }
    if (target == "/chunks-then-die") {
      co_await sendChunkThenClose(sock);
      co_return;
    }
    if (target == "/chunks") {
      if (!co_await sendChunks(sock)) co_return;
    } else {
      if (target == "/slow") co_await pause(std::chrono::milliseconds(100));
      http::response<http::string_body> res{http::status::created, 11};
      res.set("X-Echo-Host", req[http::field::host]);
      res.set("X-Echo-Content-Type", req[http::field::content_type]);
      res.set("X-Echo-Custom", req["X-Custom"]);
      res.body() = std::string(req.method_string()) + " " + target + " " + req.body();
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(sock, res, kTuple);
      if (wec || !req.keep_alive()) co_return;
    }
    if (st->closeAfterResponse) co_return;
  }
}

asio::awaitable<void> acceptLoop(std::shared_ptr<ServerState> st) {
  for (;;) {
    auto [ec, sock] = co_await st->acceptor.async_accept(kTuple);
    if (ec) co_return;
    ++st->connections;
    asio::co_spawn(st->acceptor.get_executor(), session(std::move(sock), st), asio::detached);
  }
}

class TestServer {
 public:
  explicit TestServer(asio::io_context& io) : state_(std::make_shared<ServerState>(io)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fd-transport-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/http.sock";
    state_->acceptor.open();
    state_->acceptor.bind(local::endpoint(path_));
    state_->acceptor.listen();
    asio::co_spawn(io, acceptLoop(state_), asio::detached);
  }
  ~TestServer() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    std::error_code fsIgnored;
    std::filesystem::remove_all(dir_, fsIgnored);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  const std::string& path() const { return path_; }
  ServerState& state() { return *state_; }

 private:
  std::shared_ptr<ServerState> state_;
  std::string dir_;
  std::string path_;
};

template <class T>
asio::awaitable<void> storeInto(asio::awaitable<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

// Runs `task` to completion; the server's pending accept keeps the context
// busy, so stop it explicitly when the task is done.
template <class T>
T runSync(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(io, storeInto(std::move(task), &out), [&](std::exception_ptr e) {
    error = e;
    io.stop();
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  REQUIRE(out.has_value());
  return std::move(*out);
}

asio::awaitable<int> pauseThen(std::chrono::milliseconds d, int value) {
  co_await pause(d);
  co_return value;
}

// doctest cannot print ErrorCode (ADL finds foundationd::toString), so
// compare its name.
template <class R>
std::string codeOf(const R& r) {
  return foundationd::toString(r.error().code);
}

// The message of a failed Result ("" when ok): doctest evaluates message
// expressions of passing assertions too (with -s).
template <class R>
std::string why(const R& r) {
  return r.ok() ? std::string() : r.error().message;
}

HttpRequest get(std::string target) {
  HttpRequest req;
  req.target = std::move(target);
  return req;
}

}  // namespace

TEST_CASE("GET and POST round-trip with body and headers") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  CHECK(client.socketPath() == server.path());

  auto got = runSync(io, client.request(get("/echo?x=1")));
  REQUIRE_MESSAGE(got.ok(), why(got));
  CHECK(got->status == 201);
  CHECK(got->body == "GET /echo?x=1 ");
  CHECK(got->headers["x-echo-host"] == "docker");
  CHECK(got->headers["content-length"] == std::to_string(got->body.size()));

  HttpRequest post;
  post.method = "POST";
  post.target = "/echo";
  post.body = R"({"Image":"busybox"})";
  post.headers["X-Custom"] = "yes";
  auto posted = runSync(io, client.request(post));
  REQUIRE_MESSAGE(posted.ok(), why(posted));
  CHECK(posted->body == R"(POST /echo {"Image":"busybox"})");
  CHECK(posted->headers["x-echo-content-type"] == "application/json");
  CHECK(posted->headers["x-echo-custom"] == "yes");
}

TEST_CASE("keep-alive reuses one connection for sequential requests") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  for (int i = 0; i < 3; ++i) {
    auto r = runSync(io, client.request(get("/echo")));
    REQUIRE_MESSAGE(r.ok(), why(r));
  }
  CHECK(server.state().connections == 1);
  CHECK(server.state().requests == 3);
  CHECK(client.idleConnections() == 1);
}

TEST_CASE("concurrent requests each get a connection, then are pooled") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  constexpr int kCount = 5;
  std::vector<std::optional<Result<HttpResponse>>> results(kCount);
  int pending = kCount;
  for (int i = 0; i < kCount; ++i) {
    asio::co_spawn(io, storeInto(client.request(get("/slow")), &results[i]),
                   [&](std::exception_ptr e) {
                     CHECK(!e);
                     if (--pending == 0) io.stop();
                   });
  }
  io.run();
  for (auto& r : results) {
    REQUIRE(r.has_value());
    REQUIRE_MESSAGE(r->ok(), why(*r));
    CHECK((*r)->body == "GET /slow ");
  }
  CHECK(server.state().connections == kCount);
  CHECK(client.idleConnections() == kCount);

  // The pooled connections serve the next requests.
  auto again = runSync(io, client.request(get("/echo")));
  REQUIRE(again.ok());
  CHECK(server.state().connections == kCount);
}

TEST_CASE("a chunked response is streamed in pieces") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());

  std::vector<std::string> pieces;
  auto r = runSync(io, client.stream(get("/chunks"), [&](std::string_view chunk) {
    pieces.emplace_back(chunk);
    return true;
  }));
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK(r->status == 200);
  CHECK(r->body.empty());
  CHECK(r->headers["transfer-encoding"] == "chunked");
  CHECK(pieces.size() >= 2);
  std::string all;
  for (const auto& p : pieces) all += p;
  CHECK(all == "piece-0\npiece-1\npiece-2\npiece-3\npiece-4\n");
  CHECK(client.idleConnections() == 1);

  SUBCASE("a sized body streams too") {
    std::string body;
    auto sized = runSync(io, client.stream(get("/echo"), [&](std::string_view chunk) {
      body += chunk;
      return true;
    }));
    REQUIRE(sized.ok());
    CHECK(body == "GET /echo ");
    CHECK(server.state().connections == 1);
  }
}

TEST_CASE("stream stops early when the callback returns false") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  int calls = 0;
  auto r = runSync(io, client.stream(get("/chunks"), [&](std::string_view chunk) {
    ++calls;
    CHECK(chunk.substr(0, 6) == "piece-");
    return false;
  }));
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK(calls == 1);
  CHECK(client.idleConnections() == 0);  // the unread rest makes it unusable

  auto next = runSync(io, client.request(get("/echo")));
  REQUIRE(next.ok());
  CHECK(server.state().connections == 2);
}

TEST_CASE("stream with onHead sees the status before any body") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  std::vector<std::string> seen;
  auto r = runSync(io, client.stream(
                           get("/chunks"),
                           [&](const HttpResponse& head) {
                             seen.push_back("head " + std::to_string(head.status));
                             return true;
                           },
                           [&](std::string_view chunk) {
                             seen.emplace_back(chunk);
                             return true;
                           }));
  REQUIRE_MESSAGE(r.ok(), why(r));
  REQUIRE(seen.size() >= 2);
  CHECK(seen.front() == "head 200");

  SUBCASE("returning false skips the body") {
    int chunks = 0;
    auto skipped =
        runSync(io, client.stream(
                        get("/echo"), [](const HttpResponse& head) { return head.status == 200; },
                        [&](std::string_view) { return ++chunks > 0; }));
    REQUIRE_MESSAGE(skipped.ok(), why(skipped));
    CHECK(skipped->status == 201);
    CHECK(chunks == 0);
    CHECK(client.idleConnections() == 0);
  }
}

TEST_CASE("a server that never answers times out") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto req = get("/hang");
  req.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto r = runSync(io, client.request(req));
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "timeout");
  CHECK(r.error().message.find(server.path()) != std::string::npos);
  CHECK(r.error().message.find("/hang") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));

  auto streamed = runSync(io, client.stream(req, [](std::string_view) { return true; }));
  REQUIRE_FALSE(streamed.ok());
  CHECK(codeOf(streamed) == "timeout");
  CHECK(client.idleConnections() == 0);
}

TEST_CASE("a missing socket is unavailable and names the path") {
  asio::io_context io;
  const std::string path = "/nonexistent-foundationd-test/docker.sock";
  UnixHttpClient client(io.get_executor(), path);
  HttpRequest req = get("/_ping");
  req.method = "POST";
  req.body = "secret-body-never-shown";
  auto r = runSync(io, client.request(req));
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "unavailable");
  CHECK(r.error().message.find(path) != std::string::npos);
  CHECK(r.error().message.find("secret-body-never-shown") == std::string::npos);
}

TEST_CASE("a pooled connection the server closed is replaced") {
  asio::io_context io;
  TestServer server(io);
  server.state().closeAfterResponse = true;
  UnixHttpClient client(io.get_executor(), server.path());

  auto first = runSync(io, client.request(get("/echo")));
  REQUIRE(first.ok());
  CHECK(client.idleConnections() == 1);  // looked reusable when it came back
  // Let the server's close reach us before reusing the connection.
  runSync(io, pauseThen(std::chrono::milliseconds(20), 0));

  auto second = runSync(io, client.request(get("/echo")));
  REQUIRE_MESSAGE(second.ok(), why(second));
  CHECK(server.state().connections == 2);

  SUBCASE("a POST works after a server-side close too") {
    runSync(io, pauseThen(std::chrono::milliseconds(20), 0));
    HttpRequest post = get("/echo");
    post.method = "POST";
    post.body = "{}";
    auto r = runSync(io, client.request(post));
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(server.state().connections == 3);
  }
}

TEST_CASE("retry policy when a pooled connection dies after the request was written") {
  asio::io_context io;
  TestServer server(io);
  server.state().dropReusedRequests = true;  // the race the peek cannot see
  UnixHttpClient client(io.get_executor(), server.path());
  REQUIRE(runSync(io, client.request(get("/echo"))).ok());
  REQUIRE(client.idleConnections() == 1);

  SUBCASE("an idempotent request is retried once on a fresh connection") {
    auto r = runSync(io, client.request(get("/echo")));
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(server.state().connections == 2);
    CHECK(server.state().requests == 3);
  }
  SUBCASE("a POST that may have reached the server is not retried") {
    HttpRequest post = get("/echo");
    post.method = "POST";
    post.body = "{}";
    auto r = runSync(io, client.request(post));
    REQUIRE_FALSE(r.ok());
    CHECK(codeOf(r) == "unavailable");
    CHECK(r.error().message.find("POST /echo") != std::string::npos);
    CHECK(server.state().connections == 1);
  }
}

TEST_CASE("no timeout: kNoTimeout requests and streams work (no deadline overflow)") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto req = get("/echo");
  req.timeout = HttpRequest::kNoTimeout;
  auto r = runSync(io, client.request(req));
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK(r->body == "GET /echo ");

  req.target = "/chunks";
  std::string all;
  auto streamed = runSync(io, client.stream(req, [&](std::string_view chunk) {
    all += chunk;
    return true;
  }));
  REQUIRE_MESSAGE(streamed.ok(), why(streamed));
  CHECK(all == "piece-0\npiece-1\npiece-2\npiece-3\npiece-4\n");
}

TEST_CASE("a server that dies mid-stream ends the stream as unavailable") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto req = get("/chunks-then-die");
  req.timeout = HttpRequest::kNoTimeout;
  std::string got;
  auto r = runSync(io, client.stream(req, [&](std::string_view chunk) {
    got += chunk;
    return true;
  }));
  CHECK(got == "first\n");
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "unavailable");
  CHECK(r.error().message.find("/chunks-then-die") != std::string::npos);
  CHECK(client.idleConnections() == 0);
}

namespace {

// Reads a hijacked connection to its end.
asio::awaitable<Result<std::string>> readAll(HijackedConnection& conn) {
  std::string out;
  std::array<char, 1000> buf{};  // small on purpose: many reads
  for (;;) {
    auto n = co_await conn.readSome(buf);
    if (!n) co_return std::move(n).error();
    if (*n == 0) co_return out;
    out.append(buf.data(), *n);
  }
}

// Writes `data` and half-closes.
asio::awaitable<Status> writeThenClose(HijackedConnection& conn, std::string data) {
  auto w = co_await conn.writeAll(data);
  if (!w) co_return w;
  co_return conn.closeWrite();
}

struct Exchange {
  foundationd::transport::HijackedResponse response;
  Status written;
  Result<std::string> read;
};

// Hijacks `req`, then writes `input` (half-closing) while reading everything.
asio::awaitable<Result<Exchange>> exchange(UnixHttpClient& client, HttpRequest req,
                                           std::string input) {
  using namespace asio::experimental::awaitable_operators;
  auto h = co_await client.hijack(std::move(req));
  if (!h) co_return std::move(h).error();
  Exchange ex{std::move(h).value(), Status::success(), std::string()};
  if (!ex.response.connection) co_return ex;
  auto& conn = *ex.response.connection;
  auto [written, read] = co_await (writeThenClose(conn, std::move(input)) && readAll(conn));
  ex.written = std::move(written);
  ex.read = std::move(read);
  co_return ex;
}

HttpRequest upgradeRequest(std::string target) {
  HttpRequest req;
  req.method = "POST";
  req.target = std::move(target);
  req.body = R"({"Detach":false,"Tty":false})";
  req.headers["Connection"] = "Upgrade";
  req.headers["Upgrade"] = "tcp";
  return req;
}

}  // namespace

TEST_CASE("hijack: 101 hands over the connection, early bytes first, full duplex, half-close") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());

  auto ex = runSync(io, exchange(client, upgradeRequest("/raw"), "abc"));
  REQUIRE_MESSAGE(ex.ok(), why(ex));
  CHECK(server.state().lastUpgradeHeader == "tcp");
  CHECK(ex->response.head.status == 101);
  CHECK(ex->response.head.headers["upgrade"] == "tcp");
  CHECK(ex->response.head.body.empty());
  REQUIRE(ex->response.connection != nullptr);
  CHECK_MESSAGE(ex->written.ok(), why(ex->written));
  REQUIRE_MESSAGE(ex->read.ok(), why(ex->read));
  // "hello:" came in the same packet as the header: it must not be lost.
  CHECK(*ex->read == "hello:ABCbye");
  CHECK(client.idleConnections() == 0);  // a hijacked connection is never pooled

  SUBCASE("a large input is written while the output is read (no deadlock)") {
    std::string big(1 << 20, 'x');
    big[12345] = 'q';
    auto large = runSync(io, exchange(client, upgradeRequest("/raw"), big));
    REQUIRE_MESSAGE(large.ok(), why(large));
    REQUIRE_MESSAGE(large->read.ok(), why(large->read));
    CHECK(large->read->size() == big.size() + 9);
    CHECK(large->read->substr(0, 6) == "hello:");
    CHECK(large->read->at(6 + 12345) == 'Q');
    CHECK(large->read->substr(large->read->size() - 3) == "bye");
  }
}

TEST_CASE("hijack: a 200 without an upgrade is hijacked too (the Engine without Upgrade)") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto req = upgradeRequest("/raw");
  req.headers.clear();
  auto ex = runSync(io, exchange(client, req, "z"));
  REQUIRE_MESSAGE(ex.ok(), why(ex));
  CHECK(ex->response.head.status == 200);
  REQUIRE(ex->response.connection != nullptr);
  REQUIRE_MESSAGE(ex->read.ok(), why(ex->read));
  CHECK(*ex->read == "hello:Zbye");
}

TEST_CASE("hijack: any other status is an ordinary answer with its body") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto h = runSync(io, client.hijack(upgradeRequest("/echo")));
  REQUIRE_MESSAGE(h.ok(), why(h));
  CHECK(h->head.status == 201);
  CHECK(h->head.body == R"(POST /echo {"Detach":false,"Tty":false})");
  CHECK(h->connection == nullptr);
  CHECK(client.idleConnections() == 0);
}

TEST_CASE("hijack: the request's deadline still applies after the switch") {
  asio::io_context io;
  TestServer server(io);
  UnixHttpClient client(io.get_executor(), server.path());
  auto req = upgradeRequest("/raw-silent");
  req.timeout = std::chrono::milliseconds(200);
  req.body = "secret-body-never-shown";
  auto h = runSync(io, client.hijack(req));
  REQUIRE_MESSAGE(h.ok(), why(h));
  REQUIRE(h->connection != nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto read = runSync(io, readAll(*h->connection));
  REQUIRE_FALSE(read.ok());
  CHECK(codeOf(read) == "timeout");
  CHECK(read.error().message.find("/raw-silent") != std::string::npos);
  CHECK(read.error().message.find("secret-body-never-shown") == std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  CHECK_FALSE(h->connection->isOpen());

  SUBCASE("expiresAt moves the deadline") {
    auto again = runSync(io, client.hijack(req));
    REQUIRE(again.ok());
    REQUIRE(again->connection != nullptr);
    again->connection->expiresAt(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    const auto t0 = std::chrono::steady_clock::now();
    auto late = runSync(io, readAll(*again->connection));
    CHECK(codeOf(late) == "timeout");
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
  }
}

TEST_CASE("hijack: a missing socket is unavailable") {
  asio::io_context io;
  UnixHttpClient client(io.get_executor(), "/nonexistent-foundationd-test/docker.sock");
  auto h = runSync(io, client.hijack(upgradeRequest("/raw")));
  REQUIRE_FALSE(h.ok());
  CHECK(codeOf(h) == "unavailable");
}
