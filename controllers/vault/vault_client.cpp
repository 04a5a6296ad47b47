#include "controllers/vault/vault_client.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#include <sodium.h>

#include "controllers/transport/http_client.hpp"

namespace foundationd::vault {

namespace {

using nlohmann::json;

// Each '/'-separated segment percent-encoded; the slashes kept.
std::string encodePath(const std::string& path) {
  return transport::urlEncodePath(path);
}

ErrorCode codeFor(int status) {
  if (status == 404) return ErrorCode::not_found;
  if (status == 503) return ErrorCode::unavailable;  // sealed, standby
  if (status >= 500) return ErrorCode::peer;
  return ErrorCode::invalid_argument;
}

Error statusError(const std::string& what, int status, const json& body) {
  std::string msg = "vault: " + what + ": HTTP " + std::to_string(status);
  if (auto e = vaultErrors(body); !e.empty()) msg += ": " + e;
  return Error::make(codeFor(status), msg, status);
}

SealStatus parseSealStatus(const json& j) {
  SealStatus s;
  s.initialized = j.value("initialized", false);
  s.sealed = j.value("sealed", true);
  s.threshold = j.value("t", 0);
  s.shares = j.value("n", 0);
  s.progress = j.value("progress", 0);
  return s;
}

std::vector<std::string> stringList(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string vaultErrors(const json& body) {
  if (!body.is_object() || !body.contains("errors") || !body["errors"].is_array()) return "";
  std::string out;
  for (const auto& e : body["errors"]) {
    if (!e.is_string()) continue;
    if (!out.empty()) out += "; ";
    out += e.get<std::string>();
  }
  return out;
}

Result<VaultClient::Raw> VaultClient::call(const std::string& method, const std::string& path,
                                           const json* body, bool withToken) {
  transport::PeerRequest req;
  req.method = method;
  req.url = address_ + "/v1/" + path;
  req.timeout = timeout_;
  if (withToken && !token_.empty()) req.headers.emplace_back("X-Vault-Token", token_);
  if (body) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body->dump();
  }
  auto resp = transport::sessionRequest(req, session_);
  // The request body may hold a key or a secret: gone as soon as it is sent.
  sodium_memzero(req.body.data(), req.body.size());
  for (auto& [name, value] : req.headers) sodium_memzero(value.data(), value.size());
  if (!resp) {
    if (observer_) observer_(0);
    return std::move(resp).error();
  }
  if (observer_) observer_(resp->status);
  Raw raw;
  raw.status = resp->status;
  if (!resp->body.empty()) {
    raw.body = json::parse(resp->body, nullptr, false);
    sodium_memzero(resp->body.data(), resp->body.size());
    if (raw.body.is_discarded()) {
      return Error::make(ErrorCode::protocol,
                         "vault: " + method + " " + path + ": the answer is not JSON (HTTP " +
                             std::to_string(resp->status) + ")",
                         resp->status);
    }
  }
  return raw;
}

static bool upgradingKvMount(const VaultClient::Raw& r) {
  return r.status == 400 &&
         vaultErrors(r.body).find("Upgrading from non-versioned to versioned data") !=
             std::string::npos;
}

Result<VaultClient::Raw> VaultClient::kvCall(const std::string& method, const std::string& path,
                                             const json* body) {
  return withBackoff(
      kvUpgradeWait_, std::chrono::milliseconds(50), [&] { return call(method, path, body); },
      [](const Result<Raw>& r) { return !r || !upgradingKvMount(*r); });
}

void VaultClient::clearToken() {
  sodium_memzero(token_.data(), token_.size());
  token_.clear();
}

Result<Health> VaultClient::health() {
  auto r = call("GET", "sys/health", nullptr, false);
  if (!r) return std::move(r).error();
  const int s = r->status;
  const bool documented = s == 200 || s == 429 || s == 472 || s == 473 || s == 501 || s == 503;
  if (!documented) return statusError("health", s, r->body);
  if (!r->body.is_object() || !r->body.contains("initialized")) {
    return Error::make(ErrorCode::protocol,
                       "vault: health: HTTP " + std::to_string(s) + " without its state", s);
  }
  Health h;
  h.initialized = r->body.value("initialized", false);
  h.sealed = r->body.value("sealed", true);
  h.active = s == 200;
  return h;
}

Result<SealStatus> VaultClient::sealStatus() {
  auto r = call("GET", "sys/seal-status", nullptr, false);
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("seal-status", r->status, r->body);
  return parseSealStatus(r->body);
}

InitResponse::~InitResponse() {
  for (auto& k : keysBase64) sodium_memzero(k.data(), k.size());
  for (auto& k : recoveryKeysBase64) sodium_memzero(k.data(), k.size());
  sodium_memzero(rootToken.data(), rootToken.size());
  sodium_memzero(raw.data(), raw.size());
}

Result<InitResponse> VaultClient::init(int shares, int threshold) {
  json body{{"secret_shares", shares}, {"secret_threshold", threshold}};
  const auto timeout = timeout_;
  timeout_ = std::chrono::milliseconds(0);  // libcurl: no timeout
  auto r = call("PUT", "sys/init", &body, false);
  timeout_ = timeout;
  if (!r) return std::move(r).error();
  if (r->status != 200) {
    auto e = statusError("init", r->status, r->body);
    if (e.message.find("already initialized") != std::string::npos) e.code = ErrorCode::conflict;
    return e;
  }
  InitResponse out;
  if (r->body.is_object()) {
    out.keysBase64 = stringList(r->body.value("keys_base64", json::array()));
    out.recoveryKeysBase64 = stringList(r->body.value("recovery_keys_base64", json::array()));
    const auto token = r->body.find("root_token");
    if (token != r->body.end() && token->is_string()) out.rootToken = token->get<std::string>();
  }
  out.raw = r->body.dump();
  return out;
}

Result<SealStatus> VaultClient::unseal(const std::string& key) {
  json body{{"key", key}};
  auto r = call("PUT", "sys/unseal", &body, false);
  body["key"] = std::string(key.size(), '\0');
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("unseal", r->status, r->body);
  return parseSealStatus(r->body);
}

Status VaultClient::seal() {
  auto r = call("PUT", "sys/seal");
  if (!r) return std::move(r).error();
  if (r->status != 200 && r->status != 204) return statusError("seal", r->status, r->body);
  return Status::success();
}

Result<json> VaultClient::mounts() {
  auto r = call("GET", "sys/mounts");
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("list mounts", r->status, r->body);
  // Newer servers put the map under "data"; older ones at the top level too.
  if (r->body.contains("data") && r->body["data"].is_object()) return r->body["data"];
  return r->body;
}

Status VaultClient::enableKv2(const std::string& path) {
  json body{{"type", "kv"}, {"options", {{"version", "2"}}}, {"description", "foundationd"}};
  auto r = call("POST", "sys/mounts/" + encodePath(path), &body);
  if (!r) return std::move(r).error();
  if (r->status != 200 && r->status != 204) return statusError("enable mount", r->status, r->body);
  return Status::success();
}

Result<std::optional<std::string>> VaultClient::readPolicy(const std::string& name) {
  auto r = call("GET", "sys/policies/acl/" + transport::urlEncode(name));
  if (!r) return std::move(r).error();
  if (r->status == 404) return std::optional<std::string>();
  if (r->status != 200) return statusError("read policy", r->status, r->body);
  const json& d = r->body.contains("data") ? r->body["data"] : r->body;
  return std::optional<std::string>(d.value("policy", ""));
}

Status VaultClient::writePolicy(const std::string& name, const std::string& rules) {
  json body{{"policy", rules}};
  auto r = call("PUT", "sys/policies/acl/" + transport::urlEncode(name), &body);
  if (!r) return std::move(r).error();
  if (r->status != 200 && r->status != 204) return statusError("write policy", r->status, r->body);
  return Status::success();
}

Result<TokenInfo> VaultClient::lookupSelf() {
  auto r = call("GET", "auth/token/lookup-self");
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("token lookup", r->status, r->body);
  const json& d = r->body.value("data", json::object());
  TokenInfo t;
  t.policies = stringList(d.value("policies", json::array()));
  t.ttlSeconds = d.value("ttl", 0LL);
  t.renewable = d.value("renewable", false);
  if (d.contains("period") && d["period"].is_number()) t.period = d["period"].get<long long>();
  return t;
}

Status VaultClient::renewSelf() {
  json body = json::object();
  auto r = call("POST", "auth/token/renew-self", &body);
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("token renew", r->status, r->body);
  return Status::success();
}

Result<std::string> VaultClient::createPeriodicToken(const std::vector<std::string>& policies,
                                                     const std::string& period,
                                                     const std::string& displayName) {
  json body{{"policies", policies},
            {"period", period},
            {"no_parent", true},
            {"renewable", true},
            {"display_name", displayName}};
  auto r = call("POST", "auth/token/create", &body);
  if (!r) return std::move(r).error();
  if (r->status != 200) return statusError("token create", r->status, r->body);
  std::string token = r->body.value("auth", json::object()).value("client_token", "");
  if (token.empty())
    return Error::make(ErrorCode::protocol, "vault: token create: no token in the answer");
  return token;
}

Status VaultClient::revokeToken(const std::string& token) {
  json body{{"token", token}};
  auto r = call("POST", "auth/token/revoke", &body);
  if (!r) return std::move(r).error();
  if (r->status != 200 && r->status != 204) return statusError("token revoke", r->status, r->body);
  return Status::success();
}

Result<std::optional<KvSecret>> VaultClient::kvRead(const std::string& mount,
                                                    const std::string& path) {
  auto r = kvCall("GET", encodePath(mount) + "/data/" + encodePath(path));
  if (!r) return std::move(r).error();
  const json& d = r->body.is_object() ? r->body.value("data", json()) : json();
  if (r->status == 404) {
    // A deleted current version answers 404 with its metadata.
    if (d.is_object() && d.contains("metadata") && d["metadata"].is_object()) {
      KvSecret s;
      s.deleted = true;
      s.version = d["metadata"].value("version", 0);
      return std::optional<KvSecret>(std::move(s));
    }
    return std::optional<KvSecret>();
  }
  if (r->status != 200) return statusError("kv read " + mount + "/" + path, r->status, r->body);
  KvSecret s;
  if (d.is_object()) {
    const json& data = d.value("data", json());
    if (data.is_object()) {
      for (auto it = data.begin(); it != data.end(); ++it) {
        if (it.value().is_string())
          s.data[it.key()] = it.value().get<std::string>();
        else
          s.data[it.key()] = it.value().dump();
      }
    } else {
      s.deleted = true;  // destroyed: data is null
    }
    if (d.contains("metadata") && d["metadata"].is_object()) {
      s.version = d["metadata"].value("version", 0);
      const json& dt = d["metadata"].value("deletion_time", json(""));
      if (dt.is_string() && !dt.get<std::string>().empty()) s.deleted = true;
      if (d["metadata"].value("destroyed", false)) s.deleted = true;
    }
  }
  return std::optional<KvSecret>(std::move(s));
}

Result<KvMetadata> VaultClient::kvMetadata(const std::string& mount, const std::string& path) {
  auto r = kvCall("GET", encodePath(mount) + "/metadata/" + encodePath(path));
  if (!r) return std::move(r).error();
  if (r->status == 404) return KvMetadata{};
  if (r->status != 200) return statusError("kv metadata " + mount + "/" + path, r->status, r->body);
  KvMetadata m;
  m.currentVersion = r->body.value("data", json::object()).value("current_version", 0);
  return m;
}

Result<int> VaultClient::kvWrite(const std::string& mount, const std::string& path,
                                 const std::map<std::string, std::string>& data, int cas) {
  json body{{"options", {{"cas", cas}}}, {"data", data}};
  auto r = kvCall("POST", encodePath(mount) + "/data/" + encodePath(path), &body);
  for (auto& [k, v] : body["data"].items()) v = std::string(v.get<std::string>().size(), '\0');
  if (!r) return std::move(r).error();
  if (r->status != 200) {
    auto e = statusError("kv write " + mount + "/" + path, r->status, r->body);
    if (r->status == 400 && e.message.find("check-and-set") != std::string::npos) {
      e.code = ErrorCode::conflict;
    }
    return e;
  }
  return r->body.value("data", json::object()).value("version", 0);
}

Status VaultClient::kvDeleteLatest(const std::string& mount, const std::string& path) {
  auto r = kvCall("DELETE", encodePath(mount) + "/data/" + encodePath(path));
  if (!r) return std::move(r).error();
  if (r->status != 204 && r->status != 200) return statusError("kv delete", r->status, r->body);
  return Status::success();
}

Status VaultClient::kvDeleteMetadata(const std::string& mount, const std::string& path) {
  auto r = kvCall("DELETE", encodePath(mount) + "/metadata/" + encodePath(path));
  if (!r) return std::move(r).error();
  if (r->status != 204 && r->status != 200)
    return statusError("kv delete metadata", r->status, r->body);
  return Status::success();
}

namespace {
// Connections the reads are spread over (the client's own and copies).
constexpr std::size_t kLanes = 4;
}  // namespace

void runConcurrently(VaultClient& client,
                     const std::vector<std::function<void(VaultClient&)>>& tasks) {
  std::atomic<std::size_t> next{0};
  std::mutex failureMutex;
  std::exception_ptr failure;
  auto work = [&](VaultClient& c) {
    try {
      for (std::size_t i; (i = next++) < tasks.size();) tasks[i](c);
    } catch (...) {
      std::lock_guard lock(failureMutex);
      if (!failure) failure = std::current_exception();
    }
  };
  const std::size_t lanes = std::min(kLanes, tasks.size());
  std::vector<VaultClient> copies;
  copies.reserve(lanes);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < lanes; ++i) {
    copies.push_back(client);
    try {
      threads.emplace_back([&work, &c = copies.back()] { work(c); });
    } catch (const std::system_error&) {
      break;  // no thread to be had: fewer lanes
    }
  }
  work(client);
  for (auto& t : threads) t.join();
  for (auto& c : copies) c.clearToken();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace foundationd::vault
