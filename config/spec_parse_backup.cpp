// [backup]: where backups go, how often, how long they are kept, and what is
// disposable (docs/spec.md "[backup]", docs/dr.md).
#include <set>

#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

std::set<std::string> keysOf(const toml::table& root, std::string_view section) {
  std::set<std::string> out;
  if (const toml::table* t = root.get_as<toml::table>(section)) {
    for (auto&& [k, v] : *t) out.emplace(k.str());
  }
  return out;
}

// The restic back ends a `repository` may name (restic's own prefixes).
std::optional<std::string> repositoryProblem(std::string_view s) {
  for (std::string_view prefix : {"s3:", "sftp:", "rest:"}) {
    if (s.substr(0, prefix.size()) == prefix) {
      if (s.size() == prefix.size()) return "nothing after \"" + std::string(prefix) + "\"";
      return std::nullopt;
    }
  }
  return "expected a restic repository of kind \"s3:https://host/bucket[/prefix]\", "
         "\"sftp:user@host:/path\" or \"rest:https://host/path\" (a directory goes in \"path\", "
         "a bucket of this spec in \"bucket\")";
}

std::optional<BackupTarget> parseTarget(SpecReader& r, const toml::table& backup,
                                        std::string_view key, const Where& bw,
                                        const std::set<std::string>& buckets, bool required) {
  const toml::table* t = r.table(backup, key, bw, required);
  if (!t) return std::nullopt;
  const Where w = bw.child(key);
  r.checkKeys(*t, {"path", "bucket", "prefix", "repository", "access_key", "secret_key"}, w);
  BackupTarget target;
  target.loc = r.loc(*t);
  int kinds = 0;
  for (std::string_view k : {"path", "bucket", "repository"}) kinds += t->contains(k) ? 1 : 0;
  if (kinds != 1) {
    r.error(target.loc, std::string(kinds == 0 ? "no" : "more than one") + " place " + w.in() +
                            ": give exactly one of \"path\" (a directory), \"bucket\" (a "
                            "[buckets.*] of this spec) or \"repository\" (s3:, sftp:, rest:)");
    return std::nullopt;
  }
  if (auto path = r.text(*t, "path", w)) {
    target.kind = BackupTarget::Kind::path;
    if (auto problem = absolutePathProblem(*path)) {
      r.error(r.loc(*t->get("path")),
              "invalid \"path\" " + quote(*path) + " " + w.in() + ": " + *problem);
    }
    target.path = *path;
  }
  if (auto bucket = r.text(*t, "bucket", w)) {
    target.kind = BackupTarget::Kind::bucket;
    r.checkRef(buckets, *bucket, "bucket", r.loc(*t->get("bucket")),
               "in \"bucket\" " + w.of() + " (declare it as [buckets." + *bucket + "])");
    target.bucket = *bucket;
  }
  if (auto prefix = r.text(*t, "prefix", w)) {
    if (target.kind != BackupTarget::Kind::bucket) {
      r.error(r.loc(*t->get("prefix")), "\"prefix\" " + w.in() + " goes with \"bucket\" only");
    } else if (prefix->empty() || prefix->front() == '/' || prefix->back() == '/' ||
               prefix->find("//") != std::string::npos) {
      r.error(r.loc(*t->get("prefix")), "invalid \"prefix\" " + quote(*prefix) + " " + w.in() +
                                            ": a folder such as \"restic/foundation\" (no "
                                            "leading, trailing or double '/')");
    }
    target.prefix = *prefix;
  }
  if (auto repo = r.text(*t, "repository", w)) {
    target.kind = BackupTarget::Kind::repository;
    if (auto problem = repositoryProblem(*repo)) {
      r.error(r.loc(*t->get("repository")),
              "invalid \"repository\" " + quote(*repo) + " " + w.in() + ": " + *problem);
    }
    target.repository = *repo;
  }
  const bool s3Repo = target.kind == BackupTarget::Kind::repository &&
                      target.repository.rfind("s3:", 0) == 0;
  for (std::string_view k : {"access_key", "secret_key"}) {
    if (!t->contains(k)) {
      if (s3Repo) r.missing(*t, k, w);
      continue;
    }
    if (!s3Repo) {
      r.error(r.keyLoc(*t, k), quote(k) + " " + w.in() +
                                   " goes with an \"s3:\" repository only (a [buckets.*] target "
                                   "uses its [s3.*] server's keys)");
      continue;
    }
    auto v = r.secret(*t, k, w, true);
    if (!v) continue;
    if (k == "secret_key" && !v->sensitive()) {
      r.warning(v->loc, "\"secret_key\" " + w.of() +
                            " is a literal; generate it in [credentials] or reference one as "
                            "${credentials.NAME.FIELD}");
    }
    (k == "access_key" ? target.accessKey : target.secretKey) = *v;
  }
  return target;
}

void parseRetention(SpecReader& r, const toml::table& backup, const Where& bw, BackupSpec& b) {
  const toml::table* t = r.table(backup, "retention", bw);
  if (!t) return;
  const Where w = bw.child("retention");
  r.checkKeys(*t, {"keep_daily", "keep_weekly", "keep_monthly"}, w);
  b.retention.loc = r.loc(*t);
  if (auto n = r.integer(*t, "keep_daily", w, 0, 100000)) b.retention.keepDaily = int(*n);
  if (auto n = r.integer(*t, "keep_weekly", w, 0, 100000)) b.retention.keepWeekly = int(*n);
  if (auto n = r.integer(*t, "keep_monthly", w, 0, 100000)) b.retention.keepMonthly = int(*n);
  if (b.retention.keepDaily + b.retention.keepWeekly + b.retention.keepMonthly == 0) {
    r.error(b.retention.loc, w.table() + " keeps nothing: at least one of \"keep_daily\", "
                                         "\"keep_weekly\", \"keep_monthly\" must be above 0");
  }
}

