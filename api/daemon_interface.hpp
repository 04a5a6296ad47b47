// DaemonControl: everything api/ knows about the daemon (STYLE.md "Which way
// the arrows point"): a status snapshot and a few commands. daemon/ implements
// it; tests use tests/fakes/fake_daemon.hpp.
//
// Thread: every member is called on the io_context's thread (one thread,
// STYLE.md); coroutines are co_awaited there too. Implementations that do
// blocking work (Argon2id, SQLite) hand it to their thread pool and co_await
// the result, so the API keeps serving meanwhile.
//
// Errors: expected failures are values. Error codes are mapped to HTTP
// statuses in exactly one place (api/errors.cpp); Error::message reaches the
// client verbatim, so it must say what went wrong and what to do, and must
// never contain a secret (passphrase, token, credential value).
//
// Exceptions thrown by an implementation are bugs: the router answers 500
// `internal` and logs the route, never the exception text of a route that
// carries a secret.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "api/http_types.hpp"
#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::api {

template <typename T>
using Task = boost::asio::awaitable<T>;

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// A resource's reconcile status (docs/api.md "Resource status"):
// - converged: it matches the spec (checked by its config hash; while locked
//   a running container still is, since secrets are compared by digest; the
//   reason then says nothing that needs a secret can change until unsealed);
// - pending: a change is planned or under way;
// - drifted: found moved away from the spec, not repaired yet;
// - failed: a change was tried and failed, or needs the operator (a conflict);
// - blocked: not converged and not attempted: it waits for something (the
//   unseal, a dependency, a host container); the reason says what.
enum class ResourceStatus { converged, pending, drifted, failed, blocked };
inline constexpr ResourceStatus kAllResourceStatuses[] = {
    ResourceStatus::converged, ResourceStatus::pending, ResourceStatus::drifted,
    ResourceStatus::failed, ResourceStatus::blocked};
// The wire name ("converged", ...). Not called toString on purpose (doctest's
// CHECK would pick it up through ADL).
const char* statusName(ResourceStatus status) noexcept;

struct VaultState {
  bool present = false;      // the spec declares a Vault
  bool initialized = false;  // `vault operator init` has happened
  bool sealed = true;
};

struct SpecState {
  std::string source;           // "file:/srv/foundation/foundation.toml", "git:https://...#main"
  std::string revision;         // newest revision seen ("" when none yet)
  std::string appliedRevision;  // the revision the last successful apply used
  std::string lastError;        // the newest revision's errors when it was rejected ("" when none)
  // A git source: when the last fetch finished, and why it failed ("" when it worked).
  std::optional<TimePoint> lastFetch;
  std::string fetchError;
  std::string warnings;  // the newest revision's warnings, one line each ("" when none)
  // docs/source.md: the revision whose spec is in force (after a rollback,
  // the last good one), who signed it when signatures are required, and the
  // last automatic rollback ("" when none).
  std::string inForce;
  std::string signedBy;
  std::string rolledBack;
};

// start/end/result/converged describe the last *finished* reconcile (all
// empty before the first); running/runningSince the one under way, if any.
struct ReconcileState {
  std::optional<TimePoint> start;
  std::optional<TimePoint> end;
  // "converged"; "blocked" (locked: what needs no secret converged, the rest
  // waits for the unseal); "not converged"; "docker unreachable"; "no valid spec".
  std::string result;
  bool converged = false;  // the last finished reconcile converged everything
  bool running = false;
  std::optional<TimePoint> runningSince;
};

struct ResourceState {
  std::string kind;  // "container", "volume", "credential", ...
  std::string name;
  ResourceStatus status = ResourceStatus::pending;
  std::string reason;  // why it is not converged ("" when converged)
  std::optional<TimePoint> lastTransition;
};

