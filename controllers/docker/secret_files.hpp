// secret_files: credential values handed to a container as files.
//
// Written under `dir/<container>/` (default /run/foundationd/secrets: a tmpfs,
// so nothing lands on disk), directories 0700, files 0400 owned by the
// container's numeric `user` when it has one (the chown needs CAP_CHOWN,
// which the unit grants; else the daemon's user), fsynced, replaced atomically,
// and bind-mounted read-only at the path the spec names. Files are rewritten
// when their value changes; the container is recreated then anyway, because
// its config hash covers the value's digest. After a reboot the files are
// gone until the state is unlocked again.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/docker/secrets.hpp"

namespace foundationd::docker {

inline constexpr const char* kDefaultSecretsDir = "/run/foundationd/secrets";

// "/run/secrets/pg-password" -> "run_secrets_pg-password"
std::string secretFileName(const std::string& containerPath);

// The bind specs ("host:container:ro") for `c`'s secret_files under `dir`.
std::vector<std::string> secretFileBinds(const config::ContainerSpec& c, const std::string& dir);

// Writes every secret file of every container of `spec` but those named in
// `skip` (containers that wait for a value). Fails (and writes
// nothing further) when a value is unavailable or the filesystem refuses.
Status writeSecretFiles(const config::Spec& spec, const SecretResolver& secrets,
                        const std::string& dir, const std::set<std::string>& skip = {});

}  // namespace foundationd::docker
