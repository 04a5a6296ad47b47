// The pure plans of the service controllers (Vault, PostgreSQL, the forge):
// observed state + spec -> the changes, with reasons and field diffs, no
// secrets, unknowns said as such. Their observe sides against the real peers
// are covered by tests/e2e/test_plan_stack.py.
#include <algorithm>
#include <string>

#include <doctest/doctest.h>

#include "controllers/forgejo/forgejo_plan.hpp"
#include "controllers/postgres/postgres_plan.hpp"
#include "controllers/vault/vault_plan.hpp"
#include "tests/unit/spec_fixture.hpp"

using namespace foundationd;

namespace {

const char* kSpec = R"(spec_version = 1
project = "p"
[credentials.app-db]
vault_path = "app/db"
[credentials.app-db.fields]
username = "app"
password = { generate = "password", length = 32 }
[credentials.hook]
[credentials.hook.fields]
secret = { generate = "hex", bytes = 16 }
[containers.bao]
image = "busybox"
[containers.pg]
image = "busybox"
[containers.forge]
image = "busybox"
[vault]
container = "bao"
key_shares = 3
key_threshold = 2
[vault.policies.app]
rules = 'path "foundation/data/app/*" { capabilities = ["read"] }'
[postgres.main]
container = "pg"
[postgres.main.roles.app]
password = "${credentials.app-db.password}"
[postgres.main.databases.appdb]
owner = "app"
[forgejo]
container = "forge"
[forgejo.admin]
username = "root"
email = "root@example.org"
password = "${credentials.app-db.password}"
[forgejo.orgs.olsitec]
[forgejo.repos."olsitec/foundation"]
description = "the foundation"
[forgejo.repos."olsitec/foundation".actions_variables]
REGION = "eu"
[forgejo.webhooks."olsitec/foundation"]
url = "http://hooks.example/push"
secret = "${credentials.hook.secret}"
[forgejo.runner_token]
vault_path = "forgejo/runner"
)";

const PlanChange* find(const std::vector<PlanChange>& changes, const std::string& resource) {
  auto it = std::find_if(changes.begin(), changes.end(),
                         [&](const PlanChange& c) { return c.key.str() == resource; });
  return it == changes.end() ? nullptr : &*it;
}

const PlanField* field(const PlanChange* c, const std::string& name) {
  if (!c) return nullptr;
  for (const auto& f : c->fields) {
    if (f.field == name) return &f;
  }
  return nullptr;
}

}  // namespace

// --- PostgreSQL -------------------------------------------------------------------

TEST_CASE("postgres plan: converged lists nothing; each difference is one change with its fields") {
  const auto spec = testing::specFrom(kSpec);
  postgres::Observed o;
  auto& main = o["main"];
  main.state = postgres::ObservedInstance::State::live;
  main.roles["app"] = {true, true, ""};
  main.databaseOwners["appdb"] = "app";
  CHECK(postgres::plan(spec, o).empty());

  main.roles["app"] = {false, false, ""};  // NOLOGIN, another password
  main.databaseOwners["appdb"] = "postgres";
  auto changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 2);
  const auto* role = find(changes, "postgres.main/role/app");
  REQUIRE(role);
  CHECK(role->action == PlanAction::update);
  CHECK(role->reason == "login and password differ");
  CHECK(field(role, "login")->before == "false");
  CHECK(field(role, "login")->after == "true");
  CHECK(field(role, "password")->before == "(differs)");
  CHECK(field(role, "password")->after == "(credential app-db)");
  const auto* db = find(changes, "postgres.main/database/appdb");
  REQUIRE(db);
  CHECK(db->action == PlanAction::update);
  CHECK(field(db, "owner")->before == "postgres");
  CHECK(field(db, "owner")->after == "app");
  CHECK(planHasChanges(changes));
}

TEST_CASE("postgres plan: missing role and database are created; absent host creates all") {
  const auto spec = testing::specFrom(kSpec);
  postgres::Observed o;
  o["main"].state = postgres::ObservedInstance::State::live;
  auto changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].key.str() == "postgres.main/role/app");
  CHECK(changes[0].action == PlanAction::create);
  CHECK(changes[1].action == PlanAction::create);
  CHECK(field(&changes[1], "owner")->after == "app");

  o["main"] = {postgres::ObservedInstance::State::absent, "container pg does not exist yet", {}, {}};
  changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].action == PlanAction::create);
  CHECK(changes[0].reason == "container pg does not exist yet");
}

