#include "daemon/pipeline.hpp"

#include <chrono>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/graph.hpp"
#include "controllers/docker/secret_files.hpp"
#include "daemon/converge.hpp"
#include "daemon/files_step.hpp"
#include "daemon/provided.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;
using config::Kind;
using config::ResourceKey;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void addTiming(PipelineOutcome& out, PipelineExecutor& exec, const std::string& name,
               Clock::time_point started) {
  const double secs = since(started);
  exec.timing(name, secs);
  for (auto& [n, s] : out.timings) {
    if (n == name) {
      s += secs;
      return;
    }
  }
  out.timings.emplace_back(name, secs);
}

std::set<std::string> namesOf(const std::set<ResourceKey>& keys) {
  std::set<std::string> out;
  for (const auto& k : keys) out.insert(k.name);
  return out;
}

// What failed in a Docker pass: its dependents are blocked.
void noteFailures(config::Phases& phases, const docker::ReconcileResult& r) {
  for (const auto& o : r.report.outcomes) {
    if (!o.ok) phases.fail(o.key, o.message);
  }
  for (const auto& c : r.remaining.changes) {
    if (c.action == docker::Action::conflict) phases.fail(c.key, c.reason);
  }
}

// The outcomes of a file that could not be rendered, one per consumer.
void unavailableFiles(const config::Spec& spec, const docker::FilesWritten& files,
                      const std::set<ResourceKey>& skip, StepReport& out) {
  for (const auto& u : files.unavailable) {
    StepOutcome o;
    o.key = {Kind::container, ""};
    for (const auto& [cname, c] : spec.containers) {
      for (const auto& [path, m] : c.files) {
        if (m.file == u.first) o.key.name = cname;
      }
    }
    o.ok = false;
    o.blocked = true;
    o.message = "file " + u.first + " " + u.second;
    if (skip.count(o.key) || o.key.name.empty()) continue;  // reported as blocked or pending
    out.outcomes.push_back(std::move(o));
  }
}


// One converge's state after the credentials, shared by the phases running
// at once. Everything here runs on the pipeline's executor (one thread): a
// phase's blocking work goes through exec.offload, and phases interleave
// only at their co_await points.
struct Run {
  Run(PipelineExecutor& e, PipelineInput& i, PipelineOutcome& o, const config::Spec& s,
      const config::Graph& g, config::Phases& p, StoreSecrets& sec,
      const std::set<ResourceKey>& ex, const std::map<ResourceKey, std::string>& b)
      : exec(e), in(i), out(o), spec(s), graph(g), phases(p), secrets(sec), excluded(ex),
        blocks(b) {}

  PipelineExecutor& exec;
  PipelineInput& in;
  PipelineOutcome& out;
  const config::Spec& spec;
  const config::Graph& graph;
  config::Phases& phases;
  StoreSecrets& secrets;
  const std::set<ResourceKey>& excluded;
  const std::map<ResourceKey, std::string>& blocks;  // waiting for a provided value
  docker::ApplyObserver observer;
  bool usesToken = false;
  std::set<config::Step> ran;  // steps that had something to do in this converge
  std::exception_ptr thrown;   // the first phase that threw; rethrown when all are done

  // Files and secret files, before any container that reads them.
  asio::awaitable<Status> writeFiles(const std::set<std::string>& skip,
                                     docker::FilesWritten* written) {
    if (in.writeSecretFiles) {
      Status st;
      Status* stp = &st;
      const config::Spec* specp = &spec;
      StoreSecrets* secretsp = &secrets;
      const std::string* dir = &in.options.secretsDir;
      const std::set<std::string>* skipp = &skip;
      const std::function<void()> write = [specp, secretsp, dir, skipp, stp] {
        *stp = docker::writeSecretFiles(*specp, *secretsp, *dir, *skipp);
      };
      co_await exec.offload(write);
      if (!st) co_return st;
    }
    if (!spec.files.empty()) {
      std::optional<Result<docker::FilesWritten>> files;
      auto* filesp = &files;
      const config::Spec* specp = &spec;
      StoreSecrets* secretsp = &secrets;
      PipelineInput* inp = &in;
      const std::function<void()> write = [specp, secretsp, inp, filesp] {
        filesp->emplace(writeFilesStep(*specp, *secretsp, inp->store, inp->options));
      };
      co_await exec.offload(write);
      if (!*files) co_return files->error();
      if (written) *written = std::move(*files).value();
    }
    co_return Status::success();
  }

