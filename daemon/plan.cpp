// The whole-spec plan (daemon/plan.hpp): one code path for `plan`, `plan
// --json`, GET /v1/plan and the plans posted on pull requests.
#include "daemon/plan.hpp"

#include <sodium.h>

#include "config/graph.hpp"
#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/docker_plan.hpp"
#include "controllers/forgejo/forgejo_plan.hpp"
#include "controllers/postgres/postgres_plan.hpp"
#include "controllers/vault/vault_plan.hpp"
#include "daemon/buckets_step.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/files_step.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

// The forge's view of the state for its plan: memos and digests, no key.
class PlanStateAccess final : public forgejo::StateAccess {
 public:
  explicit PlanStateAccess(state::Store* store) : store_(store) {}
  Result<std::string> digestOf(std::string_view secret) override { return store_->digestOf(secret); }
  Result<std::optional<std::string>> memo(const std::string& name) override {
    return store_->appliedHash("forgejo", name);
  }
  Status setMemo(const std::string&, const std::string&) override {
    return Error::make(ErrorCode::internal, "a plan changes nothing");
  }
  Status storeRunnerToken(std::string_view) override {
    return Error::make(ErrorCode::internal, "a plan changes nothing");
  }

 private:
  state::Store* store_;
};

asio::awaitable<void> offloaded(const PlanInputs& in, std::function<void()> work) {
  if (in.offload) {
    co_await in.offload(std::move(work));
  } else {
    work();
  }
}

// Whether the spec declares container `name` and Docker has none by that name.
bool hostAbsent(const config::Spec& spec, const docker::Observed& observed,
                const std::string& name) {
  if (!spec.containers.count(name)) return false;
  for (const auto& c : observed.containers) {
    if (c.name == name) return false;
  }
  return true;
}

// Docker changes whose only differences are credential values cannot be
// compared without the state: listed as unknown, not guessed.
void withoutState(docker::Plan& plan, std::vector<std::pair<std::string, std::string>>& unknown) {
  std::vector<docker::Change> kept;
  for (auto& c : plan.changes) {
    if (c.action == docker::Action::recreate && !c.fields.empty()) {
      std::vector<docker::FieldChange> plain;
      std::string secret;
      for (const auto& f : c.fields) {
        if (!f.sensitive) plain.push_back(f);
        else secret += (secret.empty() ? "" : ", ") + f.field;
      }
      if (plain.empty()) {
        unknown.emplace_back(c.key.str(), "cannot compare " + secret + " without the state");
        continue;
      }
      if (!secret.empty()) {
        std::string names;
        for (const auto& f : plain) names += (names.empty() ? "" : ", ") + f.field;
        c.reason = names + " changed; " + secret + " not compared without the state";
      }
      c.fields = std::move(plain);
    }
    kept.push_back(std::move(c));
  }
  plan.changes = std::move(kept);
}

// The buckets dry run's document as changes (an unreachable server: unknown).
std::vector<PlanChange> bucketChanges(const nlohmann::json& doc) {
  std::vector<PlanChange> out;
  for (const auto& s : doc.value("servers", nlohmann::json::array())) {
    if (!s.value("ok", false)) {
      out.push_back({{config::Kind::s3, s.value("s3", "")},
                     PlanAction::unknown,
                     "cannot observe: " + s.value("message", std::string("no answer")),
                     {}});
      continue;
    }
    for (const auto& c : s.value("changes", nlohmann::json::array())) {
      const std::string action = c.value("action", "");
      out.push_back({{config::Kind::bucket, c.value("bucket", "")},
                     action == "create" ? PlanAction::create : PlanAction::update,
                     action + ": " + c.value("reason", ""),
                     {}});
    }
  }
  return out;
}

const char* symbolOf(PlanAction a) {
  switch (a) {
    case PlanAction::create: return "+";
    case PlanAction::update: return "~";
    case PlanAction::unknown: return "?";
  }
  return " ";
}

void renderChanges(const char* title, const std::vector<PlanChange>& changes, bool color,
                   std::string& out) {
  if (changes.empty()) return;
  out += std::string(title) + ":\n";
  for (const auto& c : changes) {
    const char* on = !color                                ? ""
                     : c.action == PlanAction::create      ? "\033[32m"
                     : c.action == PlanAction::update      ? "\033[33m"
                                                           : "\033[2m";
    out += std::string("  ") + on + symbolOf(c.action) + " " + c.key.str() + (color ? "\033[0m" : "") +
           ": " + planActionName(c.action) + " (" + c.reason + ")\n";
    for (const auto& f : c.fields) {
      if (f.unknown) {
        out += "      " + f.field + ": " + f.after + "\n";
      } else {
        out += "      " + f.field + ": " + (f.before.empty() ? "(none)" : f.before) + " -> " +
               (f.after.empty() ? "(none)" : f.after) + "\n";
      }
    }
  }
}

}  // namespace

