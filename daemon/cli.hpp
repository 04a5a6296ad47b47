// The command line: parses argv into a command and its options and runs it.
// Exit codes (README.md, each command's --help): check 0/1; plan 0 no
// changes, 2 changes, 1 error; apply 0 converged, 1 failed; no command or an
// unknown one: 2 with the usage.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace foundationd::daemon {

struct CliArgs {
  std::string command;                  // check | plan | apply | serve | ... ("" = none)
  std::vector<std::string> positional;  // after the command
  std::optional<std::string> config;    // --config
  std::optional<std::string> spec;      // --spec
  std::optional<std::string> stateDir;  // --state-dir
  std::optional<std::string> passphraseFile;
  std::optional<std::string> newPassphraseFile;  // rekey
  std::optional<std::string> kdf;                // init, rekey: interactive | moderate | sensitive
  bool json = false;
  bool once = false;
  bool graph = false;  // plan --graph
  bool help = false;               // -h/--help: the command's help, or the usage
  std::vector<std::string> given;  // the options given ("--spec", ...), to check them
  bool rotateDataKey = false;  // rekey --rotate-data-key
  std::optional<std::string> section;   // restore --section
  std::optional<std::string> backupId;  // restore --backup
  bool force = false;                   // restore --force
  bool offsite = false;                 // backup list, restore: [backup.offsite]
  std::optional<std::string> out;           // backup export-recovery --out
  std::optional<std::string> fromRecovery;  // restore --from-recovery BUNDLE
};

// Parses argv; on a usage error returns nullopt and sets `error`.
std::optional<CliArgs> parseArgs(const std::vector<std::string>& argv, std::string& error);

int runCli(int argc, char** argv);

}  // namespace foundationd::daemon
