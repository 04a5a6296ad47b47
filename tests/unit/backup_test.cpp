// The backup controller's pure parts: restic's --json output, restic's
// errors, the manifest round trip, row counts, ids and section selection,
// the repository of each kind of target; and ChildProcess against real
// programs (the password pipe at /dev/fd/3, never in argv).
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>

#include "controllers/backup/backup.hpp"
#include "controllers/backup/manifest.hpp"
#include "controllers/backup/restic.hpp"
#include "spec_fixture.hpp"
#include "temp_dir.hpp"

using namespace foundationd;
using namespace foundationd::backup;

TEST_CASE("restic backup --json: the summary line, after status lines") {
  const std::string out =
      R"({"message_type":"status","percent_done":0.5})" "\n"
      R"({"message_type":"summary","files_new":1,"data_added":870,"total_bytes_processed":6,"total_duration":0.2,"snapshot_id":"d4b1e8d4"})" "\n";
  auto s = parseBackupSummary(out);
  REQUIRE(s.ok());
  CHECK(s->snapshotId == "d4b1e8d4");
  CHECK(s->bytesProcessed == 6);
  CHECK(s->dataAdded == 870);
  CHECK_FALSE(parseBackupSummary(R"({"message_type":"status"})").ok());
  CHECK_FALSE(parseBackupSummary("").ok());
  CHECK_FALSE(parseBackupSummary(R"({"message_type":"summary"})").ok());  // no snapshot id
}

TEST_CASE("restic snapshots --json") {
  const std::string out =
      R"([{"time":"2026-12-03T11:43:49.15Z","tree":"e1","paths":["/postgres/main/db/app.dump"],)"
      R"("hostname":"foundationd-demo","username":"root","tags":["foundationd","fd-backup=B1",)"
      R"("fd-section=postgres/main/db/app"],"id":"d4b1e8d474fe04c6","short_id":"d4b1e8d4"},)"
      R"({"time":"t2","paths":["/manifest.json"],"id":"aaaaaaaabbbb"}])";
  auto s = parseSnapshots(out);
  REQUIRE(s.ok());
  REQUIRE(s->size() == 2);
  CHECK((*s)[0].shortId == "d4b1e8d4");
  CHECK((*s)[0].tag("fd-backup") == "B1");
  CHECK((*s)[0].tag("fd-section") == "postgres/main/db/app");
  CHECK((*s)[0].tag("fd") == "");
  CHECK((*s)[0].paths == std::vector<std::string>{"/postgres/main/db/app.dump"});
  CHECK((*s)[1].shortId == "aaaaaaaa");  // derived when restic omits it
  CHECK((*s)[1].tags.empty());
  auto none = parseSnapshots("null");
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK_FALSE(parseSnapshots("{}").ok());
  CHECK_FALSE(parseSnapshots("[1]").ok());
  CHECK_FALSE(parseSnapshots(R"([{"time":"t"}])").ok());
}

TEST_CASE("restic's failures become clear errors") {
  auto wrong = resticError("Fatal: wrong password or no key found\n", 1, "listing the backups");
  CHECK((wrong.code == ErrorCode::wrong_passphrase));
  CHECK(wrong.message.find("does not open with the password") != std::string::npos);
  auto none = resticError(
      "Fatal: unable to open config file: stat /b/config: no such file or directory\n"
      "Is there a repository at the following location?\n/b\n",
      1, "opening");
  CHECK((none.code == ErrorCode::not_found));
  auto other = resticError("some noise\nFatal: repository contains errors\n", 1, "checking");
  CHECK((other.code == ErrorCode::peer));
  CHECK(other.message == "checking: restic failed (exit 1): repository contains errors");
}

