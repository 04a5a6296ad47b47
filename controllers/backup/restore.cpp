// restore: verify everything first, then write. Contract in backup.hpp.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <cstdlib>

#include "controllers/backup/backup.hpp"
#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/bucket_section.hpp"
#include "controllers/backup/forge_section.hpp"
#include "controllers/backup/vault_section.hpp"

namespace foundationd::backup {

using namespace internal;
namespace fs = std::filesystem;

namespace internal {
// Reads a section back in full through restic (which authenticates every
// blob) and compares it with the manifest.
Task<Status> verifySection(Restic& repo, const Section& s) {
  Sha256 sha;
  auto st = co_await repo.dump(s.snapshot, s.path, [&](std::string_view piece) -> Task<Status> {
    sha.update(piece);
    co_return Status::success();
  });
  if (!st) co_return st;
  const std::string got = sha.hex();
  if (sha.bytes() != s.bytes || got != s.sha256) {
    co_return Error::make(ErrorCode::protocol,
                          s.name + ": what the repository holds (" + std::to_string(sha.bytes()) +
                              " bytes, sha256 " + got.substr(0, 16) + "...) is not what the "
                              "manifest recorded (" + std::to_string(s.bytes) + " bytes, sha256 " +
                              s.sha256.substr(0, 16) + "...)");
  }
  co_return Status::success();
}

Task<Result<DbTarget>> inspectDatabase(BackupContext& ctx, const config::PostgresSpec& pg,
                                       const std::string& db) {
  auto names = co_await databases(ctx, pg);
  if (!names) co_return std::move(names).error();
  DbTarget t;
  t.exists = std::find(names->begin(), names->end(), db) != names->end();
  if (!t.exists) co_return t;
  auto out = co_await psql(ctx, pg, db, std::string("SELECT count(*) ") + kUserRelations + ";\n");
  if (!out) co_return std::move(out).error();
  t.tables = std::atoll(out->c_str());
  co_return t;
}

// `cmd` in the instance's container, its stdin streamed from the section
// in the repository. Returns the exec's result.
Task<Result<docker::ExecResult>> execFromSection(BackupContext& ctx, Restic& repo,
                                                 const Section& s, const std::string& container,
                                                 std::vector<std::string> cmd, std::string user) {
  auto child = co_await repo.startDump(s.snapshot, s.path);
  if (!child) co_return std::move(child).error();
  auto& c = **child;
  docker::ExecOptions eo;
  eo.user = user.empty() ? ctx.execUser : user;
  eo.timeout = ctx.execTimeout;
  eo.maxOutput = 4 << 20;
  eo.stdinSource = [&]() -> Task<Result<std::string>> { co_return co_await c.readSome(); };
  auto r = co_await ctx.docker.exec(container, cmd, eo);
  if (!r || r->exitCode != 0) {
    c.kill();  // the reader is gone: restic would block on a full pipe
  } else {
    (void)co_await c.readAllOut(0);  // whatever the process left unread
  }
  auto dumped = co_await repo.finishDump(c, "reading " + s.name);
  if (!r) co_return std::move(r).error();
  if (r->exitCode != 0) co_return r;  // the caller reports the process's own failure
  if (!dumped) co_return dumped.error();
  co_return r;
}


Task<Result<int>> restoreGlobals(BackupContext& ctx, Restic& repo, const config::PostgresSpec& pg,
                                 const Section& s) {
  // Roles that exist already are reported by psql and skipped; the next
  // converge sets the spec's passwords again.
  std::vector<std::string> cmd{"psql", "-X", "-q", "-U", pg.superuser, "-d", "postgres"};
  auto r = co_await execFromSection(ctx, repo, s, pg.container, std::move(cmd));
  if (!r) co_return Error::make(r.error().code, s.name + ": " + r.error().message);
  if (r->exitCode != 0) {
    co_return Error::make(ErrorCode::peer, s.name + ": psql failed (exit " +
                                               std::to_string(r->exitCode) + "): " +
                                               firstLines(r->stderrText));
  }
  int errors = 0;
  for (std::size_t p = r->stderrText.find("ERROR:"); p != std::string::npos;
       p = r->stderrText.find("ERROR:", p + 1)) {
    ++errors;
  }
  co_return errors;
}

Task<Status> restoreDatabase(BackupContext& ctx, Restic& repo, const config::PostgresSpec& pg,
                             const Section& s, const DbTarget& t) {
  std::vector<std::string> cmd{"pg_restore", "-U", pg.superuser, "--exit-on-error"};
  if (t.exists) {
    cmd.insert(cmd.end(), {"-d", s.database, "--single-transaction"});
    if (t.tables > 0) cmd.insert(cmd.end(), {"--clean", "--if-exists"});
  } else {
    cmd.insert(cmd.end(), {"-d", "postgres", "--create"});
  }
  auto r = co_await execFromSection(ctx, repo, s, pg.container, cmd);
  if (!r) co_return Error::make(r.error().code, s.name + ": " + r.error().message);
  if (r->exitCode != 0) {
    co_return Error::make(ErrorCode::peer,
                          s.name + ": pg_restore failed (exit " + std::to_string(r->exitCode) +
                              ")" + (t.exists ? ", rolled back" : "") + ": " +
                              firstLines(r->stderrText));
  }
  co_return Status::success();
}

std::string rowCountDiff(const std::map<std::string, std::int64_t>& manifest,
                         const std::map<std::string, std::int64_t>& observed, bool extraTables) {
  std::string diff;
  for (const auto& [table, n] : manifest) {
    const auto it = observed.find(table);
    const std::int64_t have = it == observed.end() ? -1 : it->second;
    if (have != n) {
      diff += (diff.empty() ? "" : ", ") + table + " " +
              (have < 0 ? std::string("missing") : std::to_string(have) + " rows") + ", " +
              std::to_string(n) + " in the manifest";
    }
  }
  if (extraTables) {
    for (const auto& [table, n] : observed) {
      if (!manifest.count(table)) {
        diff += (diff.empty() ? "" : ", ") + table + " " + std::to_string(n) +
                " rows, not in the manifest";
      }
    }
  }
  return diff;
}

Result<const BackupEntry*> pickBackup(const std::vector<BackupEntry>& list,
                                      const std::string& id, const std::string& where) {
  const BackupEntry* chosen = nullptr;
  for (const auto& e : list) {
    if (id.empty() ? e.complete : e.id == id) chosen = &e;
  }
  if (!chosen) {
    return Error::make(ErrorCode::not_found,
                       id.empty() ? "no complete backup in " + where
                                  : "no backup " + id + " in " + where +
                                        " (`foundationd backup list`)");
  }
  if (!chosen->complete) {
    return Error::make(ErrorCode::conflict, "backup " + chosen->id +
                                                " is incomplete (it has no manifest: it failed "
                                                "or was interrupted)");
  }
  return chosen;
}

}  // namespace internal

namespace {

const char* kNothing = "; nothing was restored";

Error nothingRestored(const Error& e) { return Error::make(e.code, e.message + kNothing); }

class Restorer {
 public:
  Restorer(BackupContext& ctx, Restic& repo, const RestoreRequest& req, const Report& report)
      : ctx_(ctx), repo_(repo), req_(req), report_(report) {}

