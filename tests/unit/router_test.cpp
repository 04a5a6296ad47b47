// The API's route table through plain Router::handle() calls with a fake
// daemon: no socket (STYLE.md "a handler is a plain function").
#include "api/router.hpp"

#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "api/errors.hpp"
#include "api/handlers.hpp"
#include "api/secret_json.hpp"
#include "fakes/fake_daemon.hpp"
#include "fakes/run.hpp"

namespace api = foundationd::api;
using api::PeerKind;
using api::Request;
using api::Response;
using foundationd::Error;
using foundationd::ErrorCode;
using foundationd::testing::FakeDaemon;
using nlohmann::json;

namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";
const std::string kSecret = "s3cr3t-passphrase-XYZZY";

struct Fixture {
  FakeDaemon daemon;
  api::ApiToken token = api::ApiToken::fromString(kToken);
  api::Metrics metrics;
  std::vector<std::string> logs;
  api::Router router{
      daemon, token, metrics,
      [this](api::LogLevel, const std::string& event, const std::vector<api::LogField>& fields) {
        std::string line = event;
        for (const auto& [k, v] : fields) line += " " + k + "=" + v;
        logs.push_back(line);
      }};

  Response call(std::string method, std::string target, std::string body = {},
                PeerKind peer = PeerKind::unix_socket, std::string authorization = {}) {
    Request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.peer = peer;
    if (!authorization.empty()) req.headers.emplace_back("Authorization", authorization);
    return foundationd::testing::run(router.handle(req));
  }
  Response authed(std::string method, std::string target, std::string body = {}) {
    return call(std::move(method), std::move(target), std::move(body), PeerKind::unix_socket,
                "Bearer " + kToken);
  }
};

std::string errorCode(const Response& r) {
  return json::parse(r.body).at("error").at("code");
}

api::TimePoint at(long long unixSeconds) {
  return api::TimePoint(std::chrono::seconds(unixSeconds));
}

}  // namespace

TEST_CASE("the route table lists every endpoint of INTERFACES.md with its auth") {
  struct Want {
    const char* method;
    const char* path;
    api::AuthKind auth;
  };
  const std::vector<Want> want = {
      {"GET", "/healthz", api::AuthKind::none},
      {"GET", "/readyz", api::AuthKind::none},
      {"GET", "/metrics", api::AuthKind::none},
      {"GET", "/v1/status", api::AuthKind::none_on_local},
      {"POST", "/v1/unseal", api::AuthKind::none},
      {"POST", "/v1/seal", api::AuthKind::bearer},
      {"POST", "/v1/reconcile", api::AuthKind::bearer},
      {"GET", "/v1/plan", api::AuthKind::bearer},
      {"GET", "/v1/events", api::AuthKind::bearer},
      {"POST", "/v1/rotate", api::AuthKind::bearer},
      {"POST", "/v1/secrets", api::AuthKind::bearer},
      {"POST", "/v1/hooks/forgejo", api::AuthKind::hmac},
  };
  CHECK(api::routeTable().size() == want.size());
  for (const Want& w : want) {
    CAPTURE(w.path);
    const api::Route* r = api::Router::find(w.method, w.path);
    REQUIRE(r != nullptr);
    CHECK(std::string(api::authName(r->auth)) == api::authName(w.auth));
    CHECK(r->secretBody ==
          (std::string(w.path) == "/v1/unseal" || std::string(w.path) == "/v1/secrets"));
  }
}

TEST_CASE("GET /healthz answers 200 from anywhere") {
  Fixture f;
  const Response r = f.call("GET", "/healthz", {}, PeerKind::remote);
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  CHECK(json::parse(r.body) == json{{"status", "ok"}});
}

