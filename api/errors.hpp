// The one place that maps errors to HTTP statuses (STYLE.md "Errors", like
// PowerDNS's exception-to-status table), and the error body format:
//   {"error": {"code": "wrong_passphrase", "message": "..."}}
//
// ApiError is every stable `code` a client can see: the daemon's ErrorCode
// values under the same names, plus the API's own. Codes are part of the
// interface (docs/api.md): add new ones, never rename.
#pragma once

#include <string>

#include "api/http_types.hpp"
#include "common/result.hpp"

namespace foundationd::api {

enum class ApiError {
  // The daemon's ErrorCode values (same names on the wire).
  invalid_argument,
  not_found,
  conflict,
  unavailable,
  timeout,
  protocol,
  peer,
  io,
  internal,
  wrong_passphrase,
  // The API's own.
  bad_request,           // unparseable HTTP, bad query parameter
  malformed_json,        // the body is not the JSON the endpoint expects
  unauthorized,          // missing or wrong bearer token
  method_not_allowed,    // known path, other method (Allow says which)
  payload_too_large,     // body over the limit (64 KiB)
  header_too_large,      // request head over the parser's limit
  rate_limited,          // unseal backoff (Retry-After says when)
  not_initialized,       // no state store yet
  locked,                // the operation needs the unlocked state
  not_ready,             // /readyz
  too_many_connections,  // connection cap reached
  forbidden,             // the route is not served to this peer (unseal/seal from a remote host)
};

// The wire name, e.g. "wrong_passphrase".
const char* codeName(ApiError code) noexcept;

// THE mapping from an error to its HTTP status. Everything that answers an
// error goes through here.
int httpStatus(ApiError code) noexcept;

// The daemon's ErrorCode as the API's (same name).
ApiError fromErrorCode(ErrorCode code) noexcept;

// An error response: status from httpStatus(), the JSON body above.
// `message` must not contain a secret.
Response errorResponse(ApiError code, const std::string& message);
// A daemon Error, mapped.
Response errorResponse(const Error& error);

}  // namespace foundationd::api