TEST_CASE("postgres plan: locked, a password is unknown, never guessed; not observable is unknown") {
  const auto spec = testing::specFrom(kSpec);
  postgres::Observed o;
  auto& main = o["main"];
  main.state = postgres::ObservedInstance::State::live;
  main.roles["app"] = {true, std::nullopt, "cannot compare while locked"};
  main.databaseOwners["appdb"] = "app";
  auto changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].action == PlanAction::unknown);
  CHECK(changes[0].reason == "password: cannot compare while locked");
  CHECK(field(&changes[0], "password")->unknown);
  CHECK_FALSE(planHasChanges(changes));

  main.roles["app"] = {false, std::nullopt, "cannot compare while locked"};  // and NOLOGIN
  changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].action == PlanAction::update);  // LOGIN is known to differ
  CHECK(changes[0].reason == "login differs");

  o["main"] = {postgres::ObservedInstance::State::unknown, "cannot observe: psql exit 2", {}, {}};
  changes = postgres::plan(spec, o);
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].action == PlanAction::unknown);
  CHECK(changes[1].reason == "cannot observe: psql exit 2");
  CHECK_FALSE(planHasChanges(changes));
}

// --- Vault ------------------------------------------------------------------------

namespace {

vault::PlanObservation convergedVault(const config::Spec& spec) {
  vault::PlanObservation o;
  o.state = vault::PlanObservation::State::live;
  o.initialized = true;
  o.sealed = false;
  o.hasKeys = true;
  o.mount = vault::PlanObservation::Mount::kv2;
  o.policies[vault::kOwnPolicy] = vault::ownPolicy(*spec.vault);
  o.policies["app"] = "\n" + spec.vault->policies.at("app").rules + "\n";  // whitespace aside
  for (const auto& [_, cred] : spec.credentials) {
    auto& kv = o.kv[cred.vaultPath];
    kv.present = true;
    kv.version = 3;
    for (const auto& [f, __] : cred.fields) {
      kv.digests[f] = "d-" + cred.name + "-" + f;
      o.desired[cred.vaultPath][f] = "d-" + cred.name + "-" + f;
    }
  }
  return o;
}

}  // namespace

TEST_CASE("vault plan: converged lists nothing; a policy and a mirrored field that differ do") {
  const auto spec = testing::specFrom(kSpec);
  auto o = convergedVault(spec);
  CHECK(vault::plan(spec, o).empty());

  o.policies["app"] = "path \"x\" {}";
  o.kv["app/db"].digests["password"] = "d-old-0123456789abcdef";
  o.kv["hook"].present = false;  // deleted in Vault
  auto changes = vault::plan(spec, o);
  REQUIRE(changes.size() == 3);
  const auto* policy = find(changes, "vault.policy/app");
  REQUIRE(policy);
  CHECK(policy->action == PlanAction::update);
  CHECK(policy->reason == "rules differ");
  const auto* kv = find(changes, "vault.kv/app/db");
  REQUIRE(kv);
  CHECK(kv->action == PlanAction::update);
  CHECK(kv->reason == "password differs from the state");
  REQUIRE(kv->fields.size() == 1);
  CHECK(kv->fields[0].before == "version 3, digest d-old-012345");
  CHECK(kv->fields[0].after == "the state's, digest d-app-db-pas");
  const auto* hook = find(changes, "vault.kv/hook");
  REQUIRE(hook);
  CHECK(hook->action == PlanAction::create);
  CHECK(field(hook, "secret")->after == "the state's, digest d-hook-secre");
}

TEST_CASE("vault plan: a new Vault is initialised and everything under it created") {
  const auto spec = testing::specFrom(kSpec);
  vault::PlanObservation o;
  o.state = vault::PlanObservation::State::live;
  o.initialized = false;
  o.desired["app/db"] = {{"username", ""}, {"password", ""}};
  o.desired["hook"] = {{"secret", ""}};
  auto changes = vault::plan(spec, o);
  std::vector<std::string> keys;
  for (const auto& c : changes) keys.push_back(c.key.str() + ":" + planActionName(c.action));
  CHECK(keys == std::vector<std::string>{"vault:create", "vault.mount/foundation:create",
                                         "vault.policy/foundationd:create",
                                         "vault.policy/app:create", "vault.kv/app/db:create",
                                         "vault.kv/hook:create"});
  CHECK(field(find(changes, "vault.kv/app/db"), "password")->after == "(generated by this apply)");
  CHECK(field(find(changes, "vault"), "initialised")->after ==
        "true (3 key shares, threshold 2)");
}

TEST_CASE("vault plan: locked, sealed or unreachable, what needs the token is unknown") {
  const auto spec = testing::specFrom(kSpec);
  auto o = convergedVault(spec);
  o.unreadable = "cannot compare while locked";
  auto changes = vault::plan(spec, o);
  REQUIRE(changes.size() == 5);  // mount, own policy, app policy, two KV paths
  for (const auto& c : changes) {
    CHECK(c.action == PlanAction::unknown);
    CHECK(c.reason == "cannot compare while locked");
  }
  CHECK_FALSE(planHasChanges(changes));

  o.sealed = true;
  o.unreadable = "cannot compare while Vault is sealed (apply unseals it first)";
  changes = vault::plan(spec, o);
  REQUIRE(changes.size() == 6);
  CHECK(changes[0].key.str() == "vault");
  CHECK(changes[0].action == PlanAction::update);
  CHECK(field(&changes[0], "sealed")->after == "false");

  vault::PlanObservation down;
  down.why = "cannot observe: Vault does not answer";
  changes = vault::plan(spec, down);
  REQUIRE(changes.size() == 6);
  CHECK(std::all_of(changes.begin(), changes.end(),
                    [](const PlanChange& c) { return c.action == PlanAction::unknown; }));
}

