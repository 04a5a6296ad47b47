// bench_postgres: how long the PostgreSQL controller's no-op reconcile takes
// (TESTING.md "Benchmarks, not timed tests"), against a real PostgreSQL.
//
//   FOUNDATIOND_POSTGRES_IMAGE=<image> bench_postgres [RUNS]   (default 30)
//
// Starts a container from the image (tests/peers/postgres-image), converges
// one instance with 3 roles and 3 databases, then times RUNS reconciles that
// change nothing (each: one container inspect + one psql exec), and one that
// repairs a password changed by hand. Prints median, p90, min and max.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "controllers/docker/docker_client.hpp"
#include "controllers/postgres/postgres.hpp"

namespace pg = foundationd::postgres;
using foundationd::config::CredentialRef;
using Clock = std::chrono::steady_clock;

namespace {

template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out.emplace(std::move(v));
  });
  io.restart();
  io.run();
  return std::move(*out);
}

class MapSecrets final : public foundationd::docker::SecretResolver {
 public:
  std::map<CredentialRef, std::string> values;
  std::optional<std::string> digest(const CredentialRef& r) const override { return value(r); }
  std::optional<std::string> value(const CredentialRef& r) const override {
    auto it = values.find(r);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  const char* image = std::getenv("FOUNDATIOND_POSTGRES_IMAGE");
  if (image == nullptr || *image == '\0') {
    std::fprintf(stderr,
                 "bench_postgres: set FOUNDATIOND_POSTGRES_IMAGE (tests/peers/postgres-image)\n");
    return 2;
  }
  const int runs = argc > 1 ? std::atoi(argv[1]) : 30;
  boost::asio::io_context io;
  foundationd::docker::DockerClient client(io.get_executor());
  const std::string name = "fdtest-pg-bench-" + std::to_string(::getpid());
  const nlohmann::json body = {{"Image", image},
                               {"Env", {"POSTGRES_PASSWORD=bench"}},
                               {"HostConfig", {{"NetworkMode", "none"}}}};
  auto id = run(io, client.createContainer(name, body));
  if (!id) {
    std::fprintf(stderr, "create: %s\n", id.error().message.c_str());
    return 1;
  }
  int status = 0;
  (void)run(io, client.startContainer(*id));

  foundationd::config::Spec spec;
  foundationd::config::PostgresSpec p;
  p.name = "main";
  p.container = name;
  MapSecrets secrets;
  for (int i = 0; i < 3; ++i) {
    const std::string role = "role" + std::to_string(i);
    foundationd::config::PostgresRole r;
    r.name = role;
    r.password.segments.emplace_back(CredentialRef{role, "password"});
    secrets.values[{role, "password"}] = "password-of-" + role + "-0123456789abcdef";
    p.roles.emplace(role, r);
    foundationd::config::PostgresDatabase d;
    d.name = "db" + std::to_string(i);
    d.owner = role;
    p.databases.emplace(d.name, d);
  }
  spec.postgres.emplace("main", p);

  const auto t0 = Clock::now();
  auto first = run(io, pg::reconcile(client, spec, secrets, pg::Options{}));
  const auto firstMs = ms(Clock::now() - t0);
  if (!first.step.ok()) {
    std::fprintf(stderr, "first converge failed: %s\n",
                 first.step.outcomes.front().message.c_str());
    status = 1;
  } else {
    std::vector<double> times;
    std::uint64_t execs = 0;
    for (int i = 0; i < runs; ++i) {
      const auto t = Clock::now();
      auto r = run(io, pg::reconcile(client, spec, secrets, pg::Options{}));
      times.push_back(ms(Clock::now() - t));
      execs += r.execs;
      for (const auto& o : r.step.outcomes) {
        if (o.changed || !o.ok) status = 1;
      }
    }
    std::sort(times.begin(), times.end());
    // A password changed by hand, then one repairing reconcile.
    foundationd::docker::ExecOptions eo;
    eo.user = "postgres";
    eo.stdinData = "ALTER ROLE role1 PASSWORD 'changed-by-hand';";
    (void)run(io, client.exec(name, {"psql", "-X", "-q", "-d", "postgres"}, eo));
    const auto t = Clock::now();
    auto repair = run(io, pg::reconcile(client, spec, secrets, pg::Options{}));
    const auto repairMs = ms(Clock::now() - t);
    std::printf("postgres controller, 1 instance, 3 roles, 3 databases, %d no-op runs\n", runs);
    std::printf("  first converge (waits for initdb + start): %.0f ms\n", firstMs);
    std::printf(
        "  no-op reconcile: median %.1f ms, p90 %.1f ms, min %.1f ms, max %.1f ms; "
        "%.1f exec(s) per run\n",
        times[times.size() / 2], times[times.size() * 9 / 10], times.front(), times.back(),
        static_cast<double>(execs) / runs);
    std::printf("  drift repair (one password): %.1f ms, %llu exec(s)\n", repairMs,
                static_cast<unsigned long long>(repair.execs));
  }
  (void)run(io, client.removeContainer(name, true));
  return status;
}
