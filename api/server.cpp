#include "api/server.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <exception>
#include <filesystem>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errors.hpp"
#include "api/server_internal.hpp"

namespace foundationd::api {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

Error addressError(ErrorCode code, const std::string& address, const std::string& what) {
  return Error::make(code, "api listen address " + address + ": " + what);
}

PeerKind classify(const asio::ip::address& a) {
  if (a.is_loopback()) return PeerKind::loopback;
  if (a.is_v6() && a.to_v6().is_v4_mapped() &&
      asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback()) {
    return PeerKind::loopback;
  }
  return PeerKind::remote;
}

std::string tcpAddress(const tcp::endpoint& ep) {
  const auto a = ep.address();
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return "tcp:" + host + ":" + std::to_string(ep.port());
}

Result<Listener> openUnix(asio::any_io_executor ex, const std::string& address,
                          const std::string& path, unsigned mode) {
  namespace fs = std::filesystem;
  if (path.empty() || path.front() != '/') {
    return addressError(ErrorCode::invalid_argument, address, "the socket path must be absolute");
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return addressError(ErrorCode::invalid_argument, address,
                        "the socket path is longer than " +
                            std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  std::error_code fec;
  fs::create_directories(fs::path(path).parent_path(), fec);
  if (fec) {
    return addressError(ErrorCode::io, address, "cannot create its directory: " + fec.message());
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return addressError(ErrorCode::conflict, address,
                          "the path exists and is not a socket; remove it or choose another");
    }
    local::socket probe(ex);
    boost::system::error_code pec;
    probe.connect(local::endpoint(path), pec);
    if (!pec) {
      return addressError(ErrorCode::conflict, address,
                          "another process is serving this socket (is foundationd running?)");
    }
    ::unlink(path.c_str());  // stale: nobody answers
  }
  Listener l;
  l.address = address;
  l.unixAcceptor = std::make_unique<local::acceptor>(ex);
  boost::system::error_code ec;
  l.unixAcceptor->open(local(), ec);
  if (!ec) l.unixAcceptor->bind(local::endpoint(path), ec);
  if (ec) return addressError(ErrorCode::io, address, "cannot bind: " + ec.message());
  l.unixPath = path;
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return addressError(ErrorCode::io, address,
                        "cannot set its mode: " + std::generic_category().message(err));
  }
  l.unixAcceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    return addressError(ErrorCode::io, address, "cannot listen: " + ec.message());
  }
  return l;
}

Result<Listener> openTcp(asio::any_io_executor ex, const std::string& address,
                         std::string_view hostPort) {
  const auto colon = hostPort.rfind(':');
  if (colon == std::string_view::npos) {
    return addressError(ErrorCode::invalid_argument, address, "expected tcp:IP:PORT");
  }
  std::string_view host = hostPort.substr(0, colon);
  const std::string_view portText = hostPort.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const auto pr = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || pr.ec != std::errc{} || pr.ptr != portText.data() + portText.size() ||
      port > 65535) {
    return addressError(ErrorCode::invalid_argument, address, "the port must be 0..65535");
  }
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return addressError(ErrorCode::invalid_argument, address,
                        "the host must be an IP address (tcp:127.0.0.1:9420, tcp:[::1]:9420)");
  }
  const tcp::endpoint ep(ip, static_cast<unsigned short>(port));
  Listener l;
  l.tcpAcceptor = std::make_unique<tcp::acceptor>(ex);
  l.tcpAcceptor->open(ep.protocol(), ec);
  if (!ec) l.tcpAcceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) l.tcpAcceptor->bind(ep, ec);
  if (ec == asio::error::address_in_use) {
    return addressError(ErrorCode::conflict, address, "the port is in use");
  }
  if (!ec) l.tcpAcceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return addressError(ErrorCode::io, address, "cannot listen: " + ec.message());
  const auto bound = l.tcpAcceptor->local_endpoint(ec);
  l.address = ec ? address : tcpAddress(bound);
  return l;
}

// Answers a connection over the cap with the canned 503 (best effort, never
// blocking) and closes it.
void reject(GenericSocket& s, const std::string& answer) {
  boost::system::error_code ec;
  s.non_blocking(true, ec);
  s.write_some(asio::buffer(answer), ec);
  s.shutdown(asio::socket_base::shutdown_send, ec);
  s.close(ec);
}

