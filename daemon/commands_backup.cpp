// backup, backup list, restore (docs/dr.md): the backup controller run once
// from the CLI, with the passphrase (the repository password is in the
// sealed state).
#include <cstdio>
#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "build_info.hpp"
#include "controllers/backup/backup.hpp"
#include "controllers/backup/retention.hpp"
#include "controllers/backup/run.hpp"
#include "controllers/backup/verify.hpp"
#include "controllers/docker/docker_client.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "daemon/converge.hpp"
#include "state/sealing.hpp"

namespace foundationd::daemon {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "foundationd: %s\n", message.c_str());
  return 1;
}

using backup::resticBinary;

// What every backup command needs: the spec with its [backup], the state
// unlocked, the repository password and the local target's repository.
struct Session {
  config::DaemonConfig cfg;
  config::Spec spec;
  Unlocked unlocked;
  state::SecretBytes password;
  backup::Repository repo;
  std::string stateDir;
};

std::optional<Session> open(const CliArgs& args, bool createPassword) {
  auto cfg = loadConfig(args);
  if (!cfg) return std::nullopt;
  const std::string specPath = specPathOf(args, *cfg);
  auto spec = loadSpec(specPath);
  if (!spec) return std::nullopt;
  if (!spec->backup) {
    fail(specPath + " has no [backup]: add [backup.local] with a \"path\" or a \"bucket\" "
         "(docs/spec.md \"[backup]\")");
    return std::nullopt;
  }
  state::protectProcess();
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) {
    fail(unlocked.error().message + "; nothing was changed");
    return std::nullopt;
  }
  auto password = backup::resticPassword(*unlocked->store, unlocked->key, createPassword);
  if (!password) {
    fail(password.error().message);
    return std::nullopt;
  }
  if (args.offsite && !spec->backup->offsite) {
    fail(specPath + " has no [backup.offsite] (--offsite)");
    return std::nullopt;
  }
  StoreSecrets secrets(*spec, unlocked->store.get(), &unlocked->key);
  const auto& target = args.offsite ? *spec->backup->offsite : spec->backup->local;
  auto repo = backup::repositoryFor(*spec, target, secrets);
  if (!repo) {
    fail(std::string(args.offsite ? "[backup.offsite]" : "[backup.local]") + ": " +
         repo.error().message);
    return std::nullopt;
  }
  std::string stateDir = stateDirOf(args, *cfg);
  return Session{std::move(*cfg), std::move(*spec), std::move(*unlocked), std::move(*password),
                 std::move(*repo), std::move(stateDir)};
}

void printLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string rowsSummary(const backup::Section& s) {
  if (s.kind == "forge-data") {
    std::string out = "  " + std::to_string(s.repoHeads.size()) + " repositories";
    const char* sep = ": ";
    for (const auto& [name, head] : s.repoHeads) {
      out += sep + name + "@" + (head.empty() ? std::string("(empty)") : head.substr(0, 12));
      sep = ", ";
    }
    return out + "; the forge paused " + std::to_string(s.freezeMs) + " ms";
  }
  if (s.kind == "bucket-objects") {
    return "  " + std::to_string(s.objects.size()) + " objects of bucket " + s.bucket +
           " on [s3." + s.s3 + "]";
  }
  if (s.kind != "postgres-database") return "";
  std::string out;
  for (const auto& [table, n] : s.rowCounts) {
    out += (out.empty() ? "" : ", ") + table + "=" + std::to_string(n);
  }
  return out.empty() ? "  (no tables)" : "  rows: " + out;
}

