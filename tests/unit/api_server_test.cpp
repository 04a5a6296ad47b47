// The real API server on a Unix socket and on 127.0.0.1 port 0, driven by
// real clients (the project's UnixHttpClient, raw Beast and raw bytes) on
// the same io_context (STYLE.md "Tests": a real server inside the test).
// Timeouts are injected short; no assertion is made on wall time.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/server.hpp"
#include "controllers/transport/unix_http_client.hpp"
#include "fakes/fake_daemon.hpp"

namespace api = foundationd::api;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using foundationd::testing::FakeDaemon;
using foundationd::transport::HttpRequest;
using foundationd::transport::UnixHttpClient;
using namespace std::chrono_literals;

namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

using Response = http::response<http::string_body>;

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(kTuple);
}

struct Fixture {
  asio::io_context io;
  fs::path dir;
  FakeDaemon daemon;
  api::ApiToken token = api::ApiToken::fromString(kToken);
  api::Metrics metrics;
  api::Router router{daemon, token, metrics, {}};
  api::ServerOptions options;
  std::unique_ptr<api::Server> server;
  std::string socketPath;
  std::vector<std::string> logs;

  Fixture() {
    std::string tmpl = (fs::temp_directory_path() / "fd-api-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    socketPath = (dir / "run" / "api.sock").string();
    options.listen = {"unix:" + socketPath, "tcp:127.0.0.1:0"};
    options.log = [this](api::LogLevel, const std::string& event,
                         const std::vector<api::LogField>& fields) {
      std::string line = event;
      for (const auto& [k, v] : fields) line += " " + k + "=" + v;
      logs.push_back(line);
    };
  }
  ~Fixture() {
    server.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  void start() {
    server = std::make_unique<api::Server>(io.get_executor(), router, options);
    const auto st = server->start();
    REQUIRE_MESSAGE(st.ok(), (st.ok() ? "" : st.error().message));
  }

  tcp::endpoint tcpEndpoint() const {
    const std::string a = server->addresses().at(1);  // "tcp:127.0.0.1:PORT"
    const auto colon = a.rfind(':');
    return {asio::ip::make_address("127.0.0.1"),
            static_cast<unsigned short>(std::stoi(a.substr(colon + 1)))};
  }

  // Runs `body` on the io_context, then stops the server and waits for it.
  void run(std::function<asio::awaitable<void>()> body) {
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
      error = e;
      done = true;
      if (server) server->stop();
    });
    io.run_for(30s);
    CHECK_MESSAGE(done, "the test body hung");
    if (server) server->abort();
    io.restart();
    io.run_for(1s);
    if (error) std::rethrow_exception(error);
  }
};

template <typename Stream>
asio::awaitable<Response> roundTrip(Stream& s, beast::flat_buffer& buf,
                                    http::request<http::string_body> req) {
  req.prepare_payload();
  co_await http::async_write(s, req, asio::use_awaitable);
  Response res;
  co_await http::async_read(s, buf, res, asio::use_awaitable);
  co_return res;
}

http::request<http::string_body> makeRequest(http::verb verb, std::string target,
                                             std::string body = {}, bool withToken = false) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "localhost");
  if (withToken) req.set(http::field::authorization, "Bearer " + kToken);
  req.body() = std::move(body);
  return req;
}

asio::awaitable<tcp::socket> connectTcp(tcp::endpoint ep) {
  tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(ep, asio::use_awaitable);
  co_return s;
}

// Reads until the server closes; returns everything read. Gives up (and
// fails) after `limit`.
template <typename Stream>
asio::awaitable<std::string> readUntilClosed(Stream& s, std::chrono::milliseconds limit = 5s) {
  asio::steady_timer guard(co_await asio::this_coro::executor, limit);
  bool timedOut = false;
  guard.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    timedOut = true;
    boost::system::error_code ignored;
    s.close(ignored);
  });
  std::string all;
  char chunk[4096];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), kTuple);
    all.append(chunk, n);
    if (ec) break;
  }
  guard.cancel();
  CHECK_MESSAGE(!timedOut, "the server did not close the connection");
  co_return all;
}

std::string statusLine(const std::string& raw) {
  return raw.substr(0, raw.find("\r\n"));
}

std::string errorCode(const Response& r) {
  return nlohmann::json::parse(r.body()).at("error").at("code");
}

}  // namespace

