// transport::peerRequest (libcurl) against a real Beast HTTP/1.1 server on
// loopback TCP, run on its own thread: what goes on the wire, what comes
// back, and how failures are reported.
#include "controllers/transport/http_client.hpp"

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using foundationd::ErrorCode;
using foundationd::toString;
using foundationd::transport::AwsSigV4;
using foundationd::transport::BasicAuth;
using foundationd::transport::peerRequest;
using foundationd::transport::PeerRequest;
using foundationd::transport::urlEncode;

namespace {

// Answers `count` requests, one connection each, with a fixed response, and
// remembers the last request it read.
class OneShotServer {
 public:
  explicit OneShotServer(int count, int delayMs = 0)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, count, delayMs] {
      for (int i = 0; i < count; ++i) {
        boost::system::error_code ec;
        tcp::socket socket(io_);
        acceptor_.accept(socket, ec);
        if (ec) return;
        boost::beast::flat_buffer buffer;
        bhttp::request<bhttp::string_body> req;
        bhttp::read(socket, buffer, req, ec);
        if (ec) continue;
        {
          std::lock_guard lock(mutex_);
          last_ = req;
        }
        if (delayMs) std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
        bhttp::response<bhttp::string_body> res{bhttp::status::created, 11};
        res.set("X-Reply-Header", "  value with spaces  ");
        res.set(bhttp::field::content_type, "application/json");
        res.body() = req.method() == bhttp::verb::head ? "" : R"({"echo":")" + req.body() + "\"}";
        res.prepare_payload();
        bhttp::write(socket, res, ec);
        socket.shutdown(tcp::socket::shutdown_both, ec);
      }
    });
  }
  ~OneShotServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  bhttp::request<bhttp::string_body> last() {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  bhttp::request<bhttp::string_body> last_;
};

unsigned short closedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes
}

}  // namespace

TEST_CASE("peerRequest sends method, headers and body, and returns status, headers and body") {
  OneShotServer server(1);
  PeerRequest req;
  req.method = "PUT";
  req.url = server.url("/v1/thing?x=1");
  req.headers = {{"X-Vault-Token", "tok"}, {"Content-Type", "application/json"}};
  req.body = "hello";
  auto r = peerRequest(req);
  REQUIRE(r);
  CHECK(r->status == 201);
  CHECK(r->ok());
  CHECK(r->body == R"({"echo":"hello"})");
  CHECK(r->header("x-reply-header") == "value with spaces");
  CHECK(r->header("content-type") == "application/json");
  CHECK(r->header("absent").empty());
  auto seen = server.last();
  CHECK(seen.method_string() == "PUT");
  CHECK(std::string(seen.target()) == "/v1/thing?x=1");
  CHECK(std::string(seen["X-Vault-Token"]) == "tok");
  CHECK(seen.body() == "hello");
  CHECK(seen.find("Expect") == seen.end());
}

TEST_CASE("peerRequest: GET without a body, DELETE and POST with an empty body") {
  OneShotServer server(3);
  PeerRequest get;
  get.url = server.url("/a");
  REQUIRE(peerRequest(get));
  CHECK(server.last().method_string() == "GET");

  PeerRequest del;
  del.method = "DELETE";
  del.url = server.url("/b");
  REQUIRE(peerRequest(del));
  CHECK(server.last().method_string() == "DELETE");

  PeerRequest post;
  post.method = "POST";
  post.url = server.url("/c");
  auto r = peerRequest(post);
  REQUIRE(r);
  CHECK(server.last().method_string() == "POST");
  CHECK(server.last().body().empty());
}

TEST_CASE("peerRequest: basic auth and SigV4 are put on the wire by libcurl") {
  OneShotServer server(2);
  PeerRequest basic;
  basic.url = server.url("/api/v1/user");
  basic.basicAuth = BasicAuth{"admin", "s3cret"};
  REQUIRE(peerRequest(basic));
  // base64("admin:s3cret")
  CHECK(std::string(server.last()[bhttp::field::authorization]) == "Basic YWRtaW46czNjcmV0");

  PeerRequest s3;
  s3.url = server.url("/bucket?versioning=");
  s3.sigv4 = AwsSigV4{"aws:amz:us-east-1:s3", "AKIDEXAMPLE", "wJalrXUtnFEMI"};
  REQUIRE(peerRequest(s3));
  auto seen = server.last();
  const std::string auth(seen[bhttp::field::authorization]);
  CHECK(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 0) == 0);
  CHECK(auth.find("/us-east-1/s3/aws4_request") != std::string::npos);
  CHECK(auth.find("Signature=") != std::string::npos);
  CHECK(auth.find("wJalrXUtnFEMI") == std::string::npos);
  CHECK(!std::string(seen["X-Amz-Date"]).empty());
}