  Task<Status> run() {
    if (auto st = co_await repo_.check(false); !st) co_return nothingRestored(st.error());
    report_("the backup repository " + repo_.repository().display + " passed restic check");
    auto list = co_await listBackups(repo_);
    if (!list) co_return nothingRestored(list.error());
    auto picked = pickBackup(*list, req_.backupId, repo_.repository().display);
    if (!picked) {
      co_return picked.error().code == ErrorCode::conflict ? nothingRestored(picked.error())
                                                           : picked.error();
    }
    const BackupEntry* chosen = *picked;
    const Manifest& m = *chosen->manifest;
    chosenId_ = chosen->id;
    // Copies of the selected sections, each with its snapshot in THIS
    // repository (an offsite copy has other snapshot ids than the manifest's).
    std::vector<Section> chosenSections;
    std::string names;
    for (const auto& s : m.sections) {
      names += (names.empty() ? "" : ", ") + s.name;
      const auto oneRepo = forgeRepoSelector(req_.section);
      if (oneRepo && s.kind == kForgeKind) forgeRepo_ = *oneRepo;
      if (!sectionSelected(s.name, req_.section) && !(oneRepo && s.kind == kForgeKind)) continue;
      const auto here = chosen->snapshotOf.find(s.name);
      if (here == chosen->snapshotOf.end()) {
        co_return Error::make(ErrorCode::not_found,
                              s.name + ": backup " + m.id + " has it in its manifest but not "
                                       "in " + repo_.repository().display + kNothing);
      }
      chosenSections.push_back(s);
      chosenSections.back().snapshot = here->second;
    }
    std::vector<const Section*> selected;
    for (const auto& s : chosenSections) selected.push_back(&s);
    if (selected.empty()) {
      co_return Error::make(ErrorCode::invalid_argument,
                            "no section \"" + req_.section + "\" in backup " + m.id +
                                " (it has: " + names + ")" + kNothing);
    }
    // 1. Every selected section read back and compared with the manifest.
    for (const Section* s : selected) {
      if (s->kind == kBucketKind) {
        // Read back into a private directory, every object checked; kept
        // there until it is written to the bucket.
        auto stage = co_await stageBucket(ctx_, repo_, *s);
        if (!stage) co_return nothingRestored(stage.error());
        report_(s->name + ": verified (" + std::to_string(s->objects.size()) + " objects, " +
                std::to_string(s->bytes) + " bytes; every object's sha256 matches the backup's "
                "inventory, whose sha256 matches the manifest)");
        stages_[s->name] = std::move(*stage);
        continue;
      }
      if (auto st = co_await verifySection(repo_, *s); !st) co_return nothingRestored(st.error());
      report_(s->name + ": verified (" + std::to_string(s->bytes) + " bytes, sha256 matches the "
              "manifest)");
    }
    // 2. Every target checked, before anything is written.
    for (const Section* s : selected) {
      if (auto st = co_await precheck(*s); !st) co_return nothingRestored(st.error());
    }
    // 3. Vault first, then globals, then databases, then the buckets, then the forge's data,
    //    then the state copy.
    for (const char* kind : {"vault-snapshot", "postgres-globals", "postgres-database",
                             kBucketKind, kForgeKind, "state"}) {
      for (const Section* s : selected) {
        if (s->kind != kind) continue;
        if (auto st = co_await apply(m, *s); !st) co_return st;
      }
    }
    co_return Status::success();
  }

