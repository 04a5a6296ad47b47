// The forge's data section. Contract in forge_section.hpp.
#include "controllers/backup/forge_section.hpp"

#include <chrono>
#include <set>

#include "config/units.hpp"
#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/freeze.hpp"

namespace foundationd::backup {

using namespace internal;

namespace {

// Every bare repository under the mount points given as arguments, with its
// HEAD commit (empty for a repository without commits).
const char* kListRepos =
    "for m in \"$@\"; do find \"$m\" -type f -name HEAD -path '*.git/HEAD' 2>/dev/null; done |"
    " sort | while read -r h; do d=${h%/HEAD};"
    " c=$(git -c safe.directory='*' --git-dir=\"$d\" rev-parse -q --verify 'HEAD^{commit}'"
    " 2>/dev/null || true); printf '%s %s\\n' \"$d\" \"$c\"; done";

std::string helperName(const std::string& forge) { return forge + "-fd-backup"; }

struct ForgeMounts {
  std::string image;                // the forge's image id
  bool running = false;
  bool paused = false;
  std::vector<std::string> mounts;  // writable volume mount points, sorted
};

Task<Result<ForgeMounts>> inspectForge(BackupContext& ctx, const std::string& container) {
  auto c = co_await ctx.docker.inspectContainer(container);
  if (!c) {
    co_return Error::make(c.error().code, "the forge's container " + container + ": " +
                                              c.error().message);
  }
  ForgeMounts f;
  f.running = c->running;
  f.image = c->raw.value("Image", "");
  if (const auto st = c->raw.find("State"); st != c->raw.end() && st->is_object()) {
    f.paused = st->value("Paused", false);
  }
  if (const auto ms = c->raw.find("Mounts"); ms != c->raw.end() && ms->is_array()) {
    for (const auto& m : *ms) {
      if (!m.value("RW", false)) continue;  // files foundationd writes, read-only
      const std::string type = m.value("Type", "");
      if (type != "volume" && type != "bind") continue;
      const std::string name = m.value("Name", "");
      if (ctx.spec.backup && ctx.spec.backup->disposable.count(name)) continue;
      f.mounts.push_back(m.value("Destination", ""));
    }
  }
  std::sort(f.mounts.begin(), f.mounts.end());
  if (f.image.empty()) {
    co_return Error::make(ErrorCode::protocol, "the forge's container " + container +
                                                   " has no image id in its inspection");
  }
  co_return f;
}

Task<void> removeHelper(BackupContext& ctx, const std::string& name) {
  (void)co_await ctx.docker.removeContainer(name, true);
}

// The helper container: the forge's image, its volumes mounted (read-only
// unless `write`), no network, idle until exec'd into.
Task<Result<std::string>> startHelper(BackupContext& ctx, const std::string& forge,
                                      const ForgeMounts& f, bool write) {
  const std::string name = helperName(forge);
  co_await removeHelper(ctx, name);  // one a killed run left behind
  nlohmann::json body = {
      {"Image", f.image},
      {"Entrypoint", {"sleep"}},
      {"Cmd", {"86400"}},
      {"User", "0:0"},
      {"Labels", {{"foundationd.backup-helper", forge}}},
      {"NetworkDisabled", true},
      {"HostConfig",
       {{"VolumesFrom", {forge + (write ? ":rw" : ":ro")}}, {"NetworkMode", "none"}}}};
  auto id = co_await ctx.docker.createContainer(name, body);
  if (!id) {
    co_return Error::make(id.error().code, "creating the helper container " + name + ": " +
                                               id.error().message);
  }
  if (auto st = co_await ctx.docker.startContainer(name); !st) {
    co_await removeHelper(ctx, name);
    co_return Error::make(st.error().code, "starting the helper container " + name + ": " +
                                               st.error().message);
  }
  co_return name;
}

Task<Result<std::string>> helperExec(BackupContext& ctx, const std::string& helper,
                                     std::vector<std::string> cmd) {
  docker::ExecOptions eo;
  eo.user = "0";
  eo.timeout = std::chrono::minutes(10);
  auto r = co_await ctx.docker.exec(helper, cmd, eo);
  if (!r) co_return std::move(r).error();
  if (r->exitCode != 0) {
    co_return Error::make(ErrorCode::peer, cmd.front() + " in the helper container " + helper +
                                               " failed (exit " + std::to_string(r->exitCode) +
                                               "): " + firstLines(r->stderrText + r->stdoutText));
  }
  co_return std::move(r->stdoutText);
}

Task<Status> listRepos(BackupContext& ctx, const std::string& helper,
                       const std::vector<std::string>& mounts, Section& into) {
  std::vector<std::string> cmd{"sh", "-c", kListRepos, "sh"};
  cmd.insert(cmd.end(), mounts.begin(), mounts.end());
  auto out = co_await helperExec(ctx, helper, std::move(cmd));
  if (!out) co_return out.error();
  co_return parseRepoListing(*out, into);
}

std::string stripSlash(const std::string& p) {
  return !p.empty() && p.front() == '/' ? p.substr(1) : p;
}

Freezer pauseFreezer(BackupContext& ctx, const std::string& forge) {
  Freezer f;
  f.freeze = [&ctx, forge]() -> Task<Status> { co_return co_await ctx.docker.pauseContainer(forge, true); };
  f.thaw = [&ctx, forge]() -> Task<Status> { co_return co_await ctx.docker.pauseContainer(forge, false); };
  if (ctx.unpauseNow) f.thawNow = [&ctx, forge] { ctx.unpauseNow(forge); };
  if (ctx.spec.backup) {
    f.limit = ctx.spec.backup->maxFreeze;
    f.limitHint = "the forge's data takes longer to read than [backup] max_freeze (" +
                  config::formatDuration(ctx.spec.backup->maxFreeze) +
                  ") allows: raise it, or mark volumes of the forge that need no backup "
                  "[backup] disposable";
  }
  return f;
}

// The body of the section, helper running.
Task<Status> cut(BackupContext& ctx, Restic& repo, const std::vector<std::string>& tags,
                 const std::string& host, const std::string& forge, const std::string& helper,
                 const ForgeMounts& f, Section& s) {
  Sha256 sha;
  std::chrono::milliseconds held{0};
  const Freezer freezer = pauseFreezer(ctx, forge);
  auto st = co_await whileFrozen(
      freezer,
      [&]() -> Task<Status> {
        if (auto listed = co_await listRepos(ctx, helper, f.mounts, s); !listed) co_return listed;
        std::vector<std::string> tar{"tar", "-c", "-f", "-", "-C", "/"};
        for (const auto& m : f.mounts) tar.push_back(stripSlash(m));
        auto done = co_await repo.backupStdin(
            s.path, tags, host, [&](ChildProcess& child) -> Task<Status> {
              docker::ExecOptions eo;
              eo.user = "0";
              eo.timeout = ctx.execTimeout;
              eo.maxOutput = 1 << 20;
              eo.stdoutSink = [&](std::string_view piece) -> Task<Status> {
                sha.update(piece);
                co_return co_await child.write(piece);
              };
              auto r = co_await ctx.docker.exec(helper, tar, eo);
              if (!r) co_return std::move(r).error();
              if (r->exitCode != 0) {
                co_return Error::make(ErrorCode::peer, "tar in the helper container " + helper +
                                                           " failed (exit " +
                                                           std::to_string(r->exitCode) +
                                                           "): " + firstLines(r->stderrText));
              }
              co_return Status::success();
            });
        if (!done) co_return done.error();
        s.snapshot = done->snapshotId;
        co_return Status::success();
      },
      &held);
  s.freezeMs = held.count();
  if (!st) co_return st;
  s.bytes = sha.bytes();
  s.sha256 = sha.hex();
  co_return Status::success();
}

}  // namespace

Task<Result<std::string>> forgeExec(BackupContext& ctx, const std::string& container,
                                    std::vector<std::string> cmd) {
  co_return co_await helperExec(ctx, container, std::move(cmd));
}

Task<Status> listForgeRepos(BackupContext& ctx, const std::string& container,
                            const std::vector<std::string>& mounts, Section& into) {
  co_return co_await listRepos(ctx, container, mounts, into);
}

std::string headDiff(const std::map<std::string, std::string>& manifest,
                     const std::map<std::string, std::string>& observed,
                     const std::vector<std::string>& names) {
  std::string diff;
  for (const auto& name : names) {
    const auto it = observed.find(name);
    const std::string have = it == observed.end() ? "(missing)" : it->second;
    const auto want = manifest.find(name);
    const std::string expected = want == manifest.end() ? "(none)" : want->second;
    if (have != expected) {
      diff += (diff.empty() ? "" : ", ") + name + " HEAD " + (have.empty() ? "(empty)" : have) +
              ", " + (expected.empty() ? "(empty)" : expected) + " in the manifest";
    }
  }
  return diff;
}

std::optional<std::string> forgeRepoSelector(std::string_view selector) {
  constexpr std::string_view prefix = "forge/repo/";
  if (selector.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view rest = selector.substr(prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size() ||
      rest.find('/', slash + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::string(rest);
}

Status parseRepoListing(std::string_view out, Section& s) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t nl = out.find('\n', pos);
    if (nl == std::string_view::npos) nl = out.size();
    const std::string_view line = out.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string_view::npos || line.front() != '/') {
      return Error::make(ErrorCode::protocol, "the forge's repository listing: cannot read \"" +
                                                  std::string(line.substr(0, 120)) + "\"");
    }
    const std::string path(line.substr(0, sp));
    const std::string head(line.substr(sp + 1));
    if (!head.empty() && head.size() != 40 && head.size() != 64) {
      return Error::make(ErrorCode::protocol, "the forge's repository listing: \"" + head +
                                                  "\" is not a commit id (" + path + ")");
    }
    const auto last = path.rfind('/');
    const auto before = last == std::string::npos || last == 0 ? std::string::npos
                                                                : path.rfind('/', last - 1);
    if (before == std::string::npos) {
      return Error::make(ErrorCode::protocol,
                         "the forge's repository listing: " + path + " is not OWNER/NAME.git");
    }
    std::string name = path.substr(before + 1);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".git") == 0) {
      name.resize(name.size() - 4);
    }
    s.repoHeads[name] = head;
    s.repoPaths[name] = path.substr(1);
  }
  return Status::success();
}

