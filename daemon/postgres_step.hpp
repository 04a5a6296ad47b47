// The [postgres.*] step outside the daemon (`apply --once`, `rotate`): the
// same controller step as Daemon::reconcilePostgres. Defined in
// daemon_postgres.cpp.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "config/spec.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// Roles and databases of every [postgres.*]; orphans printed as notes. An
// empty report when the spec has none. `store`/`key` may be null (roles then
// report blocked).
boost::asio::awaitable<StepReport> convergePostgresOnce(docker::DockerApi& api,
                                                        const config::Spec& spec,
                                                        state::Store* store,
                                                        const state::UnlockedKey* key);

// Rotation, before any consumer is recreated: ALTER ROLE ... PASSWORD for the
// roles whose password comes from credential `name` (nothing else). An empty
// report when no role uses it. Prints each outcome.
StepReport rotatePostgresRoles(boost::asio::io_context& io, docker::DockerApi& api,
                               const config::Spec& spec, state::Store* store,
                               const state::UnlockedKey* key, const std::string& name);

// For each credential that `generated` says was rotated (rotate_every), the
// same as rotatePostgresRoles; called before the Docker step.
boost::asio::awaitable<StepReport> rotatePostgresRolesOf(
    docker::DockerApi& api, const config::Spec& spec, state::Store* store,
    const state::UnlockedKey* key, const std::vector<credentials::Generated>& generated);

}  // namespace foundationd::daemon