// What GET /v1/status shows, /readyz decides on and /metrics derives its
// state gauges from. A value: the daemon builds it from its in-memory state
// (cheap, no I/O).
// [backup] (docs/dr.md "Schedule and reports"): the last attempt, the last
// complete backup (local manifest + offsite copy confirmed, or no offsite
// declared), and the condition derived from them.
struct BackupSectionState {
  std::string name;  // "postgres/main/db/appdb", "state", ...
  std::uint64_t bytes = 0;
  double seconds = 0;
};
struct BackupRunState {
  std::string id;
  std::optional<TimePoint> started;
  std::optional<TimePoint> finished;
  bool ok = false;          // the local backup has its manifest
  std::string error;        // why not
  std::string offsite;      // "none" (not declared), "confirmed", "failed"
  std::string offsiteError;
  std::uint64_t bytes = 0;
  std::vector<BackupSectionState> sections;
  std::string by;      // "daemon", "cli"
  std::string reason;  // "" = on request or schedule; "before an upgrade: ..."
};
// The last `backup verify` (docs/dr.md "Verify").
struct BackupVerifyState {
  std::string id;  // the backup verified
  bool ok = false;
  std::string reason;  // "setup", "integrity", "restore", "mismatch", "cleanup"; "" when ok
  std::string error;
  std::optional<TimePoint> finished;
  std::string by;  // "cli", "daemon"
};
struct BackupState {
  bool declared = false;  // the spec has [backup]; nothing else is set otherwise
  // "never", "ok", "failed", "offsite_failed", "stale": a failed or stale
  // backup is a condition, not a log line.
  std::string condition;
  std::string message;
  std::string waiting;  // why the schedule cannot run now ("" = it can): locked, ...
  bool running = false;
  std::optional<TimePoint> nextDue;
  std::optional<BackupRunState> lastAttempt;
  std::optional<BackupRunState> lastComplete;
  // The last complete backup's verification: "verified", "failed: REASON",
  // "never" (a backup never verified is reported as such).
  std::string latestVerified = "never";
  std::optional<BackupVerifyState> lastVerify;     // of any backup
  std::optional<TimePoint> lastVerifiedOk;         // when the last successful verify finished
  // The daemon's next verify ([backup] verify_schedule); nullopt: "off", or
  // no complete backup yet.
  std::optional<TimePoint> nextVerifyDue;
  bool verifyRunning = false;
};

struct StatusSnapshot {
  bool locked = true;
  VaultState vault;
  SpecState spec;
  ReconcileState lastReconcile;
  std::vector<ResourceState> resources;
  BackupState backup;

  // The /v1/status document:
  // {"locked":true,"vault":{"present":..,"initialized":..,"sealed":..},
  //  "spec":{"source":..,"revision":..,"applied_revision":..,"last_error":..,"warnings":..,
  //          "last_fetch":..,"fetch_error":..},
  //  "last_reconcile":{"start":..,"end":..,"result":..,"converged":..,"running":..,
  //                    "running_since":..},
  //  "resources":[{"kind":..,"name":..,"status":..,"reason":..,"last_transition":..}],
  //  "backup":null | {"condition":..,"message":..,"waiting":..,"running":..,"next_due":..,
  //            "last_attempt":RUN|null,"last_complete":RUN|null}, RUN = {"id":..,"started":..,
  //            "finished":..,"ok":..,"error":..,"offsite":..,"offsite_error":..,"bytes":..,
  //            "sections":[{"name":..,"bytes":..,"seconds":..}],"by":..},
  //  "summary":{"total":N,"converged":N,...}}
  // Times are RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.000Z"), null when unknown;
  // empty strings are null.
  nlohmann::json toJson() const;
};

// RFC 3339 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string formatTime(TimePoint t);

// The outcome of POST /v1/unseal. Not a Result: a rate-limited refusal
// carries a retry delay, and each outcome has its own HTTP status.
enum class UnsealOutcome {
  unlocked,          // 200: the state is unlocked (and Vault unsealed when present and possible)
  wrong_passphrase,  // 403: counted towards the backoff
  rate_limited,      // 429 + Retry-After: too many recent failures; not even tried
  not_initialized,   // 409: no state store yet (`foundationd init`)
  failed,            // 500 (or the mapped status of `error`): anything else
};
const char* outcomeName(UnsealOutcome outcome) noexcept;  // "unlocked", "wrong_passphrase", ...

struct UnsealResult {
  UnsealOutcome outcome = UnsealOutcome::failed;
  std::chrono::seconds retryAfter{0};  // rate_limited: when the next attempt is allowed (>= 1)
  bool vaultUnsealed = false;          // unlocked: Vault is unsealed as well
  // failed: what went wrong (code mapped by api/errors.cpp). Other outcomes:
  // an optional human message; never the passphrase.
  std::optional<Error> error;
};

// One audit-log entry for GET /v1/events (the state store's AuditEntry,
// with its fields parsed).
struct AuditEvent {
  std::int64_t id = 0;  // increasing, never reused
  TimePoint at;
  std::string event;  // "unseal.failed", "reconcile.done", "webhook.accepted", ...
  nlohmann::json fields = nlohmann::json::object();  // never secret values
};

// A push as POST /v1/hooks/forgejo parsed it (api/webhook.hpp).
struct PushEvent {
  std::string ref;         // "refs/heads/main"
  std::string before;      // commit ids, lower-case hex ("" when absent)
  std::string after;       // the pushed commit; all zeros when the branch was deleted
  std::string repository;  // "org/foundation" ("" when absent)
  bool deleted = false;
};

// A pull request event (X-Forgejo-Event / X-Gitea-Event: pull_request) as
// POST /v1/hooks/forgejo parsed it (api/webhook.hpp). The forge sends it on
// opened, reopened, edited, closed, ... and "synchronized" (Gitea, Forgejo;
// GitHub says "synchronize") for a push to the pull request's branch.
struct PullRequestEvent {
  std::string action;      // "opened", "synchronized", ...
  std::int64_t number = 0; // the pull request's index in its repository
  std::string headSha;     // the head commit, lower-case hex
  std::string baseRef;     // the branch it asks to merge into ("main")
  std::string repository;  // "org/foundation" ("" when absent)
};

