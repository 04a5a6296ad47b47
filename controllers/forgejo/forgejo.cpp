#include "controllers/forgejo/forgejo.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>
#include <vector>

#include <sodium.h>

#include "common/async.hpp"
#include "controllers/forgejo/actions.hpp"
#include "state/wipe.hpp"

namespace foundationd::forgejo {
namespace {

using config::Kind;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using transport::PeerRequest;
using transport::PeerResponse;
template <typename T>
using Task = boost::asio::awaitable<T>;

constexpr const char* kTokenPrefix = "foundationd-bootstrap-";
// The hook's fixed shape: push events (the tracked branch) and pull request
// events (plans posted on pull requests, docs/source.md), as JSON.
constexpr const char* kHookType = "gitea";
using detail::kHookContentType;

}  // namespace

// Whether a live hook is sent what foundationd needs. The forge lists
// "pull_request" as its parts (pull_request_sync, ...), in any order, so
// the check is for the parts that matter, not for equality.
bool detail::hookEventsCovered(const json& hook) {
  if (!hook.contains("events") || !hook["events"].is_array()) return false;
  bool push = false;
  bool pull = false;
  bool sync = false;
  for (const auto& e : hook["events"]) {
    if (!e.is_string()) continue;
    const auto& name = e.get_ref<const std::string&>();
    push = push || name == "push";
    pull = pull || name == "pull_request" || name == "pull_request_only";
    sync = sync || name == "pull_request_sync";
  }
  return push && pull && sync;
}

namespace {
using detail::hookEventsCovered;

std::string trim(std::string s) {
  auto notSpace = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
  s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
  return s;
}

// The last non-empty line of a command's output.
std::string lastLine(const std::string& text) {
  std::string t = trim(text);
  auto nl = t.rfind('\n');
  return trim(nl == std::string::npos ? t : t.substr(nl + 1));
}

// A CLI's stderr for a message: one line, bounded. Only ever stderr: the
// commands used here print tokens and throwaway passwords on stdout.
std::string cliError(const docker::ExecResult& r) {
  std::string t = trim(r.stderrText);
  if (t.empty() && (r.exitCode == 126 || r.exitCode == 127))
    t = trim(r.stdoutText);  // the Engine's
  std::replace(t.begin(), t.end(), '\n', ' ');
  if (t.size() > 300) t = t.substr(0, 300) + "...";
  return "exit " + std::to_string(r.exitCode) + (t.empty() ? "" : ": " + t);
}

bool isToken(const std::string& s) {
  if (s.size() < 16 || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c); });
}

std::string randomHex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  randombytes_buf(b.data(), b.size());
  std::string out(bytes * 2, '\0');
  sodium_bin2hex(out.data(), out.size() + 1, b.data(), b.size());
  return out;
}

std::string enc(const std::string& s) {
  return transport::urlEncode(s);
}

// "owner/name" -> "owner", "name".
std::pair<std::string, std::string> splitRepo(const std::string& repo) {
  auto slash = repo.find('/');
  if (slash == std::string::npos) return {repo, ""};
  return {repo.substr(0, slash), repo.substr(slash + 1)};
}

StepOutcome outcome(config::ResourceKey key, bool ok, std::string message) {
  StepOutcome o;
  o.key = std::move(key);
  o.ok = ok;
  o.message = std::move(message);
  return o;
}

StepOutcome blockedOutcome(config::ResourceKey key, std::string message) {
  StepOutcome o = outcome(std::move(key), false, std::move(message));
  o.blocked = true;
  return o;
}

StepOutcome changedOutcome(config::ResourceKey key, bool drift, std::string message) {
  StepOutcome o = outcome(std::move(key), true, std::move(message));
  o.changed = true;
  o.drift = drift;
  return o;
}

struct Auth {
  enum class Kind { none, basic, token } kind = Kind::none;
  std::string user;
  std::string secret;  // password or token
};

class Bootstrap final : public detail::ActionsApi {
 public:
  Bootstrap(const config::ForgejoSpec& f, const docker::SecretResolver& secrets, const Deps& deps,
            const Options& options, Report& report)
      : f_(f), secrets_(secrets), deps_(deps), options_(options), report_(report) {
    base_ = options_.url.value_or(f_.url);
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }

