// backup verify. Contract in verify.hpp.
#include "controllers/backup/verify.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <unistd.h>

#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/bucket_section.hpp"
#include "controllers/backup/forge_section.hpp"
#include "controllers/backup/vault_section.hpp"
#include "controllers/vault/vault.hpp"
#include "state/wipe.hpp"

namespace foundationd::backup {

using namespace internal;

namespace {

constexpr const char* kRecordKind = "backup-verify";
constexpr const char* kLast = "last";
constexpr const char* kLastOk = "last-ok";
constexpr const char* kLabelVerify = "foundationd.verify";
constexpr const char* kLabelVerifyProject = "foundationd.verify-project";

std::int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::optional<VerifyRecord>> readOne(state::Store& store, std::string_view name) {
  auto text = store.appliedHash(kRecordKind, name);
  if (!text) return std::move(text).error();
  if (!text.value()) return std::optional<VerifyRecord>{};
  auto r = parseVerifyRecord(**text);
  if (!r) return std::move(r).error();
  return std::optional<VerifyRecord>(std::move(r).value());
}

Task<void> sleepMs(int ms) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(std::chrono::milliseconds(ms));
  co_await t.async_wait(boost::asio::use_awaitable);
}

}  // namespace

// --- the record ----------------------------------------------------------------

std::string toJson(const VerifyRecord& r) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : r.checks) {
    checks.push_back(
        {{"section", c.section}, {"ok", c.ok}, {"reason", c.reason}, {"detail", c.detail}});
  }
  return nlohmann::json{{"id", r.id},
                        {"started_ms", r.startedUnixMs},
                        {"finished_ms", r.finishedUnixMs},
                        {"ok", r.ok},
                        {"reason", r.reason},
                        {"error", r.error},
                        {"checks", std::move(checks)},
                        {"not_checked", r.notChecked},
                        {"by", r.by}}
      .dump();
}

Result<VerifyRecord> parseVerifyRecord(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error::make(ErrorCode::invalid_argument, "a backup verify record that is not JSON");
  }
  try {
    VerifyRecord r;
    r.id = j.value("id", "");
    r.startedUnixMs = j.value("started_ms", std::int64_t{0});
    r.finishedUnixMs = j.value("finished_ms", std::int64_t{0});
    r.ok = j.value("ok", false);
    r.reason = j.value("reason", "");
    r.error = j.value("error", "");
    r.by = j.value("by", "");
    if (j.contains("checks") && j["checks"].is_array()) {
      for (const auto& c : j["checks"]) {
        r.checks.push_back({c.value("section", ""), c.value("ok", false), c.value("reason", ""),
                            c.value("detail", "")});
      }
    }
    if (j.contains("not_checked") && j["not_checked"].is_array()) {
      r.notChecked = j["not_checked"].get<std::vector<std::string>>();
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Error::make(ErrorCode::invalid_argument,
                       std::string("a backup verify record with a field of the wrong type: ") +
                           e.what());
  }
}

Status recordVerify(state::Store& store, const VerifyRecord& r) {
  const std::string text = toJson(r);
  if (!r.id.empty()) {
    if (auto st = store.setAppliedHash(kRecordKind, r.id, text); !st) return st;
  }
  if (auto st = store.setAppliedHash(kRecordKind, kLast, text); !st) return st;
  if (r.ok) return store.setAppliedHash(kRecordKind, kLastOk, text);
  return Status::success();
}

Result<std::optional<VerifyRecord>> readVerify(state::Store& store, std::string_view id) {
  if (id.empty() || id == kLast || id == kLastOk) return std::optional<VerifyRecord>{};
  return readOne(store, id);
}

Result<VerifyHistory> readVerifyHistory(state::Store& store) {
  VerifyHistory h;
  auto last = readOne(store, kLast);
  if (!last) return std::move(last).error();
  h.last = std::move(last).value();
  auto ok = readOne(store, kLastOk);
  if (!ok) return std::move(ok).error();
  h.lastOk = std::move(ok).value();
  return h;
}

bool wasChosen(const VerifyRecord& r) {
  return !r.id.empty() && !(r.checks.size() == 1 && r.checks[0].section == "backup");
}

std::string verifiedColumn(const std::optional<VerifyRecord>& r) {
  if (!r) return "never";
  if (r->ok) return "verified";
  return "failed: " + (r->reason.empty() ? std::string("error") : r->reason);
}

