// The [forgejo] step: Daemon::reconcileForgejo (the daemon's converge) and
// convergeForgejoOnce (`apply --once`, daemon/forgejo_step.hpp). The
// controller itself is controllers/forgejo/forgejo.hpp; this file adapts the
// state store (digests, memos, the sealed runner token) and Vault (the KV
// write of the runner token) to its narrow interfaces.
#include <map>
#include <memory>
#include <string>

#include <sodium.h>

#include "controllers/forgejo/forgejo.hpp"
#include "controllers/vault/vault.hpp"
#include "controllers/vault/vault_client.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/forgejo_step.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

namespace {

constexpr const char* kStateKind = "forgejo";  // memos (applied hashes) and the sealed token

class StoreAccess final : public forgejo::StateAccess {
 public:
  StoreAccess(state::Store* store, const state::UnlockedKey* key) : store_(store), key_(key) {}
  Result<std::string> digestOf(std::string_view secret) override {
    if (!store_) return Error::make(ErrorCode::unavailable, "no state");
    return store_->digestOf(secret);
  }
  Result<std::optional<std::string>> memo(const std::string& name) override {
    if (!store_) return Error::make(ErrorCode::unavailable, "no state");
    return store_->appliedHash(kStateKind, name);
  }
  Status setMemo(const std::string& name, const std::string& value) override {
    if (!store_) return Error::make(ErrorCode::unavailable, "no state");
    return store_->setAppliedHash(kStateKind, name, value);
  }
  Status storeRunnerToken(std::string_view token) override {
    if (!store_ || !key_ || key_->locked()) return Error::make(ErrorCode::unavailable, "locked");
    auto v = store_->putSecret(*key_, kStateKind, "runner-token", "token", token);
    if (!v) return v.error();
    return Status::success();
  }

 private:
  state::Store* store_;
  const state::UnlockedKey* key_;
};

// A client for the [vault] of `spec` holding foundationd's own token from
// the state. Blocking (reads the state).
Result<std::unique_ptr<vault::VaultClient>> ownVaultClient(const config::Spec& spec,
                                                           state::Store* store,
                                                           const state::UnlockedKey* key) {
  if (!spec.vault) {
    return Error::make(ErrorCode::invalid_argument,
                       "the spec has no [vault] to keep [forgejo.runner_token] in");
  }
  if (!store || !key || key->locked()) return Error::make(ErrorCode::unavailable, "locked");
  auto token = store->currentSecret(*key, vault::kKind, vault::kTokenName, vault::kTokenField);
  if (!token) {
    return Error::make(ErrorCode::unavailable,
                       "Vault is not set up by foundationd yet (no token in the state)");
  }
  auto client = std::make_unique<vault::VaultClient>(spec.vault->address);
  client->setToken(std::string(token->value.view()));
  return client;
}

// Writes `data` (string fields) at `path` of the [vault] KV mount with
// foundationd's own token from the state. Blocking.
Status writeVaultKv(const config::Spec& spec, state::Store* store, const state::UnlockedKey* key,
                    const std::string& path, const nlohmann::json& data) {
  auto own = ownVaultClient(spec, store, key);
  if (!own) return own.error();
  vault::VaultClient& client = **own;
  std::map<std::string, std::string> fields;
  for (const auto& [k, v] : data.items()) {
    if (v.is_string()) fields[k] = v.get<std::string>();
  }
  Status out;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto meta = client.kvMetadata(spec.vault->kvMount, path);
    if (!meta) {
      out = meta.error();
      break;
    }
    auto written = client.kvWrite(spec.vault->kvMount, path, fields, meta->currentVersion);
    if (written) {
      out = Status::success();
      break;
    }
    out = written.error();
    if (written.error().code != ErrorCode::conflict) break;  // else: moved under us, again
  }
  for (auto& [_, v] : fields) sodium_memzero(v.data(), v.size());
  return out;
}