TEST_CASE("serves on the Unix socket (mode 0660) and on 127.0.0.1 as a local peer") {
  Fixture f;
  f.start();
  REQUIRE(f.server->addresses().size() == 2);
  CHECK(f.server->addresses()[0] == "unix:" + f.socketPath);
  CHECK(f.server->addresses()[1].rfind("tcp:127.0.0.1:", 0) == 0);
  CHECK(f.server->addresses()[1] != "tcp:127.0.0.1:0");
  struct stat st {};
  REQUIRE(::lstat(f.socketPath.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);

  f.run([&]() -> asio::awaitable<void> {
    UnixHttpClient client(co_await asio::this_coro::executor, f.socketPath);
    HttpRequest health;
    health.target = "/healthz";
    auto r = co_await client.request(health);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->headers["server"] == "foundationd");
    CHECK(r->headers["content-type"] == "application/json");

    HttpRequest status;
    status.target = "/v1/status";
    r = co_await client.request(status);
    REQUIRE(r.ok());
    CHECK(r->status == 200);  // the Unix socket is local

    auto sock = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res = co_await roundTrip(sock, buf, makeRequest(http::verb::get, "/v1/status"));
    CHECK(res.result_int() == 200);  // loopback is local
    res = co_await roundTrip(sock, buf, makeRequest(http::verb::post, "/v1/seal"));
    CHECK(res.result_int() == 401);
    res = co_await roundTrip(sock, buf, makeRequest(http::verb::post, "/v1/seal", {}, true));
    CHECK(res.result_int() == 200);
    res = co_await roundTrip(sock, buf, makeRequest(http::verb::get, "/metrics"));
    CHECK(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(res.body().find("foundationd_build_info") != std::string::npos);
  });
  CHECK(!fs::exists(f.socketPath));  // removed on stop
}

TEST_CASE("a webhook listener (api.webhook_listen) serves the webhook route and nothing else") {
  Fixture f;
  f.options.webhookListen = {"tcp:127.0.0.1:0"};
  f.start();
  REQUIRE(f.server->addresses().size() == 3);
  const std::string a = f.server->addresses()[2];
  REQUIRE(a.rfind("tcp:127.0.0.1:", 0) == 0);
  const tcp::endpoint hookEp{asio::ip::make_address("127.0.0.1"),
                             static_cast<unsigned short>(std::stoi(a.substr(a.rfind(':') + 1)))};
  CHECK(hookEp.port() != f.tcpEndpoint().port());

  f.run([&]() -> asio::awaitable<void> {
    auto hooks = co_await connectTcp(hookEp);
    auto main = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer hb, mb;
    // The webhook reaches its handler on both (the fake daemon has no
    // webhook secret: the handler's own 404 says so, not the listener's).
    const auto delivery = [] {
      auto r = makeRequest(http::verb::post, "/v1/hooks/forgejo", R"({"ref":"x"})");
      r.set("X-Forgejo-Event", "push");
      return r;
    };
    Response onHook = co_await roundTrip(hooks, hb, delivery());
    Response onMain = co_await roundTrip(main, mb, delivery());
    CHECK(onHook.result_int() == onMain.result_int());
    CHECK(onHook.body() == onMain.body());
    CHECK(onHook.body().find("webhooks only") == std::string::npos);
    // Everything else, even from loopback and with the token, is 404 there.
    for (auto [verb, target] : {std::pair{http::verb::get, "/healthz"},
                                std::pair{http::verb::get, "/metrics"},
                                std::pair{http::verb::get, "/v1/status"},
                                std::pair{http::verb::post, "/v1/seal"},
                                std::pair{http::verb::post, "/v1/unseal"},
                                std::pair{http::verb::get, "/v1/events"}}) {
      CAPTURE(target);
      Response r = co_await roundTrip(hooks, hb, makeRequest(verb, target, "{}", true));
      CHECK(r.result_int() == 404);
      CHECK(r.body().find("webhooks only") != std::string::npos);
      CHECK(errorCode(r) == "not_found");
    }
    Response health = co_await roundTrip(main, mb, makeRequest(http::verb::get, "/healthz"));
    CHECK(health.result_int() == 200);
  });
  CHECK(f.daemon.sealCalls == 0);
  CHECK(f.daemon.unsealCalls == 0);
}

TEST_CASE("keep-alive: several requests on one connection; HTTP/1.0 and `close` end it") {
  Fixture f;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    auto sock = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    for (int i = 0; i < 3; ++i) {
      Response res = co_await roundTrip(sock, buf, makeRequest(http::verb::get, "/healthz"));
      CHECK(res.result_int() == 200);
      CHECK(res.keep_alive());
    }
    CHECK(f.server->connections() == 1);

    // Pipelined: two requests in one write, answered in order.
    const std::string two =
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await asio::async_write(sock, asio::buffer(two), asio::use_awaitable);
    Response first;
    co_await http::async_read(sock, buf, first, asio::use_awaitable);
    Response second;
    co_await http::async_read(sock, buf, second, asio::use_awaitable);
    CHECK(first.result_int() == 200);
    CHECK(second.result_int() == 404);

    auto req = makeRequest(http::verb::get, "/healthz");
    req.keep_alive(false);
    Response res = co_await roundTrip(sock, buf, std::move(req));
    CHECK(res.result_int() == 200);
    CHECK(!res.keep_alive());
    co_await readUntilClosed(sock);

    auto old = co_await connectTcp(f.tcpEndpoint());
    co_await asio::async_write(old, asio::buffer(std::string("GET /healthz HTTP/1.0\r\n\r\n")),
                               asio::use_awaitable);
    const std::string raw = co_await readUntilClosed(old);
    CHECK(statusLine(raw) == "HTTP/1.0 200 OK");
  });
}