  // A service step, and what its outcome means for what waits for it.
  asio::awaitable<void> step(config::Step s) {
    const auto started = Clock::now();
    StepReport report = co_await exec.step(s, spec);
    markBlocked(report, blocks);
    if (!report.outcomes.empty()) ran.insert(s);
    for (const auto& o : report.outcomes) {
      if (o.ok) continue;
      for (const auto& k : failedNodes(spec, o)) phases.fail(k, o.message);
    }
    if (s == config::Step::forgejo && usesToken &&
        !secrets.digest(config::CredentialRef::forgejoRunnerToken())) {
      std::string why = kRunnerTokenPending;
      for (const auto& o : report.outcomes) {
        if (!o.ok) {
          why = o.key.str() + ": " + o.message;
          break;
        }
      }
      phases.fail({Kind::forgejo, ""}, "no runner registration token: " + why);
    }
    exec.outcomes(report);
    out.steps.push_back(std::move(report));
    addTiming(out, exec, config::toString(s), started);
  }

  // A Docker pass over the containers whose dependencies are now done; in
  // a partial converge, those it covers and those a step that ran feeds.
  asio::awaitable<void> pass(std::set<ResourceKey> containers) {
    const auto started = Clock::now();
    docker::Scope scope;
    scope.only.emplace();
    for (const auto& k : containers) {
      bool wanted = !in.only || in.only->count(k);
      for (const auto& d : graph.dependencies(k)) {
        auto s = config::stepOf(d.kind);
        wanted = wanted || (s && ran.count(*s));
      }
      if (wanted) scope.only->insert(k);
    }
    if (scope.only->empty()) co_return;
    scope.exclude = excluded;
    std::set<std::string> skip;
    for (const auto& [name, _] : spec.containers) {
      if (!scope.only->count({Kind::container, name})) skip.insert(name);
    }
    if (auto st = co_await writeFiles(skip, nullptr); !st) {
      if (in.strict) {
        out.error = st.error();
        co_return;
      }
      exec.error("files.failed", st.error());
    }
    auto r = co_await docker::reconcile(*in.docker, spec, secrets, in.options, observer, scope);
    if (!r) {
      if (in.strict) {
        out.error = r.error();
        co_return;
      }
      exec.error("reconcile.failed", r.error());
      for (const auto& k : *scope.only) phases.fail(k, "the Docker Engine did not answer");
      co_return;
    }
    exec.dockerPass(spec, secrets, r.value(), scope, false, phases.deferred());
    noteFailures(phases, r.value());
    if (out.docker) {
      for (const auto& c : r->plan.changes) out.docker->plan.changes.push_back(c);
      for (const auto& o : r->report.outcomes) out.docker->report.outcomes.push_back(o);
      out.docker->converged = out.docker->converged && r->converged;
      for (const auto& c : r->remaining.changes) out.docker->remaining.changes.push_back(c);
      for (const auto& h : r->held) out.docker->held.push_back(h);
    }
    addTiming(out, exec, "docker", started);
  }

  asio::awaitable<void> phase(config::Phase p) {
    if (p.step) {
      co_await step(*p.step);
    } else {
      co_await pass(std::move(p.containers));
    }
  }

  // Every phase after the first, each started as soon as it can: runs
  // until nothing is running and nothing more can start. A strict converge
  // that failed (out.error) starts nothing more and waits for what runs.
  asio::awaitable<void> rest() {
    const auto executor = co_await asio::this_coro::executor;
    asio::steady_timer wake(executor, asio::steady_timer::time_point::max());
    std::size_t running = 0;
    for (;;) {
      if (!out.error) {
        for (auto& p : phases.start()) {
          ++running;
          asio::co_spawn(executor, phase(p), [this, p, &running, &wake](std::exception_ptr e) {
            if (e && !thrown) thrown = e;
            phases.finish(p);
            --running;
            wake.cancel();
          });
        }
      }
      if (running == 0) break;
      boost::system::error_code ec;
      wake.expires_at(asio::steady_timer::time_point::max());
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (thrown) std::rethrow_exception(thrown);
  }
};

}  // namespace

std::vector<ResourceKey> failedNodes(const config::Spec& spec, const StepOutcome& o) {
  switch (o.key.kind) {
    case Kind::postgres: return {{Kind::postgres, o.key.name.substr(0, o.key.name.find('/'))}};
    case Kind::s3: {
      std::vector<ResourceKey> out{o.key};
      for (const auto& [name, b] : spec.buckets) {
        if (b.s3 == o.key.name) out.push_back({Kind::bucket, name});
      }
      return out;
    }
    default: return {o.key};
  }
}