// One webhook delivery whose signature the API checked.
struct WebhookDelivery {
  std::string event;              // X-Forgejo-Event / X-Gitea-Event: "push", "ping", ...
  std::string delivery;           // X-Forgejo-Delivery / X-Gitea-Delivery ("" when absent)
  std::optional<PushEvent> push;  // set for event "push"
  std::optional<PullRequestEvent> pullRequest;  // set for event "pull_request"
};

enum class WebhookOutcome {
  accepted,   // 202: a push to the tracked branch (fetch + reconcile follow), or a pull
              // request to it (a plan of its head is posted on it)
  ignored,    // 200: another event or branch
  duplicate,  // 200: this delivery id was processed already
};
const char* webhookOutcomeName(WebhookOutcome outcome) noexcept;  // "accepted", ...

struct WebhookResult {
  WebhookOutcome outcome = WebhookOutcome::ignored;
  std::string message;  // why (ignored: which branch/event)
};

// The outcome of POST /v1/rotate: the new versions, then the reconcile that
// carried them to every consumer.
struct RotateResult {
  std::string credential;
  std::vector<std::pair<std::string, int>> fields;  // (field, new version)
  std::string result;                               // that reconcile's result ("converged", ...)
  bool converged = false;
};

class DaemonControl {
 public:
  virtual ~DaemonControl() = default;

  // Cheap and synchronous: a copy of the daemon's current in-memory view.
  virtual StatusSnapshot status() = 0;

  // Unlocks the state with `passphrase` and, when Vault is present, unseals
  // it. The implementation owns the backoff (persisted failure counter) and
  // decides rate_limited *before* running the KDF; it records the attempt in
  // the audit log and in foundationd_unseal_attempts_total (Metrics::
  // recordUnseal). The passphrase arrives in guarded memory and is wiped when
  // the SecretBytes dies; the implementation must not copy it elsewhere.
  // Unsealing an already unlocked daemon checks the passphrase and answers
  // unlocked or wrong_passphrase. `from` picks the backoff: the Unix socket
  // is a trusted path with its own counter, TCP peers share another one.
  virtual Task<UnsealResult> unseal(state::SecretBytes passphrase, PeerKind from) = 0;

  // Forgets the data key (wiped), seals Vault when present; back to locked.
  // Sealing a locked daemon succeeds.
  virtual Task<Status> seal() = 0;

  // Triggers a reconcile, coalesced with any pending one; returns at once.
  // An error (e.g. ErrorCode::unavailable while shutting down) is a refusal.
  virtual Status requestReconcile() = 0;

  // The current plan (desired vs live) as the stable JSON document of
  // `foundationd plan --json`. Needs no passphrase.
  virtual Task<Result<nlohmann::json>> plan() = 0;

  // Audit-log entries with id > `since`, oldest first, at most `limit`.
  virtual Task<Result<std::vector<AuditEvent>>> events(std::int64_t since, std::size_t limit) = 0;

  // POST /v1/hooks/forgejo. First the secret the API verifies the delivery's
  // HMAC with: unavailable while locked (503), not_found when no webhook is
  // configured ([source] kind = "git" with webhook_secret). The default
  // implementation is not_found.
  virtual Task<Result<state::SecretBytes>> webhookSecret();
  // Then a delivery whose signature matched: the daemon decides (tracked
  // branch or not, delivery id seen before or not), records it in the audit
  // log and returns at once; the fetch runs afterwards, coalesced.
  virtual Task<WebhookResult> webhook(WebhookDelivery delivery);
  // A delivery whose signature was missing or wrong (audited, rate-limited).
  virtual void webhookRejected(const std::string& why);

  // POST /v1/rotate: new versions of every generated field of `credential`
  // (durable first), PostgreSQL and Vault told, then every consumer updated
  // in dependency order by a reconcile, whose end it waits for. Errors:
  // unavailable while locked, not_found for a credential the spec in force
  // does not declare. The default implementation is not_found.
  virtual Task<Result<RotateResult>> rotate(std::string credential);

  // POST /v1/secrets: `foundationd secret set NAME.FIELD` through the running
  // daemon. Stores `value` as the new version of a provided field (durable
  // first, audit-logged with `by`: who sent it, from the Unix socket's peer
  // credentials, never the value), then carries it to
  // every consumer like a rotation (PostgreSQL, Vault, containers) and waits
  // for that reconcile. Errors: unavailable while locked, not_found /
  // invalid_argument for a field that is not a provided one of the spec in
  // force. The default implementation is not_found.
  virtual Task<Result<RotateResult>> setSecret(std::string credential, std::string field,
                                               state::SecretBytes value, std::string by);
};

}  // namespace foundationd::api
