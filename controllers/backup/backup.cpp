// takeBackup and listBackups; the restore is in restore.cpp. Contract in
// backup.hpp.
#include "controllers/backup/backup.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <sodium.h>
#include <stdlib.h>

#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/bucket_section.hpp"
#include "controllers/backup/forge_section.hpp"
#include "controllers/backup/vault_section.hpp"
#include "controllers/credentials/generators.hpp"
#include "controllers/docker/container_config.hpp"

namespace foundationd::backup {

namespace fs = std::filesystem;

// --- shared with restore.cpp -----------------------------------------------

namespace internal {

Sha256::Sha256() { crypto_hash_sha256_init(&state_); }
void Sha256::update(std::string_view bytes) {
  crypto_hash_sha256_update(&state_, reinterpret_cast<const unsigned char*>(bytes.data()),
                            bytes.size());
  bytes_ += bytes.size();
}
std::string Sha256::hex() {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state_, out);
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

std::vector<std::string> psqlArgv(const std::string& superuser, const std::string& db) {
  return {"psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", superuser, "-d", db};
}

Task<Result<std::string>> psql(BackupContext& ctx, const config::PostgresSpec& pg,
                               const std::string& db, std::string script) {
  docker::ExecOptions eo;
  eo.stdinData = std::move(script);
  eo.user = ctx.execUser;
  eo.timeout = std::chrono::minutes(10);
  auto r = co_await ctx.docker.exec(pg.container, psqlArgv(pg.superuser, db), eo);
  if (!r) co_return std::move(r).error();
  if (r->exitCode != 0) {
    co_return Error::make(ErrorCode::peer, "psql in container " + pg.container + " (database " +
                                               db + ") failed (exit " +
                                               std::to_string(r->exitCode) + "): " +
                                               firstLines(r->stderrText));
  }
  co_return std::move(r->stdoutText);
}

std::string firstLines(std::string_view text) {
  std::string out(text.substr(0, 600));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (auto& c : out) {
    if (c == '\n') c = ' ';
  }
  return out.empty() ? "no message" : out;
}

Task<Result<std::vector<std::string>>> databases(BackupContext& ctx,
                                                 const config::PostgresSpec& pg) {
  auto out = co_await psql(ctx, pg, "postgres",
                           "SELECT datname FROM pg_database WHERE datallowconn AND NOT "
                           "datistemplate ORDER BY datname;\n");
  if (!out) co_return std::move(out).error();
  std::vector<std::string> names;
  std::size_t pos = 0;
  while (pos < out->size()) {
    std::size_t nl = out->find('\n', pos);
    if (nl == std::string::npos) nl = out->size();
    if (nl > pos) names.push_back(out->substr(pos, nl - pos));
    pos = nl + 1;
  }
  co_return names;
}

const char* kUserRelations =
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

Task<Result<std::map<std::string, std::int64_t>>> rowCounts(BackupContext& ctx,
                                                            const config::PostgresSpec& pg,
                                                            const std::string& db) {
  // One SELECT per table, generated and run by psql's \gexec.
  auto out = co_await psql(ctx, pg, db,
                           std::string("SELECT format('SELECT %L, count(*) FROM %I.%I', "
                                       "n.nspname || '.' || c.relname, n.nspname, c.relname) ") +
                               kUserRelations + " ORDER BY 1 \\gexec\n");
  if (!out) co_return std::move(out).error();
  co_return parseRowCounts(*out);
}

std::string sectionPath(const Section& s) {
  if (s.kind == "postgres-globals") return "/postgres/" + s.instance + "/globals.sql";
  if (s.kind == "postgres-database") return "/postgres/" + s.instance + "/db/" + s.database + ".dump";
  if (s.kind == "forge-data") return "/forge/data.tar";
  if (s.kind == "vault-snapshot") return "/vault/raft.snap";
  if (s.kind == "bucket-objects") return "/inventory.json";
  return "/state/state.db";
}

}  // namespace internal

using namespace internal;

// --- the repository and its password ---------------------------------------

Result<Repository> repositoryFor(const config::Spec& spec, const config::BackupTarget& target,
                                 const docker::SecretResolver& secrets) {
  Repository repo;
  const auto keys = [&](const config::Value& access, const config::Value& secret,
                        const std::string& where, std::string_view region) -> Status {
    config::CredentialRef missing;
    auto a = docker::resolveSecrets(access, secrets, &missing);
    if (!a) {
      return Error::make(ErrorCode::unavailable, "the access key of " + where +
                                                     " is not available (credential " +
                                                     missing.name + "." + missing.field + ")");
    }
    auto s = docker::resolveSecrets(secret, secrets, &missing);
    if (!s) {
      return Error::make(ErrorCode::unavailable, "the secret key of " + where +
                                                     " is not available (credential " +
                                                     missing.name + "." + missing.field + ")");
    }
    repo.env.emplace_back("AWS_ACCESS_KEY_ID", *a);
    repo.env.emplace_back("AWS_SECRET_ACCESS_KEY", *s);
    setRcloneForm(repo, *a, *s, region);
    sodium_memzero(s->data(), s->size());
    return Status::success();
  };
  switch (target.kind) {
    case config::BackupTarget::Kind::path:
      repo.location = target.path;
      repo.display = target.path;
      break;
    case config::BackupTarget::Kind::bucket: {
      const auto b = spec.buckets.find(target.bucket);
      if (b == spec.buckets.end()) {
        return Error::make(ErrorCode::invalid_argument, "no bucket " + target.bucket);
      }
      const auto s3 = spec.s3.find(b->second.s3);
      if (s3 == spec.s3.end()) {
        return Error::make(ErrorCode::invalid_argument, "no s3 server " + b->second.s3);
      }
      std::string endpoint = s3->second.endpoint;
      while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
      repo.location = "s3:" + endpoint + "/" + target.bucket +
                      (target.prefix.empty() ? "" : "/" + target.prefix);
      repo.display = repo.location;
      if (auto st = keys(s3->second.accessKey, s3->second.secretKey, "[s3." + s3->first + "]",
                         s3->second.region);
          !st) {
        return st.error();
      }
      break;
    }
    case config::BackupTarget::Kind::repository:
      repo.location = target.repository;
      repo.display = target.repository;
      if (target.accessKey && target.secretKey) {
        if (auto st = keys(*target.accessKey, *target.secretKey,
                           "the backup target " + target.repository, "us-east-1");
            !st) {
          return st.error();
        }
      }
      break;
  }
  return repo;
}

Result<state::SecretBytes> resticPassword(state::Store& store, const state::UnlockedKey& key,
                                          bool create) {
  auto info = store.currentSecretInfo(kSecretKind, kSecretName, kSecretField);
  if (!info) return std::move(info).error();
  if (!info.value() && create) {
    config::Generator g;
    g.kind = config::Generator::Kind::base64url;
    g.bytes = 32;
    auto value = credentials::generate(g);
    // Durable before restic ever sees it: a repository initialised with a
    // password the state lost would be unreadable.
    auto put = store.putSecret(key, kSecretKind, kSecretName, kSecretField, value.view(),
                               R"({"generator":"base64url","bytes":32,"use":"restic repository"})");
    if (!put) return std::move(put).error();
    (void)store.appendAudit("backup.password_generated", "{}");
  }
  auto s = store.currentSecret(key, kSecretKind, kSecretName, kSecretField);
  if (!s) {
    if (s.error().code == ErrorCode::not_found) {
      return Error::make(ErrorCode::not_found,
                         "this state has no backup repository password: no backup was ever "
                         "taken with it (`foundationd backup` makes one)");
    }
    return std::move(s).error();
  }
  return std::move(s->value);
}

// --- taking a backup --------------------------------------------------------

std::string nowRfc3339() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

std::string humanBytes(std::uint64_t n) {
  char buf[32];
  if (n < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else if (n < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else if (n < (1u << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  return buf;
}

class Taker {
 public:
  Taker(BackupContext& ctx, Restic& repo, const Report& report) : ctx_(ctx), repo_(repo), report_(report) {}

  Task<Result<Manifest>> run() {
    std::uint16_t rnd = 0;
    randombytes_buf(&rnd, sizeof rnd);
    m_.id = newBackupId(std::time(nullptr), rnd);
    m_.createdAt = nowRfc3339();
    m_.project = ctx_.spec.project;
    m_.foundationdVersion = ctx_.foundationdVersion;
    m_.reason = ctx_.reason;
    if (auto revs = ctx_.store.specRevisions(50)) {
      for (const auto& r : *revs) {
        if (r.status == state::SpecRevisionStatus::applied) {
          m_.specRevision = r.revision;
          break;
        }
      }
    }
    docker::LabelFilter mine;
    mine[docker::kLabelProject] = ctx_.spec.project;
    auto running = co_await ctx_.docker.listContainers(mine);
    if (running) {
      for (const auto& c : *running) m_.images[c.name] = c.image + " (" + c.imageId + ")";
    }
    report_("backup " + m_.id + " to " + repo_.repository().display);

    for (const auto& [name, pg] : ctx_.spec.postgres) {
      if (auto st = co_await postgresInstance(pg); !st) co_return st.error();
    }
    // The forge's files after its database (dumped with its [postgres.*]
    // above): every repository the database references is then present.
    if (ctx_.spec.forgejo) {
      auto forge = co_await backupForgeData(ctx_, repo_, tags(kForgeSection), host(), report_);
      if (!forge) co_return std::move(forge).error();
      addSection(std::move(*forge));
    }
    // The buckets' objects (bucket_section.hpp), each its own section.
    const auto buckets = protectedBuckets(ctx_.spec);
    if (!buckets.empty() && !ctx_.secrets) {
      m_.notIncluded.push_back("buckets: not backed up without the unlocked state (docs/dr.md)");
    } else {
      for (const auto& b : buckets) {
        auto section = co_await backupBucket(ctx_, repo_, b, tags(bucketSection(b)), host(), report_);
        if (!section) co_return std::move(section).error();
        addSection(std::move(*section));
      }
    }
    if (auto st = co_await stateSection(); !st) co_return st.error();
    if (ctx_.spec.vault && ctx_.key) {
      if (auto st = co_await vaultSection(); !st) co_return st.error();
    } else if (ctx_.spec.vault) {
      m_.notIncluded.push_back("vault: not backed up without the unlocked state (docs/dr.md)");
    }
    // The manifest, last: its presence is what makes the backup complete.
    const std::string text = toJson(m_);
    auto done = co_await repo_.backupStdin(
        kManifestPath, tags(kManifestSection), host(),
        [&](ChildProcess& child) -> Task<Status> { co_return co_await child.write(text); });
    if (!done) co_return std::move(done).error();
    report_("manifest: " + std::to_string(m_.sections.size()) + " sections, " +
            humanBytes(m_.totalBytes()) + " (snapshot " + done->snapshotId + ")");
    co_return m_;
  }

 private:
  std::vector<std::string> tags(const std::string& section) const {
    return {kTag, std::string(kBackupTagKey) + "=" + m_.id,
            std::string(kSectionTagKey) + "=" + section};
  }
  std::string host() const { return "foundationd-" + ctx_.spec.project; }

  // A finished section into the manifest, with how long it took since the
  // one before it finished (or since the backup started).
  void addSection(Section s) {
    const auto now = std::chrono::steady_clock::now();
    s.seconds = std::chrono::duration<double>(now - mark_).count();
    mark_ = now;
    m_.sections.push_back(std::move(s));
  }

  // `cmd` run in `container`, its stdout streamed into restic as `s.path`.
  Task<Status> execSection(Section& s, const std::string& container,
                           std::vector<std::string> cmd) {
    s.path = sectionPath(s);
    Sha256 sha;
    std::optional<Error> producerError;
    auto done = co_await repo_.backupStdin(
        s.path, tags(s.name), host(), [&](ChildProcess& child) -> Task<Status> {
          docker::ExecOptions eo;
          eo.user = ctx_.execUser;
          eo.timeout = ctx_.execTimeout;
          eo.maxOutput = 1 << 20;  // stderr alone
          eo.stdoutSink = [&](std::string_view piece) -> Task<Status> {
            sha.update(piece);
            co_return co_await child.write(piece);
          };
          auto r = co_await ctx_.docker.exec(container, cmd, eo);
          if (!r) co_return std::move(r).error();
          if (r->exitCode != 0) {
            co_return Error::make(ErrorCode::peer, cmd.front() + " in container " + container +
                                                       " failed (exit " +
                                                       std::to_string(r->exitCode) +
                                                       "): " + firstLines(r->stderrText));
          }
          co_return Status::success();
        });
    if (!done) co_return Error::make(done.error().code, s.name + ": " + done.error().message);
    s.bytes = sha.bytes();
    s.sha256 = sha.hex();
    s.snapshot = done->snapshotId;
    report_(s.name + ": " + humanBytes(s.bytes) + " (snapshot " + s.snapshot + ")");
    addSection(s);
    co_return Status::success();
  }

  Task<Status> postgresInstance(const config::PostgresSpec& pg) {
    auto dbs = co_await databases(ctx_, pg);
    if (!dbs) {
      co_return Error::make(dbs.error().code, "postgres/" + pg.name + ": cannot list its "
                                              "databases: " + dbs.error().message);
    }
    Section globals;
    globals.name = "postgres/" + pg.name + "/globals";
    globals.kind = "postgres-globals";
    globals.instance = pg.name;
    std::vector<std::string> dumpall{"pg_dumpall", "--globals-only", "-U", pg.superuser};
    if (auto st = co_await execSection(globals, pg.container, std::move(dumpall)); !st) {
      co_return st;
    }
    for (const auto& db : *dbs) {
      Section s;
      s.name = "postgres/" + pg.name + "/db/" + db;
      s.kind = "postgres-database";
      s.instance = pg.name;
      s.database = db;
      auto counts = co_await rowCounts(ctx_, pg, db);
      if (!counts) co_return Error::make(counts.error().code, s.name + ": " + counts.error().message);
      s.rowCounts = std::move(*counts);
      std::vector<std::string> dump{"pg_dump", "-Fc", "-U", pg.superuser, "-d", db};
      if (auto st = co_await execSection(s, pg.container, std::move(dump)); !st) co_return st;
    }
    co_return Status::success();
  }

  // Vault's raft snapshot (vault_section.hpp), held in memory, into restic.
  Task<Status> vaultSection() {
    auto snap = takeVaultSnapshot(*ctx_.spec.vault, ctx_.store, *ctx_.key, m_.id);
    if (!snap) co_return snap.error();
    Section s;
    s.name = "vault";
    s.kind = "vault-snapshot";
    s.path = sectionPath(s);
    s.counts["secrets"] = snap->keys;
    s.canaryMount = ctx_.spec.vault->kvMount;
    s.canaryPath = snap->canaryPath;
    s.canarySha256 = snap->canarySha256;
    Sha256 sha;
    sha.update(snap->bytes);
    auto done = co_await repo_.backupStdin(
        s.path, tags(s.name), host(),
        [&](ChildProcess& child) -> Task<Status> { co_return co_await child.write(snap->bytes); });
    if (!done) co_return Error::make(done.error().code, "vault: " + done.error().message);
    s.bytes = sha.bytes();
    s.sha256 = sha.hex();
    s.snapshot = done->snapshotId;
    report_("vault: " + humanBytes(s.bytes) + ", " + std::to_string(snap->keys) +
            " secrets under " + ctx_.spec.vault->kvMount + "/ (snapshot " + s.snapshot + ")");
    addSection(std::move(s));
    co_return Status::success();
  }

  Task<Status> stateSection() {
    // A private directory beside the state (same file system, mode 0700).
    std::string tmpl = (fs::path(ctx_.stateDir) / "backup-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      co_return Error::make(ErrorCode::io, "cannot make a temporary directory in " + ctx_.stateDir);
    }
    const fs::path dir = tmpl;
    struct Cleanup {
      fs::path dir;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    } cleanup{dir};
    const fs::path copy = dir / "state.db";
    if (auto st = ctx_.store.copyTo(copy); !st) {
      co_return Error::make(st.error().code, "state: " + st.error().message);
    }
    Section s;
    s.name = "state";
    s.kind = "state";
    s.path = sectionPath(s);
    Sha256 sha;
    auto done = co_await repo_.backupStdin(
        s.path, tags(s.name), host(), [&](ChildProcess& child) -> Task<Status> {
          std::ifstream in(copy, std::ios::binary);
          if (!in) co_return Error::make(ErrorCode::io, "cannot read " + copy.string());
          std::string buf(256 * 1024, '\0');
          while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            const auto n = static_cast<std::size_t>(in.gcount());
            if (n == 0) break;
            const std::string_view piece(buf.data(), n);
            sha.update(piece);
            if (auto st = co_await child.write(piece); !st) co_return st;
          }
          if (in.bad()) co_return Error::make(ErrorCode::io, "reading " + copy.string());
          co_return Status::success();
        });
    if (!done) co_return Error::make(done.error().code, "state: " + done.error().message);
    s.bytes = sha.bytes();
    s.sha256 = sha.hex();
    s.snapshot = done->snapshotId;
    report_("state: " + humanBytes(s.bytes) + " (snapshot " + s.snapshot + ")");
    addSection(std::move(s));
    co_return Status::success();
  }

  BackupContext& ctx_;
  Restic& repo_;
  const Report& report_;
  Manifest m_;
  std::chrono::steady_clock::time_point mark_ = std::chrono::steady_clock::now();
};

}  // namespace

Task<Result<Manifest>> takeBackup(BackupContext& ctx, Restic& repo, const Report& report) {
  auto exists = co_await repo.exists();
  if (!exists) co_return std::move(exists).error();
  if (!*exists) {
    if (auto st = co_await repo.init(); !st) co_return st.error();
    report("created the backup repository " + repo.repository().display);
  }
  Taker taker(ctx, repo, report);
  co_return co_await taker.run();
}

Task<Result<std::vector<BackupEntry>>> listBackups(Restic& repo) {
  std::vector<std::string> tags{kTag};
  auto snaps = co_await repo.snapshots(tags);
  if (!snaps) co_return std::move(snaps).error();
  std::vector<BackupEntry> entries;
  std::map<std::string, std::size_t> index;
  for (const auto& s : *snaps) {
    const std::string id = s.tag(kBackupTagKey);
    if (id.empty()) continue;
    auto [it, fresh] = index.emplace(id, entries.size());
    if (fresh) {
      entries.push_back(BackupEntry{id, s.time, false, std::nullopt, {}, {}});
    }
    BackupEntry& e = entries[it->second];
    const std::string section = s.tag(kSectionTagKey);
    e.sections.push_back(section);
    e.snapshotOf[section] = s.id;
    if (section != kManifestSection) continue;
    std::string text;
    auto st = co_await repo.dump(s.id, kManifestPath, [&](std::string_view piece) -> Task<Status> {
      // Bucket inventories make it grow with the objects (~100 bytes each).
      if (text.size() + piece.size() > (64u << 20)) {
        co_return Error::make(ErrorCode::protocol, "the manifest is larger than 64 MiB");
      }
      text += piece;
      co_return Status::success();
    });
    if (!st) co_return st.error();
    auto m = parseManifest(text);
    if (!m) co_return Error::make(m.error().code, "backup " + id + ": " + m.error().message);
    e.manifest = std::move(*m);
    e.complete = true;
  }
  std::sort(entries.begin(), entries.end(),
            [](const BackupEntry& a, const BackupEntry& b) { return a.id < b.id; });
  co_return entries;
}

}  // namespace foundationd::backup
