#include "daemon/cli.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "build_info.hpp"
#include "daemon/commands.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {
namespace {

// Every option, once: its value's name and what it does. A command lists the
// ones it uses (Command::options). A command's own flag given to another
// command is refused; the common ones (where the config, spec, state and
// passphrase are) are accepted by every command, so that one wrapper can pass
// them to all.
struct OptionHelp {
  const char* name;
  const char* value;  // "" for a flag
  const char* help;
  bool common = false;
};
constexpr OptionHelp kOptions[] = {
    {"--config", "FILE", "daemon config (default $FOUNDATIOND_CONFIG, else /etc/foundationd/foundationd.toml when present; docs/config.md)", true},
    {"--spec", "SPEC", "the spec file (default: the config's [source] path)", true},
    {"--state-dir", "DIR", "state directory (default: the config's state_dir, /var/lib/foundationd)", true},
    {"--passphrase-file", "FILE", "the passphrase is FILE's first line (else asked on the TTY without echo, else read from stdin)", true},
    {"--new-passphrase-file", "FILE", "the new passphrase is FILE's first line (else asked twice)", false},
    {"--kdf", "PROFILE", "Argon2id cost: interactive | moderate (default) | sensitive", false},
    {"--json", "", "machine-readable output", false},
    {"--once", "", "converge once and exit", false},
    {"--graph", "", "plan: the dependency graph as Graphviz DOT instead of the changes", false},
    {"--rotate-data-key", "", "rekey: also a new data key, every secret re-sealed (old copies of the state no longer open today's secrets)", false},
    {"--section", "NAME", "restore: what to restore (`backup list` names the sections; a prefix such as postgres/main selects all of them)", false},
    {"--backup", "ID", "restore: from this backup (default: the newest complete one)", false},
    {"--force", "", "restore: into a database that already has data (never drops it)", false},
    {"--offsite", "", "backup list, restore: the [backup.offsite] repository instead of [backup.local]", false},
    {"--out", "FILE", "backup export-recovery: where the bundle goes (default: [backup] recovery, relative to the spec)", false},
    {"--from-recovery", "BUNDLE", "restore: this fresh host's state from the newest complete backup, with the bundle's keys", false},
};

// One CLI command: its usage, what it does, the options valid for it and an
// example; `foundationd COMMAND --help` prints exactly that. A new command
// is one entry here (and its cmdX function).
struct Command {
  const char* name;      // "plan", or "secret show" (a subcommand: the first positional)
  const char* synopsis;  // after "foundationd "
  const char* summary;   // one line, for the command list
  const char* details;   // more, for --help ("" when the summary says it all)
  std::vector<const char*> options;
  const char* example;
  int (*run)(const CliArgs&);
  bool hidden = false;  // internal: not listed
};

int cmdVersion(const CliArgs&) {
  std::printf("foundationd %s (%s)\n", FOUNDATIOND_VERSION, FOUNDATIOND_REVISION);
  return 0;
}
int cmdHelp(const CliArgs& args);

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"check", "check SPEC | check --config FILE",
       "validate a spec and its VERSIONS offline, or a daemon config (exit 0 valid, 1 invalid)",
       "Every error and warning is printed with its file, line and column; nothing is\n"
       "changed and neither Docker nor the state is needed. With --config and no SPEC,\n"
       "FILE is checked as a daemon config (foundationd.toml, docs/config.md).",
       {"--spec", "--config"}, "foundationd check /srv/foundation/foundation.toml", cmdCheck, false},
      {"plan", "plan [--spec SPEC] [--json] [--passphrase-file FILE] [--graph]",
       "show what would change (exit 0 none, 2 changes, 1 error)",
       "Compares the spec with Docker, the state, Vault, PostgreSQL, the S3 servers and\n"
       "the forge; changes nothing. Without the passphrase (--passphrase-file), what needs\n"
       "a secret to be compared is listed as such (`?`, \"cannot compare while locked\"),\n"
       "never guessed; without the state directory, what depends on a credential too.\n"
       "--graph prints the dependency graph as Graphviz DOT instead.",
       {"--config", "--spec", "--state-dir", "--json", "--passphrase-file", "--graph"},
       "foundationd plan --spec foundation.toml",
       cmdPlan, false},
      {"apply", "apply --once [--spec SPEC] [--json]",
       "converge once and exit (exit 0 converged, 1 failed)",
       "Creates, recreates, starts what differs from the spec, in dependency order. Asks\n"
       "the passphrase when the spec has credentials. Refused while a daemon (`serve`)\n"
       "owns the state directory: the daemon converges on its own. With --json, stdout\n"
       "is one JSON document (every change: resource, action, reason, result; per-step\n"
       "timings) and the progress lines go to stderr.",
       {"--once", "--config", "--spec", "--state-dir", "--passphrase-file", "--json"},
       "foundationd apply --once --spec foundation.toml", cmdApply, false},
      {"serve", "serve [--config FILE]", "run the daemon (what systemd starts)",
       "Starts locked, serves the HTTP API (docs/api.md), converges what needs no secret,\n"
       "and everything once unsealed (`foundationd unseal`); repairs drift from Docker's\n"
       "events; SIGHUP reloads the config. One daemon per state directory.",
       {"--config", "--spec", "--state-dir"}, "foundationd serve --config /etc/foundationd/foundationd.toml",
       cmdServe, false},
      {"init", "init [--state-dir DIR] [--kdf PROFILE]",
       "create the state store and set the master passphrase",
       "The passphrase is asked twice on a TTY (or read from --passphrase-file, or two\n"
       "identical lines on stdin); it must be 12 to 1024 characters.",
       {"--config", "--state-dir", "--passphrase-file", "--kdf"},
       "foundationd init --state-dir /var/lib/foundationd", cmdInit, false},
      {"rekey", "rekey [--passphrase-file OLD --new-passphrase-file NEW]",
       "change the master passphrase (old, then new twice)",
       "On stdin: three lines, the old passphrase, the new one, the new one again.\n"
       "Refused while a daemon runs on the state: stop it first. --rotate-data-key also\n"
       "replaces the data key and re-seals every secret (docs/state.md).",
       {"--config", "--state-dir", "--passphrase-file", "--new-passphrase-file", "--kdf",
        "--rotate-data-key"},
       "foundationd rekey --state-dir /var/lib/foundationd", cmdRekey, false},
      {"rotate", "rotate CREDENTIAL [--spec SPEC]",
       "new values, then every consumer updated in order",
       "Through the running daemon's API when one runs (POST /v1/rotate, with the token\n"
       "of api.token_file), else one-shot with the spec (--spec or the config's source).",
       {"--config", "--spec", "--state-dir", "--passphrase-file"}, "foundationd rotate app-db",
       cmdRotate, false},
      {"secret show", "secret show CREDENTIAL[.FIELD]",
       "print a generated value (audit-logged)", "",
       {"--config", "--state-dir", "--passphrase-file"}, "foundationd secret show app-db.password",
       cmdSecret, false},
      {"secret set", "secret set CREDENTIAL.FIELD",
       "store an operator-provided value ({ provided = true }), then converge its consumers",
       "The value is read from the terminal (asked twice, not echoed) or from stdin (to\n"
       "its end, one trailing newline dropped), never from the command line, and never\n"
       "printed; the audit log records who set which field. Through the running daemon's\n"
       "API when one runs (POST /v1/secrets, with the token of api.token_file); else\n"
       "one-shot with the spec, the passphrase from --passphrase-file or the terminal.\n"
       "Setting it again is a rotation: PostgreSQL, Vault, then every consumer follows.",
       {"--config", "--spec", "--state-dir", "--passphrase-file"},
       "foundationd secret set smtp.password", cmdSecret, false},
      {"status", "status [--json]",
       "what the running daemon reports (exit 0 converged, 2 not, 1 error)",
       "Asks the daemon over the Unix socket of api.listen.", {"--config", "--json"},
       "foundationd status", cmdStatus, false},
      {"unseal", "unseal", "send the master passphrase to the running daemon (exit 0, 1 wrong, 3 rate-limited)",
       "", {"--config", "--passphrase-file"}, "foundationd unseal", cmdUnseal, false},
      {"export-vault-keys", "export-vault-keys FILE",
       "write Vault's init material, sealed, to FILE (safe to commit)", "",
       {"--config", "--state-dir"}, "foundationd export-vault-keys vault-keys.json",
       cmdExportVaultKeys, false},
      {"import-vault-keys", "import-vault-keys FILE",
       "take it back into this state (same master passphrase)", "",
       {"--config", "--state-dir", "--passphrase-file"},
       "foundationd import-vault-keys vault-keys.json", cmdImportVaultKeys, false},
      {"preflight", "preflight [--spec SPEC]",
       "check this host before the first apply, and on demand (exit 0 ok, 1 a check failed)",
       "One line per check (pass, warn, fail, skip) and, for each problem, what to do:\n"
       "Docker and its API version, permission on its socket, the ports the spec\n"
       "publishes, disk space where volumes live, the secret directory on tmpfs, the\n"
       "state directory's owner and mode, the clock, the spec source (git ls-remote for\n"
       "a git source), and each peer the spec names once its container runs.\n"
       "Changes nothing.",
       {"--config", "--spec", "--state-dir"}, "foundationd preflight --spec foundation.toml",
       cmdPreflight, false},
      {"backup", "backup [--spec SPEC] [--json]",
       "take a backup now into [backup.local] (exit 0 complete, 1 failed)",
       "Every database of every [postgres.*] (pg_dump inside its container), Vault (its\n"
       "raft snapshot API), the forge's volumes (read while the forge is paused), the\n"
       "protected buckets' objects and this state, into restic, with a manifest (sizes,\n"
       "SHA-256, row counts, Vault's secret count, the forge's repositories and HEADs,\n"
       "bucket inventories, spec revision). Then the retention.\n"
       "The repository password is generated in the sealed state on first use; asks the\n"
       "passphrase. Then the backup is copied to [backup.offsite] (restic copy) and\n"
       "confirmed there: exit 1 when that fails (the local copy is kept). `backup verify`\n"
       "restores it to check it (docs/dr.md).",
       {"--config", "--spec", "--state-dir", "--passphrase-file", "--json"},
       "foundationd backup --spec foundation.toml", cmdBackup, false},
      {"backup list", "backup list [--offsite] [--json]",
       "the backups in [backup.local], each with its manifest",
       "A backup without a manifest (failed, interrupted) is listed as INCOMPLETE and is\n"
       "never restored from. VERIFIED: verified, failed: REASON, or never (backup verify).",
       {"--config", "--spec", "--state-dir", "--passphrase-file", "--offsite", "--json"},
       "foundationd backup list", cmdBackup, false},
      {"backup verify", "backup verify [ID] [--offsite] [--json]",
       "restore a backup into scratch containers and compare it with its manifest (exit 0 "
       "verified, 1 not)",
       "Default: the newest complete backup (an INCOMPLETE one is refused). restic check,\n"
       "every section read back (size, SHA-256), then one internal scratch network\n"
       "(fd-verify-ID-...: no route out, no published port): each [postgres.*] restored\n"
       "into a scratch PostgreSQL of the same image and every table's row count compared;\n"
       "the forge's data extracted into a scratch container, each repository's HEAD\n"
       "compared and `git fsck` run. Every scratch container, its anonymous volumes and\n"
       "the network are removed afterwards, on failure too. The result is kept in the\n"
       "state: `backup list` (VERIFIED), status, /metrics. Vault's snapshot is compared,\n"
       "not restored, by this version. docs/dr.md \"Verify\".",
       {"--config", "--spec", "--state-dir", "--passphrase-file", "--offsite", "--json"},
       "foundationd backup verify", cmdBackup, false},
      {"backup export-recovery", "backup export-recovery [--out FILE] [--kdf PROFILE]",
       "write the recovery bundle into the spec repository, sealed (commit it)",
       "What a fresh host needs beyond the spec repository and the master passphrase: the\n"
       "restic repository password and the [backup.local]/[backup.offsite] locations and\n"
       "keys, sealed under the master passphrase (Argon2id, XChaCha20-Poly1305), written\n"
       "atomically to [backup] recovery (relative to the spec) or --out. Asks the\n"
       "passphrase. Export it again after `rekey` or a new offsite key. docs/dr.md.",
       {"--config", "--spec", "--state-dir", "--passphrase-file", "--out", "--kdf"},
       "foundationd backup export-recovery --spec /srv/spec/foundation.toml", cmdBackup, false},
      {"restore", "restore --section NAME [--backup ID] [--force] [--offsite]",
       "restore sections of a backup (exit 0 restored, 1 refused or failed)",
       "First the repository is checked and every selected section read back and compared\n"
       "with the manifest (size, SHA-256): a tampered or wrong-password repository is\n"
       "refused before anything is written. A database that has tables is refused\n"
       "without --force; nothing is ever dropped. Sections: postgres/NAME/globals,\n"
       "postgres/NAME/db/DB (or the prefix postgres/NAME), state (written beside the\n"
       "state as state.db.restored-ID, never in its place), forge/data (the forge's\n"
       "volumes; forge/repo/OWNER/NAME: one repository; refused over live data without\n"
       "--force). On a fresh host, --from-recovery BUNDLE (no --section) puts the state\n"
       "of the newest complete backup in place from the bundle's offsite (else local)\n"
       "repository, once it opens with the passphrase; it refuses a state directory that\n"
       "has a state. dr/RUNBOOK.md.",
       {"--config", "--spec", "--state-dir", "--passphrase-file", "--section", "--backup",
        "--force", "--offsite", "--from-recovery"},
       "foundationd restore --section postgres/main", cmdRestore, false},
      {"version", "version", "print the version", "", {}, "foundationd version", cmdVersion, false},
      {"help", "help [COMMAND]", "this text, or a command's usage, options and example", "", {},
       "foundationd help plan", cmdHelp, false},
      {"vault-init-helper", "vault-init-helper", "internal", "", {}, "", cmdVaultHelper, true},
  };
  return table;
}