Task<Result<Section>> backupForgeData(BackupContext& ctx, Restic& repo,
                                      const std::vector<std::string>& tags,
                                      const std::string& host, const Report& report) {
  const std::string forge = ctx.spec.forgejo->container;
  Section s;
  s.name = kForgeSection;
  s.kind = kForgeKind;
  s.path = "/forge/data.tar";
  const auto fail = [&](const Error& e) { return Error::make(e.code, s.name + ": " + e.message); };
  auto f = co_await inspectForge(ctx, forge);
  if (!f) co_return fail(f.error());
  if (f->paused) {
    if (auto st = co_await ctx.docker.pauseContainer(forge, false); !st) co_return fail(st.error());
    report(s.name + ": the forge's container " + forge + " was paused (an interrupted backup "
           "left it so): unpaused");
  }
  if (!f->running) {
    co_return Error::make(ErrorCode::unavailable, s.name + ": the forge's container " + forge +
                                                      " is not running; its data is backed up "
                                                      "from a running forge (apply first)");
  }
  if (f->mounts.empty()) {
    co_return Error::make(ErrorCode::invalid_argument,
                          s.name + ": the forge's container " + forge +
                              " has no writable volume: where does it keep its repositories?");
  }
  s.mounts = f->mounts;
  auto helper = co_await startHelper(ctx, forge, *f, false);
  if (!helper) co_return fail(helper.error());
  std::optional<Error> exception;
  Status st = Status::success();
  try {
    st = co_await cut(ctx, repo, tags, host, forge, *helper, *f, s);
  } catch (const std::exception& e) {
    exception = Error::make(ErrorCode::internal, e.what());
  }
  co_await removeHelper(ctx, *helper);
  if (exception) co_return fail(*exception);
  if (!st) co_return fail(st.error());
  report(s.name + ": " + std::to_string(s.bytes) + " bytes, " +
         std::to_string(s.repoHeads.size()) + " repositories, the forge paused " +
         std::to_string(s.freezeMs) + " ms (snapshot " + s.snapshot + ")");
  co_return s;
}

