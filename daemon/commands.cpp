#include "daemon/commands.hpp"


#include <cstdio>
#include <filesystem>
#include <optional>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "config/daemon_config.hpp"
#include "config/spec_loader.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/plan_render.hpp"
#include "controllers/transport/http_client.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/files_step.hpp"
#include "daemon/log.hpp"
#include "daemon/plan.hpp"

namespace foundationd::daemon {
namespace {

// A spec whose steps reach a peer over TCP (Vault, S3, the forge): libcurl
// loads on another thread while the state is unlocked and Docker converges.
void preloadHttpFor(const config::Spec& spec) {
  if (spec.vault || !spec.s3.empty() || spec.forgejo) transport::preloadInBackground();
}

namespace asio = boost::asio;

void printGenerated(const credentials::Generated& g) {
  std::printf("credential.%s.%s: %s (version %d)\n", g.credential.c_str(), g.field.c_str(),
              g.rotated ? "rotated" : "generated", g.version);
  std::fflush(stdout);
}

ConvergeHooks cliHooks() {
  ConvergeHooks hooks;
  hooks.generated = printGenerated;
  hooks.docker.started = [](const docker::Change& c) {
    std::printf("%s: %s...\n", c.key.str().c_str(), docker::toString(c.action));
    std::fflush(stdout);
  };
  hooks.docker.finished = [](const docker::Outcome& o) {
    const double secs = static_cast<double>(o.took.count()) / 1000.0;
    if (o.ok) {
      std::printf("%s: %s [%.1fs]\n", o.key.str().c_str(), o.message.c_str(), secs);
    } else {
      std::printf("%s: FAILED: %s [%.1fs]\n", o.key.str().c_str(), o.message.c_str(), secs);
    }
    std::fflush(stdout);
  };
  hooks.docker.waiting = [](const config::ResourceKey& key, const std::string& message) {
    std::printf("%s: %s\n", key.str().c_str(), message.c_str());
    std::fflush(stdout);
  };
  // A service step's outcome (vault, buckets, postgres, forgejo): changes and
  // failures; a converged, unchanged resource says nothing.
  hooks.step = [](const StepOutcome& o) {
    if (o.ok && !o.changed) return;
    std::printf("%s: %s%s\n", o.key.str().c_str(),
                o.blocked ? "BLOCKED: " : !o.ok ? "FAILED: " : "", o.message.c_str());
    std::fflush(stdout);
  };
  return hooks;
}

// "Time per step: credentials 2 ms, docker 9 ms, ... (the whole converge:
// 300 ms)." (figures for each controller, e.g. of a no-op converge; the
// whole is less than their sum when steps ran at once).
void printTimings(const ConvergeOutcome& out) {
  if (out.timings.empty()) return;
  std::string line = "Time per step:";
  const char* sep = " ";
  for (const auto& [name, secs] : out.timings) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.0f ms", sep, name.c_str(), secs * 1000.0);
    line += buf;
    sep = ", ";
  }
  if (out.seconds > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " (the whole converge: %.0f ms)", out.seconds * 1000.0);
    line += buf;
  }
  std::printf("%s.\n", line.c_str());
}

// secret_files belong on a tmpfs: say so when the spec has some and the
// directory is not on one.
void warnSecretsDirNotTmpfs(const config::Spec& spec) {
  bool any = false;
  for (const auto& [_, c] : spec.containers) any = any || !c.secretFiles.empty();
  if (!any) return;
  if (auto warning = docker::secretsDirNotTmpfs(docker::ApplyOptions{}.secretsDir)) {
    std::fprintf(stderr, "warning: %s\n", warning->c_str());
  }
}

}  // namespace