TEST_CASE("GET /readyz: 503 with the reason until unlocked and converged") {
  Fixture f;
  Response r = f.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(errorCode(r) == "not_ready");
  CHECK(r.body.find("locked") != std::string::npos);

  f.daemon.snapshot.locked = false;
  r = f.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body.find("no reconcile has finished") != std::string::npos);

  f.daemon.snapshot.lastReconcile.end = at(1700000000);
  f.daemon.snapshot.lastReconcile.result = "failed";
  r = f.call("GET", "/readyz");
  CHECK(r.status == 503);
  CHECK(r.body.find("result: failed") != std::string::npos);

  f.daemon.snapshot.lastReconcile.converged = true;
  f.daemon.snapshot.lastReconcile.result = "converged";
  r = f.call("GET", "/readyz");
  CHECK(r.status == 200);
  CHECK(json::parse(r.body) == json{{"ready", true}});
}

TEST_CASE("GET /v1/status: the snapshot as JSON") {
  Fixture f;
  auto& s = f.daemon.snapshot;
  s.locked = false;
  s.vault = {true, true, false};
  s.spec = {"file:/srv/foundation/foundation.toml", "3f2a1c9", "3f2a1c9", "", {}, "", "", "", "", ""};
  s.lastReconcile.start = at(1700000000);
  s.lastReconcile.end = api::TimePoint(std::chrono::milliseconds(1700000001250));
  s.lastReconcile.result = "converged";
  s.lastReconcile.converged = true;
  s.resources.push_back({"container", "web", api::ResourceStatus::converged, "", at(1700000000)});
  s.resources.push_back({"volume", "data", api::ResourceStatus::blocked, "waits for vault", {}});

  const Response r = f.call("GET", "/v1/status");
  REQUIRE(r.status == 200);
  const json j = json::parse(r.body);
  CHECK(j["locked"] == false);
  CHECK(j["vault"] == json{{"present", true}, {"initialized", true}, {"sealed", false}});
  CHECK(j["spec"]["source"] == "file:/srv/foundation/foundation.toml");
  CHECK(j["spec"]["applied_revision"] == "3f2a1c9");
  CHECK(j["spec"]["last_error"].is_null());
  CHECK(j["last_reconcile"]["start"] == "2023-11-14T22:13:20.000Z");
  CHECK(j["last_reconcile"]["end"] == "2023-11-14T22:13:21.250Z");
  CHECK(j["last_reconcile"]["result"] == "converged");
  CHECK(j["last_reconcile"]["converged"] == true);
  CHECK(j["last_reconcile"]["running"] == false);
  CHECK(j["last_reconcile"]["running_since"].is_null());
  CHECK(j["spec"]["warnings"].is_null());
  REQUIRE(j["resources"].size() == 2);
  CHECK(j["resources"][0] == json{{"kind", "container"},
                                  {"name", "web"},
                                  {"status", "converged"},
                                  {"reason", nullptr},
                                  {"last_transition", "2023-11-14T22:13:20.000Z"}});
  CHECK(j["resources"][1]["status"] == "blocked");
  CHECK(j["resources"][1]["reason"] == "waits for vault");
  CHECK(j["resources"][1]["last_transition"].is_null());
  CHECK(j["summary"]["total"] == 2);
  CHECK(j["summary"]["blocked"] == 1);
  CHECK(j["summary"]["drifted"] == 0);
}

TEST_CASE("GET /v1/status is open on the Unix socket and loopback, needs the token remotely") {
  Fixture f;
  CHECK(f.call("GET", "/v1/status", {}, PeerKind::unix_socket).status == 200);
  CHECK(f.call("GET", "/v1/status", {}, PeerKind::loopback).status == 200);
  const Response denied = f.call("GET", "/v1/status", {}, PeerKind::remote);
  CHECK(denied.status == 401);
  CHECK(errorCode(denied) == "unauthorized");
  CHECK(denied.header("WWW-Authenticate") == "Bearer realm=\"foundationd\"");
  CHECK(f.call("GET", "/v1/status", {}, PeerKind::remote, "Bearer wrong").status == 401);
  CHECK(f.call("GET", "/v1/status", {}, PeerKind::remote, "Bearer " + kToken).status == 200);
}

