#include "api/http_types.hpp"

#include <cctype>
#include <vector>

#include <pwd.h>

namespace foundationd::api {
namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

int hexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 &&
               hexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

const char* peerName(PeerKind peer) noexcept {
  switch (peer) {
    case PeerKind::unix_socket:
      return "unix";
    case PeerKind::loopback:
      return "loopback";
    case PeerKind::remote:
      return "remote";
  }
  return "remote";
}

std::string describeCredentials(const PeerCredentials& who) {
  std::string out = "uid " + std::to_string(who.uid);
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(who.uid, &entry, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr) {
    out += " (" + std::string(found->pw_name) + ")";
  }
  out += ", pid " + std::to_string(who.pid);
  return out;
}

std::string_view findHeader(const Headers& headers, std::string_view name) noexcept {
  for (const auto& [k, v] : headers) {
    if (equalsIgnoreCase(k, name)) return v;
  }
  return {};
}

std::string_view Request::path() const noexcept {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
  const std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::optional<std::string> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const std::string key = percentDecode(pair.substr(0, eq));
    if (key != name) continue;
    if (eq == std::string_view::npos) return std::string{};
    return percentDecode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

Response Response::json(int status, const nlohmann::json& value) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  // `replace`: a stray invalid UTF-8 byte must not turn an answer into a throw.
  r.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.body += '\n';
  return r;
}

Response Response::text(int status, std::string body, std::string contentType) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", std::move(contentType));
  r.body = std::move(body);
  return r;
}

}  // namespace foundationd::api
