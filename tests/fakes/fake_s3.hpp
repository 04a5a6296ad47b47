// An in-memory buckets::S3Api for unit tests of the bucket controller's plan
// and apply: buckets with versioning and lifecycle rules, a call log, and
// fault injection (fail the next call of a kind). Integration tests use a
// real S3 server instead.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controllers/buckets/s3_client.hpp"

namespace foundationd::fakes {

class FakeS3 final : public buckets::S3Api {
 public:
  struct Bucket {
    std::string versioning;
    std::optional<std::string> lifecycle;  // the stored LifecycleConfiguration document
  };
  std::map<std::string, Bucket> buckets;
  std::vector<std::string> calls;  // "list", "create x", "put-versioning x Enabled", ...
  std::set<std::string> failNext;  // call kinds ("create", "put-lifecycle", ...) to fail once
  bool down = false;               // every call: unavailable
  bool noLifecycle = false;        // lifecycle calls: 501 NotImplemented (as versitygw)

  Result<std::vector<std::string>> listBuckets() override {
    if (auto e = fault("list", "")) return *e;
    std::vector<std::string> out;
    for (const auto& [n, b] : buckets) out.push_back(n);
    return out;
  }
  Status createBucket(const std::string& b) override {
    if (auto e = fault("create", b)) return *e;
    buckets.try_emplace(b);
    return {};
  }
  Result<std::string> getVersioning(const std::string& b) override {
    if (auto e = fault("get-versioning", b)) return *e;
    auto it = buckets.find(b);
    if (it == buckets.end()) return Error::make(ErrorCode::not_found, "NoSuchBucket", 404);
    return it->second.versioning;
  }
  Status putVersioning(const std::string& b, bool enabled) override {
    if (auto e = fault("put-versioning", b)) return *e;
    calls.back() += enabled ? " Enabled" : " Suspended";
    buckets[b].versioning = enabled ? "Enabled" : "Suspended";
    return {};
  }
  Result<std::optional<std::vector<buckets::LifecycleRule>>> getLifecycle(
      const std::string& b) override {
    if (auto e = fault("get-lifecycle", b)) return *e;
    if (noLifecycle) return Error::make(ErrorCode::peer, "S3 answered 501 NotImplemented", 501);
    auto it = buckets.find(b);
    if (it == buckets.end()) return Error::make(ErrorCode::not_found, "NoSuchBucket", 404);
    if (!it->second.lifecycle) return std::optional<std::vector<buckets::LifecycleRule>>{};
    auto rules = buckets::parseLifecycle(*it->second.lifecycle);
    if (!rules) return std::move(rules).error();
    return std::optional<std::vector<buckets::LifecycleRule>>(std::move(rules).value());
  }
  Status putLifecycle(const std::string& b, const std::string& xml) override {
    if (auto e = fault("put-lifecycle", b)) return *e;
    buckets[b].lifecycle = xml;
    return {};
  }
  Status deleteLifecycle(const std::string& b) override {
    if (auto e = fault("delete-lifecycle", b)) return *e;
    buckets[b].lifecycle.reset();
    return {};
  }
  std::uint64_t requestCount() const noexcept override { return calls.size(); }

 private:
  std::optional<Error> fault(const std::string& kind, const std::string& bucket) {
    calls.push_back(bucket.empty() ? kind : kind + " " + bucket);
    if (down) return Error::make(ErrorCode::unavailable, kind + ": connection refused");
    if (failNext.erase(kind)) return Error::make(ErrorCode::peer, kind + ": S3 answered 500", 500);
    return std::nullopt;
  }
};

}  // namespace foundationd::fakes
