// Retention. Contract in retention.hpp.
#include "controllers/backup/retention.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace foundationd::backup {

using json = nlohmann::json;

Result<std::set<std::string>> parseForgetDryRun(std::string_view out) {
  const json doc = json::parse(out, nullptr, false);
  if (doc.is_null()) return std::set<std::string>{};
  if (doc.is_discarded() || !doc.is_array()) {
    return Error::make(ErrorCode::protocol, "restic forget --json: not a JSON array");
  }
  std::set<std::string> ids;
  const std::string prefix = std::string(kBackupTagKey) + "=";
  for (const auto& group : doc) {
    const auto removed = group.find("remove");
    if (removed == group.end() || removed->is_null()) continue;
    if (!removed->is_array()) {
      return Error::make(ErrorCode::protocol, "restic forget --json: \"remove\" is not an array");
    }
    for (const auto& snap : *removed) {
      const auto tags = snap.find("tags");
      if (tags == snap.end() || !tags->is_array()) continue;
      for (const auto& t : *tags) {
        if (t.is_string() && t.get<std::string>().rfind(prefix, 0) == 0) {
          ids.insert(t.get<std::string>().substr(prefix.size()));
        }
      }
    }
  }
  return ids;
}

Result<RetentionPlan> planRetention(const std::vector<BackupEntry>& backups,
                                    const std::set<std::string>& policyRemoves) {
  RetentionPlan plan;
  std::string newestComplete;
  std::size_t complete = 0;
  for (const auto& b : backups) {
    if (!b.complete) continue;
    ++complete;
    if (b.id > newestComplete) newestComplete = b.id;
  }
  if (complete == 0) return plan;  // nothing is known good: forget nothing
  for (const auto& b : backups) {
    const bool drop = b.complete ? policyRemoves.count(b.id) > 0 : b.id < newestComplete;
    if (!drop) {
      if (b.complete) ++plan.keptComplete;
      continue;
    }
    plan.drop.push_back(b.id);
    for (const auto& [section, snap] : b.snapshotOf) plan.snapshots.push_back(snap);
  }
  if (plan.keptComplete == 0) {
    return Error::make(ErrorCode::internal, "the retention would forget every complete backup; "
                                            "nothing was forgotten");
  }
  std::sort(plan.drop.begin(), plan.drop.end());
  return plan;
}

Task<Result<RetentionPlan>> applyRetention(Restic& repo, const config::BackupRetention& keep,
                                           const Report& report) {
  auto backups = co_await listBackups(repo);
  if (!backups) co_return std::move(backups).error();
  std::vector<std::string> args{"forget", "--dry-run", "--json", "--group-by", "host", "--tag",
                                std::string(kTag) + "," + kSectionTagKey + "=" + kManifestSection};
  const auto keepArg = [&](const char* flag, int n) {
    if (n > 0) {
      args.push_back(flag);
      args.push_back(std::to_string(n));
    }
  };
  keepArg("--keep-daily", keep.keepDaily);
  keepArg("--keep-weekly", keep.keepWeekly);
  keepArg("--keep-monthly", keep.keepMonthly);
  auto out = co_await repo.raw(std::move(args), "asking restic's retention policy");
  if (!out) co_return std::move(out).error();
  auto removes = parseForgetDryRun(*out);
  if (!removes) co_return std::move(removes).error();
  auto plan = planRetention(*backups, *removes);
  if (!plan) co_return std::move(plan).error();
  if (plan->snapshots.empty()) {
    report("retention: nothing to forget (" + std::to_string(plan->keptComplete) +
           " complete backups kept)");
    co_return plan;
  }
  std::vector<std::string> forget{"forget"};
  forget.insert(forget.end(), plan->snapshots.begin(), plan->snapshots.end());
  if (auto r = co_await repo.raw(std::move(forget), "forgetting old backups"); !r) {
    co_return std::move(r).error();
  }
  for (const auto& id : plan->drop) report("retention: forgot backup " + id);
  std::vector<std::string> prune{"prune"};
  if (auto r = co_await repo.raw(std::move(prune), "pruning the repository"); !r) {
    co_return std::move(r).error();
  }
  report("retention: pruned; " + std::to_string(plan->keptComplete) + " complete backups kept");
  co_return plan;
}

}  // namespace foundationd::backup
