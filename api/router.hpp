// The HTTP API's routes in one explicit table (STYLE.md, like PowerDNS's
// route registration), authorisation, and dispatch. No socket here: the
// server turns bytes into a Request and a Response back into bytes; tests
// call Router::handle() directly.
//
// Dispatch: the path (target up to '?') must equal a route's path exactly,
// else 404 not_found; a known path with another method gets 405
// method_not_allowed with `Allow`. On a webhook-only listener
// (Request::webhookListener) every request but a webhook route's (AuthKind::hmac)
// gets 404 not_found first. A local-only route asked by a remote peer
// gets 403 forbidden. Then authorisation (AuthKind), then the
// handler. A handler that throws (a bug) gets 500 internal; the exception
// text is logged except for routes whose body is secret.
//
// Thread: handle() runs on the io_context thread. The Router keeps
// references to the DaemonControl, ApiToken and Metrics it was built with;
// they must outlive it.
#pragma once

#include <span>
#include <string_view>

#include "api/daemon_interface.hpp"
#include "api/http_types.hpp"
#include "api/log_sink.hpp"
#include "api/metrics.hpp"
#include "api/token.hpp"

namespace foundationd::api {

enum class AuthKind {
  none,           // anyone
  none_on_local,  // anyone on the Unix socket or loopback; a bearer token from elsewhere
  bearer,         // `Authorization: Bearer <api.token_file>`, compared in constant time
  hmac,           // the handler verifies an HMAC of the raw body itself (webhooks)
};
const char* authName(AuthKind auth) noexcept;

// What a handler may use.
struct RouteContext {
  DaemonControl& daemon;
  Metrics& metrics;
};

using Handler = Task<Response> (*)(RouteContext& ctx, const Request& request);

struct Route {
  std::string_view method;
  std::string_view path;
  AuthKind auth;
  Handler handler;
  bool secretBody = false;  // the body carries a secret: never logged, nor exception texts
  // Served only on the Unix socket and loopback (unseal, seal): a remote
  // peer gets 403 forbidden before any authorisation or handler runs.
  bool localOnly = false;
};

// Every route of the API (docs/api.md).
std::span<const Route> routeTable() noexcept;

class Router {
 public:
  Router(DaemonControl& daemon, const ApiToken& token, Metrics& metrics,
         LogSink log = stderrLogSink());
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Always completes with a response; never throws.
  Task<Response> handle(const Request& request);

  // The route a request would reach (nullptr for 404/405): the server uses
  // it to know whether a body is secret.
  static const Route* find(std::string_view method, std::string_view path) noexcept;

 private:
  // nullopt when allowed, else the 401 to send.
  std::optional<Response> authorize(const Route& route, const Request& request) const;

  RouteContext ctx_;
  const ApiToken& token_;
  LogSink log_;
};

}  // namespace foundationd::api
