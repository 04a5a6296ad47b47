#include "api/errors.hpp"

namespace foundationd::api {

const char* codeName(ApiError code) noexcept {
  switch (code) {
    case ApiError::invalid_argument:
      return "invalid_argument";
    case ApiError::not_found:
      return "not_found";
    case ApiError::conflict:
      return "conflict";
    case ApiError::unavailable:
      return "unavailable";
    case ApiError::timeout:
      return "timeout";
    case ApiError::protocol:
      return "protocol";
    case ApiError::peer:
      return "peer";
    case ApiError::io:
      return "io";
    case ApiError::internal:
      return "internal";
    case ApiError::wrong_passphrase:
      return "wrong_passphrase";
    case ApiError::bad_request:
      return "bad_request";
    case ApiError::malformed_json:
      return "malformed_json";
    case ApiError::unauthorized:
      return "unauthorized";
    case ApiError::method_not_allowed:
      return "method_not_allowed";
    case ApiError::payload_too_large:
      return "payload_too_large";
    case ApiError::header_too_large:
      return "header_too_large";
    case ApiError::rate_limited:
      return "rate_limited";
    case ApiError::not_initialized:
      return "not_initialized";
    case ApiError::locked:
      return "locked";
    case ApiError::not_ready:
      return "not_ready";
    case ApiError::too_many_connections:
      return "too_many_connections";
    case ApiError::forbidden:
      return "forbidden";
  }
  return "internal";
}

int httpStatus(ApiError code) noexcept {
  switch (code) {
    case ApiError::invalid_argument:
      return 400;
    case ApiError::bad_request:
      return 400;
    case ApiError::malformed_json:
      return 400;
    case ApiError::unauthorized:
      return 401;
    case ApiError::wrong_passphrase:
      return 403;
    case ApiError::forbidden:
      return 403;
    case ApiError::not_found:
      return 404;
    case ApiError::method_not_allowed:
      return 405;
    case ApiError::conflict:
      return 409;
    case ApiError::not_initialized:
      return 409;
    case ApiError::payload_too_large:
      return 413;
    case ApiError::rate_limited:
      return 429;
    case ApiError::header_too_large:
      return 431;
    case ApiError::io:
      return 500;
    case ApiError::internal:
      return 500;
    case ApiError::protocol:
      return 502;  // a peer (Docker, Vault) answered nonsense
    case ApiError::peer:
      return 502;  // a peer reported an error
    case ApiError::unavailable:
      return 503;
    case ApiError::locked:
      return 503;
    case ApiError::not_ready:
      return 503;
    case ApiError::too_many_connections:
      return 503;
    case ApiError::timeout:
      return 504;
  }
  return 500;
}

ApiError fromErrorCode(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return ApiError::invalid_argument;
    case ErrorCode::not_found:
      return ApiError::not_found;
    case ErrorCode::conflict:
      return ApiError::conflict;
    case ErrorCode::unavailable:
      return ApiError::unavailable;
    case ErrorCode::timeout:
      return ApiError::timeout;
    case ErrorCode::protocol:
      return ApiError::protocol;
    case ErrorCode::peer:
      return ApiError::peer;
    case ErrorCode::io:
      return ApiError::io;
    case ErrorCode::internal:
      return ApiError::internal;
    case ErrorCode::wrong_passphrase:
      return ApiError::wrong_passphrase;
  }
  return ApiError::internal;
}

Response errorResponse(ApiError code, const std::string& message) {
  nlohmann::json body = {{"error", {{"code", codeName(code)}, {"message", message}}}};
  return Response::json(httpStatus(code), body);
}

Response errorResponse(const Error& error) {
  return errorResponse(fromErrorCode(error.code), error.message);
}

}  // namespace foundationd::api