template <typename Acceptor>
asio::awaitable<void> acceptLoop(std::shared_ptr<Server::Impl> impl, Acceptor& acceptor,
                                 bool webhookOnly) {
  struct Count {
    Server::Impl& impl;
    explicit Count(Server::Impl& i) : impl(i) { ++impl.acceptLoops; }
    ~Count() {
      --impl.acceptLoops;
      impl.notify();
    }
  } count(*impl);
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(kTuple);
    if (impl->stopping) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      logTo(impl->options.log, LogLevel::warning, "api.accept_failed", {{"error", ec.message()}});
      asio::steady_timer pause(impl->executor, std::chrono::milliseconds(100));  // e.g. EMFILE
      co_await pause.async_wait(kTuple);
      continue;
    }
    PeerKind peer = PeerKind::unix_socket;
    std::optional<PeerCredentials> credentials;
    if constexpr (!std::is_same_v<Acceptor, local::acceptor>) {
      boost::system::error_code rec;
      const auto remote = sock.remote_endpoint(rec);
      peer = rec ? PeerKind::remote : classify(remote.address());
    } else {
      // The kernel's word on who connected (for the audit log's "who").
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        credentials = PeerCredentials{cred.uid, cred.gid, cred.pid};
      }
    }
    boost::system::error_code lec;
    const auto protocol = sock.local_endpoint(lec).protocol();
    GenericSocket generic(impl->executor,
                          asio::generic::stream_protocol(protocol.family(), protocol.protocol()),
                          sock.release());
    // TCP peers share maxConnections less the slots reserved for the Unix
    // socket; the Unix socket may use every slot. At the cap the oldest
    // connection still sending its request (a slow client holds one for
    // at most the head/body deadline) makes room; only when every slot runs
    // a handler is the new one refused.
    const bool tcp = peer != PeerKind::unix_socket;
    const ServerOptions& o = impl->options;
    const std::size_t cap =
        tcp ? (o.maxConnections > o.unixReserved ? o.maxConnections - o.unixReserved : 1)
            : o.maxConnections;
    if (impl->inUse(tcp) >= cap) {
      Connection* victim = impl->oldestIncomplete(tcp);
      if (victim == nullptr) {
        if (!impl->capReported) {
          impl->capReported = true;
          logTo(o.log, LogLevel::warning, "api.connection_cap",
                {{"max", std::to_string(cap)}, {"peer", peerName(peer)}});
        }
        reject(generic, impl->busyAnswer);
        continue;
      }
      victim->dropped = true;
      victim->closeNow();
      logTo(o.log, LogLevel::debug, "api.connection_dropped",
            {{"peer", peerName(victim->peer)}, {"why", "the oldest incomplete at the cap"}});
    }
    impl->capReported = false;
    auto conn = std::make_shared<Connection>(std::move(generic), peer);
    conn->credentials = credentials;
    conn->webhookOnly = webhookOnly;
    conn->serial = ++impl->nextSerial;
    Registration reg(impl, conn.get());
    asio::co_spawn(impl->executor, serveConnection(impl, conn, std::move(reg)),
                   [log = impl->options.log](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       logTo(log, LogLevel::error, "api.connection_failed", {{"error", ex.what()}});
                     } catch (...) {
                       logTo(log, LogLevel::error, "api.connection_failed", {{"error", "unknown"}});
                     }
                   });
  }
}

}  // namespace

// --- Connection, Registration, Impl ------------------------------------------------

Connection::Connection(GenericSocket s, PeerKind p)
    : socket(std::move(s)), timer(socket.get_executor()), peer(p) {}

void Connection::arm(std::chrono::milliseconds d) {
  timer.expires_after(d);
  timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec == asio::error::operation_aborted) return;
    if (self->timer.expiry() > asio::steady_timer::clock_type::now()) return;  // re-armed
    self->timedOut = true;
    self->closeNow();
  });
}

void Connection::disarm() {
  timer.expires_at(asio::steady_timer::time_point::max());
}

void Connection::closeNow() {
  boost::system::error_code ec;
  socket.shutdown(asio::socket_base::shutdown_both, ec);
  socket.close(ec);
}

Registration::Registration(std::shared_ptr<Server::Impl> impl, Connection* conn)
    : impl_(std::move(impl)), conn_(conn) {
  impl_->connections.insert(conn_);
}

Registration::~Registration() {
  if (!impl_) return;
  impl_->connections.erase(conn_);
  impl_->notify();
}

Server::Impl::Impl(asio::any_io_executor e, Router& r, ServerOptions o)
    : executor(std::move(e)),
      router(r),
      options(std::move(o)),
      changed(executor, asio::steady_timer::time_point::max()) {
  const Response busy =
      errorResponse(ApiError::too_many_connections, "too many connections; try again shortly");
  busyAnswer = "HTTP/1.1 " + std::to_string(busy.status) +
               " Service Unavailable\r\nServer: foundationd\r\nContent-Type: application/json\r\n"
               "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
               std::to_string(busy.body.size()) + "\r\n\r\n" + busy.body;
}