TEST_CASE("bodies over 64 KiB get 413; 60 KiB are read") {
  Fixture f;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    {
      local::socket sock(co_await asio::this_coro::executor);
      co_await sock.async_connect(local::endpoint(f.socketPath), asio::use_awaitable);
      beast::flat_buffer buf;
      Response res = co_await roundTrip(
          sock, buf, makeRequest(http::verb::post, "/v1/unseal", std::string(65 * 1024, 'x')));
      CHECK(res.result_int() == 413);
      CHECK(errorCode(res) == "payload_too_large");
      CHECK(!res.keep_alive());
    }
    {  // chunked, so the size is only known while reading
      auto sock = co_await connectTcp(f.tcpEndpoint());
      std::string raw = "POST /v1/unseal HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (int i = 0; i < 17; ++i) raw += "1000\r\n" + std::string(4096, 'y') + "\r\n";
      raw += "0\r\n\r\n";
      co_await asio::async_write(sock, asio::buffer(raw), asio::use_awaitable);
      const std::string answer = co_await readUntilClosed(sock);
      CHECK(statusLine(answer) == "HTTP/1.1 413 Payload Too Large");
    }
    {
      auto sock = co_await connectTcp(f.tcpEndpoint());
      beast::flat_buffer buf;
      const std::string body = R"({"passphrase": ")" + std::string(60 * 1024, 'z') + "\"}";
      Response res =
          co_await roundTrip(sock, buf, makeRequest(http::verb::post, "/v1/unseal", body));
      // Read whole (no 413), then refused: longer than a passphrase may be.
      CHECK(res.result_int() == 400);
      CHECK(errorCode(res) == "invalid_argument");
      CHECK(f.daemon.unsealCalls == 0);
    }
  });
}

TEST_CASE("slow clients are cut off (idle, head and body deadlines); the server keeps serving") {
  Fixture f;
  f.options.idleTimeout = 150ms;
  f.options.headerTimeout = 150ms;
  f.options.bodyTimeout = 150ms;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    auto idle = co_await connectTcp(f.tcpEndpoint());
    CHECK(co_await readUntilClosed(idle) == "");

    auto slowHead = co_await connectTcp(f.tcpEndpoint());
    co_await asio::async_write(slowHead, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHo")),
                               asio::use_awaitable);
    CHECK(co_await readUntilClosed(slowHead) == "");

    auto slowBody = co_await connectTcp(f.tcpEndpoint());
    co_await asio::async_write(
        slowBody,
        asio::buffer(std::string("POST /v1/unseal HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                 "\r\n{\"passphrase\"")),
        asio::use_awaitable);
    CHECK(co_await readUntilClosed(slowBody) == "");
    CHECK(f.daemon.unsealCalls == 0);

    auto fine = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res = co_await roundTrip(fine, buf, makeRequest(http::verb::get, "/healthz"));
    CHECK(res.result_int() == 200);
    int timeouts = 0;
    for (const auto& l : f.logs) timeouts += l.rfind("api.client_timeout", 0) == 0;
    CHECK(timeouts == 2);  // head and body; an idle keep-alive expiring is not news
  });
}

