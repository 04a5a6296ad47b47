#include "controllers/vault/init_answer.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "controllers/vault/vault.hpp"
#include "state/atomic_file.hpp"
#include "state/sealing.hpp"
#include "state/wipe.hpp"
#include "state/wrapped_key_json.hpp"

namespace foundationd::vault {

namespace {

using nlohmann::json;

using state::wipe;

// The material as one JSON text (the caller wipes it).
std::string materialText(const InitResponse& a, int shares, int threshold) {
  json raw = json::parse(a.raw, nullptr, false);
  json j{{"keys_base64", a.keysBase64},
         {"recovery_keys_base64", a.recoveryKeysBase64},
         {"root_token", a.rootToken},
         {"key_shares", shares},
         {"key_threshold", threshold},
         {"answer", raw.is_discarded() ? json(a.raw) : raw}};
  std::string text = j.dump();
  // The parsed copies' strings: overwritten before they are freed.
  for (auto& k : j["keys_base64"]) k = std::string(k.get<std::string>().size(), '\0');
  for (auto& k : j["recovery_keys_base64"]) k = std::string(k.get<std::string>().size(), '\0');
  j["root_token"] = "";
  j["answer"] = nullptr;
  return text;
}

// Seals the material as version `version` and writes it as an export file.
Result<std::filesystem::path> writeFallback(state::Store& store, const state::UnlockedKey& key,
                                            const std::string& text, int version,
                                            const std::string& params,
                                            const std::filesystem::path& stateDir) {
  auto wrapped = store.wrappedKey();
  if (!wrapped) return std::move(wrapped).error();
  auto sealed = key.seal(state::secretId(kKind, kInitName, kInitField, version), text);
  if (!sealed) return std::move(sealed).error();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const auto file = stateDir / (std::string(kFallbackPrefix) + std::to_string(ms) + ".json");
  if (auto st = state::writeFileAtomic(file, keysFileText(*wrapped, version, params, *sealed));
      !st) {
    return st.error();
  }
  return file;
}

}  // namespace

std::string keysFileText(const state::WrappedKey& wrapped, int version,
                         const std::string& paramsJson, const std::string& sealed) {
  json j{{"format", "foundationd-vault-keys"},
         {"format_version", 1},
         {"wrapped_key", state::wrappedKeyToJson(wrapped)},
         {"secret",
          {{"kind", kKind},
           {"name", kInitName},
           {"field", kInitField},
           {"version", version},
           {"params", json::parse(paramsJson, nullptr, false)},
           {"sealed", state::toBase64(sealed)}}}};
  return j.dump(2) + "\n";
}

Result<int> saveInitAnswer(state::Store& store, const state::UnlockedKey& key,
                           const InitResponse& answer, int shares, int threshold,
                           const std::filesystem::path& stateDir, SaveOptions options) {
  std::string text = materialText(answer, shares, threshold);
  const std::string params = json{{"key_shares", shares}, {"key_threshold", threshold}}.dump();
  std::optional<std::filesystem::path> fallback;
  Error last = Error::make(ErrorCode::internal, "not tried");
  auto delay = options.delay;
  for (int attempt = 1;; ++attempt) {
    auto v = store.putSecret(key, kKind, kInitName, kInitField, text, params);
    if (v) {
      wipe(text);
      if (fallback) {  // the state has it now; the sealed copy is not needed
        std::error_code ec;
        std::filesystem::remove(*fallback, ec);
        (void)state::fsyncDirectory(stateDir);
      }
      return v;
    }
    last = v.error();
    if (!fallback) {
      // Which version the state would have given it: 1 unless it holds some.
      int version = 1;
      if (auto info = store.currentSecretInfo(kKind, kInitName, kInitField); info && *info) {
        version = (*info)->version + 1;
      }
      auto f = writeFallback(store, key, text, version, params, stateDir);
      if (f) {
        fallback = *f;
        std::fprintf(stderr,
                     "foundationd: Vault's init answer could not be stored in the state (%s); "
                     "kept sealed in %s, retrying\n",
                     last.message.c_str(), fallback->c_str());
      }
    }
    if (attempt >= options.attempts && fallback) break;
    if (attempt % 10 == 0 && !fallback) {
      std::fprintf(stderr,
                   "foundationd: Vault's init answer can be stored neither in the state (%s) nor "
                   "in %s; still retrying (the keys exist only in this process)\n",
                   last.message.c_str(), stateDir.c_str());
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }
  wipe(text);
  return Error::make(ErrorCode::internal,
                     "Vault was initialised but its answer could not be stored in the state (" +
                         last.message + "); it is kept sealed in " + fallback->string() +
                         ": import it with `foundationd import-vault-keys " + fallback->string() +
                         "` once the state is writable");
}

Status checkInitAnswer(const InitResponse& answer, int shares) {
  if (answer.keysBase64.empty() && !answer.recoveryKeysBase64.empty()) {
    return Error::make(ErrorCode::protocol,
                       "Vault answered its init with " +
                           std::to_string(answer.recoveryKeysBase64.size()) +
                           " recovery keys and no unseal keys (it uses auto-unseal): the answer "
                           "and its root token are kept sealed in the state (vault/init/material; "
                           "`foundationd export-vault-keys` writes them out), but foundationd "
                           "cannot unseal this Vault");
  }
  if (answer.keysBase64.size() != static_cast<std::size_t>(shares) || answer.rootToken.empty()) {
    return Error::make(ErrorCode::protocol,
                       "Vault's init answer has " + std::to_string(answer.keysBase64.size()) +
                           " unseal keys for " + std::to_string(shares) + " shares" +
                           (answer.rootToken.empty() ? " and no root token" : "") +
                           ": it is kept sealed in the state (vault/init/material) as Vault "
                           "gave it");
  }
  return Status::success();
}

}  // namespace foundationd::vault
