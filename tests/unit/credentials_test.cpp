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

TEST_CASE("provided fields: blocked until set, then a value like a generated one") {
  Fixture f;
  auto spec = specFrom(R"(
spec_version = 1
project = "p"
[credentials.smtp.fields]
user = "mailer"
password = { provided = true }
[credentials.db.fields]
password = { generate = "hex" }
)");
  // Never generated; plan reports it blocked, naming the command.
  auto made = credentials::ensureCredentials(spec, *f.store, f.key, f.now);
  REQUIRE(made.ok());
  CHECK(made->size() == 1);  // db.password only
  CHECK(f.versions("smtp", "password") == 0);
  auto plan = credentials::planCredentials(spec, *f.store, f.now);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 1);
  CHECK((plan->at(0).action == credentials::FieldPlan::Action::blocked));
  CHECK(plan->at(0).reason.find("run `foundationd secret set smtp.password`") != std::string::npos);
  auto unset = credentials::unsetProvided(spec, f.store.get());
  REQUIRE(unset.ok());
  CHECK(unset.value() == std::vector<config::CredentialRef>{{"smtp", "password"}});
  config::CredentialRef ref{"smtp", "password"};
  credentials::Resolver resolver(spec, f.store.get(), &f.key);
  CHECK_FALSE(resolver.digest(ref).has_value());
  CHECK_FALSE(resolver.value(ref).has_value());

  // Refused: not a provided field, an unknown one, an empty value. Nothing stored.
  CHECK((credentials::setProvided(spec, *f.store, f.key, "db", "password", "x", "t").error().code ==
        ErrorCode::invalid_argument));
  CHECK((credentials::setProvided(spec, *f.store, f.key, "smtp", "user", "x", "t").error().code ==
        ErrorCode::invalid_argument));
  CHECK((credentials::setProvided(spec, *f.store, f.key, "smtp", "nope", "x", "t").error().code ==
        ErrorCode::not_found));
  CHECK((credentials::setProvided(spec, *f.store, f.key, "smtp", "password", "", "t").error().code ==
        ErrorCode::invalid_argument));
  CHECK(f.versions("smtp", "password") == 0);

  auto audit0 = f.store->auditSince(0);
  REQUIRE(audit0.ok());
  auto set = credentials::setProvided(spec, *f.store, f.key, "smtp", "password", "s3cret-value",
                                      "alice (uid 1000)");
  REQUIRE(set.ok());
  CHECK(set->version == 1);
  CHECK_FALSE(set->rotated);
  CHECK(f.value("smtp", "password") == "s3cret-value");
  const auto d1 = resolver.digest(ref);
  REQUIRE(d1.has_value());
  CHECK(resolver.value(ref) == std::optional<std::string>("s3cret-value"));
  CHECK(credentials::unsetProvided(spec, f.store.get())->empty());
  CHECK(credentials::planCredentials(spec, *f.store, f.now)->empty());
  // Audited: who and which field, never the value.
  auto audit = f.store->auditSince(audit0->empty() ? 0 : audit0->back().id);
  REQUIRE(audit.ok());
  REQUIRE(audit->size() == 1);
  CHECK(audit->at(0).event == "credential.provided");
  CHECK(audit->at(0).fieldsJson.find("alice (uid 1000)") != std::string::npos);
  CHECK(audit->at(0).fieldsJson.find("s3cret-value") == std::string::npos);

  // Setting it again is a rotation: a new version, a new digest.
  auto again = credentials::setProvided(spec, *f.store, f.key, "smtp", "password", "newer", "t");
  REQUIRE(again.ok());
  CHECK(again->version == 2);
  CHECK(again->rotated);
  CHECK(resolver.digest(ref) != d1);
  // rotate never touches a provided field.
  CHECK_FALSE(credentials::rotateCredential(spec, *f.store, f.key, "smtp").ok());
  CHECK(f.value("smtp", "password") == "newer");
}

TEST_CASE("${forgejo.runner_token} resolves to the token the forge step sealed") {
  Fixture f;
  auto spec = specFrom(kSpec);
  const auto ref = config::CredentialRef::forgejoRunnerToken();
  credentials::Resolver resolver(spec, f.store.get(), &f.key);
  CHECK_FALSE(resolver.digest(ref).has_value());  // not produced yet: pending
  CHECK_FALSE(resolver.value(ref).has_value());
  REQUIRE(f.store->putSecret(f.key, credentials::kRunnerTokenKind, credentials::kRunnerTokenName,
                             credentials::kRunnerTokenField, "tok-1", "{}")
              .ok());
  const auto d1 = resolver.digest(ref);
  REQUIRE(d1.has_value());
  CHECK(resolver.value(ref) == std::optional<std::string>("tok-1"));
  state::UnlockedKey locked;
  CHECK_FALSE(credentials::Resolver(spec, f.store.get(), &locked).value(ref).has_value());
  REQUIRE(f.store->putSecret(f.key, credentials::kRunnerTokenKind, credentials::kRunnerTokenName,
                             credentials::kRunnerTokenField, "tok-2", "{}")
              .ok());
  CHECK(resolver.digest(ref) != d1);  // a new token changes its consumers' config hash
  CHECK(resolver.value(ref) == std::optional<std::string>("tok-2"));
}
