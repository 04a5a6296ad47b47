// The command line: parses argv into a command and its options and runs it.
// Exit codes follow INTERFACES.md (check: 0/1; plan: 0 no changes, 2 changes,
// 1 error; apply: 0 converged, 1 failed).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace foundationd::daemon {

struct CliArgs {
  std::string command;                  // check | plan | apply | serve | version | help
  std::vector<std::string> positional;  // after the command
  std::optional<std::string> config;    // --config
  std::optional<std::string> spec;      // --spec
  std::optional<std::string> stateDir;  // --state-dir
  std::optional<std::string> passphraseFile;
  std::optional<std::string> newPassphraseFile;  // rekey
  std::optional<std::string> kdf;                // init, rekey: interactive | moderate | sensitive
  bool json = false;
  bool once = false;
  bool rotateDataKey = false;  // rekey --rotate-data-key
};

// Parses argv; on a usage error returns nullopt and sets `error`.
std::optional<CliArgs> parseArgs(const std::vector<std::string>& argv, std::string& error);

int runCli(int argc, char** argv);

}  // namespace foundationd::daemon