// Prints a converge's result; the exit code of apply/rotate.
int reportConverge(const config::Spec& spec, const ConvergeOutcome& out, double seconds,
                   std::uint64_t apiCalls) {
  if (out.error) {
    std::fprintf(stderr, "foundationd: %s\n", out.error->message.c_str());
    return 1;
  }
  const auto& r = *out.docker;
  std::size_t stepChanges = 0;
  std::size_t stepFailed = 0;
  std::size_t stepBlocked = 0;  // waits for the operator or another step: not failed
  for (const auto& s : out.steps) {
    for (const auto& o : s.outcomes) {
      stepChanges += o.changed ? 1 : 0;
      stepFailed += o.ok || o.blocked ? 0 : 1;
      stepBlocked += o.blocked ? 1 : 0;
    }
  }
  if (r.converged && stepFailed == 0 && stepBlocked == 0) {
    // One summary for the whole converge (credentials, Docker, service steps).
    const std::size_t changes = r.report.outcomes.size() + out.generated.size() + stepChanges;
    if (changes == 0) {
      std::printf("Converged: project \"%s\" already matches the spec, nothing to change "
                  "(checked in %.2fs, %llu Docker API call(s)).\n",
                  spec.project.c_str(), seconds, static_cast<unsigned long long>(apiCalls));
    } else {
      std::printf("Converged: project \"%s\", %zu change(s) applied in %.2fs, %llu Docker API "
                  "call(s).\n",
                  spec.project.c_str(), changes, seconds,
                  static_cast<unsigned long long>(apiCalls));
    }
    std::size_t orphans = 0;
    for (const auto& c : r.plan.changes) orphans += c.action == docker::Action::orphan ? 1 : 0;
    if (orphans > 0) {
      std::printf("%zu orphaned resource(s) not in the spec, kept (`plan` lists them).\n",
                  orphans);
    }
    printTimings(out);
    return 0;
  }
  std::size_t failed = stepFailed;
  for (const auto& o : r.report.outcomes) failed += o.ok ? 0 : 1;
  if (stepBlocked > 0) {
    std::printf("Not converged: %zu failed, %zu blocked (waiting, see above).\n", failed,
                stepBlocked);
  } else {
    std::printf("Not converged: %zu failed.\n", failed);
  }
  if (r.remaining.hasChanges() || r.remaining.hasConflicts()) {
    std::fputs(docker::renderPlanText(r.remaining, {colorOutput()}).c_str(), stdout);
  }
  return 1;
}

int runConverge(const config::DaemonConfig& cfg, const config::Spec& spec, state::Store* store,
                const state::UnlockedKey* key, bool json) {
  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg.dockerSocket);
  const auto started = std::chrono::steady_clock::now();
  docker::ApplyOptions options;
  options.filesDir = (store ? store->path().parent_path().string() : cfg.stateDir) + "/files";
  // --json: the human lines (progress, notes, the summary) go to stderr, the
  // document alone to stdout.
  int savedStdout = -1;
  if (json) {
    std::fflush(stdout);
    savedStdout = ::dup(STDOUT_FILENO);
    if (savedStdout >= 0) ::dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  options.beforeStatefulImageChange = backupBeforeUpgradeHook(
      spec, store, key, client, store ? store->path().parent_path().string() : cfg.stateDir,
      cfg.dockerSocket);
  auto out = convergeOnce(io, client, spec, store, key, options, cliHooks());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int code = reportConverge(spec, out, secs, client.requestCount());
  if (json) {
    std::fflush(stdout);
    if (savedStdout >= 0) {
      ::dup2(savedStdout, STDOUT_FILENO);
      ::close(savedStdout);
    }
    std::printf("%s\n", applyJson(spec, out, secs, client.requestCount()).dump(2).c_str());
    std::fflush(stdout);
  }
  return code;
}

// `check --config FILE`: the daemon config, as `serve` would read it.
int checkDaemonConfig(const std::string& path) {
  auto loaded = config::loadDaemonConfigFile(path);
  std::fputs(loaded.diagnostics.formatAll().c_str(), stderr);
  if (!loaded.config) {
    std::fprintf(stderr, "%s: %zu error(s), %zu warning(s)\n", path.c_str(),
                 loaded.diagnostics.errorCount(), loaded.diagnostics.warningCount());
    return 1;
  }
  const auto& c = *loaded.config;
  std::printf("%s: valid daemon config: state_dir %s, source %s %s, %zu API listener(s); "
              "%zu warning(s)\n",
              path.c_str(), c.stateDir.c_str(), c.source.kind.c_str(),
              (c.source.kind == "git" ? c.source.url : c.source.path).c_str(), c.apiListen.size(),
              loaded.diagnostics.warningCount());
  return 0;
}

int cmdCheck(const CliArgs& args) {
  if (args.positional.empty() && !args.spec) {
    if (args.config) return checkDaemonConfig(*args.config);
    std::fprintf(stderr, "usage: foundationd check SPEC | foundationd check --config FILE\n");
    return 1;
  }
  if (args.config && checkDaemonConfig(*args.config) != 0) return 1;
  const std::string path = args.spec ? *args.spec : args.positional.front();
  auto loaded = config::loadSpecFile(path);
  std::fputs(loaded.diagnostics.formatAll().c_str(), stderr);
  if (!loaded.spec) {
    std::fprintf(stderr, "%s: %zu error(s), %zu warning(s)\n", path.c_str(),
                 loaded.diagnostics.errorCount(), loaded.diagnostics.warningCount());
    return 1;
  }
  const auto& s = *loaded.spec;
  std::printf("%s: valid: project \"%s\", %zu container(s), %zu network(s), %zu volume(s), "
              "%zu credential(s); %zu warning(s)\n",
              path.c_str(), s.project.c_str(), s.containers.size(), s.networks.size(),
              s.volumes.size(), s.credentials.size(), loaded.diagnostics.warningCount());
  return 0;
}