TEST_CASE("bearer endpoints: missing, malformed and wrong tokens get 401, the right one passes") {
  Fixture f;
  for (const char* target : {"/v1/seal", "/v1/reconcile"}) {
    CAPTURE(target);
    CHECK(f.call("POST", target).status == 401);  // even on the Unix socket
    CHECK(f.call("POST", target, {}, PeerKind::unix_socket, "Basic " + kToken).status == 401);
    CHECK(f.call("POST", target, {}, PeerKind::unix_socket, "Bearer").status == 401);
    CHECK(f.call("POST", target, {}, PeerKind::unix_socket, "Bearer " + kToken + "x").status ==
          401);
    CHECK(f.call("POST", target, {}, PeerKind::unix_socket,
                 "Bearer " + kToken.substr(0, kToken.size() - 1) + "0")
              .status == 401);
  }
  CHECK(f.daemon.sealCalls == 0);
  CHECK(f.daemon.reconcileCalls == 0);
  for (const char* target : {"/v1/plan", "/v1/events"}) {
    CAPTURE(target);
    CHECK(f.call("GET", target, {}, PeerKind::loopback).status == 401);
  }
  // The scheme is case-insensitive; surrounding blanks are ignored.
  CHECK(f.call("POST", "/v1/seal", {}, PeerKind::loopback, "bearer  " + kToken + " ").status == 200);
  CHECK(f.daemon.sealCalls == 1);
  // Nothing about the token reaches a response or the log.
  const Response r = f.call("POST", "/v1/reconcile", {}, PeerKind::remote, "Bearer " + kToken + "x");
  CHECK(r.body.find(kToken) == std::string::npos);
  for (const std::string& line : f.logs) CHECK(line.find(kToken) == std::string::npos);
}

TEST_CASE("unknown paths get 404, known paths with another method 405 with Allow") {
  Fixture f;
  Response r = f.call("GET", "/v2/status");
  CHECK(r.status == 404);
  CHECK(errorCode(r) == "not_found");
  CHECK(f.call("GET", "/v1/status/").status == 404);
  CHECK(f.call("GET", "/").status == 404);

  r = f.call("POST", "/healthz");
  CHECK(r.status == 405);
  CHECK(errorCode(r) == "method_not_allowed");
  CHECK(r.header("Allow") == "GET");
  r = f.call("GET", "/v1/unseal");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "POST");
  CHECK(f.call("DELETE", "/v1/seal", {}, PeerKind::unix_socket, "Bearer " + kToken).status == 405);

  // The query string does not take part in routing.
  CHECK(f.call("GET", "/healthz?verbose=1").status == 200);
}

TEST_CASE("POST /v1/unseal: the outcomes and their statuses") {
  Fixture f;
  SUBCASE("right passphrase: 200, the daemon got it intact") {
    const Response r =
        f.call("POST", "/v1/unseal", json{{"passphrase", f.daemon.passphrase}}.dump());
    CHECK(r.status == 200);
    CHECK(json::parse(r.body) == json{{"locked", false}, {"vault_unsealed", false}});
    CHECK(f.daemon.lastPassphrase == f.daemon.passphrase);
  }
  SUBCASE("unicode and escapes reach the daemon decoded") {
    f.daemon.passphrase = "päss \"quoted\" \\ word";
    const Response r =
        f.call("POST", "/v1/unseal", json{{"passphrase", f.daemon.passphrase}}.dump());
    CHECK(r.status == 200);
  }
  SUBCASE("wrong passphrase: 403 wrong_passphrase") {
    const Response r = f.call("POST", "/v1/unseal", R"({"passphrase": "nope"})");
    CHECK(r.status == 403);
    CHECK(errorCode(r) == "wrong_passphrase");
  }
  SUBCASE("rate limited: 429 with Retry-After") {
    f.daemon.retryAfter = std::chrono::seconds(30);
    const Response r = f.call("POST", "/v1/unseal", R"({"passphrase": "nope"})");
    CHECK(r.status == 429);
    CHECK(errorCode(r) == "rate_limited");
    CHECK(r.header("Retry-After") == "30");
  }
  SUBCASE("a zero delay still says Retry-After: 1") {
    api::UnsealResult u;
    u.outcome = api::UnsealOutcome::rate_limited;
    f.daemon.unsealOverride = u;
    const Response r = f.call("POST", "/v1/unseal", R"({"passphrase": "x"})");
    CHECK(r.status == 429);
    CHECK(r.header("Retry-After") == "1");
  }
  SUBCASE("not initialised: 409 not_initialized") {
    api::UnsealResult u;
    u.outcome = api::UnsealOutcome::not_initialized;
    f.daemon.unsealOverride = u;
    const Response r = f.call("POST", "/v1/unseal", R"({"passphrase": "x"})");
    CHECK(r.status == 409);
    CHECK(errorCode(r) == "not_initialized");
    CHECK(r.body.find("foundationd init") != std::string::npos);
  }
  SUBCASE("failed: the daemon's error, mapped") {
    api::UnsealResult u;
    u.outcome = api::UnsealOutcome::failed;
    u.error = Error::make(ErrorCode::unavailable, "vault is not reachable at http://vault:8200");
    f.daemon.unsealOverride = u;
    const Response r = f.call("POST", "/v1/unseal", R"({"passphrase": "x"})");
    CHECK(r.status == 503);
    CHECK(errorCode(r) == "unavailable");
    CHECK(json::parse(r.body)["error"]["message"] == "vault is not reachable at http://vault:8200");
  }
  SUBCASE("failed without an error: 500 internal") {
    api::UnsealResult u;
    u.outcome = api::UnsealOutcome::failed;
    f.daemon.unsealOverride = u;
    CHECK(f.call("POST", "/v1/unseal", R"({"passphrase": "x"})").status == 500);
  }
}

