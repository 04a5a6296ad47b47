// Result<T>: an expected failure as a value (STYLE.md "Errors").
//
// Header-only vocabulary shared by every layer; depends on nothing of ours.
// An Error carries a stable machine code (used by api/ to pick an HTTP status
// and by callers to branch) and a human message that says what, where and what
// to do. Messages never contain secret values.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace foundationd {

enum class ErrorCode {
  invalid_argument,  // the caller's input is wrong (bad spec value, bad request)
  not_found,         // the thing does not exist (404 from a peer)
  conflict,          // it exists in a way that prevents the operation (409)
  unavailable,       // the peer is down, unreachable or not ready
  timeout,           // a deadline passed
  protocol,          // the peer answered something we cannot understand
  peer,              // the peer reported an error (5xx, or an error body)
  io,                // local I/O failed
  internal,          // a bug
  wrong_passphrase,  // the master passphrase did not unlock the state
};

const char* toString(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  int httpStatus = 0;  // the peer's HTTP status when there was one

  static Error make(ErrorCode c, std::string msg, int status = 0) {
    return Error{c, std::move(msg), status};
  }
};

// A value or an Error. Deliberately small: no monadic chains, just checks.
template <typename T>
class [[nodiscard]] Result {
 public:
  // Asio's co_spawn default-constructs the result of an awaitable; an unset
  // Result reads as an internal error.
  Result() : v_(Error{ErrorCode::internal, "no result", 0}) {}
  Result(T value) : v_(std::move(value)) {}              // NOLINT(implicit)
  Result(Error error) : v_(std::move(error)) {}          // NOLINT(implicit)

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(v_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(implicit)
  static Status success() { return Status(); }

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const { assert(!ok_); return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline const char* toString(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::protocol: return "protocol";
    case ErrorCode::peer: return "peer";
    case ErrorCode::io: return "io";
    case ErrorCode::internal: return "internal";
    case ErrorCode::wrong_passphrase: return "wrong_passphrase";
  }
  return "internal";
}

}  // namespace foundationd