int cmdPlan(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto spec = loadSpec(specPathOf(args, *cfg));  // a cycle: an error with its path
  if (!spec) return 1;
  if (args.graph) {
    std::fputs(graphDot(*spec).c_str(), stdout);
    return 0;
  }
  preloadHttpFor(*spec);
  // The passphrase is optional: without it, what needs a secret to be
  // compared is listed as unknown (credentials are compared by digest).
  std::unique_ptr<state::Store> store;
  std::optional<state::UnlockedKey> key;
  if (args.passphraseFile) {
    auto unlocked = openAndUnlock(args, *cfg);
    if (!unlocked) {
      std::fprintf(stderr, "foundationd: %s\n", unlocked.error().message.c_str());
      return 1;
    }
    store = std::move(unlocked->store);
    key.emplace(std::move(unlocked->key));
  } else if (auto opened = openExistingStore(stateDirOf(args, *cfg))) {
    store = std::move(opened).value();
  }
  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
  PlanInputs in;
  in.docker = &client;
  in.store = store.get();
  in.key = key ? &*key : nullptr;
  in.stateDir = stateDirOf(args, *cfg);
  auto plan = runSync(io, planWholeSpec(*spec, in));
  if (!plan) {
    std::fprintf(stderr, "foundationd: %s\n", plan.error().message.c_str());
    return 1;
  }
  if (args.json) {
    std::printf("%s\n", plan->json().dump(2).c_str());
  } else {
    std::fputs(plan->text(colorOutput()).c_str(), stdout);
  }
  return plan->hasChanges() ? 2 : 0;
}

int cmdApply(const CliArgs& args) {
  if (!args.once) {
    std::fprintf(stderr,
                 "foundationd: apply converges once and exits: say `apply --once` (the daemon "
                 "is `foundationd serve`)\n");
    return 1;
  }
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto spec = loadSpec(specPathOf(args, *cfg));
  if (!spec) return 1;
  if (args.stateDir) cfg->stateDir = *args.stateDir;  // where [files] without secrets live
  warnSecretsDirNotTmpfs(*spec);
  preloadHttpFor(*spec);
  // One converger per state directory: a running daemon owns it.
  const bool needsState = !spec->credentials.empty() || spec->vault.has_value();
  auto lock = lockState(stateDirOf(args, *cfg), "apply --once", "", false);
  if (!lock) {
    std::fprintf(stderr, "foundationd: %s\n", lock.error().message.c_str());
    return 1;
  }
  if (!needsState) return runConverge(*cfg, *spec, nullptr, nullptr, args.json);
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) {
    std::fprintf(stderr, "foundationd: %s; nothing was changed\n",
                 unlocked.error().message.c_str());
    return 1;
  }
  return runConverge(*cfg, *spec, unlocked->store.get(), &unlocked->key, args.json);
}

int cmdServe(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  const std::string configPath = configPathOf(args);  // reloaded on SIGHUP
  if (args.spec) cfg->source.path = *args.spec;
  if (args.stateDir) cfg->stateDir = *args.stateDir;
  // Held until the process ends: no one-shot command converges meanwhile.
  auto lock = lockState(cfg->stateDir, "serve",
                        "One daemon per state directory: this one was not started");
  if (!lock) {
    log::error("serve.failed", {{"error", lock.error().message}});
    std::fprintf(stderr, "foundationd: %s\n", lock.error().message.c_str());
    return 1;
  }
  asio::io_context io;
  Daemon daemon(io, *cfg, configPath);
  if (auto st = daemon.start(); !st) {
    log::error("serve.failed", {{"error", st.error().message}});
    std::fprintf(stderr, "foundationd: %s\n", st.error().message.c_str());
    return 1;
  }
  // Stop the loop as soon as run() is done: the pollers' timers (Vault every
  // 3 s, the source in 1 s slices) must not hold the exit after serve.stopped.
  int code = 1;
  std::exception_ptr error;
  asio::co_spawn(io, daemon.run(), [&](std::exception_ptr e, int c) {
    error = e;
    code = c;
    io.stop();
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return code;
}

}  // namespace foundationd::daemon
