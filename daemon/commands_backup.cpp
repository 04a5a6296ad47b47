// backup, backup list, restore (docs/dr.md): the backup controller run once
// from the CLI, with the passphrase (the repository password is in the
// sealed state).
#include <cstdio>
#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "build_info.hpp"
#include "controllers/backup/backup.hpp"
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

// restic's path: $FOUNDATIOND_RESTIC (tests, a restic outside PATH), else
// "restic" from PATH.
std::string resticBinary() {
  const char* b = std::getenv("FOUNDATIOND_RESTIC");
  return b && *b ? b : "restic";
}

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
  if (s.kind != "postgres-database") return "";
  std::string out;
  for (const auto& [table, n] : s.rowCounts) {
    out += (out.empty() ? "" : ", ") + table + "=" + std::to_string(n);
  }
  return out.empty() ? "  (no tables)" : "  rows: " + out;
}

struct OffsiteCopy {
  std::string display;
  std::size_t snapshots = 0;
};

// restic copy of backup `id` from the local repository to [backup.offsite]
// (initialised with the local one's chunker parameters when new), then
// confirmed: the offsite repository lists as many of its snapshots.
Result<OffsiteCopy> copyOffsite(boost::asio::io_context& io, Session& s, backup::Restic& local,
                                const std::string& id) {
  StoreSecrets secrets(s.spec, s.unlocked.store.get(), &s.unlocked.key);
  auto repo = backup::repositoryFor(s.spec, *s.spec.backup->offsite, secrets);
  if (!repo) return std::move(repo).error();
  backup::Restic off(io.get_executor(), *repo, s.password.view(), resticBinary());
  auto exists = runSync(io, off.exists());
  if (!exists) return std::move(exists).error();
  if (!*exists) {
    if (auto st = runSync(io, off.initFrom(local)); !st) return st.error();
    printLine("created the offsite repository " + repo->display);
  }
  const std::vector<std::string> tags{std::string(backup::kBackupTagKey) + "=" + id};
  if (auto st = runSync(io, off.copyFrom(local, tags)); !st) return st.error();
  auto here = runSync(io, local.snapshots(tags));
  if (!here) return std::move(here).error();
  auto there = runSync(io, off.snapshots(tags));
  if (!there) return std::move(there).error();
  if (there->size() != here->size()) {
    return Error::make(ErrorCode::protocol, "after the copy the offsite repository lists " +
                                                std::to_string(there->size()) + " of its " +
                                                std::to_string(here->size()) + " snapshots");
  }
  return OffsiteCopy{repo->display, there->size()};
}

int listBackups(const CliArgs& args) {
  auto s = open(args, false);
  if (!s) return 1;
  boost::asio::io_context io;
  backup::Restic restic(io.get_executor(), s->repo, s->password.view(), resticBinary());
  auto list = runSync(io, backup::listBackups(restic));
  if (!list) return fail(list.error().message);
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : *list) {
      nlohmann::json j = {{"id", e.id}, {"time", e.time}, {"complete", e.complete},
                          {"sections", e.sections}};
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
    std::printf("%s  complete  %s  %zu sections, %llu bytes  spec revision %s\n", e.id.c_str(),
                m.createdAt.c_str(), m.sections.size(),
                static_cast<unsigned long long>(m.totalBytes()),
                m.specRevision.empty() ? "(none applied)" : m.specRevision.c_str());
    for (const auto& sec : m.sections) {
      std::printf("  %-36s %12llu bytes  sha256 %.16s  snapshot %s%s\n", sec.name.c_str(),
                  static_cast<unsigned long long>(sec.bytes), sec.sha256.c_str(),
                  sec.snapshot.c_str(), rowsSummary(sec).c_str());
    }
    for (const auto& n : m.notIncluded) std::printf("  not included: %s\n", n.c_str());
  }
  return 0;
}

}  // namespace

int cmdBackup(const CliArgs& args) {
  if (!args.positional.empty()) {
    if (args.positional.front() == "list" && args.positional.size() == 1) return listBackups(args);
    if (args.positional.front() == "export-recovery" && args.positional.size() == 1) {
      return cmdExportRecovery(args);
    }
    return fail("usage: foundationd backup | foundationd backup list [--offsite] | foundationd "
                "backup export-recovery [--out FILE]");
  }
  if (args.offsite) return fail("--offsite is for `backup list` and `restore`");
  auto s = open(args, true);
  if (!s) return 1;
  boost::asio::io_context io;
  docker::DockerClient client(io.get_executor(), s->cfg.dockerSocket);
  backup::Restic restic(io.get_executor(), s->repo, s->password.view(), resticBinary());
  backup::BackupContext ctx{client, s->spec, *s->unlocked.store, s->stateDir, FOUNDATIOND_VERSION};
  ctx.key = &s->unlocked.key;
  auto m = runSync(io, backup::takeBackup(ctx, restic, printLine));
  if (!m) {
    (void)s->unlocked.store->appendAudit("backup.failed", "{}");
    return fail("the backup failed: " + m.error().message +
                "; it has no manifest and is listed as incomplete");
  }
  (void)s->unlocked.store->appendAudit(
      "backup.taken", nlohmann::json{{"id", m->id}, {"sections", m->sections.size()}}.dump());
  for (const auto& n : m->notIncluded) std::printf("not included: %s\n", n.c_str());
  if (args.json) std::printf("%s", backup::toJson(*m).c_str());
  std::printf("backup %s complete in %s\n", m->id.c_str(), s->repo.display.c_str());
  if (!s->spec.backup->offsite) {
    std::printf("offsite: none declared ([backup.offsite]): backup %s exists on this host "
                "alone\n",
                m->id.c_str());
    return 0;
  }
  auto offsite = copyOffsite(io, *s, restic, m->id);
  if (!offsite) {
    (void)s->unlocked.store->appendAudit(
        "backup.offsite_failed", nlohmann::json{{"id", m->id}}.dump());
    return fail("offsite: backup " + m->id + " was NOT copied to [backup.offsite]: " +
                offsite.error().message + "; the local copy is kept; run `foundationd backup` "
                "again once the offsite target answers");
  }
  (void)s->unlocked.store->appendAudit("backup.offsite_copied",
                                       nlohmann::json{{"id", m->id}}.dump());
  std::printf("offsite: backup %s copied to %s (%zu snapshots confirmed there)\n",
              m->id.c_str(), offsite->display.c_str(), offsite->snapshots);
  return 0;
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
  ctx.key = &s->unlocked.key;
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
