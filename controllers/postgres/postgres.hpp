// The PostgreSQL controller: the roles and databases of each [postgres.NAME]
// (SPEC.md), applied with `docker exec psql` in the instance's container.
//
// - Waits (bounded by Options::waitReady) for the container to run, to be
//   healthy if it has a healthcheck, and for psql to get an answer; until
//   then every resource of the instance is reported blocked ("waiting ...").
// - One psql exec observes everything (roles with their LOGIN flag and, for
//   the spec's roles only, the stored SCRAM verifier; databases and owners).
//   A no-op reconcile is that one exec (plus one inspect).
// - A role's password is compared without being read: the stored verifier is
//   recomputed from the desired password with its own salt and iteration
//   count (controllers/postgres/scram.hpp). A missing role is created with
//   LOGIN and its password; a role without LOGIN or with another password is
//   altered. The password is sent as a fresh SCRAM verifier, in a script on
//   psql's stdin (never argv, never logged, server-side statement logging
//   switched off for the session).
// - A missing database is created with its owner; an owner that drifted is
//   set back. Nothing is ever dropped: roles and databases the spec does not
//   declare are reported as orphans.
// psql runs as the OS user Options::execUser with -U <superuser> over the
// local socket (peer or trust authentication), -X -q -At -v ON_ERROR_STOP=1.
//
// Thread: the io_context's (DockerApi's). Never logs; the caller reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/step_report.hpp"

namespace foundationd::postgres {

struct Options {
  // How long to wait for the host container and PostgreSQL to answer.
  std::chrono::milliseconds waitReady{std::chrono::seconds(60)};
  std::chrono::milliseconds pollInterval{std::chrono::milliseconds(250)};
  std::chrono::milliseconds execTimeout{std::chrono::seconds(30)};
  std::string execUser = "postgres";  // OS user psql runs as inside the container
  // Rotation: only the roles whose password uses this credential (no
  // databases, no orphans), and a changed password is not counted as drift.
  std::optional<std::string> onlyCredential;
};

struct Report {
  StepReport step;
  // "main/role/x", "main/database/y": present, not declared, never dropped.
  std::vector<std::string> orphans;
  std::uint64_t execs = 0;  // docker execs made (figures)
};

// Keys: {Kind::postgres, "<instance>/role/<name>"} and ".../database/<name>";
// an instance that declares neither reports {Kind::postgres, "<instance>"}.
boost::asio::awaitable<Report> reconcile(docker::DockerApi& api, const config::Spec& spec,
                                         const docker::SecretResolver& secrets,
                                         const Options& options);

// Whether any role of the spec takes its password from credential `name`.
bool usesCredential(const config::Spec& spec, const std::string& name);

}  // namespace foundationd::postgres
