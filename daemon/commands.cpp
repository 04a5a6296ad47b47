#include "daemon/commands.hpp"


#include <cstdio>
#include <filesystem>
#include <optional>

#include <boost/asio/io_context.hpp>

#include "config/spec_loader.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/plan_render.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {
namespace {

namespace asio = boost::asio;

// Sections whose controllers are not part of this build yet are said so,
// rather than silently ignored.
void noteUnmanaged(const config::Spec& spec) {
  std::string list;
  auto add = [&](bool present, const char* name) {
    if (present) list += (list.empty() ? "" : ", ") + std::string(name);
  };
  add(spec.vault.has_value(), "[vault]");
  add(!spec.s3.empty(), "[s3]");
  add(!spec.buckets.empty(), "[buckets]");
  add(spec.forgejo.has_value(), "[forgejo]");
  if (list.empty()) return;
  std::fprintf(stderr,
               "note: this build converges credentials, networks, volumes and containers; %s "
               "are validated but not yet acted on\n",
               list.c_str());
}

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

// "Time per step: credentials 2 ms, docker 9 ms, ..." (figures for each
// controller, e.g. of a no-op converge).
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
  if (!r.plan.hasChanges() && !r.plan.hasConflicts()) {
    std::printf("%s\n", docker::renderSummary(r.plan).c_str());
  }
  std::size_t stepChanges = 0;
  std::size_t stepFailed = 0;
  for (const auto& s : out.steps) {
    for (const auto& o : s.outcomes) {
      stepChanges += o.changed ? 1 : 0;
      stepFailed += o.ok ? 0 : 1;
    }
  }
  if (r.converged && stepFailed == 0) {
    std::printf("Converged: project \"%s\", %zu change(s) applied in %.2fs, %llu Docker API "
                "call(s).\n",
                spec.project.c_str(),
                r.report.outcomes.size() + out.generated.size() + stepChanges, seconds,
                static_cast<unsigned long long>(apiCalls));
    printTimings(out);
    return 0;
  }
  std::size_t failed = stepFailed;
  for (const auto& o : r.report.outcomes) failed += o.ok ? 0 : 1;
  std::printf("Not converged: %zu failed.\n", failed);
  if (r.remaining.hasChanges() || r.remaining.hasConflicts()) {
    std::fputs(docker::renderPlanText(r.remaining, {colorOutput()}).c_str(), stdout);
  }
  return 1;
}

int runConverge(const config::DaemonConfig& cfg, const config::Spec& spec, state::Store* store,
                const state::UnlockedKey* key) {
  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg.dockerSocket);
  const auto started = std::chrono::steady_clock::now();
  auto out = convergeOnce(io, client, spec, store, key, {}, cliHooks());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return reportConverge(spec, out, secs, client.requestCount());
}

int cmdCheck(const CliArgs& args) {
  if (args.positional.empty() && !args.spec) {
    std::fprintf(stderr, "usage: foundationd check SPEC\n");
    return 1;
  }
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
  auto spec = loadSpec(specPathOf(args, *cfg));
  if (!spec) return 1;
  if (!args.json) noteUnmanaged(*spec);

  // plan never needs the passphrase: credentials are compared by digest.
  std::unique_ptr<state::Store> store;
  std::vector<credentials::FieldPlan> credPlan;
  if (!spec->credentials.empty()) {
    auto opened = openExistingStore(stateDirOf(args, *cfg));
    if (opened) {
      store = std::move(opened).value();
      auto p = credentials::planCredentials(*spec, *store, std::chrono::system_clock::now());
      if (!p) {
        std::fprintf(stderr, "foundationd: %s\n", p.error().message.c_str());
        return 1;
      }
      credPlan = std::move(p).value();
    } else {
      for (const auto& [name, c] : spec->credentials) {
        for (const auto& [field, f] : c.fields) {
          if (f.generated()) {
            credPlan.push_back({name, field, credentials::FieldPlan::Action::generate,
                                "not generated yet"});
          }
        }
      }
    }
  }

  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
  StoreSecrets secrets(*spec, store.get(), nullptr);
  auto observed = runSync(io, docker::observe(client, spec->project));
  if (!observed) {
    std::fprintf(stderr, "foundationd: cannot read the Docker Engine: %s\n",
                 observed.error().message.c_str());
    return 1;
  }
  docker::Plan plan = docker::plan(*spec, observed.value(), secrets);
  bool credChanges = false;
  for (const auto& c : credPlan) {
    credChanges |= c.action != credentials::FieldPlan::Action::params_changed;
  }
  if (args.json) {
    auto doc = docker::renderPlanJson(plan);
    nlohmann::json creds = nlohmann::json::array();
    for (const auto& c : credPlan) {
      creds.push_back({{"resource", "credential." + c.credential + "." + c.field},
                       {"action", credentials::toString(c.action)},
                       {"reason", c.reason}});
    }
    doc["credentials"] = creds;
    doc["has_changes"] = plan.hasChanges() || credChanges;
    std::printf("%s\n", doc.dump(2).c_str());
  } else {
    for (const auto& c : credPlan) {
      const char* sym = c.action == credentials::FieldPlan::Action::generate ? "+"
                        : c.action == credentials::FieldPlan::Action::rotate ? "~"
                                                                             : "!";
      std::printf("  %s credential.%s.%s: %s (%s)\n", sym, c.credential.c_str(), c.field.c_str(),
                  credentials::toString(c.action), c.reason.c_str());
    }
    std::fputs(docker::renderPlanText(plan, {colorOutput()}).c_str(), stdout);
  }
  return plan.hasChanges() || plan.hasConflicts() || credChanges ? 2 : 0;
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
  noteUnmanaged(*spec);
  warnSecretsDirNotTmpfs(*spec);
  if (spec->credentials.empty() && !spec->vault) return runConverge(*cfg, *spec, nullptr, nullptr);
  auto unlocked = openAndUnlock(args, *cfg);
  if (!unlocked) {
    std::fprintf(stderr, "foundationd: %s; nothing was changed\n",
                 unlocked.error().message.c_str());
    return 1;
  }
  return runConverge(*cfg, *spec, unlocked->store.get(), &unlocked->key);
}

int cmdServe(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  std::string configPath;
  if (args.config) {
    configPath = *args.config;
  } else if (std::filesystem::exists("/etc/foundationd/foundationd.toml")) {
    configPath = "/etc/foundationd/foundationd.toml";
  }
  if (args.spec) cfg->source.path = *args.spec;
  if (args.stateDir) cfg->stateDir = *args.stateDir;
  asio::io_context io;
  Daemon daemon(io, *cfg, configPath);
  if (auto st = daemon.start(); !st) {
    log::error("serve.failed", {{"error", st.error().message}});
    std::fprintf(stderr, "foundationd: %s\n", st.error().message.c_str());
    return 1;
  }
  return runSync(io, daemon.run());
}

}  // namespace foundationd::daemon
