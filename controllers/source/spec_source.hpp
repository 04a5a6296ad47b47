// Where the spec comes from: [source] kind = "file" (a local checkout, day
// zero and disaster recovery) or kind = "git" (a branch of a repository,
// fetched into a cache under state_dir). This file holds the pure parts the
// daemon's source loop (daemon/daemon_source.cpp) uses.
//
// A git revision is a commit: the spec, its VERSIONS and every other file it
// references are read *at that commit*, never from a working tree that a
// concurrent fetch could move.
#pragma once

#include <filesystem>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "config/daemon_config.hpp"
#include "config/spec_loader.hpp"
#include "controllers/source/git_repo.hpp"

namespace foundationd::source {

// "file:/srv/foundation/foundation.toml" or
// "git:https://forge.example/org/foundation.git#main:foundation.toml".
std::string describeSource(const config::DaemonConfig::Source& source);

// The cache repository of a git source: <state_dir>/source/git-<hash of url>.
std::filesystem::path cacheDirFor(const std::string& stateDir, const std::string& url);

// GitOptions for a git source.
GitOptions gitOptionsFor(const config::DaemonConfig& cfg);

// Loads the spec at `commit`: `specPath` (relative to the repository root)
// and the files it references (relative to the spec's directory), all read
// at that commit. Diagnostics name the files by their repository paths. An
// error Result only for a git failure; a missing spec file is a diagnostic.
Result<config::LoadResult> loadAtCommit(GitRepo& repo, std::string_view commit,
                                        const std::string& specPath);

// A commit verified (when signatures are required), then read at that same
// id (docs/source.md: no window between the check and the read). Nothing of
// an untrusted commit is read: `read` stays false.
struct VerifiedLoad {
  bool read = false;                                    // `loaded` holds the spec at the commit
  std::optional<GitRepo::Signature> signature;          // when signatures are required
  Result<config::LoadResult> loaded = Error::make(ErrorCode::internal, "not loaded");
};
VerifiedLoad verifyThenLoad(GitRepo& repo, const std::string& commit, const std::string& specPath,
                            const std::string& allowedSigners, bool requireSigned);

// A settle watch as persisted in the state (docs/source.md "Rollback"), so a
// restart during the settle period continues watching: the revision under
// watch, the one a rollback re-applies, the settle period, the deadline once
// the revision converged (Unix ms), and what the watch compares against.
struct SettleRecord {
  std::string revision;
  std::string previous;
  std::int64_t periodMs = 0;
  std::optional<std::int64_t> deadlineUnixMs;
  std::set<std::string> containers;
  std::set<std::string> failedBefore;
  std::string toJson() const;
  // nullopt for anything that is not a record toJson() wrote.
  static std::optional<SettleRecord> fromJson(std::string_view text);
};

// The first 12 characters of a commit, for logs and messages.
std::string shortRevision(std::string_view revision);

}  // namespace foundationd::source