TEST_CASE("POST /v1/unseal: bad bodies get 400 malformed_json and never reach the daemon") {
  Fixture f;
  const std::vector<std::string> bodies = {
      "",
      "{",
      R"({"passphrase": "unterminated)",
      R"({"passphrase": 42})",
      R"({"passphrase": ""})",
      R"({"other": "x"})",
      R"(["passphrase", "x"])",
      "\"just a string\"",
      "{\"passphrase\": \"x\"} trailing",
      std::string("{\"passphrase\": \"a") + '\0' + "b\"}",
      // A number beyond a double (nlohmann's out_of_range, not a parse
      // error: found by fuzz_unseal; it was a 500).
      R"({"passphrase": "open sesame", "n": 1E999999})",
      "6666666666666660000001E2591081emory_byte}",
  };
  for (const std::string& body : bodies) {
    CAPTURE(body);
    const Response r = f.call("POST", "/v1/unseal", body);
    CHECK(r.status == 400);
    CHECK(errorCode(r) == "malformed_json");
  }
  CHECK(f.daemon.unsealCalls == 0);

  // Syntax errors are located.
  Response r = f.call("POST", "/v1/unseal", "{\n  \"passphrase\" \"x\"\n}");
  CHECK(json::parse(r.body)["error"]["message"] ==
        "malformed JSON body: parse error at line 2, column 18: syntax error while parsing "
        "object separator - unexpected string literal; expected ':'");
  r = f.call("POST", "/v1/unseal", "");
  CHECK(json::parse(r.body)["error"]["message"].get<std::string>().find("line 1, column 1") !=
        std::string::npos);
}

TEST_CASE("no response and no log line ever contains the passphrase") {
  Fixture f;
  f.daemon.passphrase = kSecret;
  const std::vector<std::string> bodies = {
      json{{"passphrase", kSecret}}.dump(),
      json{{"passphrase", kSecret + "-wrong"}}.dump(),
      "{\"passphrase\": \"" + kSecret,                   // unterminated
      "{\"passphrase\": " + kSecret + "}",               // not a string
      "{\"passphrase\": \"" + kSecret + "\u0001\"}",     // raw control character
      "{\"passphrase\": \"" + kSecret + "\"",            // unclosed object
      "{\"passphrase\": \"" + kSecret + "\" \"x\": 1}",  // missing comma
      "{\"passphrase\": \"" + kSecret + "\\uD800\"}",    // lone surrogate
      "{\"passphrase\": [\"" + kSecret + "\"]}",
      "{\"pass\": \"" + kSecret + "\"}",
  };
  auto check = [&](const Response& r) {
    CHECK(r.body.find(kSecret) == std::string::npos);
    CHECK(r.body.find("s3cr3t") == std::string::npos);
    for (const auto& [k, v] : r.headers) CHECK(v.find("s3cr3t") == std::string::npos);
  };
  for (const std::string& body : bodies) {
    CAPTURE(body.size());
    check(f.call("POST", "/v1/unseal", body));
  }
  f.daemon.retryAfter = std::chrono::seconds(5);
  check(f.call("POST", "/v1/unseal", json{{"passphrase", kSecret}}.dump()));
  for (const std::string& line : f.logs) CHECK(line.find("s3cr3t") == std::string::npos);
}

