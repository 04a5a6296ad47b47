// The bucket controller: [s3.NAME] servers and their [buckets.NAME].
//
// For each [s3.*] (in name order): wait (bounded) for the endpoint to answer,
// list its buckets, then for each bucket of the spec on that server: create
// it when missing, keep versioning as specified (Enabled, or not Enabled:
// S3 cannot return a bucket to "never versioned", so `versioning = false`
// suspends it), and keep the expiry rule: `expire_days = N > 0` is one
// lifecycle rule (ID "foundationd-expire", whole bucket, expire after N days);
// `expire_days = 0` means no such rule — an existing one is removed (the
// whole configuration is deleted only when it was the only rule). Lifecycle
// rules with other IDs are kept as they are. Buckets are never deleted;
// buckets on the server that the spec does not name are reported as orphans
// and not touched.
//
// Shape (STYLE.md): observe() reads, plan() is pure (and is the dry run),
// apply() performs. reconcile() runs all three for every [s3.*].
//
// Blocking (libcurl): the daemon runs it on its pool; `apply --once` calls it
// directly. Secrets: the access/secret keys come through `SecretLookup` and
// reach only libcurl; no message here holds one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/buckets/s3_client.hpp"
#include "controllers/step_report.hpp"

namespace foundationd::buckets {

// The plain value of a credential field; nullopt while locked / not generated.
using SecretLookup = std::function<std::optional<std::string>(const config::CredentialRef&)>;
using ClientFactory = std::function<std::unique_ptr<S3Api>(const S3Endpoint&)>;

// A Value with its credential references filled in; nullopt when one is
// missing.
std::optional<std::string> resolveValue(const config::Value& value, const SecretLookup& secrets);

// What "applied" means for a bucket, as the daemon remembers it (state
// store, kind "bucket"): the spec's settings, no secret.
std::string appliedDigest(const config::BucketSpec& bucket);

// ---- observe ----------------------------------------------------------------

struct BucketState {
  std::string versioning;                               // "Enabled" | "Suspended" | ""
  std::optional<std::vector<LifecycleRule>> lifecycle;  // nullopt: none configured
  // The server answered NotImplemented to GetBucketLifecycleConfiguration
  // (versitygw's posix backend does): expire_days > 0 cannot be kept there.
  bool lifecycleUnsupported = false;
};

struct Observed {
  std::vector<std::string> buckets;           // every bucket the server lists
  std::map<std::string, BucketState> states;  // the wanted ones that exist
};

// Lists the buckets, then reads versioning and lifecycle of each wanted one
// that exists: 1 + 2 x (wanted existing) requests.
Result<Observed> observe(S3Api& api, const std::vector<const config::BucketSpec*>& wanted);
// The same with the bucket list already in hand.
Result<Observed> observeListed(S3Api& api, const std::vector<const config::BucketSpec*>& wanted,
                               std::vector<std::string> buckets);

// ---- plan (pure) ------------------------------------------------------------

enum class Action { create, enableVersioning, suspendVersioning, putLifecycle, deleteLifecycle };
const char* toString(Action action) noexcept;

struct Change {
  std::string bucket;
  Action action;
  std::string body;    // putLifecycle: the whole LifecycleConfiguration
  bool drift = false;  // the live state moved away from what was applied
  std::string reason;  // "versioning: Suspended -> Enabled"
};

struct Plan {
  std::vector<Change> changes;       // in order: create, versioning, lifecycle per bucket
  std::vector<std::string> orphans;  // on the server, not in the spec: kept
  // bucket -> why its spec cannot be kept on this server (nothing is tried).
  std::map<std::string, std::string> problems;
  bool empty() const noexcept { return changes.empty() && problems.empty(); }
};

// `applied`: bucket name -> appliedDigest last recorded for it (may be empty).
// A change is drift when the bucket's recorded digest equals its current one
// (this very config had been applied, and the live state moved since).
// `orphanCandidates`: every bucket the spec names on any server, so that a
// bucket of another [s3.*] sharing the endpoint is not an orphan.
Plan plan(const std::vector<const config::BucketSpec*>& wanted, const Observed& observed,
          const std::map<std::string, std::string>& applied,
          const std::vector<std::string>& specBuckets);

// ---- apply ------------------------------------------------------------------

// Performs the changes in order; a failed change ends its bucket's changes
// (the others go on). One outcome per wanted bucket.
StepReport apply(S3Api& api, const std::vector<const config::BucketSpec*>& wanted,
                 const Plan& plan);

// ---- the step -----------------------------------------------------------------

struct Options {
  // How long to wait for an endpoint to answer at all (then: failed, retried
  // by the scheduler's backoff); 0 = one try.
  std::chrono::milliseconds waitReady{60'000};
  std::chrono::milliseconds pollInterval{500};
  std::chrono::milliseconds requestTimeout{10'000};
  // [s3.*] container name -> why it is not running (checked by the caller,
  // which has the Docker client); a server listed here is `blocked`.
  std::map<std::string, std::string> hostProblems;
  std::map<std::string, std::string> applied;  // see plan()
  bool dryRun = false;                         // observe and plan only
  ClientFactory clients;                       // default: S3Client over libcurl
};

struct ServerResult {
  std::string s3;            // [s3.NAME]
  std::optional<Plan> plan;  // when it could be observed
  std::uint64_t requests = 0;
};

struct Outcome {
  StepReport report;  // one outcome per [s3.*] and per [buckets.*]
  std::vector<ServerResult> servers;
  // Buckets that ended as specified: name -> appliedDigest, to record.
  std::map<std::string, std::string> applied;
  std::uint64_t requests = 0;
};

Outcome reconcile(const config::Spec& spec, const SecretLookup& secrets, const Options& options);

}  // namespace foundationd::buckets
