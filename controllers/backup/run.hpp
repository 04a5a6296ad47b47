// One backup run as the CLI (`foundationd backup`) and the daemon's schedule
// both take it (docs/dr.md "Schedule and reports"): the backup into the
// local repository, then its copy to [backup.offsite], confirmed there. A
// run is COMPLETE only when the local backup has its manifest and, when an
// offsite target is declared, the copy is confirmed.
//
// Its record (RunRecord) is kept in the sealed state's small-records table so
// the daemon reports the last attempt and the last complete backup, whoever
// took them, across restarts; assess() turns the two into the condition that
// `status`, GET /v1/status and /metrics show (failed, stale, ok, never).
//
// Thread: runBackup on the io_context (as takeBackup); the rest is pure.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "controllers/backup/backup.hpp"
#include "state/store.hpp"

namespace foundationd::backup {

struct SectionFigure {
  std::string name;  // "postgres/main/db/appdb", "state", ...
  std::uint64_t bytes = 0;
  double seconds = 0;
};

struct RunRecord {
  enum class Offsite { none, confirmed, failed };  // none: no [backup.offsite]
  std::string id;  // the backup's id ("" when it failed before it had one)
  std::int64_t startedUnixMs = 0;
  std::int64_t finishedUnixMs = 0;
  bool ok = false;    // the local backup has its manifest
  std::string error;  // why not; never a secret
  Offsite offsite = Offsite::none;
  std::string offsiteError;
  std::uint64_t bytes = 0;
  std::vector<SectionFigure> sections;
  std::string by;      // "daemon" or "cli"
  std::string reason;  // BackupContext::reason ("" = on request or schedule)
  std::string retentionError;  // the retention after it failed (every backup was kept)

  bool complete() const { return ok && offsite != Offsite::failed; }
};

const char* toString(RunRecord::Offsite offsite) noexcept;
std::string toJson(const RunRecord& r);
Result<RunRecord> parseRunRecord(std::string_view text);

// The two records in the state (kind "backup-run": "last-attempt",
// "last-complete").
struct RunHistory {
  std::optional<RunRecord> lastAttempt;
  std::optional<RunRecord> lastComplete;
};
Result<RunHistory> readHistory(state::Store& store);
// Writes `r` as the last attempt, and as the last complete one when it is.
Status recordRun(state::Store& store, const RunRecord& r);

enum class Condition {
  never,           // no backup attempted yet
  ok,              // the last attempt is complete and not stale
  failed,          // the last attempt failed (no manifest)
  offsite_failed,  // the last attempt is only local: the offsite copy failed
  stale,           // the last complete backup is older than twice the schedule
};
const char* toString(Condition c) noexcept;

struct Assessment {
  Condition condition = Condition::never;
  std::string message;  // for status: what is wrong and what to do
  // When the next backup is due (the daemon's schedule): now when never
  // attempted; after a failed attempt, `retry` after it (at most the
  // schedule); else `schedule` after the last complete one.
  std::int64_t nextDueUnixMs = 0;
};

// How long after a failed attempt the daemon tries again.
inline constexpr std::chrono::minutes kRetryAfterFailure{10};

Assessment assess(const RunHistory& history, std::chrono::milliseconds schedule,
                  std::int64_t nowUnixMs,
                  std::chrono::milliseconds retry = kRetryAfterFailure);

// Where the run's copies go, resolved by the caller (they need the unlocked
// key): the local repository and, when declared, the offsite one.
struct RunTargets {
  Repository local;
  std::optional<Repository> offsite;
  // Applied to the local repository after a complete backup (retention.hpp);
  // nullopt: none.
  std::optional<config::BackupRetention> retention;
};

// What a run needs from the unlocked state: the repository password (made
// durable first when there is none) and [backup]'s targets with their keys
// resolved by `secrets`. Errors name the target.
struct RunSetup {
  state::SecretBytes password;
  RunTargets targets;
};
Result<RunSetup> prepareRun(const config::Spec& spec, state::Store& store,
                            const state::UnlockedKey& key, const docker::SecretResolver& secrets);

// BackupContext::unpauseNow for a process with no Engine client of its own
// at hand: a blocking unpause through its own connection to `socket`.
std::function<void(const std::string& container)> blockingUnpauser(std::string socket);

// restic's path: $FOUNDATIOND_RESTIC (tests, a restic outside PATH), else
// "restic" from PATH.
std::string resticBinary();

// The backup into targets.local (initialised when new), its retention, then `restic copy`
// of it to targets.offsite (initialised with the local chunker parameters
// when new) and the copy confirmed by counting its snapshots there. Never
// fails as a whole: what went wrong is in the record. `resticBinary` as for
// Restic.
Task<RunRecord> runBackup(BackupContext& ctx, const RunTargets& targets,
                          std::string_view password, const std::string& resticBinary,
                          const Report& report, std::string by);

}  // namespace foundationd::backup
