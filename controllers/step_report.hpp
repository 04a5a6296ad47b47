// What one service controller step (Vault, buckets, PostgreSQL, Forgejo)
// reports back to the converge that ran it: one outcome per resource it
// looked at. The daemon maps these onto resource status and metrics; the CLI
// prints them. Kept free of any controller so every one can return it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "config/graph.hpp"

namespace foundationd {

// Runs a step's blocking `work` (HTTP, SQLite) off the event loop (the
// daemon's pool, the CLI's threads) and resumes on the caller's executor
// when it is done. Empty: the step runs it inline.
using Offload = std::function<boost::asio::awaitable<void>(std::function<void()> work)>;

struct StepOutcome {
  config::ResourceKey key;
  bool ok = true;        // converged (possibly after a change) — false: failed or blocked
  bool changed = false;  // something was created or updated
  bool drift = false;    // the change repaired drift (the live state had moved away)
  bool blocked = false;  // not attempted: waits for something (unlock, a host container)
  std::string message;   // why it failed/blocked, or what changed; never a secret
};

struct StepReport {
  std::vector<StepOutcome> outcomes;

  bool ok() const {
    for (const auto& o : outcomes) {
      if (!o.ok) return false;
    }
    return true;
  }
};

}  // namespace foundationd