 private:
  Result<const config::PostgresSpec*> instance(const Section& s) {
    const auto it = ctx_.spec.postgres.find(s.instance);
    if (it == ctx_.spec.postgres.end()) {
      return Error::make(ErrorCode::invalid_argument,
                         s.name + ": the spec has no [postgres." + s.instance + "] to restore into");
    }
    return &it->second;
  }

  std::string stateOut() const {
    if (!req_.stateOut.empty()) return req_.stateOut;
    return (fs::path(ctx_.stateDir) / ("state.db.restored-" + chosenId_)).string();
  }

  Task<Status> precheck(const Section& s) {
    if (s.kind == kBucketKind) co_return co_await precheckBucket(ctx_, s, req_.force);
    if (s.kind == kForgeKind) co_return co_await precheckForgeData(ctx_, s, forgeRepo_, req_.force);
    if (s.kind == "vault-snapshot") {
      if (!ctx_.spec.vault) {
        co_return Error::make(ErrorCode::invalid_argument,
                              "vault: the spec has no [vault] to restore into");
      }
      if (!ctx_.key) co_return Error::make(ErrorCode::internal, "vault: no unlocked state");
      co_return Status::success();
    }
    if (s.kind == "state") {
      std::error_code ec;
      if (fs::symlink_status(stateOut(), ec).type() != fs::file_type::not_found) {
        co_return Error::make(ErrorCode::conflict, "state: " + stateOut() + " exists; restore "
                                                   "never overwrites a file (remove it, or "
                                                   "give another --state-out)");
      }
      co_return Status::success();
    }
    auto pg = instance(s);
    if (!pg) co_return pg.error();
    if (s.kind != "postgres-database") co_return Status::success();
    auto t = co_await inspectDatabase(ctx_, **pg, s.database);
    if (!t) co_return Error::make(t.error().code, s.name + ": " + t.error().message);
    if (t->exists && t->tables > 0 && !req_.force) {
      co_return Error::make(ErrorCode::conflict,
                            s.name + ": database " + s.database + " already has " +
                                std::to_string(t->tables) +
                                " tables; restore refuses to write into a database that has "
                                "data (--force restores into it: the backup's objects are "
                                "dropped and re-created, others are kept; the database itself "
                                "is never dropped)");
    }
    targets_[s.name] = *t;
    co_return Status::success();
  }