const OptionHelp* optionHelp(std::string_view name) {
  for (const auto& o : kOptions) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

// The entry for `args` ("secret" + "show" is "secret show"), or nullptr.
const Command* findCommand(const std::string& name, const std::vector<std::string>& positional) {
  const Command* plain = nullptr;
  for (const auto& c : commands()) {
    const std::string n = c.name;
    if (n == name) plain = &c;
    if (!positional.empty() && n == name + " " + positional.front()) return &c;
  }
  return plain;
}

std::string usageText() {
  std::string out = "usage: foundationd COMMAND [OPTIONS]\n\ncommands:\n";
  for (const auto& c : commands()) {
    if (c.hidden) continue;
    char line[512];
    const std::string syn = c.synopsis;
    if (syn.size() <= 30) {
      std::snprintf(line, sizeof line, "  %-30s %s\n", c.synopsis, c.summary);
    } else {
      std::snprintf(line, sizeof line, "  %s\n  %-30s %s\n", c.synopsis, "", c.summary);
    }
    out += line;
  }
  out += "\n`foundationd COMMAND --help` shows a command's options and an example.\n"
         "Docs: README.md and docs/ (config.md: the daemon config; spec.md: the spec).\n";
  return out;
}

std::string commandHelp(const Command& c) {
  std::string out = std::string("usage: foundationd ") + c.synopsis + "\n\n" + c.summary + "\n";
  if (*c.details) out += std::string("\n") + c.details + "\n";
  if (!c.options.empty()) {
    out += "\noptions:\n";
    for (const char* name : c.options) {
      const OptionHelp* o = optionHelp(name);
      if (!o) continue;
      std::string left = std::string(o->name) + (*o->value ? std::string(" ") + o->value : "");
      char line[512];
      std::snprintf(line, sizeof line, "  %-28s %s\n", left.c_str(), o->help);
      out += line;
    }
  }
  if (*c.example) out += std::string("\nexample:\n  ") + c.example + "\n";
  return out;
}

int cmdHelp(const CliArgs& args) {
  if (args.positional.empty()) {
    std::fputs(usageText().c_str(), stdout);
    return 0;
  }
  std::vector<std::string> rest(args.positional.begin() + 1, args.positional.end());
  const Command* c = findCommand(args.positional.front(), rest);
  if (!c || c->hidden) {
    std::fprintf(stderr, "foundationd: no command \"%s\"\n\n%s", args.positional.front().c_str(),
                 usageText().c_str());
    return 2;
  }
  std::fputs(commandHelp(*c).c_str(), stdout);
  return 0;
}

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
    auto is = [&](const char* opt) {
      const bool match = a == opt || a.rfind(std::string(opt) + "=", 0) == 0;
      if (match) args.given.push_back(opt);
      return match;
    };
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
      args.given.push_back(a);
      args.json = true;
    } else if (a == "--once") {
      args.given.push_back(a);
      args.once = true;
    } else if (a == "--graph") {
      args.given.push_back(a);
      args.graph = true;
    } else if (is("--section")) {
      if (!takeValue(args.section)) return std::nullopt;
    } else if (is("--backup")) {
      if (!takeValue(args.backupId)) return std::nullopt;
    } else if (a == "--force") {
      args.given.push_back(a);
      args.force = true;
    } else if (is("--out")) {
      if (!takeValue(args.out)) return std::nullopt;
    } else if (is("--from-recovery")) {
      if (!takeValue(args.fromRecovery)) return std::nullopt;
    } else if (a == "--offsite") {
      args.given.push_back(a);
      args.offsite = true;
    } else if (a == "--rotate-data-key") {
      args.given.push_back(a);
      args.rotateDataKey = true;
    } else if (a == "-h" || a == "--help") {
      args.help = true;
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
  return args;
}

