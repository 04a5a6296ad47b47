#include "controllers/forgejo/actions.hpp"

#include <map>
#include <utility>
#include <vector>

#include <sodium.h>

#include "controllers/forgejo/forgejo.hpp"
#include "state/wipe.hpp"

namespace foundationd::forgejo {

std::string actionsSecretMemo(const std::string& scope, const std::string& name) {
  return "actions-secret/" + scope + "/" + name;
}

std::string actionsVariableMemo(const std::string& scope, const std::string& name) {
  return "actions-variable/" + scope + "/" + name;
}

namespace detail {
namespace {

using json = nlohmann::json;
using transport::PeerResponse;
template <typename T>
using Task = boost::asio::awaitable<T>;

// The description the forge shows next to what foundationd set.
constexpr const char* kDescription = "managed by foundationd (the spec)";
// A page of the forge's lists (its default MAX_RESPONSE_ITEMS).
constexpr int kPageSize = 50;
constexpr int kMaxPages = 100;

using state::wipe;

// "what: HTTP 404 (message)": the API's own message, bounded.
std::string httpError(const std::string& what, const PeerResponse& r) {
  std::string msg;
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    msg = j["message"].get<std::string>();
  }
  if (msg.size() > 200) msg = msg.substr(0, 200) + "...";
  return what + ": HTTP " + std::to_string(r.status) + (msg.empty() ? "" : " (" + msg + ")");
}

std::string upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

// The forge keeps a textarea's line breaks as "\n".
std::string normalised(std::string s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out += s[i];
  }
  return out;
}

// Every entry of a list endpoint (all pages): NAME -> its "data" field
// (variables) or "" (secrets: the forge returns no value).
Task<Result<std::map<std::string, std::string>>> listAll(ActionsApi& api, const std::string& path,
                                                         const std::string& what) {
  std::map<std::string, std::string> out;
  const std::optional<json> none;
  std::size_t seen = 0;  // entries on the pages so far
  for (int page = 1; page <= kMaxPages; ++page) {
    const std::string url =
        path + "?limit=" + std::to_string(kPageSize) + "&page=" + std::to_string(page);
    auto r = co_await api.adminCall("GET", url, none);
    if (!r) co_return Error::make(ErrorCode::unavailable, what + ": " + r.error().message);
    if (!r->ok()) co_return Error::make(ErrorCode::internal, httpError(what, *r));
    auto items = json::parse(r->body, nullptr, false);
    if (!items.is_array()) co_return Error::make(ErrorCode::internal, what + ": not a JSON array");
    for (const auto& item : items) {
      if (!item.is_object() || !item.contains("name") || !item["name"].is_string()) continue;
      std::string data;
      if (item.contains("data") && item["data"].is_string()) data = item["data"].get<std::string>();
      out[upper(item["name"].get<std::string>())] = std::move(data);
    }
    seen += items.size();
    if (items.empty()) break;
    // The forge says how many there are; it may also cap a page below the
    // limit asked for (its MAX_RESPONSE_ITEMS), so a short page alone does
    // not mean the last one when it does.
    const std::string total = r->header("x-total-count");
    if (!total.empty() && total.find_first_not_of("0123456789") == std::string::npos &&
        total.size() < 10) {
      if (seen >= std::stoul(total)) break;
      continue;
    }
    if (items.size() < static_cast<std::size_t>(kPageSize)) break;
  }
  co_return out;
}

// What the state knows, read in one blocking pass.
struct Known {
  std::map<std::string, std::string> secretDigest;  // NAME -> keyed digest of the spec's value
  std::map<std::string, std::optional<std::string>> secretMemo;
  std::map<std::string, std::optional<std::string>> variableMemo;
  std::optional<std::string> error;
};

Known readState(StateAccess& state, const std::string& scope,
                const std::map<std::string, std::string>& secretValues,
                const config::ForgejoActions& actions) {
  Known k;
  for (const auto& [name, value] : secretValues) {
    auto d = state.digestOf(value);
    if (!d) {
      k.error = "digest of secret " + name + ": " + d.error().message;
      return k;
    }
    k.secretDigest[name] = std::move(*d);
    auto m = state.memo(actionsSecretMemo(scope, name));
    if (!m) {
      k.error = "reading the state: " + m.error().message;
      return k;
    }
    k.secretMemo[name] = std::move(*m);
  }
  for (const auto& [name, _] : actions.variables) {
    auto m = state.memo(actionsVariableMemo(scope, name));
    if (!m) {
      k.error = "reading the state: " + m.error().message;
      return k;
    }
    k.variableMemo[name] = std::move(*m);
  }
  return k;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

config::ResourceKey actionsKey(const std::string& scope) {
  return {config::Kind::forgejo, "actions/" + scope};
}

Task<StepOutcome> reconcileActions(const ActionsScope& scope, const docker::SecretResolver& secrets,
                                   StateAccess* state, ActionsApi& api) {
  StepOutcome out;
  out.key = actionsKey(scope.scope);
  const config::ForgejoActions& actions = *scope.actions;

  // Every secret's value first: all or nothing (locked, or not set yet).
  std::map<std::string, std::string> values;
  struct WipeAll {
    std::map<std::string, std::string>& m;
    ~WipeAll() {
      for (auto& [_, v] : m) wipe(v);
    }
  } wipeValues{values};
  for (const auto& [name, value] : actions.secrets) {
    auto v = docker::resolveSecrets(value, secrets);
    if (!v) {
      out.ok = false;
      out.blocked = true;
      out.message = "locked: the value of Actions secret " + name + " is not available";
      co_return out;
    }
    values.emplace(name, std::move(*v));
  }
  if (!state) {
    out.ok = false;
    out.message = "no state to remember the Actions secrets and variables in";
    co_return out;
  }

  Known known;
  {
    StateAccess* st = state;
    Known* kp = &known;
    const std::string* scopep = &scope.scope;
    const auto* valuesp = &values;
    const config::ForgejoActions* ap = &actions;
    std::function<void()> work = [st, kp, scopep, valuesp, ap] {
      *kp = readState(*st, *scopep, *valuesp, *ap);
    };
    co_await api.offload(std::move(work));
  }
  if (known.error) {
    out.ok = false;
    out.message = *known.error;
    co_return out;
  }

  std::vector<std::string> changes;
  std::vector<std::string> failures;
  std::vector<std::pair<std::string, std::string>> memos;  // name -> value, to record

  if (!actions.secrets.empty()) {
    const std::string base = scope.apiPath + "/actions/secrets";
    auto live = co_await listAll(api, base, "listing the Actions secrets of " + scope.scope);
    if (!live) {
      failures.push_back(live.error().message);
    } else {
      for (const auto& [name, value] : values) {
        const bool present = live->count(name) > 0;
        const auto& memo = known.secretMemo[name];
        const std::string& digest = known.secretDigest[name];
        if (present && memo && *memo == digest) continue;
        std::optional<json> body = json{{"data", value}, {"description", kDescription}};
        auto r = co_await api.adminCall("PUT", base + "/" + transport::urlEncode(name), body);
        wipe((*body)["data"].get_ref<std::string&>());
        if (!r) {
          failures.push_back("setting secret " + name + ": " + r.error().message);
          continue;
        }
        if (!r->ok()) {
          failures.push_back(httpError("setting secret " + name, *r));
          continue;
        }
        if (!present && memo) {
          changes.push_back("secret " + name + " restored (it had been deleted)");
          out.drift = true;
        } else if (!present) {
          changes.push_back("secret " + name + " created");
        } else {
          changes.push_back("secret " + name + (memo ? " updated" : " set"));
        }
        memos.emplace_back(actionsSecretMemo(scope.scope, name), digest);
      }
    }
  }

  if (!actions.variables.empty()) {
    const std::string base = scope.apiPath + "/actions/variables";
    auto live = co_await listAll(api, base, "listing the Actions variables of " + scope.scope);
    if (!live) {
      failures.push_back(live.error().message);
    } else {
      for (const auto& [name, raw] : actions.variables) {
        const std::string want = normalised(raw);
        auto it = live->find(name);
        const auto& memo = known.variableMemo[name];
        if (it != live->end() && it->second == want) {
          if (!memo || *memo != want)
            memos.emplace_back(actionsVariableMemo(scope.scope, name), want);
          continue;
        }
        const bool present = it != live->end();
        json b = {{"value", want}, {"description", kDescription}};
        if (present) b["name"] = name;
        std::optional<json> body = std::move(b);
        auto r = co_await api.adminCall(present ? "PUT" : "POST",
                                        base + "/" + transport::urlEncode(name), body);
        if (!r) {
          failures.push_back("setting variable " + name + ": " + r.error().message);
          continue;
        }
        if (!r->ok()) {
          failures.push_back(httpError("setting variable " + name, *r));
          continue;
        }
        const bool recorded = memo && *memo == want;  // what we wrote last is the spec's
        if (!present) {
          changes.push_back("variable " + name +
                            (recorded ? " restored (it had been deleted)" : " created"));
        } else {
          changes.push_back("variable " + name +
                            (recorded ? " set back to the spec's" : " updated"));
        }
        out.drift = out.drift || recorded;
        memos.emplace_back(actionsVariableMemo(scope.scope, name), want);
      }
    }
  }

  if (!memos.empty()) {
    std::optional<std::string> memoError;
    StateAccess* st = state;
    const auto* memosp = &memos;
    auto* errp = &memoError;
    std::function<void()> work = [st, memosp, errp] {
      for (const auto& [name, value] : *memosp) {
        auto s = st->setMemo(name, value);
        if (!s) {
          *errp = "recording " + name + ": " + s.error().message;
          return;
        }
      }
    };
    co_await api.offload(std::move(work));
    if (memoError) failures.push_back(*memoError);
  }

  out.changed = !changes.empty();
  if (!failures.empty()) {
    out.ok = false;
    out.message = joined(failures);
    if (!changes.empty()) out.message += " (done: " + joined(changes) + ")";
    co_return out;
  }
  out.drift = out.drift && out.changed;
  out.message = joined(changes);
  co_return out;
}

}  // namespace detail
}  // namespace foundationd::forgejo
