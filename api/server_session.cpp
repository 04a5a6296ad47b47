// One connection of the API server: read a request within its deadlines,
// hand it to the Router, write the answer, repeat while kept alive.
#include <array>
#include <chrono>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <sodium.h>

#include "api/errors.hpp"
#include "api/server_internal.hpp"

namespace foundationd::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using SteadyClock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// At most this much is read and discarded while lingering after an error.
constexpr std::size_t kMaxLingerBytes = 1u << 20;

asio::awaitable<bool> writeResponse(Connection& c, Response res, unsigned version, bool keepAlive,
                                    std::chrono::milliseconds timeout) {
  http::response<http::string_body> out{static_cast<http::status>(res.status), version};
  for (const auto& [name, value] : res.headers) out.insert(name, value);
  out.set(http::field::server, "foundationd");
  out.keep_alive(keepAlive);
  out.body() = std::move(res.body);
  out.prepare_payload();
  c.arm(timeout);
  auto [ec, n] = co_await http::async_write(c.socket, out, kTuple);
  c.disarm();
  co_return !ec;
}

// After an error answer: stop sending, then read and drop what the client
// still sends for a little while, so closing does not reset the connection
// before the client has read our answer.
asio::awaitable<void> linger(Connection& c, std::chrono::milliseconds timeout) {
  boost::system::error_code ec;
  c.socket.shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) co_return;
  c.arm(timeout);
  std::array<char, 4096> sink{};
  std::size_t total = 0;
  while (total < kMaxLingerBytes) {
    auto [rec, n] = co_await c.socket.async_read_some(asio::buffer(sink), kTuple);
    if (rec) break;
    total += n;
  }
  c.disarm();
}

bool quietClose(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe;
}

// Answers a request that could not be read; false when the connection just ends.
asio::awaitable<void> onReadError(Server::Impl& impl, Connection& c,
                                  const boost::system::error_code& ec, const char* phase) {
  const ServerOptions& o = impl.options;
  if (c.timedOut) {
    logTo(o.log, LogLevel::info, "api.client_timeout",
          {{"phase", phase}, {"peer", peerName(c.peer)}});
    co_return;
  }
  if (quietClose(ec)) co_return;
  Response res;
  if (ec == http::error::body_limit) {
    res = errorResponse(ApiError::payload_too_large, "the request body is larger than " +
                                                         std::to_string(o.maxBodyBytes) + " bytes");
  } else if (ec == http::error::header_limit) {
    res =
        errorResponse(ApiError::header_too_large, "the request head is larger than " +
                                                      std::to_string(o.maxHeaderBytes) + " bytes");
  } else {
    res = errorResponse(ApiError::bad_request, "malformed HTTP request: " + ec.message());
  }
  logTo(o.log, LogLevel::info, "api.bad_request",
        {{"status", std::to_string(res.status)},
         {"error", ec.message()},
         {"peer", peerName(c.peer)}});
  if (co_await writeResponse(c, std::move(res), 11, false, o.writeTimeout)) {
    co_await linger(c, o.lingerTimeout);
  }
}

// Zeroes the read buffer's storage (consumed bytes stay in memory otherwise).
void wipe(beast::flat_buffer& buffer) {
  if (buffer.size() != 0) return;  // a pipelined request is waiting: keep it
  auto storage = buffer.prepare(buffer.capacity());
  sodium_memzero(storage.data(), storage.size());
}

}  // namespace

Request toRequest(http::request<http::string_body>& msg, PeerKind peer) {
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& field : msg) {
    req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  req.peer = peer;
  return req;
}

asio::awaitable<void> serveConnection(std::shared_ptr<Server::Impl> impl,
                                      std::shared_ptr<Connection> conn, Registration registration) {
  (void)registration;  // lives as long as this coroutine
  Connection& c = *conn;
  const ServerOptions& o = impl->options;
  beast::flat_buffer buffer;
  for (;;) {
    if (impl->stopping) break;
    if (buffer.size() == 0) {  // keep-alive: wait for the next request's first byte
      c.idle = true;
      c.arm(o.idleTimeout);
      auto [wec] = co_await c.socket.async_wait(asio::socket_base::wait_read, kTuple);
      c.idle = false;
      if (wec || impl->stopping) break;
    }

    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(o.maxHeaderBytes));
    parser.body_limit(o.maxBodyBytes);
    c.arm(o.headerTimeout);
    auto [hec, hn] = co_await http::async_read_header(c.socket, buffer, parser, kTuple);
    if (hec) {
      co_await onReadError(*impl, c, hec, "header");
      break;
    }
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      c.arm(o.writeTimeout);
      auto [cec, cn] = co_await http::async_write(c.socket, cont, kTuple);
      if (cec) break;
    }
    if (!parser.is_done()) {
      c.arm(o.bodyTimeout);
      auto [bec, bn] = co_await http::async_read(c.socket, buffer, parser, kTuple);
      if (bec) {
        // A partial body (maybe part of a passphrase) is zeroed, not just freed.
        auto& partial = parser.get().body();
        sodium_memzero(partial.data(), partial.size());
        co_await onReadError(*impl, c, bec, "body");
        break;
      }
    }
    c.disarm();
    c.busy = true;  // a whole request: no longer dropped to make room

    http::request<http::string_body> msg = parser.release();
    const unsigned version = msg.version();
    const bool clientKeepAlive = msg.keep_alive();
    Request req = toRequest(msg, c.peer);
    req.webhookListener = c.webhookOnly;
    req.credentials = c.credentials;
    const Route* route = Router::find(req.method, req.path());
    const bool secret = route != nullptr && route->secretBody;
    const auto started = SteadyClock::now();
    Response res = co_await impl->router.handle(req);
    sodium_memzero(req.body.data(), req.body.size());
    if (secret) wipe(buffer);

    const int status = res.status;
    const bool keepAlive = clientKeepAlive && !impl->stopping;
    const bool written =
        co_await writeResponse(c, std::move(res), version, keepAlive, o.writeTimeout);
    c.busy = false;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    logTo(o.log, LogLevel::debug, "api.request",
          {{"method", route ? req.method : std::string("-")},
           {"path", route ? std::string(route->path) : std::string("-")},
           {"status", std::to_string(status)},
           {"peer", peerName(c.peer)},
           {"ms", std::to_string(ms.count())}});
    if (!written || !keepAlive) break;
  }
  // What was read and not consumed (a cut-off request, maybe a secret) is
  // zeroed before the buffer's memory goes back to the allocator.
  buffer.consume(buffer.size());
  wipe(buffer);
  boost::system::error_code ec;
  c.socket.shutdown(asio::socket_base::shutdown_send, ec);
  c.socket.close(ec);
}

}  // namespace foundationd::api
