// The [forgejo] step outside the daemon (`apply --once`): the same controller
// step as Daemon::reconcileForgejo. Defined in daemon_forgejo.cpp.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// An empty report when the spec has no [forgejo]. `store`/`key` may be null
// (what needs a secret then reports blocked). Blocking HTTP runs through
// `offload` (inline when empty).
boost::asio::awaitable<StepReport> convergeForgejoOnce(docker::DockerApi& api,
                                                       const config::Spec& spec,
                                                       state::Store* store,
                                                       const state::UnlockedKey* key,
                                                       const Offload& offload);

}  // namespace foundationd::daemon
