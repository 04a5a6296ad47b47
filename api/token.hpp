// ApiToken: the bearer token that guards the mutating endpoints
// (INTERFACES.md "HTTP API", daemon config `api.token_file`).
//
// Contract:
// - Held in guarded memory (state::SecretBytes); compared in constant time
//   (sodium_memcmp; only the lengths, which are not secret, in variable time).
// - Never printed: no accessor returns the bytes, and error messages name the
//   file, never its content.
// - Move-only; immutable after construction, so concurrent matches() calls
//   from several threads are safe.
#pragma once

#include <filesystem>
#include <string_view>

#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::api {

class ApiToken {
 public:
  // Tokens shorter than this are refused (a typo, not a secret).
  static constexpr std::size_t kMinLength = 16;
  static constexpr std::size_t kMaxFileBytes = 4096;
  static constexpr std::size_t kGeneratedBytes = 32;  // hex-encoded: 64 characters

  // Reads the token from `file` (leading and trailing whitespace ignored).
  // When the file does not exist, generates kGeneratedBytes random bytes and
  // writes their hex form plus "\n" to it, mode 0600, created exclusively
  // (O_EXCL, no symlink followed) and fsynced, creating missing parent
  // directories with mode 0700; generated() then says so.
  // Errors: io (unreadable, or cannot be created: e.g. a read-only /etc under
  // systemd's ProtectSystem=strict; the message says what to do),
  // invalid_argument (empty or shorter than kMinLength, larger than
  // kMaxFileBytes, or readable/writable by "other").
  static Result<ApiToken> loadOrCreate(const std::filesystem::path& file);

  // A token from memory (tests, and the CLI's client side).
  static ApiToken fromString(std::string_view token);

  ApiToken(ApiToken&&) noexcept = default;
  ApiToken& operator=(ApiToken&&) noexcept = default;
  ApiToken(const ApiToken&) = delete;
  ApiToken& operator=(const ApiToken&) = delete;

  // Constant-time comparison with what a client presented. An empty token
  // never matches.
  bool matches(std::string_view presented) const noexcept;

  // The file did not exist and loadOrCreate() wrote it.
  bool generated() const noexcept { return generated_; }

 private:
  ApiToken(state::SecretBytes token, bool generated)
      : token_(std::move(token)), generated_(generated) {}

  state::SecretBytes token_;
  bool generated_ = false;
};

}  // namespace foundationd::api