TEST_CASE("POST /v1/seal and /v1/reconcile") {
  Fixture f;
  f.daemon.snapshot.locked = false;
  Response r = f.authed("POST", "/v1/seal");
  CHECK(r.status == 200);
  CHECK(json::parse(r.body) == json{{"locked", true}});
  CHECK(f.daemon.snapshot.locked);

  f.daemon.sealStatus = Error::make(ErrorCode::peer, "vault refused to seal: 500");
  r = f.authed("POST", "/v1/seal");
  CHECK(r.status == 502);
  CHECK(errorCode(r) == "peer");

  r = f.authed("POST", "/v1/reconcile");
  CHECK(r.status == 202);
  CHECK(json::parse(r.body) == json{{"accepted", true}});
  CHECK(f.daemon.reconcileCalls == 1);

  f.daemon.reconcileStatus = Error::make(ErrorCode::unavailable, "shutting down");
  r = f.authed("POST", "/v1/reconcile");
  CHECK(r.status == 503);
  CHECK(errorCode(r) == "unavailable");
}

TEST_CASE("GET /v1/plan") {
  Fixture f;
  f.daemon.planResult = json{{"changes", json::array({json{{"action", "create"}}})}};
  Response r = f.authed("GET", "/v1/plan");
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["changes"][0]["action"] == "create");

  f.daemon.planResult = Error::make(ErrorCode::invalid_argument, "spec.toml:3:1: error: x");
  r = f.authed("GET", "/v1/plan");
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "invalid_argument");
}

TEST_CASE("GET /v1/events?since=ID") {
  Fixture f;
  std::vector<api::AuditEvent> page;
  page.push_back({7, at(1700000000), "unseal.failed", json::object()});
  page.push_back({9, at(1700000060), "reconcile.done", json{{"result", "converged"}}});
  f.daemon.eventsResult = page;

  Response r = f.authed("GET", "/v1/events?since=5&limit=10");
  REQUIRE(r.status == 200);
  CHECK(f.daemon.lastSince == 5);
  CHECK(f.daemon.lastLimit == 10);
  const json j = json::parse(r.body);
  CHECK(j["next"] == 9);
  REQUIRE(j["events"].size() == 2);
  CHECK(j["events"][1] == json{{"id", 9},
                               {"at", "2023-11-14T22:14:20.000Z"},
                               {"event", "reconcile.done"},
                               {"fields", {{"result", "converged"}}}});

  r = f.authed("GET", "/v1/events");
  CHECK(r.status == 200);
  CHECK(f.daemon.lastSince == 0);
  CHECK(f.daemon.lastLimit == 100);

  f.daemon.eventsResult = std::vector<api::AuditEvent>{};
  r = f.authed("GET", "/v1/events?since=42");
  CHECK(json::parse(r.body) == json{{"events", json::array()}, {"next", 42}});

  for (const char* bad : {"since=-1", "since=abc", "since=", "since=1.5", "limit=0", "limit=1001",
                          "since=99999999999999999999"}) {
    CAPTURE(bad);
    r = f.authed("GET", std::string("/v1/events?") + bad);
    CHECK(r.status == 400);
    CHECK(errorCode(r) == "invalid_argument");
  }

  f.daemon.eventsResult = Error::make(ErrorCode::io, "state.db: disk I/O error");
  CHECK(f.authed("GET", "/v1/events").status == 500);
}

