// HTTP/1.1 over a Unix domain socket (the Docker Engine API), Boost.Beast on
// Asio, C++20 coroutines.
//
// Thread: all calls on the io_context's thread (one thread, STYLE.md). Keeps
// a small pool of idle keep-alive connections; concurrent requests each take
// their own connection, so callers may run many requests at once. Transport
// failures (socket missing, connection refused/reset, timeout) are values
// with ErrorCode::unavailable or ErrorCode::timeout; HTTP error statuses are
// *not* errors here: the caller maps them. Unparseable responses are
// ErrorCode::protocol. Error messages name the socket path, the method and
// the target, never the request body.
//
// Connections: up to kMaxIdleConnections idle connections are kept for
// kMaxIdleAge. A pooled connection is checked (non-blocking peek) before
// reuse and dropped if the server closed it. If a *pooled* connection still
// fails before any response byte arrived, the request is retried once on a
// fresh connection: always when nothing of the request could be written,
// and, when the request was written, only for idempotent methods (GET, HEAD,
// PUT, DELETE, OPTIONS). A fresh connection is never retried.
//
// Timeout: HttpRequest::timeout is one deadline for the whole exchange
// (connect, write, reading the full body or stream, a retry included).
// HttpRequest::kNoTimeout means no deadline at all (a stream that may stay
// silent for hours, e.g. Docker's events): such a request ends only when the
// server ends the response or closes the connection, the callback stops it,
// or the caller cancels the coroutine (asio per-operation cancellation).
//
// Hijack: hijack() hands the connection itself to the caller once the
// response header arrived (HTTP upgrade, Docker's exec start and attach); see
// HijackedConnection below.
//
// Lifetime: in-flight requests keep the client's internals alive, so the
// UnixHttpClient may be destroyed while a request is suspended; such a
// request still completes (idle connections are closed on destruction).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/result.hpp"

namespace foundationd::transport {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

struct HttpRequest {
  std::string method = "GET";
  std::string target;  // "/v1.41/containers/json?all=1"
  std::string body;
  std::string contentType = "application/json";  // sent only with a body
  std::map<std::string, std::string> headers;    // extra request headers
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // The body or a header carries a secret (a passphrase, a secret value, the
  // API token). request() then serializes the message from, and reads the
  // answer into, buffers that are zeroed when freed (state::WipingAllocator:
  // Beast's header fields, body, read buffer and parser), on a fresh
  // connection that is closed afterwards (never pooled, never retried), and
  // zeroes this request's own body and header values (sodium_memzero) when it
  // completes, also on failure. The answer's body is handed back as usual
  // (a copy the caller owns). stream() and hijack() ignore it.
  bool sensitive = false;

  // As `timeout`: no deadline (see the file comment).
  static constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();
};

// A connection taken over from HTTP after the response header: from then on
// its bytes are the server's own protocol (Docker's multiplexed exec stream),
// not HTTP. Owns its socket; never pooled; closed on destruction.
//
// Thread: the io_context's. Full duplex: one readSome() and one writeAll()
// may be in flight at the same time (e.g. feeding stdin while reading
// output), but not two of the same kind.
//
// Deadline: the hijack request's deadline (HttpRequest::timeout, counted from
// the start of hijack()) still applies to every read and write until
// expiresAt() changes it; when it passes the connection is closed and the
// pending and later operations fail with ErrorCode::timeout. Other failures
// are ErrorCode::unavailable. Error messages name the socket and the request
// line, never the bytes sent or received.
class HijackedConnection {
 public:
  ~HijackedConnection();
  HijackedConnection(const HijackedConnection&) = delete;
  HijackedConnection& operator=(const HijackedConnection&) = delete;

  // Reads at least one byte, at most out.size(); 0 means the peer ended the
  // stream. Bytes the HTTP parser had already read past the response header
  // come first, so nothing is lost at the switch-over.
  boost::asio::awaitable<Result<std::size_t>> readSome(std::span<char> out);
  // Writes all of `data` (it may be a secret: it appears in no message).
  boost::asio::awaitable<Status> writeAll(std::string_view data);
  // Half-close: shuts down our sending side, so the peer reads end of stream
  // (for Docker: the process's stdin is closed); reading goes on.
  Status closeWrite();
  // Closes both directions now; operations in flight complete with an error.
  void close();
  bool isOpen() const noexcept;
  // A new deadline for every later read and write; time_point::max(): none.
  void expiresAt(std::chrono::steady_clock::time_point deadline);

  struct State;  // defined in unix_http_client.cpp
  explicit HijackedConnection(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

struct HijackedResponse {
  // Status and headers. When the server did not switch (any status but 101
  // or 200), body holds its response body (e.g. Docker's {"message": ...}).
  HttpResponse head;
  // The connection after a 101 Switching Protocols or a 200 whose rest is
  // unframed (Docker answers 200 when no Upgrade header was sent); null
  // otherwise.
  std::unique_ptr<HijackedConnection> connection;
};

class UnixHttpClient {
 public:
  UnixHttpClient(boost::asio::any_io_executor executor, std::string socketPath);
  ~UnixHttpClient();
  UnixHttpClient(const UnixHttpClient&) = delete;
  UnixHttpClient& operator=(const UnixHttpClient&) = delete;

  boost::asio::awaitable<Result<HttpResponse>> request(HttpRequest req);

  // Streams the response body: `onChunk` is called for every piece of body
  // as it arrives (Docker's pull progress, the events stream, exec output);
  // returning false stops reading and closes the connection. Completes when
  // the body ends, onChunk returns false, or the timeout passes. The returned
  // response carries status and headers; its body is empty.
  boost::asio::awaitable<Result<HttpResponse>> stream(
      HttpRequest req, std::function<bool(std::string_view chunk)> onChunk);

  // As stream(), but `onHead` first sees the status and headers (body empty),
  // before any body byte: e.g. to treat a non-2xx body as an error document
  // rather than as events. Returning false skips the body and closes the
  // connection.
  boost::asio::awaitable<Result<HttpResponse>> stream(
      HttpRequest req, std::function<bool(const HttpResponse& head)> onHead,
      std::function<bool(std::string_view chunk)> onChunk);

  // Sends `req` on a fresh connection (never a pooled one: the connection
  // will not come back, and a non-idempotent upgrade must not be retried) and
  // reads the response header. On 101 or 200 returns the connection itself
  // (see HijackedConnection): what follows the header is not read as HTTP.
  // To ask for a 101, set req.headers {"Connection": "Upgrade", "Upgrade":
  // "tcp"} (what the Docker CLI sends). Any other status is an ordinary HTTP
  // answer: its body is read (up to kMaxBodyBytes) and the connection closed.
  // Errors and the deadline as for request().
  boost::asio::awaitable<Result<HijackedResponse>> hijack(HttpRequest req);

  const std::string& socketPath() const noexcept;

  // Idle connections currently pooled (tests, metrics).
  std::size_t idleConnections() const noexcept;

  static constexpr std::size_t kMaxIdleConnections = 8;
  static constexpr std::chrono::seconds kMaxIdleAge{30};
  // request() refuses larger bodies with ErrorCode::protocol.
  static constexpr std::size_t kMaxBodyBytes = 64u << 20;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace foundationd::transport
