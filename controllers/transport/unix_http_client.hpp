// HTTP/1.1 over a Unix domain socket (the Docker Engine API), Boost.Beast on
// Asio, C++20 coroutines.
//
// Thread: all calls on the io_context's thread (one thread, STYLE.md). Keeps
// a small pool of idle keep-alive connections; concurrent requests each take
// their own connection, so callers may run many requests at once. Transport
// failures (socket missing, connection refused/reset, timeout) are values
// with ErrorCode::unavailable or ErrorCode::timeout; HTTP error statuses are
// *not* errors here: the caller maps them.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

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
  std::string contentType = "application/json";
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

  const std::string& socketPath() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foundationd::transport
