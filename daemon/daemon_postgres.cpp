// The [postgres.*] step: Daemon::reconcilePostgres (the daemon's converge) and
// the CLI's convergePostgresOnce / rotatePostgresRoles (daemon/postgres_step.hpp).
// The controller itself is controllers/postgres/postgres.hpp.
#include <cstdio>
#include <set>

#include "controllers/postgres/postgres.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"
#include "daemon/postgres_step.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// Whether a batch concerns PostgreSQL: a postgres key, or the container
// hosting an instance (a recreated one with a fresh volume has lost everything).
bool concerns(const config::Spec& spec, const Batch& batch) {
  std::set<std::string> hosts;
  for (const auto& [_, p] : spec.postgres) hosts.insert(p.container);
  return batchConcerns(batch, {config::Kind::postgres}, hosts);
}

void printOutcome(const StepOutcome& o) {
  const char* state = o.blocked ? "BLOCKED" : !o.ok ? "FAILED" : o.changed ? "" : "ok";
  if (o.ok && o.changed) {
    std::printf("%s: %s\n", o.key.str().c_str(), o.message.c_str());
  } else if (o.ok) {
    std::printf("%s: %s\n", o.key.str().c_str(), state);
  } else {
    std::printf("%s: %s: %s\n", o.key.str().c_str(), state, o.message.c_str());
  }
  std::fflush(stdout);
}

void printOrphans(const postgres::Report& r) {
  for (const auto& o : r.orphans) {
    std::printf("postgres.%s: orphan: not in the spec; never dropped\n", o.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

asio::awaitable<StepReport> Daemon::reconcilePostgres(const config::Spec& spec,
                                                      const Batch& batch) {
  if (spec.postgres.empty() || !concerns(spec, batch)) co_return StepReport{};
  const bool locked = key_.locked();
  StoreSecrets secrets(spec, store_.get(), locked ? nullptr : &key_);
  postgres::Options options;
  if (locked) options.waitReady = std::chrono::milliseconds(0);  // roles wait for unseal anyway
  const auto started = std::chrono::steady_clock::now();
  auto r = co_await postgres::reconcile(docker_, spec, secrets, options);
  logStepOutcomes("postgres.apply", r.step);
  for (const auto& o : r.orphans) {
    log::write(log::Level::debug, "postgres.orphan",
               {{"resource", "postgres." + o}, {"note", "not in the spec; never dropped"}});
  }
  log::write(log::Level::debug, "postgres.done",
             {{"execs", std::to_string(r.execs)},
              {"ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - started)
                                        .count())}});
  co_return r.step;
}

asio::awaitable<void> Daemon::alterRotatedRoles(
    const config::Spec& spec, const std::vector<credentials::Generated>& generated) {
  std::set<std::string> rotated;
  for (const auto& g : generated) {
    if (g.rotated && postgres::usesCredential(spec, g.credential)) rotated.insert(g.credential);
  }
  if (rotated.empty() || key_.locked()) co_return;
  StoreSecrets secrets(spec, store_.get(), &key_);
  for (const auto& name : rotated) {
    postgres::Options options;
    options.onlyCredential = name;
    auto r = co_await postgres::reconcile(docker_, spec, secrets, options);
    for (const auto& o : r.step.outcomes) {
      log::write(o.ok ? log::Level::info : log::Level::warning, "postgres.rotate",
                 {{"resource", o.key.str()},
                  {"credential", name},
                  {"ok", o.ok ? "true" : "false"},
                  {"message", o.message}});
    }
    applyStepReport(r.step);
  }
}

asio::awaitable<StepReport> convergePostgresOnce(docker::DockerApi& api, const config::Spec& spec,
                                                 state::Store* store,
                                                 const state::UnlockedKey* key) {
  if (spec.postgres.empty()) co_return StepReport{};
  StoreSecrets secrets(spec, store, key);
  const postgres::Options options;
  auto r = co_await postgres::reconcile(api, spec, secrets, options);
  printOrphans(r);
  co_return r.step;
}

namespace {

asio::awaitable<StepReport> rotateRoles(docker::DockerApi& api, const config::Spec& spec,
                                        state::Store* store, const state::UnlockedKey* key,
                                        std::string name) {
  if (!postgres::usesCredential(spec, name)) co_return StepReport{};
  StoreSecrets secrets(spec, store, key);
  postgres::Options options;
  options.onlyCredential = name;
  auto r = co_await postgres::reconcile(api, spec, secrets, options);
  for (const auto& o : r.step.outcomes) printOutcome(o);
  co_return r.step;
}

}  // namespace

StepReport rotatePostgresRoles(asio::io_context& io, docker::DockerApi& api,
                               const config::Spec& spec, state::Store* store,
                               const state::UnlockedKey* key, const std::string& name) {
  return runSync(io, rotateRoles(api, spec, store, key, name));
}

asio::awaitable<StepReport> rotatePostgresRolesOf(
    docker::DockerApi& api, const config::Spec& spec, state::Store* store,
    const state::UnlockedKey* key, const std::vector<credentials::Generated>& generated) {
  StepReport all;
  std::set<std::string> done;
  for (const auto& g : generated) {
    if (!g.rotated || !done.insert(g.credential).second) continue;
    const std::string name = g.credential;
    auto r = co_await rotateRoles(api, spec, store, key, name);
    all.outcomes.insert(all.outcomes.end(), r.outcomes.begin(), r.outcomes.end());
  }
  co_return all;
}

}  // namespace foundationd::daemon
