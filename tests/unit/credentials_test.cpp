#include <doctest/doctest.h>

#include <filesystem>

#include "controllers/credentials/credentials.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using foundationd::testing::specFrom;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A fresh, initialised store in a temporary directory with a settable clock.
struct Fixture {
  fs::path dir = fs::temp_directory_path() /
                 ("fd-cred-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  state::TimePoint now = std::chrono::system_clock::now();
  std::unique_ptr<state::Store> store;
  state::UnlockedKey key;

  Fixture() {
    state::StoreOptions opts;
    opts.clock = [this] { return now; };
    auto s = state::Store::open(dir / "state.db", opts);
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto k = store->initialize("correct horse", state::KdfProfile::interactive);
    REQUIRE(k.ok());
    key = std::move(k).value();
  }
  ~Fixture() { fs::remove_all(dir); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string value(const std::string& name, const std::string& field) {
    auto s = store->currentSecret(key, credentials::kKind, name, field);
    REQUIRE(s.ok());
    return std::string(s->value.view());
  }
  int versions(const std::string& name, const std::string& field) {
    auto v = store->secretVersions(credentials::kKind, name, field);
    REQUIRE(v.ok());
    return static_cast<int>(v->size());
  }
};

const char* kSpec = R"(
spec_version = 1
project = "p"
[credentials.db]
rotate_every = "30d"
[credentials.db.fields]
username = "app"
password = { generate = "password", length = 24 }
[credentials.api]
[credentials.api.fields]
token = { generate = "hex", bytes = 16 }
id = { generate = "uuid" }
)";

}  // namespace

TEST_CASE("every generated field is made once, durable, and never regenerated") {
  Fixture f;
  auto spec = specFrom(kSpec);
  auto plan = credentials::planCredentials(spec, *f.store, f.now);
  REQUIRE(plan.ok());
  CHECK(plan->size() == 3);  // db.password, api.token, api.id; username is a literal

  auto first = credentials::ensureCredentials(spec, *f.store, f.key, f.now);
  REQUIRE(first.ok());
  CHECK(first->size() == 3);
  auto pw = f.value("db", "password");
  CHECK(pw.size() == 24);
  CHECK(f.value("api", "token").size() == 32);

  // Durable: a second store on the same file (another process) sees it.
  auto other = state::Store::open(f.dir / "state.db");
  REQUIRE(other.ok());
  auto again = other.value()->unlock("correct horse");
  REQUIRE(again.ok());
  auto seen = other.value()->currentSecret(again.value(), "credential", "db", "password");
  REQUIRE(seen.ok());
  CHECK(seen->value.equals(pw));

  auto second = credentials::ensureCredentials(spec, *f.store, f.key, f.now + 1h);
  REQUIRE(second.ok());
  CHECK(second->empty());
  CHECK(f.value("db", "password") == pw);
  CHECK(f.versions("db", "password") == 1);
  CHECK(credentials::planCredentials(spec, *f.store, f.now)->empty());
}

TEST_CASE("rotate_every rotates once it has elapsed, and only then") {
  Fixture f;
  auto spec = specFrom(kSpec);
  REQUIRE(credentials::ensureCredentials(spec, *f.store, f.key, f.now).ok());
  auto pw = f.value("db", "password");
  auto token = f.value("api", "token");

  CHECK(credentials::ensureCredentials(spec, *f.store, f.key, f.now + 24h * 29)->empty());
  auto plan = credentials::planCredentials(spec, *f.store, f.now + 24h * 31);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 1);
  CHECK(std::string(credentials::toString(plan->at(0).action)) == "rotate");
  CHECK(plan->at(0).reason.find("rotate_every 30d elapsed") != std::string::npos);

  auto rotated = credentials::ensureCredentials(spec, *f.store, f.key, f.now + 24h * 31);
  REQUIRE(rotated.ok());
  REQUIRE(rotated->size() == 1);
  CHECK(rotated->at(0).rotated);
  CHECK(rotated->at(0).version == 2);
  CHECK(f.value("db", "password") != pw);
  CHECK(f.value("api", "token") == token);  // no rotate_every on api
}

TEST_CASE("changed generator parameters are reported and wait for a rotation") {
  Fixture f;
  REQUIRE(credentials::ensureCredentials(specFrom(kSpec), *f.store, f.key, f.now).ok());
  auto pw = f.value("db", "password");
  std::string text = kSpec;
  text.replace(text.find("length = 24"), 11, "length = 40");
  auto changed = specFrom(text);
  auto plan = credentials::planCredentials(changed, *f.store, f.now);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 1);
  CHECK(std::string(credentials::toString(plan->at(0).action)) == "params_changed");
  CHECK(credentials::ensureCredentials(changed, *f.store, f.key, f.now)->empty());
  CHECK(f.value("db", "password") == pw);

  auto rotated = credentials::rotateCredential(changed, *f.store, f.key, "db");
  REQUIRE(rotated.ok());
  REQUIRE(rotated->size() == 1);  // only the generated field
  CHECK(f.value("db", "password").size() == 40);
  CHECK(credentials::planCredentials(changed, *f.store, f.now)->empty());

  auto missing = credentials::rotateCredential(changed, *f.store, f.key, "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(std::string(toString(missing.error().code)) == "not_found");
}

TEST_CASE("the resolver: digests without the key, values with it") {
  Fixture f;
  auto spec = specFrom(kSpec);
  REQUIRE(credentials::ensureCredentials(spec, *f.store, f.key, f.now).ok());
  config::CredentialRef pw{"db", "password"}, user{"db", "username"};

  state::UnlockedKey locked;
  credentials::Resolver noKey(spec, f.store.get(), &locked);
  auto d1 = noKey.digest(pw);
  REQUIRE(d1.has_value());
  CHECK(d1->size() == 64);
  CHECK(d1->find(f.value("db", "password")) == std::string::npos);
  CHECK_FALSE(noKey.value(pw).has_value());
  CHECK(noKey.value(user) == std::optional<std::string>("app"));  // literals are not secret

  credentials::Resolver withKey(spec, f.store.get(), &f.key);
  CHECK(withKey.value(pw) == std::optional<std::string>(f.value("db", "password")));

  REQUIRE(credentials::rotateCredential(spec, *f.store, f.key, "db").ok());
  CHECK(noKey.digest(pw) != d1);  // plan sees the rotation without the passphrase

  credentials::Resolver noStore(spec, nullptr, nullptr);
  CHECK_FALSE(noStore.digest(pw).has_value());
}
