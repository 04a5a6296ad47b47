#include "api/handlers.hpp"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include <sodium.h>

#include "api/errors.hpp"
#include "api/secret_json.hpp"
#include "api/webhook.hpp"

namespace foundationd::api::handlers {
namespace {

constexpr std::int64_t kDefaultEventLimit = 100;
constexpr std::int64_t kMaxEventLimit = 1000;

// nlohmann's parse_error text is "[json.exception.parse_error.101] parse
// error at line L, column C: syntax error while parsing value - <what>" where
// <what> is fixed text, except that a lexer error appends "; last read:
// '<the bytes>'": for an unseal body possibly part of the passphrase. Keep
// the located part, drop the bytes.
std::string describeParseError(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  const auto tag = what.find("] ");
  if (tag == std::string::npos) return "malformed JSON body near byte " + std::to_string(e.byte);
  what.erase(0, tag + 2);
  if (const auto lastRead = what.find("; last read"); lastRead != std::string::npos) {
    what.erase(lastRead);
  }
  return "malformed JSON body: " + what;
}

// nlohmann reports a number too large for a double (out_of_range.406) apart
// from syntax errors; its text quotes the number: not repeated.
const std::string kNumberOutOfRange = "malformed JSON body: a number is out of range";

Response malformed(const std::string& message) {
  return errorResponse(ApiError::malformed_json, message);
}

std::optional<std::int64_t> parseInt(const std::string& s) {
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// A plain function, not a lambda: GCC 12 mishandles lambdas in coroutines.
void wipeStringField(nlohmann::json& doc, const char* key) {
  if (!doc.is_object()) return;
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) return;
  std::string& v = it->get_ref<std::string&>();
  sodium_memzero(v.data(), v.size());
}

// The answer of POST /v1/rotate and POST /v1/secrets (a new value is a
// rotation): locked when the daemon is, else the error, else what changed.
Response rotateResponse(RouteContext& ctx, const Result<RotateResult>& r) {
  if (!r) {
    if (r.error().code == ErrorCode::unavailable && ctx.daemon.status().locked) {
      return errorResponse(ApiError::locked, r.error().message);
    }
    return errorResponse(r.error());
  }
  nlohmann::json fields = nlohmann::json::array();
  for (const auto& [field, version] : r->fields) {
    fields.push_back({{"field", field}, {"version", version}});
  }
  return Response::json(200, {{"credential", r->credential},
                              {"rotated", std::move(fields)},
                              {"result", r->result},
                              {"converged", r->converged}});
}

}  // namespace

std::variant<state::SecretBytes, Response> parseUnsealBody(const std::string& body) {
  static const std::string kExpected = R"(; expected {"passphrase": "..."})";
  // SecretJson: the parser's token buffer and the parsed strings are zeroed
  // when freed (api/secret_json.hpp).
  SecretJson doc;
  try {
    doc = SecretJson::parse(body);
  } catch (const SecretJson::parse_error& e) {
    return malformed(describeParseError(e));
  } catch (const SecretJson::out_of_range&) {  // a number beyond double's range: 1E999999
    return malformed(kNumberOutOfRange);
  }
  if (!doc.is_object()) return malformed("the body is not a JSON object" + kExpected);
  const auto it = doc.find("passphrase");
  if (it == doc.end()) return malformed("the body has no \"passphrase\" field" + kExpected);
  if (!it->is_string()) return malformed("\"passphrase\" is not a string" + kExpected);
  state::WipingString& text = it->get_ref<state::WipingString&>();
  if (text.empty()) return malformed("\"passphrase\" is empty" + kExpected);
  if (text.size() > kMaxPassphraseBytes) {
    sodium_memzero(text.data(), text.size());
    return errorResponse(ApiError::invalid_argument,
                         "\"passphrase\" is longer than " + std::to_string(kMaxPassphraseBytes) +
                             " bytes: refused (never cut to fit)");
  }
  state::SecretBytes secret = state::SecretBytes::copyOf(std::string_view(text));
  sodium_memzero(text.data(), text.size());
  return secret;
}

Task<Response> healthz(RouteContext&, const Request&) {
  co_return Response::json(200, {{"status", "ok"}});
}

Task<Response> readyz(RouteContext& ctx, const Request&) {
  const StatusSnapshot s = ctx.daemon.status();
  if (s.locked) {
    co_return errorResponse(ApiError::not_ready,
                            "locked: waiting for the passphrase (POST /v1/unseal)");
  }
  if (!s.lastReconcile.end) {
    co_return errorResponse(ApiError::not_ready, "no reconcile has finished yet");
  }
  if (!s.lastReconcile.converged) {
    const std::string result = s.lastReconcile.result.empty() ? "unknown" : s.lastReconcile.result;
    co_return errorResponse(ApiError::not_ready, "the last reconcile did not converge (result: " +
                                                     result + "); see GET /v1/status");
  }
  co_return Response::json(200, {{"ready", true}});
}

Task<Response> status(RouteContext& ctx, const Request&) {
  co_return Response::json(200, ctx.daemon.status().toJson());
}

Task<Response> unseal(RouteContext& ctx, const Request& request) {
  auto parsed = parseUnsealBody(request.body);
  if (auto* answer = std::get_if<Response>(&parsed)) co_return std::move(*answer);
  state::SecretBytes passphrase = std::move(std::get<state::SecretBytes>(parsed));
  const UnsealResult r = co_await ctx.daemon.unseal(std::move(passphrase), request.peer);
  const auto message = [&](const char* fallback) {
    return r.error && !r.error->message.empty() ? r.error->message : std::string(fallback);
  };
  switch (r.outcome) {
    case UnsealOutcome::unlocked:
      co_return Response::json(200, {{"locked", false}, {"vault_unsealed", r.vaultUnsealed}});
    case UnsealOutcome::wrong_passphrase:
      co_return errorResponse(ApiError::wrong_passphrase, message("the passphrase is wrong"));
    case UnsealOutcome::rate_limited: {
      const long long secs = std::max<long long>(1, r.retryAfter.count());
      Response res =
          errorResponse(ApiError::rate_limited, "too many failed unseal attempts; try again in " +
                                                    std::to_string(secs) + " s");
      res.headers.emplace_back("Retry-After", std::to_string(secs));
      co_return res;
    }
    case UnsealOutcome::not_initialized:
      co_return errorResponse(
          ApiError::not_initialized,
          message("the state store is not initialised; run `foundationd init` first"));
    case UnsealOutcome::failed:
      break;
  }
  if (r.error) co_return errorResponse(*r.error);
  co_return errorResponse(ApiError::internal, "unseal failed for an unknown reason");
}

Task<Response> seal(RouteContext& ctx, const Request&) {
  const Status st = co_await ctx.daemon.seal();
  if (!st) co_return errorResponse(st.error());
  co_return Response::json(200, {{"locked", true}});
}

Task<Response> reconcile(RouteContext& ctx, const Request&) {
  const Status st = ctx.daemon.requestReconcile();
  if (!st) co_return errorResponse(st.error());
  co_return Response::json(202, {{"accepted", true}});
}

Task<Response> plan(RouteContext& ctx, const Request&) {
  Result<nlohmann::json> p = co_await ctx.daemon.plan();
  if (!p) co_return errorResponse(p.error());
  co_return Response::json(200, *p);
}

Task<Response> events(RouteContext& ctx, const Request& request) {
  std::int64_t since = 0;
  std::int64_t limit = kDefaultEventLimit;
  if (auto s = queryParam(request.query(), "since")) {
    const auto v = parseInt(*s);
    if (!v || *v < 0) {
      co_return errorResponse(ApiError::invalid_argument,
                              "since must be a non-negative integer (an event id)");
    }
    since = *v;
  }
  if (auto l = queryParam(request.query(), "limit")) {
    const auto v = parseInt(*l);
    if (!v || *v < 1 || *v > kMaxEventLimit) {
      co_return errorResponse(ApiError::invalid_argument, "limit must be an integer from 1 to " +
                                                              std::to_string(kMaxEventLimit));
    }
    limit = *v;
  }
  auto page = co_await ctx.daemon.events(since, static_cast<std::size_t>(limit));
  if (!page) co_return errorResponse(page.error());
  nlohmann::json list = nlohmann::json::array();
  std::int64_t next = since;
  for (const AuditEvent& e : *page) {
    list.push_back(
        {{"id", e.id}, {"at", formatTime(e.at)}, {"event", e.event}, {"fields", e.fields}});
    next = std::max(next, e.id);
  }
  co_return Response::json(200, {{"events", std::move(list)}, {"next", next}});
}

Task<Response> rotate(RouteContext& ctx, const Request& request) {
  static const std::string kExpected = R"(; expected {"credential": "NAME"})";
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(request.body);
  } catch (const nlohmann::json::parse_error& e) {
    co_return malformed(describeParseError(e));
  } catch (const nlohmann::json::out_of_range&) {
    co_return malformed(kNumberOutOfRange);
  }
  if (!doc.is_object() || !doc.contains("credential") || !doc["credential"].is_string() ||
      doc["credential"].get<std::string>().empty()) {
    co_return malformed("the body needs a \"credential\" string" + kExpected);
  }
  auto r = co_await ctx.daemon.rotate(doc["credential"].get<std::string>());
  co_return rotateResponse(ctx, r);
}