TEST_CASE("a manifest round-trips; bad ones are refused") {
  Manifest m;
  m.id = newBackupId(1796299200, 0xa1b2);
  CHECK(m.id == "20261203T120000Z-a1b2");
  m.createdAt = "2026-12-03T12:00:00Z";
  m.project = "demo";
  m.specRevision = "abc123";
  m.images["demo-pg"] = "postgres:16 (sha256:ff)";
  Section db;
  db.name = "postgres/main/db/app";
  db.kind = "postgres-database";
  db.path = "/postgres/main/db/app.dump";
  db.snapshot = "d4b1e8d4";
  db.bytes = 1234;
  db.sha256 = std::string(64, 'a');
  db.instance = "main";
  db.database = "app";
  db.rowCounts = {{"public.items", 3}, {"public.empty", 0}};
  m.sections.push_back(db);
  m.notIncluded.push_back("vault: not in this version");
  auto back = parseManifest(toJson(m));
  REQUIRE(back.ok());
  CHECK(back->id == m.id);
  CHECK(back->specRevision == "abc123");
  CHECK(back->images == m.images);
  REQUIRE(back->sections.size() == 1);
  CHECK(back->sections[0].rowCounts == db.rowCounts);
  CHECK(back->sections[0].bytes == 1234);
  CHECK(back->find("postgres/main/db/app") != nullptr);
  CHECK(back->find("state") == nullptr);
  CHECK(back->totalBytes() == 1234);
  CHECK(back->notIncluded == m.notIncluded);

  CHECK_FALSE(parseManifest("").ok());
  CHECK_FALSE(parseManifest("[]").ok());
  auto future = parseManifest(R"({"format":2,"id":"x","created_at":"t","sections":[]})");
  REQUIRE_FALSE(future.ok());
  CHECK(future.error().message.find("format 2") != std::string::npos);
  CHECK_FALSE(parseManifest(R"({"format":1,"id":"x","created_at":"t","sections":[{"name":"s"}]})").ok());
  CHECK_FALSE(parseManifest(
                  R"({"format":1,"id":"x","created_at":"t","sections":[{"name":"s","kind":"state",)"
                  R"("path":"/p","snapshot":"a","bytes":1,"sha256":"short"}]})")
                  .ok());
}

TEST_CASE("row counts from psql -At") {
  auto c = parseRowCounts("public.items|3\napp.big|1000000\n\n");
  REQUIRE(c.ok());
  CHECK(c->at("public.items") == 3);
  CHECK(c->at("app.big") == 1000000);
  CHECK(parseRowCounts("")->empty());
  CHECK(parseRowCounts("we|ird.na|me|7\n")->at("we|ird.na|me") == 7);  // the count is after the last |
  CHECK_FALSE(parseRowCounts("public.items 3\n").ok());
  CHECK_FALSE(parseRowCounts("public.items|x\n").ok());
  CHECK_FALSE(parseRowCounts("public.items|\n").ok());
}

TEST_CASE("sections are selected by name or by a prefix at a '/'") {
  CHECK(sectionSelected("postgres/main/db/app", "postgres/main/db/app"));
  CHECK(sectionSelected("postgres/main/db/app", "postgres/main"));
  CHECK(sectionSelected("postgres/main/globals", "postgres/main/"));
  CHECK(sectionSelected("postgres/main/globals", "postgres"));
  CHECK_FALSE(sectionSelected("postgres/main2/globals", "postgres/main"));
  CHECK_FALSE(sectionSelected("postgres/main/db/app2", "postgres/main/db/app"));
  CHECK_FALSE(sectionSelected("state", ""));
  CHECK(sectionSelected("state", "state"));
}