  Task<Status> apply(const Manifest& m, const Section& s) {
    if (s.kind == "state") co_return co_await applyState(s);
    if (s.kind == kBucketKind) {
      auto st = co_await restoreBucket(ctx_, s, *stages_.at(s.name), report_);
      stages_.erase(s.name);  // its directory goes at once
      co_return st;
    }
    if (s.kind == kForgeKind) co_return co_await restoreForgeData(ctx_, repo_, s, forgeRepo_, report_);
    if (s.kind == "vault-snapshot") co_return co_await applyVault(s);
    auto pgr = instance(s);
    if (!pgr) co_return pgr.error();
    const config::PostgresSpec& pg = **pgr;
    if (s.kind == "postgres-globals") {
      auto errors = co_await restoreGlobals(ctx_, repo_, pg, s);
      if (!errors) co_return errors.error();
      report_(s.name + ": restored" +
              (*errors ? " (" + std::to_string(*errors) +
                             " statements refused, e.g. roles that already exist)"
                       : std::string()));
      co_return Status::success();
    }
    if (auto st = co_await restoreDatabase(ctx_, repo_, pg, s, targets_[s.name]); !st) co_return st;
    auto counts = co_await rowCounts(ctx_, pg, s.database);
    if (!counts) co_return Error::make(counts.error().code, s.name + ": " + counts.error().message);
    const std::string diff = rowCountDiff(s.rowCounts, *counts, false);
    if (!diff.empty()) {
      co_return Error::make(ErrorCode::protocol, s.name + ": restored, but the row counts differ "
                                                 "from the manifest: " + diff);
    }
    (void)m;
    report_(s.name + ": restored into " + pg.container + " (" + std::to_string(s.rowCounts.size()) +
            " tables, row counts equal to the manifest)");
    co_return Status::success();
  }

  // The snapshot read into memory (verified against the manifest), then
  // handed to Vault (vault_section.hpp).
  Task<Status> applyVault(const Section& s) {
    std::string bytes;
    Sha256 sha;
    auto st = co_await repo_.dump(s.snapshot, s.path, [&](std::string_view piece) -> Task<Status> {
      sha.update(piece);
      bytes += piece;
      co_return Status::success();
    });
    if (!st) co_return Error::make(st.error().code, "vault: " + st.error().message + kNothing);
    if (sha.hex() != s.sha256) {
      co_return Error::make(ErrorCode::protocol, "vault: the snapshot read back is not the "
                                                 "manifest's" + std::string(kNothing));
    }
    VaultRestoreOptions o;
    o.force = ctx_.forceVault;
    const auto n = s.counts.find("secrets");
    if (n != s.counts.end()) o.expectedKeys = n->second;
    co_return restoreVaultSnapshot(*ctx_.spec.vault, ctx_.store, *ctx_.key, bytes, o, report_);
  }

  Task<Status> applyState(const Section& s) {
    const std::string out = stateOut();
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      co_return Error::make(ErrorCode::io, "state: cannot create " + out + ": " + std::strerror(errno));
    }
    Sha256 sha;
    auto st = co_await repo_.dump(s.snapshot, s.path, [&](std::string_view piece) -> Task<Status> {
      sha.update(piece);
      while (!piece.empty()) {
        const ssize_t n = ::write(fd, piece.data(), piece.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) co_return Error::make(ErrorCode::io, "writing " + out + ": " + std::strerror(errno));
        piece.remove_prefix(static_cast<std::size_t>(n));
      }
      co_return Status::success();
    });
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!st || !synced || sha.hex() != s.sha256) {
      ::unlink(out.c_str());
      co_return Error::make(ErrorCode::io, "state: writing " + out + " failed" +
                                               (st ? std::string() : ": " + st.error().message));
    }
    report_("state: written to " + out + " (sha256 matches the manifest); it is not put in "
            "place: see dr/RUNBOOK.md");
    co_return Status::success();
  }

 private:
  std::string chosenId_;
  std::string forgeRepo_;  // "forge/repo/OWNER/NAME" selected one repository
  BackupContext& ctx_;
  Restic& repo_;
  const RestoreRequest& req_;
  const Report& report_;
  std::map<std::string, DbTarget> targets_;
  std::map<std::string, std::unique_ptr<BucketStage>> stages_;  // bucket sections, verified
};

}  // namespace

Task<Status> restore(BackupContext& ctx, Restic& repo, const RestoreRequest& request,
                     const Report& report) {
  Restorer r(ctx, repo, request, report);
  co_return co_await r.run();
}

}  // namespace foundationd::backup
