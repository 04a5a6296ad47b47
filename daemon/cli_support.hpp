// What the CLI commands share: the daemon config and spec loading (printing
// every diagnostic), the state directory, running a coroutine to completion.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "config/daemon_config.hpp"
#include "config/spec.hpp"
#include "daemon/cli.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// --config FILE, else $FOUNDATIOND_CONFIG, else
// /etc/foundationd/foundationd.toml when present, else the defaults. nullopt
// (errors printed) when the file is invalid.
std::optional<config::DaemonConfig> loadConfig(const CliArgs& args);
// The file loadConfig reads ("" = none: the defaults).
std::string configPathOf(const CliArgs& args);

// Loads and validates a spec, printing diagnostics on stderr.
std::optional<config::Spec> loadSpec(const std::string& path);

// --spec, else the first positional argument, else the config's source path.
std::string specPathOf(const CliArgs& args, const config::DaemonConfig& cfg);

// --state-dir, else the config's state_dir.
std::string stateDirOf(const CliArgs& args, const config::DaemonConfig& cfg);

// The existing store in the state directory; not_found (saying to run
// `foundationd init`) when there is none. Never creates one.
Result<std::unique_ptr<state::Store>> openExistingStore(const std::string& stateDir);

struct Unlocked {
  std::unique_ptr<state::Store> store;
  state::UnlockedKey key;
};
// Opens the existing store and unlocks it with the passphrase (file, TTY or
// stdin). A wrong passphrase changes nothing.
Result<Unlocked> openAndUnlock(const CliArgs& args, const config::DaemonConfig& cfg);

// The state directory's lock, `foundationd.lock` in it: one process at a
// time changes the state and converges its project. `serve` holds it for its
// whole life; `apply --once`, a one-shot `rotate`, `rekey` (and every other
// command that changes the state) while they run. An flock(2): the kernel
// drops it when its holder dies, by kill -9 too, so it is never left stuck.
// The file names the holder (pid, command) for whoever is refused.
class StateLock {
 public:
  StateLock() = default;  // holds nothing (no state directory, nothing to guard)
  explicit StateLock(int fd) : fd_(fd) {}
  StateLock(StateLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  StateLock& operator=(StateLock&& other) noexcept;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();
  bool held() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct LockHolder {
  long pid = 0;         // 0 when unknown
  std::string command;  // "serve", "apply --once", ...
};

// Who holds the state directory's lock now (nullopt: nobody).
std::optional<LockHolder> stateLockHolder(const std::string& stateDir);

// THE guard of every CLI command that changes the state or the project:
// takes the lock for `command` ("apply --once", "secret set", ...) without
// waiting. Refused with ErrorCode::conflict and a message that names the
// holder and says what to do: with a daemon running, let it do the work or
// stop it first (`advice` replaces the default "what to do" for a daemon).
// A missing state directory is created (0700, as `init` does) unless
// `createDir` is false, in which case nothing is locked (no daemon can run
// on a state directory that does not exist).
Result<StateLock> lockState(const std::string& stateDir, const std::string& command,
                            const std::string& advice = "", bool createDir = true);

// Colour only on a TTY, and never with NO_COLOR set.
bool colorOutput();

// Runs `task` to completion on `io`, rethrowing what it threw.
template <typename T>
T runSync(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) error = e;
    else out.emplace(std::move(value));
  });
  io.run();
  io.restart();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

}  // namespace foundationd::daemon