// --- restore ---------------------------------------------------------------

namespace {

std::vector<std::string> wanted(const Section& s, const std::string& onlyRepo) {
  std::vector<std::string> names;
  for (const auto& [name, head] : s.repoHeads) {
    if (onlyRepo.empty() || name == onlyRepo) names.push_back(name);
  }
  return names;
}

}  // namespace

Task<Status> precheckForgeData(BackupContext& ctx, const Section& s, const std::string& onlyRepo,
                               bool force) {
  if (!ctx.spec.forgejo) {
    co_return Error::make(ErrorCode::invalid_argument,
                          s.name + ": the spec has no [forgejo] to restore into");
  }
  const std::string forge = ctx.spec.forgejo->container;
  const auto fail = [&](const Error& e) { return Error::make(e.code, s.name + ": " + e.message); };
  if (!onlyRepo.empty() && !s.repoHeads.count(onlyRepo)) {
    std::string names;
    for (const auto& [n, h] : s.repoHeads) names += (names.empty() ? "" : ", ") + n;
    co_return Error::make(ErrorCode::not_found, s.name + ": no repository " + onlyRepo +
                                                    " in this backup (it has: " + names + ")");
  }
  auto f = co_await inspectForge(ctx, forge);
  if (!f) {
    co_return fail(f.error().code == ErrorCode::not_found
                       ? Error::make(ErrorCode::not_found,
                                     "the forge's container " + forge + " does not exist: "
                                     "`foundationd apply --once` creates it and its volumes first")
                       : f.error());
  }
  for (const auto& m : s.mounts) {
    if (std::find(f->mounts.begin(), f->mounts.end(), m) == f->mounts.end()) {
      co_return Error::make(ErrorCode::invalid_argument,
                            s.name + ": the backup holds the volume mounted at " + m +
                                " but the forge's container " + forge + " has none there");
    }
  }
  auto helper = co_await startHelper(ctx, forge, *f, false);
  if (!helper) co_return fail(helper.error());
  Section here;
  auto listed = co_await listRepos(ctx, *helper, f->mounts, here);
  co_await removeHelper(ctx, *helper);
  if (!listed) co_return fail(listed.error());
  std::vector<std::string> clash;
  for (const auto& [name, head] : here.repoHeads) {
    if (onlyRepo.empty() || name == onlyRepo) clash.push_back(name);
  }
  if (!clash.empty() && !force) {
    std::string names;
    for (const auto& n : clash) names += (names.empty() ? "" : ", ") + n;
    co_return Error::make(
        ErrorCode::conflict,
        s.name + ": the forge's volumes already hold " +
            (onlyRepo.empty() ? std::to_string(clash.size()) + " repositories (" + names + ")"
                              : "the repository " + onlyRepo) +
            "; restore refuses to write over live data (--force writes the backup's files over "
            "them; files not in the backup are kept, no volume is deleted)");
  }
  co_return Status::success();
}

