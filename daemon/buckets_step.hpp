// The [s3.*]/[buckets.*] step outside the daemon (`apply --once`): the same
// controller step as Daemon::reconcileBuckets. Defined in daemon_buckets.cpp.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "config/spec.hpp"
#include "controllers/buckets/buckets.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// Buckets of every [s3.*]: waits (bounded) for each server's container and
// endpoint, converges its buckets, records what was applied (state store,
// kind "bucket") and prints orphans as notes. An empty report when the spec
// has no [s3.*]. `store`/`key` may be null: the step then reports blocked.
// The blocking controller runs through `offload` (inline when empty).
boost::asio::awaitable<StepReport> convergeBucketsOnce(docker::DockerApi& api,
                                                       const config::Spec& spec,
                                                       state::Store* store,
                                                       const state::UnlockedKey* key,
                                                       const Offload& offload);

// Blocking core shared with the daemon: applied digests read from and
// written to `store`, secrets through the credentials resolver.
buckets::Outcome runBucketsStep(const config::Spec& spec, state::Store* store,
                                const state::UnlockedKey* key, buckets::Options options);

// The bucket part of a plan (a dry run: observe and plan, nothing changed;
// no wait for an endpoint): {"servers": [{"s3", "ok", "message", "changes":
// [{"bucket", "action", "reason", "drift"}], "orphans": [...]}]}. Blocking.
nlohmann::json planBucketsJson(const config::Spec& spec, state::Store* store,
                               const state::UnlockedKey* key);

}  // namespace foundationd::daemon
