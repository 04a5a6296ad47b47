// The PostgreSQL controller against a real PostgreSQL (Debian's postgresql in
// the image tests/peers/postgres-image builds; scripts/test exports it as
// FOUNDATIOND_POSTGRES_IMAGE) in a container this test starts and removes.
// Passwords are checked by real logins over TCP (scram-sha-256 in the
// image's pg_hba.conf), never by reading them back.
#include "controllers/postgres/postgres.hpp"
#include "controllers/postgres/postgres_plan.hpp"

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/async.hpp"
#include "config/spec.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/postgres/scram.hpp"
#include "integration/docker_support.hpp"

using foundationd::config::CredentialRef;
using foundationd::docker::DockerClient;
using foundationd::docker::ExecOptions;
using foundationd::testing::runSync;
using json = nlohmann::json;
namespace pg = foundationd::postgres;
using namespace std::chrono_literals;

namespace {

std::string postgresImage() {
  const char* image = std::getenv("FOUNDATIOND_POSTGRES_IMAGE");
  if (image != nullptr && *image != '\0') return image;
  const char* skip = std::getenv("FOUNDATIOND_SKIP_INTEGRATION");
  const char* ci = std::getenv("CI");
  const bool inCi = ci != nullptr && std::string_view(ci) == "true";
  if (!inCi && skip != nullptr && std::string_view(skip) == "1") {
    MESSAGE("skipped: FOUNDATIOND_SKIP_INTEGRATION=1 and FOUNDATIOND_POSTGRES_IMAGE is unset");
    return {};
  }
  FAIL(
      "FOUNDATIOND_POSTGRES_IMAGE is not set: build it with tests/peers/postgres-image (or run "
      "scripts/test) and export FOUNDATIOND_POSTGRES_IMAGE=<image>");
  return {};
}

class MapSecrets final : public foundationd::docker::SecretResolver {
 public:
  std::map<CredentialRef, std::string> values;
  std::optional<std::string> digest(const CredentialRef& ref) const override { return value(ref); }
  std::optional<std::string> value(const CredentialRef& ref) const override {
    auto it = values.find(ref);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

// Locked: every credential has a digest, no value can be read.
class LockedSecrets final : public foundationd::docker::SecretResolver {
 public:
  std::optional<std::string> digest(const CredentialRef&) const override { return "digest"; }
  std::optional<std::string> value(const CredentialRef&) const override { return std::nullopt; }
};

foundationd::config::Value credential(const std::string& name) {
  foundationd::config::Value v;
  v.segments.emplace_back(CredentialRef{name, "password"});
  return v;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Server {
  boost::asio::io_context io;
  DockerClient client{io.get_executor()};
  std::string image = postgresImage();
  std::string name = "fdtest-pg-it-" + std::to_string(::getpid());
  std::string id;

  Server() {
    if (image.empty()) return;
    (void)runSync(io, client.removeContainer(name, true));  // a leftover of a killed run
    const json body = {{"Image", image},
                       {"Env", {"POSTGRES_PASSWORD=superuser-secret-not-used"}},
                       {"Labels", {{"foundationd.test", "postgres"}}},
                       {"Healthcheck",
                        {{"Test", {"CMD-SHELL", "pg_isready -U postgres -q"}},
                         {"Interval", 300'000'000},
                         {"Timeout", 3'000'000'000},
                         {"Retries", 100}}},
                       {"HostConfig", {{"NetworkMode", "none"}}}};
    auto created = runSync(io, client.createContainer(name, body));
    REQUIRE_MESSAGE(created.ok(), (created.ok() ? "" : created.error().message));
    id = created.value();
    auto started = runSync(io, client.startContainer(id));
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.error().message));
  }
  ~Server() {
    if (!id.empty()) (void)runSync(io, client.removeContainer(id, true));
  }

  foundationd::docker::ExecResult exec(const std::vector<std::string>& cmd, ExecOptions o) {
    auto r = runSync(io, client.exec(id, cmd, o));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return r.value();
  }
  // As the superuser over the socket; SQL on stdin.
  std::string sql(const std::string& script) {
    ExecOptions o;
    o.user = "postgres";
    o.stdinData = script;
    auto r = exec({"psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"}, o);
    REQUIRE_MESSAGE(r.exitCode == 0, r.stderrText);
    return r.stdoutText;
  }
  // A real login over TCP with a password (scram-sha-256); true if accepted.
  bool login(const std::string& role, const std::string& password, const std::string& db) {
    ExecOptions o;
    o.user = "postgres";
    o.env = {"PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=5"};
    auto r = exec(
        {"psql", "-X", "-At", "-h", "127.0.0.1", "-U", role, "-d", db, "-c", "SELECT current_user"},
        o);
    if (r.exitCode != 0) return false;
    CHECK(r.stdoutText == role + "\n");
    return true;
  }

  pg::Report reconcile(const foundationd::config::Spec& spec, const MapSecrets& secrets,
                       pg::Options options = {}) {
    return runSync(io, pg::reconcile(client, spec, secrets, options));
  }

  // Waits until PostgreSQL answers over its socket.
  void waitReady() {
    for (int i = 0; i < 240; ++i) {
      ExecOptions o;
      o.user = "postgres";
      if (exec({"pg_isready", "-q"}, o).exitCode == 0) return;
      runSync(io, foundationd::sleepFor(250ms));
    }
    FAIL("PostgreSQL in " << name << " did not become ready");
  }
};

const foundationd::StepOutcome* outcome(const pg::Report& r, const std::string& name) {
  for (const auto& o : r.step.outcomes) {
    if (o.key.name == name) return &o;
  }
  return nullptr;
}

std::string describe(const pg::Report& r) {
  std::string s;
  for (const auto& o : r.step.outcomes) {
    s += o.key.name + ": ok=" + (o.ok ? "1" : "0") + " changed=" + (o.changed ? "1" : "0") +
         " drift=" + (o.drift ? "1" : "0") + " blocked=" + (o.blocked ? "1" : "0") + " " +
         o.message + "\n";
  }
  return s;
}

bool allConvergedUnchanged(const pg::Report& r) {
  for (const auto& o : r.step.outcomes) {
    if (!o.ok || o.changed) return false;
  }
  return !r.step.outcomes.empty();
}

// Records the command line of every exec made in the test's containers, from
// the Engine's own events ("exec_create: psql -X ..."), on a thread of its own.
class ExecWatcher {
 public:
  ExecWatcher() {
    thread_ = std::thread([this] {
      DockerClient client{io_.get_executor()};
      boost::asio::co_spawn(io_,
                            client.events({{"foundationd.test", "postgres"}},
                                          [this](const foundationd::docker::DockerEvent& e) {
                                            if (e.action.rfind("exec_create: ", 0) == 0) {
                                              std::lock_guard<std::mutex> lock(mutex_);
                                              lines_.push_back(e.action.substr(13));
                                            }
                                            return true;
                                          }),
                            boost::asio::detached);
      io_.run();
    });
  }
  ~ExecWatcher() {
    io_.stop();
    thread_.join();
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 private:
  boost::asio::io_context io_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

foundationd::config::Spec makeSpec(const std::string& container) {
  foundationd::config::Spec spec;
  spec.project = "fdtest-pg";
  foundationd::config::PostgresSpec p;
  p.name = "main";
  p.container = container;
  p.superuser = "postgres";
  for (const std::string role : {"app", "Reader"}) {
    foundationd::config::PostgresRole r;
    r.name = role;
    r.password = credential(role + "-db");
    p.roles.emplace(role, r);
  }
  foundationd::config::PostgresDatabase db;
  db.name = "appdb";
  db.owner = "app";
  p.databases.emplace("appdb", db);
  foundationd::config::PostgresDatabase reports;
  reports.name = "Reports";
  reports.owner = "postgres";
  p.databases.emplace("Reports", reports);
  spec.postgres.emplace("main", p);
  return spec;
}

}  // namespace

TEST_CASE("postgres: roles and databases created, no-op, drift repaired, nothing dropped") {
  ExecWatcher watcher;  // before the container: sees every exec made in it
  Server s;
  if (s.image.empty()) return;
  auto spec = makeSpec(s.name);
  MapSecrets secrets;
  const std::string appPassword = "app-Pw-1 with 'quote' and \\ and $$dollar$$";
  secrets.values[{"app-db", "password"}] = appPassword;
  secrets.values[{"Reader-db", "password"}] = "readerPassword0123456789";

  // First pass: the container is still starting; the step waits for it.
  auto first = s.reconcile(spec, secrets);
  INFO(describe(first));
  REQUIRE(first.step.ok());
  CHECK(first.step.outcomes.size() == 4);
  for (const auto& o : first.step.outcomes) CHECK(o.changed);
  CHECK(first.orphans.empty());
  CHECK(s.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'") ==
        "app\n");
  CHECK(s.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'Reports'") ==
        "postgres\n");
  CHECK(s.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'Reader'") == "t\n");
  CHECK(s.login("app", appPassword, "appdb"));
  CHECK(s.login("Reader", "readerPassword0123456789", "postgres"));
  CHECK_FALSE(s.login("app", "not-the-password", "appdb"));

  SUBCASE("a second pass changes nothing, in one exec") {
    auto again = s.reconcile(spec, secrets);
    INFO(describe(again));
    CHECK(allConvergedUnchanged(again));
    CHECK(again.execs == 1);
  }

  SUBCASE("the plan sees a password changed by hand and a new database, and nothing else") {
    auto converged = pg::plan(spec, runSync(s.io, pg::observe(s.client, spec, secrets)));
    CHECK(converged.empty());
    s.sql("ALTER ROLE app PASSWORD 'changed-by-hand'");
    auto spec2 = spec;
    foundationd::config::PostgresDatabase extra;
    extra.name = "extra";
    extra.owner = "app";
    spec2.postgres.at("main").databases.emplace("extra", extra);
    auto changes = pg::plan(spec2, runSync(s.io, pg::observe(s.client, spec2, secrets)));
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].key.str() == "postgres.main/role/app");
    CHECK(changes[0].action == foundationd::PlanAction::update);
    CHECK(changes[0].reason == "password differs");
    CHECK(changes[1].key.str() == "postgres.main/database/extra");
    CHECK(changes[1].action == foundationd::PlanAction::create);
    // Locked (digests, no values): the password is not compared, never guessed.
    LockedSecrets locked;
    auto unknown = pg::plan(spec, runSync(s.io, pg::observe(s.client, spec, locked)));
    REQUIRE(unknown.size() == 2);  // both roles
    for (const auto& c : unknown) {
      CHECK(c.action == foundationd::PlanAction::unknown);
      CHECK(c.reason == "password: cannot compare while locked");
    }
    CHECK(s.login("app", "changed-by-hand", "appdb"));  // planning changed nothing
  }

  SUBCASE("a password changed by hand is set back (a real login proves it)") {
    s.sql("ALTER ROLE app PASSWORD 'changed-by-hand'");
    REQUIRE(s.login("app", "changed-by-hand", "appdb"));
    auto repaired = s.reconcile(spec, secrets);
    INFO(describe(repaired));
    const auto* o = outcome(repaired, "main/role/app");
    REQUIRE(o != nullptr);
    CHECK(o->ok);
    CHECK(o->changed);
    CHECK(o->drift);
    CHECK(s.login("app", appPassword, "appdb"));
    CHECK_FALSE(s.login("app", "changed-by-hand", "appdb"));
    const auto* other = outcome(repaired, "main/role/Reader");
    REQUIRE(other != nullptr);
    CHECK_FALSE(other->changed);
    CHECK(allConvergedUnchanged(s.reconcile(spec, secrets)));
  }

  SUBCASE("LOGIN taken away by hand is given back") {
    s.sql("ALTER ROLE \"Reader\" NOLOGIN");
    CHECK_FALSE(s.login("Reader", "readerPassword0123456789", "postgres"));
    auto repaired = s.reconcile(spec, secrets);
    INFO(describe(repaired));
    const auto* o = outcome(repaired, "main/role/Reader");
    REQUIRE(o != nullptr);
    CHECK(o->drift);
    CHECK(s.login("Reader", "readerPassword0123456789", "postgres"));
  }

  SUBCASE("an owner changed by hand is set back; orphans are reported, never dropped") {
    s.sql(
        "CREATE ROLE intruder; ALTER DATABASE appdb OWNER TO intruder; "
        "CREATE DATABASE handmade OWNER intruder;");
    auto repaired = s.reconcile(spec, secrets);
    INFO(describe(repaired));
    const auto* o = outcome(repaired, "main/database/appdb");
    REQUIRE(o != nullptr);
    CHECK(o->ok);
    CHECK(o->drift);
    CHECK(contains(o->message, "intruder"));
    CHECK(s.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'") ==
          "app\n");
    CHECK(repaired.orphans ==
          std::vector<std::string>{"main/role/intruder", "main/database/handmade"});

    // A role and a database leave the spec: still there, now orphans too.
    spec.postgres.at("main").roles.erase("Reader");
    spec.postgres.at("main").databases.erase("Reports");
    auto after = s.reconcile(spec, secrets);
    INFO(describe(after));
    CHECK(after.step.ok());
    CHECK(s.sql("SELECT count(*) FROM pg_roles WHERE rolname IN ('Reader', 'intruder')") == "2\n");
    CHECK(s.sql("SELECT count(*) FROM pg_database WHERE datname IN ('Reports', 'handmade')") ==
          "2\n");
    CHECK(after.orphans == std::vector<std::string>{"main/role/Reader", "main/role/intruder",
                                                    "main/database/Reports",
                                                    "main/database/handmade"});
  }

  SUBCASE("rotation: only the roles of that credential, not counted as drift") {
    secrets.values[{"app-db", "password"}] = "rotated-password-2";
    pg::Options rotation;
    rotation.onlyCredential = "app-db";
    auto rotated = s.reconcile(spec, secrets, rotation);
    INFO(describe(rotated));
    REQUIRE(rotated.step.outcomes.size() == 1);
    CHECK(rotated.step.outcomes[0].key.name == "main/role/app");
    CHECK(rotated.step.outcomes[0].changed);
    CHECK_FALSE(rotated.step.outcomes[0].drift);
    CHECK(rotated.orphans.empty());
    CHECK(s.login("app", "rotated-password-2", "appdb"));
    CHECK_FALSE(s.login("app", appPassword, "appdb"));
  }

  SUBCASE("a locked state: the roles are blocked, nothing is changed") {
    s.sql("ALTER ROLE app PASSWORD 'changed-by-hand'");
    MapSecrets locked;
    auto r = s.reconcile(spec, locked);
    INFO(describe(r));
    const auto* o = outcome(r, "main/role/app");
    REQUIRE(o != nullptr);
    CHECK(o->blocked);
    CHECK_FALSE(o->ok);
    CHECK(s.login("app", "changed-by-hand", "appdb"));
  }

  // Whatever the subcase did: no password, and no verifier, on any command
  // line; the controller's psql execs are among those seen.
  s.sql("SELECT 'last exec'");
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i) {  // the events stream lags the exec a little
    lines = watcher.lines();
    if (!lines.empty() && lines.back().find("psql") != std::string::npos) break;
    runSync(s.io, foundationd::sleepFor(50ms));
  }
  std::size_t controllerExecs = 0;
  for (const auto& line : lines) {
    if (line == "psql -X -q -At -v ON_ERROR_STOP=1 -U postgres -d postgres") ++controllerExecs;
  }
  CHECK(controllerExecs >= 2);
  for (const auto& line : lines) {
    INFO(line);
    CHECK_FALSE(contains(line, "app-Pw-1"));
    CHECK_FALSE(contains(line, "readerPassword"));
    CHECK_FALSE(contains(line, "rotated-password"));
    CHECK_FALSE(contains(line, "SCRAM"));
    CHECK_FALSE(contains(line, "PASSWORD"));
  }
}

TEST_CASE("postgres: a missing container is waited for, then reported blocked") {
  const auto image = postgresImage();
  if (image.empty()) return;
  boost::asio::io_context io;
  DockerClient client{io.get_executor()};
  auto spec = makeSpec("fdtest-pg-it-absent-" + std::to_string(::getpid()));
  MapSecrets secrets;
  pg::Options options;
  options.waitReady = 600ms;
  auto r = runSync(io, pg::reconcile(client, spec, secrets, options));
  REQUIRE(r.step.outcomes.size() == 4);
  for (const auto& o : r.step.outcomes) {
    CHECK_FALSE(o.ok);
    CHECK(o.blocked);
    CHECK(contains(o.message, "does not exist yet"));
  }
}

TEST_CASE("postgres: SCRAM verifiers match what the server stores") {
  Server s;
  if (s.image.empty()) return;
  s.waitReady();
  s.sql("SET password_encryption = 'scram-sha-256'; CREATE ROLE probe PASSWORD 'p r0be!';");
  // Read it back only here, in a test, to compare with ours.
  std::string stored = s.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'probe'");
  REQUIRE(!stored.empty());
  stored.pop_back();
  CHECK(pg::scramMatches("p r0be!", stored) == std::optional<bool>(true));
  CHECK(pg::scramMatches("p r0be?", stored) == std::optional<bool>(false));
  // Ours, stored as given, lets a real login in.
  const std::string mine = pg::newScramVerifier("made-here-9");
  s.sql("ALTER ROLE probe LOGIN PASSWORD '" + mine + "'");
  CHECK(s.login("probe", "made-here-9", "postgres"));
  CHECK_FALSE(s.login("probe", "made-here-8", "postgres"));
}
