// HTTP over TCP for the peers foundationd reaches by address (Vault, S3,
// Forgejo): a thin, blocking wrapper over libcurl. Blocking on purpose: the
// daemon runs these calls on its small thread pool (Daemon::onPool), the CLI
// calls them directly.
//
// Requests to S3 are signed by libcurl itself (CURLOPT_AWS_SIGV4); nothing
// here hand-writes a signature.
//
// Secrets: header values and bodies are never copied into an Error message.
// Every block libcurl frees is zeroed first (curl_global_init_mem): its
// copies of the headers, of the request and of the answer. The answer's body
// grows in memory zeroed when freed; the caller gets one copy, and wipes it
// and its request's body and header values when they hold a secret (the
// Vault client does).
// An error says which method and URL failed and why (curl's reason or the
// status), nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace foundationd::transport {

struct AwsSigV4 {
  // CURLOPT_AWS_SIGV4's "provider1[:provider2[:region[:service]]]",
  // e.g. "aws:amz:us-east-1:s3".
  std::string provider;
  std::string accessKey;
  std::string secretKey;
};

struct BasicAuth {
  std::string user;
  std::string password;
};

struct PeerRequest {
  std::string method = "GET";
  std::string url;  // absolute: "http://127.0.0.1:8200/v1/sys/health"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};         // the whole exchange
  std::chrono::milliseconds connectTimeout{3'000};
  std::optional<AwsSigV4> sigv4;
  std::optional<BasicAuth> basicAuth;
  // Streaming (S3 objects; all optional):
  // - `bodySource`: the body is read piece by piece instead of from `body`
  //   (an upload, sent as PUT with Content-Length `bodySize`); it returns the
  //   bytes written into `buf` (0 at the end) or -1 to abort the exchange;
  // - `responseSink`: a 2xx answer's body is handed over piece by piece and
  //   not kept (false aborts the exchange); any other answer's body is kept
  //   in `body` (up to 64 KiB) so its error can be read;
  // - `pathAsIs`: the path is sent exactly as written (no "." or ".."
  //   segment removal: an S3 key is not a file path);
  // - `stallTimeout`: > 0 ends an exchange that moved less than one byte a
  //   second for that long (for long transfers with a large `timeout`).
  std::function<std::int64_t(char* buf, std::size_t max)> bodySource;
  std::uint64_t bodySize = 0;
  std::function<bool(std::string_view piece)> responseSink;
  bool pathAsIs = false;
  std::chrono::seconds stallTimeout{0};
};

struct PeerResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;

  bool ok() const noexcept { return status >= 200 && status < 300; }
  // The value of a (lower-case) header, or "".
  std::string header(const std::string& lowerName) const;
};

// A connection kept open between the requests of one client (HTTP
// keep-alive): a Vault step of ten requests opens one TCP connection, not
// ten. One libcurl handle, made on first use; after each request its options
// (copies of a password, a SigV4 secret) are freed, and so zeroed, at once;
// the connection and libcurl's buffers stay until the Session is destroyed,
// when they are freed and zeroed too. Not thread-safe: one thread at a
// time. A copy is a new Session (no connection shared).
class Session {
 public:
  Session() = default;
  Session(const Session&) noexcept {}
  Session& operator=(const Session&) noexcept { return *this; }
  Session(Session&& other) noexcept : easy_(other.easy_) { other.easy_ = nullptr; }
  Session& operator=(Session&& other) noexcept;
  ~Session();

 private:
  friend Result<PeerResponse> sessionRequest(const PeerRequest& request, Session& session);
  void* easy_ = nullptr;  // CURL*, made on first use
};

// Performs one exchange on a connection of its own, closed and zeroed before
// it returns. Any HTTP status is a value (check response.status); an Error
// means no usable response: ErrorCode::unavailable (refused, unreachable,
// reset), ErrorCode::timeout, ErrorCode::invalid_argument (a malformed URL),
// ErrorCode::internal (libcurl itself failed).
Result<PeerResponse> peerRequest(const PeerRequest& request);
// The same on `session`'s connection (opened by its first request).
Result<PeerResponse> sessionRequest(const PeerRequest& request, Session& session);

// Starts loading libcurl on a thread of its own (once per process; joined at
// exit). A one-shot command that will reach a peer over TCP calls it first:
// the load (about 15 ms of shared libraries and their initialisers) then runs
// beside the unlock and the Docker step instead of inside the first request.
void preloadInBackground();

// Bytes of libcurl's memory zeroed before being freed so far (tests).
std::size_t curlWipedBytes() noexcept;

// Percent-encodes one URL path segment or query value (RFC 3986 unreserved
// characters stay as they are).
std::string urlEncode(std::string_view text);
// The same for a path of segments: its '/' stay (an S3 key, a Vault path).
std::string urlEncodePath(std::string_view text);

}  // namespace foundationd::transport
