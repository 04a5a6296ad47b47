// libFuzzer target: bytes off the wire through the HTTP request parser (the
// server's limits) and the API's route table with a fake daemon. Must never
// crash, hang or leak; every answer must be a valid status, and every error
// answer the JSON error document. Built with -Dfuzz=true.
//
// The first byte picks the peer kind (Unix socket, loopback, remote) so the
// authorisation paths are reached; the rest may hold several pipelined requests.
#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "api/router.hpp"
#include "api/server_internal.hpp"
#include "tests/fakes/fake_daemon.hpp"

namespace {

namespace api = foundationd::api;
namespace http = boost::beast::http;

const std::string kToken = "0123456789abcdef0123456789abcdef";

void checkResponse(const api::Response& r) {
  if (r.status < 100 || r.status > 599) __builtin_trap();
  if (r.status < 400) return;
  const auto doc = nlohmann::json::parse(r.body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("error") || !doc["error"].contains("code") ||
      !doc["error"]["code"].is_string()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static api::Metrics metrics;  // reads /proc: build once
  static const api::ApiToken token = api::ApiToken::fromString(kToken);
  if (size == 0) return 0;
  const api::PeerKind peer = data[0] % 3 == 0   ? api::PeerKind::unix_socket
                             : data[0] % 3 == 1 ? api::PeerKind::loopback
                                                : api::PeerKind::remote;
  ++data;
  --size;

  foundationd::testing::FakeDaemon daemon;
  daemon.passphrase = "fuzz";
  api::Router router(daemon, token, metrics, {});
  const api::ServerOptions limits;

  for (int requests = 0; size > 0 && requests < 8; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.header_limit(static_cast<std::uint32_t>(limits.maxHeaderBytes));
    parser.body_limit(limits.maxBodyBytes);
    boost::system::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(data, size), ec);
    if (ec || !parser.is_done()) {
      if (ec == http::error::need_more) parser.put_eof(ec);
      if (!parser.is_done()) return 0;  // the server answers 400/413/431 and closes
    }
    data += used;
    size -= used;

    http::request<http::string_body> msg = parser.release();
    const api::Request req = api::toRequest(msg, peer);
    boost::asio::io_context io;
    api::Response res;
    bool done = false;
    boost::asio::co_spawn(io, router.handle(req), [&](std::exception_ptr e, api::Response r) {
      if (e) __builtin_trap();  // handle() must never throw
      res = std::move(r);
      done = true;
    });
    io.run();
    if (!done) __builtin_trap();
    checkResponse(res);
    if (used == 0) break;
  }
  return 0;
}
