// What the CLI commands share: the daemon config and spec loading (printing
// every diagnostic), the state directory, running a coroutine to completion.
#pragma once

#include <exception>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "config/daemon_config.hpp"
#include "config/spec.hpp"
#include "daemon/cli.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// --config FILE, else /etc/foundationd/foundationd.toml when present, else
// the defaults. nullopt (errors printed) when the file is invalid.
std::optional<config::DaemonConfig> loadConfig(const CliArgs& args);

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
