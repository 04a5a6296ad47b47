// Metrics: every metric INTERFACES.md names, on one MetricsRegistry, plus
// the standard process_* metrics read from /proc/self. GET /metrics renders it.
//
// Who updates what:
// - Derived at scrape time by the /metrics handler from DaemonControl::
//   status() (updateFromStatus()): foundationd_locked,
//   foundationd_vault_initialized, foundationd_vault_sealed (only when the
//   spec declares [vault]: no sample otherwise),
//   foundationd_resources{kind,status} (every status of every kind present,
//   0 included), foundationd_spec_info{revision}. The daemon does nothing.
// A metric is exported only where it means something: no sample rather than
// a false 0 (spec_last_fetch_timestamp_seconds before the first git fetch).
// - Set once here: foundationd_build_info{version,revision}.
// - Read from /proc/self by updateProcess() (render() calls it): process_*.
// - Updated by the daemon where the event happens:
//     recordReconcile(result, took)   reconcile_total{result} (converged, blocked: locked
//                                     with nothing failed, failed), reconcile_duration_seconds
//     driftRepairs().inc({kind})      drift_repairs_total{kind}, once per repaired resource
//     specLastFetch().set(unixSecs)   spec_last_fetch_timestamp_seconds, after each fetch
//     specFetches().inc({result})     spec_fetches_total{result} (ok, failed): git fetches run
//     webhookDeliveries().inc({r})    webhook_deliveries_total{result} (webhook issue)
//     recordUnseal(outcome)           unseal_attempts_total{result}: the daemon's
//                                     DaemonControl::unseal() calls it for every attempt,
//                                     the API and the credential file at start alike
//     observeDockerRequest(...)       docker_requests_total{endpoint,code} and
//                                     docker_request_duration_seconds{endpoint}: pass it
//                                     to DockerClient::setRequestObserver
//     vaultRequests().inc({code})     vault_requests_total{code}, from the Vault client
//     recordStep(step, took)          reconcile_step_duration_seconds{step}: each step of a
//                                     daemon reconcile (credentials, docker, vault, buckets,
//                                     postgres, forgejo), the names `apply --once` prints
//     changes().inc({kind})           changes_total{kind}: resources created or updated
//     backupFailures().inc({reason})  backup_failures_total{reason} (backup, offsite): the
//                                     daemon's scheduled backups that failed
//     backupVerifyFailures().inc({reason}) backup_verify_failures_total{reason} (setup,
//                                     integrity, restore, mismatch, cleanup): each failed
//                                     `backup verify` the daemon saw recorded in the state
// - Derived from status().backup (updateBackup()): backup_last_success_timestamp_seconds,
//   backup_last_attempt_timestamp_seconds, backup_last_verified_timestamp_seconds,
//   backup_condition{condition},
//   backup_section_duration_seconds{section}, backup_section_size_bytes{section} (the
//   sections of the last complete backup: names the spec gives, bounded by it).
// Label values are bounded vocabularies (result names, resource kinds, route
// templates, HTTP codes), never names a client chose or secret values.
//
// Thread-safety: as MetricsRegistry (any thread). Non-copyable; the daemon
// owns one for its lifetime.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "api/daemon_interface.hpp"
#include "api/metrics_registry.hpp"

namespace foundationd::api {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  MetricsRegistry& registry() noexcept { return registry_; }

  // --- updated by the daemon -------------------------------------------------
  Counter& reconcileTotal() noexcept { return reconcileTotal_; }
  Histogram& reconcileDuration() noexcept { return reconcileDuration_; }
  Counter& driftRepairs() noexcept { return driftRepairs_; }
  Gauge& specLastFetch() noexcept { return specLastFetch_; }
  Counter& specFetches() noexcept { return specFetches_; }
  Counter& webhookDeliveries() noexcept { return webhookDeliveries_; }
  Counter& unsealAttempts() noexcept { return unsealAttempts_; }
  Counter& dockerRequests() noexcept { return dockerRequests_; }
  Histogram& dockerRequestDuration() noexcept { return dockerRequestDuration_; }
  Counter& vaultRequests() noexcept { return vaultRequests_; }
  Histogram& reconcileStepDuration() noexcept { return reconcileStepDuration_; }
  Counter& changes() noexcept { return changes_; }
  Counter& backupFailures() noexcept { return backupFailures_; }
  Counter& backupVerifyFailures() noexcept { return backupVerifyFailures_; }

  // --- derived from the status snapshot ----------------------------------------
  Gauge& locked() noexcept { return locked_; }
  Gauge& vaultInitialized() noexcept { return vaultInitialized_; }
  Gauge& vaultSealed() noexcept { return vaultSealed_; }
  Gauge& resources() noexcept { return resources_; }
  Gauge& specInfo() noexcept { return specInfo_; }

  // A finished reconcile: result is "converged", "blocked" or "failed".
  void recordReconcile(std::string_view result, std::chrono::duration<double> took);
  // One step of a reconcile ("docker", "vault", ...).
  void recordStep(std::string_view step, std::chrono::duration<double> took);
  // One unseal attempt: result label = outcomeName(outcome).
  void recordUnseal(UnsealOutcome outcome);
  // One Docker Engine request: endpoint is the route template
  // ("POST /containers/{id}/start"), status 0 (no HTTP answer) is code="error".
  void observeDockerRequest(std::string_view endpoint, int status, std::chrono::nanoseconds took);
  // Sets the state gauges from a snapshot (the /metrics handler does it).
  void updateFromStatus(const StatusSnapshot& status);
  // The backup_* gauges from status.backup (updateFromStatus calls it).
  void updateBackup(const BackupState& backup);
  // Reads /proc/self (best effort: a value that cannot be read is left as it was).
  void updateProcess();

  // updateProcess(), then the whole exposition.
  std::string render();

  // Content-Type of the exposition.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  MetricsRegistry registry_;
  Gauge& buildInfo_;
  Gauge& locked_;
  Gauge& vaultInitialized_;
  Gauge& vaultSealed_;
  Counter& reconcileTotal_;
  Histogram& reconcileDuration_;
  Gauge& resources_;
  Counter& driftRepairs_;
  Gauge& specInfo_;
  Gauge& specLastFetch_;
  Counter& specFetches_;
  Counter& webhookDeliveries_;
  Counter& unsealAttempts_;
  Counter& dockerRequests_;
  Histogram& dockerRequestDuration_;
  Counter& vaultRequests_;
  Histogram& reconcileStepDuration_;
  Counter& changes_;
  Gauge& backupLastSuccess_;
  Gauge& backupLastAttempt_;
  Gauge& backupCondition_;
  Gauge& backupSectionDuration_;
  Gauge& backupSectionSize_;
  Counter& backupFailures_;
  Gauge& backupLastVerified_;
  Counter& backupVerifyFailures_;
  Gauge& processResident_;
  Gauge& processVirtual_;
  Counter& processCpu_;
  Gauge& processOpenFds_;
  Gauge& processMaxFds_;
  Gauge& processStart_;
};

}  // namespace foundationd::api
