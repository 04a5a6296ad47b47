// The git source's state, private to the daemon's source files
// (daemon_source.cpp: fetching, webhooks, status; daemon_settle.cpp: the
// settle watch and the rollback). Everything here lives on the io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/steady_timer.hpp>

#include "controllers/source/git_repo.hpp"
#include "controllers/source/spec_source.hpp"
#include "daemon/daemon.hpp"

namespace foundationd::daemon {

struct Daemon::SourceState {
  std::unique_ptr<source::GitRepo> repo;
  source::GitOptions repoOptions;  // what `repo` was made for (a reload may change it)
  std::string specPath;            // what `latest` was loaded from

  std::string latest;       // the newest revision fetched ("" before the first)
  std::string latestError;  // its diagnostics when it was rejected
  std::string applied;      // the last revision a reconcile converged with
  std::optional<api::TimePoint> lastFetch;
  std::string fetchError;      // of the last fetch ("" when it worked)
  int failures = 0;            // fetches failed in a row
  bool blockedByLock = false;  // the last attempt needed the sealed token

  bool requested = false;  // a delivery (or a reload) asks for a fetch now
  std::string wanted;      // the newest pushed commit a delivery announced
  std::chrono::steady_clock::time_point nextDue{};
  std::unique_ptr<boost::asio::steady_timer> timer;

  // Trust (docs/source.md "Signed commits"): who signed the revision in
  // force, and the refused revisions' counter.
  std::string signedBy;
  std::string trustedWith;           // the allowed signers file `latest` was verified with
  api::Counter* rejected = nullptr;  // foundationd_spec_rejected_total{reason}
  // Rolled-back revisions are not applied again (until a newer commit).
  std::set<std::string> rolledBack;

  // Automatic rollback (docs/source.md "Rollback"): a new revision is watched
  // for [source] settle after it is applied; `lastGood` is the newest one
  // that passed (or was applied while settle was off).
  struct Settle {
    std::string revision;                           // the revision being watched
    std::string previous;                           // what a rollback re-applies ("" = nothing)
    std::set<std::string> containers;               // the containers it changed or added
    std::set<std::string> failedBefore;             // resources already failed when it came
    bool applied = false;                           // a reconcile with it converged
    std::chrono::milliseconds period{0};            // the settle period (spec's, else the config's)
    std::chrono::steady_clock::time_point until{};  // the end of the watch, once applied
    std::optional<std::int64_t> deadlineUnixMs;     // the same, persisted (Unix ms)
    std::string problem;                            // what failed ("" while healthy)
  };
  std::optional<Settle> settle;
  std::string lastGood;
  std::string rolledBackInfo;         // the last rollback, for status
  std::string rollingBack;  // the revision a rollback replaces, while it reads the good one
  api::Counter* rollbacks = nullptr;  // foundationd_spec_rollbacks_total

  std::deque<std::string> deliveryOrder;  // the last kDeliveries ids, oldest first
  std::set<std::string> deliveries;
  std::chrono::steady_clock::time_point lastRejectAudit{};
  int rejectsSuppressed = 0;
};

namespace source_detail {

struct FetchOutcome : source::VerifiedLoad {
  Result<std::string> head = Error::make(ErrorCode::internal, "not run");
  bool loadedNew = false;  // `head` is a new revision
  bool skipped = false;    // `head` was rolled back before: not read again
};

// Verifies `commit`, then reads the spec at that same commit id
// (source::verifyThenLoad).
inline void verifyThenLoad(source::GitRepo& repo, FetchOutcome& out, const std::string& commit,
                           const std::string& specPath, const std::string& allowedSigners,
                           bool requireSigned) {
  static_cast<source::VerifiedLoad&>(out) =
      source::verifyThenLoad(repo, commit, specPath, allowedSigners, requireSigned);
}

// What marks a revision rolled back in the revision history (its errors).
inline constexpr std::string_view kRolledBackPrefix = "rolled back: ";

}  // namespace source_detail

}  // namespace foundationd::daemon
