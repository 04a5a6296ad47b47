#include "config/names.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace foundationd::config {

namespace {

bool isAlnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool isLowerAlnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isDigit(char c) noexcept { return c >= '0' && c <= '9'; }

bool startsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool endsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Visits the '/'-separated segments of `s`; stops at the first that fails.
template <typename F>
std::optional<std::string> eachSegment(std::string_view s, F check) {
  std::size_t start = 0;
  while (true) {
    const std::size_t end = s.find('/', start);
    auto problem = check(s.substr(start, end == s.npos ? s.npos : end - start));
    if (problem) return problem;
    if (end == s.npos) return std::nullopt;
    start = end + 1;
  }
}

std::optional<std::string> segmentProblem(std::string_view seg) {
  if (seg.empty()) return "must not contain empty segments (\"//\")";
  if (seg == "." || seg == "..") return "must not contain \".\" or \"..\" segments";
  return std::nullopt;
}

}  // namespace

bool isDockerName(std::string_view s) noexcept {
  if (s.empty() || !isAlnum(s[0])) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool isCredentialName(std::string_view s) noexcept {
  if (s.empty() || !isAlnum(s[0])) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

bool isIdentifier(std::string_view s) noexcept {
  if (s.empty() || isDigit(s[0])) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '_') return false;
  }
  return true;
}

std::optional<std::string> postgresNameProblem(std::string_view s) {
  if (!isIdentifier(s)) return "must match [A-Za-z_][A-Za-z0-9_]*";
  if (s.size() > 63) return "must be at most 63 characters (PostgreSQL truncates longer names)";
  if (startsWith(s, "pg_")) return "must not start with \"pg_\" (reserved by PostgreSQL)";
  return std::nullopt;
}

std::optional<std::string> bucketNameProblem(std::string_view s) {
  if (s.size() < 3 || s.size() > 63) return "must be 3 to 63 characters long";
  for (char c : s) {
    if (!isLowerAlnum(c) && c != '.' && c != '-') {
      return "may contain only lowercase letters, digits, dots and hyphens";
    }
  }
  if (!isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) {
    return "must begin and end with a lowercase letter or a digit";
  }
  if (s.find("..") != s.npos) return "must not contain two adjacent dots";
  if (isIpv4(s)) return "must not be formatted as an IP address";
  if (startsWith(s, "xn--") || startsWith(s, "sthree-")) {
    return "must not start with \"xn--\" or \"sthree-\"";
  }
  if (endsWith(s, "-s3alias") || endsWith(s, "--ol-s3")) {
    return "must not end with \"-s3alias\" or \"--ol-s3\"";
  }
  return std::nullopt;
}

std::optional<std::string> forgejoNameProblem(std::string_view s) {
  // Forgejo's username rule: alphanumerics, '-', '_' and '.', starting and
  // ending with an alphanumeric, no two non-alphanumerics in a row.
  if (s.empty() || s.size() > 40) return "must be 1 to 40 characters long";
  if (!isAlnum(s.front()) || !isAlnum(s.back())) {
    return "must begin and end with a letter or a digit";
  }
  char prev = 'a';
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "may contain only letters, digits, '-', '_' and '.'";
    }
    if (!isAlnum(c) && !isAlnum(prev)) return "must not contain two non-alphanumerics in a row";
    prev = c;
  }
  return std::nullopt;
}

std::optional<std::string> forgejoActionsNameProblem(std::string_view s) {
  // Gitea/Forgejo (services/secrets/validation.go): (?i)^[A-Z_][A-Z0-9_]*$ and
  // not (?i)^GIT(EA|HUB)_ (nor FORGEJO_); names are stored upper-cased, so "key" and "KEY"
  // would be one secret: only upper case is accepted here.
  if (s.empty()) return "must not be empty";
  if (s.front() >= '0' && s.front() <= '9') return "must not start with a digit";
  for (char c : s) {
    if (c >= 'a' && c <= 'z') {
      return "must be upper case (the forge stores names upper-cased)";
    }
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return "may contain only A-Z, 0-9 and '_'";
    }
  }
  // FORGEJO_ too: Forgejo's runner sets FORGEJO_* variables of its own.
  for (const char* reserved : {"GITEA_", "GITHUB_", "FORGEJO_"}) {
    if (s.rfind(reserved, 0) == 0) {
      return "must not start with " + std::string(reserved) + " (reserved by the forge)";
    }
  }
  return std::nullopt;
}

