#include "controllers/credentials/credentials.hpp"

#include <nlohmann/json.hpp>

#include "controllers/credentials/generators.hpp"

namespace foundationd::credentials {
namespace {

struct Due {
  bool missing = false;
  bool rotate = false;
  bool paramsChanged = false;
  std::string reason;
};

Result<Due> dueFor(const config::CredentialSpec& cred, const std::string& field,
                   const config::Generator& gen, state::Store& store, state::TimePoint now) {
  auto info = store.currentSecretInfo(kKind, cred.name, field);
  if (!info) return info.error();
  Due due;
  if (!info.value()) {
    due.missing = true;
    due.reason = "not generated yet";
    return due;
  }
  const auto& current = *info.value();
  if (cred.rotateEvery && current.createdAt + *cred.rotateEvery <= now) {
    due.rotate = true;
    due.reason = "rotate_every " + config::formatDuration(*cred.rotateEvery) + " elapsed (version " +
                 std::to_string(current.version) + ")";
  }
  if (current.paramsJson != generatorParams(gen)) {
    due.paramsChanged = true;
    if (!due.rotate) {
      due.reason = "generator parameters changed; takes effect on the next rotation";
    }
  }
  return due;
}

Result<int> store1(state::Store& store, const state::UnlockedKey& key, const std::string& name,
                   const std::string& field, const config::Generator& gen) {
  state::SecretBytes value = generate(gen);
  auto version = store.putSecret(key, kKind, name, field, value.view(), generatorParams(gen));
  if (!version) return version.error();
  nlohmann::json audit{{"credential", name}, {"field", field}, {"version", version.value()}};
  (void)store.appendAudit(version.value() == 1 ? "credential.generated" : "credential.rotated",
                          audit.dump());
  return version.value();
}

}  // namespace

std::string generatorParams(const config::Generator& g) {
  nlohmann::json j{{"generate", config::toString(g.kind)}};
  switch (g.kind) {
    case config::Generator::Kind::password:
      j["length"] = g.length;
      j["symbols"] = g.symbols;
      break;
    case config::Generator::Kind::hex:
    case config::Generator::Kind::base64url:
      j["bytes"] = g.bytes;
      break;
    case config::Generator::Kind::uuid:
      break;
  }
  return j.dump();
}

const char* toString(FieldPlan::Action a) noexcept {
  switch (a) {
    case FieldPlan::Action::generate: return "generate";
    case FieldPlan::Action::rotate: return "rotate";
    case FieldPlan::Action::params_changed: return "params_changed";
    case FieldPlan::Action::blocked: return "blocked";
  }
  return "?";
}

Result<std::vector<FieldPlan>> planCredentials(const config::Spec& spec, state::Store& store,
                                               state::TimePoint now) {
  std::vector<FieldPlan> out;
  for (const auto& [name, cred] : spec.credentials) {
    for (const auto& [field, f] : cred.fields) {
      using A = FieldPlan::Action;
      if (f.provided()) {
        auto info = store.currentSecretInfo(kKind, name, field);
        if (!info) return info.error();
        if (!info.value()) {
          out.push_back({name, field, A::blocked,
                         "provided, not set yet: " + provideHint({name, field}) +
                             "; what needs it waits"});
        }
        continue;
      }
      const auto* gen = std::get_if<config::Generator>(&f.value);
      if (!gen) continue;
      auto due = dueFor(cred, field, *gen, store, now);
      if (!due) return due.error();
      if (due->missing) out.push_back({name, field, A::generate, due->reason});
      else if (due->rotate) out.push_back({name, field, A::rotate, due->reason});
      else if (due->paramsChanged) out.push_back({name, field, A::params_changed, due->reason});
    }
  }
  return out;
}

Result<std::vector<Generated>> ensureCredentials(const config::Spec& spec, state::Store& store,
                                                 const state::UnlockedKey& key,
                                                 state::TimePoint now) {
  std::vector<Generated> out;
  for (const auto& [name, cred] : spec.credentials) {
    for (const auto& [field, f] : cred.fields) {
      const auto* gen = std::get_if<config::Generator>(&f.value);
      if (!gen) continue;
      auto due = dueFor(cred, field, *gen, store, now);
      if (!due) return due.error();
      if (!due->missing && !due->rotate) continue;
      auto version = store1(store, key, name, field, *gen);
      if (!version) return version.error();
      out.push_back({name, field, version.value(), due->rotate});
    }
  }
  return out;
}

Result<std::vector<Generated>> rotateCredential(const config::Spec& spec, state::Store& store,
                                                const state::UnlockedKey& key,
                                                const std::string& name) {
  auto it = spec.credentials.find(name);
  if (it == spec.credentials.end()) {
    return Error::make(ErrorCode::not_found, "no credential \"" + name + "\" in the spec");
  }
  std::vector<Generated> out;
  for (const auto& [field, f] : it->second.fields) {
    const auto* gen = std::get_if<config::Generator>(&f.value);
    if (!gen) continue;
    auto version = store1(store, key, name, field, *gen);
    if (!version) return version.error();
    out.push_back({name, field, version.value(), true});
  }
  if (out.empty()) {
    return Error::make(ErrorCode::invalid_argument,
                       "credential \"" + name + "\" has no generated field to rotate (a "
                       "provided field takes a new value with `foundationd secret set " + name +
                           ".FIELD`)");
  }
  return out;
}

Result<std::vector<config::CredentialRef>> unsetProvided(const config::Spec& spec,
                                                         state::Store* store) {
  std::vector<config::CredentialRef> out;
  for (const auto& [name, cred] : spec.credentials) {
    for (const auto& [field, f] : cred.fields) {
      if (!f.provided()) continue;
      if (store) {
        auto info = store->currentSecretInfo(kKind, name, field);
        if (!info) return info.error();
        if (info.value()) continue;
      }
      out.push_back({name, field});
    }
  }
  return out;
}

std::string provideHint(const config::CredentialRef& ref) {
  return "run `foundationd secret set " + ref.name + "." + ref.field + "`";
}

Result<Generated> setProvided(const config::Spec& spec, state::Store& store,
                              const state::UnlockedKey& key, const std::string& name,
                              const std::string& field, std::string_view value,
                              const std::string& who) {
  auto c = spec.credentials.find(name);
  if (c == spec.credentials.end()) {
    return Error::make(ErrorCode::not_found, "no credential \"" + name + "\" in the spec");
  }
  auto f = c->second.fields.find(field);
  if (f == c->second.fields.end()) {
    return Error::make(ErrorCode::not_found,
                       "credential \"" + name + "\" has no field \"" + field + "\"");
  }
  if (!f->second.provided()) {
    return Error::make(ErrorCode::invalid_argument,
                       "field " + name + "." + field + " is not { provided = true } in the spec " +
                           (f->second.generated() ? "(it is generated: `foundationd rotate " +
                                                        name + "` makes a new value)"
                                                  : "(it is a literal)"));
  }
  if (value.empty()) {
    return Error::make(ErrorCode::invalid_argument, "the value is empty; nothing was changed");
  }
  auto version = store.putSecret(key, kKind, name, field, value, R"({"provided":true})");
  if (!version) return version.error();
  nlohmann::json audit{{"credential", name}, {"field", field}, {"version", version.value()},
                       {"by", who}};
  (void)store.appendAudit("credential.provided", audit.dump());
  return Generated{name, field, version.value(), version.value() > 1};
}

const config::CredentialField* Resolver::field(const config::CredentialRef& ref) const {
  auto c = spec_.credentials.find(ref.name);
  if (c == spec_.credentials.end()) return nullptr;
  auto f = c->second.fields.find(ref.field);
  return f == c->second.fields.end() ? nullptr : &f->second;
}

std::optional<std::string> Resolver::digest(const config::CredentialRef& ref) const {
  if (ref.runnerToken) {
    if (!store_) return std::nullopt;
    auto d = store_->secretDigest(kRunnerTokenKind, kRunnerTokenName, kRunnerTokenField);
    return d ? std::optional(d.value()) : std::nullopt;
  }
  const auto* f = field(ref);
  if (!f || !store_) return std::nullopt;
  if (const auto* literal = std::get_if<std::string>(&f->value)) {
    auto d = store_->digestOf(*literal);
    return d ? std::optional(d.value()) : std::nullopt;
  }
  auto d = store_->secretDigest(kKind, ref.name, ref.field);
  return d ? std::optional(d.value()) : std::nullopt;
}

std::optional<std::string> Resolver::value(const config::CredentialRef& ref) const {
  if (ref.runnerToken) {
    if (!store_ || !key_ || key_->locked()) return std::nullopt;
    auto s = store_->currentSecret(*key_, kRunnerTokenKind, kRunnerTokenName, kRunnerTokenField);
    if (!s) return std::nullopt;
    return std::string(s->value.view());
  }
  const auto* f = field(ref);
  if (!f) return std::nullopt;
  if (const auto* literal = std::get_if<std::string>(&f->value)) return *literal;
  if (!store_ || !key_ || key_->locked()) return std::nullopt;
  auto s = store_->currentSecret(*key_, kKind, ref.name, ref.field);
  if (!s) return std::nullopt;
  return std::string(s->value.view());
}

}  // namespace foundationd::credentials
