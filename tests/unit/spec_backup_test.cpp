// [backup]: targets, schedule, retention, disposable; located errors.
#include <doctest/doctest.h>

#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kHead =
    "spec_version = 1\nproject = \"demo\"\n"
    "[containers.pg]\nimage = \"postgres:16\"\n"
    "[containers.runner]\nimage = \"runner:1\"\n"
    "[volumes.cache]\n"
    "[postgres.main]\ncontainer = \"pg\"\n"
    "[containers.s3]\nimage = \"s3:1\"\n"
    "[credentials.s3keys.fields]\nsecret = { generate = \"hex\" }\n"
    "[credentials.offsite.fields]\nkey = \"AKIAOFFSITE\"\nsecret = { generate = \"hex\" }\n"
    "[s3.main]\ncontainer = \"s3\"\nendpoint = \"http://127.0.0.1:8333\"\n"
    "access_key = \"admin\"\nsecret_key = \"${credentials.s3keys.secret}\"\n"
    "[buckets.backups]\ns3 = \"main\"\n";

LoadResult load(const std::string& body) {
  return loadSpecText(kHead + body, "foundation.toml",
                      [](const std::string&) -> std::optional<std::string> { return {}; });
}

BackupSpec ok(const std::string& body) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  REQUIRE(r.spec->backup.has_value());
  return *r.spec->backup;
}

// Fails with `needle` in the diagnostics, located at `line` of the whole text.
void fails(const std::string& body, const std::string& needle, int line = 0) {
  const auto r = load(body);
  const std::string all = r.diagnostics.formatAll();
  INFO(all);
  CHECK_FALSE(r.spec.has_value());
  CHECK(all.find(needle) != std::string::npos);
  if (line > 0) {
    CHECK(all.find("foundation.toml:" + std::to_string(line) + ":") != std::string::npos);
  }
}

