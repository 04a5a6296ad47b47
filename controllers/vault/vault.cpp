#include "controllers/vault/vault.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <sys/file.h>
#include <unistd.h>

#include "controllers/credentials/credentials.hpp"
#include "controllers/vault/init_answer.hpp"
#include "controllers/vault/vault_reads.hpp"
#include "state/wipe.hpp"

namespace foundationd::vault {

namespace {

using config::Kind;
using nlohmann::json;

constexpr const char* kTokenPeriod = "768h";
constexpr std::chrono::seconds kTokenPeriodSeconds{768 * 3600};
constexpr const char* kAppliedKind = "vault-kv";

using state::wipe;

StepOutcome outcome(const std::string& name) {
  StepOutcome o;
  o.key = {Kind::vault, name};
  return o;
}

StepOutcome blockedOutcome(const std::string& name, std::string message) {
  StepOutcome o = outcome(name);
  o.ok = false;
  o.blocked = true;
  o.message = std::move(message);
  return o;
}

StepOutcome failedOutcome(const std::string& name, std::string message) {
  StepOutcome o = outcome(name);
  o.ok = false;
  o.message = std::move(message);
  return o;
}

// An open file descriptor holding an flock; released on destruction.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::filesystem::path& file, bool wait) {
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return Error::make(ErrorCode::io, "cannot open the Vault init lock " + file.string());
    }
    if (::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      ::close(fd);
      return Error::make(ErrorCode::conflict, "a Vault init is in progress");
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// The values credential `name` should have in Vault (fields as named).
Result<std::map<std::string, std::string>> desiredData(const config::Spec& spec,
                                                       const config::CredentialSpec& cred,
                                                       const Context& ctx) {
  credentials::Resolver resolver(spec, ctx.store, ctx.key);
  std::map<std::string, std::string> data;
  for (const auto& [field, _] : cred.fields) {
    auto v = resolver.value({cred.name, field});
    if (!v) {
      return Error::make(ErrorCode::not_found, "credential " + cred.name + "." + field +
                                                   " has no value in the state yet");
    }
    data[field] = std::move(*v);
  }
  return data;
}

Result<std::string> dataDigest(state::Store& store,
                               const std::map<std::string, std::string>& data) {
  std::string text = json(data).dump();
  auto d = store.digestOf(text);
  wipe(text);
  return d;
}

bool sameData(const std::map<std::string, std::string>& a,
              const std::map<std::string, std::string>& b) {
  if (a.size() != b.size()) return false;
  bool same = true;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.size() != ib->second.size()) return false;
    // Compare every byte (no early exit on the value).
    unsigned char diff = 0;
    for (std::size_t i = 0; i < ia->second.size(); ++i) diff |= ia->second[i] ^ ib->second[i];
    same = same && diff == 0;
  }
  return same;
}

