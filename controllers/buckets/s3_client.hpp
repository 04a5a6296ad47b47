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

 private:
  Result<transport::PeerResponse> send(const std::string& method, const std::string& bucket,
                                       const std::string& subresource, std::string body = {});

  S3Endpoint endpoint_;
  Transport transport_;
  std::chrono::milliseconds timeout_{10'000};
  std::uint64_t requests_ = 0;
};

// An Error for a non-2xx S3 answer: the S3 code mapped onto ErrorCode.
Error s3Error(const std::string& what, const transport::PeerResponse& response);

}  // namespace foundationd::buckets
