// Upgrades of stateful services are guarded (docs/dr.md "Upgrades"): before
// a reconcile recreates the container of a [postgres.*], [vault], [forgejo]
// or [s3.*] with a NEW IMAGE,
// - a PostgreSQL whose data directory was initialised by another major
//   version than the new image's is refused (a conflict naming the upgrade
//   path): the new server is never started on the old data directory;
// - the caller's hook (ApplyOptions::beforeStatefulImageChange: a backup,
//   when the spec has [backup]) runs once first; when it fails, those
//   containers are left as they are (a conflict saying why).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/docker_apply.hpp"

namespace foundationd::docker {

// Container name -> what it hosts ("postgres.main", "vault", "forgejo", "s3.store").
std::map<std::string, std::string> statefulHosts(const config::Spec& spec);

// The PostgreSQL major version an image holds, from its environment: the
// official images' PG_MAJOR, else Debian's /usr/lib/postgresql/N/bin in PATH.
std::optional<std::string> postgresMajorOfImage(const std::vector<std::string>& env);
// A data directory's PG_VERSION file ("15\n", "9.6\n").
std::optional<std::string> parsePgVersion(std::string_view text);

// What to say when a major version change is refused.
std::string majorUpgradeRefusal(const std::string& instance, const std::string& from,
                                const std::string& to);

// Applies both guards to `result.plan` (see above), turning refused changes
// into conflicts. Run by reconcile() before apply.
Task<void> guardStatefulImages(DockerApi& api, const config::Spec& spec,
                               const ApplyOptions& options, ReconcileResult& result);

}  // namespace foundationd::docker
