#include "daemon/cli_support.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "config/spec_loader.hpp"
#include "daemon/passphrase.hpp"

namespace foundationd::daemon {

namespace {
constexpr const char* kDefaultConfig = "/etc/foundationd/foundationd.toml";
}

std::string configPathOf(const CliArgs& args) {
  if (args.config) return *args.config;
  if (const char* env = std::getenv("FOUNDATIOND_CONFIG"); env && *env) return env;
  if (std::filesystem::exists(kDefaultConfig)) return kDefaultConfig;
  return "";
}

std::optional<config::DaemonConfig> loadConfig(const CliArgs& args) {
  std::string path;
  if (args.config) {
    path = *args.config;
  } else if (const char* env = std::getenv("FOUNDATIOND_CONFIG"); env && *env) {
    path = env;
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

namespace {
constexpr const char* kLockFile = "foundationd.lock";
}

StateLock& StateLock::operator=(StateLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the flock
}

std::optional<LockHolder> stateLockHolder(const std::string& stateDir) {
  const auto file = std::filesystem::path(stateDir) / kLockFile;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::optional<LockHolder> out;
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);  // nobody holds it
  } else {
    LockHolder h;
    std::ifstream in(file);
    std::string line;
    if (std::getline(in, line)) {
      const auto sp = line.find(' ');
      h.pid = std::strtol(line.c_str(), nullptr, 10);
      if (sp != std::string::npos) h.command = line.substr(sp + 1);
    }
    out = h;
  }
  ::close(fd);
  return out;
}

Result<StateLock> lockState(const std::string& stateDir, const std::string& command,
                            const std::string& advice, bool createDir) {
  std::error_code ec;
  if (!std::filesystem::exists(stateDir, ec)) {
    if (!createDir) return StateLock{};
    std::filesystem::create_directories(stateDir, ec);
    if (ec || ::chmod(stateDir.c_str(), 0700) != 0) {
      return Error::make(ErrorCode::io, "cannot create the state directory " + stateDir + ": " +
                                            (ec ? ec.message() : std::strerror(errno)));
    }
  }
  const auto file = std::filesystem::path(stateDir) / kLockFile;
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Error::make(ErrorCode::io, "cannot open the lock " + file.string() + ": " +
                                          std::strerror(errno));
  }
  StateLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      return Error::make(ErrorCode::io,
                         "cannot lock " + file.string() + ": " + std::strerror(err));
    }
    const auto holder = stateLockHolder(stateDir).value_or(LockHolder{});
    const std::string who =
        "`foundationd " + (holder.command.empty() ? std::string("?") : holder.command) + "`" +
        (holder.pid > 0 ? ", pid " + std::to_string(holder.pid) : std::string());
    if (holder.command == "serve") {
      return Error::make(
          ErrorCode::conflict,
          "a running daemon (" + who + ") owns the state in " + stateDir + "; `foundationd " +
              command + "` would race with it, so nothing was changed. " +
              (advice.empty() ? "Let the daemon converge (`foundationd status`; POST /v1/reconcile "
                                "converges now), or stop it first (`systemctl stop foundationd`)"
                              : advice));
    }
    return Error::make(ErrorCode::conflict,
                       "another foundationd (" + who + ") is changing the state in " + stateDir +
                           "; nothing was changed: run `foundationd " + command +
                           "` again when it has finished");
  }
  // Say who holds it (the lock is ours: nobody else writes the file now).
  const std::string text = std::to_string(::getpid()) + " " + command + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    return Error::make(ErrorCode::io, "cannot write " + file.string() + ": " + std::strerror(errno));
  }
  return lock;
}

bool colorOutput() { return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr; }

}  // namespace foundationd::daemon
