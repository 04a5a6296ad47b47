// The Vault controller against a real OpenBao server (tests/peers/openbao-image,
// file storage on a Docker volume, not dev mode): first boot (init, unseal,
// mount, policies, credentials equal to the state), a restarted Vault unsealed
// again from the state, drift (a deleted secret, an edited policy) repaired,
// rotation mirrored, never a second init, and the init helper process; the
// plan's observe step against it (each change in Vault or the state planned
// as exactly that change).
#include "controllers/vault/vault.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "config/spec.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/vault/init_helper.hpp"
#include "controllers/vault/vault_client.hpp"
#include "controllers/vault/vault_plan.hpp"
#include "state/store.hpp"

using namespace foundationd;
using namespace std::chrono_literals;

namespace {

std::string sh(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  if (rc) *rc = WEXITSTATUS(status);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string openbaoImage() {
  const char* image = std::getenv("FOUNDATIOND_OPENBAO_IMAGE");
  if (image != nullptr && *image != '\0') return image;
  const char* skip = std::getenv("FOUNDATIOND_SKIP_INTEGRATION");
  const char* ci = std::getenv("CI");
  const bool inCi = ci != nullptr && std::string_view(ci) == "true";
  if (!inCi && skip != nullptr && std::string_view(skip) == "1") {
    MESSAGE("skipped: FOUNDATIOND_SKIP_INTEGRATION=1 and FOUNDATIOND_OPENBAO_IMAGE is unset");
    return {};
  }
  FAIL(
      "FOUNDATIOND_OPENBAO_IMAGE is not set: build it with tests/peers/openbao-image (or run "
      "scripts/test) and export FOUNDATIOND_OPENBAO_IMAGE=<image>");
  return {};
}

std::string unique(const std::string& what) {
  std::random_device rd;
  return "fdtest-vault-" + what + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(rd() % 100000);
}

// One OpenBao container with a persistent volume; removed at the end.
struct Bao {
  std::string image, name, volume, address;
  explicit Bao(std::string img) : image(std::move(img)), name(unique("c")), volume(name + "-data") {
    int rc = 0;
    sh("docker volume create " + volume, &rc);
    REQUIRE(rc == 0);
    start();
  }
  void start() {
    int rc = 0;
    auto out = sh("docker run -d --name " + name + " -p 127.0.0.1::8200 -v " + volume +
                      ":/openbao/data " + image,
                  &rc);
    REQUIRE_MESSAGE(rc == 0, out);
    address = "http://" + sh("docker port " + name + " 8200/tcp");
    waitAnswering();
  }
  void waitAnswering() {
    vault::VaultClient c(address, 2s);
    for (int i = 0; i < 200; ++i) {
      if (c.sealStatus()) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL("OpenBao did not answer at " << address << ": " << sh("docker logs " + name));
  }
  void restart() {
    int rc = 0;
    sh("docker restart -t 2 " + name, &rc);
    REQUIRE(rc == 0);
    address = "http://" + sh("docker port " + name + " 8200/tcp");
    waitAnswering();
  }
  // A fresh server on a fresh (empty) volume, same name.
  void wipe() {
    sh("docker rm -f " + name);
    sh("docker volume rm " + volume);
    sh("docker volume create " + volume);
    start();
  }
  ~Bao() {
    sh("docker rm -f " + name);
    sh("docker volume rm " + volume);
  }
};

struct State {
  std::filesystem::path dir;
  std::unique_ptr<state::Store> store;
  state::UnlockedKey key;
  State() {
    char tmpl[] = "/tmp/fdtest-vault-state-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    auto s = state::Store::openDir(dir);
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto k = store->initialize("correct horse battery staple", state::KdfProfile::interactive);
    REQUIRE(k.ok());
    key = std::move(k).value();
  }
  ~State() { std::filesystem::remove_all(dir); }
  vault::Context context() {
    vault::Context ctx;
    ctx.store = store.get();
    ctx.key = &key;
    ctx.stateDir = dir;
    ctx.waitForVault = 20s;
    return ctx;
  }
};

config::Spec makeSpec(const std::string& address) {
  config::Spec s;
  s.project = "fdtest-vault";
  config::VaultSpec v;
  v.container = "vault";
  v.address = address;
  v.keyShares = 3;
  v.keyThreshold = 2;
  v.kvMount = "foundation";
  v.policies["forgejo"] = {
      "forgejo", "path \"foundation/data/forgejo/*\" { capabilities = [\"read\"] }\n", {}};
  s.vault = v;
  config::CredentialSpec db;
  db.name = "postgres-superuser";
  db.vaultPath = "postgres/superuser-credentials";
  db.fields["username"].value = std::string("postgres");
  db.fields["password"].value = config::Generator{};
  s.credentials[db.name] = db;
  config::CredentialSpec s3;
  s3.name = "rustfs-root";
  s3.vaultPath = "rustfs/root-credentials";
  config::Generator hex;
  hex.kind = config::Generator::Kind::hex;
  hex.bytes = 16;
  s3.fields["accessKey"].value = hex;
  s3.fields["secretKey"].value = config::Generator{};
  s.credentials[s3.name] = s3;
  return s;
}

// makeSpec with its credentials generated into `st`.
config::Spec generatedSpec(const std::string& address, State& st) {
  config::Spec s = makeSpec(address);
  REQUIRE(
      credentials::ensureCredentials(s, *st.store, st.key, std::chrono::system_clock::now()).ok());
  return s;
}

const StepOutcome* find(const StepReport& r, const std::string& name) {
  for (const auto& o : r.outcomes) {
    if (o.key.kind == config::Kind::vault && o.key.name == name) return &o;
  }
  return nullptr;
}

std::string describe(const StepReport& r) {
  std::string out;
  for (const auto& o : r.outcomes) {
    out += "[" + o.key.name + "] ok=" + std::to_string(o.ok) +
           " changed=" + std::to_string(o.changed) + " drift=" + std::to_string(o.drift) + " " +
           o.message + "\n";
  }
  return out;
}

std::string stored(State& st, const std::string& cred, const std::string& field) {
  auto s = st.store->currentSecret(st.key, credentials::kKind, cred, field);
  REQUIRE(s.ok());
  return std::string(s->value.view());
}

vault::VaultClient rootClient(State& st, const std::string& address) {
  auto m = vault::loadInitMaterial(*st.store, st.key);
  REQUIRE(m.ok());
  vault::VaultClient c(address);
  c.setToken(m->rootToken);
  return c;
}

}  // namespace

TEST_CASE("vault: first boot, restart, drift, rotation against a real OpenBao") {
  const std::string image = openbaoImage();
  if (image.empty()) return;
  Bao bao(image);
  State st;
  config::Spec spec = generatedSpec(bao.address, st);

  // First boot: init (keys in the state), unseal, mount, policies, token, credentials.
  auto ctx = st.context();
  vault::Observation seen;
  auto r1 = vault::reconcile(spec, ctx, &seen);
  INFO(describe(r1));
  CHECK(r1.ok());
  CHECK(seen.initialized);
  CHECK_FALSE(seen.sealed);
  REQUIRE(vault::hasInitMaterial(*st.store).value());
  auto material = vault::loadInitMaterial(*st.store, st.key);
  REQUIRE(material.ok());
  CHECK(material->keysBase64.size() == 3);
  CHECK(material->threshold == 2);
  vault::VaultClient v(bao.address);
  auto status = v.sealStatus();
  REQUIRE(status.ok());
  CHECK(status->initialized);
  CHECK_FALSE(status->sealed);
  CHECK(status->shares == 3);
  CHECK(status->threshold == 2);

  auto root = rootClient(st, bao.address);
  auto mounts = root.mounts();
  REQUIRE(mounts.ok());
  REQUIRE(mounts->contains("foundation/"));
  CHECK((*mounts)["foundation/"]["type"] == "kv");
  CHECK((*mounts)["foundation/"]["options"]["version"] == "2");
  auto policy = root.readPolicy("forgejo");
  REQUIRE(policy.ok());
  REQUIRE(policy->has_value());
  CHECK(**policy == spec.vault->policies["forgejo"].rules);
  auto own = root.readPolicy("foundationd");
  REQUIRE(own.ok());
  REQUIRE(own->has_value());
  auto pg = root.kvRead("foundation", "postgres/superuser-credentials");
  REQUIRE(pg.ok());
  REQUIRE(pg->has_value());
  CHECK((*pg)->data.at("username") == "postgres");
  CHECK((*pg)->data.at("password") == stored(st, "postgres-superuser", "password"));
  auto s3 = root.kvRead("foundation", "rustfs/root-credentials");
  REQUIRE(s3.ok());
  REQUIRE(s3->has_value());
  CHECK((*s3)->data.at("accessKey") == stored(st, "rustfs-root", "accessKey"));
  CHECK((*s3)->data.at("secretKey") == stored(st, "rustfs-root", "secretKey"));

  // The routine token is foundationd's own, with only its policy.
  auto token = st.store->currentSecret(st.key, vault::kKind, vault::kTokenName, vault::kTokenField);
  REQUIRE(token.ok());
  vault::VaultClient routine(bao.address);
  routine.setToken(std::string(token->value.view()));
  auto self = routine.lookupSelf();
  REQUIRE(self.ok());
  CHECK(std::find(self->policies.begin(), self->policies.end(), "foundationd") !=
        self->policies.end());
  CHECK(std::find(self->policies.begin(), self->policies.end(), "root") == self->policies.end());
  CHECK(self->period > 0);
  // ... which cannot touch what it does not manage.
  auto denied = routine.writePolicy("not-managed", "path \"x/*\" { capabilities = [\"read\"] }");
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().httpStatus == 403);

  // A second converge changes nothing, in as few requests as it can.
  std::atomic<int> requests{0};
  ctx.observer = [&requests](int) { ++requests; };
  auto r2 = vault::reconcile(spec, ctx);
  INFO(describe(r2));
  CHECK(r2.ok());
  for (const auto& o : r2.outcomes) CHECK_MESSAGE(!o.changed, o.key.name);
  // sys/health, sys/mounts, foundationd's policy, the spec's one policy, one
  // KV read per credential (two); no lookup-self: the token was made a
  // moment ago, its renewal is far off.
  CHECK(requests == 6);

  SUBCASE("restarted Vault is unsealed again from the state, without the operator") {
    bao.restart();  // a new host port: Docker picks one again
    vault::VaultClient after(bao.address);
    REQUIRE(after.sealStatus()->sealed);
    spec.vault->address = bao.address;
    auto r = vault::reconcile(spec, ctx, &seen);
    INFO(describe(r));
    CHECK(r.ok());
    CHECK_FALSE(after.sealStatus()->sealed);
    CHECK(find(r, "")->changed);
    // Still the first init: the same keys unseal it, and nothing was re-initialised.
    auto again = vault::loadInitMaterial(*st.store, st.key);
    CHECK(again->keysBase64 == material->keysBase64);
    CHECK(st.store->secretVersions(vault::kKind, vault::kInitName, vault::kInitField)->size() == 1);
  }

  SUBCASE("a secret deleted or edited in Vault is restored and counted as drift") {
    REQUIRE(root.kvDeleteLatest("foundation", "postgres/superuser-credentials").ok());
    REQUIRE(root.kvWrite("foundation", "rustfs/root-credentials",
                         {{"accessKey", "tampered"}, {"secretKey", "tampered"}}, 1)
                .ok());
    auto r = vault::reconcile(spec, ctx);
    INFO(describe(r));
    CHECK(r.ok());
    const auto* pgOut = find(r, "kv/postgres/superuser-credentials");
    REQUIRE(pgOut != nullptr);
    CHECK(pgOut->changed);
    CHECK(pgOut->drift);
    const auto* s3Out = find(r, "kv/rustfs/root-credentials");
    REQUIRE(s3Out != nullptr);
    CHECK(s3Out->changed);
    CHECK(s3Out->drift);
    auto back = root.kvRead("foundation", "postgres/superuser-credentials");
    REQUIRE(back->has_value());
    CHECK_FALSE((*back)->deleted);
    CHECK((*back)->data.at("password") == stored(st, "postgres-superuser", "password"));
    CHECK(root.kvRead("foundation", "rustfs/root-credentials").value()->data.at("secretKey") ==
          stored(st, "rustfs-root", "secretKey"));

    // Metadata gone too (every version destroyed): written again.
    REQUIRE(root.kvDeleteMetadata("foundation", "postgres/superuser-credentials").ok());
    auto r3 = vault::reconcile(spec, ctx);
    INFO(describe(r3));
    CHECK(find(r3, "kv/postgres/superuser-credentials")->drift);
    CHECK(
        root.kvRead("foundation", "postgres/superuser-credentials").value()->data.at("password") ==
        stored(st, "postgres-superuser", "password"));
  }

  SUBCASE("an edited policy and foundationd's own policy are restored") {
    REQUIRE(root.writePolicy("forgejo", "path \"*\" { capabilities = [\"sudo\"] }").ok());
    REQUIRE(root.writePolicy("foundationd", "path \"*\" { capabilities = [\"sudo\"] }").ok());
    auto r = vault::reconcile(spec, ctx);
    INFO(describe(r));
    CHECK(r.ok());
    REQUIRE(find(r, "policy/forgejo") != nullptr);
    REQUIRE(find(r, "policy/foundationd") != nullptr);
    CHECK(find(r, "policy/forgejo")->drift);
    CHECK(find(r, "policy/foundationd")->drift);
    CHECK(root.readPolicy("forgejo").value().value() == spec.vault->policies["forgejo"].rules);
    CHECK(root.readPolicy("foundationd").value().value() == vault::ownPolicy(*spec.vault));
  }

  SUBCASE("rotation: the new version reaches Vault") {
    auto rotated = credentials::rotateCredential(spec, *st.store, st.key, "postgres-superuser");
    REQUIRE(rotated.ok());
    REQUIRE(vault::mirrorCredential(spec, ctx, "postgres-superuser").ok());
    auto now = root.kvRead("foundation", "postgres/superuser-credentials");
    CHECK((*now)->data.at("password") == stored(st, "postgres-superuser", "password"));
    CHECK((*now)->version == 2);
  }

  SUBCASE("a freshly enabled KV v2 mount is read and written at once") {
    // OpenBao upgrades a new kv mount to versioned data in the background and
    // answers 400 "Upgrading from non-versioned to versioned data" meanwhile:
    // the client waits that out instead of failing the first apply.
    for (int i = 0; i < 8; ++i) {
      const std::string mount = "fresh" + std::to_string(i);
      REQUIRE(root.enableKv2(mount).ok());
      auto none = root.kvRead(mount, "app/key");
      REQUIRE_MESSAGE(none.ok(), none.error().message);
      CHECK_FALSE(none->has_value());
      auto v = root.kvWrite(mount, "app/key", {{"token", "t" + std::to_string(i)}}, 0);
      REQUIRE_MESSAGE(v.ok(), v.error().message);
      CHECK(*v == 1);
    }
  }

  SUBCASE("a revoked routine token is replaced using the root token") {
    // Not looked up (the no-op above made no lookup-self): the reads it
    // makes are refused, which looks it up, and a new one is made.
    REQUIRE(root.revokeToken(std::string(token->value.view())).ok());
    auto r = vault::reconcile(spec, ctx);
    INFO(describe(r));
    CHECK(r.ok());
    for (const auto& o : r.outcomes) CHECK_MESSAGE(!o.changed, o.key.name);
    CHECK(st.store->secretVersions(vault::kKind, vault::kTokenName, vault::kTokenField)->size() ==
          2);
    // The new one is used, and needs no lookup-self either.
    requests = 0;
    auto quiet = vault::reconcile(spec, ctx);
    INFO(describe(quiet));
    CHECK(quiet.ok());
    CHECK(requests == 6);

    // Revoked while its renewal is due (half its period later): looked up
    // first, refused, replaced the same way.
    auto second =
        st.store->currentSecret(st.key, vault::kKind, vault::kTokenName, vault::kTokenField);
    REQUIRE(second.ok());
    REQUIRE(root.revokeToken(std::string(second->value.view())).ok());
    ctx.clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(24 * 17); };
    auto due = vault::reconcile(spec, ctx);
    INFO(describe(due));
    CHECK(due.ok());
    CHECK(st.store->secretVersions(vault::kKind, vault::kTokenName, vault::kTokenField)->size() ==
          3);
  }

