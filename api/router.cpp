#include "api/router.hpp"

#include <array>
#include <cctype>
#include <exception>
#include <string>

#include "api/errors.hpp"
#include "api/handlers.hpp"

namespace foundationd::api {
namespace {

namespace h = handlers;

// THE route table (docs/api.md).
// clang-format off
constexpr std::array kRoutes = {
  //    method  path              auth                     handler        secret body, local only
  Route{"GET",  "/healthz",       AuthKind::none,          &h::healthz},
  Route{"GET",  "/readyz",        AuthKind::none,          &h::readyz},
  Route{"GET",  "/metrics",       AuthKind::none,          &h::metrics},
  Route{"GET",  "/v1/status",     AuthKind::none_on_local, &h::status},
  Route{"POST", "/v1/unseal",     AuthKind::none,          &h::unseal,    true, true},
  Route{"POST", "/v1/seal",       AuthKind::bearer,        &h::seal,      false, true},
  Route{"POST", "/v1/reconcile",  AuthKind::bearer,        &h::reconcile},
  Route{"GET",  "/v1/plan",       AuthKind::bearer,        &h::plan},
  Route{"GET",  "/v1/events",     AuthKind::bearer,        &h::events},
  Route{"POST", "/v1/rotate",     AuthKind::bearer,        &h::rotate},
  Route{"POST", "/v1/secrets",    AuthKind::bearer,        &h::setSecret, true, true},
  Route{"POST", "/v1/hooks/forgejo", AuthKind::hmac,      &h::forgejoWebhook},
};
// clang-format on

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Response unauthorized(const std::string& message) {
  Response r = errorResponse(ApiError::unauthorized, message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"foundationd\"");
  return r;
}

// A path fit to appear in a message: bounded, printable.
std::string printablePath(std::string_view path) {
  std::string out;
  for (char c : path.substr(0, 200)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

}  // namespace

const char* authName(AuthKind auth) noexcept {
  switch (auth) {
    case AuthKind::none:
      return "none";
    case AuthKind::none_on_local:
      return "none-on-local";
    case AuthKind::bearer:
      return "bearer";
    case AuthKind::hmac:
      return "hmac";
  }
  return "bearer";
}

std::span<const Route> routeTable() noexcept {
  return kRoutes;
}

const Route* Router::find(std::string_view method, std::string_view path) noexcept {
  for (const Route& r : kRoutes) {
    if (r.path == path && r.method == method) return &r;
  }
  return nullptr;
}

Router::Router(DaemonControl& daemon, const ApiToken& token, Metrics& metrics, LogSink log)
    : ctx_{daemon, metrics}, token_(token), log_(std::move(log)) {}

std::optional<Response> Router::authorize(const Route& route, const Request& request) const {
  switch (route.auth) {
    case AuthKind::none:
    case AuthKind::hmac:  // the handler checks the signature over the raw body
      return std::nullopt;
    case AuthKind::none_on_local:
      if (isLocal(request.peer)) return std::nullopt;
      break;
    case AuthKind::bearer:
      break;
  }
  const std::string_view header = trim(request.header("Authorization"));
  if (header.empty()) {
    return unauthorized(
        "this endpoint needs a bearer token: send `Authorization: Bearer <token>` with the "
        "token in the daemon's api.token_file");
  }
  if (!startsWithIgnoreCase(header, "Bearer ")) {
    return unauthorized("the Authorization header must use the Bearer scheme");
  }
  if (!token_.matches(trim(header.substr(7)))) {
    return unauthorized(
        "the bearer token is not valid; use the one in the daemon's api.token_file");
  }
  return std::nullopt;
}

Task<Response> Router::handle(const Request& request) {
  const std::string_view path = request.path();
  if (request.webhookListener) {
    // api.webhook_listen: the webhooks (HMAC-checked routes) and nothing
    // else, not even whether another endpoint exists.
    const Route* hook = find(request.method, path);
    if (hook == nullptr || hook->auth != AuthKind::hmac) {
      co_return errorResponse(ApiError::not_found,
                              "no endpoint " + printablePath(path) +
                                  " on this listener: it serves the webhooks only (api.webhook_listen)");
    }
  }
  const Route* route = nullptr;
  std::string allow;
  for (const Route& r : kRoutes) {
    if (r.path != path) continue;
    if (r.method == request.method) route = &r;
    if (!allow.empty()) allow += ", ";
    allow += r.method;
  }
  if (allow.empty()) {
    co_return errorResponse(ApiError::not_found,
                            "no endpoint " + printablePath(path) + "; see docs/api.md");
  }
  if (route == nullptr) {
    Response r = errorResponse(ApiError::method_not_allowed,
                               printablePath(path) + " accepts " + allow + " only");
    r.headers.emplace_back("Allow", allow);
    co_return r;
  }
  if (route->localOnly && !isLocal(request.peer)) {
    logTo(log_, LogLevel::notice, "api.forbidden",
          {{"method", request.method},
           {"path", std::string(route->path)},
           {"peer", peerName(request.peer)}});
    co_return errorResponse(ApiError::forbidden,
                            std::string(route->path) +
                                " is served on the Unix socket and loopback only");
  }
  if (auto denied = authorize(*route, request)) {
    logTo(log_, LogLevel::notice, "api.unauthorized",
          {{"method", request.method},
           {"path", std::string(route->path)},
           {"peer", peerName(request.peer)}});
    co_return std::move(*denied);
  }
  std::string failure;
  try {
    co_return co_await route->handler(ctx_, request);
  } catch (const std::exception& e) {
    failure = route->secretBody ? "(not logged: the request carries a secret)" : e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  logTo(log_, LogLevel::error, "api.handler_failed",
        {{"method", request.method}, {"path", std::string(route->path)}, {"error", failure}});
  co_return errorResponse(ApiError::internal, "internal error while handling " +
                                                  std::string(route->path) +
                                                  "; the daemon's log has details");
}

}  // namespace foundationd::api