TEST_CASE("the repository of each kind of target") {
  const auto spec = testing::specFrom(
      "spec_version = 1\nproject = \"demo\"\n"
      "[containers.s3]\nimage = \"s3:1\"\n"
      "[credentials.k.fields]\nsecret = \"s3cr3t\"\n"
      "[s3.main]\ncontainer = \"s3\"\nendpoint = \"http://127.0.0.1:8333/\"\n"
      "access_key = \"admin\"\nsecret_key = \"${credentials.k.secret}\"\n"
      "[buckets.backups]\ns3 = \"main\"\n"
      "[backup.local]\nbucket = \"backups\"\nprefix = \"restic/demo\"\n"
      "[backup.offsite]\nrepository = \"sftp:bk@offsite.example:/srv/restic\"\n");
  struct Literal final : docker::SecretResolver {
    std::optional<std::string> digest(const config::CredentialRef&) const override { return "d"; }
    std::optional<std::string> value(const config::CredentialRef& r) const override {
      if (r.name == "k") return "s3cr3t";
      return std::nullopt;
    }
  } secrets;
  auto local = repositoryFor(spec, spec.backup->local, secrets);
  REQUIRE(local.ok());
  CHECK(local->location == "s3:http://127.0.0.1:8333/backups/restic/demo");
  CHECK(local->display.find("s3cr3t") == std::string::npos);
  REQUIRE(local->env.size() == 2);
  CHECK(local->env[0] == std::pair<std::string, std::string>{"AWS_ACCESS_KEY_ID", "admin"});
  CHECK(local->env[1] == std::pair<std::string, std::string>{"AWS_SECRET_ACCESS_KEY", "s3cr3t"});
  // The same bucket through rclone, for a `restic copy` that also holds other AWS_* keys.
  CHECK(local->rcloneLocation == "rclone:foundationd:backups/restic/demo");
  const auto var = [&](const std::string& name) {
    for (const auto& [k, v] : local->rcloneEnv) {
      if (k == name) return v;
    }
    return std::string("(absent)");
  };
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_TYPE") == "s3");
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_ENDPOINT") == "http://127.0.0.1:8333");
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_ACCESS_KEY_ID") == "admin");
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_SECRET_ACCESS_KEY") == "s3cr3t");
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_REGION") == "us-east-1");
  CHECK(var("RCLONE_CONFIG_FOUNDATIOND_ENV_AUTH") == "false");
  for (const auto& [k, v] : local->rcloneEnv) CHECK(k.rfind("AWS_", 0) == std::string::npos);
  auto offsite = repositoryFor(spec, *spec.backup->offsite, secrets);
  REQUIRE(offsite.ok());
  CHECK(offsite->location == "sftp:bk@offsite.example:/srv/restic");
  CHECK(offsite->env.empty());
  CHECK(offsite->rcloneLocation.empty());
  docker::NoSecrets none;
  auto locked = repositoryFor(spec, spec.backup->local, none);
  REQUIRE_FALSE(locked.ok());
  CHECK((locked.error().code == ErrorCode::unavailable));
  CHECK(locked.error().message.find("credential k.secret") != std::string::npos);
}

TEST_CASE("the rclone form of each spelling of an s3: location") {
  const auto form = [](const std::string& location) {
    Repository r;
    r.location = location;
    const bool ok = setRcloneForm(r, "AK", "SK", "eu-west-1");
    std::string endpoint;
    for (const auto& [k, v] : r.rcloneEnv) {
      if (k == "RCLONE_CONFIG_FOUNDATIOND_ENDPOINT") endpoint = v;
    }
    return ok ? r.rcloneLocation + " " + endpoint : std::string("none");
  };
  CHECK(form("s3:http://10.0.0.9:9000/offsite") ==
        "rclone:foundationd:offsite http://10.0.0.9:9000");
  CHECK(form("s3:https://s3.example.org/b/p/q/") ==
        "rclone:foundationd:b/p/q https://s3.example.org");
  CHECK(form("s3:s3.example.org/b/p") == "rclone:foundationd:b/p https://s3.example.org");
  CHECK(form("s3:http://host:9000/") == "none");  // no bucket
  CHECK(form("s3:http://host:9000") == "none");
  CHECK(form("sftp:u@h:/srv") == "none");
  CHECK(form("/srv/restic") == "none");
}

