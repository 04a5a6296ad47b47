// Internals shared by server.cpp (listeners, accepting, stopping) and
// server_session.cpp (one connection). Not part of api/'s interface.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "api/server.hpp"

namespace foundationd::api {

using GenericSocket = boost::asio::generic::stream_protocol::socket;

// One accepted connection. Owned by its session coroutine (shared_ptr); the
// server's set holds a plain pointer for stop()/abort(), removed by
// Registration when the session ends.
struct Connection : std::enable_shared_from_this<Connection> {
  Connection(GenericSocket s, PeerKind p);

  // Sets the deadline of the current phase; missing it closes the socket.
  void arm(std::chrono::milliseconds d);
  void disarm();
  void closeNow();

  GenericSocket socket;
  boost::asio::steady_timer timer;
  PeerKind peer;
  std::optional<PeerCredentials> credentials;  // the Unix socket's peer (SO_PEERCRED)
  bool webhookOnly = false;  // accepted on a ServerOptions::webhookListen address
  std::uint64_t serial = 0;  // accept order: the lowest is the oldest
  bool idle = false;      // waiting for the first byte of a request
  bool busy = false;      // a whole request was read: its handler runs or its answer is written
  bool dropped = false;   // closed to make room for a newer connection
  bool timedOut = false;  // a deadline passed and closed the socket
};

struct Listener {
  std::string address;   // as bound ("tcp:127.0.0.1:41234")
  std::string unixPath;  // to remove on stop ("" for TCP)
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unixAcceptor;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcpAcceptor;
  bool webhookOnly = false;  // from ServerOptions::webhookListen
};

struct Server::Impl {
  Impl(boost::asio::any_io_executor e, Router& r, ServerOptions o);

  void notify();  // wakes stopped() waiters
  void closeListeners();
  bool finished() const noexcept { return stopping && connections.empty() && acceptLoops == 0; }
  // Connections not dropped: all, or those of TCP peers only.
  std::size_t inUse(bool tcpOnly) const noexcept;
  // The oldest connection that is still reading its request (or idle
  // between requests), TCP ones first; nullptr when every one is busy.
  Connection* oldestIncomplete(bool tcpOnly) const noexcept;

  boost::asio::any_io_executor executor;
  Router& router;
  ServerOptions options;
  std::vector<Listener> listeners;
  std::set<Connection*> connections;
  int acceptLoops = 0;
  std::uint64_t nextSerial = 0;
  bool started = false;
  bool stopping = false;
  bool capReported = false;
  std::string busyAnswer;  // the canned 503 for connections over the cap
  boost::asio::steady_timer changed;
};

// Removes a connection from Impl::connections when destroyed (also when a
// session coroutine is destroyed without ever running).
class Registration {
 public:
  Registration(std::shared_ptr<Server::Impl> impl, Connection* conn);
  Registration(Registration&& o) noexcept : impl_(std::move(o.impl_)), conn_(o.conn_) {}
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  Registration& operator=(Registration&&) = delete;
  ~Registration();

 private:
  std::shared_ptr<Server::Impl> impl_;
  Connection* conn_;
};

// A parsed Beast request as the Router's value; the body is moved out
// (server_session.cpp; also used by the HTTP fuzz target).
Request toRequest(boost::beast::http::request<boost::beast::http::string_body>& msg, PeerKind peer);

// Serves one connection until it closes (server_session.cpp).
boost::asio::awaitable<void> serveConnection(std::shared_ptr<Server::Impl> impl,
                                             std::shared_ptr<Connection> conn,
                                             Registration registration);

}  // namespace foundationd::api