int listBackups(const CliArgs& args) {
  auto s = open(args, false);
  if (!s) return 1;
  boost::asio::io_context io;
  backup::Restic restic(io.get_executor(), s->repo, s->password.view(), resticBinary());
  auto list = runSync(io, backup::listBackups(restic));
  if (!list) return fail(list.error().message);
  // Each backup's last verification, from the state ("never" when none).
  std::map<std::string, std::optional<backup::VerifyRecord>> verified;
  for (const auto& e : *list) {
    auto v = backup::readVerify(*s->unlocked.store, e.id);
    verified[e.id] = v ? std::move(v).value() : std::nullopt;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : *list) {
      nlohmann::json j = {{"id", e.id}, {"time", e.time}, {"complete", e.complete},
                          {"sections", e.sections},
                          {"verified", backup::verifiedColumn(verified[e.id])}};
      if (verified[e.id]) j["verification"] = nlohmann::json::parse(backup::toJson(*verified[e.id]));
      if (e.manifest) j["manifest"] = nlohmann::json::parse(backup::toJson(*e.manifest));
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (list->empty()) {
    std::printf("no backups in %s\n", s->repo.display.c_str());
    return 0;
  }
  std::printf("backups in %s:\n", s->repo.display.c_str());
  for (const auto& e : *list) {
    if (!e.complete) {
      std::printf("%s  INCOMPLETE (no manifest: it failed or was interrupted; never restored "
                  "from)  %zu sections\n",
                  e.id.c_str(), e.sections.size());
      continue;
    }
    const auto& m = *e.manifest;
    std::printf("%s  complete  %s  %zu sections, %llu bytes  spec revision %s  VERIFIED: %s\n",
                e.id.c_str(), m.createdAt.c_str(), m.sections.size(),
                static_cast<unsigned long long>(m.totalBytes()),
                m.specRevision.empty() ? "(none applied)" : m.specRevision.c_str(),
                backup::verifiedColumn(verified[e.id]).c_str());
    if (verified[e.id] && !verified[e.id]->ok) {
      std::printf("  verify failed: %s\n", verified[e.id]->error.c_str());
    }
    for (const auto& sec : m.sections) {
      std::printf("  %-36s %12llu bytes  sha256 %.16s  snapshot %s%s\n", sec.name.c_str(),
                  static_cast<unsigned long long>(sec.bytes), sec.sha256.c_str(),
                  sec.snapshot.c_str(), rowsSummary(sec).c_str());
    }
    for (const auto& n : m.notIncluded) std::printf("  not included: %s\n", n.c_str());
  }
  return 0;
}

// backup verify [ID]: exit 0 when every check passed, 1 otherwise (the
// per-section report on stdout, or the record with --json).
int verifyBackup(const CliArgs& args, const std::string& id) {
  auto s = open(args, false);
  if (!s) return 1;
  boost::asio::io_context io;
  docker::DockerClient client(io.get_executor(), s->cfg.dockerSocket);
  backup::Restic restic(io.get_executor(), s->repo, s->password.view(), resticBinary());
  backup::BackupContext ctx{client, s->spec, *s->unlocked.store, s->stateDir, FOUNDATIOND_VERSION};
  ctx.key = &s->unlocked.key;
  const backup::Report progress = [&args](const std::string& line) {
    std::fprintf(args.json ? stderr : stdout, "%s\n", line.c_str());
    std::fflush(args.json ? stderr : stdout);
  };
  backup::VerifyRequest req;
  req.backupId = id;
  const auto r = runSync(io, backup::verifyBackup(ctx, restic, req, progress, "cli"));
  // An incomplete or unknown backup was not verified: nothing to record.
  if (backup::wasChosen(r)) {
    if (auto st = backup::recordVerify(*s->unlocked.store, r); !st) {
      std::fprintf(stderr, "foundationd: warning: the verification was not recorded in the "
                           "state: %s\n", st.error().message.c_str());
    }
    (void)s->unlocked.store->appendAudit(
        r.ok ? "backup.verified" : "backup.verify_failed",
        nlohmann::json{{"id", r.id}, {"reason", r.reason}}.dump());
  }
  if (args.json) {
    std::printf("%s\n", backup::toJson(r).c_str());
    return r.ok ? 0 : 1;
  }
  std::printf("backup %s:\n", r.id.empty() ? "(none)" : r.id.c_str());
  for (const auto& c : r.checks) {
    std::printf("  %-14s %s%s\n", c.section.c_str(),
                c.ok ? "ok     " : ("FAILED (" + c.reason + ") ").c_str(), c.detail.c_str());
  }
  for (const auto& n : r.notChecked) std::printf("  not checked: %s\n", n.c_str());
  if (!r.ok) return fail("backup verify: " + r.error);
  std::printf("backup %s verified\n", r.id.c_str());
  return 0;
}

}  // namespace

