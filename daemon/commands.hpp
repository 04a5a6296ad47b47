// The CLI's commands. Each returns the process exit code (its --help says which).
#pragma once

#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "common/result.hpp"
#include "config/daemon_config.hpp"
#include "config/spec.hpp"
#include "daemon/cli.hpp"
#include "state/store.hpp"

namespace foundationd::docker {
class DockerApi;
}  // namespace foundationd::docker

namespace foundationd::daemon {

int cmdCheck(const CliArgs& args);
int cmdPlan(const CliArgs& args);
int cmdApply(const CliArgs& args);
int cmdServe(const CliArgs& args);
int cmdInit(const CliArgs& args);
int cmdRekey(const CliArgs& args);
int cmdRotate(const CliArgs& args);
int cmdSecret(const CliArgs& args);
int cmdStatus(const CliArgs& args);
int cmdUnseal(const CliArgs& args);
// commands_client.cpp: POST /v1/rotate to the running daemon; the exit code.
int rotateThroughDaemon(const config::DaemonConfig& cfg, const std::string& credential);
// commands_client.cpp: `secret set` through the running daemon (POST
// /v1/secrets); reads the value itself (TTY twice, or stdin). The exit code.
int setSecretThroughDaemon(const config::DaemonConfig& cfg, const std::string& credential,
                           const std::string& field, const std::string& by);
// commands_vault.cpp
int cmdExportVaultKeys(const CliArgs& args);
int cmdImportVaultKeys(const CliArgs& args);
int cmdVaultHelper(const CliArgs& args);
// commands_backup.cpp
int cmdBackup(const CliArgs& args);
int cmdRestore(const CliArgs& args);
// `apply --once`'s ApplyOptions::beforeStatefulImageChange: a backup (local,
// then offsite) when the spec has [backup] and the state is unlocked, else
// null. `spec`, `store`, `key` and `api` must outlive the converge.
std::function<boost::asio::awaitable<Status>(const std::string& what)> backupBeforeUpgradeHook(
    const config::Spec& spec, state::Store* store, const state::UnlockedKey* key,
    docker::DockerApi& api, std::string stateDir, std::string dockerSocket);
// commands_dr.cpp
int cmdExportRecovery(const CliArgs& args);
int cmdRestoreFromRecovery(const CliArgs& args);
int cmdPreflight(const CliArgs& args);  // preflight.cpp  // internal: controllers/vault/init_helper.hpp

// Converges `spec` once with the CLI's progress output; returns the exit code.
// `json`: stdout is one JSON document (applyJson), the progress lines go to
// stderr.
int runConverge(const config::DaemonConfig& cfg, const config::Spec& spec, state::Store* store,
                const state::UnlockedKey* key, bool json = false);

}  // namespace foundationd::daemon
