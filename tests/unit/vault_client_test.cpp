// VaultClient's KV v2 calls against a scripted Beast HTTP/1.1 server on
// loopback: a mount still being upgraded to versioned data (400 "Upgrading
// from non-versioned to versioned data", what OpenBao answers for a moment
// after a kv-v2 mount is enabled) is waited out; any other 400 is not, and the
// wait has an end.
#include "controllers/vault/vault_client.hpp"

#include <atomic>
#include <deque>
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
using namespace foundationd;
using namespace std::chrono_literals;

namespace {

constexpr const char* kUpgrading =
    R"({"errors":["Upgrading from non-versioned to versioned data. This backend will be )"
    R"(unavailable for a brief period and will resume service shortly."]})";

// Answers each request with the next scripted (status, body), the last one
// repeated; keeps each connection open (the client reuses it). Counts requests.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::deque<std::pair<int, std::string>> script)
      : script_(std::move(script)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] {
      for (;;) {
        boost::system::error_code ec;
        tcp::socket socket(io_);
        acceptor_.accept(socket, ec);
        if (ec || stopping_) return;
        boost::beast::flat_buffer buffer;
        for (;;) {
          bhttp::request<bhttp::string_body> req;
          bhttp::read(socket, buffer, req, ec);
          if (ec) break;
          std::pair<int, std::string> answer;
          {
            std::lock_guard lock(mutex_);
            paths_.push_back(std::string(req.target()));
            answer = script_.front();
            if (script_.size() > 1) script_.pop_front();
          }
          bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(answer.first), 11};
          res.set(bhttp::field::content_type, "application/json");
          res.body() = answer.second;
          res.keep_alive(req.keep_alive());
          res.prepare_payload();
          bhttp::write(socket, res, ec);
          if (ec || !req.keep_alive()) break;
        }
        socket.shutdown(tcp::socket::shutdown_both, ec);
      }
    });
  }
  ~ScriptedServer() {
    // A blocking accept() is not woken by close(): connect once to end it.
    stopping_ = true;
    asio::io_context io;
    tcp::socket wake(io);
    boost::system::error_code ec;
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }
  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> paths() {
    std::lock_guard lock(mutex_);
    return paths_;
  }

 private:
  std::deque<std::pair<int, std::string>> script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> paths_;
};

}  // namespace

TEST_CASE("kv calls wait out a mount being upgraded to versioned data") {
  ScriptedServer server({{400, kUpgrading},
                         {400, kUpgrading},
                         {400, kUpgrading},
                         {200, R"({"data":{"data":{"token":"t"},"metadata":{"version":3}}})"}});
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto r = c.kvRead("foundation", "app/key");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  REQUIRE(r->has_value());
  CHECK((*r)->data.at("token") == "t");
  CHECK((*r)->version == 3);
  CHECK(server.paths().size() == 4);
  for (const auto& p : server.paths()) CHECK(p == "/v1/foundation/data/app/key");
}

TEST_CASE("kv writes are retried the same way, with the same body") {
  ScriptedServer server({{400, kUpgrading}, {200, R"({"data":{"version":1}})"}});
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto v = c.kvWrite("foundation", "app/key", {{"token", "t"}}, 0);
  REQUIRE_MESSAGE(v.ok(), v.error().message);
  CHECK(*v == 1);
  CHECK(server.paths().size() == 2);
}

TEST_CASE("another 400 is not retried") {
  ScriptedServer server({{400, R"({"errors":["check-and-set parameter did not match"]})"}});
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  auto v = c.kvWrite("foundation", "app/key", {{"token", "t"}}, 0);
  REQUIRE_FALSE(v.ok());
  CHECK((v.error().code == ErrorCode::conflict));
  CHECK(server.paths().size() == 1);
}

TEST_CASE("the wait for an upgrade has an end, and the error says what Vault said") {
  ScriptedServer server({{400, kUpgrading}});
  vault::VaultClient c(server.address(), 2s);
  c.setToken("x");
  c.setKvUpgradeWait(400ms);
  auto r = c.kvRead("foundation", "app/key");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("Upgrading from non-versioned") != std::string::npos);
  CHECK(server.paths().size() >= 2);
  CHECK(server.paths().size() <= 6);
}
