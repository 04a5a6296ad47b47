// The recovery bundle. Contract in recovery_bundle.hpp.
#include "controllers/backup/recovery_bundle.hpp"

#include <optional>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "state/wipe.hpp"
#include "state/wrapped_key_json.hpp"

namespace foundationd::backup {

namespace {

using json = nlohmann::json;

using state::wipe;

// The associated data of the sealed part: everything outside it, so that an
// edited header (another project, date or KDF parameters) does not open.
std::string sealId(const std::string& project, const std::string& createdAt,
                   const state::WrappedKey& w) {
  return std::string(kRecoveryFormat) + "/1/" + project + "/" + createdAt + "/" +
         std::to_string(w.kdf.alg) + ":" + std::to_string(w.kdf.opsLimit) + ":" +
         std::to_string(w.kdf.memLimit) + "/" + state::toBase64(w.salt);
}

}  // namespace

const Repository* RecoveryContents::target(std::string_view name) const {
  for (const auto& [n, repo] : targets) {
    if (n == name) return &repo;
  }
  return nullptr;
}

Result<std::string> sealRecoveryBundle(const RecoveryContents& contents,
                                       std::string_view passphrase, state::KdfProfile profile) {
  if (contents.resticPassword.empty()) {
    return Error::make(ErrorCode::invalid_argument, "a recovery bundle needs the restic password");
  }
  auto dataKey = state::newDataKey();
  auto wrapped = state::wrapKey(dataKey, passphrase, profile);
  if (!wrapped) return std::move(wrapped).error();
  json inner{{"restic_password", std::string(contents.resticPassword.view())},
             {"targets", json::object()}};
  for (const auto& [name, repo] : contents.targets) {
    json env = json::object();
    for (const auto& [k, v] : repo.env) env[k] = v;
    inner["targets"][name] = {{"location", repo.location}, {"display", repo.display}, {"env", env}};
  }
  std::string plain = inner.dump();
  // The copies in `inner` are plain std::strings: wiped as far as json lets us.
  for (auto& [name, t] : inner["targets"].items()) {
    for (auto& [k, v] : t["env"].items()) wipe(v.get_ref<std::string&>());
  }
  wipe(inner["restic_password"].get_ref<std::string&>());
  auto sealed = state::seal(dataKey, sealId(contents.project, contents.createdAt, *wrapped), plain);
  wipe(plain);
  if (!sealed) return std::move(sealed).error();
  json out{{"format", kRecoveryFormat},
           {"format_version", 1},
           {"project", contents.project},
           {"created_at", contents.createdAt},
           {"note", "Sealed under the master passphrase (Argon2id, XChaCha20-Poly1305): the "
                    "restic repository password and the backup targets' keys. Commit it; "
                    "dr/RUNBOOK.md."},
           {"wrapped_key", state::wrappedKeyToJson(*wrapped)},
           {"sealed", state::toBase64(*sealed)}};
  return out.dump(2) + "\n";
}

Result<RecoveryContents> openRecoveryBundle(std::string_view text, std::string_view passphrase) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("format", "") != kRecoveryFormat) {
    return Error::make(ErrorCode::invalid_argument,
                       std::string("not a recovery bundle (format ") + kRecoveryFormat +
                           "): truncated, or another file");
  }
  if (j.value("format_version", 0) != 1) {
    return Error::make(ErrorCode::invalid_argument,
                       "a recovery bundle of format version " +
                           std::to_string(j.value("format_version", 0)) +
                           " (this foundationd reads version 1)");
  }
  RecoveryContents c;
  std::optional<std::string> sealed;
  try {
    c.project = j.at("project").get<std::string>();
    c.createdAt = j.at("created_at").get<std::string>();
    sealed = state::fromBase64(j.at("sealed").get<std::string>());
  } catch (const json::exception&) {
    return Error::make(ErrorCode::invalid_argument, "a malformed recovery bundle (a field is "
                                                    "missing or of the wrong type)");
  }
  if (!sealed) {
    return Error::make(ErrorCode::invalid_argument, "a malformed recovery bundle (bad base64)");
  }
  auto wrapped = state::wrappedKeyFromJson(j.contains("wrapped_key") ? j["wrapped_key"] : json());
  if (!wrapped) {
    return Error::make(ErrorCode::invalid_argument,
                       "a malformed recovery bundle: " + wrapped.error().message);
  }
  const state::WrappedKey& w = *wrapped;
  auto dataKey = state::unwrapKey(w, passphrase);
  if (!dataKey) {
    if (dataKey.error().code == ErrorCode::wrong_passphrase) {
      return Error::make(ErrorCode::wrong_passphrase,
                         "the passphrase does not open this recovery bundle (a wrong "
                         "passphrase, or its key block was altered)");
    }
    return Error::make(dataKey.error().code, "the recovery bundle's key block does not open: " +
                                                 dataKey.error().message);
  }
  auto plain = state::open(*dataKey, sealId(c.project, c.createdAt, w), *sealed);
  if (!plain) {
    return Error::make(ErrorCode::protocol,
                       "the recovery bundle was altered or truncated: its sealed part fails "
                       "authentication (or its header was edited)");
  }
  json inner = json::parse(plain->view(), nullptr, false);
  struct Wipe {
    json& j;
    ~Wipe() {
      if (j.is_object() && j.contains("restic_password") && j["restic_password"].is_string()) {
        wipe(j["restic_password"].get_ref<std::string&>());
      }
    }
  } wiper{inner};
  try {
    c.resticPassword = state::SecretBytes::copyOf(inner.at("restic_password").get<std::string>());
    for (const auto& [name, t] : inner.at("targets").items()) {
      Repository repo;
      repo.location = t.at("location").get<std::string>();
      repo.display = t.at("display").get<std::string>();
      for (const auto& [k, v] : t.at("env").items()) repo.env.emplace_back(k, v.get<std::string>());
      c.targets.emplace_back(name, std::move(repo));
    }
  } catch (const json::exception&) {
    return Error::make(ErrorCode::protocol, "the recovery bundle's sealed contents are malformed");
  }
  if (c.resticPassword.empty()) {
    return Error::make(ErrorCode::protocol, "the recovery bundle holds no restic password");
  }
  return c;
}

}  // namespace foundationd::backup