// Mirrors one credential: returns the outcome (changed/drift set as needed).
// `first`: the first read, already made (readAll); null: read here.
StepOutcome mirrorOne(const config::Spec& spec, const config::CredentialSpec& cred,
                      VaultClient& client, Context& ctx,
                      Result<std::optional<KvSecret>>* first = nullptr) {
  const std::string& mount = spec.vault->kvMount;
  StepOutcome o = outcome("kv/" + cred.vaultPath);
  auto want = desiredData(spec, cred, ctx);
  if (!want) return failedOutcome(o.key.name, want.error().message);
  auto digest = dataDigest(*ctx.store, *want);
  if (!digest) return failedOutcome(o.key.name, digest.error().message);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto have = attempt == 0 && first ? std::move(*first) : client.kvRead(mount, cred.vaultPath);
    if (!have) return failedOutcome(o.key.name, have.error().message);
    if (have->has_value() && !(*have)->deleted && sameData((*have)->data, *want)) {
      for (auto& [_, v] : (*have)->data) wipe(v);
      // Converged; remember what is there (e.g. after an import).
      auto applied = ctx.store->appliedHash(kAppliedKind, cred.vaultPath);
      if (applied && (!applied->has_value() || **applied != *digest)) {
        (void)ctx.store->setAppliedHash(kAppliedKind, cred.vaultPath, *digest);
      }
      return o;
    }
    if (have->has_value()) {
      for (auto& [_, v] : (*have)->data) wipe(v);
    }
    auto meta = client.kvMetadata(mount, cred.vaultPath);
    if (!meta) return failedOutcome(o.key.name, meta.error().message);
    auto applied = ctx.store->appliedHash(kAppliedKind, cred.vaultPath);
    if (!applied) return failedOutcome(o.key.name, applied.error().message);
    // We wrote exactly this before, and Vault no longer holds it: drift.
    const bool drift = applied->has_value() && **applied == *digest;
    auto written = client.kvWrite(mount, cred.vaultPath, *want, meta->currentVersion);
    if (!written) {
      if (written.error().code == ErrorCode::conflict) continue;  // moved under us: look again
      return failedOutcome(o.key.name, written.error().message);
    }
    if (auto st = ctx.store->setAppliedHash(kAppliedKind, cred.vaultPath, *digest); !st) {
      return failedOutcome(o.key.name, st.error().message);
    }
    for (auto& [_, v] : *want) wipe(v);
    o.changed = true;
    o.drift = drift;
    o.message = drift ? "restored in Vault (version " + std::to_string(*written) + ")"
                      : "written to Vault (version " + std::to_string(*written) + ")";
    return o;
  }
  return failedOutcome(o.key.name, "Vault's version kept changing (check-and-set)");
}

// Waits (bounded) for sys/health to answer: one request says initialised,
// sealed and active (seal-status and a second sys/health said it in two).
Result<Health> waitForAnswer(VaultClient& client, std::chrono::milliseconds wait) {
  return withBackoff(
      wait, std::chrono::milliseconds(100), [&] { return client.health(); },
      [](const Result<Health>& h) { return h.ok(); });
}

VaultClient makeClient(const config::VaultSpec& v, const Context& ctx) {
  VaultClient client(v.address, ctx.requestTimeout);
  if (ctx.observer) client.setObserver(ctx.observer);
  return client;
}

}  // namespace

std::string normalisePolicy(const std::string& rules) {
  // Vault stores the text as given; compare without surrounding whitespace.
  auto b = rules.find_first_not_of(" \t\r\n");
  auto e = rules.find_last_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return rules.substr(b, e - b + 1);
}

InitMaterial::~InitMaterial() {
  for (auto& k : keysBase64) wipe(k);
  wipe(rootToken);
}

Result<bool> hasInitMaterial(state::Store& store) {
  auto info = store.currentSecretInfo(kKind, kInitName, kInitField);
  if (!info) return std::move(info).error();
  return info->has_value();
}

Result<InitMaterial> loadInitMaterial(state::Store& store, const state::UnlockedKey& key) {
  auto s = store.currentSecret(key, kKind, kInitName, kInitField);
  if (!s) return std::move(s).error();
  json j = json::parse(s->value.view(), nullptr, false);
  if (!j.is_object()) {
    return Error::make(ErrorCode::internal, "the stored Vault init material is not valid JSON");
  }
  InitMaterial m;
  for (const auto& k : j.value("keys_base64", json::array())) {
    if (k.is_string()) m.keysBase64.push_back(k.get<std::string>());
  }
  m.rootToken = j.value("root_token", "");
  m.shares = j.value("key_shares", 0);
  m.threshold = j.value("key_threshold", 0);
  // Wipe the parsed copy's strings.
  for (auto& k : j["keys_base64"]) k = std::string(k.get<std::string>().size(), '\0');
  if (j.contains("root_token")) j["root_token"] = "";
  if (m.keysBase64.empty() || m.rootToken.empty()) {
    return Error::make(ErrorCode::internal,
                       "the stored Vault init material lacks keys or the root token");
  }
  return m;
}

bool initInProgress(const std::filesystem::path& lockFile) {
  auto lock = FileLock::acquire(lockFile, false);
  return !lock && lock.error().code == ErrorCode::conflict;
}

