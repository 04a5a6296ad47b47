// Retention of the local repository (docs/dr.md "Retention"): restic's own
// keep-daily/weekly/monthly policy, applied to whole backups.
//
// - The policy is asked of restic on the manifests alone (`forget --dry-run
//   --json --tag fd-section=manifest --keep-... --group-by host`): one
//   manifest per complete backup, so restic chooses among complete backups.
// - A backup restic drops is then forgotten WHOLE: every snapshot tagged
//   fd-backup=ID (all its sections), then `restic prune`.
// - An incomplete backup (no manifest) older than the newest complete one
//   failed or was interrupted: forgotten too. Newer ones may still be being
//   written: kept.
// - The plan never forgets every complete backup (refused as internal if
//   restic's answer would); with no complete backup nothing is forgotten.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/spec.hpp"
#include "controllers/backup/backup.hpp"

namespace foundationd::backup {

// The fd-backup ids restic's dry run removes (its JSON output).
Result<std::set<std::string>> parseForgetDryRun(std::string_view out);

struct RetentionPlan {
  std::vector<std::string> drop;       // backup ids, oldest first
  std::vector<std::string> snapshots;  // every snapshot of them, to forget
  std::size_t keptComplete = 0;
};
// Pure: the plan from the repository's backups (listBackups, with their
// snapshot ids) and the ids restic's policy removes.
Result<RetentionPlan> planRetention(const std::vector<BackupEntry>& backups,
                                    const std::set<std::string>& policyRemoves);

// Asks restic, forgets, prunes. Reports each dropped backup.
Task<Result<RetentionPlan>> applyRetention(Restic& repo, const config::BackupRetention& keep,
                                           const Report& report);

}  // namespace foundationd::backup