TEST_CASE("at the cap the oldest incomplete connection makes room; 503 when every slot is busy") {
  Fixture f;
  f.options.maxConnections = 3;
  f.options.unixReserved = 0;
  f.daemon.delay = 1s;  // GET /v1/plan takes that long
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    std::vector<tcp::socket> held;
    for (int i = 0; i < 3; ++i) held.push_back(co_await connectTcp(f.tcpEndpoint()));
    for (int i = 0; i < 200 && f.server->connections() < 3; ++i) co_await pause(5ms);
    REQUIRE(f.server->connections() == 3);

    // A fourth: the oldest idle one is closed for it, and it is served.
    auto extra = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res = co_await roundTrip(extra, buf, makeRequest(http::verb::get, "/healthz"));
    CHECK(res.result_int() == 200);
    const std::string dropped = co_await readUntilClosed(held.front());
    CHECK(dropped.empty());

    // Every slot running a handler: one more is refused with 503.
    for (auto& h : held) h.close();
    extra.close();
    for (int i = 0; i < 200 && f.server->connections() > 0; ++i) co_await pause(5ms);
    std::vector<tcp::socket> busy;
    for (int i = 0; i < 3; ++i) {
      busy.push_back(co_await connectTcp(f.tcpEndpoint()));
      auto req = makeRequest(http::verb::get, "/v1/plan", {}, true);
      req.prepare_payload();
      co_await http::async_write(busy.back(), req, asio::use_awaitable);
    }
    for (int i = 0; i < 200 && f.daemon.planCalls < 3; ++i) co_await pause(5ms);
    REQUIRE(f.daemon.planCalls == 3);
    auto refused = co_await connectTcp(f.tcpEndpoint());
    const std::string raw = co_await readUntilClosed(refused);
    CHECK(statusLine(raw) == "HTTP/1.1 503 Service Unavailable");
    CHECK(raw.find("too_many_connections") != std::string::npos);
    for (auto& b : busy) {
      beast::flat_buffer bb;
      Response done;
      co_await http::async_read(b, bb, done, asio::use_awaitable);
      CHECK(done.result_int() == 200);
    }
  });
}

TEST_CASE("300 slow clients holding half a request: /healthz on TCP and the Unix socket answer") {
  Fixture f;  // the default limits
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    const std::string half = "GET /healthz HTTP/1.1\r\nHost: slow\r\n";
    std::vector<tcp::socket> slow;
    for (int i = 0; i < 300; ++i) {
      slow.push_back(co_await connectTcp(f.tcpEndpoint()));
      // The server may already have dropped an old one: errors are expected.
      (void)co_await asio::async_write(slow.back(), asio::buffer(half), kTuple);
    }
    co_await pause(100ms);
    CHECK(f.server->connections() <= f.options.maxConnections + 1);

    auto fine = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res = co_await roundTrip(fine, buf, makeRequest(http::verb::get, "/healthz"));
    CHECK(res.result_int() == 200);

    local::socket unix(co_await asio::this_coro::executor);
    co_await unix.async_connect(local::endpoint(f.socketPath), asio::use_awaitable);
    beast::flat_buffer ubuf;
    Response status = co_await roundTrip(unix, ubuf, makeRequest(http::verb::get, "/v1/status"));
    CHECK(status.result_int() == 200);
    Response plan =
        co_await roundTrip(unix, ubuf, makeRequest(http::verb::get, "/v1/plan", {}, true));
    CHECK(plan.result_int() == 200);
  });
}

TEST_CASE("garbage bytes get 400 and a closed connection; the server keeps serving") {
  Fixture f;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    for (const std::string& garbage :
         {std::string("\x00\x01\x02 garbage\r\n\r\n", 15), std::string("GET\r\n\r\n"),
          std::string("GET / HTTP/9.9\r\n\r\n"),
          std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
          std::string("POST /v1/unseal HTTP/1.1\r\nContent-Length: nope\r\n\r\n")}) {
      auto sock = co_await connectTcp(f.tcpEndpoint());
      co_await asio::async_write(sock, asio::buffer(garbage), asio::use_awaitable);
      const std::string raw = co_await readUntilClosed(sock);
      CAPTURE(garbage);
      CHECK(statusLine(raw) == "HTTP/1.1 400 Bad Request");
      CHECK(raw.find("\"bad_request\"") != std::string::npos);
    }
    {  // a head over the limit: 431
      auto sock = co_await connectTcp(f.tcpEndpoint());
      const std::string big =
          "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
      co_await asio::async_write(sock, asio::buffer(big), asio::use_awaitable);
      const std::string raw = co_await readUntilClosed(sock);
      CHECK(statusLine(raw) == "HTTP/1.1 431 Request Header Fields Too Large");
    }
    auto sock = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res = co_await roundTrip(sock, buf, makeRequest(http::verb::get, "/healthz"));
    CHECK(res.result_int() == 200);
  });
}