// --- the forge ----------------------------------------------------------------------

namespace {

forgejo::PlanObservation convergedForge() {
  forgejo::PlanObservation o;
  o.state = forgejo::PlanObservation::State::live;
  o.admin = forgejo::PlanObservation::Admin::ok;
  o.isAdmin = true;
  o.email = "root@example.org";
  o.orgs["olsitec"] = true;
  o.repos["olsitec/foundation"] = {true, false, "the foundation"};
  auto& hook = o.hooks["olsitec/foundation"];
  hook = {true, "http://hooks.example/push", "json", true, true, true, ""};
  o.actions["repo/olsitec/foundation"].variables["REGION"] = "eu";
  o.runnerStored = true;
  o.runnerInVault = true;
  return o;
}

}  // namespace

TEST_CASE("forgejo plan: converged lists nothing; each difference is listed with its fields") {
  const auto spec = testing::specFrom(kSpec);
  auto o = convergedForge();
  CHECK(forgejo::plan(spec, o).empty());

  o.email = "other@example.org";
  o.orgs["olsitec"] = false;
  o.repos["olsitec/foundation"] = {true, true, ""};
  o.hooks["olsitec/foundation"].active = false;
  o.hooks["olsitec/foundation"].secretSame = false;
  o.actions["repo/olsitec/foundation"].variables["REGION"] = "us";
  o.runnerInVault = false;
  auto changes = forgejo::plan(spec, o);
  std::vector<std::string> keys;
  for (const auto& c : changes) keys.push_back(c.key.str() + ":" + planActionName(c.action));
  CHECK(keys == std::vector<std::string>{
                    "forgejo.runner-token:update", "forgejo.admin/root:update",
                    "forgejo.org/olsitec:create", "forgejo.repo/olsitec/foundation:update",
                    "forgejo.webhook/olsitec/foundation:update",
                    "forgejo.actions/repo/olsitec/foundation:update"});
  CHECK(field(find(changes, "forgejo.admin/root"), "email")->before == "other@example.org");
  const auto* repo = find(changes, "forgejo.repo/olsitec/foundation");
  CHECK(field(repo, "private")->before == "true");
  CHECK(field(repo, "description")->after == "the foundation");
  const auto* hook = find(changes, "forgejo.webhook/olsitec/foundation");
  CHECK(hook->reason == "not as the spec says: active, secret");
  CHECK(field(find(changes, "forgejo.actions/repo/olsitec/foundation"), "variable REGION")->before ==
        "us");
}

TEST_CASE("forgejo plan: locked, what needs the admin is unknown; a new forge creates all") {
  const auto spec = testing::specFrom(kSpec);
  forgejo::PlanObservation o;
  o.state = forgejo::PlanObservation::State::live;
  o.adminUnknown = "cannot compare while locked (the admin password is sealed in the state)";
  o.runnerStored = true;
  o.runnerWhy = "cannot compare while locked";
  auto changes = forgejo::plan(spec, o);
  REQUIRE(changes.size() == 6);  // runner token, admin, org, repo, webhook, actions
  CHECK(std::all_of(changes.begin(), changes.end(),
                    [](const PlanChange& c) { return c.action == PlanAction::unknown; }));
  CHECK(find(changes, "forgejo.runner-token")->reason == "Vault's copy: cannot compare while locked");
  CHECK_FALSE(planHasChanges(changes));

  forgejo::PlanObservation fresh;
  fresh.state = forgejo::PlanObservation::State::absent;
  fresh.why = "container forge does not exist yet: set up with it";
  changes = forgejo::plan(spec, fresh);
  REQUIRE(changes.size() == 6);
  CHECK(std::all_of(changes.begin(), changes.end(),
                    [](const PlanChange& c) { return c.action == PlanAction::create; }));
  CHECK(field(find(changes, "forgejo.webhook/olsitec/foundation"), "url")->after ==
        "http://hooks.example/push");

  // A webhook secret that cannot be compared (locked) is unknown, not a change.
  auto live = convergedForge();
  live.hooks["olsitec/foundation"].secretSame.reset();
  live.hooks["olsitec/foundation"].secretWhy = "cannot compare while locked";
  changes = forgejo::plan(spec, live);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].action == PlanAction::unknown);
  CHECK(changes[0].reason == "secret: cannot compare while locked");
}