  Task<void> run() {
    std::vector<config::ResourceKey> keys = allKeys();
    auto ready = co_await waitReady();
    if (!ready) {
      const bool waiting = ready.error().code == ErrorCode::unavailable;
      for (const auto& k : keys) {
        report_.step.outcomes.push_back(waiting ? blockedOutcome(k, ready.error().message)
                                                : outcome(k, false, ready.error().message));
      }
      co_return;
    }

    // The runner token needs no admin: only the CLI.
    if (f_.runnerTokenVaultPath) report_.step.outcomes.push_back(co_await runnerToken());

    if (!f_.admin) {
      for (const auto& k : keys) {
        if (k.name == "runner-token") continue;
        report_.step.outcomes.push_back(
            outcome(k, false,
                    "[forgejo.admin] is needed to manage organisations, repositories "
                    "and webhooks"));
      }
      co_return;
    }
    auto password = docker::resolveSecrets(f_.admin->password, secrets_);
    if (!password) {
      for (const auto& k : keys) {
        if (k.name == "runner-token") continue;
        report_.step.outcomes.push_back(
            blockedOutcome(k, "locked: the admin password is not available"));
      }
      co_return;
    }
    admin_.kind = Auth::Kind::basic;
    admin_.user = f_.admin->username;
    admin_.secret = std::move(*password);
    state::WipeOnExit wipe{admin_.secret};

    auto adminOutcome = co_await reconcileAdmin();
    const bool adminOk = adminOutcome.ok;
    const std::string adminWhy = adminOutcome.message;
    report_.step.outcomes.push_back(std::move(adminOutcome));
    if (!adminOk) {
      for (const auto& k : keys) {
        if (k.name == "runner-token" || k.name.rfind("admin/", 0) == 0) continue;
        report_.step.outcomes.push_back(outcome(k, false, "the admin is not ready: " + adminWhy));
      }
      co_return;
    }

    std::set<std::string> orgsOk;
    for (const auto& [org, _] : f_.orgs) {
      auto o = co_await reconcileOrg(org);
      if (o.ok) orgsOk.insert(org);
      report_.step.outcomes.push_back(std::move(o));
    }
    std::set<std::string> reposOk;
    for (const auto& [repo, _] : f_.repos) {
      const auto owner = splitRepo(repo).first;
      if (f_.orgs.count(owner) && !orgsOk.count(owner)) {
        report_.step.outcomes.push_back(outcome({Kind::forgejo, "repo/" + repo}, false,
                                                "organisation " + owner + " is not ready"));
        continue;
      }
      auto o = co_await reconcileRepo(repo);
      if (o.ok) reposOk.insert(repo);
      report_.step.outcomes.push_back(std::move(o));
    }
    for (const auto& [repo, hook] : f_.webhooks) {
      const config::ResourceKey key{Kind::forgejo, "webhook/" + repo};
      if (f_.repos.count(repo) && !reposOk.count(repo)) {
        report_.step.outcomes.push_back(
            outcome(key, false, "repository " + repo + " is not ready"));
        continue;
      }
      report_.step.outcomes.push_back(co_await reconcileWebhook(hook));
    }
    for (const auto& [org, actions] : f_.orgActions) {
      if (!orgsOk.count(org)) {
        report_.step.outcomes.push_back(outcome(detail::actionsKey("org/" + org), false,
                                                "organisation " + org + " is not ready"));
        continue;
      }
      const detail::ActionsScope scope{"org/" + org, "/orgs/" + enc(org), &actions};
      report_.step.outcomes.push_back(
          co_await detail::reconcileActions(scope, secrets_, deps_.state, *this));
    }
    for (const auto& [repo, options] : f_.repoOptions) {
      if (options.actions.empty()) continue;
      if (!reposOk.count(repo)) {
        report_.step.outcomes.push_back(outcome(detail::actionsKey("repo/" + repo), false,
                                                "repository " + repo + " is not ready"));
        continue;
      }
      const auto [owner, name] = splitRepo(repo);
      const detail::ActionsScope scope{"repo/" + repo, "/repos/" + enc(owner) + "/" + enc(name),
                                       &options.actions};
      report_.step.outcomes.push_back(
          co_await detail::reconcileActions(scope, secrets_, deps_.state, *this));
    }
  }

  // detail::ActionsApi: the admin's calls, the pool.
  Task<Result<PeerResponse>> adminCall(const std::string& method, const std::string& path,
                                       const std::optional<json>& body) override {
    co_return co_await call(method, path, body, admin_);
  }