void parseDisposable(SpecReader& r, const toml::table& backup, const Where& bw,
                     const Spec& spec, BackupSpec& b) {
  const toml::array* a = r.array(backup, "disposable", bw);
  if (!a) return;
  std::set<std::string> known = r.declared.containers;
  known.insert(r.declared.volumes.begin(), r.declared.volumes.end());
  for (const auto& [name, _] : spec.buckets) known.insert(name);  // [buckets.*]: their objects
  // Containers holding protected data cannot be disposable.
  std::map<std::string, std::string> holders;
  for (const auto& [name, p] : spec.postgres) holders[p.container] = "[postgres." + name + "]";
  if (spec.vault) holders[spec.vault->container] = "[vault]";
  for (std::size_t i = 0; i < a->size(); ++i) {
    const toml::node& node = *a->get(i);
    auto name = r.textOf(node, "\"disposable[" + std::to_string(i) + "]\"", bw);
    if (!name) continue;
    const SourceLoc at = r.loc(node);
    if (!r.checkRef(known, *name, "container, volume or bucket", at, "in \"disposable\" " + bw.of())) {
      continue;
    }
    if (auto h = holders.find(*name); h != holders.end()) {
      r.error(at, "container " + quote(*name) + " holds the data of " + h->second +
                      ": it is always backed up and cannot be \"disposable\"");
      continue;
    }
    if (!b.disposable.emplace(*name, at).second) {
      r.error(at, quote(*name) + " is listed twice in \"disposable\" " + bw.of());
    }
  }
}

// `recovery`: a file inside the spec repository, named relative to the spec.
void parseRecovery(SpecReader& r, const toml::table& backup, const Where& w, BackupSpec& b) {
  auto path = r.text(backup, "recovery", w);
  if (!path) return;
  b.recoveryLoc = r.loc(*backup.get("recovery"));
  std::string problem;
  if (path->empty()) {
    problem = "it is empty";
  } else if (path->front() == '/') {
    problem = "it is absolute; name it relative to the spec file, inside the spec repository";
  } else if (path->back() == '/') {
    problem = "it names a directory, not a file";
  } else {
    std::size_t start = 0;
    while (start <= path->size()) {
      std::size_t slash = path->find('/', start);
      if (slash == std::string::npos) slash = path->size();
      const std::string part = path->substr(start, slash - start);
      if (part.empty() || part == "." || part == "..") {
        problem = "it has an empty, \".\" or \"..\" part: the bundle stays inside the spec "
                  "repository";
        break;
      }
      start = slash + 1;
    }
  }
  if (!problem.empty()) {
    r.error(b.recoveryLoc, "invalid \"recovery\" " + quote(*path) + " " + w.in() + ": " +
                               problem + " (e.g. \"dr/recovery.sealed\")");
    return;
  }
  b.recovery = *path;
}

}  // namespace

void parseBackup(SpecReader& r, const toml::table& root, Spec& spec) {
  const toml::table* t = r.table(root, "backup", Where{});
  if (!t) return;
  const Where w{"backup"};
  r.checkKeys(*t,
              {"local", "offsite", "schedule", "verify_schedule", "max_freeze", "retention",
               "disposable", "recovery"},
              w);
  BackupSpec b;
  b.loc = r.loc(*t);
  const auto buckets = keysOf(root, "buckets");
  if (auto local = parseTarget(r, *t, "local", w, buckets, true)) b.local = std::move(*local);
  b.offsite = parseTarget(r, *t, "offsite", w, buckets, false);
  if (auto d = r.duration(*t, "schedule", w)) {
    if (*d < std::chrono::minutes(1)) {
      r.error(r.loc(*t->get("schedule")),
              "\"schedule\" " + w.in() + " must be at least \"1m\" (it is the interval between "
                                         "two backups)");
    }
    b.schedule = *d;
  }
  if (const toml::node* v = t->get("verify_schedule")) {
    if (v->is_string() && v->value<std::string>() == "off") {
      b.verifySchedule = std::nullopt;
    } else if (auto d = r.duration(*t, "verify_schedule", w)) {
      if (*d < std::chrono::minutes(1)) {
        r.error(r.loc(*v), "\"verify_schedule\" " + w.in() +
                               " must be at least \"1m\" or \"off\" (it is the interval "
                               "between two verifies of the newest backup)");
      }
      b.verifySchedule = *d;
    }
  }
  if (auto d = r.duration(*t, "max_freeze", w)) {
    if (d->count() <= 0) {
      r.error(r.loc(*t->get("max_freeze")), "\"max_freeze\" " + w.in() +
                                                " must be more than 0 (it is the longest the forge "
                                                "stays paused while a backup reads its data)");
    } else if (*d < std::chrono::seconds(1)) {
      r.warning(r.loc(*t->get("max_freeze")),
                "\"max_freeze\" " + w.in() +
                    " is under \"1s\": a backup of the forge's data "
                    "will rarely be read within it, and fails when not");
    }
    b.maxFreeze = *d;
  }
  parseRetention(r, *t, w, b);
  parseDisposable(r, *t, w, spec, b);
  parseRecovery(r, *t, w, b);
  if (b.offsite && b.offsite->kind == BackupTarget::Kind::bucket) {
    r.warning(b.offsite->loc, "[backup.offsite] is a bucket of this spec's own S3 server: it "
                              "does not survive the loss of this host");
  }
  spec.backup = std::move(b);
}

}  // namespace foundationd::config::detail