TEST_CASE("Expect: 100-continue is honoured") {
  Fixture f;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    auto sock = co_await connectTcp(f.tcpEndpoint());
    const std::string body = R"({"passphrase": "correct horse battery staple"})";
    const std::string head =
        "POST /v1/unseal HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    co_await asio::async_write(sock, asio::buffer(head), asio::use_awaitable);
    beast::flat_buffer buf;
    http::response<http::empty_body> cont;
    co_await http::async_read(sock, buf, cont, asio::use_awaitable);
    CHECK(cont.result() == http::status::continue_);
    co_await asio::async_write(sock, asio::buffer(body), asio::use_awaitable);
    Response res;
    co_await http::async_read(sock, buf, res, asio::use_awaitable);
    CHECK(res.result_int() == 200);
  });
}

TEST_CASE("stop(): listeners close, idle connections close, in-flight requests finish") {
  Fixture f;
  f.daemon.delay = 300ms;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    auto idle = co_await connectTcp(f.tcpEndpoint());
    auto busy = co_await connectTcp(f.tcpEndpoint());
    auto req = makeRequest(http::verb::post, "/v1/seal", {}, true);
    req.prepare_payload();
    co_await http::async_write(busy, req, asio::use_awaitable);
    for (int i = 0; i < 200 && f.daemon.sealCalls == 0; ++i) co_await pause(5ms);
    REQUIRE(f.daemon.sealCalls == 1);

    f.server->stop();
    CHECK(!fs::exists(f.socketPath));
    CHECK(co_await readUntilClosed(idle) == "");

    beast::flat_buffer buf;
    Response res;
    co_await http::async_read(busy, buf, res, asio::use_awaitable);
    CHECK(res.result_int() == 200);
    CHECK(!res.keep_alive());  // Connection: close while stopping

    co_await f.server->stopped();
    CHECK(f.server->connections() == 0);
    tcp::socket late(co_await asio::this_coro::executor);
    auto [ec] = co_await late.async_connect(f.tcpEndpoint(), kTuple);
    CHECK(ec);  // nobody listens any more
  });
}

TEST_CASE("listen addresses: stale sockets replaced, live ones and other files refused") {
  Fixture f;
  SUBCASE("a stale socket file is removed") {
    fs::create_directories(fs::path(f.socketPath).parent_path());
    { local::acceptor stale(f.io, local::endpoint(f.socketPath)); }  // closed, the file stays
    REQUIRE(fs::exists(f.socketPath));
    f.start();
    f.run([&]() -> asio::awaitable<void> {
      UnixHttpClient client(co_await asio::this_coro::executor, f.socketPath);
      HttpRequest health;
      health.target = "/healthz";
      auto r = co_await client.request(health);
      REQUIRE(r.ok());
      CHECK(r->status == 200);
    });
  }
  SUBCASE("a live socket is a conflict, and the failed start leaves nothing behind") {
    f.start();
    api::ServerOptions second = f.options;
    second.listen = {"tcp:127.0.0.1:0", "unix:" + f.socketPath};
    api::Server other(f.io.get_executor(), f.router, second);
    const auto st = other.start();
    REQUIRE(!st.ok());
    CHECK((st.error().code == foundationd::ErrorCode::conflict));
    CHECK(st.error().message.find(f.socketPath) != std::string::npos);
    CHECK(other.addresses().empty());
    CHECK(fs::exists(f.socketPath));  // the first server's socket is untouched
  }
  SUBCASE("a regular file is never removed") {
    fs::create_directories(fs::path(f.socketPath).parent_path());
    { std::ofstream(f.socketPath) << "precious"; }
    api::Server s(f.io.get_executor(), f.router, f.options);
    const auto st = s.start();
    REQUIRE(!st.ok());
    CHECK((st.error().code == foundationd::ErrorCode::conflict));
    CHECK(fs::is_regular_file(f.socketPath));
  }
  SUBCASE("malformed addresses") {
    for (const char* bad : {"tcp:localhost:9420", "tcp:127.0.0.1", "tcp:127.0.0.1:70000",
                            "tcp:127.0.0.1:x", "udp:127.0.0.1:1", "unix:relative.sock", "unix:"}) {
      CAPTURE(bad);
      api::ServerOptions o = f.options;
      o.listen = {"unix:" + f.socketPath, bad};
      api::Server s(f.io.get_executor(), f.router, o);
      const auto st = s.start();
      REQUIRE(!st.ok());
      CHECK((st.error().code == foundationd::ErrorCode::invalid_argument));
      CHECK(st.error().message.find(bad) != std::string::npos);
      CHECK(!fs::exists(f.socketPath));  // all or nothing
    }
  }
  SUBCASE("IPv6 loopback") {
    f.options.listen = {"tcp:[::1]:0"};
    api::Server s(f.io.get_executor(), f.router, f.options);
    const auto st = s.start();
    if (st.ok()) {
      CHECK(s.addresses().at(0).rfind("tcp:[::1]:", 0) == 0);
    } else {
      MESSAGE("no IPv6 loopback here: " << st.error().message);
    }
  }
}

