#include "api/daemon_interface.hpp"

#include <cstdio>
#include <ctime>
#include <map>

namespace foundationd::api {
namespace {

nlohmann::json timeOrNull(const std::optional<TimePoint>& t) {
  return t ? nlohmann::json(formatTime(*t)) : nlohmann::json(nullptr);
}

nlohmann::json stringOrNull(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

}  // namespace

const char* statusName(ResourceStatus status) noexcept {
  switch (status) {
    case ResourceStatus::converged:
      return "converged";
    case ResourceStatus::pending:
      return "pending";
    case ResourceStatus::drifted:
      return "drifted";
    case ResourceStatus::failed:
      return "failed";
    case ResourceStatus::blocked:
      return "blocked";
  }
  return "pending";
}

const char* outcomeName(UnsealOutcome outcome) noexcept {
  switch (outcome) {
    case UnsealOutcome::unlocked:
      return "unlocked";
    case UnsealOutcome::wrong_passphrase:
      return "wrong_passphrase";
    case UnsealOutcome::rate_limited:
      return "rate_limited";
    case UnsealOutcome::not_initialized:
      return "not_initialized";
    case UnsealOutcome::failed:
      return "failed";
  }
  return "failed";
}

const char* webhookOutcomeName(WebhookOutcome outcome) noexcept {
  switch (outcome) {
    case WebhookOutcome::accepted:
      return "accepted";
    case WebhookOutcome::ignored:
      return "ignored";
    case WebhookOutcome::duplicate:
      return "duplicate";
  }
  return "ignored";
}

Task<Result<state::SecretBytes>> DaemonControl::webhookSecret() {
  co_return Error::make(ErrorCode::not_found,
                        "no webhook is configured: [source] kind = \"git\" with webhook_secret");
}

Task<WebhookResult> DaemonControl::webhook(WebhookDelivery) {
  co_return WebhookResult{WebhookOutcome::ignored, "webhooks are not handled by this daemon"};
}

void DaemonControl::webhookRejected(const std::string&) {}

Task<Result<RotateResult>> DaemonControl::rotate(std::string) {
  co_return Error::make(ErrorCode::not_found, "this daemon does not rotate credentials");
}

Task<Result<RotateResult>> DaemonControl::setSecret(std::string, std::string, state::SecretBytes,
                                                    std::string) {
  co_return Error::make(ErrorCode::not_found, "this daemon does not take provided values");
}

std::string formatTime(TimePoint t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<long long>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler imagines
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

namespace {

nlohmann::json runJson(const std::optional<BackupRunState>& r) {
  if (!r) return nullptr;
  nlohmann::json sections = nlohmann::json::array();
  for (const auto& s : r->sections) {
    sections.push_back({{"name", s.name}, {"bytes", s.bytes}, {"seconds", s.seconds}});
  }
  return {{"id", stringOrNull(r->id)},
          {"started", timeOrNull(r->started)},
          {"finished", timeOrNull(r->finished)},
          {"ok", r->ok},
          {"error", stringOrNull(r->error)},
          {"offsite", r->offsite},
          {"offsite_error", stringOrNull(r->offsiteError)},
          {"bytes", r->bytes},
          {"sections", std::move(sections)},
          {"by", stringOrNull(r->by)},
          {"reason", stringOrNull(r->reason)}};
}

nlohmann::json verifyJson(const std::optional<BackupVerifyState>& v) {
  if (!v) return nullptr;
  return {{"id", stringOrNull(v->id)},
          {"ok", v->ok},
          {"reason", stringOrNull(v->reason)},
          {"error", stringOrNull(v->error)},
          {"finished", timeOrNull(v->finished)},
          {"by", stringOrNull(v->by)}};
}

nlohmann::json backupJson(const BackupState& b) {
  if (!b.declared) return nullptr;
  return {{"condition", b.condition},
          {"message", stringOrNull(b.message)},
          {"waiting", stringOrNull(b.waiting)},
          {"running", b.running},
          {"next_due", timeOrNull(b.nextDue)},
          {"last_attempt", runJson(b.lastAttempt)},
          {"last_complete", runJson(b.lastComplete)},
          {"verification",
           {{"last_complete", b.latestVerified},
            {"last", verifyJson(b.lastVerify)},
            {"last_verified", timeOrNull(b.lastVerifiedOk)},
            {"next_due", timeOrNull(b.nextVerifyDue)},
            {"running", b.verifyRunning}}}};
}

}  // namespace

nlohmann::json StatusSnapshot::toJson() const {
  nlohmann::json resourcesJson = nlohmann::json::array();
  std::map<std::string, int> counts;
  for (ResourceStatus s : kAllResourceStatuses) counts[statusName(s)] = 0;
  for (const ResourceState& r : resources) {
    resourcesJson.push_back({{"kind", r.kind},
                             {"name", r.name},
                             {"status", statusName(r.status)},
                             {"reason", stringOrNull(r.reason)},
                             {"last_transition", timeOrNull(r.lastTransition)}});
    ++counts[statusName(r.status)];
  }
  nlohmann::json summary = {{"total", resources.size()}};
  for (const auto& [name, n] : counts) summary[name] = n;

  return {
      {"locked", locked},
      {"vault",
       {{"present", vault.present}, {"initialized", vault.initialized}, {"sealed", vault.sealed}}},
      {"spec",
       {{"source", stringOrNull(spec.source)},
        {"revision", stringOrNull(spec.revision)},
        {"applied_revision", stringOrNull(spec.appliedRevision)},
        {"last_error", stringOrNull(spec.lastError)},
        {"warnings", stringOrNull(spec.warnings)},
        {"last_fetch", timeOrNull(spec.lastFetch)},
        {"fetch_error", stringOrNull(spec.fetchError)},
        {"in_force", stringOrNull(spec.inForce)},
        {"signed_by", stringOrNull(spec.signedBy)},
        {"rolled_back", stringOrNull(spec.rolledBack)}}},
      {"last_reconcile",
       {{"start", timeOrNull(lastReconcile.start)},
        {"end", timeOrNull(lastReconcile.end)},
        {"result", stringOrNull(lastReconcile.result)},
        {"converged", lastReconcile.converged},
        {"running", lastReconcile.running},
        {"running_since", timeOrNull(lastReconcile.runningSince)}}},
      {"resources", std::move(resourcesJson)},
      {"summary", std::move(summary)},
      {"backup", backupJson(backup)},
  };
}

}  // namespace foundationd::api
