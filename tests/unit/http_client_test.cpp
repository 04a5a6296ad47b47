// transport::peerRequest (libcurl) against a real Beast HTTP/1.1 server on
// loopback TCP, run on its own thread: what goes on the wire, what comes
// back, and how failures are reported.
#include "controllers/transport/http_client.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <doctest/doctest.h>

#include "tests/unit/loopback_server.hpp"

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using foundationd::ErrorCode;
using foundationd::toString;
using foundationd::testing::LoopbackServer;
using foundationd::testing::Request;
using foundationd::testing::Response;
using foundationd::transport::AwsSigV4;
using foundationd::transport::BasicAuth;
using foundationd::transport::peerRequest;
using foundationd::transport::PeerRequest;
using foundationd::transport::urlEncode;

namespace {

// Answers 201 with an echo of the body and a header with spaces around its
// value, and closes each connection after its answer; `delay` before answering.
LoopbackServer::Handler echo(std::chrono::milliseconds delay = {}) {
  return [delay](const Request& req) {
    if (delay.count()) std::this_thread::sleep_for(delay);
    Response res{bhttp::status::created, 11};
    res.set("X-Reply-Header", "  value with spaces  ");
    res.set(bhttp::field::content_type, "application/json");
    res.body() = req.method() == bhttp::verb::head ? "" : R"({"echo":")" + req.body() + "\"}";
    res.keep_alive(false);
    return res;
  };
}

unsigned short closedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes
}

}  // namespace

TEST_CASE("peerRequest sends method, headers and body, and returns status, headers and body") {
  LoopbackServer server(echo());
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
  LoopbackServer server(echo());
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
  LoopbackServer server(echo());
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

  LoopbackServer slow(echo(std::chrono::milliseconds(1500)));
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

// Answers "answer N" to the Nth request, keeping every connection alive.
LoopbackServer::Handler counting() {
  auto answered = std::make_shared<std::atomic<int>>(0);
  return [answered](const Request&) {
    Response res{bhttp::status::ok, 11};
    res.keep_alive(true);
    res.body() = "answer " + std::to_string(++*answered);
    return res;
  };
}

}  // namespace

TEST_CASE("a Session keeps one connection for its requests; without one, each opens its own") {
  using foundationd::transport::curlWipedBytes;
  using foundationd::transport::Session;
  using foundationd::transport::sessionRequest;
  SUBCASE("session: five requests, one connection; its buffers zeroed when it goes") {
    LoopbackServer server(counting());
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
    LoopbackServer server(counting());
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