std::optional<std::int64_t> verifyDueUnixMs(const RunHistory& backups,
                                            const VerifyHistory& verifies,
                                            std::optional<std::chrono::milliseconds> every,
                                            std::chrono::milliseconds retry) {
  if (!every || !backups.lastComplete) return std::nullopt;
  const auto& last = verifies.last;
  if (!last) return backups.lastComplete->finishedUnixMs;
  const auto wait = last->ok ? *every : std::min(*every, retry);
  return last->finishedUnixMs + static_cast<std::int64_t>(wait.count());
}

std::string scratchPrefix(std::string_view backupId, std::uint16_t random) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04x", static_cast<unsigned>(random));
  return "fd-verify-" + std::string(backupId) + "-" + hex;
}

std::optional<std::string> manifestImage(const Manifest& m, const std::string& container) {
  const auto it = m.images.find(container);
  if (it == m.images.end() || it->second.empty()) return std::nullopt;
  const std::string& v = it->second;
  const auto open = v.rfind(" (");
  if (open != std::string::npos && v.back() == ')') {
    const std::string id = v.substr(open + 2, v.size() - open - 3);
    if (id.rfind("sha256:", 0) == 0 && id.size() > 7) return id;
    return v.substr(0, open);
  }
  return v;
}

std::string tarArchive(const std::vector<TarEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    const bool dir = !e.path.empty() && e.path.back() == '/';
    char h[512] = {};
    std::snprintf(h, 100, "%s", e.path.c_str());
    std::snprintf(h + 100, 8, "%07o", e.mode & 07777u);
    std::snprintf(h + 108, 8, "%07o", 0u);
    std::snprintf(h + 116, 8, "%07o", 0u);
    std::snprintf(h + 124, 12, "%011llo",
                  static_cast<unsigned long long>(dir ? 0 : e.content.size()));
    std::snprintf(h + 136, 12, "%011llo", 0ull);
    std::memset(h + 148, ' ', 8);
    h[156] = dir ? '5' : '0';
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::snprintf(h + 265, 32, "root");
    std::snprintf(h + 297, 32, "root");
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);  // six digits, NUL, then the space kept
    h[155] = ' ';
    out.append(h, sizeof h);
    if (!dir) {
      out += e.content;
      out.append((512 - e.content.size() % 512) % 512, '\0');
    }
  }
  out.append(1024, '\0');
  return out;
}

// --- the verify --------------------------------------------------------------------

namespace {

class Verifier {
 public:
  Verifier(BackupContext& ctx, Restic& repo, const VerifyRequest& req, const Report& report,
           VerifyRecord& r)
      : ctx_(ctx), repo_(repo), req_(req), report_(report), r_(r) {}

  Task<void> run() {
    if (auto st = co_await repo_.check(false); !st) {
      fail("repository", "integrity", st.error().message);
      co_return;
    }
    report_("the backup repository " + repo_.repository().display + " passed restic check");
    auto list = co_await listBackups(repo_);
    if (!list) {
      fail("repository", "integrity", list.error().message);
      co_return;
    }
    auto picked = pickBackup(*list, req_.backupId, repo_.repository().display);
    if (!picked) {
      r_.id = req_.backupId;
      fail("backup", "setup",
           picked.error().message +
               (picked.error().code == ErrorCode::conflict ? "; only a complete backup is verified"
                                                           : ""));
      co_return;
    }
    const BackupEntry& chosen = **picked;
    r_.id = chosen.id;
    m_ = *chosen.manifest;
    report_("verifying backup " + m_.id + " (" + m_.createdAt + ")");
    // The sections with their snapshots in THIS repository (an offsite
    // copy's ids differ from the manifest's).
    for (const auto& s : m_.sections) {
      const auto here = chosen.snapshotOf.find(s.name);
      if (here == chosen.snapshotOf.end()) {
        fail(s.name, "integrity", "the manifest has it but " + repo_.repository().display +
                                      " has no snapshot of it");
        co_return;
      }
      sections_.push_back(s);
      sections_.back().snapshot = here->second;
    }
    // 1. Every section read back and compared with the manifest.
    std::uint64_t bytes = 0;
    for (const auto& s : sections_) {
      if (s.kind == kBucketKind) {
        // The section's sha256 is its inventory's and its size the objects':
        // read back into a private directory (removed with `stage`), every
        // object's size and SHA-256 compared with the inventory.
        auto stage = co_await stageBucket(ctx_, repo_, s);
        if (!stage) {
          fail(s.name, "integrity", stage.error().message);
          co_return;
        }
        bytes += s.bytes;
        pass(s.name, std::to_string(s.objects.size()) + " objects read back, each one's size "
                     "and SHA-256 equal to the backup's inventory (not put into a scratch S3 "
                     "server by this version)");
        continue;
      }
      if (auto st = co_await verifySection(repo_, s); !st) {
        fail(s.name, "integrity", st.error().message);
        co_return;
      }
      bytes += s.bytes;
    }
    pass("sections", std::to_string(sections_.size()) + " sections read back (" +
                         std::to_string(bytes) + " bytes), sizes and SHA-256 equal to the "
                         "manifest");
    // 2. The scratch network, then each section restored into its container.
    std::uint16_t rnd = 0;
    randombytes_buf(&rnd, sizeof rnd);
    prefix_ = scratchPrefix(m_.id, rnd);
    std::optional<Error> exception;
    try {
      co_await removeLeftovers();
      co_await restoreAll();
    } catch (const std::exception& e) {
      exception = Error::make(ErrorCode::internal, e.what());
    }
    co_await cleanup();
    if (exception) fail("verify", "setup", exception->message);
  }

