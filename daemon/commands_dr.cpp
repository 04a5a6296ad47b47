// Disaster recovery (docs/dr.md "The recovery bundle", dr/RUNBOOK.md):
// - `backup export-recovery`: the recovery bundle written into the spec
//   repository's checkout, sealed under the master passphrase;
// - `restore --from-recovery BUNDLE`: on a fresh host (no state), opens the
//   bundle, finds the newest complete backup in the offsite (else local)
//   repository, verifies its state section against the manifest and puts it
//   in place as this host's state; then starts the data services alone and
//   restores Vault, every PostgreSQL instance, the buckets and the forge's
//   data before any consumer runs (docs/dr.md "Restore to a fresh host").
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include "controllers/backup/backup.hpp"
#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/recovery_bundle.hpp"
#include "controllers/docker/docker_client.hpp"
#include "build_info.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "daemon/converge.hpp"
#include "daemon/passphrase.hpp"
#include "state/atomic_file.hpp"
#include "state/sealing.hpp"

namespace foundationd::daemon {
namespace {

namespace fs = std::filesystem;

int fail(const std::string& message) {
  std::fprintf(stderr, "foundationd: %s\n", message.c_str());
  return 1;
}

std::string resticBinary() {
  const char* b = std::getenv("FOUNDATIOND_RESTIC");
  return b && *b ? b : "restic";
}

void printLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// --out, else [backup] recovery relative to the spec file's directory.
std::optional<fs::path> bundlePath(const CliArgs& args, const config::Spec& spec,
                                   const std::string& specPath) {
  if (args.out) return fs::absolute(*args.out);
  if (spec.backup->recovery.empty()) {
    fail(specPath + ": [backup] names no \"recovery\" file and no --out was given: add "
                    "recovery = \"dr/recovery.sealed\" to [backup] (a file inside the spec "
                    "repository, committed by the operator)");
    return std::nullopt;
  }
  return fs::absolute(fs::path(specPath).parent_path() / spec.backup->recovery);
}

// The spec reduced to its data services: the containers of [postgres.*],
// [vault] and the [s3.*] servers (with what they depend on), and with
// `withForge` the forge's; every network, volume and file; no consumer, no
// Vault step (it would refuse an uninitialised Vault whose keys the state
// holds: the restore initialises it) and no forge bootstrap (the forge's data
// is restored into its empty volumes, then `apply --once` converges the forge
// on it).
config::Spec dataServicesOnly(const config::Spec& spec, bool withForge) {
  config::Spec out = spec;
  std::set<std::string> keep;
  std::vector<std::string> todo;
  for (const auto& [name, pg] : spec.postgres) todo.push_back(pg.container);
  if (spec.vault) todo.push_back(spec.vault->container);
  // The S3 servers too: their buckets (created empty by this converge) get
  // their objects back before any consumer runs.
  for (const auto& [name, s3] : spec.s3) todo.push_back(s3.container);
  // The forge's container only once its database and buckets are restored: a
  // forge started on an empty PostgreSQL database writes its schema there,
  // and that database's restore would then be refused (it has tables).
  if (withForge && spec.forgejo) todo.push_back(spec.forgejo->container);
  while (!todo.empty()) {
    const std::string c = todo.back();
    todo.pop_back();
    if (!keep.insert(c).second) continue;
    const auto it = spec.containers.find(c);
    if (it == spec.containers.end()) continue;
    for (const auto& d : it->second.dependsOn) todo.push_back(d.container);
  }
  std::erase_if(out.containers, [&](const auto& kv) { return keep.count(kv.first) == 0; });
  out.vault.reset();
  out.forgejo.reset();
  out.prune = false;
  return out;
}

// After the state: the data services started alone, then Vault's snapshot,
// every PostgreSQL instance and every bucket restored from backup `m`; then
// the forge's container started on its restored database and its data
// restored into its volumes; all before any consumer runs. The caller then
// converges the whole spec.
int restoreDataServices(const CliArgs& args, const config::DaemonConfig& cfg,
                        const std::string& stateDir, const state::SecretBytes& pass,
                        boost::asio::io_context& io, backup::Restic& restic,
                        const backup::Manifest& m) {
  const std::string specPath = specPathOf(args, cfg);
  if (specPath.empty()) {
    std::printf("no spec given (--spec): restore the data sections with `foundationd restore "
                "--section ...`, then `foundationd apply --once` (dr/RUNBOOK.md)\n");
    return 0;
  }
  auto spec = loadSpec(specPath);
  if (!spec) return 1;
  auto store = openExistingStore(stateDir);
  if (!store) return fail(store.error().message);
  auto key = store.value()->unlock(pass.view());
  if (!key) return fail(key.error().message);
  const config::Spec data = dataServicesOnly(*spec, false);
  std::printf("starting the data services alone (%zu containers), no consumer yet\n",
              data.containers.size());
  std::fflush(stdout);
  if (int rc = runConverge(cfg, data, store.value().get(), &*key); rc != 0) {
    return fail("the data services did not start; the state is in place: fix the cause and "
                "restore the sections with `foundationd restore --section ...`");
  }
  std::vector<std::string> selectors;
  for (const auto& s : m.sections) {
    if (s.kind == "vault-snapshot" && spec->vault) selectors.push_back("vault");
  }
  for (const auto& [name, pg] : spec->postgres) selectors.push_back("postgres/" + name);
  // Then the buckets' objects (after PostgreSQL).
  for (const auto& s : m.sections) {
    if (s.kind == "bucket-objects" && spec->buckets.count(s.bucket)) selectors.push_back(s.name);
  }
  // Last the forge's data, once its container runs (after its database).
  std::string forgeSection;
  for (const auto& s : m.sections) {
    if (s.kind == "forge-data" && spec->forgejo) forgeSection = s.name;
  }
  docker::DockerClient client(io.get_executor(), cfg.dockerSocket);
  backup::BackupContext ctx{client, *spec, *store.value(), stateDir, FOUNDATIOND_VERSION};
  ctx.key = &*key;
  StoreSecrets bucketKeys(*spec, store.value().get(), &*key);
  ctx.secrets = &bucketKeys;
  const auto restoreOne = [&](const std::string& sel) {
    backup::RestoreRequest req;
    req.backupId = m.id;
    req.section = sel;
    auto st = runSync(io, backup::restore(ctx, restic, req, printLine));
    (void)store.value()->appendAudit(
        st ? "backup.restored" : "backup.restore_failed",
        nlohmann::json{{"section", sel}, {"backup", m.id}, {"from_recovery", true}}.dump());
    if (!st) return fail(sel + ": " + st.error().message);
    return 0;
  };
  for (const auto& sel : selectors) {
    if (int rc = restoreOne(sel); rc != 0) return rc;
  }
  if (!forgeSection.empty()) {
    const config::Spec withForge = dataServicesOnly(*spec, true);
    std::printf("starting the forge's container %s on its restored database, no bootstrap\n",
                spec->forgejo->container.c_str());
    std::fflush(stdout);
    if (int rc = runConverge(cfg, withForge, store.value().get(), &*key); rc != 0) {
      return fail(
          "the forge's container did not start; the state and the other data are in "
          "place: fix the cause, then `foundationd restore --section " +
          forgeSection +
          "` (with --offsite when the backup is read from there), then `foundationd "
          "apply --once`");
    }
    if (int rc = restoreOne(forgeSection); rc != 0) return rc;
    selectors.push_back(forgeSection);
  }
  std::printf("restored backup %s: state, %s; now converge the whole spec: foundationd apply "
              "--once\n",
              m.id.c_str(), selectors.empty() ? "no data section" : "the data services");
  return 0;
}

}  // namespace

int cmdExportRecovery(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  const std::string specPath = specPathOf(args, *cfg);
  auto spec = loadSpec(specPath);
  if (!spec) return 1;
  if (!spec->backup) {
    return fail(specPath + " has no [backup]: there is nothing to recover from (docs/dr.md)");
  }
  auto out = bundlePath(args, *spec, specPath);
  if (!out) return 1;
  auto profile = state::parseKdfProfile(args.kdf.value_or("moderate"));
  if (!profile) return fail(profile.error().message);
  const std::string stateDir = stateDirOf(args, *cfg);
  auto lock = lockState(stateDir, "backup export-recovery", "", false);
  if (!lock) return fail(lock.error().message);
  auto store = openExistingStore(stateDir);
  if (!store) return fail(store.error().message);
  state::protectProcess();
  auto pass = readPassphrase(args.passphraseFile, "Master passphrase: ");
  if (!pass) return fail(pass.error().message);
  auto key = store.value()->unlock(pass->view());
  if (!key) return fail(key.error().message + "; nothing was written");
  // Generated here when no backup was taken yet: the bundle can be committed
  // before the first backup, and every later backup uses the same password.
  auto password = backup::resticPassword(*store.value(), *key, true);
  if (!password) return fail(password.error().message);
  backup::RecoveryContents contents;
  contents.project = spec->project;
  contents.createdAt = backup::nowRfc3339();
  contents.resticPassword = std::move(*password);
  StoreSecrets secrets(*spec, store.value().get(), &*key);
  auto local = backup::repositoryFor(*spec, spec->backup->local, secrets);
  if (!local) return fail("[backup.local]: " + local.error().message + "; nothing was written");
  contents.targets.emplace_back("local", std::move(*local));
  if (spec->backup->offsite) {
    auto off = backup::repositoryFor(*spec, *spec->backup->offsite, secrets);
    if (!off) return fail("[backup.offsite]: " + off.error().message + "; nothing was written");
    contents.targets.emplace_back("offsite", std::move(*off));
  }
  auto text = backup::sealRecoveryBundle(contents, pass->view(), *profile);
  if (!text) return fail(text.error().message);
  std::error_code ec;
  fs::create_directories(out->parent_path(), ec);
  if (ec) return fail("cannot create " + out->parent_path().string() + ": " + ec.message());
  if (auto st = state::writeFileAtomic(*out, *text); !st) return fail(st.error().message);
  (void)store.value()->appendAudit("backup.recovery_exported",
                                   nlohmann::json{{"file", out->string()}}.dump());
  std::printf("wrote the recovery bundle to %s: the restic password and the %s sealed under "
              "the master passphrase.\nCommit it to the spec repository (git add && git "
              "commit); export it again after a passphrase change or a new offsite key.\n",
              out->c_str(),
              spec->backup->offsite ? "[backup.local] and [backup.offsite] targets"
                                    : "[backup.local] target");
  if (!spec->backup->offsite) {
    std::printf("warning: no [backup.offsite]: a lost host loses [backup.local] with it unless "
                "it is elsewhere\n");
  }
  return 0;
}

int cmdRestoreFromRecovery(const CliArgs& args) {
  const fs::path bundleFile = *args.fromRecovery;
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  const std::string stateDir = stateDirOf(args, *cfg);
  const fs::path target = fs::path(stateDir) / state::Store::kFileName;
  std::error_code ec;
  if (fs::symlink_status(target, ec).type() != fs::file_type::not_found) {
    return fail(target.string() + " exists: --from-recovery makes the state of a fresh host and "
                "never replaces one (restore into an empty --state-dir); nothing was changed");
  }
  std::ifstream in(bundleFile, std::ios::binary);
  if (!in) return fail("cannot read the recovery bundle " + bundleFile.string());
  std::stringstream buf;
  buf << in.rdbuf();
  state::protectProcess();
  auto pass = readPassphrase(args.passphraseFile, "Master passphrase: ");
  if (!pass) return fail(pass.error().message);
  auto contents = backup::openRecoveryBundle(buf.str(), pass->view());
  if (!contents) {
    return fail(bundleFile.string() + ": " + contents.error().message + "; nothing was changed");
  }
  const char* which = contents->target("offsite") ? "offsite" : "local";
  const backup::Repository* repo = contents->target(which);
  if (!repo) return fail(bundleFile.string() + " names no " + which + " backup target");
  std::printf("recovery bundle of project %s written %s: restoring from the %s repository %s\n",
              contents->project.c_str(), contents->createdAt.c_str(), which,
              repo->display.c_str());
  std::fflush(stdout);

  boost::asio::io_context io;
  backup::Restic restic(io.get_executor(), *repo, contents->resticPassword.view(),
                        resticBinary());
  if (auto st = runSync(io, restic.check(false)); !st) {
    return fail(repo->display + ": " + st.error().message + "; nothing was changed");
  }
  auto list = runSync(io, backup::listBackups(restic));
  if (!list) return fail(list.error().message + "; nothing was changed");
  const backup::BackupEntry* chosen = nullptr;
  for (const auto& e : *list) {
    if (args.backupId ? e.id == *args.backupId : e.complete) chosen = &e;
  }
  if (!chosen || !chosen->complete) {
    return fail((args.backupId ? "no complete backup " + *args.backupId : std::string(
                                                                              "no complete backup")) +
                " in " + repo->display + "; nothing was changed");
  }
  const backup::Manifest& m = *chosen->manifest;
  const backup::Section* stateSection = nullptr;
  for (const auto& s : m.sections) {
    if (s.kind == "state") stateSection = &s;
  }
  const auto snap = chosen->snapshotOf.find("state");
  if (!stateSection || snap == chosen->snapshotOf.end()) {
    return fail("backup " + m.id + " has no state section; nothing was changed");
  }
  auto lock = lockState(stateDir, "restore --from-recovery");
  if (!lock) return fail(lock.error().message);
  // Written beside its place, verified, then renamed in: a crash leaves no
  // half state where the daemon looks for one.
  const fs::path tmp = fs::path(stateDir) / ("state.db.recovering-" + m.id);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot create " + tmp.string() + ": " + std::strerror(errno));
  backup::internal::Sha256 sha;
  auto st = runSync(io, restic.dump(snap->second, stateSection->path,
                                    [&](std::string_view piece) -> backup::Task<Status> {
                                      sha.update(piece);
                                      while (!piece.empty()) {
                                        const ssize_t n = ::write(fd, piece.data(), piece.size());
                                        if (n < 0 && errno == EINTR) continue;
                                        if (n < 0) {
                                          co_return Error::make(ErrorCode::io,
                                                                "writing " + tmp.string() + ": " +
                                                                    std::strerror(errno));
                                        }
                                        piece.remove_prefix(static_cast<std::size_t>(n));
                                      }
                                      co_return Status::success();
                                    }));
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  const std::uint64_t got = sha.bytes();
  const std::string digest = sha.hex();
  if (!st || !synced || got != stateSection->bytes || digest != stateSection->sha256) {
    ::unlink(tmp.c_str());
    return fail("state: what " + repo->display + " holds for backup " + m.id +
                (st ? " is not what its manifest recorded (size or SHA-256)"
                    : " could not be read: " + st.error().message) +
                "; nothing was changed");
  }
  // The restored state must open with this passphrase before it is put in place.
  {
    auto restored = state::Store::open(tmp);
    if (!restored) {
      ::unlink(tmp.c_str());
      return fail("state: the restored copy does not open: " + restored.error().message);
    }
    auto key = restored.value()->unlock(pass->view());
    if (!key) {
      ::unlink(tmp.c_str());
      return fail("state: the restored state of backup " + m.id + " does not open with this "
                  "passphrase (" + key.error().message + "): was the passphrase changed after "
                  "that backup? nothing was changed");
    }
    (void)restored.value()->appendAudit(
        "backup.state_recovered",
        nlohmann::json{{"backup", m.id}, {"repository", repo->display}}.dump());
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail("cannot put the state in place at " + target.string() + ": " + std::strerror(err));
  }
  if (auto d = state::fsyncDirectory(stateDir); !d) return fail(d.error().message);
  std::printf("state: backup %s (spec revision %s) restored to %s and opened with the "
              "passphrase\n",
              m.id.c_str(), m.specRevision.empty() ? "none" : m.specRevision.c_str(),
              target.c_str());
  std::fflush(stdout);
  return restoreDataServices(args, *cfg, stateDir, *pass, io, restic, m);
}

}  // namespace foundationd::daemon
