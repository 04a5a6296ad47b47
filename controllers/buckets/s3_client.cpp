#include "controllers/buckets/s3_client.hpp"

#include <sodium.h>

namespace foundationd::buckets {

namespace {

std::string trimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// "GET /bucket?versioning=": how a call is named in an error.
std::string callName(const std::string& method, const std::string& bucket,
                     const std::string& subresource) {
  std::string s = method + " /" + bucket;
  if (!subresource.empty()) s += "?" + subresource;
  return s;
}

}  // namespace

std::string sha256Hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return std::string(hex, crypto_hash_sha256_BYTES * 2);
}

transport::PeerRequest buildRequest(const S3Endpoint& endpoint, const std::string& method,
                                    const std::string& bucket, const std::string& subresource,
                                    std::string body) {
  transport::PeerRequest req;
  req.method = method;
  req.url = trimSlash(endpoint.url) + "/";
  if (!bucket.empty()) req.url += transport::urlEncode(bucket);
  // "name=" and not "name": see the header (libcurl 7.88's canonical query).
  if (!subresource.empty()) req.url += "?" + subresource + "=";
  req.headers.emplace_back("x-amz-content-sha256", sha256Hex(body));
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/xml");
  req.body = std::move(body);
  std::string region = endpoint.region.empty() ? "us-east-1" : endpoint.region;
  req.sigv4 =
      transport::AwsSigV4{"aws:amz:" + region + ":s3", endpoint.accessKey, endpoint.secretKey};
  return req;
}

Error s3Error(const std::string& what, const transport::PeerResponse& response) {
  auto body = parseError(response.body);
  std::string code = body ? body->code : std::string{};
  std::string msg = what + ": S3 answered " + std::to_string(response.status);
  if (!code.empty()) msg += " " + code;
  if (body && !body->message.empty()) msg += " (" + body->message + ")";
  ErrorCode ec = ErrorCode::peer;
  if (code == "NoSuchBucket" || (code.empty() && response.status == 404)) {
    ec = ErrorCode::not_found;
  } else if (code == "BucketAlreadyExists") {
    ec = ErrorCode::conflict;
  } else if (response.status == 503 || code == "ServiceUnavailable" || code == "SlowDown") {
    ec = ErrorCode::unavailable;
  }
  return Error::make(ec, std::move(msg), response.status);
}

S3Client::S3Client(S3Endpoint endpoint, Transport transport)
    : endpoint_(std::move(endpoint)), transport_(std::move(transport)) {
  if (!transport_) transport_ = transport::peerRequest;
}

Result<transport::PeerResponse> S3Client::send(const std::string& method, const std::string& bucket,
                                               const std::string& subresource, std::string body) {
  auto req = buildRequest(endpoint_, method, bucket, subresource, std::move(body));
  req.timeout = timeout_;
  ++requests_;
  return transport_(req);
}

Result<std::vector<std::string>> S3Client::listBuckets() {
  auto r = send("GET", "", "");
  if (!r) return std::move(r).error();
  if (!r->ok()) return s3Error("ListBuckets", *r);
  return parseListBuckets(r->body);
}

Status S3Client::createBucket(const std::string& bucket) {
  auto r = send("PUT", bucket, "", createBucketXml(endpoint_.region));
  if (!r) return std::move(r).error();
  if (r->ok()) return {};
  auto body = parseError(r->body);
  if (body && body->code == "BucketAlreadyOwnedByYou") return {};
  return s3Error("CreateBucket " + bucket, *r);
}

Result<std::string> S3Client::getVersioning(const std::string& bucket) {
  auto r = send("GET", bucket, "versioning");
  if (!r) return std::move(r).error();
  if (!r->ok()) return s3Error(callName("GET", bucket, "versioning"), *r);
  return parseVersioning(r->body);
}

Status S3Client::putVersioning(const std::string& bucket, bool enabled) {
  auto r = send("PUT", bucket, "versioning", versioningXml(enabled));
  if (!r) return std::move(r).error();
  if (!r->ok()) return s3Error(callName("PUT", bucket, "versioning"), *r);
  return {};
}

Result<std::optional<std::vector<LifecycleRule>>> S3Client::getLifecycle(
    const std::string& bucket) {
  auto r = send("GET", bucket, "lifecycle");
  if (!r) return std::move(r).error();
  if (!r->ok()) {
    auto body = parseError(r->body);
    if (body && body->code == "NoSuchLifecycleConfiguration") {
      return std::optional<std::vector<LifecycleRule>>{};
    }
    return s3Error(callName("GET", bucket, "lifecycle"), *r);
  }
  // Some servers answer 200 with an empty body for "none".
  if (r->body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return std::optional<std::vector<LifecycleRule>>{};
  }
  auto rules = parseLifecycle(r->body);
  if (!rules) return std::move(rules).error();
  return std::optional<std::vector<LifecycleRule>>(std::move(rules).value());
}

Status S3Client::putLifecycle(const std::string& bucket, const std::string& xml) {
  auto r = send("PUT", bucket, "lifecycle", xml);
  if (!r) return std::move(r).error();
  if (!r->ok()) return s3Error(callName("PUT", bucket, "lifecycle"), *r);
  return {};
}

Status S3Client::deleteLifecycle(const std::string& bucket) {
  auto r = send("DELETE", bucket, "lifecycle");
  if (!r) return std::move(r).error();
  if (r->ok()) return {};
  auto body = parseError(r->body);
  if (body && body->code == "NoSuchLifecycleConfiguration") return {};
  return s3Error(callName("DELETE", bucket, "lifecycle"), *r);
}

}  // namespace foundationd::buckets
