// The Vault step as `apply --once` (convergeOnce) runs it: the same
// controller step as the daemon's, with the init done by the helper process
// (controllers/vault/init_helper.hpp). Defined in daemon_vault.cpp.
#pragma once

#include "config/spec.hpp"
#include "controllers/step_report.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {

// An empty report when the spec has no [vault]. `store`/`key` may be null:
// the step then only observes and reports blocked.
StepReport convergeVaultOnce(const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key);

// `rotate`: writes the current values of credential `name` to Vault. Success
// when the spec has no [vault] or Vault was never set up by this state (the
// next converge writes everything); an error when Vault is set up but the
// write fails.
Status mirrorRotatedOnce(const config::Spec& spec, state::Store* store,
                         const state::UnlockedKey* key, const std::string& name);

}  // namespace foundationd::daemon
