// The API's endpoint handlers: plain coroutines from a Request to a Response
// (router.cpp lists them in the route table). Each states its answers;
// errors use api/errors.hpp's body and status mapping.
#pragma once

#include "api/router.hpp"

namespace foundationd::api::handlers {

// GET /healthz: 200 {"status":"ok"} while the process serves.
Task<Response> healthz(RouteContext& ctx, const Request& request);
// GET /readyz: 200 {"ready":true} when unlocked and the last finished
// reconcile converged; else 503 not_ready saying why.
Task<Response> readyz(RouteContext& ctx, const Request& request);
// GET /v1/status: 200, StatusSnapshot::toJson().
Task<Response> status(RouteContext& ctx, const Request& request);
// POST /v1/unseal {"passphrase":"..."}: 200 {"locked":false,"vault_unsealed":B};
// 400 malformed_json; 403 wrong_passphrase; 429 rate_limited + Retry-After;
// 409 not_initialized; else the daemon's mapped error. The passphrase goes
// to the daemon in guarded memory; the parsed copy is zeroed; no answer or
// log line contains it.
Task<Response> unseal(RouteContext& ctx, const Request& request);
// POST /v1/seal: 200 {"locked":true}.
Task<Response> seal(RouteContext& ctx, const Request& request);
// POST /v1/reconcile: 202 {"accepted":true}.
Task<Response> reconcile(RouteContext& ctx, const Request& request);
// GET /v1/plan: 200, the plan document.
Task<Response> plan(RouteContext& ctx, const Request& request);
// GET /v1/events?since=ID&limit=N: 200 {"events":[{"id","at","event","fields"}],"next":ID}
// (pass `next` as the next `since`); since >= 0 (default 0), 1 <= limit <= 1000
// (default 100); 400 invalid_argument otherwise.
Task<Response> events(RouteContext& ctx, const Request& request);
// POST /v1/rotate {"credential": "NAME"}: 200 {"credential", "rotated":
// [{"field", "version"}], "result", "converged"} once the reconcile that
// updated the consumers has ended; 503 locked, 404 no such credential.
Task<Response> rotate(RouteContext& ctx, const Request& request);
// POST /v1/secrets {"credential", "field", "value", "by"?}: `secret set`; the
// answer is rotate's, with the new version, once the consumers followed;
// 503 locked, 404/400 not a provided field of the spec in force.
Task<Response> setSecret(RouteContext& ctx, const Request& request);
// GET /metrics: 200 text/plain; version=0.0.4, state gauges refreshed from status().
Task<Response> metrics(RouteContext& ctx, const Request& request);
// POST /v1/hooks/forgejo (api/webhook.hpp, docs/source.md): 503 locked while
// the daemon is locked (the secret is sealed); 404 not_found when no webhook
// is configured; 401 unauthorized when X-Forgejo-Signature (or
// X-Gitea-Signature) is missing or is not the HMAC-SHA256 of the raw body;
// 400 for a push payload without "ref"/"after"; then the daemon decides:
// 202 {"accepted":true,...} (push to the tracked branch), 200
// {"accepted":false,"result":"ignored"|"duplicate","reason":...}. Every
// answer counts in foundationd_webhook_deliveries_total{result}.
Task<Response> forgejoWebhook(RouteContext& ctx, const Request& request);

// Parsing helpers (exposed for tests and the fuzz target).
// The longest passphrase accepted (what `foundationd init` reads): a longer
// one is refused with 400 invalid_argument, never cut.
inline constexpr std::size_t kMaxPassphraseBytes = 4096;
// The passphrase of an unseal body, or the 400 to answer. The message
// locates the problem (line, column) and never quotes the body.
std::variant<state::SecretBytes, Response> parseUnsealBody(const std::string& body);

}  // namespace foundationd::api::handlers
