// A narrow S3 client: the bucket-level calls the bucket controller needs,
// path-style, signed by libcurl (CURLOPT_AWS_SIGV4) through the shared
// blocking transport (controllers/transport/http_client.hpp).
//
// Blocking: the daemon calls it on its thread pool. One S3Client per
// endpoint and credentials; not shared between threads.
//
// Two details every S3 server here needs (docs/buckets.md):
//  - every request carries x-amz-content-sha256 (the payload's SHA-256):
//    libcurl 7.88 signs it when present but does not add it itself, and S3
//    servers refuse a signed body without it;
//  - sub-resources are written "?versioning=" (with '='): libcurl 7.88 puts
//    a bare "?versioning" into the canonical request without the '=', and the
//    server's signature then differs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "controllers/buckets/s3_xml.hpp"
#include "controllers/transport/http_client.hpp"

namespace foundationd::buckets {

struct S3Endpoint {
  std::string url;     // "http://127.0.0.1:9000" (a trailing '/' is ignored)
  std::string region;  // "us-east-1"
  std::string accessKey;
  std::string secretKey;  // never logged, never in an error
};

// The calls the controller makes. Errors: ErrorCode::unavailable/timeout (no
// answer), not_found (NoSuchBucket), conflict (a bucket name owned by
// someone else), peer (any other S3 error; the message names the S3 code and
// status, never a secret), protocol (an answer we cannot read).
class S3Api {
 public:
  virtual ~S3Api() = default;
  virtual Result<std::vector<std::string>> listBuckets() = 0;
  virtual Status createBucket(const std::string& bucket) = 0;  // already ours: success
  // "Enabled", "Suspended" or "" (never enabled).
  virtual Result<std::string> getVersioning(const std::string& bucket) = 0;
  virtual Status putVersioning(const std::string& bucket, bool enabled) = 0;
  // nullopt: the bucket has no lifecycle configuration.
  virtual Result<std::optional<std::vector<LifecycleRule>>> getLifecycle(
      const std::string& bucket) = 0;
  virtual Status putLifecycle(const std::string& bucket, const std::string& xml) = 0;
  virtual Status deleteLifecycle(const std::string& bucket) = 0;
  // Requests sent so far (benchmarks and tests count them).
  virtual std::uint64_t requestCount() const noexcept = 0;
};

using Transport = std::function<Result<transport::PeerResponse>(const transport::PeerRequest&)>;

// Builds the request for one call (exposed for unit tests): path-style URL,
// "aws:amz:<region>:s3" signing, x-amz-content-sha256, Content-Type for bodies.
transport::PeerRequest buildRequest(const S3Endpoint& endpoint, const std::string& method,
                                    const std::string& bucket, const std::string& subresource,
                                    std::string body);

// Lower-case hex SHA-256 (libsodium).
std::string sha256Hex(std::string_view data);

// An object key as a SigV4 canonical URI path: every byte but the RFC 3986
// unreserved characters and '/' percent-encoded ("a b/é" -> "a%20b/%C3%A9").
// libcurl 7.88 signs the path exactly as written in the URL, and S3 servers
// encode the decoded key the same way, so both sides agree.
std::string encodeKey(std::string_view key);

// The request for one object call (exposed for unit tests): path-style
// "/BUCKET/KEY", sent as written (no dot-segment removal), signed with
// `payloadSha256` as x-amz-content-sha256. `query` must already be in
// SigV4's canonical form (names sorted, values encoded): libcurl 7.88 signs
// the query string as written.
transport::PeerRequest buildObjectRequest(const S3Endpoint& endpoint, const std::string& method,
                                          const std::string& bucket, const std::string& key,
                                          const std::string& query,
                                          const std::string& payloadSha256);

class S3Client final : public S3Api {
 public:
  // `transport` defaults to transport::peerRequest.
  explicit S3Client(S3Endpoint endpoint, Transport transport = {});

  Result<std::vector<std::string>> listBuckets() override;
  Status createBucket(const std::string& bucket) override;
  Result<std::string> getVersioning(const std::string& bucket) override;
  Status putVersioning(const std::string& bucket, bool enabled) override;
  Result<std::optional<std::vector<LifecycleRule>>> getLifecycle(
      const std::string& bucket) override;
  Status putLifecycle(const std::string& bucket, const std::string& xml) override;
  Status deleteLifecycle(const std::string& bucket) override;
  std::uint64_t requestCount() const noexcept override { return requests_; }

  void setTimeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  // ---- objects (backups, docs/dr.md "Buckets") --------------------------
  // Every object of `bucket` (ListObjectsV2, `pageSize` keys per request,
  // following continuation tokens), in the server's (key) order.
  Result<std::vector<ObjectInfo>> listObjects(const std::string& bucket, int pageSize = 1000);
  // Whether `bucket` holds at least one object (one ListObjectsV2 of 1 key).
  Result<bool> hasObjects(const std::string& bucket);
  // GetObject, the body handed to `sink` piece by piece as it arrives (never
  // held whole); a sink error aborts the transfer and is returned. The
  // object's ETag (unquoted) and size on success.
  using Sink = std::function<Status(std::string_view piece)>;
  Result<ObjectInfo> getObject(const std::string& bucket, const std::string& key,
                               const Sink& sink);
  // PutObject of `size` bytes read from `fd` (from its current offset),
  // whose SHA-256 is `sha256Hex` (signed as the payload hash: the server
  // refuses a body that does not match). Single part: the ETag returned
  // (unquoted) is the MD5 of the content on S3-compatible servers.
  Result<std::string> putObject(const std::string& bucket, const std::string& key, int fd,
                                std::uint64_t size, const std::string& sha256Hex);
  // Object transfers end when they stall this long (no byte for it).
  void setStallTimeout(std::chrono::seconds t) { stall_ = t; }

 private:
  // One ListObjectsV2 page (`query` in canonical order).
  Result<ObjectPage> listPage(const std::string& bucket, const std::string& query,
                              std::chrono::milliseconds timeout);
  Result<transport::PeerResponse> send(const std::string& method, const std::string& bucket,
                                       const std::string& subresource, std::string body = {});

  S3Endpoint endpoint_;
  Transport transport_;
  std::chrono::milliseconds timeout_{10'000};
  std::chrono::seconds stall_{120};
  std::uint64_t requests_ = 0;
};

// An Error for a non-2xx S3 answer: the S3 code mapped onto ErrorCode.
Error s3Error(const std::string& what, const transport::PeerResponse& response);

}  // namespace foundationd::buckets
