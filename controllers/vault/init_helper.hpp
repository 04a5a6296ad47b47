// Vault's init in a helper process, so that a kill of foundationd at any
// instant can neither lose the keys nor lead to a second init.
//
// sys/init answers the unseal keys and root token exactly once. If the
// process that asked dies between Vault's commit and its own fsync, they are
// gone. So the daemon (and `apply --once`) does not ask itself: it starts
// `foundationd vault-init-helper` in a new session, hands it the request and
// the state's data key on a pipe (never argv or the environment), and waits.
// The helper ignores SIGTERM/SIGINT/SIGHUP, takes the init lock in the state
// directory, re-reads seal-status, and only then calls sys/init and commits
// the answer (initializeLocked). Killing the daemon leaves the helper to
// finish; a restarted daemon sees the lock held ("init in progress") and then
// the keys in the state.
#pragma once

#include <string>

#include "common/result.hpp"
#include "controllers/vault/vault.hpp"
#include "state/sealing.hpp"

namespace foundationd::vault {

struct HelperRequest {
  std::string stateDir;
  std::string address;
  int shares = 0;
  int threshold = 0;
};

// Runs `exe vault-init-helper` and waits for it. Exit 0 -> initialized,
// 3 -> already_initialized, anything else -> an error.
Result<InitResult> runInitHelper(const std::string& exe, const HelperRequest& request,
                                 const state::UnlockedKey& key);

// The helper's side (`foundationd vault-init-helper`): the request on stdin.
int initHelperMain();

}  // namespace foundationd::vault