 private:
  void pass(const std::string& section, const std::string& detail) {
    r_.checks.push_back({section, true, "", detail});
    report_(section + ": ok: " + detail);
  }
  void fail(const std::string& section, const std::string& reason, const std::string& detail) {
    r_.checks.push_back({section, false, reason, detail});
    if (r_.error.empty()) {
      r_.error = section + ": " + detail;
      r_.reason = reason;
    }
    report_(section + ": FAILED (" + reason + "): " + detail);
  }

  docker::Labels labels() const {
    docker::Labels l;
    l[kLabelVerify] = m_.id;
    l[kLabelVerifyProject] = ctx_.spec.project;
    return l;
  }

  // A scratch container of a verify killed before its cleanup.
  Task<void> removeLeftovers() {
    docker::LabelFilter f;
    f[kLabelVerifyProject] = ctx_.spec.project;
    auto cs = co_await ctx_.docker.listContainers(f);
    if (cs) {
      for (const auto& c : *cs) {
        if (c.name.rfind("fd-verify-", 0) != 0) continue;
        (void)co_await ctx_.docker.removeScratchContainer(c.name);
        report_("removed " + c.name + ", left by an interrupted verify");
      }
    }
    auto ns = co_await ctx_.docker.listNetworks(f);
    if (ns) {
      for (const auto& n : *ns) {
        if (n.name.rfind("fd-verify-", 0) != 0) continue;
        (void)co_await ctx_.docker.removeNetwork(n.name);
        report_("removed the network " + n.name + ", left by an interrupted verify");
      }
    }
  }

  Task<void> restoreAll() {
    const std::string net = prefix_;
    nlohmann::json body = {{"Name", net},
                           {"Driver", "bridge"},
                           {"Internal", true},
                           {"CheckDuplicate", true},
                           {"Labels", labels()}};
    auto created = co_await ctx_.docker.createNetwork(body);
    if (!created) {
      fail("verify", "setup", "creating the scratch network " + net + ": " +
                                  created.error().message);
      co_return;
    }
    network_ = net;
    report_("scratch network " + net + " (internal: no route out, nothing published)");
    std::vector<std::string> instances;
    for (const auto& s : sections_) {
      if (s.kind == "postgres-globals" || s.kind == "postgres-database") {
        if (std::find(instances.begin(), instances.end(), s.instance) == instances.end()) {
          instances.push_back(s.instance);
        }
      }
    }
    for (const auto& inst : instances) co_await postgres(inst);
    for (const auto& s : sections_) {
      if (s.kind == kForgeKind) co_await forge(s);
    }
    for (const auto& s : sections_) {
      if (s.kind == "vault-snapshot") co_await vault(s);
    }
    r_.notChecked.push_back("state: read back and its SHA-256 compared; opened only for the "
                            "Vault keys");
    for (const auto& n : m_.notIncluded) r_.notChecked.push_back("not in the backup: " + n);
  }

