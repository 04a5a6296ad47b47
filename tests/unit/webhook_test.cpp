// POST /v1/hooks/forgejo: HMAC-SHA256 against RFC 4231's vectors, signature
// checking, the push payload parser, and the handler's answers through the
// real route table with a test daemon.
#include "api/webhook.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include "api/router.hpp"

namespace api = foundationd::api;
using foundationd::Error;
using foundationd::ErrorCode;
using foundationd::Result;
using foundationd::Status;

namespace {

std::string rep(char c, std::size_t n) {
  return std::string(n, c);
}

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kSecret = "s3cr3t-webhook-key";

std::string pushBody(const std::string& ref, const std::string& after = kCommit) {
  return R"({"ref":")" + ref +
         R"(","before":"0000000000000000000000000000000000000000","after":")" + after +
         R"(","repository":{"full_name":"olsitec/foundation"},"commits":[]})";
}

class WebhookDaemon final : public api::DaemonControl {
 public:
  bool locked = false;
  bool configured = true;
  int deliveries = 0;
  int rejected = 0;
  api::WebhookDelivery last;

  api::StatusSnapshot status() override { return {}; }
  api::Task<api::UnsealResult> unseal(foundationd::state::SecretBytes, api::PeerKind) override {
    co_return api::UnsealResult{};
  }
  api::Task<Status> seal() override { co_return Status::success(); }
  Status requestReconcile() override { return Status::success(); }
  api::Task<Result<nlohmann::json>> plan() override { co_return nlohmann::json::object(); }
  api::Task<Result<std::vector<api::AuditEvent>>> events(std::int64_t, std::size_t) override {
    co_return std::vector<api::AuditEvent>{};
  }
  api::Task<Result<foundationd::state::SecretBytes>> webhookSecret() override {
    if (!configured) co_return Error::make(ErrorCode::not_found, "no webhook");
    if (locked) co_return Error::make(ErrorCode::unavailable, "locked");
    co_return foundationd::state::SecretBytes::copyOf(kSecret);
  }
  api::Task<api::WebhookResult> webhook(api::WebhookDelivery d) override {
    ++deliveries;
    last = d;
    if (d.push && d.push->ref == "refs/heads/main")
      co_return api::WebhookResult{api::WebhookOutcome::accepted, "fetching"};
    if (d.pullRequest && d.pullRequest->baseRef == "main")
      co_return api::WebhookResult{api::WebhookOutcome::accepted, "planning"};
    co_return api::WebhookResult{api::WebhookOutcome::ignored, "not main"};
  }
  void webhookRejected(const std::string&) override { ++rejected; }
};

api::Response run(api::Router& router, const api::Request& req) {
  boost::asio::io_context io;
  api::Response out;
  boost::asio::co_spawn(io, router.handle(req), [&](std::exception_ptr e, api::Response r) {
    REQUIRE(!e);
    out = std::move(r);
  });
  io.run();
  return out;
}

api::Request delivery(const std::string& body, const std::string& event, const std::string& sig,
                      const std::string& prefix = "X-Forgejo-") {
  api::Request req;
  req.method = "POST";
  req.target = "/v1/hooks/forgejo";
  req.body = body;
  req.peer = api::PeerKind::remote;
  req.headers = {{prefix + "Event", event}, {prefix + "Delivery", "d-1"}};
  if (!sig.empty()) req.headers.emplace_back(prefix + "Signature", sig);
  return req;
}

}  // namespace

