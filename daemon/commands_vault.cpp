// export-vault-keys / import-vault-keys (docs/vault.md "Recovery material").
//
// The file holds Vault's init material exactly as the state holds it: sealed
// (XChaCha20-Poly1305) under the state's data key, plus that data key wrapped
// under the master passphrase (Argon2id salt and parameters included). It is
// safe to commit next to the spec: without the passphrase it opens nothing.
// Export needs no passphrase. Import opens the file with the passphrase of the
// target state (the same master passphrase: a state that was rekeyed since
// the export needs a fresh export) and re-seals the material under the target
// state's own data key.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <unistd.h>

#include "controllers/vault/init_answer.hpp"
#include "controllers/vault/init_helper.hpp"
#include "controllers/vault/vault.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "daemon/passphrase.hpp"
#include "state/atomic_file.hpp"
#include "state/sealing.hpp"
#include "state/wrapped_key_json.hpp"

namespace foundationd::daemon {
namespace {

using nlohmann::json;
constexpr const char* kFormat = "foundationd-vault-keys";

int fail(const std::string& message) {
  std::fprintf(stderr, "foundationd: %s\n", message.c_str());
  return 1;
}

}  // namespace

int cmdVaultHelper(const CliArgs&) {
  return vault::initHelperMain();
}

int cmdExportVaultKeys(const CliArgs& args) {
  if (args.positional.size() != 1) return fail("usage: foundationd export-vault-keys FILE");
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto store = openExistingStore(stateDirOf(args, *cfg));
  if (!store) return fail(store.error().message);
  auto info = store.value()->currentSecretInfo(vault::kKind, vault::kInitName, vault::kInitField);
  if (!info) return fail(info.error().message);
  if (!info->has_value())
    return fail("the state holds no Vault init material (Vault was not initialised by it yet)");
  auto sealed = store.value()->sealedSecret(vault::kKind, vault::kInitName, vault::kInitField,
                                            (*info)->version);
  if (!sealed) return fail(sealed.error().message);
  auto wrapped = store.value()->wrappedKey();
  if (!wrapped) return fail(wrapped.error().message);
  const std::string& file = args.positional.front();
  if (auto st = state::writeFileAtomic(
          file, vault::keysFileText(*wrapped, (*info)->version, (*info)->paramsJson, *sealed));
      !st) return fail(st.error().message);
  (void)store.value()->appendAudit("vault.keys_exported", json{{"file", file}}.dump());
  std::printf(
      "Wrote Vault's init material, sealed, to %s. It opens only with the master "
      "passphrase; import it with `foundationd import-vault-keys %s`.\n",
      file.c_str(), file.c_str());
  return 0;
}

int cmdImportVaultKeys(const CliArgs& args) {
  if (args.positional.size() != 1) return fail("usage: foundationd import-vault-keys FILE");
  const std::string& file = args.positional.front();
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail("cannot read " + file);
  std::stringstream buf;
  buf << in.rdbuf();
  json j = json::parse(buf.str(), nullptr, false);
  if (!j.is_object() || j.value("format", "") != kFormat || j.value("format_version", 0) != 1) {
    return fail(file + " is not a foundationd Vault keys file (format " + kFormat + " 1)");
  }
  auto wrapped = state::wrappedKeyFromJson(j.contains("wrapped_key") ? j["wrapped_key"] : json());
  if (!wrapped) return fail(file + " is malformed: " + wrapped.error().message);
  const state::WrappedKey& w = *wrapped;
  std::optional<std::string> sealed;
  int version = 0;
  try {
    const json& s = j.at("secret");
    if (s.at("kind") != vault::kKind || s.at("name") != vault::kInitName ||
        s.at("field") != vault::kInitField) {
      return fail(file + " holds another kind of secret");
    }
    version = s.at("version").get<int>();
    sealed = state::fromBase64(s.at("sealed").get<std::string>());
  } catch (const json::exception&) {
    return fail(file + " is malformed");
  }
  if (!sealed || version < 1) return fail(file + " is malformed");

  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto store = openExistingStore(stateDirOf(args, *cfg));
  if (!store) return fail(store.error().message + " (on a fresh host: `foundationd init` first)");
  state::protectProcess();
  auto pass = readPassphrase(args.passphraseFile, "Master passphrase: ");
  if (!pass) return fail(pass.error().message + "; nothing was changed");
  auto key = store.value()->unlock(pass->view());
  if (!key) return fail(key.error().message + "; nothing was changed");
  // The same master passphrase opens the file's data key (with the file's
  // own salt and KDF parameters).
  auto fileKey = state::unwrapKey(w, pass->view());
  pass->wipe();
  if (!fileKey) {
    if (fileKey.error().code == ErrorCode::wrong_passphrase) {
      return fail("the master passphrase does not open " + file +
                  " (it was exported under another passphrase: export it again after `rekey`, "
                  "or initialise this state with the passphrase in force at export time); "
                  "nothing was changed");
    }
    return fail(fileKey.error().message + "; nothing was changed");
  }
  const std::string id =
      state::secretId(vault::kKind, vault::kInitName, vault::kInitField, version);
  auto material = state::open(*fileKey, id, *sealed);
  if (!material)
    return fail(file + ": the sealed material does not open (" + material.error().message + ")");
  json m = json::parse(material->view(), nullptr, false);
  if (!m.is_object() || !m.contains("keys_base64") || !m.contains("root_token")) {
    return fail(file + ": the material is not Vault init material");
  }
  m.clear();
  auto& st = *store.value();
  auto has = st.currentSecretInfo(vault::kKind, vault::kInitName, vault::kInitField);
  if (!has) return fail(has.error().message);
  if (has->has_value()) {
    auto current = st.currentSecret(key.value(), vault::kKind, vault::kInitName, vault::kInitField);
    if (!current) return fail(current.error().message);
    if (current->value == *material) {
      std::printf("The state already holds this Vault init material; nothing was changed.\n");
      return 0;
    }
    return fail(
        "the state already holds other Vault init material; refusing to replace Vault "
        "keys (nothing was changed)");
  }
  auto put = st.putSecret(key.value(), vault::kKind, vault::kInitName, vault::kInitField,
                          material->view(), json{{"imported_from", file}}.dump());
  if (!put) return fail(put.error().message);
  (void)st.appendAudit("vault.keys_imported", json{{"file", file}}.dump());
  std::printf("Imported Vault's init material from %s into the state (sealed under its key).\n",
              file.c_str());
  return 0;
}

}  // namespace foundationd::daemon