  // An image the verify can run: the manifest's (by id), else `fallbackRef`.
  Task<Result<std::string>> imageFor(const std::string& container) {
    const auto recorded = manifestImage(m_, container);
    if (recorded) {
      auto present = co_await ctx_.docker.imagePresent(*recorded);
      if (present && *present) co_return *recorded;
    }
    // The image the container runs now (the manifest's may be gone).
    auto live = co_await ctx_.docker.inspectContainer(container);
    if (live) {
      const std::string id = live->raw.value("Image", "");
      if (!id.empty()) co_return id;
    }
    co_return Error::make(ErrorCode::not_found,
                          "no image to run: the manifest records " +
                              (recorded ? *recorded : std::string("none")) + " for " + container +
                              " and it is not on this host");
  }

  // `tar`, when not empty, is extracted at / before the container starts.
  Task<Result<std::string>> startScratch(const std::string& role, nlohmann::json body,
                                         std::string tar = std::string()) {
    const std::string name = prefix_ + "-" + role;
    body["Labels"] = labels();
    auto id = co_await ctx_.docker.createContainer(name, body);
    if (!id) {
      co_return Error::make(id.error().code, "creating the scratch container " + name + ": " +
                                                 id.error().message);
    }
    containers_.push_back(name);
    if (!tar.empty()) {
      if (auto st = co_await ctx_.docker.putArchive(name, "/", std::move(tar)); !st) {
        co_return Error::make(st.error().code, st.error().message);
      }
    }
    if (auto st = co_await ctx_.docker.startContainer(name); !st) {
      co_return Error::make(st.error().code, "starting the scratch container " + name + ": " +
                                                 st.error().message);
    }
    co_return name;
  }

  Task<Status> waitPostgres(const std::string& name, const std::string& superuser) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    // Ready once the server is the container's main process (an image's
    // entrypoint may run a temporary server while it initialises) and
    // answers.
    const std::vector<std::string> probe{
        "sh", "-c",
        "pg_isready -q -U \"$1\" -d postgres && [ \"$(head -c 8 /proc/1/cmdline)\" = postgres ]",
        "sh", superuser};
    for (;;) {
      auto c = co_await ctx_.docker.inspectContainer(name);
      if (!c) co_return c.error();
      if (!c->running) {
        auto logs = co_await ctx_.docker.containerLogs(name, 20);
        co_return Error::make(ErrorCode::unavailable,
                              "the scratch PostgreSQL " + name + " stopped (" + c->state +
                                  ", exit " + std::to_string(c->exitCode) + "): " +
                                  firstLines(logs ? *logs : std::string()));
      }
      docker::ExecOptions eo;
      eo.user = ctx_.execUser;
      eo.timeout = std::chrono::seconds(20);
      auto r = co_await ctx_.docker.exec(name, probe, eo);
      if (r && r->exitCode == 0) co_return Status::success();
      if (std::chrono::steady_clock::now() > until) {
        co_return Error::make(ErrorCode::timeout,
                              "the scratch PostgreSQL " + name + " is not ready after 3 minutes");
      }
      co_await sleepMs(500);
    }
  }