TEST_CASE("GET /metrics: Prometheus text with the state gauges derived from the status") {
  Fixture f;
  f.daemon.snapshot.locked = false;
  f.daemon.snapshot.vault = {true, true, false};
  f.daemon.snapshot.spec.revision = "3f2a1c9";
  f.daemon.snapshot.resources.push_back({"container", "web", api::ResourceStatus::drifted, "", {}});
  const Response r = f.call("GET", "/metrics", {}, PeerKind::remote);
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.body.find("\nfoundationd_locked 0\n") != std::string::npos);
  CHECK(r.body.find("\nfoundationd_vault_sealed 0\n") != std::string::npos);
  CHECK(r.body.find("\nfoundationd_resources{kind=\"container\",status=\"drifted\"} 1\n") !=
        std::string::npos);
  CHECK(r.body.find("\nfoundationd_resources{kind=\"container\",status=\"converged\"} 0\n") !=
        std::string::npos);
  CHECK(r.body.find("\nfoundationd_spec_info{revision=\"3f2a1c9\"} 1\n") != std::string::npos);
}

TEST_CASE("a handler that throws gets 500 internal and a log line") {
  Fixture f;
  f.daemon.throwOnStatus = true;
  const Response r = f.call("GET", "/v1/status");
  CHECK(r.status == 500);
  CHECK(errorCode(r) == "internal");
  CHECK(r.body.find("status exploded") == std::string::npos);  // details stay in the log
  REQUIRE(!f.logs.empty());
  CHECK(f.logs.back().find("status exploded") != std::string::npos);
}

TEST_CASE("errors: one mapping to HTTP statuses; daemon codes keep their names") {
  using api::ApiError;
  CHECK(api::httpStatus(ApiError::wrong_passphrase) == 403);
  CHECK(api::httpStatus(ApiError::rate_limited) == 429);
  CHECK(api::httpStatus(ApiError::unauthorized) == 401);
  CHECK(api::httpStatus(ApiError::payload_too_large) == 413);
  CHECK(api::httpStatus(ApiError::method_not_allowed) == 405);
  CHECK(api::httpStatus(ApiError::not_found) == 404);
  CHECK(api::httpStatus(ApiError::malformed_json) == 400);
  CHECK(api::httpStatus(ApiError::not_ready) == 503);
  CHECK(api::httpStatus(ApiError::not_initialized) == 409);
  CHECK(api::httpStatus(ApiError::timeout) == 504);
  for (ErrorCode c :
       {ErrorCode::invalid_argument, ErrorCode::not_found, ErrorCode::conflict,
        ErrorCode::unavailable, ErrorCode::timeout, ErrorCode::protocol, ErrorCode::peer,
        ErrorCode::io, ErrorCode::internal, ErrorCode::wrong_passphrase}) {
    CHECK(std::string(api::codeName(api::fromErrorCode(c))) == foundationd::toString(c));
  }
  const Response r = api::errorResponse(Error::make(ErrorCode::conflict, "exists"));
  CHECK(r.status == 409);
  CHECK(json::parse(r.body) == json{{"error", {{"code", "conflict"}, {"message", "exists"}}}});
}

TEST_CASE("queryParam decodes and finds parameters") {
  CHECK(api::queryParam("a=1&since=42", "since") == std::optional<std::string>("42"));
  CHECK(api::queryParam("since=%34%32", "since") == std::optional<std::string>("42"));
  CHECK(api::queryParam("flag&x=1", "flag") == std::optional<std::string>(""));
  CHECK(!api::queryParam("a=1", "since").has_value());
  CHECK(api::queryParam("a=%zz%4", "a") == std::optional<std::string>("%zz%4"));
}

TEST_CASE("POST /v1/rotate needs the token and a credential name") {
  Fixture f;
  Response r = f.call("POST", "/v1/rotate", R"({"credential":"app"})");
  CHECK(r.status == 401);
  r = f.authed("POST", "/v1/rotate", R"({"cred":"app"})");
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "malformed_json");
  r = f.authed("POST", "/v1/rotate", "not json");
  CHECK(r.status == 400);
  r = f.authed("POST", "/v1/rotate", R"({"credential":"app","n":-1e400})");
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "malformed_json");
  // A daemon that does not rotate (the interface's default) says so.
  r = f.authed("POST", "/v1/rotate", R"({"credential":"app"})");
  CHECK(r.status == 404);
  CHECK(errorCode(r) == "not_found");
}