std::optional<std::string> forgejoRepoNameProblem(std::string_view s) {
  if (s.empty() || s.size() > 100) return "must be 1 to 100 characters long";
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "may contain only letters, digits, '-', '_' and '.'";
    }
  }
  if (s == "." || s == "..") return "must not be \".\" or \"..\"";
  if (endsWith(s, ".git") || endsWith(s, ".wiki")) {
    return "must not end with \".git\" or \".wiki\"";
  }
  return std::nullopt;
}

std::optional<std::string> vaultPathProblem(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.front() == '/') return "must be relative to the KV mount (no leading \"/\")";
  return eachSegment(s, segmentProblem);
}

std::optional<std::string> absolutePathProblem(std::string_view s, bool allowRoot) {
  if (s.empty() || s.front() != '/') return "must be an absolute path";
  if (s.find('\0') != s.npos) return "must not contain NUL";
  if (s == "/") {
    if (allowRoot) return std::nullopt;
    return "must not be \"/\"";
  }
  std::string_view rest = s.substr(1);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);  // "/data/" is "/data"
  return eachSegment(rest, segmentProblem);
}

std::optional<std::string> httpUrlProblem(std::string_view s) {
  std::string_view rest;
  if (startsWith(s, "http://")) {
    rest = s.substr(7);
  } else if (startsWith(s, "https://")) {
    rest = s.substr(8);
  } else {
    return "must start with http:// or https://";
  }
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return "must not contain spaces or control characters";
    }
  }
  const std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != authority.npos) {
    return "must not contain user information (credentials in a URL would leak)";
  }
  std::string_view host = authority;
  std::string_view port;
  if (startsWith(authority, "[")) {
    const std::size_t close = authority.find(']');
    if (close == authority.npos) return "has an unterminated IPv6 address";
    host = authority.substr(1, close - 1);
    if (!isIpv6(host)) return "has an invalid IPv6 address";
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "has garbage after the IPv6 address";
      port = after.substr(1);
      if (port.empty()) return "has an empty port";
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    if (colon != authority.npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return "has an empty port";
    }
    if (host.empty()) return "has no host";
    for (char c : host) {
      if (!isAlnum(c) && c != '.' && c != '-' && c != '_') return "has an invalid host";
    }
  }
  if (!port.empty() && !parsePort(port)) return "has an invalid port (1-65535)";
  return std::nullopt;
}

bool isIpv4(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.find('\0') != s.npos) return false;
  std::array<char, 16> buf{};
  std::memcpy(buf.data(), s.data(), s.size());
  in_addr addr{};
  return inet_pton(AF_INET, buf.data(), &addr) == 1;
}

bool isIpv6(std::string_view s) {
  if (s.empty() || s.size() > 45 || s.find('\0') != s.npos) return false;
  std::array<char, 46> buf{};
  std::memcpy(buf.data(), s.data(), s.size());
  in6_addr addr{};
  return inet_pton(AF_INET6, buf.data(), &addr) == 1;
}

std::optional<std::string> cidrProblem(std::string_view s) {
  const std::size_t slash = s.find('/');
  if (slash == s.npos) return "must be an address and a prefix length, e.g. \"10.20.0.0/16\"";
  const std::string addr(s.substr(0, slash));
  const std::string_view lenText = s.substr(slash + 1);
  const bool v4 = isIpv4(addr);
  if (!v4 && !isIpv6(addr)) return "has an invalid IP address";
  const int maxLen = v4 ? 32 : 128;
  int len = 0;
  if (lenText.empty() || lenText.size() > 3) return "has an invalid prefix length";
  for (char c : lenText) {
    if (!isDigit(c)) return "has an invalid prefix length";
    len = len * 10 + (c - '0');
  }
  if (len > maxLen) return "has a prefix length over " + std::to_string(maxLen);

  std::array<unsigned char, 16> bytes{};
  inet_pton(v4 ? AF_INET : AF_INET6, addr.c_str(), bytes.data());
  const int total = v4 ? 4 : 16;
  bool hostBits = false;
  for (int i = 0; i < total; ++i) {
    const int keep = std::max(0, std::min(8, len - i * 8));
    const unsigned char mask = keep == 0 ? 0 : static_cast<unsigned char>(0xff << (8 - keep));
    if (bytes[i] & ~mask) hostBits = true;
    bytes[i] &= mask;
  }
  if (hostBits) {
    std::array<char, INET6_ADDRSTRLEN> out{};
    inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), out.data(), out.size());
    return "has host bits set; did you mean \"" + std::string(out.data()) + "/" +
           std::to_string(len) + "\"?";
  }
  return std::nullopt;
}

std::optional<std::uint16_t> parsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  int n = 0;
  for (char c : s) {
    if (!isDigit(c)) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n < 1 || n > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(n);
}

}  // namespace foundationd::config
