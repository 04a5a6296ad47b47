#include "controllers/docker/docker_plan.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "controllers/docker/stateful_guard.hpp"

namespace foundationd::docker {
namespace {

using config::Kind;
using config::ResourceKey;

std::string labelOr(const Labels& labels, const char* key, const std::string& fallback = "") {
  auto it = labels.find(key);
  return it == labels.end() ? fallback : it->second;
}

bool ownedBy(const Labels& labels, const std::string& project) {
  return labelOr(labels, kLabelManaged) == "true" && labelOr(labels, kLabelProject) == project;
}

// The fields that differ between the resource's recorded config and the
// desired one, and why it is recreated, in words.
std::pair<std::vector<FieldChange>, std::string> recordedDiff(const Labels& labels,
                                                              const Desired& desired) {
  auto it = labels.find(kLabelConfig);
  if (it != labels.end()) {
    auto recorded = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (!recorded.is_discarded() && recorded.is_object()) {
      auto fields = diffCanonical(recorded, desired.canonical);
      if (!fields.empty()) {
        std::string why;
        for (const auto& f : fields) why += (why.empty() ? "" : ", ") + f.field;
        return {std::move(fields), why + " changed"};
      }
    }
  }
  return {{}, "config changed (its recorded config label is missing or unreadable)"};
}

void planNetworks(const config::Spec& spec, const Observed& observed, Plan& out,
                  std::set<std::string>& recreatedNetworks) {
  std::map<std::string, const NetworkSummary*> byName;
  for (const auto& n : observed.networks) byName.emplace(n.name, &n);

  for (const auto& [name, net] : spec.networks) {
    ResourceKey key{Kind::network, name};
    Desired desired = desiredNetwork(net);
    auto it = byName.find(name);
    if (it == byName.end()) {
      out.changes.push_back({key, Action::create, "does not exist", {}, "", desired.hash, std::nullopt});
      continue;
    }
    const NetworkSummary& live = *it->second;
    if (!ownedBy(live.labels, spec.project)) {
      std::string owner = labelOr(live.labels, kLabelProject);
      out.changes.push_back(
          {key, Action::conflict,
           owner.empty() ? "a network with this name exists and is not managed by foundationd; "
                           "remove or rename it"
                         : "a network with this name is managed by project \"" + owner + "\"",
           {}, live.id, desired.hash, std::nullopt});
      continue;
    }
    if (labelOr(live.labels, kLabelHash) != desired.hash) {
      auto [fields, why] = recordedDiff(live.labels, desired);
      out.changes.push_back({key, Action::recreate, why, fields, live.id, desired.hash, std::nullopt});
      recreatedNetworks.insert(name);
    }
  }
  for (const auto& n : observed.networks) {
    if (!ownedBy(n.labels, spec.project) || spec.networks.count(n.name)) continue;
    ResourceKey key{Kind::network, n.name};
    if (spec.prune) {
      out.changes.push_back({key, Action::remove, "not in the spec (prune = true)", {}, n.id, "", std::nullopt});
    } else {
      out.changes.push_back({key, Action::orphan, "not in the spec; kept because prune = false",
                             {}, n.id, "", std::nullopt});
    }
  }
}

void planVolumes(const config::Spec& spec, const Observed& observed, Plan& out) {
  std::map<std::string, const VolumeSummary*> byName;
  for (const auto& v : observed.volumes) byName.emplace(v.name, &v);

  for (const auto& [name, vol] : spec.volumes) {
    ResourceKey key{Kind::volume, name};
    Desired desired = desiredVolume(vol);
    auto it = byName.find(name);
    if (it == byName.end()) {
      out.changes.push_back({key, Action::create, "does not exist", {}, "", desired.hash, std::nullopt});
      continue;
    }
    // An existing volume of the same name is adopted as it is (it may hold
    // the data the spec expects), unless its driver differs: volumes are
    // never recreated, so that needs the operator.
    if (it->second->driver != vol.driver) {
      out.changes.push_back(
          {key, Action::conflict,
           "exists with driver \"" + it->second->driver + "\" but the spec says \"" + vol.driver +
               "\"; foundationd never deletes a volume: migrate its data by hand",
           {}, name, desired.hash, std::nullopt});
    }
  }
  for (const auto& v : observed.volumes) {
    if (!ownedBy(v.labels, spec.project) || spec.volumes.count(v.name)) continue;
    out.changes.push_back({{Kind::volume, v.name}, Action::orphan,
                           "not in the spec; volumes are never deleted by foundationd",
                           {}, v.name, "", std::nullopt});
  }
}

void planContainers(const config::Spec& spec, const Observed& observed,
                    const SecretResolver& secrets, const std::set<std::string>& recreatedNetworks,
                    Plan& out) {
  std::map<std::string, const ContainerSummary*> byName;
  for (const auto& c : observed.containers) byName.emplace(c.name, &c);
  const auto stateful = statefulHosts(spec);  // a new image there: backed up first

  for (const auto& [name, ctr] : spec.containers) {
    ResourceKey key{Kind::container, name};
    Desired desired = desiredContainer(ctr, secrets);
    auto it = byName.find(name);
    if (it == byName.end()) {
      out.changes.push_back({key, Action::create, "does not exist", {}, "", desired.hash, std::nullopt});
      continue;
    }
    const ContainerSummary& live = *it->second;
    if (labelOr(live.labels, kLabelHash) != desired.hash) {
      auto [fields, why] = recordedDiff(live.labels, desired);
      if (spec.backup && stateful.count(name) &&
          std::any_of(fields.begin(), fields.end(),
                      [](const FieldChange& f) { return f.field == "image"; })) {
        why += "; " + stateful.at(name) + " gets a new image: a backup is taken first";
      }
      out.changes.push_back({key, Action::recreate, why, fields, live.id, desired.hash, std::nullopt});
      continue;
    }
    std::string onNetwork;
    for (const auto& n : ctr.networks) {
      if (recreatedNetworks.count(n.network)) onNetwork = n.network;
    }
    if (!onNetwork.empty()) {
      out.changes.push_back({key, Action::recreate,
                             "network " + onNetwork + " is recreated", {}, live.id,
                             desired.hash, std::nullopt});
      continue;
    }
    if (auto why = imagePinProblem(ctr.image, live.image, live.imageId)) {
      out.changes.push_back({key, Action::recreate, *why,
                             {FieldChange{"image", live.imageId, ctr.image, false}}, live.id,
                             desired.hash, std::nullopt});
      continue;
    }
    out.runningImages[name] = live.imageId;
    if (live.state == "running" || live.state == "restarting" || live.state == "removing") {
      continue;  // converged, or Docker is already acting on it
    }
    if (live.state == "dead") {
      out.changes.push_back({key, Action::recreate, "container is dead", {},
                             live.id, desired.hash, std::nullopt});
    } else if (live.state == "paused") {
      out.changes.push_back({key, Action::conflict,
                             "container is paused; unpause or remove it (foundationd does not "
                             "override a pause)",
                             {}, live.id, desired.hash, std::nullopt});
    } else if (live.state == "exited") {
      const auto code = exitCodeOf(live);
      const std::string codeText = code ? std::to_string(*code) : "unknown";
      if (ctr.runOnce) {
        // A job ran with this config: it is done, or it failed and waits
        // for the operator. Never started again for the same config.
        if (code && *code == 0) continue;
        Change failed{key, Action::conflict,
                      "job exited with code " + codeText +
                          "; it runs once per config: change its config, or remove the "
                          "container to run it again",
                      {}, live.id, desired.hash, code};
        out.changes.push_back(std::move(failed));
        continue;
      }
      out.changes.push_back({key, Action::start, "container exited (exit code " + codeText + ")",
                             {}, live.id, desired.hash, code});
    } else {
      out.changes.push_back({key, Action::start,
                             ctr.runOnce ? "job has not run yet (" + live.state + ")"
                                         : "container is " + live.state,
                             {}, live.id, desired.hash, std::nullopt});
    }
  }
  for (const auto& c : observed.containers) {
    if (spec.containers.count(c.name)) continue;
    ResourceKey key{Kind::container, c.name};
    if (spec.prune) {
      out.changes.push_back({key, Action::remove, "not in the spec (prune = true)", {}, c.id, "", std::nullopt});
    } else {
      out.changes.push_back({key, Action::orphan, "not in the spec; kept because prune = false",
                             {}, c.id, "", std::nullopt});
    }
  }
}

}  // namespace

const char* pastTense(Action a) noexcept {
  switch (a) {
    case Action::create: return "created";
    case Action::recreate: return "recreated";
    case Action::start: return "started";
    case Action::remove: return "removed";
    case Action::orphan: return "kept";
    case Action::conflict: return "conflict";
  }
  return "?";
}

std::optional<int> exitCodeOf(const ContainerSummary& c) {
  if (c.state != "exited") return std::nullopt;
  const auto open = c.status.find("Exited (");
  if (open == std::string::npos) return std::nullopt;
  const char* p = c.status.c_str() + open + 8;
  bool negative = *p == '-';
  if (negative) ++p;
  if (*p < '0' || *p > '9') return std::nullopt;
  long v = 0;
  while (*p >= '0' && *p <= '9' && v < 100000) v = v * 10 + (*p++ - '0');
  if (*p != ')') return std::nullopt;
  return static_cast<int>(negative ? -v : v);
}

const char* toString(Action a) noexcept {
  switch (a) {
    case Action::create: return "create";
    case Action::recreate: return "recreate";
    case Action::start: return "start";
    case Action::remove: return "remove";
    case Action::orphan: return "orphan";
    case Action::conflict: return "conflict";
  }
  return "?";
}

bool Plan::hasChanges() const {
  return std::any_of(changes.begin(), changes.end(), [](const Change& c) {
    return c.action != Action::orphan && c.action != Action::conflict;
  });
}

bool Plan::hasConflicts() const {
  return std::any_of(changes.begin(), changes.end(),
                     [](const Change& c) { return c.action == Action::conflict; });
}

const Change* Plan::find(const config::ResourceKey& key) const {
  for (const auto& c : changes) {
    if (c.key == key) return &c;
  }
  return nullptr;
}

Task<Result<Observed>> observe(DockerApi& api, const std::string& project) {
  using namespace boost::asio::experimental::awaitable_operators;
  Observed o;
  // Named, not braced temporaries: GCC 12 miscompiles initializer lists in
  // co_await expressions.
  LabelFilter mine;
  mine[kLabelManaged] = "true";
  mine[kLabelProject] = project;
  const LabelFilter all;
  // The three lists at once, each on its own connection: the Engine answers
  // them in parallel, and a no-op (or a repair's observation) waits for the
  // slowest, the container list, instead of the sum.
  auto [containers, networks, volumes] =
      co_await (api.listContainers(mine) && api.listNetworks(all) && api.listVolumes(all));
  if (!containers) co_return std::move(containers).error();
  if (!networks) co_return std::move(networks).error();
  if (!volumes) co_return std::move(volumes).error();
  o.containers = std::move(containers).value();
  o.networks = std::move(networks).value();
  o.volumes = std::move(volumes).value();
  co_return o;
}

Plan plan(const config::Spec& spec, const Observed& observed, const SecretResolver& secrets) {
  Plan out;
  out.project = spec.project;
  std::set<std::string> recreatedNetworks;
  planNetworks(spec, observed, out, recreatedNetworks);
  planVolumes(spec, observed, out);
  planContainers(spec, observed, secrets, recreatedNetworks, out);
  std::stable_sort(out.changes.begin(), out.changes.end(),
                   [](const Change& a, const Change& b) { return a.key < b.key; });
  return out;
}

}  // namespace foundationd::docker
