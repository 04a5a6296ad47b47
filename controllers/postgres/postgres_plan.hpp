// The PostgreSQL controller's plan: the roles and databases of each
// [postgres.NAME] against what one psql exec observed, nothing changed.
//
// observe() makes the same read as the apply (observeQuery, one `docker exec
// psql` per instance, no wait) and compares each role's password with its
// stored SCRAM verifier when the password can be resolved (unlocked); plan()
// is pure: observed + spec -> the changes (create a role or database, set a
// role's LOGIN or password, set a database's owner), each with its reason and
// field diffs. A password is never in the plan: only "differs" or "cannot
// compare while locked".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/plan_change.hpp"

namespace foundationd::postgres {

struct ObservedRole {
  bool login = false;
  // Whether the stored verifier matches the spec's password; nullopt: not
  // compared, `passwordWhy` says why (locked, or not generated yet).
  std::optional<bool> passwordMatches;
  std::string passwordWhy;
};

struct ObservedInstance {
  enum class State {
    live,    // observed: roles and databases below
    absent,  // the host container does not exist: everything is created with it
    unknown  // cannot be observed now: `why`
  };
  State state = State::unknown;
  std::string why;
  std::map<std::string, ObservedRole> roles;                // the spec's roles that exist
  std::map<std::string, std::string> databaseOwners;        // the spec's databases that exist
};

using Observed = std::map<std::string, ObservedInstance>;  // [postgres.NAME] -> observed

// Pure. Keys as the apply's: {postgres, "<instance>/role/<name>"},
// ".../database/<name>", in the spec's order (roles, then databases).
std::vector<PlanChange> plan(const config::Spec& spec, const Observed& observed);

// One psql exec per instance (plus one inspect); changes nothing.
boost::asio::awaitable<Observed> observe(docker::DockerApi& api, const config::Spec& spec,
                                         const docker::SecretResolver& secrets);

}  // namespace foundationd::postgres