std::size_t Server::Impl::inUse(bool tcpOnly) const noexcept {
  std::size_t n = 0;
  for (const Connection* c : connections) {
    if (!c->dropped && (!tcpOnly || c->peer != PeerKind::unix_socket)) ++n;
  }
  return n;
}

Connection* Server::Impl::oldestIncomplete(bool tcpOnly) const noexcept {
  Connection* best = nullptr;
  for (Connection* c : connections) {
    if (c->dropped || c->busy) continue;
    const bool cTcp = c->peer != PeerKind::unix_socket;
    if (tcpOnly && !cTcp) continue;
    if (best == nullptr) {
      best = c;
      continue;
    }
    const bool bestTcp = best->peer != PeerKind::unix_socket;
    if (cTcp != bestTcp ? cTcp : c->serial < best->serial) best = c;
  }
  return best;
}

void Server::Impl::notify() {
  changed.cancel();
}

void Server::Impl::closeListeners() {
  for (Listener& l : listeners) {
    boost::system::error_code ec;
    if (l.unixAcceptor) l.unixAcceptor->close(ec);
    if (l.tcpAcceptor) l.tcpAcceptor->close(ec);
    if (!l.unixPath.empty()) ::unlink(l.unixPath.c_str());
    l.unixPath.clear();
  }
}

// --- Server -------------------------------------------------------------------------

Server::Server(asio::any_io_executor executor, Router& router, ServerOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), router, std::move(options))) {}

Server::~Server() {
  abort();
}

Status Server::start() {
  if (impl_->started) return Error::make(ErrorCode::conflict, "the API server was started already");
  impl_->started = true;
  std::vector<std::pair<std::string, bool>> wanted;  // address, webhook only
  for (const std::string& a : impl_->options.listen) wanted.emplace_back(a, false);
  for (const std::string& a : impl_->options.webhookListen) wanted.emplace_back(a, true);
  for (const auto& [address, webhookOnly] : wanted) {
    Result<Listener> l =
        Error::make(ErrorCode::invalid_argument,
                    "api listen address " + address + ": expected unix:/PATH or tcp:IP:PORT");
    if (address.rfind("unix:", 0) == 0) {
      l = openUnix(impl_->executor, address, address.substr(5), impl_->options.socketMode);
    } else if (address.rfind("tcp:", 0) == 0) {
      l = openTcp(impl_->executor, address, std::string_view(address).substr(4));
    }
    if (!l) {
      impl_->closeListeners();
      impl_->listeners.clear();
      impl_->stopping = true;
      return std::move(l).error();
    }
    l->webhookOnly = webhookOnly;
    impl_->listeners.push_back(std::move(*l));
  }
  const auto onDone = [log = impl_->options.log](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      logTo(log, LogLevel::error, "api.accept_loop_failed", {{"error", ex.what()}});
    } catch (...) {
      logTo(log, LogLevel::error, "api.accept_loop_failed", {{"error", "unknown"}});
    }
  };
  for (Listener& l : impl_->listeners) {
    logTo(impl_->options.log, LogLevel::info, "api.listening",
          {{"address", l.address}, {"serves", l.webhookOnly ? "webhooks" : "all"}});
    if (l.unixAcceptor) {
      asio::co_spawn(impl_->executor, acceptLoop(impl_, *l.unixAcceptor, l.webhookOnly), onDone);
    } else {
      asio::co_spawn(impl_->executor, acceptLoop(impl_, *l.tcpAcceptor, l.webhookOnly), onDone);
    }
  }
  return Status::success();
}

std::vector<std::string> Server::addresses() const {
  std::vector<std::string> out;
  for (const Listener& l : impl_->listeners) out.push_back(l.address);
  return out;
}

void Server::stop() {
  Impl& impl = *impl_;
  if (impl.stopping) return;
  impl.stopping = true;
  impl.closeListeners();
  const std::vector<Connection*> open(impl.connections.begin(), impl.connections.end());
  for (Connection* c : open) {
    if (c->idle) c->closeNow();
  }
  impl.notify();
}

void Server::abort() {
  stop();
  const std::vector<Connection*> open(impl_->connections.begin(), impl_->connections.end());
  for (Connection* c : open) c->closeNow();
}

asio::awaitable<void> Server::stopped() {
  std::shared_ptr<Impl> impl = impl_;
  while (!impl->finished()) {
    co_await impl->changed.async_wait(kTuple);
  }
}

std::size_t Server::connections() const noexcept {
  return impl_->connections.size();
}

}  // namespace foundationd::api
