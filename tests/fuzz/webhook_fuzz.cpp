// libFuzzer target: the webhook payload parser and signature check
// (api/webhook.hpp) on arbitrary bytes. Must never crash, hang or leak; a
// parsed push must hold a lower-case hex commit and a printable ref, and a
// signature made from the input must verify while any other must not.
// Built with -Dfuzz=true.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/webhook.hpp"

namespace api = foundationd::api;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto push = api::parsePushPayload(body);
  if (push) {
    if (push->after.size() != 40 && push->after.size() != 64) __builtin_trap();
    for (char c : push->after) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) __builtin_trap();
    }
    for (char c : push->ref) {
      if (c < 0x20 || c >= 0x7f) __builtin_trap();
    }
  } else {
    // A refusal is one of the fixed texts: it never quotes the body.
    static const std::string_view kFixed[] = {"is not valid JSON", "is not a JSON object",
                                              "has no string \"ref\"", "has no string \"after\"",
                                              "has an \"after\" that is not a commit id"};
    bool known = false;
    for (std::string_view f : kFixed)
      known |= push.error().message == "the push payload " + std::string(f);
    if (!known) __builtin_trap();
  }
  const std::string_view secret = "fuzz-secret";
  const std::string good = api::toHex(api::hmacSha256(secret, body));
  if (!api::verifySignature(secret, body, good)) __builtin_trap();
  // The input itself as a signature header: valid only if it is the digest.
  const std::string_view header = body.substr(0, 71);
  if (api::verifySignature(secret, body, header) && header != good && header != "sha256=" + good) {
    // Upper-case hex of the same digest is fine; anything else is a bug.
    std::string lower(header.rfind("sha256=", 0) == 0 ? header.substr(7) : header);
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    while (!lower.empty() && (lower.back() == ' ' || lower.back() == '\t')) lower.pop_back();
    if (lower != good) __builtin_trap();
  }
  return 0;
}
