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
