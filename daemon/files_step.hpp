// The [files] step, shared by `apply --once` (converge.cpp) and the daemon's
// reconcile (daemon_reconcile.cpp). Defined in daemon_files.cpp.
//
// Before the Docker kinds: every file is rendered and written where it
// changed (controllers/docker/config_files.hpp). After them: each consumer
// that follows changes without being recreated (restart, signal, command)
// is brought to the content it should see, once; a container created or
// recreated in this apply already saw it.
#pragma once

#include <set>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "config/spec.hpp"
#include "controllers/docker/config_files.hpp"
#include "controllers/docker/docker_apply.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// Writes the files; records the digest of each written file that holds a
// secret (applied hashes of kind "file": plan compares with it).
Result<docker::FilesWritten> writeFilesStep(const config::Spec& spec,
                                            const docker::SecretResolver& secrets,
                                            state::Store* store,
                                            const docker::ApplyOptions& options);

// The containers created or recreated (successfully) by `report`.
std::set<std::string> freshContainers(const docker::ApplyReport& report);

// Runs the consumers' on_change where their content moved. `store` may be
// null: then only files written in this run (`written`) are followed.
boost::asio::awaitable<StepReport> followFiles(docker::DockerApi& api, const config::Spec& spec,
                                               const docker::SecretResolver& secrets,
                                               state::Store* store,
                                               const docker::ApplyOptions& options,
                                               std::set<std::string> fresh,
                                               docker::FilesWritten written);

}  // namespace foundationd::daemon

namespace foundationd::daemon {

// plan's view of [files] (docker::planConfigFiles), with the state's
// applied digests when there is a store; files under <stateDir>/files.
nlohmann::json planFiles(const config::Spec& spec, const docker::SecretResolver& secrets,
                         state::Store* store, const std::string& stateDir);
// True when planFiles would write a file or make a consumer act.
bool filesPlanHasChanges(const nlohmann::json& files);
// "  ~ file.caddyfile: update -> container.proxy: exec:caddy reload ..." lines.
std::string renderFilesPlanText(const nlohmann::json& files);

}  // namespace foundationd::daemon
