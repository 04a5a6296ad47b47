// The CLI's commands. Each returns the process exit code (INTERFACES.md).
#pragma once

#include "daemon/cli.hpp"

namespace foundationd::daemon {

int cmdCheck(const CliArgs& args);
int cmdPlan(const CliArgs& args);
int cmdApply(const CliArgs& args);
int cmdServe(const CliArgs& args);

}  // namespace foundationd::daemon
