#include "daemon/cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "build_info.hpp"
#include "daemon/commands.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {
namespace {

constexpr const char* kUsage = R"(usage: foundationd COMMAND [OPTIONS]

commands:
  check SPEC                   validate a spec and its VERSIONS offline (exit 0 valid, 1 invalid)
  plan [--spec SPEC] [--json]  show what would change (exit 0 none, 2 changes, 1 error)
  apply --once [--spec SPEC]   converge once and exit (exit 0 converged, 1 failed)
  serve [--config FILE]        run the daemon (what systemd starts)
  init [--state-dir DIR] [--kdf PROFILE]
                               create the state store and set the master passphrase
  rekey                        change the master passphrase (old, then new twice; or
                               --passphrase-file OLD --new-passphrase-file NEW)
  rekey --rotate-data-key      as rekey, and a new data key: every secret re-sealed
  rotate CREDENTIAL [--spec SPEC]
                               new values, then every consumer updated in order
  secret show CREDENTIAL[.FIELD]
                               print a generated value (audit-logged)
  status [--json]              what the running daemon reports (exit 0 converged, 2 not, 1 error)
  unseal                       ask the passphrase and send it to the running daemon
                               (exit 0, 1 wrong, 3 rate-limited)
  export-vault-keys FILE       write Vault's init material, sealed, to FILE (safe to commit)
  import-vault-keys FILE       take it back into this state (same master passphrase)
  version                      print the version

options:
  --config FILE      daemon config (default /etc/foundationd/foundationd.toml when present)
  --spec SPEC        the spec (default: the config's [source] path)
  --state-dir DIR    state directory (default: the config's state_dir)
  --passphrase-file FILE       the passphrase's first line (else the TTY, no echo, or stdin)
  --kdf PROFILE                Argon2id cost: interactive | moderate (default) | sensitive
  --json             machine-readable output (plan)
)";

}  // namespace

std::optional<CliArgs> parseArgs(const std::vector<std::string>& argv, std::string& error) {
  CliArgs args;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto takeValue = [&](std::optional<std::string>& into) -> bool {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        into = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= argv.size()) {
        error = a + " needs a value";
        return false;
      }
      into = argv[++i];
      return true;
    };
    auto is = [&](const char* opt) { return a == opt || a.rfind(std::string(opt) + "=", 0) == 0; };
    if (is("--config")) {
      if (!takeValue(args.config)) return std::nullopt;
    } else if (is("--spec")) {
      if (!takeValue(args.spec)) return std::nullopt;
    } else if (is("--state-dir")) {
      if (!takeValue(args.stateDir)) return std::nullopt;
    } else if (is("--passphrase-file")) {
      if (!takeValue(args.passphraseFile)) return std::nullopt;
    } else if (is("--new-passphrase-file")) {
      if (!takeValue(args.newPassphraseFile)) return std::nullopt;
    } else if (is("--kdf")) {
      if (!takeValue(args.kdf)) return std::nullopt;
    } else if (a == "--json") {
      args.json = true;
    } else if (a == "--once") {
      args.once = true;
    } else if (a == "--rotate-data-key") {
      args.rotateDataKey = true;
    } else if (a == "-h" || a == "--help") {
      args.command = "help";
    } else if (a == "--version") {
      args.command = "version";
    } else if (a.size() > 1 && a[0] == '-') {
      error = "unknown option " + a;
      return std::nullopt;
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.push_back(a);
    }
  }
  if (args.command.empty()) args.command = "help";
  return args;
}

int runCli(int argc, char** argv) {
  std::vector<std::string> argvv(argv + 1, argv + argc);
  std::string error;
  auto args = parseArgs(argvv, error);
  if (!args) {
    std::fprintf(stderr, "foundationd: %s\n\n%s", error.c_str(), kUsage);
    return 1;
  }
  if (const char* d = std::getenv("FOUNDATIOND_DEBUG"); d && std::string(d) == "1") {
    log::setDebug(true);
  }
  const std::string& cmd = args->command;
  try {
    if (cmd == "check") return cmdCheck(*args);
    if (cmd == "plan") return cmdPlan(*args);
    if (cmd == "apply") return cmdApply(*args);
    if (cmd == "serve") return cmdServe(*args);
    if (cmd == "init") return cmdInit(*args);
    if (cmd == "rekey") return cmdRekey(*args);
    if (cmd == "rotate") return cmdRotate(*args);
    if (cmd == "secret") return cmdSecret(*args);
    if (cmd == "status") return cmdStatus(*args);
    if (cmd == "unseal") return cmdUnseal(*args);
    if (cmd == "export-vault-keys") return cmdExportVaultKeys(*args);
    if (cmd == "import-vault-keys") return cmdImportVaultKeys(*args);
    if (cmd == "vault-init-helper") return cmdVaultHelper(*args);
    if (cmd == "version") {
      std::printf("foundationd %s (%s)\n", FOUNDATIOND_VERSION, FOUNDATIOND_REVISION);
      return 0;
    }
    if (cmd == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  } catch (const std::exception& e) {
    // Exceptions are bugs or corruption (STYLE.md); say so plainly.
    std::fprintf(stderr, "foundationd: internal error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "foundationd: unknown command \"%s\"\n\n%s", cmd.c_str(), kUsage);
  return 1;
}

}  // namespace foundationd::daemon