TEST_CASE("HMAC-SHA256: RFC 4231 test cases 1-7") {
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4 += static_cast<char>(i);
  CHECK(api::toHex(api::hmacSha256(rep('\x0b', 20), "Hi There")) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(api::toHex(api::hmacSha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(api::toHex(api::hmacSha256(rep('\xaa', 20), rep('\xdd', 50))) ==
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  CHECK(api::toHex(api::hmacSha256(key4, rep('\xcd', 50))) ==
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  CHECK(api::toHex(api::hmacSha256(rep('\x0c', 20), "Test With Truncation")).substr(0, 32) ==
        "a3b6167473100ee06e0c796c2955552b");
  CHECK(api::toHex(api::hmacSha256(rep('\xaa', 131),
                                   "Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(api::toHex(api::hmacSha256(
            rep('\xaa', 131),
            "This is a test using a larger than block-size key and a larger than block-size "
            "data. The key needs to be hashed before being used by the HMAC algorithm.")) ==
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST_CASE("verifySignature: hex of either case, optional sha256= prefix, nothing else") {
  const std::string body = pushBody("refs/heads/main");
  const std::string sig = api::toHex(api::hmacSha256(kSecret, body));
  CHECK(api::verifySignature(kSecret, body, sig));
  std::string upper = sig;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(api::verifySignature(kSecret, body, upper));
  CHECK(api::verifySignature(kSecret, body, "sha256=" + sig));
  CHECK_FALSE(api::verifySignature(kSecret, body + " ", sig));          // body changed
  CHECK_FALSE(api::verifySignature(kSecret + "x", body, sig));          // other secret
  CHECK_FALSE(api::verifySignature(kSecret, body, sig.substr(0, 63)));  // short
  CHECK_FALSE(api::verifySignature(kSecret, body, sig + "00"));         // long
  CHECK_FALSE(api::verifySignature(kSecret, body, rep('z', 64)));       // not hex
  CHECK_FALSE(api::verifySignature(kSecret, body, ""));
  CHECK_FALSE(api::verifySignature("", body, api::toHex(api::hmacSha256("", body))));  // no secret
}

TEST_CASE("parsePushPayload: ref, after, before, repository; located refusals") {
  auto p = api::parsePushPayload(pushBody("refs/heads/main"));
  REQUIRE(p);
  CHECK(p->ref == "refs/heads/main");
  CHECK(p->after == kCommit);
  CHECK(p->before == std::string(40, '0'));
  CHECK(p->repository == "olsitec/foundation");
  CHECK_FALSE(p->deleted);

  auto upper = api::parsePushPayload(
      R"({"ref":"refs/heads/x","after":"0123456789ABCDEF0123456789ABCDEF01234567"})");
  REQUIRE(upper);
  CHECK(upper->after == kCommit);  // normalised to lower case
  auto deleted = api::parsePushPayload(pushBody("refs/heads/main", std::string(40, '0')));
  REQUIRE(deleted);
  CHECK(deleted->deleted);

  for (const char* bad :
       {"", "[]", "null", "{", R"({"after":"0123456789abcdef0123456789abcdef01234567"})",
        R"({"ref":1,"after":"0123456789abcdef0123456789abcdef01234567"})",
        R"({"ref":"refs/heads/main"})", R"({"ref":"refs/heads/main","after":"xyz"})",
        R"({"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef0123456"})"}) {
    auto r = api::parsePushPayload(bad);
    REQUIRE_FALSE(r);
    CHECK(std::string(foundationd::toString(r.error().code)) == "invalid_argument");
    CHECK(r.error().message.rfind("the push payload", 0) == 0);
  }
}

std::string prBody(const std::string& action, const std::string& base = "main") {
  return R"({"action":")" + action + R"(","number":12,"pull_request":{"number":12,"head":{"ref":)"
         R"("add-web","sha":"0123456789ABCDEF0123456789abcdef01234567"},"base":{"ref":")" +
         base + R"(","sha":"1111111111111111111111111111111111111111"}},)"
                R"("repository":{"full_name":"olsitec/foundation"}})";
}

TEST_CASE("parsePullRequestPayload: Gitea's action, number, head sha, base ref; refusals") {
  auto p = api::parsePullRequestPayload(prBody("synchronized"));
  REQUIRE(p);
  CHECK(p->action == "synchronized");
  CHECK(p->number == 12);
  CHECK(p->headSha == kCommit);  // lower-cased
  CHECK(p->baseRef == "main");
  CHECK(p->repository == "olsitec/foundation");
  for (const char* bad :
       {"", "[]", R"({"number":1,"pull_request":{}})",
        R"({"action":"opened","number":0,"pull_request":{"head":{"sha":"0123456789abcdef0123456789abcdef01234567"},"base":{"ref":"main"}}})",
        R"({"action":"opened","number":3,"pull_request":{"head":{"sha":"nope"},"base":{"ref":"main"}}})",
        R"({"action":"opened","number":3,"pull_request":{"head":{"sha":"0123456789abcdef0123456789abcdef01234567"}}})",
        R"({"action":"opened","number":3})"}) {
    auto r = api::parsePullRequestPayload(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.rfind("the pull_request payload", 0) == 0);
  }
}

TEST_CASE("POST /v1/hooks/forgejo: a signed pull_request reaches the daemon; malformed is 400") {
  WebhookDaemon daemon;
  api::Metrics metrics;
  const auto token = api::ApiToken::fromString("0123456789abcdef0123456789abcdef");
  api::Router router(daemon, token, metrics, {});
  const std::string body = prBody("opened");
  auto r = run(router, delivery(body, "pull_request", api::toHex(api::hmacSha256(kSecret, body)),
                                "X-Gitea-"));
  CHECK(r.status == 202);
  REQUIRE(daemon.last.pullRequest);
  CHECK(daemon.last.pullRequest->number == 12);
  CHECK_FALSE(daemon.last.push);
  const std::string bad = R"({"action":"opened"})";
  r = run(router, delivery(bad, "pull_request", api::toHex(api::hmacSha256(kSecret, bad))));
  CHECK(r.status == 400);
  CHECK(daemon.deliveries == 1);
  const std::string forged = prBody("opened");
  r = run(router, delivery(forged, "pull_request", api::toHex(api::hmacSha256("wrong", forged))));
  CHECK(r.status == 401);
  CHECK(daemon.deliveries == 1);
}

TEST_CASE("POST /v1/hooks/forgejo: 202, 200 ignored, 401, 400, 503 locked, 404 unconfigured") {
  WebhookDaemon daemon;
  api::Metrics metrics;
  const auto token = api::ApiToken::fromString("0123456789abcdef0123456789abcdef");
  api::Router router(daemon, token, metrics, {});
  const std::string body = pushBody("refs/heads/main");
  const std::string sig = api::toHex(api::hmacSha256(kSecret, body));

  SUBCASE("a signed push to the tracked branch is accepted; Gitea's headers too") {
    auto r = run(router, delivery(body, "push", sig));
    CHECK(r.status == 202);
    REQUIRE(daemon.last.push);
    CHECK(daemon.last.push->after == kCommit);
    CHECK(daemon.last.delivery == "d-1");
    r = run(router, delivery(body, "push", sig, "X-Gitea-"));
    CHECK(r.status == 202);
    CHECK(daemon.deliveries == 2);
    CHECK(metrics.render().find("foundationd_webhook_deliveries_total{result=\"accepted\"} 2") !=
          std::string::npos);
  }
  SUBCASE("another branch and another event are 200, ignored") {
    const std::string other = pushBody("refs/heads/feature");
    auto r = run(router, delivery(other, "push", api::toHex(api::hmacSha256(kSecret, other))));
    CHECK(r.status == 200);
    CHECK(r.body.find("\"ignored\"") != std::string::npos);
    const std::string ping = R"({"zen":"hello"})";
    r = run(router, delivery(ping, "ping", api::toHex(api::hmacSha256(kSecret, ping))));
    CHECK(r.status == 200);
    CHECK_FALSE(daemon.last.push);
  }
  SUBCASE("a bad or missing signature is 401 and reaches no decision") {
    auto r = run(router, delivery(body, "push", api::toHex(api::hmacSha256("wrong", body))));
    CHECK(r.status == 401);
    r = run(router, delivery(body, "push", ""));
    CHECK(r.status == 401);
    CHECK(daemon.deliveries == 0);
    CHECK(daemon.rejected == 2);
    CHECK(r.body.find(kSecret) == std::string::npos);
    CHECK(
        metrics.render().find("foundationd_webhook_deliveries_total{result=\"bad_signature\"} 2") !=
        std::string::npos);
  }
  SUBCASE("a signed push without a commit is 400") {
    const std::string bad = R"({"ref":"refs/heads/main"})";
    auto r = run(router, delivery(bad, "push", api::toHex(api::hmacSha256(kSecret, bad))));
    CHECK(r.status == 400);
    CHECK(daemon.deliveries == 0);
  }
  SUBCASE("locked: 503 before anything is checked") {
    daemon.locked = true;
    auto r = run(router, delivery(body, "push", sig));
    CHECK(r.status == 503);
    CHECK(r.body.find("\"locked\"") != std::string::npos);
    CHECK(daemon.deliveries == 0);
  }
  SUBCASE("no webhook configured: 404") {
    daemon.configured = false;
    auto r = run(router, delivery(body, "push", sig));
    CHECK(r.status == 404);
  }
  SUBCASE("GET is 405") {
    api::Request req = delivery(body, "push", sig);
    req.method = "GET";
    CHECK(run(router, req).status == 405);
  }
}

TEST_CASE("on the webhook listener (api.webhook_listen) only the webhook answers; all else 404") {
  WebhookDaemon daemon;
  api::Metrics metrics;
  const std::string kApiToken = "0123456789abcdef0123456789abcdef";
  const auto token = api::ApiToken::fromString(kApiToken);
  api::Router router(daemon, token, metrics, {});
  const std::string body = pushBody("refs/heads/main");
  api::Request hook = delivery(body, "push", api::toHex(api::hmacSha256(kSecret, body)));
  hook.webhookListener = true;
  CHECK(run(router, hook).status == 202);
  CHECK(daemon.deliveries == 1);

  // Every other route, from loopback (which elsewhere may unseal, read the
  // status without a token...) and with the API token: 404, no handler run.
  for (const api::Route& route : api::routeTable()) {
    if (route.auth == api::AuthKind::hmac) continue;
    for (api::PeerKind peer : {api::PeerKind::loopback, api::PeerKind::remote}) {
      api::Request req;
      req.method = std::string(route.method);
      req.target = std::string(route.path);
      req.peer = peer;
      req.webhookListener = true;
      req.headers = {{"Authorization", "Bearer " + kApiToken}};
      if (route.path == "/v1/unseal") req.body = R"({"passphrase":"open sesame, but longer"})";
      const api::Response r = run(router, req);
      CAPTURE(route.path);
      CHECK(r.status == 404);
      CHECK(r.body.find("webhooks only") != std::string::npos);
    }
  }
  api::Request get = hook;
  get.method = "GET";
  CHECK(run(router, get).status == 404);
  api::Request unknown = hook;
  unknown.target = "/nowhere";
  CHECK(run(router, unknown).status == 404);
  CHECK(daemon.deliveries == 1);

  // The same requests on an ordinary listener are served.
  api::Request health;
  health.method = "GET";
  health.target = "/healthz";
  health.peer = api::PeerKind::remote;
  CHECK(run(router, health).status == 200);
  health.webhookListener = true;
  CHECK(run(router, health).status == 404);
}