Result<InitResult> initializeLocked(VaultClient& client, state::Store& store,
                                    const state::UnlockedKey& key, int shares, int threshold,
                                    const std::filesystem::path& lockFile) {
  auto lock = FileLock::acquire(lockFile, true);
  if (!lock) return std::move(lock).error();
  auto status = client.sealStatus();
  if (!status) return std::move(status).error();
  if (status->initialized) return InitResult::already_initialized;
  auto has = hasInitMaterial(store);
  if (!has) return std::move(has).error();
  if (*has) {
    return Error::make(ErrorCode::conflict,
                       "Vault is uninitialised but the state already holds init material (was "
                       "Vault's storage lost?); not initialising again");
  }
  auto init = client.init(shares, threshold);
  if (!init) {
    if (init.error().code == ErrorCode::conflict) return InitResult::already_initialized;
    return std::move(init).error();
  }
  // The answer as Vault gave it, sealed and fsynced, before anything looks
  // at it (retried; a sealed fallback file when the state cannot take it).
  auto persisted = saveInitAnswer(store, key, *init, shares, threshold, lockFile.parent_path());
  if (!persisted) return std::move(persisted).error();
  (void)store.appendAudit("vault.initialized",
                          json{{"key_shares", shares}, {"key_threshold", threshold}}.dump());
  if (auto st = checkInitAnswer(*init, shares); !st) return st.error();
  return InitResult::initialized;
}

Result<SealStatus> unsealFromState(VaultClient& client, state::Store& store,
                                   const state::UnlockedKey& key) {
  auto status = client.sealStatus();
  if (!status) return std::move(status).error();
  if (!status->sealed) return status;
  auto m = loadInitMaterial(store, key);
  if (!m) return std::move(m).error();
  for (const auto& k : m->keysBase64) {
    auto s = client.unseal(k);
    if (!s) return std::move(s).error();
    if (!s->sealed) return s;
  }
  return Error::make(
      ErrorCode::peer,
      "Vault is still sealed after the state's keys were submitted (are they Vault's?)");
}