 private:
  std::vector<config::ResourceKey> allKeys() const {
    std::vector<config::ResourceKey> keys;
    if (f_.admin) keys.push_back({Kind::forgejo, "admin/" + f_.admin->username});
    for (const auto& [org, _] : f_.orgs) keys.push_back({Kind::forgejo, "org/" + org});
    for (const auto& [repo, _] : f_.repos) keys.push_back({Kind::forgejo, "repo/" + repo});
    if (f_.runnerTokenVaultPath) keys.push_back({Kind::forgejo, "runner-token"});
    for (const auto& [repo, _] : f_.webhooks) keys.push_back({Kind::forgejo, "webhook/" + repo});
    for (const auto& [org, _] : f_.orgActions) keys.push_back(detail::actionsKey("org/" + org));
    for (const auto& [repo, o] : f_.repoOptions) {
      if (!o.actions.empty()) keys.push_back(detail::actionsKey("repo/" + repo));
    }
    if (keys.empty()) keys.push_back({Kind::forgejo, ""});
    return keys;
  }

  // --- plumbing --------------------------------------------------------------

  // Runs blocking `work` through Deps::offload (inline when none is given).
  Task<void> offload(std::function<void()> work) override {
    if (deps_.offload) {
      co_await deps_.offload(std::move(work));
    } else {
      work();
    }
  }

