#include "daemon/files_step.hpp"

#include <nlohmann/json.hpp>

#include "controllers/docker/container_config.hpp"

namespace foundationd::daemon {

Result<docker::FilesWritten> writeFilesStep(const config::Spec& spec,
                                            const docker::SecretResolver& secrets,
                                            state::Store* store,
                                            const docker::ApplyOptions& options) {
  auto written = docker::writeConfigFiles(spec, secrets, options.filesDir, options.secretsDir);
  if (!written) return written;
  if (store) {
    for (const auto& [name, f] : spec.files) {
      if (!f.content.sensitive() || written->unavailable.count(name)) continue;
      (void)store->setAppliedHash(docker::kAppliedKind, name,
                                  docker::valueDigest(f.content, secrets));
    }
    for (const auto& name : written->changed) {
      (void)store->appendAudit("file.written", nlohmann::json{{"file", name}}.dump());
    }
  }
  return written;
}

std::set<std::string> freshContainers(const docker::ApplyReport& report) {
  std::set<std::string> out;
  for (const auto& o : report.outcomes) {
    if (o.ok && o.key.kind == config::Kind::container &&
        (o.action == docker::Action::create || o.action == docker::Action::recreate)) {
      out.insert(o.key.name);
    }
  }
  return out;
}

boost::asio::awaitable<StepReport> followFiles(docker::DockerApi& api, const config::Spec& spec,
                                               const docker::SecretResolver& secrets,
                                               state::Store* store,
                                               const docker::ApplyOptions& options,
                                               std::set<std::string> fresh,
                                               docker::FilesWritten written) {
  StepReport report;
  for (const auto& c : docker::followingConsumers(spec, secrets)) {
    if (written.unavailable.count(c.file)) continue;  // not written: nothing new to see
    std::optional<std::string> seen;
    if (store) {
      auto h = store->appliedHash(docker::kAppliedKind, c.key());
      if (h) seen = h.value();
    }
    const bool due = store ? seen != c.digest : written.changed.count(c.file) > 0;
    if (fresh.count(c.container)) {  // started with this content
      if (store && due) (void)store->setAppliedHash(docker::kAppliedKind, c.key(), c.digest);
      continue;
    }
    if (!due) continue;
    StepOutcome o;
    o.key = {config::Kind::container, c.container};
    const auto& cs = spec.containers.at(c.container);
    const auto stop = cs.stopTimeout
                          ? std::chrono::duration_cast<std::chrono::seconds>(*cs.stopTimeout)
                          : options.defaultStopTimeout;
    auto st = co_await docker::followChange(api, c, stop);
    const std::string what = "file " + c.file + " at " + c.target + " (on_change " +
                             config::toString(c.onChange) + ")";
    if (!st) {
      o.ok = false;
      o.message = what + ": " + st.error().message;
    } else {
      o.changed = true;
      o.message = what + ": followed";
      if (store) {
        (void)store->setAppliedHash(docker::kAppliedKind, c.key(), c.digest);
        (void)store->appendAudit("file.followed",
                                 nlohmann::json{{"container", c.container}, {"file", c.file},
                                                {"on_change", config::toString(c.onChange)}}
                                     .dump());
      }
    }
    report.outcomes.push_back(std::move(o));
  }
  co_return report;
}

}  // namespace foundationd::daemon

namespace foundationd::daemon {

nlohmann::json planFiles(const config::Spec& spec, const docker::SecretResolver& secrets,
                         state::Store* store, const std::string& stateDir) {
  const docker::ApplyOptions defaults;
  const docker::AppliedLookup applied = [store](const std::string& name) -> std::optional<std::string> {
    if (!store) return std::nullopt;
    auto h = store->appliedHash(docker::kAppliedKind, name);
    return h ? h.value() : std::nullopt;
  };
  return docker::planConfigFiles(spec, secrets, stateDir + "/files", defaults.secretsDir, applied);
}

bool filesPlanHasChanges(const nlohmann::json& files) {
  for (const auto& f : files) {
    const auto change = f.value("change", "");
    if (change == "create" || change == "update") return true;
    for (const auto& c : f["consumers"]) {
      if (c.value("action", "none") != "none") return true;
    }
  }
  return false;
}

std::string renderFilesPlanText(const nlohmann::json& files) {
  std::string out;
  for (const auto& f : files) {
    const std::string change = f.value("change", "");
    if (change == "unchanged" && !filesPlanHasChanges(nlohmann::json::array({f}))) continue;
    const char* sym = change == "create" ? "+" : change == "update" ? "~" : change == "unavailable" ? "!" : " ";
    out += std::string("  ") + sym + " file." + f.value("file", "") + ": " + change +
           (f.value("sensitive", false) ? " (sensitive)" : "") + "\n";
    for (const auto& c : f["consumers"]) {
      const std::string action = c.value("action", "none");
      if (action == "none") continue;
      out += "      -> container." + c.value("container", "") + " (" + c.value("path", "") +
             "): " + action + "\n";
    }
  }
  return out;
}

}  // namespace foundationd::daemon
