#include "controllers/buckets/s3_client.hpp"

#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

std::string encodeKey(std::string_view key) {
  return transport::urlEncodePath(key);
}

transport::PeerRequest buildObjectRequest(const S3Endpoint& endpoint, const std::string& method,
                                          const std::string& bucket, const std::string& key,
                                          const std::string& query,
                                          const std::string& payloadSha256) {
  transport::PeerRequest req;
  req.method = method;
  req.url = trimSlash(endpoint.url) + "/" + transport::urlEncode(bucket);
  if (!key.empty()) req.url += "/" + encodeKey(key);
  if (!query.empty()) req.url += "?" + query;
  req.pathAsIs = true;
  req.headers.emplace_back("x-amz-content-sha256", payloadSha256);
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
  if (code == "NoSuchBucket" || code == "NoSuchKey" || (code.empty() && response.status == 404)) {
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

// ---- objects -----------------------------------------------------------

namespace {
// SHA-256 of nothing: the payload hash of a GET.
const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
}  // namespace

Result<ObjectPage> S3Client::listPage(const std::string& bucket, const std::string& query,
                                      std::chrono::milliseconds timeout) {
  auto req = buildObjectRequest(endpoint_, "GET", bucket, "", query, kEmptySha256);
  req.timeout = timeout;
  ++requests_;
  auto r = transport_(req);
  if (!r) return std::move(r).error();
  if (!r->ok()) return s3Error("ListObjectsV2 " + bucket, *r);
  auto p = parseListObjectsV2(r->body);
  if (!p) return Error::make(p.error().code, "ListObjectsV2 " + bucket + ": " + p.error().message);
  return p;
}

Result<std::vector<ObjectInfo>> S3Client::listObjects(const std::string& bucket, int pageSize) {
  std::vector<ObjectInfo> all;
  std::string token;
  for (int page = 0;; ++page) {
    // Canonical order: continuation-token < list-type < max-keys.
    std::string query;
    if (!token.empty()) query += "continuation-token=" + transport::urlEncode(token) + "&";
    query += "list-type=2&max-keys=" + std::to_string(pageSize);
    auto p = listPage(bucket, query, std::max(timeout_, std::chrono::milliseconds(60'000)));
    if (!p) return std::move(p).error();
    for (auto& o : p->objects) all.push_back(std::move(o));
    if (!p->truncated) break;
    if (p->continuationToken == token || p->objects.empty()) {
      return Error::make(ErrorCode::protocol, "ListObjectsV2 " + bucket +
                                                  ": the server's continuation does not advance");
    }
    token = std::move(p->continuationToken);
  }
  return all;
}

Result<bool> S3Client::hasObjects(const std::string& bucket) {
  auto p = listPage(bucket, "list-type=2&max-keys=1", timeout_);
  if (!p) return std::move(p).error();
  return !p->objects.empty();
}

Result<ObjectInfo> S3Client::getObject(const std::string& bucket, const std::string& key,
                                       const Sink& sink) {
  auto req = buildObjectRequest(endpoint_, "GET", bucket, key, "", kEmptySha256);
  req.timeout = std::chrono::hours(24);
  req.stallTimeout = stall_;
  ObjectInfo info;
  info.key = key;
  std::optional<Error> sinkError;
  req.responseSink = [&](std::string_view piece) {
    auto st = sink(piece);
    if (!st) {
      sinkError = st.error();
      return false;
    }
    info.size += piece.size();
    return true;
  };
  ++requests_;
  auto r = transport_(req);
  if (sinkError) return *sinkError;
  const std::string what = "GetObject " + bucket + "/" + key;
  if (!r) return Error::make(r.error().code, what + ": " + r.error().message);
  if (!r->ok()) return s3Error(what, *r);
  info.etag = unquoteEtag(r->header("etag"));
  const std::string length = r->header("content-length");
  if (!length.empty() && length != std::to_string(info.size)) {
    return Error::make(ErrorCode::protocol, what + ": received " + std::to_string(info.size) +
                                                " bytes of " + length);
  }
  return info;
}

Result<std::string> S3Client::putObject(const std::string& bucket, const std::string& key, int fd,
                                        std::uint64_t size, const std::string& sha256Hex) {
  auto req = buildObjectRequest(endpoint_, "PUT", bucket, key, "", sha256Hex);
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  req.timeout = std::chrono::hours(24);
  req.stallTimeout = stall_;
  req.bodySize = size;
  std::uint64_t left = size;
  std::optional<Error> readError;
  req.bodySource = [&](char* buf, std::size_t max) -> std::int64_t {
    if (left == 0) return 0;
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, left));
    for (;;) {
      const ssize_t n = ::read(fd, buf, want);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        readError = Error::make(ErrorCode::io, n < 0 ? std::string(std::strerror(errno))
                                                     : std::string("the file is shorter than " +
                                                                   std::to_string(size) + " bytes"));
        return -1;
      }
      left -= static_cast<std::uint64_t>(n);
      return n;
    }
  };
  ++requests_;
  auto r = transport_(req);
  const std::string what = "PutObject " + bucket + "/" + key;
  if (readError) return Error::make(readError->code, what + ": reading its content: " + readError->message);
  if (!r) return Error::make(r.error().code, what + ": " + r.error().message);
  if (!r->ok()) return s3Error(what, *r);
  return unquoteEtag(r->header("etag"));
}

}  // namespace foundationd::buckets