  Task<Result<PeerResponse>> call(std::string method, std::string path,
                                  const std::optional<json>& body, const Auth& auth) {
    PeerRequest req;
    req.method = method;
    req.url = base_ + "/api/v1" + path;
    req.timeout = options_.httpTimeout;
    req.headers.emplace_back("Accept", "application/json");
    if (body) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body->dump();
    }
    if (auth.kind == Auth::Kind::basic) {
      req.basicAuth = transport::BasicAuth{auth.user, auth.secret};
    } else if (auth.kind == Auth::Kind::token) {
      req.headers.emplace_back("Authorization", "token " + auth.secret);
    }
    state::WipeOnExit wipeBody{req.body};  // may carry a password or a hook secret
    Result<PeerResponse> out;
    const HttpFn* http = &deps_.http;
    const PeerRequest* reqp = &req;
    Result<PeerResponse>* outp = &out;
    std::function<void()> work = [http, reqp, outp] { *outp = (*http)(*reqp); };
    co_await offload(std::move(work));
    ++report_.httpRequests;
    if (req.basicAuth)
      sodium_memzero(req.basicAuth->password.data(), req.basicAuth->password.size());
    for (auto& [name, value] : req.headers) {
      if (name == "Authorization") sodium_memzero(value.data(), value.size());
    }
    co_return out;
  }

  // "METHOD /path: 404 (message)": the API's own message, bounded.
  static std::string httpError(const std::string& what, const PeerResponse& r) {
    std::string msg;
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) {
      msg = j["message"].get<std::string>();
    }
    if (msg.size() > 200) msg = msg.substr(0, 200) + "...";
    return what + ": HTTP " + std::to_string(r.status) + (msg.empty() ? "" : " (" + msg + ")");
  }

  Task<Result<docker::ExecResult>> exec(std::vector<std::string> args) {
    docker::ExecOptions eo;
    eo.user = options_.execUser;
    eo.timeout = options_.execTimeout;
    eo.maxOutput = std::size_t{1} << 20;
    std::vector<std::string> argv;
    argv.push_back(options_.binary);
    for (auto& a : args) argv.push_back(std::move(a));
    ++report_.execs;
    co_return co_await deps_.docker->exec(f_.container, argv, eo);
  }

  template <typename T>
  Task<Result<T>> onState(std::function<Result<T>(StateAccess&)> fn) {
    if (!deps_.state) co_return Error::make(ErrorCode::unavailable, "no state to remember it in");
    Result<T> out;
    StateAccess* st = deps_.state;
    Result<T>* outp = &out;
    const std::function<Result<T>(StateAccess&)>* fnp = &fn;
    std::function<void()> work = [st, outp, fnp] { *outp = (*fnp)(*st); };
    co_await offload(std::move(work));
    co_return out;
  }

  Task<Status> onStateStatus(std::function<Status(StateAccess&)> fn) {
    std::function<Result<bool>(StateAccess&)> wrapped = [&fn](StateAccess& s) -> Result<bool> {
      auto st = fn(s);
      if (!st) return st.error();
      return true;
    };
    auto r = co_await onState<bool>(std::move(wrapped));
    if (!r) co_return r.error();
    co_return Status::success();
  }

  // Waits for the container and the API. An `unavailable` error means "not
  // ready yet" (blocked); anything else failed.
  Task<Status> waitReady() {
    if (!deps_.docker) co_return Error::make(ErrorCode::internal, "no Docker client");
    const auto deadline = Clock::now() + options_.waitReady;
    std::string why;
    for (;;) {
      auto inspected = co_await deps_.docker->inspectContainer(f_.container);
      if (!inspected && inspected.error().code != ErrorCode::not_found &&
          inspected.error().code != ErrorCode::unavailable) {
        co_return inspected.error();
      }
      if (auto notReady = docker::hostNotReady(f_.container, inspected)) {
        why = std::move(*notReady);
      } else {
        const std::optional<json> none;
        const Auth anonymous;
        auto r = co_await call("GET", "/version", none, anonymous);
        if (r && r->status == 200) co_return Status::success();
        why = r ? httpError("Forgejo at " + base_ + " GET /api/v1/version", *r)
                : "Forgejo at " + base_ + " does not answer: " + r.error().message;
      }
      if (Clock::now() + options_.pollInterval >= deadline) {
        co_return Error::make(ErrorCode::unavailable, "waiting: " + why);
      }
      co_await sleepFor(options_.pollInterval);
    }
  }

  // --- the admin -------------------------------------------------------------

  Task<StepOutcome> reconcileAdmin() {
    const auto& a = *f_.admin;
    const config::ResourceKey key{Kind::forgejo, "admin/" + a.username};
    const std::optional<json> none;
    auto me = co_await call("GET", "/user", none, admin_);
    if (!me) co_return outcome(key, false, "GET /api/v1/user: " + me.error().message);
    if (me->status == 200) {
      auto j = json::parse(me->body, nullptr, false);
      if (!j.is_object()) co_return outcome(key, false, "GET /api/v1/user: not a JSON object");
      const bool isAdmin = j.value("is_admin", false);
      const std::string email = j.value("email", "");
      if (isAdmin && email == a.email) co_return outcome(key, true, "");
      if (isAdmin) {
        // The admin may edit itself: only the email moved.
        json body = {{"login_name", a.username}, {"source_id", 0}, {"email", a.email}};
        std::optional<json> b = std::move(body);
        auto r = co_await call("PATCH", "/admin/users/" + enc(a.username), b, admin_);
        if (!r) co_return outcome(key, false, "setting the admin's email: " + r.error().message);
        if (!r->ok()) co_return outcome(key, false, httpError("setting the admin's email", *r));
        co_return changedOutcome(key, true, "email set back to the spec's");
      }
    } else if (me->status != 401 && me->status != 403) {
      co_return outcome(key, false, httpError("GET /api/v1/user", *me));
    }
    // Refused, or not an admin: create or repair through a short-lived token.
    co_return co_await repairAdmin(key);
  }

  Task<StepOutcome> repairAdmin(const config::ResourceKey& key) {
    const auto& a = *f_.admin;
    const std::string tokenName = kTokenPrefix + randomHex(6);
    auto gen = [&]() -> std::vector<std::string> {
      return {
          "admin",   "user",     "generate-access-token", "--username", a.username, "--token-name",
          tokenName, "--scopes", "write:admin",           "--raw"};
    };
    bool existed = true;
    auto t = co_await exec(gen());
    if (!t) co_return outcome(key, false, "docker exec: " + t.error().message);
    std::string genError;
    if (t->exitCode != 0) {
      genError = cliError(*t);
      // Most likely the user does not exist: create it with a throwaway
      // random password (printed on stdout, dropped), then ask again.
      std::vector<std::string> create = {
          "admin",   "user",  "create",  "--username",        a.username,
          "--email", a.email, "--admin", "--random-password", "--must-change-password=false"};
      auto c = co_await exec(std::move(create));
      if (!c) co_return outcome(key, false, "docker exec: " + c.error().message);
      sodium_memzero(c->stdoutText.data(), c->stdoutText.size());
      if (c->exitCode != 0) {
        co_return outcome(key, false,
                          "creating admin " + a.username + " failed (" + cliError(*c) +
                              "); an access token for it could not be "
                              "made either (" +
                              genError + ")");
      }
      existed = false;
      t = co_await exec(gen());
      if (!t) co_return outcome(key, false, "docker exec: " + t.error().message);
      if (t->exitCode != 0) {
        co_return outcome(key, false,
                          "an access token for the new admin " + a.username +
                              " could not be made (" + cliError(*t) + ")");
      }
    }
    Auth token;
    token.kind = Auth::Kind::token;
    token.secret = lastLine(t->stdoutText);
    sodium_memzero(t->stdoutText.data(), t->stdoutText.size());
    state::WipeOnExit wipeToken{token.secret};
    if (!isToken(token.secret)) {
      co_return outcome(key, false, "generate-access-token printed no token");
    }

    // The real password goes in a request body, never in argv.
    json body = {{"login_name", a.username},
                 {"source_id", 0},
                 {"email", a.email},
                 {"password", admin_.secret},
                 {"must_change_password", false},
                 {"admin", true},
                 {"active", true},
                 {"prohibit_login", false}};
    std::optional<json> b = std::move(body);
    auto r = co_await call("PATCH", "/admin/users/" + enc(a.username), b, token);
    if (b) {
      auto& pw = (*b)["password"].get_ref<std::string&>();
      sodium_memzero(pw.data(), pw.size());
    }
    if (!r) co_return outcome(key, false, "setting the admin's password: " + r.error().message);
    if (!r->ok()) co_return outcome(key, false, httpError("setting the admin's password", *r));

    // Every bootstrap token (this one, and any a crash left) is deleted with
    // the admin's own basic auth, which also proves the password now works.
    auto cleaned = co_await deleteBootstrapTokens();
    if (!cleaned) co_return outcome(key, false, cleaned.error().message);
    co_return existed ? changedOutcome(key, true, "password and admin flag set back to the spec's")
                      : changedOutcome(key, false, "created");
  }

  Task<Status> deleteBootstrapTokens() {
    const auto& user = f_.admin->username;
    const std::optional<json> none;
    auto list = co_await call("GET", "/users/" + enc(user) + "/tokens?limit=50", none, admin_);
    if (!list)
      co_return Error::make(list.error().code,
                            "listing the admin's tokens: " + list.error().message);
    if (!list->ok())
      co_return Error::make(ErrorCode::peer,
                            httpError("listing the admin's tokens with its password", *list));
    auto j = json::parse(list->body, nullptr, false);
    if (!j.is_array())
      co_return Error::make(ErrorCode::protocol, "listing the admin's tokens: not a JSON array");
    for (const auto& t : j) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
      const auto name = t["name"].get<std::string>();
      if (name.rfind(kTokenPrefix, 0) != 0) continue;
      auto del =
          co_await call("DELETE", "/users/" + enc(user) + "/tokens/" + enc(name), none, admin_);
      if (!del)
        co_return Error::make(del.error().code,
                              "deleting token " + name + ": " + del.error().message);
      if (!del->ok() && del->status != 404)
        co_return Error::make(ErrorCode::peer, httpError("deleting token " + name, *del));
    }
    co_return Status::success();
  }

  // --- organisations and repositories -----------------------------------------

  Task<StepOutcome> reconcileOrg(const std::string& org) {
    const config::ResourceKey key{Kind::forgejo, "org/" + org};
    const std::optional<json> none;
    auto r = co_await call("GET", "/orgs/" + enc(org), none, admin_);
    if (!r) co_return outcome(key, false, "GET organisation " + org + ": " + r.error().message);
    if (r->status == 200) co_return outcome(key, true, "");
    if (r->status != 404) co_return outcome(key, false, httpError("GET organisation " + org, *r));
    json body = {{"username", org}, {"visibility", "public"}};
    std::optional<json> b = std::move(body);
    auto c = co_await call("POST", "/orgs", b, admin_);
    if (!c)
      co_return outcome(key, false, "creating organisation " + org + ": " + c.error().message);
    if (!c->ok()) co_return outcome(key, false, httpError("creating organisation " + org, *c));
    co_return changedOutcome(key, false, "created");
  }

  Task<StepOutcome> reconcileRepo(const std::string& repo) {
    const config::ResourceKey key{Kind::forgejo, "repo/" + repo};
    const auto [owner, name] = splitRepo(repo);
    config::ForgejoRepo want;
    if (auto it = f_.repoOptions.find(repo); it != f_.repoOptions.end()) want = it->second;
    const std::optional<json> none;
    const std::string path = "/repos/" + enc(owner) + "/" + enc(name);
    auto r = co_await call("GET", path, none, admin_);
    if (!r) co_return outcome(key, false, "GET repository " + repo + ": " + r.error().message);
    if (r->status == 200) {
      auto j = json::parse(r->body, nullptr, false);
      if (!j.is_object())
        co_return outcome(key, false, "GET repository " + repo + ": not a JSON object");
      const bool isPrivate = j.value("private", false);
      const std::string description = j.value("description", "");
      if (isPrivate == want.isPrivate && description == want.description) {
        co_return outcome(key, true, "");
      }
      json body = {{"private", want.isPrivate}, {"description", want.description}};
      std::optional<json> b = std::move(body);
      auto p = co_await call("PATCH", path, b, admin_);
      if (!p)
        co_return outcome(key, false, "updating repository " + repo + ": " + p.error().message);
      if (!p->ok()) co_return outcome(key, false, httpError("updating repository " + repo, *p));
      co_return changedOutcome(key, true, "private/description set back to the spec's");
    }
    if (r->status != 404) co_return outcome(key, false, httpError("GET repository " + repo, *r));

    // Where to create it: under an organisation, the admin itself, or
    // another user (admin API).
    std::string createPath;
    if (owner == f_.admin->username) {
      createPath = "/user/repos";
    } else {
      bool isOrg = f_.orgs.count(owner) > 0;
      if (!isOrg) {
        auto o = co_await call("GET", "/orgs/" + enc(owner), none, admin_);
        if (!o)
          co_return outcome(key, false, "GET organisation " + owner + ": " + o.error().message);
        isOrg = o->status == 200;
      }
      createPath =
          isOrg ? "/orgs/" + enc(owner) + "/repos" : "/admin/users/" + enc(owner) + "/repos";
    }
    json body = {{"name", name},
                 {"private", want.isPrivate},
                 {"description", want.description},
                 {"auto_init", false},
                 {"default_branch", "main"}};
    std::optional<json> b = std::move(body);
    auto c = co_await call("POST", createPath, b, admin_);
    if (!c) co_return outcome(key, false, "creating repository " + repo + ": " + c.error().message);
    if (!c->ok()) co_return outcome(key, false, httpError("creating repository " + repo, *c));
    co_return changedOutcome(key, false, "created");
  }

  // --- the runner registration token -------------------------------------------

  Task<StepOutcome> runnerToken() {
    const config::ResourceKey key{Kind::forgejo, "runner-token"};
    if (!deps_.state) co_return outcome(key, false, "no state to keep the runner token in");
    if (!deps_.writeKv)
      co_return blockedOutcome(key, "no Vault writer: the runner token cannot be stored");
    std::vector<std::string> args = {"actions", "generate-runner-token"};
    auto r = co_await exec(std::move(args));
    if (!r) co_return outcome(key, false, "docker exec: " + r.error().message);
    if (r->exitCode != 0) {
      co_return outcome(key, false, "generate-runner-token failed (" + cliError(*r) + ")");
    }
    std::string token = lastLine(r->stdoutText);
    sodium_memzero(r->stdoutText.data(), r->stdoutText.size());
    state::WipeOnExit wipe{token};
    if (!isToken(token)) co_return outcome(key, false, "generate-runner-token printed no token");

    const std::string* tokenp = &token;
    std::function<Result<std::string>(StateAccess&)> digestFn = [tokenp](StateAccess& s) {
      return s.digestOf(*tokenp);
    };
    auto digest = co_await onState<std::string>(std::move(digestFn));
    if (!digest) co_return outcome(key, false, "runner token digest: " + digest.error().message);
    std::function<Result<std::optional<std::string>>(StateAccess&)> memoFn = [](StateAccess& s) {
      return s.memo(kRunnerTokenMemo);
    };
    auto known = co_await onState<std::optional<std::string>>(std::move(memoFn));
    if (!known) co_return outcome(key, false, "reading the state: " + known.error().message);
    bool restore = false;  // the same token, but Vault lost (or changed) its copy
    if (*known && **known == *digest) {
      if (!deps_.readKv) co_return outcome(key, true, "");
      Result<std::optional<std::string>> live = std::optional<std::string>();
      const KvReader* kvr = &deps_.readKv;
      const std::string* pathp = &*f_.runnerTokenVaultPath;
      auto* livep = &live;
      std::function<void()> read = [kvr, pathp, livep] { *livep = (*kvr)(*pathp, "token"); };
      co_await offload(std::move(read));
      if (!live) {
        co_return outcome(key, false, "reading the runner token back from Vault at " + *pathp +
                                          ": " + live.error().message);
      }
      const bool same = *live && (*live)->size() == token.size() &&
                        sodium_memcmp((*live)->data(), token.data(), token.size()) == 0;
      if (*live) sodium_memzero((*live)->data(), (*live)->size());
      if (same) co_return outcome(key, true, "");
      restore = true;
    }

    // New (or first, or lost by Vault): Vault first, then the state, then the
    // memo that says both are done.
    Status written;
    const KvWriter* kv = &deps_.writeKv;
    const std::string* pathp = &*f_.runnerTokenVaultPath;
    Status* writtenp = &written;
    std::function<void()> write = [kv, pathp, tokenp, writtenp] {
      json data = {{"token", *tokenp}};
      *writtenp = (*kv)(*pathp, data);
      auto& t = data["token"].get_ref<std::string&>();
      sodium_memzero(t.data(), t.size());
    };
    co_await offload(std::move(write));
    if (!written) {
      co_return outcome(
          key, false,
          "writing the runner token to Vault at " + *pathp + ": " + written.error().message);
    }
    // Restored: the state already holds this token and its memo.
    if (restore) co_return changedOutcome(key, true, "written again to Vault at " + *pathp);
    std::function<Status(StateAccess&)> store = [tokenp](StateAccess& s) {
      return s.storeRunnerToken(*tokenp);
    };
    auto stored = co_await onStateStatus(std::move(store));
    if (!stored)
      co_return outcome(key, false,
                        "sealing the runner token in the state: " + stored.error().message);
    const std::string* digestp = &*digest;
    std::function<Status(StateAccess&)> remember = [digestp](StateAccess& s) {
      return s.setMemo(kRunnerTokenMemo, *digestp);
    };
    auto memoed = co_await onStateStatus(std::move(remember));
    if (!memoed)
      co_return outcome(key, false, "recording the runner token: " + memoed.error().message);
    co_return changedOutcome(key, false, "stored in Vault at " + *pathp);
  }

  // --- webhooks --------------------------------------------------------------------

  Task<StepOutcome> reconcileWebhook(const config::ForgejoWebhook& hook) {
    const config::ResourceKey key{Kind::forgejo, "webhook/" + hook.repo};
    auto secret = docker::resolveSecrets(hook.secret, secrets_);
    if (!secret) co_return blockedOutcome(key, "locked: the webhook secret is not available");
    state::WipeOnExit wipeSecret{*secret};
    if (!deps_.state) co_return outcome(key, false, "no state to remember the webhook in");

    const std::string* secretp = &*secret;
    std::function<Result<std::string>(StateAccess&)> digestFn = [secretp](StateAccess& s) {
      return s.digestOf(*secretp);
    };
    auto digest = co_await onState<std::string>(std::move(digestFn));
    if (!digest) co_return outcome(key, false, "webhook secret digest: " + digest.error().message);
    const std::string memoName = webhookMemo(hook.repo);
    const std::string* memoNamep = &memoName;
    std::function<Result<std::optional<std::string>>(StateAccess&)> memoFn =
        [memoNamep](StateAccess& s) { return s.memo(*memoNamep); };
    auto memo = co_await onState<std::optional<std::string>>(std::move(memoFn));
    if (!memo) co_return outcome(key, false, "reading the state: " + memo.error().message);
    std::int64_t knownId = 0;
    std::string knownDigest;
    if (*memo) {
      auto m = json::parse(**memo, nullptr, false);
      if (m.is_object()) {
        knownId = m.value("id", std::int64_t{0});
        knownDigest = m.value("digest", "");
      }
    }

    const auto [owner, name] = splitRepo(hook.repo);
    const std::string hooksPath = "/repos/" + enc(owner) + "/" + enc(name) + "/hooks";
    const std::optional<json> none;
    auto list = co_await call("GET", hooksPath + "?limit=50", none, admin_);
    if (!list)
      co_return outcome(key, false,
                        "listing the hooks of " + hook.repo + ": " + list.error().message);
    if (!list->ok())
      co_return outcome(key, false, httpError("listing the hooks of " + hook.repo, *list));
    auto hooks = json::parse(list->body, nullptr, false);
    if (!hooks.is_array())
      co_return outcome(key, false, "listing the hooks of " + hook.repo + ": not a JSON array");

    const json* live = nullptr;
    for (const auto& h : hooks) {  // the one recorded, first
      if (h.is_object() && knownId != 0 && h.value("id", std::int64_t{0}) == knownId) live = &h;
    }
    if (!live) {
      for (const auto& h : hooks) {
        if (!h.is_object() || !h.contains("config") || !h["config"].is_object()) continue;
        if (h["config"].value("url", "") == hook.url) {
          live = &h;
          break;
        }
      }
    }

    json config = {{"url", hook.url},
                   {"content_type", kHookContentType},
                   {"http_method", "post"},
                   {"secret", *secret}};
    json events = json::array({"push", "pull_request"});
    std::int64_t id = 0;
    bool drift = false;
    std::string what;
    if (live) {
      id = live->value("id", std::int64_t{0});
      std::vector<std::string> moved;
      const json cfg = live->contains("config") && (*live)["config"].is_object() ? (*live)["config"]
                                                                                 : json::object();
      if (cfg.value("url", "") != hook.url) moved.push_back("url");
      if (cfg.value("content_type", "") != kHookContentType) moved.push_back("content type");
      if (!hookEventsCovered(*live)) moved.push_back("events");
      if (!live->value("active", false)) moved.push_back("active");
      const bool secretChanged = knownDigest != *digest || knownId != id;
      if (moved.empty() && !secretChanged) co_return outcome(key, true, "");
      drift = !moved.empty();
      for (const auto& m : moved) what += (what.empty() ? "" : ", ") + m;
      if (!drift) what = *memo ? "secret updated" : "secret set";
      json body = {{"config", config}, {"events", events}, {"active", true}};
      std::optional<json> b = std::move(body);
      auto p = co_await call("PATCH", hooksPath + "/" + std::to_string(id), b, admin_);
      auto& s = (*b)["config"]["secret"].get_ref<std::string&>();
      sodium_memzero(s.data(), s.size());
      if (!p)
        co_return outcome(key, false,
                          "updating the hook of " + hook.repo + ": " + p.error().message);
      if (!p->ok())
        co_return outcome(key, false, httpError("updating the hook of " + hook.repo, *p));
      if (drift) what += " set back to the spec's";
    } else {
      json body = {{"type", kHookType},
                   {"config", config},
                   {"events", events},
                   {"branch_filter", "*"},
                   {"active", true}};
      std::optional<json> b = std::move(body);
      auto c = co_await call("POST", hooksPath, b, admin_);
      auto& s = (*b)["config"]["secret"].get_ref<std::string&>();
      sodium_memzero(s.data(), s.size());
      if (!c)
        co_return outcome(key, false,
                          "creating the hook of " + hook.repo + ": " + c.error().message);
      if (!c->ok())
        co_return outcome(key, false, httpError("creating the hook of " + hook.repo, *c));
      auto created = json::parse(c->body, nullptr, false);
      id = created.is_object() ? created.value("id", std::int64_t{0}) : 0;
      if (id == 0)
        co_return outcome(key, false,
                          "creating the hook of " + hook.repo + ": no id in the answer");
      drift = knownId != 0;  // it existed and was deleted behind our back
      what = drift ? "recreated (it had been deleted)" : "created";
    }
    auto& cs = config["secret"].get_ref<std::string&>();
    sodium_memzero(cs.data(), cs.size());

    const std::string record = json{{"id", id}, {"digest", *digest}}.dump();
    const std::string* recordp = &record;
    std::function<Status(StateAccess&)> remember = [memoNamep, recordp](StateAccess& s) {
      return s.setMemo(*memoNamep, *recordp);
    };
    auto memoed = co_await onStateStatus(std::move(remember));
    if (!memoed) co_return outcome(key, false, "recording the hook: " + memoed.error().message);
    co_return changedOutcome(key, drift, what);
  }

  const config::ForgejoSpec& f_;
  const docker::SecretResolver& secrets_;
  const Deps& deps_;
  const Options& options_;
  Report& report_;
  std::string base_;
  Auth admin_;
};

}  // namespace

std::string webhookMemo(const std::string& repo) {
  return "webhook/" + repo;
}

boost::asio::awaitable<Report> reconcile(const config::Spec& spec,
                                         const docker::SecretResolver& secrets, const Deps& deps,
                                         const Options& options) {
  Report report;
  if (!spec.forgejo) co_return report;
  Bootstrap b(*spec.forgejo, secrets, deps, options, report);
  co_await b.run();
  co_return report;
}

}  // namespace foundationd::forgejo
