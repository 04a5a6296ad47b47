// The daemon's Vault helper: the converge step (init, unseal, mount,
// policies, token, credential mirroring: controllers/vault), the light poll
// of seal-status that notices a restarted (sealed) Vault between converges,
// and Vault's part of POST /v1/unseal and POST /v1/seal.
#include <array>
#include <set>

#include <unistd.h>

#include "common/async.hpp"
#include "controllers/vault/init_helper.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

constexpr auto kVaultPoll = std::chrono::seconds(3);

std::string selfExe() {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

vault::Context Daemon::vaultContext(const config::VaultSpec& v) {
  vault::Context ctx;
  ctx.store = store_.get();
  ctx.key = &key_;
  ctx.stateDir = config_.stateDir;
  api::Metrics* metrics = &metrics_;
  ctx.observer = [metrics](int code) { metrics->vaultRequests().inc({std::to_string(code)}); };
  vault::HelperRequest req{config_.stateDir, v.address, v.keyShares, v.keyThreshold};
  const state::UnlockedKey* key = &key_;
  ctx.initializer = [req, key](int shares, int threshold) {
    vault::HelperRequest r = req;
    r.shares = shares;
    r.threshold = threshold;
    return vault::runInitHelper(selfExe(), r, *key);
  };
  return ctx;
}

void Daemon::noteVault(bool initialized, bool sealed) {
  vault_.initialized = initialized;
  vault_.sealed = sealed;
  metrics_.vaultInitialized().set(initialized ? 1 : 0);
  metrics_.vaultSealed().set(sealed ? 1 : 0);
}

asio::awaitable<StepReport> Daemon::reconcileVault(const config::Spec& spec) {
  if (!spec.vault) co_return StepReport{};
  vault::Context ctx = vaultContext(*spec.vault);
  vault::Observation obs;
  const config::Spec* specp = &spec;
  vault::Context* ctxp = &ctx;
  vault::Observation* obsp = &obs;
  auto step = [specp, ctxp, obsp] { return vault::reconcile(*specp, *ctxp, obsp); };
  StepReport report = co_await onPool(step);
  if (obs.reachable) noteVault(obs.initialized, obs.sealed);
  // A failed (not blocked-by-lock) step is retried by the poll: service steps
  // are not in the scheduler's failed set.
  vaultRetry_ = false;
  for (const auto& o : report.outcomes) {
    if (!o.ok && (!o.blocked || o.message.rfind("blocked:", 0) == 0)) vaultRetry_ = true;
  }
  logStepOutcomes("vault.step", report);
  co_return report;
}

asio::awaitable<bool> Daemon::unsealVault() {
  if (!spec_ || !spec_->vault || key_.locked()) co_return false;
  vault::Context ctx = vaultContext(*spec_->vault);
  const config::VaultSpec v = *spec_->vault;
  const config::VaultSpec* vp = &v;
  vault::Context* ctxp = &ctx;
  auto run = [vp, ctxp]() -> Result<vault::SealStatus> {
    vault::VaultClient client(vp->address, ctxp->requestTimeout);
    client.setObserver(ctxp->observer);
    auto has = vault::hasInitMaterial(*ctxp->store);
    if (!has) return std::move(has).error();
    if (!*has) return Error::make(ErrorCode::not_found, "no Vault keys in the state yet");
    return vault::unsealFromState(client, *ctxp->store, *ctxp->key);
  };
  auto r = co_await onPool(run);
  if (!r) {
    log::info("vault.unseal", {{"result", "not now"}, {"reason", r.error().message}});
    co_return false;
  }
  noteVault(r->initialized, r->sealed);
  log::info("vault.unseal", {{"result", r->sealed ? "still sealed" : "unsealed"}});
  co_return !r->sealed;
}

asio::awaitable<void> Daemon::sealVault() {
  if (!spec_ || !spec_->vault || key_.locked()) co_return;
  vault::Context ctx = vaultContext(*spec_->vault);
  const config::VaultSpec v = *spec_->vault;
  const config::VaultSpec* vp = &v;
  vault::Context* ctxp = &ctx;
  auto run = [vp, ctxp]() -> Status {
    auto has = vault::hasInitMaterial(*ctxp->store);
    if (!has || !*has) return Status::success();
    vault::VaultClient client(vp->address, ctxp->requestTimeout);
    client.setObserver(ctxp->observer);
    return vault::sealWithRoot(client, *ctxp->store, *ctxp->key);
  };
  auto st = co_await onPool(run, PoolGate::keyChange);  // inside seal()'s key change
  if (st) noteVault(vault_.initialized, true);
  log::info("vault.seal", {{"result", st ? "sealed" : st.error().message}});
}

asio::awaitable<void> Daemon::mirrorRotated(const config::Spec& spec,
                                            const std::vector<credentials::Generated>& generated) {
  if (!spec.vault) co_return;
  std::set<std::string> names;
  for (const auto& g : generated) {
    if (g.rotated) names.insert(g.credential);
  }
  if (names.empty()) co_return;
  vault::Context ctx = vaultContext(*spec.vault);
  const config::Spec* specp = &spec;
  vault::Context* ctxp = &ctx;
  const std::set<std::string>* namesp = &names;
  auto run = [specp, ctxp, namesp] {
    std::string errors;
    for (const auto& n : *namesp) {
      if (auto st = vault::mirrorCredential(*specp, *ctxp, n); !st)
        errors += n + ": " + st.error().message + "; ";
    }
    return errors;
  };
  std::string errors = co_await onPool(run);
  log::write(errors.empty() ? log::Level::info : log::Level::warning, "vault.rotation_mirrored",
             {{"credentials", std::to_string(names.size())}, {"errors", errors}});
}

asio::awaitable<void> Daemon::watchVault() {
  while (!stopping_) {
    co_await sleepFor(kVaultPoll);
    if (stopping_ || !spec_ || !spec_->vault) continue;
    vault::Context ctx = vaultContext(*spec_->vault);
    const config::VaultSpec v = *spec_->vault;
    const config::VaultSpec* vp = &v;
    const vault::Context* ctxp = &ctx;
    auto look = [vp, ctxp] { return vault::observe(*vp, *ctxp); };
    auto s = co_await onPool(look);
    const Key key{config::Kind::vault, ""};
    if (vaultRetry_ && !key_.locked() && !(scheduler_ && scheduler_->busy())) {
      vaultRetry_ = false;
      scheduler_->trigger(key, "vault step retry");
    }
    if (!s) continue;  // not answering: the converge step reports it
    const bool wasSealed = vault_.sealed;
    noteVault(s->initialized, s->sealed);
    if (!s->initialized || !s->sealed) continue;
    if (key_.locked()) {
      setResource(key, api::ResourceStatus::blocked,
                  "Vault is sealed: the operator must unseal (POST /v1/unseal)");
    } else if (!config_.keepKeyInMemory) {
      setResource(key, api::ResourceStatus::blocked,
                  "Vault is sealed and keep_key_in_memory is off: the operator must unseal "
                  "(POST /v1/unseal)");
    } else {
      if (!wasSealed) log::info("vault.sealed_seen", {{"action", "unsealing from the state"}});
      scheduler_->trigger(key, "vault sealed");
    }
    publishStatus();
  }
}

}  // namespace foundationd::daemon