int cmdBackup(const CliArgs& args) {
  if (!args.positional.empty()) {
    if (args.positional.front() == "list" && args.positional.size() == 1) return listBackups(args);
    if (args.positional.front() == "verify" && args.positional.size() <= 2) {
      return verifyBackup(args, args.positional.size() == 2 ? args.positional[1] : "");
    }
    if (args.positional.front() == "export-recovery" && args.positional.size() == 1) {
      return cmdExportRecovery(args);
    }
    return fail("usage: foundationd backup | foundationd backup list [--offsite] | foundationd "
                "backup verify [ID] | foundationd backup export-recovery [--out FILE]");
  }
  if (args.offsite) return fail("--offsite is for `backup list` and `restore`");
  auto s = open(args, true);
  if (!s) return 1;
  backup::RunTargets targets{s->repo, std::nullopt, s->spec.backup->retention};
  if (s->spec.backup->offsite) {
    StoreSecrets secrets(s->spec, s->unlocked.store.get(), &s->unlocked.key);
    auto off = backup::repositoryFor(s->spec, *s->spec.backup->offsite, secrets);
    if (!off) return fail("[backup.offsite]: " + off.error().message);
    targets.offsite = std::move(*off);
  }
  boost::asio::io_context io;
  docker::DockerClient client(io.get_executor(), s->cfg.dockerSocket);
  backup::BackupContext ctx{client, s->spec, *s->unlocked.store, s->stateDir, FOUNDATIOND_VERSION};
  ctx.key = &s->unlocked.key;
  StoreSecrets bucketKeys(s->spec, s->unlocked.store.get(), &s->unlocked.key);
  ctx.secrets = &bucketKeys;
  ctx.unpauseNow = backup::blockingUnpauser(s->cfg.dockerSocket);
  // With --json, stdout is the run's record alone; the progress goes to stderr.
  const backup::Report progress = [&args](const std::string& line) {
    std::fprintf(args.json ? stderr : stdout, "%s\n", line.c_str());
    std::fflush(args.json ? stderr : stdout);
  };
  const auto r = runSync(io, backup::runBackup(ctx, targets, s->password.view(), resticBinary(),
                                               progress, "cli"));
  // What status, GET /v1/status and /metrics report (the daemon reads it).
  if (auto st = backup::recordRun(*s->unlocked.store, r); !st) {
    std::fprintf(stderr, "foundationd: warning: the backup's record was not written to the "
                         "state: %s\n", st.error().message.c_str());
  }
  if (!r.ok) {
    (void)s->unlocked.store->appendAudit("backup.failed", "{}");
    return fail("the backup failed: " + r.error +
                "; it has no manifest and is listed as incomplete");
  }
  (void)s->unlocked.store->appendAudit(
      "backup.taken", nlohmann::json{{"id", r.id}, {"sections", r.sections.size()}}.dump());
  if (args.json) std::printf("%s\n", backup::toJson(r).c_str());
  if (!r.retentionError.empty()) {
    (void)s->unlocked.store->appendAudit("backup.retention_failed", "{}");
    std::fprintf(stderr, "foundationd: retention: %s (the backups are all kept)\n",
                 r.retentionError.c_str());
  }
  if (r.offsite == backup::RunRecord::Offsite::failed) {
    (void)s->unlocked.store->appendAudit("backup.offsite_failed",
                                         nlohmann::json{{"id", r.id}}.dump());
    return fail("offsite: backup " + r.id + " was NOT copied to [backup.offsite]: " +
                r.offsiteError + "; the local copy is kept; run `foundationd backup` "
                "again once the offsite target answers");
  }
  if (r.offsite == backup::RunRecord::Offsite::confirmed) {
    (void)s->unlocked.store->appendAudit("backup.offsite_copied",
                                         nlohmann::json{{"id", r.id}}.dump());
  }
  return r.retentionError.empty() ? 0 : 1;
}

