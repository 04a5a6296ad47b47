// The [s3.*]/[buckets.*] step: Daemon::reconcileBuckets (the daemon's
// converge) and the CLI's convergeBucketsOnce (daemon/buckets_step.hpp). The
// controller itself is controllers/buckets/buckets.hpp; it blocks (libcurl),
// so the daemon runs it on its pool.
#include <cstdio>
#include <set>
#include <string>

#include "controllers/credentials/credentials.hpp"
#include "daemon/buckets_step.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// Whether a batch concerns buckets: an s3/bucket key, or the container
// hosting an [s3.*] (recreated with a fresh volume, it has lost its buckets).
bool concerns(const config::Spec& spec, const Batch& batch) {
  std::set<std::string> hosts;
  for (const auto& [_, s3] : spec.s3) hosts.insert(s3.container);
  return batchConcerns(batch, {config::Kind::s3, config::Kind::bucket}, hosts);
}

std::string hostProblem(const Result<docker::ContainerInspect>& r) {
  if (!r) return r.error().message;
  if (!r->running) return "not running (" + r->state + ")";
  if (r->health == "unhealthy") return "unhealthy";
  return {};
}

}  // namespace

buckets::Outcome runBucketsStep(const config::Spec& spec, state::Store* store,
                                const state::UnlockedKey* key, buckets::Options options) {
  if (store != nullptr) {
    for (const auto& [name, _] : spec.buckets) {
      auto h = store->appliedHash("bucket", name);
      if (h && *h) options.applied[name] = **h;
    }
  }
  credentials::Resolver resolver(spec, store, key);
  buckets::SecretLookup secrets = [&resolver](const config::CredentialRef& ref) {
    return resolver.value(ref);
  };
  auto out = buckets::reconcile(spec, secrets, options);
  if (store != nullptr && !options.dryRun) {
    for (const auto& [name, digest] : out.applied) {
      auto it = options.applied.find(name);
      if (it == options.applied.end() || it->second != digest) {
        (void)store->setAppliedHash("bucket", name, digest);
      }
    }
  }
  return out;
}

nlohmann::json planBucketsJson(const config::Spec& spec, state::Store* store,
                               const state::UnlockedKey* key) {
  buckets::Options options;
  options.dryRun = true;
  options.waitReady = std::chrono::milliseconds(0);
  options.requestTimeout = std::chrono::milliseconds(3'000);
  auto out = runBucketsStep(spec, store, key, options);
  nlohmann::json servers = nlohmann::json::array();
  for (const auto& s : out.servers) {
    nlohmann::json entry{{"s3", s.s3}, {"ok", s.plan.has_value()}};
    for (const auto& o : out.report.outcomes) {
      if (o.key.kind == config::Kind::s3 && o.key.name == s.s3) entry["message"] = o.message;
    }
    nlohmann::json changes = nlohmann::json::array();
    nlohmann::json orphans = nlohmann::json::array();
    if (s.plan) {
      for (const auto& c : s.plan->changes) {
        changes.push_back({{"bucket", c.bucket},
                           {"action", buckets::toString(c.action)},
                           {"reason", c.reason},
                           {"drift", c.drift}});
      }
      for (const auto& [b, why] : s.plan->problems) {
        changes.push_back(
            {{"bucket", b}, {"action", "unsupported"}, {"reason", why}, {"drift", false}});
      }
      for (const auto& b : s.plan->orphans) orphans.push_back(b);
    }
    entry["changes"] = changes;
    entry["orphans"] = orphans;
    servers.push_back(entry);
  }
  return {{"servers", servers}};
}

asio::awaitable<StepReport> Daemon::reconcileBuckets(const config::Spec& spec, const Batch& batch) {
  if (spec.s3.empty() || !concerns(spec, batch)) co_return StepReport{};
  buckets::Options options;
  for (const auto& [_, s3] : spec.s3) {
    auto problem = hostProblem(co_await docker_.inspectContainer(s3.container));
    if (!problem.empty()) options.hostProblems[s3.container] = problem;
  }
  const auto started = std::chrono::steady_clock::now();
  const config::Spec* specp = &spec;
  state::Store* store = store_.get();
  const state::UnlockedKey* key = key_.locked() ? nullptr : &key_;
  buckets::Options* optp = &options;
  auto step = [specp, store, key, optp] { return runBucketsStep(*specp, store, key, *optp); };
  buckets::Outcome out = co_await onPool(step);
  logStepOutcomes("buckets.apply", out.report);
  for (const auto& s : out.servers) {
    if (!s.plan) continue;
    for (const auto& b : s.plan->orphans) {
      log::write(
          log::Level::debug, "buckets.orphan",
          {{"resource", "s3." + s.s3}, {"bucket", b}, {"note", "not in the spec; never deleted"}});
    }
  }
  log::write(log::Level::debug, "buckets.done",
             {{"requests", std::to_string(out.requests)},
              {"ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - started)
                                        .count())}});
  co_return out.report;
}

asio::awaitable<StepReport> convergeBucketsOnce(docker::DockerApi& api, const config::Spec& spec,
                                                state::Store* store,
                                                const state::UnlockedKey* key,
                                                const Offload& offload) {
  if (spec.s3.empty()) co_return StepReport{};
  buckets::Options options;
  for (const auto& [_, s3] : spec.s3) {
    auto problem = hostProblem(co_await api.inspectContainer(s3.container));
    if (!problem.empty()) options.hostProblems[s3.container] = problem;
  }
  if (key != nullptr && key->locked()) key = nullptr;
  buckets::Outcome out;
  if (offload) {
    // A named function: GCC 12 destroys a temporary that owns captures inside
    // a co_await expression twice.
    buckets::Outcome* outp = &out;
    const config::Spec* specp = &spec;
    buckets::Options* optp = &options;
    std::function<void()> work = [outp, specp, store, key, optp] {
      *outp = runBucketsStep(*specp, store, key, *optp);
    };
    co_await offload(std::move(work));
  } else {
    out = runBucketsStep(spec, store, key, options);
  }
  for (const auto& s : out.servers) {
    if (!s.plan) continue;
    for (const auto& b : s.plan->orphans) {
      std::printf("s3.%s: orphan bucket %s: not in the spec; never deleted\n", s.s3.c_str(),
                  b.c_str());
    }
  }
  std::fflush(stdout);
  co_return out.report;
}

}  // namespace foundationd::daemon