TEST_CASE("peerRequest: refused, timed out and malformed are distinct errors without secrets") {
  PeerRequest refused;
  refused.url = "http://127.0.0.1:" + std::to_string(closedPort()) + "/v1/sys/health";
  refused.headers = {{"X-Vault-Token", "hvs.secret-token"}};
  refused.body = "secret-body";
  auto r = peerRequest(refused);
  REQUIRE(!r);
  CHECK(std::string(toString(r.error().code)) == std::string(toString(ErrorCode::unavailable)));
  CHECK(r.error().message.find("/v1/sys/health") != std::string::npos);
  CHECK(r.error().message.find("hvs.secret-token") == std::string::npos);
  CHECK(r.error().message.find("secret-body") == std::string::npos);

  OneShotServer slow(1, 1500);
  PeerRequest late;
  late.url = slow.url("/slow");
  late.timeout = std::chrono::milliseconds(200);
  auto t = peerRequest(late);
  REQUIRE(!t);
  CHECK(std::string(toString(t.error().code)) == std::string(toString(ErrorCode::timeout)));

  PeerRequest bad;
  bad.url = "gopher://127.0.0.1/";
  auto b = peerRequest(bad);
  REQUIRE(!b);
  CHECK(std::string(toString(b.error().code)) ==
        std::string(toString(ErrorCode::invalid_argument)));
}

TEST_CASE("urlEncode keeps unreserved characters and escapes the rest") {
  CHECK(urlEncode("abc-_.~XYZ09") == "abc-_.~XYZ09");
  CHECK(urlEncode("a b/c?d=e&f") == "a%20b%2Fc%3Fd%3De%26f");
  CHECK(urlEncode("\xC3\xA9") == "%C3%A9");
  CHECK(foundationd::transport::urlEncodePath("a b/c?d/\xC3\xA9/") == "a%20b/c%3Fd/%C3%A9/");
}

namespace {

// Answers requests with keep-alive on every connection it accepts, counting
// the connections, until `requests` requests were answered.
class KeepAliveServer {
 public:
  explicit KeepAliveServer(int requests)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, requests] {
      int answered = 0;
      while (answered < requests) {
        boost::system::error_code ec;
        tcp::socket socket(io_);
        acceptor_.accept(socket, ec);
        if (ec) return;
        connections_.fetch_add(1);
        boost::beast::flat_buffer buffer;
        while (answered < requests) {
          bhttp::request<bhttp::string_body> req;
          bhttp::read(socket, buffer, req, ec);
          if (ec) break;  // the client closed this one
          bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
          res.keep_alive(true);
          res.body() = "answer " + std::to_string(++answered);
          res.prepare_payload();
          bhttp::write(socket, res, ec);
          if (ec) break;
        }
      }
    });
  }
  ~KeepAliveServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_.load(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
};

}  // namespace

TEST_CASE("a Session keeps one connection for its requests; without one, each opens its own") {
  using foundationd::transport::curlWipedBytes;
  using foundationd::transport::Session;
  using foundationd::transport::sessionRequest;
  SUBCASE("session: five requests, one connection; its buffers zeroed when it goes") {
    KeepAliveServer server(5);
    std::size_t wipedBefore = 0;
    {
      Session session;
      for (int i = 1; i <= 5; ++i) {
        PeerRequest req;
        req.url = server.url("/v1/sys/seal-status");
        req.headers = {{"X-Vault-Token", "tok"}};
        auto r = sessionRequest(req, session);
        REQUIRE(r);
        CHECK(r->body == "answer " + std::to_string(i));
      }
      wipedBefore = curlWipedBytes();
    }
    CHECK(server.connections() == 1);
    // libcurl's buffers and connection, kept until then, went through the zeroing free.
    CHECK(curlWipedBytes() - wipedBefore >= 4096);
  }
  SUBCASE("no session: a connection per request") {
    KeepAliveServer server(3);
    for (int i = 1; i <= 3; ++i) {
      PeerRequest req;
      req.url = server.url("/x");
      auto r = peerRequest(req);
      REQUIRE(r);
      CHECK(r->body == "answer " + std::to_string(i));
    }
    CHECK(server.connections() == 3);
  }
}
