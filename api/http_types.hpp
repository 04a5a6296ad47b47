// Request and Response: the values a route handler maps between. No socket,
// no Beast: the server converts, tests build them by hand (STYLE.md "a
// handler is a plain function from request to response").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace foundationd::api {

// Where a request came from. unix_socket and loopback count as local
// (GET /v1/status needs no token from them).
enum class PeerKind { unix_socket, loopback, remote };
const char* peerName(PeerKind peer) noexcept;  // "unix", "loopback", "remote"
inline bool isLocal(PeerKind peer) noexcept {
  return peer != PeerKind::remote;
}

// Who is at the other end of a Unix socket connection, as the kernel says
// (SO_PEERCRED, read when the connection was accepted): not what the client
// claims.
struct PeerCredentials {
  unsigned uid = 0;
  unsigned gid = 0;
  int pid = 0;
};
// "uid 1000 (alice), pid 4242": the user's name when the system knows it.
std::string describeCredentials(const PeerCredentials& who);

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup; the first match, "" when absent.
std::string_view findHeader(const Headers& headers, std::string_view name) noexcept;

struct Request {
  std::string method;  // "GET", as sent
  std::string target;  // "/v1/events?since=3", as sent
  Headers headers;     // as sent (names in any case)
  // May hold a secret (POST /v1/unseal). The server zeroes its own copy after
  // the handler returns; handlers must not log or echo it.
  std::string body;
  PeerKind peer = PeerKind::remote;
  // The Unix socket's peer (SO_PEERCRED); none on TCP.
  std::optional<PeerCredentials> credentials;
  // Arrived on an api.webhook_listen address: only the webhook routes
  // answer there (Router::handle), everything else is 404.
  bool webhookListener = false;

  std::string_view header(std::string_view name) const noexcept {
    return findHeader(headers, name);
  }
  std::string_view path() const noexcept;   // target up to '?'
  std::string_view query() const noexcept;  // after '?', "" when none
};

// The value of query parameter `name` ("a=1&b=2"), percent-decoded; nullopt
// when absent. A parameter without '=' has the value "".
std::optional<std::string> queryParam(std::string_view query, std::string_view name);

struct Response {
  int status = 200;
  Headers headers;  // Content-Type included; the server adds Content-Length, Connection, Server
  std::string body;

  std::string_view header(std::string_view name) const noexcept {
    return findHeader(headers, name);
  }

  // `value` dumped compactly with a trailing newline, Content-Type application/json.
  static Response json(int status, const nlohmann::json& value);
  static Response text(int status, std::string body, std::string contentType);
};

}  // namespace foundationd::api
