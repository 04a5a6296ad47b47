#include "daemon/commands.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/daemon_config.hpp"
#include "config/spec_loader.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/plan_render.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {
namespace {

namespace asio = boost::asio;

constexpr const char* kDefaultConfig = "/etc/foundationd/foundationd.toml";

// Runs `task` to completion on `io`, rethrowing what it threw.
template <typename T>
T runSync(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) error = e;
    else out.emplace(std::move(value));
  });
  io.run();
  io.restart();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
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
    std::fprintf(stderr, "foundationd: refusing to start with an invalid config (%s)\n",
                 path.c_str());
  }
  return loaded.config;
}

// Loads and validates the spec, printing every diagnostic on stderr.
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

bool colorOutput() {
  return isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
}

// Sections whose controllers are not part of this build yet are said so,
// rather than silently ignored.
void noteUnmanaged(const config::Spec& spec) {
  std::vector<std::string> pending;
  if (!spec.credentials.empty()) pending.push_back("[credentials]");
  if (spec.vault) pending.push_back("[vault]");
  if (!spec.s3.empty()) pending.push_back("[s3]");
  if (!spec.buckets.empty()) pending.push_back("[buckets]");
  if (!spec.postgres.empty()) pending.push_back("[postgres]");
  if (spec.forgejo) pending.push_back("[forgejo]");
  if (pending.empty()) return;
  std::string list;
  for (const auto& p : pending) list += (list.empty() ? "" : ", ") + p;
  std::fprintf(stderr,
               "note: this build converges networks, volumes and containers; %s are validated "
               "but not yet acted on\n",
               list.c_str());
}

bool usesCredentials(const config::Spec& spec) {
  for (const auto& [_, c] : spec.containers) {
    for (const auto& [__, v] : c.env) if (v.sensitive()) return true;
    if (!c.secretFiles.empty()) return true;
  }
  return false;
}

}  // namespace

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

  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
  docker::NoSecrets secrets;
  auto observed = runSync(io, docker::observe(client, spec->project));
  if (!observed) {
    std::fprintf(stderr, "foundationd: cannot read the Docker Engine: %s\n",
                 observed.error().message.c_str());
    return 1;
  }
  docker::Plan plan = docker::plan(*spec, observed.value(), secrets);
  if (args.json) {
    std::printf("%s\n", docker::renderPlanJson(plan).dump(2).c_str());
  } else {
    std::fputs(docker::renderPlanText(plan, {colorOutput()}).c_str(), stdout);
  }
  return plan.hasChanges() || plan.hasConflicts() ? 2 : 0;
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
  if (usesCredentials(*spec)) {
    std::fprintf(stderr,
                 "foundationd: containers of this spec use generated credentials, which need the "
                 "sealed state store; this build cannot apply them yet. Nothing was changed.\n");
    return 1;
  }

  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
  docker::NoSecrets secrets;
  docker::ApplyObserver observer;
  observer.started = [](const docker::Change& c) {
    std::printf("%s: %s...\n", c.key.str().c_str(), docker::toString(c.action));
    std::fflush(stdout);
  };
  observer.finished = [](const docker::Outcome& o) {
    char took[32];
    std::snprintf(took, sizeof took, "%.1fs", static_cast<double>(o.took.count()) / 1000.0);
    if (o.ok) {
      std::printf("%s: %s [%s]\n", o.key.str().c_str(), o.message.c_str(), took);
    } else {
      std::printf("%s: FAILED: %s [%s]\n", o.key.str().c_str(), o.message.c_str(), took);
    }
    std::fflush(stdout);
  };
  const auto started = std::chrono::steady_clock::now();
  auto result = runSync(io, docker::reconcile(client, *spec, secrets, {}, observer));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result) {
    std::fprintf(stderr, "foundationd: cannot reach the Docker Engine: %s\n",
                 result.error().message.c_str());
    return 1;
  }
  const auto& r = result.value();
  if (r.plan.changes.empty() || (!r.plan.hasChanges() && !r.plan.hasConflicts())) {
    std::printf("%s\n", docker::renderSummary(r.plan).c_str());
  }
  std::size_t failed = 0;
  for (const auto& o : r.report.outcomes) failed += o.ok ? 0 : 1;
  if (r.converged) {
    std::printf("Converged: project \"%s\", %zu change(s) applied in %.2fs, %llu Docker API "
                "call(s).\n",
                spec->project.c_str(), r.report.outcomes.size(), secs,
                static_cast<unsigned long long>(client.requestCount()));
    return 0;
  }
  std::printf("Not converged: %zu failed.\n", failed);
  if (r.remaining.hasChanges() || r.remaining.hasConflicts()) {
    std::fputs(docker::renderPlanText(r.remaining, {colorOutput()}).c_str(), stdout);
  }
  return 1;
}

int cmdServe(const CliArgs& args) {
  // The minimal daemon: converge the file source every resync_interval until
  // SIGTERM/SIGINT. The event-driven scheduler, the HTTP API and locked mode
  // replace this loop in the daemon work.
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  const std::string path = specPathOf(args, *cfg);
  asio::io_context io;
  docker::DockerClient client(io.get_executor(), cfg->dockerSocket);
  bool stopping = false;
  asio::steady_timer wake(io);
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    stopping = true;
    sd_notify(0, "STOPPING=1");
    log::info("serve.stopping");
    wake.cancel();
  });
  auto loop = [&]() -> asio::awaitable<int> {
    sd_notify(0, "READY=1\nSTATUS=starting");
    log::info("serve.ready", {{"spec", path}});
    while (!stopping) {
      auto loaded = config::loadSpecFile(path);
      if (!loaded.spec) {
        log::error("spec.invalid", {{"spec", path},
                                    {"errors", std::to_string(loaded.diagnostics.errorCount())}});
        for (const auto& d : loaded.diagnostics.sorted()) log::error("spec.diagnostic", {{"at", d.format()}});
      } else if (usesCredentials(*loaded.spec)) {
        log::error("spec.unsupported", {{"reason", "credentials need the state store"}});
      } else {
        docker::NoSecrets secrets;
        docker::ApplyObserver observer;
        observer.finished = [](const docker::Outcome& o) {
          log::write(o.ok ? log::Level::info : log::Level::error, "apply.done",
                     {{"resource", o.key.str()}, {"action", docker::toString(o.action)},
                      {"ok", o.ok ? "true" : "false"}, {"message", o.message}});
        };
        auto r = co_await docker::reconcile(client, *loaded.spec, secrets, {}, observer);
        if (!r) {
          log::error("reconcile.failed", {{"error", r.error().message}});
          sd_notify(0, "STATUS=docker unreachable");
        } else {
          log::info("reconcile.done", {{"converged", r->converged ? "true" : "false"},
                                       {"changes", std::to_string(r->report.outcomes.size())}});
          sd_notify(0, r->converged ? "STATUS=converged" : "STATUS=not converged");
        }
      }
      if (stopping) break;
      wake.expires_after(cfg->resyncInterval);
      boost::system::error_code ec;
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    signals.cancel();
    co_return 0;
  };
  return runSync(io, loop());
}

}  // namespace foundationd::daemon
