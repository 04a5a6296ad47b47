// The daemon's plan: the desired spec against the live host, nothing changed
// (GET /v1/plan, the plans posted on pull requests).
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/plan_render.hpp"
#include "daemon/buckets_step.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/files_step.hpp"

namespace foundationd::daemon {

api::Task<Result<nlohmann::json>> Daemon::plan() {
  loadSpec();
  if (!spec_) co_return Error::make(ErrorCode::invalid_argument, "no valid spec: " + specError_);
  const config::Spec spec = *spec_;
  auto p = co_await planSpec(spec);
  if (!p) co_return p.error();
  co_return p->json();
}

// GET /v1/plan and the plans posted on pull requests (daemon_pr.cpp): the
// desired `spec` against the live host, nothing changed.
api::Task<Result<SpecPlan>> Daemon::planSpec(const config::Spec& spec) {
  auto observed = co_await docker::observe(docker_, spec.project);
  if (!observed) co_return observed.error();
  StoreSecrets secrets(spec, store_.get(), nullptr);
  SpecPlan out;
  if (!spec.credentials.empty()) {  // the same document as `plan --json`
    auto p = credentials::planCredentials(spec, *store_, std::chrono::system_clock::now());
    if (!p) co_return p.error();
    out.credentials = credentialChanges(p.value());
  }
  out.docker = docker::plan(spec, observed.value(), secrets);
  if (!spec.files.empty()) out.files = planFiles(spec, secrets, store_.get(), config_.stateDir);
  if (!spec.s3.empty()) {  // buckets: a dry run against each S3 server (needs the keys)
    const config::Spec* specp = &spec;
    state::Store* store = store_.get();
    const state::UnlockedKey* key = key_.locked() ? nullptr : &key_;
    auto dry = [specp, store, key] { return planBucketsJson(*specp, store, key); };
    out.buckets = co_await onPool(dry);
  }
  co_return out;
}

nlohmann::json SpecPlan::json() const {
  auto doc = docker::renderPlanJson(docker, credentials);
  if (files) doc["files"] = *files;
  if (buckets) doc["buckets"] = *buckets;
  return doc;
}

std::string SpecPlan::text() const {
  std::string out;
  if (files) out += renderFilesPlanText(*files);
  out += docker::renderPlanText(docker, {}, credentials);
  if (buckets) out += "Buckets (dry run): " + buckets->dump() + "\n";
  return out;
}

bool SpecPlan::hasChanges() const {
  return docker::hasChanges(docker, credentials) || docker.hasConflicts() ||
         (files && filesPlanHasChanges(*files));
}

}  // namespace foundationd::daemon