namespace foundationd::daemon {

StepReport convergeVaultOnce(const config::Spec& spec, state::Store* store,
                             const state::UnlockedKey* key) {
  if (!spec.vault) return {};
  vault::Context ctx;
  ctx.store = store;
  ctx.key = key;
  if (store) ctx.stateDir = store->path().parent_path();
  const vault::HelperRequest req{ctx.stateDir.string(), spec.vault->address, 0, 0};
  ctx.initializer = [req, key](int shares, int threshold) -> Result<vault::InitResult> {
    if (!key) return Error::make(ErrorCode::unavailable, "the state is locked");
    vault::HelperRequest r = req;
    r.shares = shares;
    r.threshold = threshold;
    return vault::runInitHelper(selfExe(), r, *key);
  };
  return vault::reconcile(spec, ctx);
}

Status mirrorRotatedOnce(const config::Spec& spec, state::Store* store,
                         const state::UnlockedKey* key, const std::string& name) {
  if (!spec.vault || !store) return Status::success();
  auto token = store->currentSecretInfo(vault::kKind, vault::kTokenName, vault::kTokenField);
  if (!token) return token.error();
  if (!token->has_value()) return Status::success();  // Vault not set up yet
  vault::Context ctx;
  ctx.store = store;
  ctx.key = key;
  ctx.stateDir = store->path().parent_path();
  return vault::mirrorCredential(spec, ctx, name);
}

}  // namespace foundationd::daemon
