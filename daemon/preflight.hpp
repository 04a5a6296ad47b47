// `foundationd preflight`: checks a host before the first apply, and on
// demand — Docker and its API version, the socket's permission, the ports the
// spec publishes, disk space where volumes live, the secret directory on
// tmpfs, the state directory's owner and mode, the clock, the spec source,
// and each peer the spec names once its container runs. One line per check;
// for each failure, what to do. Read-only: it changes nothing.
#pragma once

#include <string>
#include <vector>

#include "config/daemon_config.hpp"
#include "config/spec.hpp"

namespace foundationd::daemon {

enum class CheckResult { pass, warn, fail, skip };
const char* checkResultName(CheckResult r) noexcept;  // "pass", "warn", "fail", "skip"

struct PreflightCheck {
  std::string name;    // "docker", "port 0.0.0.0:8080/tcp", ...
  CheckResult result = CheckResult::pass;
  std::string detail;  // what was found
  std::string fix;     // what to do (warn, fail)
};

struct PreflightInput {
  config::DaemonConfig config;
  std::string stateDir;
  std::string specPath;       // "" when there is no local spec (a git source without --spec)
  const config::Spec* spec = nullptr;  // null when it did not load
  std::string specProblem;    // why it did not load ("" when it did, or there is none)
  std::string secretsDir = "/run/foundationd/secrets";
};

std::vector<PreflightCheck> runPreflight(const PreflightInput& input);

}  // namespace foundationd::daemon
