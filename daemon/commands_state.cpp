// The commands that touch the sealed state: init, rekey, rotate, secret show,
// secret set.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_client.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "daemon/passphrase.hpp"
#include "daemon/postgres_step.hpp"
#include "daemon/vault_step.hpp"
#include "state/sealing.hpp"

namespace foundationd::daemon {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "foundationd: %s\n", message.c_str());
  return 1;
}

Result<state::KdfProfile> profileOf(const CliArgs& args, const config::DaemonConfig& cfg) {
  return state::parseKdfProfile(args.kdf ? *args.kdf : cfg.kdf);
}

}  // namespace

int cmdInit(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto profile = profileOf(args, *cfg);
  if (!profile) return fail(profile.error().message);
  const std::string dir = stateDirOf(args, *cfg);
  auto store = state::Store::openDir(dir);
  if (!store) return fail("cannot open the state in " + dir + ": " + store.error().message);
  auto initialized = store.value()->isInitialized();
  if (!initialized) return fail(initialized.error().message);
  if (initialized.value()) {
    return fail("the state in " + dir + " is already initialised; nothing was changed (to change "
                "the passphrase: foundationd rekey)");
  }
  state::protectProcess();
  auto pass = readNewPassphrase(args.passphraseFile, "New master passphrase: ");
  if (!pass) return fail(pass.error().message + "; nothing was changed");
  auto key = store.value()->initialize(pass.value().view(), profile.value());
  if (!key) return fail(key.error().message);
  (void)store.value()->appendAudit(
      "state.initialized", nlohmann::json{{"kdf", state::toString(profile.value())}}.dump());
  std::printf("Initialised the state in %s (kdf %s). Keep the passphrase safe: it is the one "
              "secret that brings everything back.\n",
              dir.c_str(), state::toString(profile.value()));
  return 0;
}