TEST_CASE("through the server, no response or log line carries the passphrase") {
  Fixture f;
  f.daemon.passphrase = "s3cr3t-server-passphrase";
  f.options.log = [&](api::LogLevel, const std::string& event,
                      const std::vector<api::LogField>& fields) {
    std::string line = event;
    for (const auto& [k, v] : fields) line += " " + k + "=" + v;
    f.logs.push_back(line);  // debug lines included
  };
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    for (const std::string& body : {std::string(R"({"passphrase": "s3cr3t-server-passphrase"})"),
                                    std::string(R"({"passphrase": "s3cr3t-wrong"})"),
                                    std::string(R"({"passphrase": "s3cr3t-unterminated)"),
                                    std::string(R"({"passphrase": s3cr3t})")}) {
      auto sock = co_await connectTcp(f.tcpEndpoint());
      beast::flat_buffer buf;
      Response res =
          co_await roundTrip(sock, buf, makeRequest(http::verb::post, "/v1/unseal", body));
      CHECK(res.body().find("s3cr3t") == std::string::npos);
      for (const auto& field : res) CHECK(field.value().find("s3cr3t") == std::string::npos);
    }
  });
  CHECK(!f.logs.empty());
  for (const std::string& line : f.logs) CHECK(line.find("s3cr3t") == std::string::npos);
}

TEST_CASE("POST /v1/secrets: the audit's who is the Unix socket peer's uid and pid, not the claim") {
  Fixture f;
  f.start();
  f.run([&]() -> asio::awaitable<void> {
    const std::string body =
        R"j({"credential":"forge","field":"token","value":"s3cret","by":"root (uid 0)"})j";
    // The Unix socket: the kernel's SO_PEERCRED names this process.
    UnixHttpClient client(co_await asio::this_coro::executor, f.socketPath);
    HttpRequest req;
    req.method = "POST";
    req.target = "/v1/secrets";
    req.body = body;
    req.headers["Authorization"] = "Bearer " + kToken;
    req.sensitive = true;
    auto r = co_await client.request(req);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    REQUIRE(f.daemon.setSecretCalls == 1);
    const std::string who = f.daemon.lastSetSecretBy;
    const std::string expected = "uid " + std::to_string(::getuid());
    CHECK(who.rfind(expected + " ", 0) == 0);  // starts with the real uid
    CHECK(who.find(", pid " + std::to_string(::getpid()) + " on the Unix socket") !=
          std::string::npos);
    // The claim is kept, marked as one, after the kernel's word.
    CHECK(who.find(R"j(claiming to be "root (uid 0)")j") > who.find("on the Unix socket"));

    // Loopback TCP: no peer credentials, so no uid is named at all.
    auto sock = co_await connectTcp(f.tcpEndpoint());
    beast::flat_buffer buf;
    Response res =
        co_await roundTrip(sock, buf, makeRequest(http::verb::post, "/v1/secrets", body, true));
    CHECK(res.result_int() == 200);
    REQUIRE(f.daemon.setSecretCalls == 2);
    CHECK(f.daemon.lastSetSecretBy.rfind("a token holder on loopback TCP", 0) == 0);
    CHECK(f.daemon.lastSetSecretBy.find("uid " + std::to_string(::getuid()) + " ") ==
          std::string::npos);
  });
}