TEST_CASE("ChildProcess: a secret at /dev/fd/3, stdin streamed, exit codes") {
  boost::asio::io_context io;
  std::string out, err;
  int code = -1;
  bool argvClean = false;
  boost::asio::co_spawn(
      io,
      [&]() -> Task<void> {
        ChildRequest req;
        // Prints the secret from fd 3, then stdin, then its own argv.
        req.argv = {"sh", "-c", "cat /dev/fd/3; echo; cat; cat /proc/$$/cmdline >&2; exit 3"};
        req.env = {{"PATH", "/usr/bin:/bin"}};
        const std::string secret = "pa55-in-a-pipe";
        req.secretFds = {secret};
        req.pipeStdin = true;
        auto child = ChildProcess::spawn(io.get_executor(), req);
        if (!child.ok()) {
          FAIL_CHECK(child.error().message);
          co_return;
        }
        auto& c = **child;
        const auto feed = [&]() -> Task<void> {
          CHECK((co_await c.write("streamed ")).ok());
          CHECK((co_await c.write(std::string(200000, 'x'))).ok());  // more than a pipe holds
          c.closeStdin();
        };
        using namespace boost::asio::experimental::awaitable_operators;
        auto [o, e] = co_await (feed() && c.readAllOut(1 << 20) && c.readAllErr(1 << 20));
        out = std::move(o);
        err = std::move(e);
        code = co_await c.wait();
        argvClean = err.find(secret) == std::string::npos;
      },
      boost::asio::detached);
  io.run();
  CHECK(code == 3);
  CHECK(out.rfind("pa55-in-a-pipe\nstreamed xxx", 0) == 0);
  CHECK(out.size() == std::string("pa55-in-a-pipe\nstreamed ").size() + 200000);
  CHECK(argvClean);
}

TEST_CASE("ChildProcess: a program that does not exist is an io error") {
  boost::asio::io_context io;
  ChildRequest req;
  req.argv = {"foundationd-no-such-program"};
  req.env = {{"PATH", "/usr/bin:/bin"}};
  auto child = ChildProcess::spawn(io.get_executor(), req);
  REQUIRE_FALSE(child.ok());
  CHECK((child.error().code == ErrorCode::io));
  CHECK(child.error().message.find("foundationd-no-such-program") != std::string::npos);
}

TEST_CASE("the state's copy (Store::copyTo) and the repository password it holds") {
  test::TempDir dir("backup-state");
  auto store = state::Store::openDir(dir.path / "live");
  REQUIRE(store.ok());
  auto key = (*store)->initialize("a passphrase for the test", state::KdfProfile::interactive);
  REQUIRE(key.ok());
  // No password until a backup asks for one; then one, stable.
  auto none = resticPassword(**store, *key, false);
  REQUIRE_FALSE(none.ok());
  CHECK((none.error().code == ErrorCode::not_found));
  auto made = resticPassword(**store, *key, true);
  REQUIRE(made.ok());
  CHECK(made->size() == 43);  // 32 bytes, base64url without padding
  auto again = resticPassword(**store, *key, true);
  REQUIRE(again.ok());
  CHECK(again->equals(made->view()));

  const auto copy = dir.path / "copy.db";
  REQUIRE((*store)->copyTo(copy).ok());
  auto conflict = (*store)->copyTo(copy);
  REQUIRE_FALSE(conflict.ok());
  CHECK((conflict.error().code == ErrorCode::conflict));
  // The copy is a whole store: it opens with the passphrase and holds the password.
  auto reopened = state::Store::open(copy);
  REQUIRE(reopened.ok());
  auto key2 = (*reopened)->unlock("a passphrase for the test");
  REQUIRE(key2.ok());
  auto fromCopy = resticPassword(**reopened, *key2, false);
  REQUIRE(fromCopy.ok());
  CHECK(fromCopy->equals(made->view()));
}
