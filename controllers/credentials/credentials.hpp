// The credentials controller: generated values for [credentials] (SPEC.md).
//
// A generated field is created once, the first time a converge needs it, and
// is committed and fsynced to the state store *before* anything uses it
// (Store::putSecret returns only then). It is never regenerated unless
// rotated: `foundationd rotate NAME`, or `rotate_every` elapsed. Changing a
// generator's parameters is reported and takes effect on the next rotation.
//
// Thread: the Store blocks (SQLite commits, fsync); call from a thread that
// may block (the CLI's, or the daemon's pool). No function here logs or
// returns a secret except Resolver::value.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "state/store.hpp"

namespace foundationd::credentials {

inline constexpr const char* kKind = "credential";

// How a field was generated, as stored with each version (never a value).
std::string generatorParams(const config::Generator& g);

struct FieldPlan {
  // blocked: a provided field not set yet (what needs it waits).
  enum class Action { generate, rotate, params_changed, blocked };
  std::string credential;
  std::string field;
  Action action = Action::generate;
  std::string reason;
};
const char* toString(FieldPlan::Action a) noexcept;

// What a converge would do to credentials. Needs no key. `now` decides
// whether rotate_every has elapsed. params_changed is informational.
Result<std::vector<FieldPlan>> planCredentials(const config::Spec& spec, state::Store& store,
                                               state::TimePoint now);

struct Generated {
  std::string credential;
  std::string field;
  int version = 0;
  bool rotated = false;
};

// Generates every missing field and rotates those whose rotate_every has
// elapsed; each new value is durable before the next one is made.
Result<std::vector<Generated>> ensureCredentials(const config::Spec& spec, state::Store& store,
                                                 const state::UnlockedKey& key,
                                                 state::TimePoint now);

// New versions of every generated field of credential `name`.
Result<std::vector<Generated>> rotateCredential(const config::Spec& spec, state::Store& store,
                                                const state::UnlockedKey& key,
                                                const std::string& name);

// The provided fields ({ provided = true }) with no value in the state yet.
// Needs no key. `store` may be null (nothing is set then).
Result<std::vector<config::CredentialRef>> unsetProvided(const config::Spec& spec,
                                                         state::Store* store);

// "run `foundationd secret set NAME.FIELD`": what an unset provided field's
// consumers say they wait for.
std::string provideHint(const config::CredentialRef& ref);

// Stores `value` as the new version of provided field NAME.FIELD (durable
// when this returns) and writes the audit record (who, which field, the
// version; never the value). invalid_argument when the field is not a
// provided one of the spec, or the value is empty.
Result<Generated> setProvided(const config::Spec& spec, state::Store& store,
                              const state::UnlockedKey& key, const std::string& name,
                              const std::string& field, std::string_view value,
                              const std::string& who);

// Where the forge step seals the runner registration token
// (${forgejo.runner_token}).
inline constexpr const char* kRunnerTokenKind = "forgejo";
inline constexpr const char* kRunnerTokenName = "runner-token";
inline constexpr const char* kRunnerTokenField = "token";

// Resolves ${credentials.NAME.FIELD} and ${forgejo.runner_token}: a digest without the key (for plan),
// the value with it (for apply). Literal fields resolve to their text.
class Resolver {
 public:
  // `store` may be null (no state yet: nothing resolves); `key` may be null
  // or locked (digests only).
  Resolver(const config::Spec& spec, state::Store* store, const state::UnlockedKey* key)
      : spec_(spec), store_(store), key_(key) {}

  std::optional<std::string> digest(const config::CredentialRef& ref) const;
  std::optional<std::string> value(const config::CredentialRef& ref) const;

 private:
  const config::CredentialField* field(const config::CredentialRef& ref) const;
  const config::Spec& spec_;
  state::Store* store_;
  const state::UnlockedKey* key_;
};

}  // namespace foundationd::credentials