Task<Response> setSecret(RouteContext& ctx, const Request& request) {
  static const std::string kExpected =
      R"(; expected {"credential": "NAME", "field": "FIELD", "value": "..."})";
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(request.body);
  } catch (const nlohmann::json::parse_error& e) {
    co_return malformed(describeParseError(e));
  }
  static constexpr const char* kKeys[] = {"credential", "field", "value"};
  for (const char* key : kKeys) {
    if (!doc.is_object() || !doc.contains(key) || !doc[key].is_string() ||
        doc[key].get<std::string>().empty()) {
      wipeStringField(doc, "value");
      co_return malformed(std::string("the body needs a non-empty \"") + key + "\" string" +
                          kExpected);
    }
  }
  state::SecretBytes value = state::SecretBytes::copyOf(doc["value"].get_ref<std::string&>());
  wipeStringField(doc, "value");
  // Who, for the audit log: on the Unix socket the kernel's word (SO_PEERCRED),
  // never what the body claims; elsewhere the peer kind (a bearer-token
  // holder). The claim ("by") is kept beside it, marked as such.
  std::string by = request.credentials
                       ? describeCredentials(*request.credentials) + " on the Unix socket"
                       : std::string("a token holder on ") + peerName(request.peer) + " TCP";
  if (doc.contains("by") && doc["by"].is_string() && !doc["by"].get_ref<std::string&>().empty()) {
    by += ", claiming to be \"" + doc["by"].get<std::string>() + "\"";
  }
  std::string credential = doc["credential"].get<std::string>();
  std::string field = doc["field"].get<std::string>();
  // Named arguments: GCC 12 mishandles temporaries inside a co_await expression.
  auto task = ctx.daemon.setSecret(std::move(credential), std::move(field), std::move(value),
                                   std::move(by));
  auto r = co_await std::move(task);
  co_return rotateResponse(ctx, r);
}

