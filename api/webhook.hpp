// POST /v1/hooks/forgejo: the pure parts (signature and payload), exposed
// for the handler, the unit tests (RFC 4231 vectors) and the fuzz target.
//
// Forgejo (and Gitea, which it forked from) signs every delivery with
// HMAC-SHA256 of the raw body under the webhook's secret and sends the hex
// digest in X-Forgejo-Signature (X-Gitea-Signature). libsodium computes the
// HMAC (crypto_auth_hmacsha256_*, any key length) and compares in constant
// time. Nothing here logs; no message quotes the body or the secret.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "api/daemon_interface.hpp"
#include "api/http_types.hpp"
#include "common/result.hpp"

namespace foundationd::api {

// HMAC-SHA256(key, message).
std::array<std::uint8_t, 32> hmacSha256(std::string_view key, std::string_view message);
std::string toHex(const std::array<std::uint8_t, 32>& digest);

// Whether `signatureHex` (64 hex digits, either case; an optional "sha256="
// prefix is accepted) is the HMAC of `body` under `secret`. Constant time in
// the digest; false for anything malformed.
bool verifySignature(std::string_view secret, std::string_view body,
                     std::string_view signatureHex) noexcept;

// The signature, event and delivery-id headers of a request: the X-Forgejo-*
// header when present, else X-Gitea-* ("" when neither).
struct WebhookHeaders {
  std::string_view signature;
  std::string_view event;
  std::string_view delivery;
};
WebhookHeaders webhookHeaders(const Request& request) noexcept;

// The parts of a push payload the daemon acts on. invalid_argument for
// anything that is not a JSON object with a string "ref" and a commit id
// (hex) in "after"; the message locates the problem, never quotes the body.
Result<PushEvent> parsePushPayload(std::string_view body);

// The parts of a pull_request payload the daemon acts on: "action", "number",
// pull_request.head.sha (a commit id) and pull_request.base.ref. The same
// located refusals as parsePushPayload.
Result<PullRequestEvent> parsePullRequestPayload(std::string_view body);

}  // namespace foundationd::api