int cmdRekey(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto profile = profileOf(args, *cfg);
  if (!profile) return fail(profile.error().message);
  auto lock = lockState(stateDirOf(args, *cfg), "rekey",
                        "Stop it first (`systemctl stop foundationd`), rekey, then start it and "
                        "unseal with the new passphrase",
                        false);
  if (!lock) return fail(lock.error().message);
  auto store = openExistingStore(stateDirOf(args, *cfg));
  if (!store) return fail(store.error().message);
  state::protectProcess();
  auto oldPass = readPassphrase(args.passphraseFile, "Current master passphrase: ");
  if (!oldPass) return fail(oldPass.error().message + "; nothing was changed");
  // Check the old one before asking for the new one twice.
  if (auto check = store.value()->unlock(oldPass.value().view()); !check) {
    return fail(check.error().message + "; nothing was changed");
  }
  auto newPass = readNewPassphrase(args.newPassphraseFile, "New master passphrase: ");
  if (!newPass) return fail(newPass.error().message + "; nothing was changed");
  auto& s = *store.value();
  const bool rotate = args.rotateDataKey;
  auto st = rotate ? s.rotateDataKey(oldPass->view(), newPass->view(), profile.value())
                   : s.rekey(oldPass->view(), newPass->view(), profile.value());
  oldPass->wipe();
  newPass->wipe();
  if (!st && st.error().code != ErrorCode::unavailable) {
    return fail(st.error().message + "; nothing was changed");
  }
  (void)s.appendAudit(rotate ? "state.data_key_rotated" : "state.rekeyed", "{}");
  if (rotate) {
    std::printf(
        "A new data key seals every secret, wrapped under the new passphrase. Old copies of "
        "state.db and old export-vault-keys files still open only what they held, with the "
        "passphrase of their time. A running daemon must be unsealed again.\n");
  } else {
    std::printf("The master passphrase was changed; the old one no longer unlocks this state "
                "(the data key is the same: old copies of state.db and old exports still open "
                "with the old passphrase; --rotate-data-key changes that).\n");
  }
  if (!st) {
    std::fprintf(stderr, "foundationd: warning: %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}

int cmdRotate(const CliArgs& args) {
  if (args.positional.empty()) return fail("usage: foundationd rotate CREDENTIAL [--spec SPEC]");
  const std::string name = args.positional.front();
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  // A running daemon owns the state: the rotation goes through its API.
  auto lock = lockState(stateDirOf(args, *cfg), "rotate", "", false);
  if (!lock) {
    auto holder = stateLockHolder(stateDirOf(args, *cfg));
    if (holder && holder->command == "serve") return rotateThroughDaemon(*cfg, name);
    return fail(lock.error().message);
  }
  const std::string specPath = args.spec ? *args.spec : cfg->source.path;
  auto spec = loadSpec(specPath);
  if (!spec) return 1;
  if (!spec->credentials.count(name)) return fail("no credential \"" + name + "\" in " + specPath);
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) return fail(unlocked.error().message + "; nothing was changed");
  auto rotated = credentials::rotateCredential(*spec, *unlocked->store, unlocked->key, name);
  if (!rotated) return fail(rotated.error().message);
  for (const auto& g : rotated.value()) {
    std::printf("credential.%s.%s: rotated (version %d)\n", g.credential.c_str(), g.field.c_str(),
                g.version);
  }
  // The new version is durable. First the systems that check it: PostgreSQL
  // (ALTER ROLE ... PASSWORD), while the running consumers still use the old
  // one; a consumer is recreated only once its new password works.
  {
    boost::asio::io_context io;
    docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
    auto pg = rotatePostgresRoles(io, client, *spec, unlocked->store.get(), &unlocked->key, name);
    if (!pg.ok()) {
      return fail("the new " + name + " is stored, but PostgreSQL did not take it (above); "
                  "no consumer was recreated. Run `foundationd apply` once PostgreSQL answers.");
    }
  }
  // Then Vault: the new version is mirrored before any consumer is recreated.
  if (auto st = mirrorRotatedOnce(*spec, unlocked->store.get(), &unlocked->key, name); !st) {
    return fail("the new " + name + " is stored, but Vault was not updated (" + st.error().message +
                "); no consumer was recreated. Run `foundationd apply --once` when Vault is back.");
  }
  // Now every consumer follows, in dependency order.
  return runConverge(*cfg, *spec, unlocked->store.get(), &unlocked->key);
}

namespace {

// Who runs this command, for the audit log: "alice (uid 1000)", "root (uid
// 0, sudo from alice)".
std::string whoAmI() {
  const uid_t uid = ::getuid();
  const passwd* pw = ::getpwuid(uid);
  std::string who = (pw ? std::string(pw->pw_name) : std::string("?")) + " (uid " +
                    std::to_string(uid);
  if (const char* sudo = std::getenv("SUDO_USER")) who += ", sudo from " + std::string(sudo);
  return who + ")";
}

// `foundationd secret set NAME.FIELD`: a provided value from the TTY or stdin.
int secretSet(const CliArgs& args, const std::string& ref) {
  const auto dot = ref.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == ref.size()) {
    return fail("usage: foundationd secret set CREDENTIAL.FIELD (the value on the terminal or "
                "stdin, never as an argument)");
  }
  const std::string name = ref.substr(0, dot);
  const std::string field = ref.substr(dot + 1);
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  // A running daemon owns the state: the value goes through its API.
  auto lock = lockState(stateDirOf(args, *cfg), "secret set", "", false);
  if (!lock) {
    auto holder = stateLockHolder(stateDirOf(args, *cfg));
    if (holder && holder->command == "serve") {
      return setSecretThroughDaemon(*cfg, name, field, whoAmI());
    }
    return fail(lock.error().message);
  }
  const std::string specPath = args.spec ? *args.spec : cfg->source.path;
  auto spec = loadSpec(specPath);
  if (!spec) return 1;
  auto c = spec->credentials.find(name);
  if (c == spec->credentials.end() || !c->second.fields.count(field)) {
    return fail("no field " + ref + " in " + specPath + "; nothing was changed");
  }
  if (!c->second.fields.at(field).provided()) {
    return fail("field " + ref + " is not { provided = true } in " + specPath +
                "; nothing was changed");
  }
  if (!::isatty(STDIN_FILENO) && !args.passphraseFile) {
    return fail("standard input carries the value: give the master passphrase with "
                "--passphrase-file (or run on a terminal); nothing was changed");
  }
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) return fail(unlocked.error().message + "; nothing was changed");
  auto value = readSecretValue("Value for " + ref + " (not echoed): ");
  if (!value) return fail(value.error().message);
  auto set = credentials::setProvided(*spec, *unlocked->store, unlocked->key, name, field,
                                      value->view(), whoAmI());
  value->wipe();
  if (!set) return fail(set.error().message);
  std::printf("credential.%s.%s: set (version %d)\n", name.c_str(), field.c_str(),
              set->version);
  std::fflush(stdout);
  // A new value of a field set before is a rotation: PostgreSQL, then Vault,
  // then every consumer, as `rotate` does.
  if (set->rotated) {
    boost::asio::io_context io;
    docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
    auto pg = rotatePostgresRoles(io, client, *spec, unlocked->store.get(), &unlocked->key, name);
    if (!pg.ok()) {
      return fail("the new " + ref + " is stored, but PostgreSQL did not take it (above); "
                  "no consumer was recreated. Run `foundationd apply --once` once PostgreSQL "
                  "answers.");
    }
    if (auto st = mirrorRotatedOnce(*spec, unlocked->store.get(), &unlocked->key, name); !st) {
      return fail("the new " + ref + " is stored, but Vault was not updated (" +
                  st.error().message + "); no consumer was recreated. Run `foundationd apply "
                  "--once` when Vault is back.");
    }
  }
  return runConverge(*cfg, *spec, unlocked->store.get(), &unlocked->key);
}

}  // namespace

int cmdSecret(const CliArgs& args) {
  if (args.positional.size() == 2 && args.positional[0] == "set") {
    return secretSet(args, args.positional[1]);
  }
  if (args.positional.size() != 2 || args.positional[0] != "show") {
    return fail("usage: foundationd secret show CREDENTIAL[.FIELD] | foundationd secret set "
                "CREDENTIAL.FIELD");
  }
  const std::string ref = args.positional[1];
  const auto dot = ref.find('.');
  const std::string name = ref.substr(0, dot);
  const std::string field = dot == std::string::npos ? "" : ref.substr(dot + 1);
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) return fail(unlocked.error().message);
  auto& store = *unlocked->store;
  auto infos = store.listSecrets();
  if (!infos) return fail(infos.error().message);
  int shown = 0;
  for (const auto& info : infos.value()) {
    if (info.kind != credentials::kKind || info.name != name) continue;
    if (!field.empty() && info.field != field) continue;
    auto s = store.currentSecret(unlocked->key, info.kind, info.name, info.field);
    if (!s) return fail(s.error().message);
    if (field.empty()) std::printf("%s=", info.field.c_str());
    std::fwrite(s->value.data(), 1, s->value.size(), stdout);
    std::fputc('\n', stdout);
    ++shown;
  }
  if (shown == 0) return fail("no generated value for " + ref);
  (void)store.appendAudit("secret.shown", nlohmann::json{{"credential", name},
                                                         {"field", field.empty() ? "*" : field}}
                                              .dump());
  return 0;
}

}  // namespace foundationd::daemon