Task<Response> metrics(RouteContext& ctx, const Request&) {
  ctx.metrics.updateFromStatus(ctx.daemon.status());
  co_return Response::text(200, ctx.metrics.render(), Metrics::kContentType);
}

Task<Response> forgejoWebhook(RouteContext& ctx, const Request& request) {
  Counter& deliveries = ctx.metrics.webhookDeliveries();
  Result<state::SecretBytes> secret = co_await ctx.daemon.webhookSecret();
  if (!secret) {
    if (secret.error().code == ErrorCode::unavailable) {
      deliveries.inc({"locked"});
      co_return errorResponse(ApiError::locked,
                              "locked: the webhook secret is in the sealed state; POST /v1/unseal "
                              "(the delivery was not processed; polling catches up)");
    }
    deliveries.inc({"not_configured"});
    co_return errorResponse(secret.error());
  }
  const WebhookHeaders h = webhookHeaders(request);
  const bool valid =
      !h.signature.empty() && verifySignature(secret->view(), request.body, h.signature);
  secret->wipe();
  if (!valid) {
    deliveries.inc({"bad_signature"});
    const char* why = h.signature.empty() ? "missing signature" : "bad signature";
    ctx.daemon.webhookRejected(why);
    co_return errorResponse(
        ApiError::unauthorized,
        h.signature.empty()
            ? "no X-Forgejo-Signature (or X-Gitea-Signature) header: set the webhook's secret"
            : "the signature is not the HMAC-SHA256 of the body under the webhook secret");
  }
  WebhookDelivery delivery;
  for (char c : h.event.substr(0, 64)) delivery.event += (c > 0x20 && c < 0x7f) ? c : '?';
  for (char c : h.delivery.substr(0, 100)) delivery.delivery += (c > 0x20 && c < 0x7f) ? c : '?';
  if (delivery.event.empty()) {
    deliveries.inc({"malformed"});
    co_return errorResponse(ApiError::bad_request, "no X-Forgejo-Event (or X-Gitea-Event) header");
  }
  if (delivery.event == "push") {
    auto push = parsePushPayload(request.body);
    if (!push) {
      deliveries.inc({"malformed"});
      co_return errorResponse(ApiError::malformed_json, push.error().message);
    }
    delivery.push = std::move(push).value();
  } else if (delivery.event == "pull_request") {
    auto pr = parsePullRequestPayload(request.body);
    if (!pr) {
      deliveries.inc({"malformed"});
      co_return errorResponse(ApiError::malformed_json, pr.error().message);
    }
    delivery.pullRequest = std::move(pr).value();
  }
  const WebhookResult r = co_await ctx.daemon.webhook(std::move(delivery));
  deliveries.inc({webhookOutcomeName(r.outcome)});
  if (r.outcome == WebhookOutcome::accepted) {
    co_return Response::json(202,
                             {{"accepted", true}, {"result", "accepted"}, {"reason", r.message}});
  }
  co_return Response::json(
      200, {{"accepted", false}, {"result", webhookOutcomeName(r.outcome)}, {"reason", r.message}});
}

}  // namespace foundationd::api::handlers