TEST_CASE("unseal and seal are served on the Unix socket and loopback only") {
  Fixture f;
  const std::string body = json{{"passphrase", f.daemon.passphrase}}.dump();
  Response r = f.call("POST", "/v1/unseal", body, PeerKind::remote);
  CHECK(r.status == 403);
  CHECK(errorCode(r) == "forbidden");
  CHECK(f.daemon.unsealCalls == 0);
  r = f.call("POST", "/v1/seal", {}, PeerKind::remote, "Bearer " + kToken);
  CHECK(r.status == 403);
  CHECK(errorCode(r) == "forbidden");
  CHECK(f.daemon.sealCalls == 0);
  // The daemon learns the peer, which picks the backoff path.
  r = f.call("POST", "/v1/unseal", body, PeerKind::loopback);
  CHECK(r.status == 200);
  CHECK((f.daemon.lastUnsealFrom == PeerKind::loopback));
  r = f.call("POST", "/v1/unseal", body, PeerKind::unix_socket);
  CHECK(r.status == 200);
  CHECK((f.daemon.lastUnsealFrom == PeerKind::unix_socket));
  r = f.call("POST", "/v1/seal", {}, PeerKind::loopback, "Bearer " + kToken);
  CHECK(r.status == 200);
}

TEST_CASE("POST /v1/unseal: a passphrase over the limit is refused, not cut") {
  Fixture f;
  const std::string longest(api::handlers::kMaxPassphraseBytes, 'p');
  f.daemon.passphrase = longest;
  Response r = f.call("POST", "/v1/unseal", json{{"passphrase", longest}}.dump());
  CHECK(r.status == 200);
  CHECK(f.daemon.lastPassphrase.size() == longest.size());
  r = f.call("POST", "/v1/unseal", json{{"passphrase", longest + "q"}}.dump());
  CHECK(r.status == 400);
  CHECK(errorCode(r) == "invalid_argument");
  CHECK(r.body.find("4096") != std::string::npos);
  CHECK(f.daemon.unsealCalls == 1);
}

TEST_CASE("parseUnsealBody: the parser's buffers and the parsed passphrase are zeroed when freed") {
  // A passphrase of 300 bytes passes through the lexer's token buffer (grown
  // by reallocation: 15, 30, 60, ... 480 bytes) and into the parsed value.
  // With api::SecretJson every one of those blocks is zeroed before it is
  // freed; with nlohmann::json (std::string) none would be.
  static_assert(std::is_same_v<api::SecretJson::string_t, foundationd::state::WipingString>);
  const std::string passphrase(300, 'w');
  const std::string body = json{{"passphrase", passphrase}}.dump();
  const std::size_t before = foundationd::state::wipedBytes();
  auto parsed = api::handlers::parseUnsealBody(body);
  const std::size_t wiped = foundationd::state::wipedBytes() - before;
  REQUIRE(std::holds_alternative<foundationd::state::SecretBytes>(parsed));
  CHECK(std::get<foundationd::state::SecretBytes>(parsed).view() == passphrase);
  // At least the token buffer's last block and the value's own (each holds
  // the whole passphrase), plus the smaller blocks the buffer grew out of.
  CHECK(wiped >= 2 * (passphrase.size() + 1) + 240);

  // The same when the body is refused: a passphrase over the limit, a
  // syntax error after a long passphrase.
  const std::size_t before2 = foundationd::state::wipedBytes();
  auto refused = api::handlers::parseUnsealBody(
      json{{"passphrase", std::string(api::handlers::kMaxPassphraseBytes + 1, 'x')}}.dump());
  CHECK(std::holds_alternative<Response>(refused));
  CHECK(foundationd::state::wipedBytes() - before2 >= 2 * api::handlers::kMaxPassphraseBytes);
  const std::size_t before3 = foundationd::state::wipedBytes();
  refused = api::handlers::parseUnsealBody(R"({"passphrase":")" + passphrase + R"(", oops})");
  CHECK(std::holds_alternative<Response>(refused));
  CHECK(foundationd::state::wipedBytes() - before3 >= passphrase.size());
}