int headLines() {
  int n = 0;
  for (char c : kHead) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("no [backup]: nothing") {
  const auto r = load("");
  REQUIRE(r.spec.has_value());
  CHECK_FALSE(r.spec->backup.has_value());
}

TEST_CASE("[backup] with a local directory: the defaults") {
  const auto b = ok("[backup.local]\npath = \"/var/backups/foundation\"\n");
  CHECK(b.local.kind == BackupTarget::Kind::path);
  CHECK(b.local.path == "/var/backups/foundation");
  CHECK_FALSE(b.offsite.has_value());
  CHECK(b.schedule == std::chrono::hours(24));
  CHECK(b.verifySchedule == std::optional<Duration>(std::chrono::hours(24 * 7)));
  CHECK(b.retention.keepDaily == 7);
  CHECK(b.retention.keepWeekly == 4);
  CHECK(b.retention.keepMonthly == 6);
  CHECK(b.disposable.empty());
  CHECK(b.maxFreeze == std::chrono::minutes(10));
}

TEST_CASE("[backup] every kind of target, schedule, retention, disposable") {
  const auto b = ok(
      "[backup]\nschedule = \"6h\"\ndisposable = [\"runner\", \"cache\"]\n"
      "[backup.local]\nbucket = \"backups\"\nprefix = \"restic/demo\"\n"
      "[backup.offsite]\nrepository = \"s3:https://offsite.example/bk\"\n"
      "access_key = \"${credentials.offsite.key}\"\nsecret_key = \"${credentials.offsite.secret}\"\n"
      "[backup.retention]\nkeep_daily = 3\nkeep_weekly = 0\nkeep_monthly = 12\n");
  CHECK(b.local.kind == BackupTarget::Kind::bucket);
  CHECK(b.local.bucket == "backups");
  CHECK(b.local.prefix == "restic/demo");
  REQUIRE(b.offsite.has_value());
  CHECK(b.offsite->kind == BackupTarget::Kind::repository);
  CHECK(b.offsite->repository == "s3:https://offsite.example/bk");
  REQUIRE(b.offsite->secretKey.has_value());
  CHECK(b.offsite->secretKey->sensitive());
  CHECK(b.schedule == std::chrono::hours(6));
  CHECK(ok("[backup]\nverify_schedule = \"24h\"\n[backup.local]\npath = \"/b\"\n").verifySchedule ==
        std::optional<Duration>(std::chrono::hours(24)));
  CHECK_FALSE(ok("[backup]\nverify_schedule = \"off\"\n[backup.local]\npath = \"/b\"\n")
                  .verifySchedule.has_value());
  CHECK(b.retention.keepDaily == 3);
  CHECK(b.retention.keepWeekly == 0);
  CHECK(b.retention.keepMonthly == 12);
  CHECK(b.disposable.count("runner") == 1);
  CHECK(b.disposable.count("cache") == 1);
  for (const char* repo : {"sftp:backup@host.example:/srv/restic", "rest:https://h.example/r"}) {
    const auto o = ok("[backup.local]\npath = \"/b\"\n[backup.offsite]\nrepository = \"" +
                      std::string(repo) + "\"\n");
    CHECK(o.offsite->repository == repo);
  }
}

TEST_CASE("[backup] bad input: located errors") {
  const int h = headLines();
  fails("[backup]\nschedule = \"1h\"\n", "missing required key \"local\" in [backup]");
  fails("[backup.local]\n", "no place in [backup.local]", h + 1);
  fails("[backup.local]\npath = \"/a\"\nbucket = \"backups\"\n", "more than one place", h + 1);
  fails("[backup.local]\npath = \"relative/dir\"\n", "invalid \"path\"", h + 2);
  fails("[backup.local]\nbucket = \"backup\"\n", "unknown bucket \"backup\"", h + 2);
  fails("[backup.local]\npath = \"/a\"\n[backup.offsite]\nrepository = \"ftp://x/y\"\n",
        "expected a restic repository", h + 4);
  fails("[backup.local]\npath = \"/a\"\n[backup.offsite]\nrepository = \"s3:https://x/b\"\n",
        "access_key");
  fails("[backup.local]\npath = \"/a\"\nprefix = \"x\"\n", "goes with \"bucket\" only", h + 3);
  fails("[backup.local]\npath = \"/a\"\naccess_key = \"k\"\n", "goes with an \"s3:\" repository",
        h + 3);
  fails("[backup]\nschedule = \"30s\"\n[backup.local]\npath = \"/a\"\n", "at least \"1m\"", h + 2);
  fails("[backup]\nverify_schedule = \"10s\"\n[backup.local]\npath = \"/a\"\n",
        "\"verify_schedule\" in [backup] must be at least \"1m\" or \"off\"", h + 2);
  fails("[backup]\nverify_schedule = \"weekly\"\n[backup.local]\npath = \"/a\"\n",
        "invalid duration \"weekly\"", h + 2);
  fails("[backup]\nverify_schedule = false\n[backup.local]\npath = \"/a\"\n",
        "verify_schedule", h + 2);
  fails("[backup]\nschedule = \"daily\"\n[backup.local]\npath = \"/a\"\n", "invalid duration",
        h + 2);
  fails("[backup.local]\npath = \"/a\"\n[backup.retention]\nkeep_daily = 0\nkeep_weekly = 0\n"
        "keep_monthly = 0\n",
        "keeps nothing", h + 3);
  fails("[backup.local]\npath = \"/a\"\n[backup.retention]\nkeep_yearly = 1\n",
        "keep_yearly", h + 4);
  fails("[backup]\ndisposable = [\"runer\"]\n[backup.local]\npath = \"/a\"\n",
        "unknown container, volume or bucket \"runer\"", h + 2);
  fails("[backup]\ndisposable = [\"pg\"]\n[backup.local]\npath = \"/a\"\n",
        "holds the data of [postgres.main]", h + 2);
  fails("[backup]\ndisposable = [\"cache\", \"cache\"]\n[backup.local]\npath = \"/a\"\n",
        "listed twice", h + 2);
  fails("[backup]\ncopies = 2\n[backup.local]\npath = \"/a\"\n", "copies", h + 2);
}

TEST_CASE("[backup] recovery: a file inside the spec repository") {
  const int h = headLines();
  CHECK(ok("[backup.local]\npath = \"/a\"\n").recovery.empty());
  const auto b = ok("[backup]\nrecovery = \"dr/recovery.sealed\"\n[backup.local]\npath = \"/a\"\n");
  CHECK(b.recovery == "dr/recovery.sealed");
  CHECK(static_cast<int>(b.recoveryLoc.line) == h + 2);
  for (const char* bad : {"/etc/recovery.sealed", "../outside", "dr/../../x", "dr/", "", "a//b"}) {
    fails("[backup]\nrecovery = \"" + std::string(bad) + "\"\n[backup.local]\npath = \"/a\"\n",
          "invalid \"recovery\"", h + 2);
  }
}

TEST_CASE("[backup] max_freeze: the forge's longest pause") {
  const int h = headLines();
  CHECK(ok("[backup]\nmax_freeze = \"90s\"\n[backup.local]\npath = \"/b\"\n").maxFreeze ==
        std::chrono::seconds(90));
  fails("[backup]\nmax_freeze = \"0s\"\n[backup.local]\npath = \"/a\"\n",
        "\"max_freeze\" in [backup] must be more than 0", h + 2);
  fails("[backup]\nmax_freeze = 30\n[backup.local]\npath = \"/a\"\n", "max_freeze", h + 2);
  const auto r = load("[backup]\nmax_freeze = \"200ms\"\n[backup.local]\npath = \"/a\"\n");
  REQUIRE(r.spec.has_value());
  const std::string all = r.diagnostics.formatAll();
  CHECK(all.find("foundation.toml:" + std::to_string(h + 2) + ":") != std::string::npos);
  CHECK(all.find("\"max_freeze\" in [backup] is under \"1s\"") != std::string::npos);
}

TEST_CASE("[backup.offsite] on this spec's own S3 server: a warning") {
  const auto r = load("[backup.local]\npath = \"/a\"\n[backup.offsite]\nbucket = \"backups\"\n");
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find("does not survive the loss of this host") !=
        std::string::npos);
}

