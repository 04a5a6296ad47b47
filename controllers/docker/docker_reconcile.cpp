// The Docker controller's reconcile loop (docker_apply.hpp): observe, plan,
// hold back the restarts of services in a crash loop, apply, and check.
#include <linux/magic.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sodium.h>

#include "common/async.hpp"
#include "controllers/docker/container_config.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/stateful_guard.hpp"

namespace foundationd::docker {

namespace {
// How long refresh waits for a container's removal to end: up to 2 s, asking
// every 2 ms. The first inspect already waited for the Engine's lock on the
// container (its kill); what is left of the removal takes a few milliseconds,
// and a repair waits for each of them (an inspect costs a fraction of one).
constexpr auto kRemovalPoll = std::chrono::milliseconds(2);
constexpr auto kRemovalWait = std::chrono::seconds(2);
}  // namespace

Task<Status> refresh(DockerApi& api, const std::string& project,
                     const std::set<config::ResourceKey>& keys, Observed& observed) {
  for (const auto& key : keys) {
    if (key.kind != config::Kind::container) continue;
    auto it = std::find_if(observed.containers.begin(), observed.containers.end(),
                           [&](const ContainerSummary& c) { return c.name == key.name; });
    auto inspected = co_await api.inspectContainer(key.name);
    // Being removed (`docker rm -f`: the Engine marks it first, then kills
    // it; the `die` event comes before the removal ends): wait for the
    // removal, a few milliseconds, so that this pass creates it again. Seen
    // as "removing" it would be left alone, and its `destroy` event would
    // wait for the key's next turn (the scheduler's minKeyInterval).
    const auto giveUp = std::chrono::steady_clock::now() + kRemovalWait;
    while (inspected && inspected->state == "removing" &&
           std::chrono::steady_clock::now() < giveUp) {
      co_await sleepFor(kRemovalPoll);
      inspected = co_await api.inspectContainer(key.name);
    }
    if (!inspected) {
      if (inspected.error().code != ErrorCode::not_found) co_return inspected.error();
      if (it != observed.containers.end()) observed.containers.erase(it);
      continue;
    }
    const auto& i = inspected.value();
    auto p = i.labels.find(kLabelProject);
    if (p == i.labels.end() || p->second != project) continue;  // not ours: create will say so
    ContainerSummary fresh;
    fresh.id = i.id;
    fresh.name = key.name;
    fresh.state = i.state;
    fresh.status = i.state == "exited" ? "Exited (" + std::to_string(i.exitCode) + ")"
                   : i.health.empty()  ? ""
                                       : "(" + i.health + ")";
    fresh.labels = i.labels;
    if (it != observed.containers.end()) {
      fresh.image = it->image;
      *it = fresh;
    } else {
      observed.containers.push_back(fresh);
    }
  }
  co_return Status::success();
}

std::optional<std::string> secretsDirNotTmpfs(const std::string& dir) {
  std::filesystem::path p(dir);
  std::error_code ec;
  while (!p.empty() && !std::filesystem::exists(p, ec) && p != p.root_path()) p = p.parent_path();
  struct statfs fs {};
  if (p.empty() || ::statfs(p.c_str(), &fs) != 0) {
    return "cannot tell whether the secret files directory " + dir +
           " is on a tmpfs: " + std::strerror(errno);
  }
  if (static_cast<unsigned long>(fs.f_type) == static_cast<unsigned long>(TMPFS_MAGIC)) {
    return std::nullopt;
  }
  return "the secret files directory " + dir + " is not on a tmpfs (" + p.string() +
         " is not): secret_files would be written to persistent storage; mount a tmpfs on " +
         p.string() + " (e.g. /run is one under systemd)";
}

std::string lastLines(const std::string& text, int lines, std::size_t maxChars) {
  std::vector<std::string> kept;
  std::size_t end = text.size();
  while (end > 0 && static_cast<int>(kept.size()) < lines) {
    std::size_t start = text.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (!line.empty()) kept.push_back(std::move(line));
    end = start == 0 ? 0 : start - 1;
  }
  std::string out;
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    if (!out.empty()) out += " | ";
    out += *it;
  }
  if (out.size() > maxChars) out = "..." + out.substr(out.size() - maxChars);
  return out;
}

std::string redactSecrets(std::string text, const config::Spec& spec,
                          const SecretResolver& secrets) {
  auto cut = [&](const config::CredentialRef& ref) {
    std::optional<std::string> value = secrets.value(ref);
    if (!value) return;
    if (value->size() >= 4) {
      const std::string mark = "[secret " + ref.str() + "]";
      for (std::size_t at = text.find(*value); at != std::string::npos;
           at = text.find(*value, at + mark.size())) {
        text.replace(at, value->size(), mark);
      }
    }
    sodium_memzero(value->data(), value->size());
  };
  for (const auto& [name, cred] : spec.credentials) {
    for (const auto& [field, def] : cred.fields) {
      if (def.value.index() == 0) continue;  // a literal: not a secret
      cut(config::CredentialRef{name, field});
    }
  }
  if (spec.forgejo && spec.forgejo->runnerTokenVaultPath) {
    cut(config::CredentialRef::forgejoRunnerToken());
  }
  return text;
}