  Task<void> postgres(const std::string& instance) {
    const std::string section = "postgres/" + instance;
    config::PostgresSpec pg;
    const auto spec = ctx_.spec.postgres.find(instance);
    if (spec == ctx_.spec.postgres.end()) {
      fail(section, "setup", "the spec has no [postgres." + instance +
                                 "]: its container (and so its image) is not known");
      co_return;
    }
    pg = spec->second;
    auto image = co_await imageFor(pg.container);
    if (!image) {
      fail(section, "setup", image.error().message);
      co_return;
    }
    // A throwaway superuser password: the scratch server needs one to
    // initialise; nothing connects with it (psql runs inside, by peer).
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    char hex[sizeof raw * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    nlohmann::json body = {
        {"Image", *image},
        {"Env", {"POSTGRES_USER=" + pg.superuser, std::string("POSTGRES_PASSWORD=") + hex}},
        {"HostConfig", {{"NetworkMode", network_}}}};
    sodium_memzero(hex, sizeof hex);
    auto name = co_await startScratch("pg-" + instance, body);
    if (!name) {
      fail(section, "setup", name.error().message);
      co_return;
    }
    if (auto st = co_await waitPostgres(*name, pg.superuser); !st) {
      fail(section, "setup", st.error().message);
      co_return;
    }
    report_(section + ": scratch PostgreSQL " + *name + " (" + *image + ") is up");
    pg.container = *name;
    std::size_t tables = 0;
    std::int64_t rows = 0;
    std::size_t dbs = 0;
    for (const auto& s : sections_) {
      if (s.instance != instance || s.kind != "postgres-globals") continue;
      auto errors = co_await restoreGlobals(ctx_, repo_, pg, s);
      if (!errors) {
        fail(section, "restore", errors.error().message);
        co_return;
      }
    }
    for (const auto& s : sections_) {
      if (s.instance != instance || s.kind != "postgres-database") continue;
      auto t = co_await inspectDatabase(ctx_, pg, s.database);
      if (!t) {
        fail(section, "restore", s.name + ": " + t.error().message);
        co_return;
      }
      if (auto st = co_await restoreDatabase(ctx_, repo_, pg, s, *t); !st) {
        fail(section, "restore", st.error().message);
        co_return;
      }
      auto counts = co_await rowCounts(ctx_, pg, s.database);
      if (!counts) {
        fail(section, "restore", s.name + ": " + counts.error().message);
        co_return;
      }
      const std::string diff = rowCountDiff(s.rowCounts, *counts, true);
      if (!diff.empty()) {
        fail(section, "mismatch", s.name + ": the row counts differ from the manifest: " + diff);
        co_return;
      }
      ++dbs;
      tables += s.rowCounts.size();
      for (const auto& [table, n] : s.rowCounts) rows += n;
    }
    pass(section, "globals and " + std::to_string(dbs) + " databases restored; " +
                      std::to_string(tables) + " tables, " + std::to_string(rows) +
                      " rows, every row count equal to the manifest");
  }

  Task<void> forge(const Section& s) {
    const std::string section = s.name;
    if (!ctx_.spec.forgejo) {
      fail(section, "setup", "the spec has no [forgejo]: the forge's image is not known");
      co_return;
    }
    auto image = co_await imageFor(ctx_.spec.forgejo->container);
    if (!image) {
      fail(section, "setup", image.error().message);
      co_return;
    }
    // Only git and tar run in it: no network at all.
    nlohmann::json body = {{"Image", *image},
                           {"Entrypoint", {"sleep"}},
                           {"Cmd", {"86400"}},
                           {"User", "0:0"},
                           {"NetworkDisabled", true},
                           {"HostConfig", {{"NetworkMode", "none"}}}};
    auto name = co_await startScratch("forge", body);
    if (!name) {
      fail(section, "setup", name.error().message);
      co_return;
    }
    std::vector<std::string> tar{"tar", "-x", "-f", "-", "-C", "/"};
    auto r = co_await execFromSection(ctx_, repo_, s, *name, tar, "0");
    if (!r) {
      fail(section, "restore", r.error().message);
      co_return;
    }
    if (r->exitCode != 0) {
      fail(section, "restore", "tar failed (exit " + std::to_string(r->exitCode) + "): " +
                                   firstLines(r->stderrText));
      co_return;
    }
    Section observed;
    if (auto st = co_await listForgeRepos(ctx_, *name, s.mounts, observed); !st) {
      fail(section, "restore", st.error().message);
      co_return;
    }
    std::vector<std::string> names;
    for (const auto& [repo, head] : s.repoHeads) names.push_back(repo);
    const std::string diff = headDiff(s.repoHeads, observed.repoHeads, names);
    if (!diff.empty()) {
      fail(section, "mismatch", "the repositories differ from the manifest: " + diff);
      co_return;
    }
    for (const auto& repo : names) {
      const auto path = s.repoPaths.find(repo);
      if (path == s.repoPaths.end()) continue;
      std::vector<std::string> fsck{"git", "-c", "safe.directory=*", "--git-dir=/" + path->second,
                                    "fsck", "--no-progress", "--no-dangling"};
      auto out = co_await forgeExec(ctx_, *name, fsck);
      if (!out) {
        fail(section, "integrity", repo + ": git fsck: " + out.error().message);
        co_return;
      }
    }
    pass(section, std::to_string(names.size()) + " repositories, HEAD commits equal to the "
                                                 "manifest, git fsck clean");
  }

  // The Vault init material of the backup's own state section: read back
  // into a private directory beside the state (removed at once), its
  // SHA-256 checked, opened with the daemon's data key.
  Task<Result<vault::InitMaterial>> backupStateKeys(const Section& s) {
    namespace fs = std::filesystem;
    std::string tmpl = (fs::path(ctx_.stateDir) / "verify-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      co_return Error::make(ErrorCode::io, "cannot make a temporary directory in " +
                                               ctx_.stateDir);
    }
    struct Cleanup {
      fs::path dir;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    } cleanup{tmpl};
    const fs::path file = cleanup.dir / "state.db";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) co_return Error::make(ErrorCode::io, "cannot create " + file.string());
    Sha256 sha;
    bool written = true;
    auto st = co_await repo_.dump(s.snapshot, s.path, [&](std::string_view piece) -> Task<Status> {
      sha.update(piece);
      while (!piece.empty()) {
        const ssize_t n = ::write(fd, piece.data(), piece.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          written = false;
          co_return Error::make(ErrorCode::io, "writing " + file.string());
        }
        piece.remove_prefix(static_cast<std::size_t>(n));
      }
      co_return Status::success();
    });
    ::close(fd);
    if (!st) co_return st.error();
    if (!written || sha.hex() != s.sha256) {
      co_return Error::make(ErrorCode::protocol, "the state section read back is not the "
                                                 "manifest's");
    }
    auto store = state::Store::open(file);
    if (!store) co_return store.error();
    auto m = vault::loadInitMaterial(**store, *ctx_.key);
    if (!m) co_return std::move(m).error();
    co_return std::move(m).value();
  }

  Task<void> vault(const Section& s) {
    const std::string section = "vault";
    if (!ctx_.spec.vault) {
      fail(section, "setup", "the spec has no [vault]: the OpenBao image is not known");
      co_return;
    }
    if (!ctx_.key) {
      fail(section, "setup", "no unlocked state: the Vault keys cannot be read");
      co_return;
    }
    // The snapshot, read back again (its SHA-256 checked), held in memory.
    std::string snapshot;
    Sha256 sha;
    auto st = co_await repo_.dump(s.snapshot, s.path, [&](std::string_view piece) -> Task<Status> {
      sha.update(piece);
      snapshot += piece;
      co_return Status::success();
    });
    if (!st) {
      fail(section, "integrity", st.error().message);
      co_return;
    }
    if (sha.hex() != s.sha256) {
      fail(section, "integrity", "the snapshot read back is not the manifest's");
      co_return;
    }
    // The unseal keys and root token: the backup's own state's, else the
    // current state's (said so).
    std::vector<std::string> unsealKeys;
    std::string rootToken;
    int shares = 0;
    int threshold = 0;
    struct Wipe {
      std::vector<std::string>& keys;
      std::string& token;
      ~Wipe() {
        for (auto& k : keys) state::wipe(k);
        state::wipe(token);
      }
    } wipe{unsealKeys, rootToken};
    std::string from = "the backup's own state";
    std::string why = "the backup has no state section";
    for (const auto& st2 : sections_) {
      if (st2.kind != "state") continue;
      auto m = co_await backupStateKeys(st2);
      if (m) {
        unsealKeys = m->keysBase64;
        rootToken = m->rootToken;
        shares = m->shares;
        threshold = m->threshold;
      } else {
        why = m.error().message;
      }
    }
    if (rootToken.empty()) {
      auto m = vault::loadInitMaterial(ctx_.store, *ctx_.key);
      if (!m) {
        fail(section, "setup", "no Vault keys: the backup's state: " + why +
                                   "; the current state: " + m.error().message);
        co_return;
      }
      unsealKeys = m->keysBase64;
      rootToken = m->rootToken;
      shares = m->shares;
      threshold = m->threshold;
      from = "the CURRENT state (the backup's own: " + why + ")";
    }
    auto image = co_await imageFor(ctx_.spec.vault->container);
    if (!image) {
      fail(section, "setup", image.error().message);
      co_return;
    }
    nlohmann::json body = {{"Image", *image},
                           {"Cmd", {"server", "-config=/fd-verify/openbao.hcl"}},
                           {"HostConfig", {{"NetworkMode", network_}}}};
    std::vector<TarEntry> files;
    files.push_back({"fd-verify/", "", 0755});
    files.push_back({"fd-verify/data/", "", 0777});  // whatever user the image runs as
    files.push_back({"fd-verify/openbao.hcl", scratchVaultConfig("/fd-verify/data"), 0644});
    std::string tar = tarArchive(files);
    auto name = co_await startScratch("vault", body, std::move(tar));
    if (!name) {
      fail(section, "setup", name.error().message);
      co_return;
    }
    auto c = co_await ctx_.docker.inspectContainer(*name);
    std::string ip;
    if (c) {
      const auto& nets = c->raw["NetworkSettings"]["Networks"];
      if (nets.is_object() && nets.contains(network_) && nets[network_].is_object()) {
        ip = nets[network_].value("IPAddress", "");
      }
    }
    if (ip.empty()) {
      fail(section, "setup", "the scratch OpenBao " + *name + " has no address on " + network_ +
                                 (c ? std::string() : ": " + c.error().message));
      co_return;
    }
    report_(section + ": scratch OpenBao " + *name + " (" + *image + ") at " + ip +
            " on the internal network");
    ScratchVaultExpect expect;
    expect.kvMount = s.canaryMount.empty() ? ctx_.spec.vault->kvMount : s.canaryMount;
    expect.canaryPath = s.canaryPath;
    // The seal configuration of the keys (the state records it; else the spec's).
    expect.shares = shares > 0 ? shares : ctx_.spec.vault->keyShares;
    expect.threshold = threshold > 0 ? threshold : ctx_.spec.vault->keyThreshold;
    expect.canarySha256 = s.canarySha256;
    const auto n = s.counts.find("secrets");
    if (n != s.counts.end()) expect.keys = n->second;
    // Blocking (libcurl), as the backup's own Vault calls: the CLI's thread.
    const ScratchVaultOutcome out =
        checkScratchVault("http://" + ip + ":8200", snapshot, unsealKeys, rootToken, expect,
                          report_);
    if (!out.ok) {
      std::string detail = out.detail;
      if (out.reason == "setup") {
        auto logs = co_await ctx_.docker.containerLogs(*name, 20);
        if (logs) detail += " (its log: " + firstLines(*logs) + ")";
      }
      fail(section, out.reason, detail + " [keys from " + from + "]");
      co_return;
    }
    pass(section, out.detail + " [keys from " + from + "]");
    if (s.canaryPath.empty()) {
      r_.notChecked.push_back("vault canary: backup " + m_.id + " has none (taken before "
                              "foundationd wrote one)");
    }
  }

  // Everything this verify created, whatever happened; a failure to remove
  // is a failed verify (something of ours is left behind).
  Task<void> cleanup() {
    std::string left;
    for (const auto& c : containers_) {
      auto st = co_await ctx_.docker.removeScratchContainer(c);
      if (!st && st.error().code != ErrorCode::not_found) {
        left += (left.empty() ? "" : ", ") + c + " (" + st.error().message + ")";
      }
    }
    if (!network_.empty()) {
      auto st = co_await ctx_.docker.removeNetwork(network_);
      if (!st && st.error().code != ErrorCode::not_found) {
        left += (left.empty() ? "" : ", ") + network_ + " (" + st.error().message + ")";
      }
    }
    if (!left.empty()) {
      fail("cleanup", "cleanup", "not removed: " + left);
    } else if (!containers_.empty() || !network_.empty()) {
      report_("removed the scratch containers (with their anonymous volumes) and network " +
              prefix_ + "-*");
    }
  }

  BackupContext& ctx_;
  Restic& repo_;
  const VerifyRequest& req_;
  const Report& report_;
  VerifyRecord& r_;
  Manifest m_;
  std::vector<Section> sections_;
  std::string prefix_;
  std::string network_;
  std::vector<std::string> containers_;
};

}  // namespace

Task<VerifyRecord> verifyBackup(BackupContext& ctx, Restic& repo, const VerifyRequest& request,
                                const Report& report, std::string by) {
  VerifyRecord r;
  r.by = std::move(by);
  r.startedUnixMs = nowUnixMs();
  Verifier v(ctx, repo, request, report, r);
  co_await v.run();
  r.ok = r.error.empty();
  if (r.ok && r.checks.empty()) {
    r.ok = false;
    r.reason = "setup";
    r.error = "nothing was checked";
  }
  r.finishedUnixMs = nowUnixMs();
  co_return r;
}

}  // namespace foundationd::backup
