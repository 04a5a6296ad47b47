#include "api/webhook.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "state/secret.hpp"

namespace foundationd::api {
namespace {

bool isCommitId(std::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

Error bad(const std::string& what, const char* kind = "push") {
  return Error::make(ErrorCode::invalid_argument,
                     std::string("the ") + kind + " payload " + what);
}

}  // namespace

std::array<std::uint8_t, 32> hmacSha256(std::string_view key, std::string_view message) {
  state::ensureSodium();
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(message.data()),
                                message.size());
  std::array<std::uint8_t, 32> out{};
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

std::string toHex(const std::array<std::uint8_t, 32>& digest) {
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, digest.data(), digest.size());
  return hex;
}

bool verifySignature(std::string_view secret, std::string_view body,
                     std::string_view signatureHex) noexcept {
  if (signatureHex.rfind("sha256=", 0) == 0) signatureHex.remove_prefix(7);
  while (!signatureHex.empty() && (signatureHex.back() == ' ' || signatureHex.back() == '\t')) {
    signatureHex.remove_suffix(1);
  }
  if (signatureHex.size() != 64 || secret.empty()) return false;
  std::array<std::uint8_t, 32> given{};
  std::size_t len = 0;
  if (sodium_hex2bin(given.data(), given.size(), signatureHex.data(), signatureHex.size(), nullptr,
                     &len, nullptr) != 0 ||
      len != given.size()) {
    return false;
  }
  try {
    const auto expected = hmacSha256(secret, body);
    return sodium_memcmp(given.data(), expected.data(), expected.size()) == 0;
  } catch (...) {
    return false;
  }
}

WebhookHeaders webhookHeaders(const Request& request) noexcept {
  auto pick = [&](std::string_view forgejo, std::string_view gitea) {
    const std::string_view v = request.header(forgejo);
    return v.empty() ? request.header(gitea) : v;
  };
  return {pick("X-Forgejo-Signature", "X-Gitea-Signature"),
          pick("X-Forgejo-Event", "X-Gitea-Event"), pick("X-Forgejo-Delivery", "X-Gitea-Delivery")};
}

Result<PushEvent> parsePushPayload(std::string_view body) {
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded()) return bad("is not valid JSON");
  if (!doc.is_object()) return bad("is not a JSON object");
  PushEvent push;
  const auto ref = doc.find("ref");
  if (ref == doc.end() || !ref->is_string()) return bad("has no string \"ref\"");
  push.ref = printable(ref->get<std::string>(), 300);
  const auto after = doc.find("after");
  if (after == doc.end() || !after->is_string()) return bad("has no string \"after\"");
  const auto& afterText = after->get_ref<const std::string&>();
  if (!isCommitId(afterText)) return bad("has an \"after\" that is not a commit id");
  push.after = lower(afterText);
  if (const auto before = doc.find("before"); before != doc.end() && before->is_string() &&
                                              isCommitId(before->get_ref<const std::string&>())) {
    push.before = lower(before->get_ref<const std::string&>());
  }
  push.deleted = push.after.find_first_not_of('0') == std::string::npos;
  if (const auto repo = doc.find("repository"); repo != doc.end() && repo->is_object()) {
    if (const auto name = repo->find("full_name"); name != repo->end() && name->is_string()) {
      push.repository = printable(name->get_ref<const std::string&>(), 200);
    }
  }
  return push;
}

Result<PullRequestEvent> parsePullRequestPayload(std::string_view body) {
  constexpr const char* kind = "pull_request";
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded()) return bad("is not valid JSON", kind);
  if (!doc.is_object()) return bad("is not a JSON object", kind);
  PullRequestEvent pr;
  const auto action = doc.find("action");
  if (action == doc.end() || !action->is_string()) return bad("has no string \"action\"", kind);
  pr.action = printable(action->get<std::string>(), 64);
  const auto number = doc.find("number");
  if (number == doc.end() || !number->is_number_integer() || number->get<std::int64_t>() <= 0)
    return bad("has no positive integer \"number\"", kind);
  pr.number = number->get<std::int64_t>();
  const auto pull = doc.find("pull_request");
  if (pull == doc.end() || !pull->is_object()) return bad("has no object \"pull_request\"", kind);
  const auto head = pull->find("head");
  const auto base = pull->find("base");
  if (head == pull->end() || !head->is_object() || !head->contains("sha") ||
      !(*head)["sha"].is_string() || !isCommitId((*head)["sha"].get_ref<const std::string&>()))
    return bad("has no commit id in \"pull_request.head.sha\"", kind);
  pr.headSha = lower((*head)["sha"].get_ref<const std::string&>());
  if (base == pull->end() || !base->is_object() || !base->contains("ref") ||
      !(*base)["ref"].is_string())
    return bad("has no string \"pull_request.base.ref\"", kind);
  pr.baseRef = printable((*base)["ref"].get_ref<const std::string&>(), 300);
  if (const auto repo = doc.find("repository"); repo != doc.end() && repo->is_object()) {
    if (const auto name = repo->find("full_name"); name != repo->end() && name->is_string()) {
      pr.repository = printable(name->get_ref<const std::string&>(), 200);
    }
  }
  return pr;
}

}  // namespace foundationd::api
