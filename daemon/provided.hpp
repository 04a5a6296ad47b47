// What waits, in a converge, for a value that foundationd cannot make by
// itself: an operator-provided credential field not set yet (`blocked`,
// until `foundationd secret set NAME.FIELD`), or the forge's runner
// registration token before the forge step has produced it (the containers
// that use it wait for the forge step in the graph: daemon/pipeline.hpp).
// docs/spec.md "Provided values" and "${forgejo.runner_token}".
#pragma once

#include <map>
#include <set>
#include <string>

#include "config/graph.hpp"
#include "config/spec.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// Every resource that needs an unset provided field, directly or through what
// it depends on, with the message that names the command to run; plus the
// Vault copies ({vault, "kv/PATH"}) of credentials with an unset field.
// Needs no key. `store` may be null (no provided field is set then).
std::map<config::ResourceKey, std::string> blockedByProvided(const config::Spec& spec,
                                                             state::Store* store);

// The containers that use ${forgejo.runner_token}, directly or through a file.
std::set<config::ResourceKey> runnerTokenConsumers(const config::Spec& spec);
inline constexpr const char* kRunnerTokenPending =
    "waits for the forge step to produce the runner registration token "
    "(${forgejo.runner_token})";

// The containers of `keys` as a Scope's exclude set, plus `also`.
std::set<config::ResourceKey> containersOf(const std::map<config::ResourceKey, std::string>& keys);

// Marks the failed outcomes of `report` whose resource (or the service it
// belongs to, e.g. postgres.db for postgres.db/role/app) is in `blocked` as
// blocked, with its message: they wait for the operator, they did not fail.
void markBlocked(StepReport& report, const std::map<config::ResourceKey, std::string>& blocked);

// One blocked outcome per key of `keys` of kind container (the Docker part
// did not touch them), for a converge's report.
StepReport blockedContainers(const std::map<config::ResourceKey, std::string>& keys);

}  // namespace foundationd::daemon
