// The Docker controller's apply step: performs a Plan against the Engine.
//
// Order comes from the spec's dependency graph: networks and volumes before
// the containers that use them, a container after everything in its
// depends_on, waiting for the condition (`started`: running; `healthy`: the
// container's healthcheck reports healthy) with a timeout that fails clearly.
// Independent resources are applied concurrently (coroutines on the caller's
// io_context, at most `maxConcurrent` Engine operations at once). A failed
// resource blocks its dependents and nothing else. A container is recreated
// only after its new image is known to be present, so a missing image never
// takes a running service down. Volumes are never removed.
// Thread: the io_context's.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/spec.hpp"
#include "controllers/docker/container_config.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/docker_plan.hpp"
#include "controllers/docker/restart_backoff.hpp"
#include "controllers/docker/secrets.hpp"

namespace foundationd::docker {

struct ApplyOptions {
  // Upper bound for a depends_on condition to be met, unless the dependent
  // sets depends_timeout.
  std::chrono::milliseconds conditionTimeout{std::chrono::minutes(5)};
  // How often a wait for a condition says what it waits for (observer.waiting).
  std::chrono::milliseconds progressInterval{std::chrono::seconds(10)};
  // How often a pending condition is re-inspected.
  std::chrono::milliseconds pollInterval{std::chrono::milliseconds(250)};
  std::size_t maxConcurrent = 16;
  // Stop timeout for containers whose spec does not set stop_timeout.
  std::chrono::seconds defaultStopTimeout{10};
  // Where secret_files are on the host (written before apply; secret_files.hpp).
  std::string secretsDir = "/run/foundationd/secrets";
  // Where [files.*] without secrets are on the host (config_files.hpp).
  std::string filesDir = kDefaultFilesDir;
  // Crash-loop bookkeeping across reconciles (the daemon's); null: a service
  // that exited is started at once (a one-shot `apply`).
  RestartBackoff* restarts = nullptr;
  // Lines of a container's output quoted when it failed (exit, crash loop).
  int logLines = 5;
  // Called once before containers of stateful services ([postgres.*],
  // [vault], [forgejo], [s3.*]) are recreated with a new image, with what
  // changes in words (stateful_guard.hpp): the caller's backup. A failure
  // leaves those containers as they are. Null: nothing is run first.
  std::function<Task<Status>(const std::string& what)> beforeStatefulImageChange{};
};

struct Outcome {
  config::ResourceKey key;
  Action action = Action::create;
  bool ok = false;
  std::string message;  // what happened, or why it failed / was blocked
  std::chrono::milliseconds took{0};
};

struct ApplyReport {
  std::vector<Outcome> outcomes;  // one per change acted on, in completion order
  bool ok() const;
};

// Called as each change starts and ends (for progress output and logs).
struct ApplyObserver {
  std::function<void(const Change&)> started;
  std::function<void(const Outcome&)> finished;
  // A container still waits for a depends_on condition: what, and for how long.
  std::function<void(const config::ResourceKey&, const std::string&)> waiting;
};

Task<ApplyReport> apply(DockerApi& api, const config::Spec& spec, const Plan& plan,
                        const Observed& observed, const SecretResolver& secrets,
                        const ApplyOptions& options, const ApplyObserver& observer = {});

}  // namespace foundationd::docker

namespace foundationd::docker {

// One reconcile of the Docker kinds: observe, plan, apply, and — when
// something was applied — observe and plan again to confirm convergence. A
// no-op reconcile makes exactly the three list calls of observe().
struct ReconcileResult {
  Plan plan;            // what was found to do
  ApplyReport report;   // what was done
  bool converged = false;
  Plan remaining;       // the plan after applying (empty when converged)
  Plan excluded;        // the changes of keys the scope excluded: found, not acted on
  // Services that exited again and wait for their backoff (not started now):
  // reconcile `key` again after `retryIn`. `message` says the exit code,
  // restarts in a row and the last output lines.
  struct Held {
    config::ResourceKey key;
    std::chrono::milliseconds retryIn{0};
    std::string message;
  };
  std::vector<Held> held;
};

// Which changes a reconcile may act on: all, or only those of some keys (an
// event about one container repairs that container only), minus any key in
// `exclude` (e.g. what needs a secret while the state is locked).
struct Scope {
  std::optional<std::set<config::ResourceKey>> only;
  std::set<config::ResourceKey> exclude;
  bool includes(const config::ResourceKey& key) const {
    return !exclude.count(key) && (!only || only->count(key));
  }
};

// Re-reads the containers among `keys` with inspect (authoritative: the
// list is served from a view the Engine updates a moment after an event).
Task<Status> refresh(DockerApi& api, const std::string& project,
                     const std::set<config::ResourceKey>& keys, Observed& observed);

// The last `lines` non-empty lines of `text`, joined with " | ", at most
// `maxChars` (the end kept): a container's output quoted in one status line.
std::string lastLines(const std::string& text, int lines, std::size_t maxChars = 600);

// `text` with every secret value the spec's containers can see (each
// non-literal field of [credentials], and the forge's runner token, resolved
// through `secrets`) replaced by "[secret credentials.NAME.FIELD]" (or
// "[secret forgejo.runner_token]"): for a container's output quoted in a
// status, an event or the journal. Values shorter than 4 bytes are left (they
// would match everywhere and hide nothing).
std::string redactSecrets(std::string text, const config::Spec& spec,
                          const SecretResolver& secrets);

// secret_files are meant to live on a tmpfs (never on disk). nullopt when
// `dir` (or, before it exists, its nearest existing parent) is on one;
// otherwise a warning that says where it is and what to do.
std::optional<std::string> secretsDirNotTmpfs(const std::string& dir);

// Keeps the changes of `plan` that `scope` includes.
Plan restrict(const Plan& plan, const Scope& scope);

Task<Result<ReconcileResult>> reconcile(DockerApi& api, const config::Spec& spec,
                                        const SecretResolver& secrets, const ApplyOptions& options,
                                        const ApplyObserver& observer = {},
                                        const Scope& scope = {});

}  // namespace foundationd::docker