asio::awaitable<PipelineOutcome> runPipeline(PipelineExecutor& exec, PipelineInput in) {
  const auto begun = Clock::now();
  PipelineOutcome out;
  const config::Spec& spec = *in.spec;
  const state::UnlockedKey* key = in.key && !in.key->locked() ? in.key : nullptr;

  if (!spec.credentials.empty() && (key != nullptr || in.strict)) {
    const auto started = Clock::now();
    if (key == nullptr || in.store == nullptr) {
      out.error = Error::make(ErrorCode::unavailable,
                              "this spec declares [credentials]: the state must be unlocked");
      addTiming(out, exec, "credentials", started);
      co_return out;
    }
    std::optional<Result<std::vector<credentials::Generated>>> generated;
    state::Store* store = in.store;
    auto* generatedp = &generated;
    const std::function<void()> generate = [&spec, store, key, generatedp] {
      generatedp->emplace(
          credentials::ensureCredentials(spec, *store, *key, std::chrono::system_clock::now()));
    };
    co_await exec.offload(generate);
    exec.credentialsDone(spec, *generated);
    if (!*generated) {
      if (in.strict) {
        out.error = generated->error();
        addTiming(out, exec, "credentials", started);
        co_return out;
      }
    } else {
      out.generated = std::move(*generated).value();
      // A credential rotated by rotate_every: ALTER ROLE (and Vault) before
      // its consumers are recreated.
      auto pre = co_await exec.rotated(spec, out.generated);
      if (!pre.outcomes.empty()) out.steps.push_back(std::move(pre));
    }
    addTiming(out, exec, "credentials", started);
  }

  const auto started = Clock::now();
  StoreSecrets secrets(spec, in.store, key);
  // What needs a provided value not set yet is blocked (and left alone).
  const auto blocks = blockedByProvided(spec, in.store);
  const auto graph = config::Graph::build(spec);
  std::set<config::Step> present;
  for (const auto& k : graph.nodes()) {
    if (auto s = config::stepOf(k.kind)) present.insert(*s);
  }
  std::set<ResourceKey> excluded = in.exclude;
  for (const auto& k : containersOf(blocks)) excluded.insert(k);
  config::Phases phases(graph, present, excluded);
  const std::set<ResourceKey>& deferred = phases.deferred();
  Run run(exec, in, out, spec, graph, phases, secrets, excluded, blocks);
  run.observer = exec.dockerObserver();
  run.usesToken = !runnerTokenConsumers(spec).empty();

  docker::Scope scope;
  scope.only = in.only;
  scope.exclude = excluded;
  scope.exclude.insert(deferred.begin(), deferred.end());
  docker::FilesWritten filesWritten;
  const std::set<std::string> firstSkip = namesOf(scope.exclude);
  const auto first = phases.start();  // the first Docker pass, alone
  if (auto st = co_await run.writeFiles(firstSkip, &filesWritten); !st) {
    if (in.strict) {
      out.error = st.error();
      co_return out;
    }
    exec.error("files.failed", st.error());
  }
  auto firstPass =
      co_await docker::reconcile(*in.docker, spec, secrets, in.options, run.observer, scope);
  if (!firstPass) {
    if (in.strict) {
      out.error = firstPass.error();
      co_return out;
    }
    exec.error("reconcile.failed", firstPass.error());
    // Nothing of Docker is known: what waits for a container waits on.
    for (const auto& k : graph.nodes()) {
      if (k.kind == Kind::container && !deferred.count(k)) {
        phases.fail(k, "the Docker Engine did not answer");
      }
    }
  } else {
    exec.dockerPass(spec, secrets, firstPass.value(), scope, true, deferred);
    noteFailures(phases, firstPass.value());
    if (!spec.files.empty()) {  // consumers that follow a file without being recreated
      const std::set<std::string> fresh = freshContainers(firstPass->report);
      auto followed = co_await followFiles(*in.docker, spec, secrets, in.store, in.options,
                                           fresh, filesWritten);
      unavailableFiles(spec, filesWritten, scope.exclude, followed);
      exec.outcomes(followed);
      if (!followed.outcomes.empty()) out.steps.push_back(std::move(followed));
    }
    out.docker = std::move(firstPass).value();
  }
  for (const auto& p : first) phases.finish(p);
  if (auto b = blockedContainers(blocks); !b.outcomes.empty()) {
    exec.outcomes(b);
    out.steps.push_back(std::move(b));
  }
  addTiming(out, exec, "docker", started);

  // The phases after the first: service steps, and the containers that
  // waited for them, each as soon as what it waits for is done; independent
  // ones at once (the steps' blocking work runs where the executor runs it).
  co_await run.rest();
  if (out.error) co_return out;

  StepReport blocked;
  for (const auto& [k, why] : phases.blocked()) {
    StepOutcome o;
    o.key = k;
    o.ok = false;
    o.blocked = true;
    o.message = why;
    blocked.outcomes.push_back(std::move(o));
  }
  if (!blocked.outcomes.empty()) {
    exec.outcomes(blocked);
    out.steps.push_back(std::move(blocked));
  }
  out.seconds = since(begun);
  co_return out;
}

}  // namespace foundationd::daemon
