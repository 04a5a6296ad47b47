// The forge's data section, "forge/data" (docs/dr.md "The forge's data"):
// the writable volumes of the [forgejo] container (repositories,
// attachments, its app.ini; with SQLite its database too) as one tar,
// read while the forge is paused, after its PostgreSQL database was dumped.
//
// Backup:
// - A helper container runs the forge's own image (tar, git, sh) with the
//   forge's volumes mounted read-only (VolumesFrom), no network, as root;
//   it is created before the freeze and always removed after.
// - The freeze is `docker pause` of the forge container (the cgroup
//   freezer), lifted by whileFrozen (freeze.hpp) whatever happens; a forge
//   found paused at the start (a backup killed mid-freeze) is unpaused first.
// - While frozen: the repositories (every *.git directory with a HEAD) and
//   their HEAD commits are listed, then `tar -c` of the volumes streams
//   into `restic backup --stdin`. The freeze's duration goes in the
//   manifest (freeze_ms).
//
// Restore (whole, or one repository with forgeRepoSelector):
// - Refused without `force` when the forge's volumes already hold the
//   repositories (whole: any repository) it would write over.
// - The forge container is stopped, the tar (or the one repository's
//   directory from it) extracted into its volumes by the helper (read-write
//   this time), the forge started again, and the restored repositories'
//   HEADs compared with the manifest. Nothing is deleted: files that are
//   not in the backup stay; no volume is ever removed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/backup/backup.hpp"

namespace foundationd::backup {

inline constexpr const char* kForgeSection = "forge/data";
inline constexpr const char* kForgeKind = "forge-data";

// "forge/repo/OWNER/NAME" -> "OWNER/NAME"; nullopt for any other selector.
std::optional<std::string> forgeRepoSelector(std::string_view selector);

// The listing script's output ("PATH COMMIT" lines, COMMIT empty for an
// empty repository) into repoHeads/repoPaths of `s` ("owner/name" from the
// last two components of PATH, ".git" dropped; the tar path without its
// leading '/'). protocol for a line it cannot read.
Status parseRepoListing(std::string_view out, Section& s);

Task<Result<Section>> backupForgeData(BackupContext& ctx, Restic& repo,
                                      const std::vector<std::string>& tags,
                                      const std::string& host, const Report& report);

// Shared with verify.cpp: `cmd` as root in `container` (its stdout, or peer
// with its message); the bare repositories under `mounts` in `container`
// with their HEAD commits, into into.repoHeads/repoPaths.
Task<Result<std::string>> forgeExec(BackupContext& ctx, const std::string& container,
                                    std::vector<std::string> cmd);
Task<Status> listForgeRepos(BackupContext& ctx, const std::string& container,
                            const std::vector<std::string>& mounts, Section& into);
// "" when each of `names` has the same HEAD in `observed` as in `manifest`;
// else what differs ("o/r HEAD (missing), abc... in the manifest").
std::string headDiff(const std::map<std::string, std::string>& manifest,
                     const std::map<std::string, std::string>& observed,
                     const std::vector<std::string>& names);

// Before anything is written. `onlyRepo` "" = the whole section.
Task<Status> precheckForgeData(BackupContext& ctx, const Section& s, const std::string& onlyRepo,
                               bool force);
Task<Status> restoreForgeData(BackupContext& ctx, Restic& repo, const Section& s,
                              const std::string& onlyRepo, const Report& report);

}  // namespace foundationd::backup