// Reads `field` of the current version at `path` of the [vault] KV mount with
// foundationd's own token. Blocking. nullopt: nothing there (or deleted).
Result<std::optional<std::string>> readVaultKv(const config::Spec& spec, state::Store* store,
                                               const state::UnlockedKey* key,
                                               const std::string& path, const std::string& field) {
  auto own = ownVaultClient(spec, store, key);
  if (!own) return own.error();
  vault::VaultClient& client = **own;
  auto secret = client.kvRead(spec.vault->kvMount, path);
  if (!secret) return secret.error();
  std::optional<std::string> out;
  if (*secret && !(*secret)->deleted) {
    auto it = (*secret)->data.find(field);
    if (it != (*secret)->data.end()) out = it->second;
  }
  if (*secret) {
    for (auto& [_, v] : (*secret)->data) sodium_memzero(v.data(), v.size());
  }
  return out;
}

// Both ends of the runner token's Vault copy, for forgejo::Deps.
void wireVault(forgejo::Deps& deps, const config::Spec& spec, state::Store* store,
               const state::UnlockedKey* key) {
  const config::Spec* specp = &spec;
  deps.writeKv = [specp, store, key](const std::string& path, const nlohmann::json& data) {
    return writeVaultKv(*specp, store, key, path, data);
  };
  deps.readKv = [specp, store, key](const std::string& path, const std::string& field) {
    return readVaultKv(*specp, store, key, path, field);
  };
}

void logOutcomes(const forgejo::Report& r) {
  logStepOutcomes("forgejo.apply", r.step);
  log::write(log::Level::debug, "forgejo.done",
             {{"execs", std::to_string(r.execs)}, {"requests", std::to_string(r.httpRequests)}});
}

// Whether a batch concerns the forge: a forgejo key, or its container.
bool concerns(const config::Spec& spec, const Batch& batch) {
  return batchConcerns(batch, {config::Kind::forgejo}, {spec.forgejo->container});
}

}  // namespace

asio::awaitable<StepReport> Daemon::reconcileForgejo(const config::Spec& spec, const Batch& batch) {
  if (!spec.forgejo || !concerns(spec, batch)) co_return StepReport{};
  const bool locked = key_.locked();
  StoreSecrets secrets(spec, store_.get(), locked ? nullptr : &key_);
  StoreAccess access(store_.get(), locked ? nullptr : &key_);
  forgejo::Deps deps;
  deps.docker = &docker_;
  deps.state = &access;
  // onPool's lambda is destroyed twice by GCC 12 (an owning capture inside a
  // co_await): hand it only a raw pointer to the work.
  deps.offload = [this](std::function<void()> work) -> asio::awaitable<void> {
    std::function<void()>* w = &work;
    auto run = [w] {
      (*w)();
      return true;
    };
    (void)co_await onPool(run);
  };
  if (!locked) wireVault(deps, spec, store_.get(), &key_);
  forgejo::Options options;
  if (locked) options.waitReady = std::chrono::milliseconds(0);  // everything waits for unseal
  auto r = co_await forgejo::reconcile(spec, secrets, deps, options);
  logOutcomes(r);
  co_return r.step;
}

asio::awaitable<StepReport> convergeForgejoOnce(docker::DockerApi& api, const config::Spec& spec,
                                                state::Store* store,
                                                const state::UnlockedKey* key,
                                                const Offload& offload) {
  if (!spec.forgejo) co_return StepReport{};
  StoreSecrets secrets(spec, store, key);
  StoreAccess access(store, key);
  forgejo::Deps deps;
  deps.docker = &api;
  deps.state = &access;
  deps.offload = offload;
  if (key && !key->locked()) wireVault(deps, spec, store, key);
  const forgejo::Options options;
  auto r = co_await forgejo::reconcile(spec, secrets, deps, options);
  co_return r.step;
}

}  // namespace foundationd::daemon
