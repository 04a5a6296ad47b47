// The Docker controller's observe and plan steps (STYLE.md "Controllers").
//
// observe() makes exactly three Engine calls whatever the spec's size: one
// list per kind (containers filtered by this project's label; networks and
// volumes unfiltered, so that a same-named resource foundationd does not own
// is seen as a conflict rather than created twice). plan() is pure: desired
// (the spec) + observed -> the changes, each saying what and why. plan() *is*
// the dry run; apply() performs a plan.
#pragma once

#include <optional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/graph.hpp"
#include "config/spec.hpp"
#include "controllers/docker/container_config.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"

namespace foundationd::docker {

struct Observed {
  std::vector<ContainerSummary> containers;  // this project's only
  std::vector<NetworkSummary> networks;      // all
  std::vector<VolumeSummary> volumes;        // all
};

Task<Result<Observed>> observe(DockerApi& api, const std::string& project);

enum class Action {
  create,    // does not exist
  recreate,  // exists with another config hash (or must follow a recreated network)
  start,     // exists, same config, not running
  remove,    // owned orphan and prune = true
  orphan,    // owned, not in the spec, kept (prune = false, or a volume: never deleted)
  conflict,  // cannot proceed without the operator (e.g. a same-named resource we do not own)
};
const char* toString(Action a) noexcept;
const char* pastTense(Action a) noexcept;  // "created", "recreated", "started", "removed"

struct Change {
  config::ResourceKey key;  // kind network | volume | container
  Action action = Action::create;
  std::string reason;               // why, in words
  std::vector<FieldChange> fields;  // for recreate: what differs
  std::string id;                   // the existing object's id/name, when there is one
  std::string desiredHash;          // for create/recreate
  // A container that exited: its exit code (start of a service; a failed job).
  std::optional<int> exitCode;
};

struct Plan {
  std::string project;
  std::vector<Change> changes;  // deterministic order: kind, then name
  // container -> the image ID ("sha256:...") it runs, for the containers the
  // plan does not recreate (docs/spec.md "Digest pins").
  std::map<std::string, std::string> runningImages;
  // True when applying the plan would change something (orphans kept and
  // conflicts alone are not changes, but conflicts make apply fail).
  bool hasChanges() const;
  bool hasConflicts() const;
  const Change* find(const config::ResourceKey& key) const;
};

Plan plan(const config::Spec& spec, const Observed& observed, const SecretResolver& secrets);

// The exit code of an exited container from its list entry ("Exited (3) 5
// seconds ago"); nullopt when it is not exited or the status says none.
std::optional<int> exitCodeOf(const ContainerSummary& c);

}  // namespace foundationd::docker