  SUBCASE("the token is looked up again once its renewal may be due") {
    // 17 days on, of a 32-day period: less than half is left.
    ctx.clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(24 * 17); };
    requests = 0;
    auto r = vault::reconcile(spec, ctx);
    INFO(describe(r));
    CHECK(r.ok());
    CHECK(requests == 7);  // the no-op's six and lookup-self
    // Vault says the whole period is left (the clock above is only ours): the
    // next lookup is due half a period from that lookup, not at once.
    requests = 0;
    auto again = vault::reconcile(spec, ctx);
    CHECK(again.ok());
    CHECK(requests == 6);
  }

  SUBCASE("a token past half its period is renewed") {
    // A token of foundationd's policy with a 10 s period, in the state as its own.
    auto brief = root.createPeriodicToken({"foundationd"}, "10s", "foundationd");
    REQUIRE(brief.ok());
    REQUIRE(st.store->putSecret(st.key, vault::kKind, vault::kTokenName, vault::kTokenField, *brief)
                .ok());
    requests = 0;
    auto looked = vault::reconcile(spec, ctx);
    INFO(describe(looked));
    CHECK(looked.ok());
    CHECK(requests == 7);  // a new token version: looked up once
    requests = 0;
    auto quiet = vault::reconcile(spec, ctx);
    CHECK(quiet.ok());
    CHECK(requests == 6);  // more than half its period left
    std::this_thread::sleep_for(6s);
    requests = 0;
    auto renewed = vault::reconcile(spec, ctx);
    INFO(describe(renewed));
    CHECK(renewed.ok());
    CHECK(requests == 8);  // lookup-self, renew-self
    vault::VaultClient b(bao.address);
    b.setToken(*brief);
    auto self = b.lookupSelf();
    REQUIRE(self.ok());
    CHECK(self->ttlSeconds > 7);
    // Still foundationd's token: nothing was replaced.
    CHECK(st.store->secretVersions(vault::kKind, vault::kTokenName, vault::kTokenField)->size() ==
          2);
  }

  SUBCASE("never a second init") {
    // Another state (no keys) pointed at this initialised Vault: blocked.
    State other;
    auto octx = other.context();
    auto r = vault::reconcile(spec, octx, &seen);
    INFO(describe(r));
    CHECK_FALSE(r.ok());
    CHECK(find(r, "")->blocked);
    CHECK(seen.problem.find("holds no keys") != std::string::npos);
    CHECK_FALSE(vault::hasInitMaterial(*other.store).value());
    // And the state with keys facing a wiped (uninitialised) Vault: blocked, not re-initialised.
    bao.wipe();
    spec.vault->address = bao.address;
    auto w = vault::reconcile(spec, ctx, &seen);
    INFO(describe(w));
    CHECK(find(w, "")->blocked);
    CHECK_FALSE(vault::VaultClient(bao.address).sealStatus()->initialized);
  }
}

