// The HTTP/1.1 server of the API (Boost.Beast, C++20 coroutines) on the
// caller's io_context: listens on every configured address, turns requests
// into api::Request values for the Router and writes its Responses back.
//
// Addresses (daemon config `api.listen`):
//   "unix:/run/foundationd/api.sock"  parent directory created when missing; a
//                                     stale socket file (nobody answers) is
//                                     removed, a live one is a conflict, any
//                                     other file is refused; mode `socketMode`
//                                     (0660: owner and group); removed on stop()
//   "tcp:127.0.0.1:9420", "tcp:[::1]:9420"  IP literals only; port 0 picks a free
//                                     port (addresses() tells which)
// Peers on the Unix socket or from 127.0.0.0/8 and ::1 (also IPv4-mapped)
// are local (PeerKind). Listeners of `webhookListen` (daemon config
// `api.webhook_listen`) answer the webhook routes only, whoever the peer.
//
// Limits (ServerOptions): bodies over maxBodyBytes get 413 before the body
// is read; request heads over maxHeaderBytes get 431; unparseable bytes get
// 400; each of those closes the connection (after a short linger so the
// client reads the answer). Deadlines: idleTimeout waiting for a request's
// first byte (keep-alive), headerTimeout from there to the end of the head,
// bodyTimeout for the body, writeTimeout for the response; a client that
// misses one is cut off (connection closed, no answer). No deadline while
// the handler runs. At most maxConnections at once, of which unixReserved
// only for the Unix socket: at the cap the oldest connection still sending
// its request (or idle between requests) is closed to make room, TCP ones
// first, so slow clients cannot starve /healthz or the local clients; only
// when every slot runs a handler is a new one answered 503
// too_many_connections and closed at once.
//
// Keep-alive: HTTP/1.1 connections stay open between requests (requests on
// one connection are handled in order) unless the client says close or the
// server is stopping.
//
// Secrets: request bodies are zeroed after their handler ran (the read
// buffer too, for routes with a secret body). Log lines carry method, path
// (no query), status, peer kind and timing only.
//
// Thread: every member function runs on the io_context's thread (or before
// it runs). The Router (and what it references) must outlive every
// connection: wait for stopped() before destroying them. Destroying the
// Server calls abort(); connections already running keep the internals
// alive until they finish.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "api/log_sink.hpp"
#include "api/router.hpp"
#include "common/result.hpp"

namespace foundationd::api {

struct ServerOptions {
  std::vector<std::string> listen = {"unix:/run/foundationd/api.sock", "tcp:127.0.0.1:9420"};
  // Addresses (same forms) that serve the webhook routes only (the forge
  // reaches these): every other request there gets 404 (Router::handle).
  std::vector<std::string> webhookListen;
  std::size_t maxBodyBytes = 64 * 1024;
  std::size_t maxHeaderBytes = 16 * 1024;
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(30)};
  std::chrono::milliseconds headerTimeout{std::chrono::seconds(10)};
  std::chrono::milliseconds bodyTimeout{std::chrono::seconds(10)};
  std::chrono::milliseconds writeTimeout{std::chrono::seconds(10)};
  // How long an erroneous connection may keep sending after our answer.
  std::chrono::milliseconds lingerTimeout{std::chrono::seconds(2)};
  std::size_t maxConnections = 128;
  std::size_t unixReserved = 16;  // of maxConnections, for the Unix socket only
  unsigned socketMode = 0660;
  LogSink log = stderrLogSink();
};

class Server {
 public:
  Server(boost::asio::any_io_executor executor, Router& router, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on every address, then accepts in the background.
  // All or nothing: on an error, what was opened is closed again. Errors:
  // invalid_argument (a malformed address), conflict (a live server owns the
  // Unix socket, or the TCP port is in use), io (anything else); each names
  // the address. Call once.
  Status start();

  // The addresses actually listened on, in configuration order (listen,
  // then webhookListen), with TCP
  // ports resolved ("tcp:127.0.0.1:41234").
  std::vector<std::string> addresses() const;

  // Stops accepting (listeners closed, Unix socket files removed), closes
  // idle connections, and lets requests in flight finish: their responses
  // say `Connection: close`. Idempotent.
  void stop();
  // As stop(), and closes every connection now (in-flight handlers still
  // run to completion; their answers are lost).
  void abort();
  // Completes once stop() (or abort()) was called and no connection remains.
  boost::asio::awaitable<void> stopped();

  std::size_t connections() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace foundationd::api