namespace {

std::string fmtMs(std::chrono::milliseconds d) {
  if (d.count() < 1000) return std::to_string(d.count()) + "ms";
  auto tenths = d.count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

// "; last output: a | b" for a container that exited, or "" when it printed
// nothing (or its logs cannot be read: the report stands without them).
// Secret values are cut out before the lines are cut to size, so no part of
// one is left at the cut.
Task<std::string> outputOf(DockerApi& api, const std::string& id, int lines,
                           const config::Spec& spec, const SecretResolver& secrets) {
  if (lines <= 0) co_return std::string();
  auto logs = co_await api.containerLogs(id, lines);
  if (!logs) co_return std::string();
  std::string raw = std::move(logs).value();
  const std::string redacted = redactSecrets(raw, spec, secrets);
  sodium_memzero(raw.data(), raw.size());
  auto text = lastLines(redacted, lines);
  co_return text.empty() ? std::string() : "; last output: " + text;
}

// A service that exited again within its backoff is not started now: its
// change leaves the plan for `held`. A failed job's conflict and a held
// restart quote the container's last output. A container created or
// recreated starts its count over.
Task<void> holdCrashLoops(DockerApi& api, const ApplyOptions& options, const config::Spec& spec,
                          const SecretResolver& secrets, ReconcileResult& result) {
  std::vector<Change> kept;
  const auto now = RestartBackoff::Clock::now();
  for (auto& c : result.plan.changes) {
    if (c.key.kind != config::Kind::container) {
      kept.push_back(std::move(c));
      continue;
    }
    if (options.restarts &&
        (c.action == Action::create || c.action == Action::recreate || c.action == Action::remove)) {
      options.restarts->forget(c.key.name);
    }
    if (c.action == Action::conflict && c.exitCode) {
      std::string output = co_await outputOf(api, c.id, options.logLines, spec, secrets);
      c.reason += output;
    }
    if (c.action == Action::start && c.exitCode && options.restarts) {
      auto wait = options.restarts->admit(c.key.name, now);
      if (wait) {
        const int n = options.restarts->restarts(c.key.name);
        std::string output = co_await outputOf(api, c.id, options.logLines, spec, secrets);
        std::string message = "exited with code " + std::to_string(*c.exitCode) + " after " +
                              std::to_string(n) + (n == 1 ? " restart" : " restarts") +
                              " in a row; next restart in " + fmtMs(*wait) + output;
        result.held.push_back({c.key, *wait, std::move(message)});
        continue;
      }
    }
    kept.push_back(std::move(c));
  }
  result.plan.changes = std::move(kept);
}

}  // namespace

Plan restrict(const Plan& full, const Scope& scope) {
  Plan out;
  out.project = full.project;
  for (const auto& c : full.changes) {
    if (scope.includes(c.key)) out.changes.push_back(c);
  }
  return out;
}

Task<Result<ReconcileResult>> reconcile(DockerApi& api, const config::Spec& spec,
                                        const SecretResolver& secrets, const ApplyOptions& options,
                                        const ApplyObserver& observer, const Scope& scope) {
  ReconcileResult result;
  auto observed = co_await observe(api, spec.project);
  if (!observed) co_return std::move(observed).error();
  if (scope.only) {
    auto st = co_await refresh(api, spec.project, *scope.only, observed.value());
    if (!st) co_return st.error();
  }
  const Plan full = plan(spec, observed.value(), secrets);
  result.plan = restrict(full, scope);
  result.excluded.project = full.project;
  for (const auto& c : full.changes) {
    if (scope.exclude.count(c.key) && (!scope.only || scope.only->count(c.key))) {
      result.excluded.changes.push_back(c);
    }
  }
  co_await holdCrashLoops(api, options, spec, secrets, result);
  co_await guardStatefulImages(api, spec, options, result);
  if (!result.plan.hasChanges() && !result.plan.hasConflicts()) {
    result.converged = result.held.empty();
    co_return result;
  }
  result.report = co_await apply(api, spec, result.plan, observed.value(), secrets, options,
                                 observer);
  auto after = co_await observe(api, spec.project);
  if (!after) co_return std::move(after).error();
  result.remaining = restrict(plan(spec, after.value(), secrets), scope);
  std::erase_if(result.remaining.changes, [&](const Change& c) {
    return std::any_of(result.held.begin(), result.held.end(),
                       [&](const ReconcileResult::Held& h) { return h.key == c.key; });
  });
  result.converged = result.report.ok() && result.held.empty() &&
                     !result.remaining.hasChanges() && !result.remaining.hasConflicts();
  co_return result;
}

}  // namespace foundationd::docker
