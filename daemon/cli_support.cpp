#include "daemon/cli_support.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "config/spec_loader.hpp"
#include "daemon/passphrase.hpp"

namespace foundationd::daemon {

namespace {
constexpr const char* kDefaultConfig = "/etc/foundationd/foundationd.toml";
}

std::optional<config::DaemonConfig> loadConfig(const CliArgs& args) {
  std::string path;
  if (args.config) {
    path = *args.config;
  } else if (std::filesystem::exists(kDefaultConfig)) {
    path = kDefaultConfig;
  } else {
    return config::DaemonConfig{};
  }
  auto loaded = config::loadDaemonConfigFile(path);
  std::fputs(loaded.diagnostics.formatAll().c_str(), stderr);
  if (!loaded.config) {
    std::fprintf(stderr, "foundationd: refusing to run with an invalid config (%s)\n",
                 path.c_str());
  }
  return loaded.config;
}

std::optional<config::Spec> loadSpec(const std::string& path) {
  auto loaded = config::loadSpecFile(path);
  std::fputs(loaded.diagnostics.formatAll().c_str(), stderr);
  if (!loaded.spec) {
    std::fprintf(stderr, "%s: %zu error(s); nothing was changed\n", path.c_str(),
                 loaded.diagnostics.errorCount());
  }
  return std::move(loaded.spec);
}

std::string specPathOf(const CliArgs& args, const config::DaemonConfig& cfg) {
  if (args.spec) return *args.spec;
  if (!args.positional.empty()) return args.positional.front();
  return cfg.source.path;
}

std::string stateDirOf(const CliArgs& args, const config::DaemonConfig& cfg) {
  return args.stateDir ? *args.stateDir : cfg.stateDir;
}

Result<std::unique_ptr<state::Store>> openExistingStore(const std::string& stateDir) {
  const auto file = std::filesystem::path(stateDir) / state::Store::kFileName;
  if (!std::filesystem::exists(file)) {
    return Error::make(ErrorCode::not_found, "no state in " + stateDir +
                                                 ": run `foundationd init --state-dir " + stateDir +
                                                 "` first");
  }
  return state::Store::open(file);
}

Result<Unlocked> openAndUnlock(const CliArgs& args, const config::DaemonConfig& cfg) {
  auto store = openExistingStore(stateDirOf(args, cfg));
  if (!store) return std::move(store).error();
  auto initialized = store.value()->isInitialized();
  if (!initialized) return initialized.error();
  if (!initialized.value()) {
    return Error::make(ErrorCode::not_found, "the state in " + stateDirOf(args, cfg) +
                                                 " is not initialised: run `foundationd init`");
  }
  state::protectProcess();  // it will hold the key
  auto pass = readPassphrase(args.passphraseFile, "Master passphrase: ");
  if (!pass) return pass.error();
  auto key = store.value()->unlock(pass.value().view());
  if (!key) return key.error();
  return Unlocked{std::move(store).value(), std::move(key).value()};
}

bool colorOutput() { return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr; }

}  // namespace foundationd::daemon