Status waitUntilActive(VaultClient& client, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  std::string last = "no answer";
  for (;;) {
    auto h = client.call("GET", "sys/health", nullptr, false);
    if (h && h->status == 200) return Status::success();
    last = h ? "sys/health answered HTTP " + std::to_string(h->status) : h.error().message;
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Error::make(
      ErrorCode::timeout,
      "Vault is not active after " + std::to_string(limit.count() / 1000) + " s (" + last + ")");
}

Status sealWithRoot(VaultClient& client, state::Store& store, const state::UnlockedKey& key) {
  auto m = loadInitMaterial(store, key);
  if (!m) return std::move(m).error();
  client.setToken(m->rootToken);
  auto st = client.seal();
  client.clearToken();
  return st;
}

std::string ownPolicy(const config::VaultSpec& vault) {
  const std::string& kv = vault.kvMount;
  std::string p;
  p += "# foundationd's own token (managed by foundationd; edits are reverted)\n";
  p += "path \"" + kv + "/data/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n";
  p += "path \"" + kv + "/metadata/*\" { capabilities = [\"read\", \"list\"] }\n";
  p += "path \"sys/mounts\" { capabilities = [\"read\"] }\n";
  p += "path \"sys/policies/acl/" + std::string(kOwnPolicy) + "\" { capabilities = [\"read\"] }\n";
  for (const auto& [name, _] : vault.policies) {
    p += "path \"sys/policies/acl/" + name +
         "\" { capabilities = [\"create\", \"read\", \"update\"] }\n";
  }
  p += "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\n";
  p += "path \"auth/token/renew-self\" { capabilities = [\"update\"] }\n";
  return p;
}

Result<SealStatus> observe(const config::VaultSpec& vault, const Context& ctx) {
  VaultClient client = makeClient(vault, ctx);
  return client.sealStatus();
}

namespace {

struct StoredToken {
  std::string value;
  int version = 0;  // its version in the state
  ~StoredToken() { wipe(value); }
};

// The routine token from the state; nullopt when there is none.
Result<std::optional<StoredToken>> storedToken(Context& ctx) {
  auto info = ctx.store->currentSecretInfo(kKind, kTokenName, kTokenField);
  if (!info) return std::move(info).error();
  if (!info->has_value()) return std::optional<StoredToken>();
  auto s = ctx.store->currentSecret(*ctx.key, kKind, kTokenName, kTokenField);
  if (!s) return std::move(s).error();
  std::optional<StoredToken> t(std::in_place);
  t->value = std::string(s->value.view());
  t->version = s->info.version;
  return t;
}

state::TimePoint now(const Context& ctx) {
  return ctx.clock ? ctx.clock() : std::chrono::system_clock::now();
}

// Whether token version `version` needs its lookup-self now: no record of
// it, or its renewal may be due, or the clock went back past the record.
bool lookupDue(const Context& ctx, int version) {
  auto rec = ctx.store->appliedHash(kTokenCheck, kTokenField);
  if (!rec || !rec->has_value()) return true;
  std::istringstream in(**rec);
  int v = 0;
  long long at = 0;
  if (!(in >> v >> at) || v != version) return true;
  const state::TimePoint due{std::chrono::seconds(at)};
  const auto t = now(ctx);
  return t >= due || due - t > kTokenPeriodSeconds;
}

// Records that token version `version` needs no lookup-self for `quiet`.
void noteLookupDue(Context& ctx, int version, std::chrono::seconds quiet) {
  const auto due =
      std::chrono::duration_cast<std::chrono::seconds>((now(ctx) + quiet).time_since_epoch());
  (void)ctx.store->setAppliedHash(kTokenCheck, kTokenField,
                                  std::to_string(version) + " " + std::to_string(due.count()));
}

// lookup-self with the client's token, renewing it past half its period.
// Ok: valid (`valid`), or refused with 403 (not valid: a new one is needed).
Status checkToken(VaultClient& client, Context& ctx, int version, bool& valid) {
  auto self = client.lookupSelf();
  if (!self) {
    valid = false;
    if (self.error().httpStatus == 403) return Status::success();
    return self.error();
  }
  valid = true;
  // Only a renewable periodic token (foundationd's) is left unlooked-at for a while.
  if (!self->renewable || self->period <= 0) return Status::success();
  const long long half = self->period / 2;
  if (self->ttlSeconds >= half) {
    noteLookupDue(ctx, version, std::chrono::seconds(self->ttlSeconds - half));
  } else if (client.renewSelf()) {
    noteLookupDue(ctx, version, std::chrono::seconds(self->period - half));
  }
  return Status::success();
}

// Bootstrap with the root token: the mount, foundationd's own policy and its
// token. Appends outcomes; false when something failed.
bool bootstrap(const config::VaultSpec& v, Context& ctx, VaultClient& client, StepReport& report,
               bool needMount, bool needPolicy, bool needToken, bool policyDrift) {
  auto m = loadInitMaterial(*ctx.store, *ctx.key);
  if (!m) {
    report.outcomes.push_back(failedOutcome("", m.error().message));
    return false;
  }
  VaultClient root(v.address, ctx.requestTimeout);
  if (ctx.observer) root.setObserver(ctx.observer);
  root.setToken(m->rootToken);
  bool ok = true;
  if (needMount) {
    StepOutcome o = outcome("mount/" + v.kvMount);
    // The token may not have been able to see it (its policy was tampered
    // with): look again with the root token before enabling.
    auto existing = root.mounts();
    const json found = existing && existing->contains(v.kvMount + "/")
                           ? existing.value()[v.kvMount + "/"]
                           : json();
    if (found.is_object()) {
      const json& opts = found.value("options", json::object());
      if (found.value("type", "") != "kv" || !opts.is_object() ||
          opts.value("version", "") != "2") {
        o = failedOutcome(o.key.name,
                          "the mount " + v.kvMount + "/ exists but is not KV version 2");
        ok = false;
      }
    } else if (auto st = root.enableKv2(v.kvMount); !st) {
      o = failedOutcome(o.key.name, st.error().message);
      ok = false;
    } else {
      o.changed = true;
      o.message = "KV v2 mount enabled";
    }
    report.outcomes.push_back(o);
  }
  if (needPolicy) {
    StepOutcome o = outcome(std::string("policy/") + kOwnPolicy);
    // The token may not have been able to read it: look with the root token.
    auto current = root.readPolicy(kOwnPolicy);
    if (current && current->has_value()) {
      policyDrift = normalisePolicy(**current) != normalisePolicy(ownPolicy(v));
    }
    if (current && current->has_value() && !policyDrift) {
      // Already right (only the token could not see it).
    } else if (auto st = root.writePolicy(kOwnPolicy, ownPolicy(v)); !st) {
      o = failedOutcome(o.key.name, st.error().message);
      ok = false;
    } else {
      o.changed = true;
      o.drift = policyDrift;
      o.message = policyDrift ? "restored" : "written";
    }
    report.outcomes.push_back(o);
  }
  if (needToken && ok) {
    auto token = root.createPeriodicToken({kOwnPolicy}, kTokenPeriod, "foundationd");
    if (!token) {
      report.outcomes.push_back(failedOutcome("", token.error().message));
      ok = false;
    } else {
      auto stored =
          ctx.store->putSecret(*ctx.key, kKind, kTokenName, kTokenField, *token,
                               json{{"policies", {kOwnPolicy}}, {"period", kTokenPeriod}}.dump());
      if (!stored) {
        (void)root.revokeToken(*token);
        report.outcomes.push_back(failedOutcome("", stored.error().message));
        ok = false;
      } else {
        client.setToken(*token);
        noteLookupDue(ctx, *stored, kTokenPeriodSeconds / 2);
        (void)ctx.store->appendAudit("vault.token_created",
                                     json{{"policies", {kOwnPolicy}}}.dump());
      }
      wipe(*token);
    }
  }
  return ok;
}

}  // namespace

StepReport reconcile(const config::Spec& spec, Context& ctx, Observation* seen) {
  StepReport report;
  Observation local;
  Observation& obs = seen ? *seen : local;
  if (!spec.vault) return report;
  const config::VaultSpec& v = *spec.vault;
  VaultClient client = makeClient(v, ctx);
  const auto lockFile = ctx.stateDir / kInitLockFile;

  auto health = waitForAnswer(client, ctx.waitForVault);
  if (!health) {
    obs.problem = "pending: Vault (" + v.address + ") does not answer: " + health.error().message;
    report.outcomes.push_back(failedOutcome("", obs.problem));
    return report;
  }
  obs.reachable = true;
  obs.initialized = health->initialized;
  obs.sealed = health->sealed;
  bool active = health->active;
  const bool unlocked = ctx.store && ctx.key && !ctx.key->locked();
  if (!unlocked) {
    obs.problem = obs.sealed ? "locked: POST /v1/unseal to unseal the state and Vault"
                             : "locked: POST /v1/unseal";
    report.outcomes.push_back(blockedOutcome("", obs.problem));
    return report;
  }

  auto has = hasInitMaterial(*ctx.store);
  if (!has) {
    report.outcomes.push_back(failedOutcome("", has.error().message));
    return report;
  }
  StepOutcome vaultOutcome = outcome("");
  if (!obs.initialized) {
    if (*has) {
      obs.problem =
          "blocked: Vault is uninitialised but the state holds keys from an earlier init (was its "
          "storage lost?): restore Vault's data; foundationd will not initialise it again";
      report.outcomes.push_back(blockedOutcome("", obs.problem));
      return report;
    }
    if (initInProgress(lockFile)) {
      obs.problem = "pending: a Vault init is in progress";
      report.outcomes.push_back(failedOutcome("", obs.problem));
      return report;
    }
    Result<InitResult> r =
        ctx.initializer
            ? ctx.initializer(v.keyShares, v.keyThreshold)
            : initializeLocked(client, *ctx.store, *ctx.key, v.keyShares, v.keyThreshold, lockFile);
    if (!r) {
      obs.problem = "Vault init failed: " + r.error().message;
      report.outcomes.push_back(failedOutcome("", obs.problem));
      return report;
    }
    vaultOutcome.changed = *r == InitResult::initialized;
    vaultOutcome.message = "initialised";
    auto status = client.sealStatus();
    if (!status) {
      report.outcomes.push_back(failedOutcome("", status.error().message));
      return report;
    }
    obs.initialized = status->initialized;
    obs.sealed = status->sealed;
    active = false;
    has = hasInitMaterial(*ctx.store);
    if (!has) {
      report.outcomes.push_back(failedOutcome("", has.error().message));
      return report;
    }
  }
  if (!*has) {
    if (initInProgress(lockFile)) {
      obs.problem = "pending: a Vault init is in progress";
      report.outcomes.push_back(failedOutcome("", obs.problem));
    } else {
      obs.problem =
          "blocked: Vault is initialised but the state holds no keys for it: import them "
          "(foundationd import-vault-keys FILE); foundationd never initialises Vault twice";
      report.outcomes.push_back(blockedOutcome("", obs.problem));
    }
    return report;
  }
  if (obs.sealed) {
    auto s = unsealFromState(client, *ctx.store, *ctx.key);
    if (!s) {
      obs.problem = "Vault unseal failed: " + s.error().message;
      report.outcomes.push_back(failedOutcome("", obs.problem));
      return report;
    }
    obs.sealed = s->sealed;
    active = false;
    vaultOutcome.changed = true;
    if (vaultOutcome.message.empty()) vaultOutcome.message = "unsealed";
  }
  // The first sys/health said active when nothing was done since.
  if (!active) {
    if (auto st = waitUntilActive(client, ctx.waitForVault); !st) {
      obs.problem = st.error().message;
      report.outcomes.push_back(failedOutcome("", obs.problem));
      return report;
    }
  }

  // The routine token: looked up (and renewed past half its period) when its
  // renewal may be due; else trusted until a read with it is refused (403),
  // which looks it up then: a revoked token is replaced as before.
  bool needToken = true;
  Reads reads;
  auto token = storedToken(ctx);
  if (!token) {
    report.outcomes.push_back(failedOutcome("", token.error().message));
    return report;
  }
  if (token->has_value()) {
    const int version = (*token)->version;
    client.setToken((*token)->value);
    bool valid = true;
    const bool lookedUp = lookupDue(ctx, version);
    if (lookedUp) {
      if (auto st = checkToken(client, ctx, version, valid); !st) {
        report.outcomes.push_back(failedOutcome("", st.error().message));
        return report;
      }
    }
    if (valid) {
      readAll(spec, client, true, reads);
      if (!lookedUp && reads.refusedBy() != nullptr) {
        if (auto st = checkToken(client, ctx, version, valid); !st) {
          report.outcomes.push_back(failedOutcome("", st.error().message));
          return report;
        }
      }
    }
    needToken = !valid;
  }
  // Mount and own policy: checked with the token when it works.
  bool needMount = true, needPolicy = true, policyDrift = false;
  if (!needToken) {
    if (reads.mounts) {
      auto it = reads.mounts->find(v.kvMount + "/");
      if (it != reads.mounts->end()) {
        const json& opts = it->value("options", json::object());
        const bool kv2 =
            it->value("type", "") == "kv" && opts.is_object() && opts.value("version", "") == "2";
        if (!kv2) {
          report.outcomes.push_back(failedOutcome(
              "mount/" + v.kvMount, "the mount " + v.kvMount + "/ exists but is not KV version 2"));
          return report;
        }
        needMount = false;
      }
    }
    if (reads.own && reads.own->has_value()) {
      needPolicy = normalisePolicy(**reads.own) != normalisePolicy(ownPolicy(v));
      policyDrift = needPolicy;
    }
  }
  if (needMount || needPolicy || needToken) {
    if (!bootstrap(v, ctx, client, report, needMount, needPolicy, needToken, policyDrift)) {
      return report;
    }
    // What was read may have been refused (the token, its policy) or not
    // there yet (the mount): read again as things are now.
    readAll(spec, client, false, reads);
  }
  if (!needMount) report.outcomes.push_back(outcome("mount/" + v.kvMount));
  if (!needPolicy) report.outcomes.push_back(outcome(std::string("policy/") + kOwnPolicy));
  report.outcomes.push_back(vaultOutcome);

  for (const auto& [name, p] : v.policies) {
    StepOutcome o = outcome("policy/" + name);
    const auto& have = reads.policies.at(name);
    if (!have) {
      report.outcomes.push_back(failedOutcome(o.key.name, have.error().message));
      continue;
    }
    if (have->has_value() && normalisePolicy(**have) == normalisePolicy(p.rules)) {
      report.outcomes.push_back(o);
      continue;
    }
    if (auto st = client.writePolicy(name, p.rules); !st) {
      report.outcomes.push_back(failedOutcome(o.key.name, st.error().message));
      continue;
    }
    o.changed = true;
    o.drift = have->has_value();
    o.message = have->has_value() ? "policy restored" : "policy written";
    report.outcomes.push_back(o);
  }

  for (const auto& [name, cred] : spec.credentials) {
    // Each path's first read once (two credentials never share a path).
    auto first = reads.kv.extract(cred.vaultPath);
    report.outcomes.push_back(
        mirrorOne(spec, cred, client, ctx, first ? &first.mapped() : nullptr));
  }
  return report;
}

Status mirrorCredential(const config::Spec& spec, Context& ctx, const std::string& name) {
  if (!spec.vault) return Status::success();
  auto it = spec.credentials.find(name);
  if (it == spec.credentials.end()) {
    return Error::make(ErrorCode::not_found, "no credential \"" + name + "\" in the spec");
  }
  if (!ctx.store || !ctx.key || ctx.key->locked()) {
    return Error::make(ErrorCode::unavailable, "the state is locked");
  }
  VaultClient client = makeClient(*spec.vault, ctx);
  auto token = storedToken(ctx);
  if (!token) return std::move(token).error();
  if (!token->has_value()) {
    return Error::make(ErrorCode::unavailable,
                       "foundationd has no Vault token yet (first converge)");
  }
  client.setToken((*token)->value);
  StepOutcome o = mirrorOne(spec, it->second, client, ctx);
  if (!o.ok) return Error::make(ErrorCode::peer, o.message);
  return Status::success();
}

// --- the reads of a no-op (vault_reads.hpp) ------------------------------------

void Reads::clear() {
  for (auto& [_, r] : kv) {
    if (r && r->has_value()) {
      for (auto& [__, v] : (*r)->data) wipe(v);
    }
  }
  mounts = Result<json>();
  own = Result<std::optional<std::string>>();
  policies.clear();
  kv.clear();
}

const Error* Reads::refusedBy() const {
  auto no = [](const auto& r) { return !r && r.error().httpStatus == 403; };
  if (no(mounts)) return &mounts.error();
  if (no(own)) return &own.error();
  for (const auto& [_, r] : policies) {
    if (no(r)) return &r.error();
  }
  for (const auto& [_, r] : kv) {
    if (no(r)) return &r.error();
  }
  return nullptr;
}

void readAll(const config::Spec& spec, VaultClient& client, bool withBootstrap, Reads& r,
             const std::vector<std::string>& alsoRead) {
  const config::VaultSpec& v = *spec.vault;
  r.clear();
  std::vector<std::function<void(VaultClient&)>> tasks;
  if (withBootstrap) {
    tasks.push_back([&r](VaultClient& c) { r.mounts = c.mounts(); });
    tasks.push_back([&r](VaultClient& c) { r.own = c.readPolicy(kOwnPolicy); });
  }
  // The maps' nodes are made here, on this thread; each task fills its own
  // (pointers captured: clang 14 cannot capture a structured binding).
  for (const auto& [name, _] : v.policies) {
    tasks.push_back([slot = &r.policies[name], policy = &name](VaultClient& c) {
      *slot = c.readPolicy(*policy);
    });
  }
  std::vector<const std::string*> paths;
  for (const auto& path : alsoRead) paths.push_back(&path);
  for (const auto& [_, cred] : spec.credentials) paths.push_back(&cred.vaultPath);
  for (const std::string* path : paths) {
    auto [it, added] = r.kv.try_emplace(*path);
    if (!added) continue;
    tasks.push_back([slot = &it->second, mount = &v.kvMount, p = &it->first](VaultClient& c) {
      *slot = c.kvRead(*mount, *p);
    });
  }
  runConcurrently(client, tasks);
}

}  // namespace foundationd::vault