TEST_CASE("[backup] with a forge whose healthcheck has no short timeout: a located warning") {
  const std::string forge =
      "[containers.forge]\nimage = \"forge:1\"\n"
      "[containers.forge.healthcheck]\ntest = [\"CMD\", \"true\"]\ninterval = \"1s\"\nTIMEOUT\n"
      "[forgejo]\ncontainer = \"forge\"\n"
      "[backup.local]\npath = \"/var/backups/foundation\"\n";
  const auto warned = [&](const std::string& timeout) {
    std::string body = forge;
    body.replace(body.find("TIMEOUT"), 7, timeout);
    const auto r = load(body);
    INFO(r.diagnostics.formatAll());
    REQUIRE(r.spec.has_value());
    return r.diagnostics.formatAll();
  };
  const std::string none = warned("");
  CHECK(none.find("warning: the healthcheck of the forge's container \"forge\" has no timeout "
                  "(Docker's default: 30s)") != std::string::npos);
  CHECK(none.find("foundation.toml:24:") != std::string::npos);  // [containers.forge]
  CHECK(warned("timeout = \"30s\"").find("has a timeout over 10s") != std::string::npos);
  CHECK(warned("timeout = \"5s\"").find("healthcheck of the forge") == std::string::npos);
  // Without [backup] nothing pauses the forge: no warning.
  std::string noBackup = forge.substr(0, forge.find("[backup.local]"));
  noBackup.replace(noBackup.find("TIMEOUT"), 7, "");
  const auto r = load(noBackup);
  CHECK(r.diagnostics.formatAll().find("healthcheck of the forge") == std::string::npos);
}