Task<Status> restoreForgeData(BackupContext& ctx, Restic& repo, const Section& s,
                              const std::string& onlyRepo, const Report& report) {
  const std::string forge = ctx.spec.forgejo->container;
  const auto fail = [&](const Error& e) { return Error::make(e.code, s.name + ": " + e.message); };
  auto f = co_await inspectForge(ctx, forge);
  if (!f) co_return fail(f.error());
  if (f->paused) (void)co_await ctx.docker.pauseContainer(forge, false);
  const bool wasRunning = f->running;
  if (wasRunning) {
    if (auto st = co_await ctx.docker.stopContainer(forge, std::chrono::seconds(30)); !st) {
      co_return fail(st.error());
    }
    report(s.name + ": stopped the forge's container " + forge + " for the restore");
  }
  std::vector<std::string> cmd{"tar", "-x", "-f", "-", "-C", "/"};
  if (!onlyRepo.empty()) cmd.push_back(s.repoPaths.at(onlyRepo));
  Status result = Status::success();
  Section after;
  auto helper = co_await startHelper(ctx, forge, *f, true);
  if (!helper) {
    result = fail(helper.error());
  } else {
    auto child = co_await repo.startDump(s.snapshot, s.path);
    if (!child) {
      result = fail(child.error());
    } else {
      auto& c = **child;
      docker::ExecOptions eo;
      eo.user = "0";
      eo.timeout = ctx.execTimeout;
      eo.maxOutput = 1 << 20;
      eo.stdinSource = [&]() -> Task<Result<std::string>> { co_return co_await c.readSome(); };
      auto r = co_await ctx.docker.exec(*helper, cmd, eo);
      if (!r || r->exitCode != 0) {
        c.kill();
      } else {
        (void)co_await c.readAllOut(0);
      }
      auto dumped = co_await repo.finishDump(c, "reading " + s.name);
      if (!r) {
        result = fail(r.error());
      } else if (r->exitCode != 0) {
        result = Error::make(ErrorCode::peer, s.name + ": tar failed (exit " +
                                                  std::to_string(r->exitCode) + "): " +
                                                  firstLines(r->stderrText));
      } else if (!dumped) {
        result = fail(dumped.error());
      } else {
        if (auto listed = co_await listRepos(ctx, *helper, f->mounts, after); !listed) {
          result = fail(listed.error());
        }
      }
    }
    co_await removeHelper(ctx, *helper);
  }
  if (wasRunning) {
    if (auto st = co_await ctx.docker.startContainer(forge); !st && result) {
      result = fail(st.error());
    }
  }
  if (!result) co_return result;
  const auto names = wanted(s, onlyRepo);
  const std::string diff = headDiff(s.repoHeads, after.repoHeads, names);
  if (!diff.empty()) {
    co_return Error::make(ErrorCode::protocol,
                          s.name + ": restored, but the repositories differ from the manifest: " +
                              diff);
  }
  report(s.name + ": restored into the forge's volumes (" + std::to_string(names.size()) +
         (onlyRepo.empty() ? " repositories" : " repository " + onlyRepo) +
         ", HEAD commits equal to the manifest)" + (wasRunning ? "; the forge started again" : ""));
  co_return Status::success();
}

}  // namespace foundationd::backup