asio::awaitable<Result<SpecPlan>> planWholeSpec(const config::Spec& spec, const PlanInputs& in) {
  SpecPlan out;
  const state::UnlockedKey* key = in.key && !in.key->locked() ? in.key : nullptr;
  out.locked = key == nullptr;
  auto observed = co_await docker::observe(*in.docker, spec.project);
  if (!observed) {
    co_return Error::make(observed.error().code,
                          "cannot read the Docker Engine: " + observed.error().message);
  }
  // Credentials: compared by digest, which needs no passphrase.
  if (!spec.credentials.empty() && in.store) {
    auto p = credentials::planCredentials(spec, *in.store, std::chrono::system_clock::now());
    if (!p) co_return p.error();
    out.credentials = credentialChanges(p.value());
  } else if (!spec.credentials.empty()) {
    out.noState = "no state in " + in.stateDir;
    for (const auto& [name, _] : spec.credentials) {
      out.unknown.emplace_back("credential." + name, "cannot compare without the state");
    }
  }
  StoreSecrets digests(spec, in.store, nullptr);  // Docker compares secrets by digest
  out.docker = docker::plan(spec, observed.value(), digests);
  if (!out.noState.empty()) withoutState(out.docker, out.unknown);
  if (!spec.files.empty()) out.files = planFiles(spec, digests, in.store, in.stateDir);

  StoreSecrets secrets(spec, in.store, key);  // values when unlocked
  state::Store* store = in.store;
  const config::Spec* specp = &spec;
  const docker::Observed* obs = &observed.value();
  if (!spec.s3.empty()) {  // buckets: a dry run against each S3 server (needs the keys)
    nlohmann::json doc;
    nlohmann::json* docp = &doc;
    std::function<void()> dry = [specp, store, key, docp] { *docp = planBucketsJson(*specp, store, key); };
    co_await offloaded(in, std::move(dry));
    out.bucketChanges = bucketChanges(doc);
    out.buckets = std::move(doc);
  }
  vault::PlanObservation vaultSeen;
  if (spec.vault) {
    vault::Context ctx;
    ctx.store = store;
    ctx.key = key;
    ctx.requestTimeout = std::chrono::seconds(5);
    const bool absent = hostAbsent(spec, *obs, spec.vault->container);
    vault::Context* ctxp = &ctx;
    vault::PlanObservation* seenp = &vaultSeen;
    std::vector<std::string> alsoRead;  // the runner token's copy (the forge's plan)
    if (spec.forgejo && spec.forgejo->runnerTokenVaultPath) {
      alsoRead.push_back(*spec.forgejo->runnerTokenVaultPath);
    }
    const std::vector<std::string>* alsop = &alsoRead;
    std::function<void()> look = [specp, ctxp, absent, seenp, alsop] {
      *seenp = vault::observeForPlan(*specp, *ctxp, absent, *alsop);
    };
    co_await offloaded(in, std::move(look));
    out.vault = vault::plan(spec, vaultSeen);
  }
  if (!spec.postgres.empty()) {
    postgres::Observed pg;
    for (const auto& [name, p] : spec.postgres) {
      if (hostAbsent(spec, *obs, p.container)) {
        pg[name] = {postgres::ObservedInstance::State::absent,
                    "container " + p.container + " does not exist yet: created with it", {}, {}};
      }
    }
    auto seen = co_await postgres::observe(*in.docker, spec, secrets);
    for (auto& [name, o] : seen) pg.emplace(name, std::move(o));  // absent ones kept
    out.postgres = postgres::plan(spec, pg);
  }
  if (spec.forgejo) {
    std::optional<PlanStateAccess> access;
    if (store) access.emplace(store);
    forgejo::PlanDeps deps;
    deps.state = access ? &*access : nullptr;
    if (key && spec.forgejo->runnerTokenVaultPath) {
      // The runner token's copy in Vault, as the Vault plan read it.
      const std::string path = *spec.forgejo->runnerTokenVaultPath;
      const vault::PlanObservation* seenp = &vaultSeen;
      deps.runnerTokenVaultDigest = [seenp, path]() -> Result<std::optional<std::string>> {
        if (seenp->unreadable) return Error::make(ErrorCode::unavailable, *seenp->unreadable);
        auto it = seenp->kv.find(path);
        if (it == seenp->kv.end() || !it->second.present) return std::optional<std::string>();
        auto d = it->second.digests.find("token");
        if (d == it->second.digests.end()) return std::optional<std::string>();
        return std::optional<std::string>(d->second);
      };
    }
    const bool absent = hostAbsent(spec, *obs, spec.forgejo->container);
    forgejo::PlanObservation seen;
    const docker::SecretResolver* sp = &secrets;
    const forgejo::PlanDeps* depsp = &deps;
    forgejo::PlanObservation* seenp = &seen;
    std::function<void()> look = [specp, sp, depsp, absent, seenp] {
      *seenp = forgejo::observeForPlan(*specp, *sp, *depsp, absent);
    };
    co_await offloaded(in, std::move(look));
    out.forgejo = forgejo::plan(spec, seen);
  }
  co_return out;
}