TEST_CASE("vault: locked state only observes") {
  const std::string image = openbaoImage();
  if (image.empty()) return;
  Bao bao(image);
  State st;
  st.key.lock();
  config::Spec spec = makeSpec(bao.address);
  auto ctx = st.context();
  vault::Observation seen;
  auto r = vault::reconcile(spec, ctx, &seen);
  CHECK(seen.reachable);
  CHECK_FALSE(seen.initialized);
  REQUIRE(find(r, "") != nullptr);
  CHECK(find(r, "")->blocked);
  CHECK_FALSE(vault::VaultClient(bao.address).sealStatus()->initialized);
}

TEST_CASE("vault: the init helper process initialises and persists; a second run does not") {
  const std::string image = openbaoImage();
  if (image.empty()) return;
  const char* bin = std::getenv("FOUNDATIOND_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "FOUNDATIOND_BIN must name the foundationd binary");
  Bao bao(image);
  State st;
  // Vault refuses a threshold of 1 with several shares: 3 shares, 2 needed.
  vault::HelperRequest req{st.dir.string(), bao.address, 3, 2};
  auto r = vault::runInitHelper(bin, req, st.key);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK(*r == vault::InitResult::initialized);
  auto m = vault::loadInitMaterial(*st.store, st.key);
  REQUIRE(m.ok());
  CHECK(m->keysBase64.size() == 3);
  // The whole answer is kept as OpenBao gave it (hex keys and all), sealed.
  auto raw = st.store->currentSecret(st.key, vault::kKind, vault::kInitName, vault::kInitField);
  REQUIRE(raw.ok());
  const auto stored = nlohmann::json::parse(raw->value.view());
  CHECK(stored["answer"]["keys"].size() == 3);
  CHECK(stored["answer"]["root_token"] == m->rootToken);
  CHECK(stored["recovery_keys_base64"].empty());
  vault::VaultClient c(bao.address);
  auto u = vault::unsealFromState(c, *st.store, st.key);
  REQUIRE(u.ok());
  CHECK_FALSE(u->sealed);
  auto again = vault::runInitHelper(bin, req, st.key);
  REQUIRE(again.ok());
  CHECK(*again == vault::InitResult::already_initialized);
  CHECK(st.store->secretVersions(vault::kKind, vault::kInitName, vault::kInitField)->size() == 1);
}

namespace {

std::string describePlan(const std::vector<PlanChange>& plan) {
  std::string out;
  for (const auto& c : plan) {
    out += std::string(planActionName(c.action)) + " " + c.key.name + ": " + c.reason + " [";
    for (const auto& f : c.fields) out += f.field + " ";
    out += "]\n";
  }
  return out;
}

std::vector<std::string> fieldsOf(const PlanChange& c) {
  std::vector<std::string> out;
  for (const auto& f : c.fields) out.push_back(f.field);
  return out;
}

}  // namespace

TEST_CASE("vault: the plan of a change in Vault or the state shows exactly that change") {
  const std::string image = openbaoImage();
  if (image.empty()) return;
  Bao bao(image);
  State st;
  config::Spec spec = generatedSpec(bao.address, st);
  auto ctx = st.context();
  auto r1 = vault::reconcile(spec, ctx);
  INFO(describe(r1));
  REQUIRE(r1.ok());
  auto planNow = [&] { return vault::plan(spec, vault::observeForPlan(spec, ctx, false)); };
  std::atomic<int> requests{0};
  ctx.observer = [&requests](int) { ++requests; };
  auto converged = planNow();
  INFO(describePlan(converged));
  CHECK(converged.empty());
  // seal-status, then at once: sys/mounts, foundationd's policy, the spec's
  // one policy, one KV read per credential (two); no lookup-self.
  CHECK(requests == 6);
  auto root = rootClient(st, bao.address);

  SUBCASE("foundationd's token revoked: not compared, and apply makes a new one") {
    auto token = st.store->currentSecret(st.key, vault::kKind, vault::kTokenName,
                                         vault::kTokenField);
    REQUIRE(token.ok());
    REQUIRE(root.revokeToken(std::string(token->value.view())).ok());
    const auto seen = vault::observeForPlan(spec, ctx, false);
    CHECK(seen.newToken);
    REQUIRE(seen.unreadable.has_value());
    CHECK(seen.unreadable->find("cannot compare: foundationd's Vault token") !=
          std::string::npos);
    CHECK(seen.policies.empty());  // nothing guessed
    CHECK(seen.kv.empty());
  }

  SUBCASE("a policy edited in Vault") {
    REQUIRE(root.writePolicy("forgejo", "path \"foundation/data/*\" { capabilities = [\"read\"] }")
                .ok());
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 1);
    CHECK(p[0].key.name == "policy/forgejo");
    CHECK(p[0].action == PlanAction::update);
    CHECK(p[0].reason == "rules differ");
    CHECK(fieldsOf(p[0]) == std::vector<std::string>{"rules"});
  }

  SUBCASE("foundationd's own policy edited in Vault (still readable by its token)") {
    REQUIRE(
        root.writePolicy("foundationd", vault::ownPolicy(*spec.vault) +
                                            "path \"cubbyhole/*\" { capabilities = [\"read\"] }\n")
            .ok());
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 1);
    CHECK(p[0].key.name == "policy/foundationd");
    CHECK(p[0].action == PlanAction::update);
  }

  SUBCASE("one mirrored field edited in Vault") {
    auto have = root.kvRead("foundation", "rustfs/root-credentials");
    REQUIRE(have.ok());
    REQUIRE(have->has_value());
    auto data = (*have)->data;
    data["accessKey"] = "edited";
    REQUIRE(root.kvWrite("foundation", "rustfs/root-credentials", data, (*have)->version).ok());
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 1);
    CHECK(p[0].key.name == "kv/rustfs/root-credentials");
    CHECK(p[0].action == PlanAction::update);
    CHECK(fieldsOf(p[0]) == std::vector<std::string>{"accessKey"});
    CHECK(p[0].reason == "accessKey differs from the state");
    // Never a value: Vault's version and digests only.
    CHECK(describePlan(p).find("edited") == std::string::npos);
    CHECK(p[0].fields[0].before.find("version 2") != std::string::npos);
  }

  SUBCASE("a mirrored secret deleted in Vault") {
    REQUIRE(root.kvDeleteLatest("foundation", "postgres/superuser-credentials").ok());
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 1);
    CHECK(p[0].key.name == "kv/postgres/superuser-credentials");
    CHECK(p[0].action == PlanAction::create);
    CHECK(p[0].reason == "not in Vault");
    CHECK(fieldsOf(p[0]) == std::vector<std::string>{"password", "username"});
  }

  SUBCASE("a credential rotated in the state") {
    REQUIRE(credentials::rotateCredential(spec, *st.store, st.key, "postgres-superuser").ok());
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 1);
    CHECK(p[0].key.name == "kv/postgres/superuser-credentials");
    CHECK(p[0].action == PlanAction::update);
    CHECK(fieldsOf(p[0]) == std::vector<std::string>{"password"});
  }

  SUBCASE("the KV mount disabled: the mount and the secrets it held, nothing else") {
    auto gone = root.call("DELETE", "sys/mounts/foundation");
    REQUIRE(gone.ok());
    REQUIRE(gone->status == 204);
    auto p = planNow();
    INFO(describePlan(p));
    REQUIRE(p.size() == 3);
    CHECK(p[0].key.name == "mount/foundation");
    CHECK(p[0].action == PlanAction::create);
    CHECK(p[1].key.name == "kv/postgres/superuser-credentials");
    CHECK(p[1].action == PlanAction::create);
    CHECK(p[2].key.name == "kv/rustfs/root-credentials");
    CHECK(p[2].action == PlanAction::create);
  }

  // Whatever changed, one apply makes the plan empty again.
  auto r = vault::reconcile(spec, ctx);
  INFO(describe(r));
  CHECK(r.ok());
  auto after = planNow();
  INFO(describePlan(after));
  CHECK(after.empty());
}