int runCli(int argc, char** argv) {
  std::vector<std::string> argvv(argv + 1, argv + argc);
  std::string error;
  auto args = parseArgs(argvv, error);
  if (!args) {
    std::fprintf(stderr, "foundationd: %s\n\n%s", error.c_str(), usageText().c_str());
    return 1;
  }
  if (const char* d = std::getenv("FOUNDATIOND_DEBUG"); d && std::string(d) == "1") {
    log::setDebug(true);
  }
  if (args->command.empty()) {
    if (args->help) {
      std::fputs(usageText().c_str(), stdout);
      return 0;
    }
    std::fputs(usageText().c_str(), stderr);
    return 2;
  }
  const Command* cmd = findCommand(args->command, args->positional);
  if (!cmd) {
    // A command group ("secret"): its subcommands.
    std::string group;
    for (const auto& c : commands()) {
      if (std::string(c.name).rfind(args->command + " ", 0) == 0) {
        group += std::string("  foundationd ") + c.synopsis + "\n      " + c.summary + "\n";
      }
    }
    if (!group.empty()) {
      std::fprintf(args->help ? stdout : stderr, "usage:\n%s", group.c_str());
      return args->help ? 0 : 2;
    }
    std::fprintf(stderr, "foundationd: unknown command \"%s\"\n\n%s", args->command.c_str(),
                 usageText().c_str());
    return 2;
  }
  if (args->help) {
    std::fputs(commandHelp(*cmd).c_str(), stdout);
    return 0;
  }
  for (const auto& given : args->given) {
    const bool valid = std::any_of(cmd->options.begin(), cmd->options.end(),
                                   [&](const char* o) { return given == o; });
    const OptionHelp* known = optionHelp(given);
    if (!valid && known && !known->common) {
      std::fprintf(stderr, "foundationd: %s is not an option of `%s`\n\n%s", given.c_str(),
                   cmd->name, commandHelp(*cmd).c_str());
      return 1;
    }
  }
  try {
    return cmd->run(*args);
  } catch (const std::exception& e) {
    // Exceptions are bugs or corruption; say so plainly.
    std::fprintf(stderr, "foundationd: internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace foundationd::daemon