nlohmann::json SpecPlan::json() const {
  auto doc = docker::renderPlanJson(docker, credentials);
  if (files) doc["files"] = *files;
  if (buckets) doc["buckets"] = *buckets;
  nlohmann::json unknownJson = nlohmann::json::array();
  for (const auto& [resource, why] : unknown) {
    unknownJson.push_back({{"resource", resource}, {"reason", why}});
  }
  doc["unknown"] = unknownJson;  // not compared: no state (never counted as a change)
  doc["locked"] = locked;
  // Every service controller's changes, in the apply's order (unknowns
  // included, with "action": "unknown"; never counted as changes).
  nlohmann::json services = nlohmann::json::array();
  for (const auto* part : {&vault, &bucketChanges, &postgres, &forgejo}) {
    for (auto& c : planChangesJson(*part)) services.push_back(std::move(c));
  }
  doc["services"] = services;
  doc["has_changes"] = hasChanges();
  return doc;
}

std::string SpecPlan::text(bool color) const {
  std::string out;
  if (files) out += renderFilesPlanText(*files);
  if (!unknown.empty()) {
    out += "Without the state (" + noState +
           "), these cannot be compared; run plan where the state is (--state-dir DIR, or the "
           "config's state_dir):\n";
    for (const auto& [resource, why] : unknown) out += "  ? " + resource + ": " + why + "\n";
  }
  out += docker::renderPlanText(docker, {color}, credentials);
  renderChanges("Vault", vault, color, out);
  renderChanges("Buckets", bucketChanges, color, out);
  renderChanges("PostgreSQL", postgres, color, out);
  renderChanges("Forge", forgejo, color, out);
  int create = 0, update = 0, notCompared = static_cast<int>(unknown.size());
  for (const auto* part : {&vault, &bucketChanges, &postgres, &forgejo}) {
    for (const auto& c : *part) {
      create += c.action == PlanAction::create ? 1 : 0;
      update += c.action == PlanAction::update ? 1 : 0;
      notCompared += c.action == PlanAction::unknown ? 1 : 0;
    }
  }
  if (vault.empty() && bucketChanges.empty() && postgres.empty() && forgejo.empty() &&
      unknown.empty()) {
    return out;
  }
  out += "\nServices: " + std::to_string(create) + " to create, " + std::to_string(update) +
         " to update; " + std::to_string(notCompared) + " not compared" +
         (locked && notCompared > 0 ? " (locked: unseal, or --passphrase-file, to compare them)"
                                    : "") +
         ".\n";
  return out;
}

bool SpecPlan::hasChanges() const {
  return docker::hasChanges(docker, credentials) || docker.hasConflicts() ||
         (files && filesPlanHasChanges(*files)) || planHasChanges(vault) ||
         planHasChanges(bucketChanges) || planHasChanges(postgres) || planHasChanges(forgejo);
}

std::string graphDot(const config::Spec& spec) {
  const auto graph = config::Graph::build(spec);
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') q += '\\';
      q += ch;
    }
    return q + "\"";
  };
  std::string out = "digraph " + quoted(spec.project) + " {\n  rankdir=LR;\n";
  for (const auto& n : graph.nodes()) out += "  " + quoted(n.str()) + ";\n";
  for (const auto& n : graph.nodes()) {
    for (const auto& d : graph.dependencies(n)) {
      out += "  " + quoted(n.str()) + " -> " + quoted(d.str()) + ";\n";
    }
  }
  return out + "}\n";
}

api::Task<Result<nlohmann::json>> Daemon::plan() {
  loadSpec();
  if (!spec_) co_return Error::make(ErrorCode::invalid_argument, "no valid spec: " + specError_);
  const config::Spec spec = *spec_;
  auto p = co_await planSpec(spec);
  if (!p) co_return p.error();
  co_return p->json();
}

// GET /v1/plan and the plans posted on pull requests (daemon_pr.cpp): the
// desired `spec` against the live host, nothing changed.
api::Task<Result<SpecPlan>> Daemon::planSpec(const config::Spec& spec) {
  PlanInputs in;
  in.docker = &docker_;
  in.store = store_.get();
  in.key = key_.locked() ? nullptr : &key_;
  in.stateDir = config_.stateDir;
  // onPool's lambda is destroyed twice by GCC 12 (an owning capture inside a
  // co_await): hand it only a raw pointer to the work.
  in.offload = [this](std::function<void()> work) -> asio::awaitable<void> {
    std::function<void()>* w = &work;
    auto run = [w] {
      (*w)();
      return true;
    };
    (void)co_await onPool(run);
  };
  co_return co_await planWholeSpec(spec, in);
}

}  // namespace foundationd::daemon
