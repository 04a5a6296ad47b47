#include "api/metrics.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <vector>

#include <time.h>
#include <unistd.h>

#include "build_info.hpp"

namespace foundationd::api {
namespace {

// Reconciles include image pulls and health waits: seconds to many minutes.
std::vector<double> reconcileBuckets() {
  return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
}

// Engine requests: milliseconds for inspections, minutes for pulls.
// A no-op step is a few requests to a local peer: from 1 ms up.
std::vector<double> stepBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

std::vector<double> dockerBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

struct ProcStat {
  double cpuSeconds = 0;
  double startTicks = 0;
  double virtualBytes = 0;
  double residentPages = 0;
};

// /proc/self/stat: the command name is in parentheses and may contain spaces,
// so fields are counted after the last ')'.
bool readProcStat(ProcStat& out) {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string s; fields >> s;) f.push_back(s);
  // f[0] is field 3 (state); field N is f[N - 3].
  if (f.size() < 22) return false;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  try {
    out.cpuSeconds = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks;
    out.startTicks = std::stod(f[22 - 3]);
    out.virtualBytes = std::stod(f[23 - 3]);
    out.residentPages = std::stod(f[24 - 3]);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// Seconds since the epoch at boot: realtime minus time since boot. (Not
// /proc/stat's btime: the unit's ProcSubset=pid hides it.)
bool readBootTime(double& out) {
  timespec real{};
  timespec boot{};
  if (clock_gettime(CLOCK_REALTIME, &real) != 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0) {
    return false;
  }
  out = static_cast<double>(real.tv_sec - boot.tv_sec) +
        static_cast<double>(real.tv_nsec - boot.tv_nsec) / 1e9;
  return true;
}

bool countOpenFds(double& out) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (ec) return false;
  double n = 0;
  for (const auto& entry : it) {
    (void)entry;
    ++n;
  }
  out = n - 1;  // the iterator's own descriptor
  return true;
}

bool readMaxFds(double& out) {
  std::ifstream in("/proc/self/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    std::string soft;
    if (!(fields >> soft) || soft == "unlimited") return false;
    try {
      out = std::stod(soft);
    } catch (const std::exception&) {
      return false;
    }
    return true;
  }
  return false;
}

}  // namespace

Metrics::Metrics()
    : buildInfo_(registry_.gauge("foundationd_build_info",
                                 "Always 1; the labels say which foundationd this is.",
                                 {"version", "revision"})),
      locked_(registry_.gauge("foundationd_locked",
                              "1 while the state is locked (waiting for the passphrase), else 0.")),
      vaultInitialized_(registry_.gauge("foundationd_vault_initialized",
                                        "1 when Vault has been initialised, else 0 (only when the spec declares [vault]).")),
      vaultSealed_(registry_.gauge("foundationd_vault_sealed",
                                   "1 while Vault is sealed, else 0 (only when the spec declares [vault]).")),
      reconcileTotal_(registry_.counter("foundationd_reconcile_total",
                                        "Finished reconciles by result.", {"result"})),
      reconcileDuration_(registry_.histogram("foundationd_reconcile_duration_seconds",
                                             "Duration of finished reconciles.", {},
                                             reconcileBuckets())),
      resources_(registry_.gauge("foundationd_resources",
                                 "Resources of the spec by kind and reconcile status.",
                                 {"kind", "status"})),
      driftRepairs_(registry_.counter("foundationd_drift_repairs_total",
                                      "Resources found drifted and repaired, by kind.", {"kind"})),
      specInfo_(registry_.gauge("foundationd_spec_info",
                                "Always 1; the label is the newest spec revision seen.",
                                {"revision"})),
      specLastFetch_(registry_.gauge("foundationd_spec_last_fetch_timestamp_seconds",
                                     "Unix time of the last successful spec fetch.")),
      specFetches_(registry_.counter("foundationd_spec_fetches_total",
                                     "Fetches of a git spec source, by result.", {"result"})),
      webhookDeliveries_(registry_.counter("foundationd_webhook_deliveries_total",
                                           "Webhook deliveries received, by result.", {"result"})),
      unsealAttempts_(registry_.counter("foundationd_unseal_attempts_total",
                                        "Unseal attempts by result.", {"result"})),
      dockerRequests_(registry_.counter("foundationd_docker_requests_total",
                                        "Docker Engine API requests by endpoint and HTTP code.",
                                        {"endpoint", "code"})),
      dockerRequestDuration_(registry_.histogram("foundationd_docker_request_duration_seconds",
                                                 "Duration of Docker Engine API requests.",
                                                 {"endpoint"}, dockerBuckets())),
      vaultRequests_(registry_.counter("foundationd_vault_requests_total",
                                       "Vault API requests by HTTP code.", {"code"})),
      reconcileStepDuration_(registry_.histogram("foundationd_reconcile_step_duration_seconds",
                                                 "Duration of each step of a reconcile.",
                                                 {"step"}, stepBuckets())),
      changes_(registry_.counter("foundationd_changes_total",
                                 "Resources created or updated by a reconcile, by kind.",
                                 {"kind"})),
      backupLastSuccess_(registry_.gauge(
          "foundationd_backup_last_success_timestamp_seconds",
          "Unix time the last complete backup finished (its offsite copy confirmed when one is declared).")),
      backupLastAttempt_(registry_.gauge("foundationd_backup_last_attempt_timestamp_seconds",
                                         "Unix time the last backup attempt finished, complete or not.")),
      backupCondition_(registry_.gauge(
          "foundationd_backup_condition",
          "1 for the backup condition in force (never, ok, failed, offsite_failed, stale), 0 for the others.",
          {"condition"})),
      backupSectionDuration_(registry_.gauge("foundationd_backup_section_duration_seconds",
                                             "How long each section of the last complete backup took.",
                                             {"section"})),
      backupSectionSize_(registry_.gauge("foundationd_backup_section_size_bytes",
                                         "The size of each section of the last complete backup.",
                                         {"section"})),
      backupFailures_(registry_.counter("foundationd_backup_failures_total",
                                        "Backups the daemon took that failed, by reason (backup: no manifest; offsite: the copy failed).",
                                        {"reason"})),
      backupLastVerified_(registry_.gauge(
          "foundationd_backup_last_verified_timestamp_seconds",
          "Unix time the last successful backup verify finished (a backup restored into scratch containers and equal to its manifest).")),
      backupVerifyFailures_(registry_.counter(
          "foundationd_backup_verify_failures_total",
          "Backup verifies that failed, by reason (setup, integrity, restore, mismatch, cleanup).",
          {"reason"})),
      processResident_(
          registry_.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")),
      processVirtual_(
          registry_.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")),
      processCpu_(registry_.counter("process_cpu_seconds_total",
                                    "Total user and system CPU time spent in seconds.")),
      processOpenFds_(registry_.gauge("process_open_fds", "Number of open file descriptors.")),
      processMaxFds_(
          registry_.gauge("process_max_fds", "Maximum number of open file descriptors.")),
      processStart_(registry_.gauge("process_start_time_seconds",
                                    "Start time of the process since the Unix epoch in seconds.")) {
  buildInfo_.set({FOUNDATIOND_VERSION, FOUNDATIOND_REVISION}, 1);
  vaultSealed_.unset();  // until a status says the spec declares [vault]
  vaultInitialized_.unset();
  specLastFetch_.unset();  // until a git source has fetched
  backupLastSuccess_.unset();  // until a spec with [backup] has a complete backup
  backupLastAttempt_.unset();
  locked_.set(1);
  for (const char* r : {"converged", "blocked", "failed"}) reconcileTotal_.inc({r}, 0);
  for (UnsealOutcome o :
       {UnsealOutcome::unlocked, UnsealOutcome::wrong_passphrase, UnsealOutcome::rate_limited,
        UnsealOutcome::not_initialized, UnsealOutcome::failed}) {
    unsealAttempts_.inc({outcomeName(o)}, 0);
  }
  updateProcess();
}

void Metrics::recordReconcile(std::string_view result, std::chrono::duration<double> took) {
  reconcileTotal_.inc({std::string(result)});
  reconcileDuration_.observe(took.count());
}

void Metrics::recordStep(std::string_view step, std::chrono::duration<double> took) {
  reconcileStepDuration_.observe({std::string(step)}, took.count());
}

void Metrics::recordUnseal(UnsealOutcome outcome) {
  unsealAttempts_.inc({outcomeName(outcome)});
}

void Metrics::observeDockerRequest(std::string_view endpoint, int status,
                                   std::chrono::nanoseconds took) {
  const std::string code = status > 0 ? std::to_string(status) : std::string("error");
  dockerRequests_.inc({std::string(endpoint), code});
  dockerRequestDuration_.observe({std::string(endpoint)},
                                 std::chrono::duration<double>(took).count());
}

void Metrics::updateFromStatus(const StatusSnapshot& status) {
  locked_.set(status.locked ? 1 : 0);
  if (status.vault.present) {
    vaultInitialized_.set(status.vault.initialized ? 1 : 0);
    vaultSealed_.set(status.vault.sealed ? 1 : 0);
  } else {
    vaultInitialized_.unset();
    vaultSealed_.unset();
  }

  std::map<LabelValues, double> counts;
  std::set<std::string> kinds;
  for (const ResourceState& r : status.resources) kinds.insert(r.kind);
  for (const std::string& kind : kinds) {
    for (ResourceStatus s : kAllResourceStatuses) counts[{kind, statusName(s)}] = 0;
  }
  for (const ResourceState& r : status.resources) ++counts[{r.kind, statusName(r.status)}];
  resources_.replaceAll(std::move(counts));

  std::map<LabelValues, double> spec;
  if (!status.spec.revision.empty()) spec[{status.spec.revision}] = 1;
  specInfo_.replaceAll(std::move(spec));
  updateBackup(status.backup);
}

namespace {
double unixSeconds(const std::optional<TimePoint>& t) {
  return std::chrono::duration<double>(t->time_since_epoch()).count();
}
}  // namespace

void Metrics::updateBackup(const BackupState& b) {
  std::map<LabelValues, double> condition;
  std::map<LabelValues, double> seconds;
  std::map<LabelValues, double> bytes;
  if (b.declared) {
    for (const char* c : {"never", "ok", "failed", "offsite_failed", "stale"}) {
      condition[{c}] = b.condition == c ? 1 : 0;
    }
    if (b.lastComplete) {
      for (const auto& s : b.lastComplete->sections) {
        seconds[{s.name}] = s.seconds;
        bytes[{s.name}] = static_cast<double>(s.bytes);
      }
    }
    if (b.lastAttempt && b.lastAttempt->finished) {
      backupLastAttempt_.set(unixSeconds(b.lastAttempt->finished));
    } else {
      backupLastAttempt_.unset();
    }
    if (b.lastComplete && b.lastComplete->finished) {
      backupLastSuccess_.set(unixSeconds(b.lastComplete->finished));
    } else {
      backupLastSuccess_.unset();
    }
    for (const char* r : {"backup", "offsite"}) backupFailures_.inc({r}, 0);
    for (const char* r : {"setup", "integrity", "restore", "mismatch", "cleanup"}) {
      backupVerifyFailures_.inc({r}, 0);
    }
    if (b.lastVerifiedOk) {
      backupLastVerified_.set(unixSeconds(b.lastVerifiedOk));
    } else {
      backupLastVerified_.unset();
    }
  } else {
    backupLastAttempt_.unset();
    backupLastSuccess_.unset();
    backupLastVerified_.unset();
  }
  backupCondition_.replaceAll(std::move(condition));
  backupSectionDuration_.replaceAll(std::move(seconds));
  backupSectionSize_.replaceAll(std::move(bytes));
}

void Metrics::updateProcess() {
  ProcStat stat;
  if (readProcStat(stat)) {
    processCpu_.set({}, stat.cpuSeconds);
    processVirtual_.set(stat.virtualBytes);
    processResident_.set(stat.residentPages * static_cast<double>(sysconf(_SC_PAGESIZE)));
    double boot = 0;
    // Once: recomputing would jitter by clock ticks, and a changing start
    // time reads as a restart.
    if (processStart_.value() == 0 && readBootTime(boot)) {
      processStart_.set(boot + stat.startTicks / static_cast<double>(sysconf(_SC_CLK_TCK)));
    }
  }
  double fds = 0;
  if (countOpenFds(fds)) processOpenFds_.set(fds);
  double maxFds = 0;
  if (readMaxFds(maxFds)) processMaxFds_.set(maxFds);
}

std::string Metrics::render() {
  updateProcess();
  return registry_.render();
}

}  // namespace foundationd::api