std::function<docker::Task<Status>(const std::string&)> backupBeforeUpgradeHook(
    const config::Spec& spec, state::Store* store, const state::UnlockedKey* key,
    docker::DockerApi& api, std::string stateDir, std::string dockerSocket) {
  if (!spec.backup || !store || !key || key->locked()) return nullptr;
  return [&spec, store, key, &api, stateDir,
          dockerSocket](const std::string& what) -> docker::Task<Status> {
    StoreSecrets secrets(spec, store, key);
    auto setup = backup::prepareRun(spec, *store, *key, secrets);
    if (!setup) co_return setup.error();
    backup::BackupContext ctx{api, spec, *store, stateDir, FOUNDATIOND_VERSION};
    ctx.reason = "before an upgrade: " + what;
    ctx.key = key;
    ctx.secrets = &secrets;
    ctx.unpauseNow = backup::blockingUnpauser(dockerSocket);
    printLine("a stateful service's image changes: backing up first (" + what + ")");
    const auto r = co_await backup::runBackup(ctx, setup->targets, setup->password.view(),
                                              resticBinary(),
                                              printLine, "cli");
    (void)backup::recordRun(*store, r);
    (void)store->appendAudit(r.ok ? "backup.taken" : "backup.failed",
                             nlohmann::json{{"id", r.id}, {"reason", ctx.reason}}.dump());
    if (!r.ok) co_return Error::make(ErrorCode::unavailable, r.error);
    if (r.offsite == backup::RunRecord::Offsite::failed) {
      printLine("offsite: backup " + r.id + " was NOT copied to [backup.offsite]: " +
                r.offsiteError + " (the local copy is kept; the upgrade goes on)");
    }
    co_return Status::success();
  };
}

int cmdRestore(const CliArgs& args) {
  if (args.fromRecovery) return cmdRestoreFromRecovery(args);
  if (!args.section) {
    return fail("usage: foundationd restore --section NAME [--backup ID] [--force] (the "
                "sections: `foundationd backup list`)");
  }
  auto s = open(args, false);
  if (!s) return 1;
  boost::asio::io_context io;
  docker::DockerClient client(io.get_executor(), s->cfg.dockerSocket);
  backup::Restic restic(io.get_executor(), s->repo, s->password.view(), resticBinary());
  backup::BackupContext ctx{client, s->spec, *s->unlocked.store, s->stateDir, FOUNDATIOND_VERSION};
  ctx.unpauseNow = backup::blockingUnpauser(s->cfg.dockerSocket);
  ctx.key = &s->unlocked.key;
  StoreSecrets bucketKeys(s->spec, s->unlocked.store.get(), &s->unlocked.key);
  ctx.secrets = &bucketKeys;
  ctx.forceVault = args.force;
  backup::RestoreRequest req;
  req.section = *args.section;
  req.backupId = args.backupId.value_or("");
  req.force = args.force;
  auto st = runSync(io, backup::restore(ctx, restic, req, printLine));
  (void)s->unlocked.store->appendAudit(
      st ? "backup.restored" : "backup.restore_failed",
      nlohmann::json{{"section", req.section}, {"backup", req.backupId}, {"force", req.force}}
          .dump());
  if (!st) return fail(st.error().message);
  std::printf("restored %s\n", req.section.c_str());
  if (req.section.rfind("postgres", 0) == 0) {
    std::printf("run `foundationd apply --once` (or let the daemon converge): roles get the "
                "passwords of this state again\n");
  }
  return 0;
}

}  // namespace foundationd::daemon
