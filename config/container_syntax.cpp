#include "config/container_syntax.hpp"

#include <vector>

#include "config/names.hpp"

namespace foundationd::config {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == s.npos ? s.npos : pos - start));
    if (pos == s.npos) return parts;
    start = pos + 1;
  }
}

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

std::optional<std::string> portProblem(std::string_view p, std::string_view which) {
  if (p.find('-') != p.npos) return "port ranges are not supported; list each port";
  if (!parsePort(p)) {
    return "invalid " + std::string(which) + " port " + q(p) + " (expected 1-65535)";
  }
  return std::nullopt;
}

}  // namespace

std::variant<Mount, std::string> parseMount(std::string_view text) {
  const auto parts = split(text, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return std::string("expected \"source:target\" or \"source:target:ro\"");
  }
  Mount m;
  m.source = std::string(parts[0]);
  m.target = std::string(parts[1]);
  if (m.source.empty()) return std::string("has an empty source");
  if (m.source.front() == '/') {
    m.bind = true;
    if (auto problem = absolutePathProblem(m.source, true)) return "bind source " + *problem;
  } else if (m.source.front() == '.' || m.source.front() == '~') {
    return "relative bind source " + q(m.source) + ": use an absolute path";
  } else if (!isDockerName(m.source)) {
    return "invalid volume name " + q(m.source) + ": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*";
  }
  if (auto problem = absolutePathProblem(m.target)) return "target " + *problem;
  if (parts.size() == 3) {
    if (parts[2] == "ro") {
      m.readOnly = true;
    } else if (parts[2] != "rw") {
      return "unknown mode " + q(parts[2]) + " (expected ro or rw)";
    }
  }
  return m;
}

std::variant<PortMapping, std::string> parsePortMapping(std::string_view text) {
  PortMapping p;
  std::string_view rest = text;
  if (const std::size_t slash = rest.rfind('/'); slash != rest.npos) {
    const std::string_view proto = rest.substr(slash + 1);
    if (proto != "tcp" && proto != "udp" && proto != "sctp") {
      return "unknown protocol " + q(proto) + " (expected tcp, udp or sctp)";
    }
    p.protocol = std::string(proto);
    rest = rest.substr(0, slash);
  }
  std::vector<std::string_view> ports;
  bool haveIp = false;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == rest.npos) return std::string("has an unterminated IPv6 address");
    const std::string_view ip = rest.substr(1, close - 1);
    if (!isIpv6(ip)) return "invalid IPv6 host address " + q(ip);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      return std::string("expected \":host-port:container-port\" after the IPv6 address");
    }
    p.hostIp = std::string(ip);
    haveIp = true;
    ports = split(rest.substr(close + 2), ':');
    if (ports.size() != 2) {
      return std::string("expected \"[ipv6]:host-port:container-port\"");
    }
  } else {
    auto parts = split(rest, ':');
    if (parts.size() > 3) {
      return std::string("expected \"[host-ip:][host-port:]container-port[/proto]\"; write an "
                         "IPv6 host address in brackets, e.g. \"[::1]:8080:80\"");
    }
    if (parts.size() == 3) {
      if (!isIpv4(parts[0])) {
        return "invalid host address " + q(parts[0]) +
               " (IPv4, or IPv6 in brackets like \"[::1]\")";
      }
      p.hostIp = std::string(parts[0]);
      haveIp = true;
      parts.erase(parts.begin());
    }
    ports = parts;
  }
  if (ports.size() == 2) {
    if (ports[0].empty() && haveIp) {
      return std::string("a host port is required when a host address is given");
    }
    if (auto problem = portProblem(ports[0], "host")) return *problem;
    p.hostPort = *parsePort(ports[0]);
  }
  if (auto problem = portProblem(ports.back(), "container")) return *problem;
  p.containerPort = *parsePort(ports.back());
  return p;
}

std::optional<std::string> tmpfsProblem(std::string_view text) {
  const std::size_t colon = text.find(':');
  const std::string_view path = text.substr(0, colon);
  if (auto problem = absolutePathProblem(path)) return "path " + *problem;
  if (colon != text.npos) {
    const std::string_view options = text.substr(colon + 1);
    if (options.empty()) return std::string("has empty options after \":\"");
    for (char c : options) {
      if (static_cast<unsigned char>(c) <= 0x20) {
        return std::string("options must not contain spaces");
      }
    }
  }
  return std::nullopt;
}

std::optional<std::string> imageProblem(std::string_view image) {
  if (image.empty()) return std::string("must not be empty");
  for (char c : image) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return std::string("must not contain spaces or control characters");
    }
  }
  std::string_view name = image;
  if (const std::size_t at = image.find('@'); at != image.npos) {
    const std::string_view digest = image.substr(at + 1);
    bool ok = digest.size() == 7 + 64 && digest.substr(0, 7) == "sha256:";
    for (std::size_t i = 7; ok && i < digest.size(); ++i) ok = isLowerHex(digest[i]);
    if (!ok) {
      return "has a malformed digest " + q(digest) +
             "; expected \"sha256:\" followed by 64 lowercase hex digits";
    }
    name = image.substr(0, at);
  }
  const std::size_t slash = name.rfind('/');
  const std::size_t colon = name.rfind(':');
  if (colon != name.npos && (slash == name.npos || colon > slash)) {
    const std::string_view tag = name.substr(colon + 1);
    bool ok = !tag.empty() && tag.size() <= 128 && tag.front() != '.' && tag.front() != '-';
    for (char c : tag) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-');
    }
    if (!ok) return "has an invalid tag " + q(tag);
    name = name.substr(0, colon);
  }
  if (name.empty()) return std::string("has no repository name");
  for (const auto& component : split(name, '/')) {
    if (component.empty()) return std::string("has an empty path component");
  }
  // The registry host (first component, when it has a '.' or ':' or is
  // "localhost") may carry a port; the repository path must be lowercase.
  const std::size_t firstSlash = name.find('/');
  std::string_view path = name;
  if (firstSlash != name.npos) {
    const std::string_view host = name.substr(0, firstSlash);
    if (host.find_first_of(".:") != host.npos || host == "localhost") {
      path = name.substr(firstSlash + 1);
    }
  }
  for (char c : path) {
    if (c >= 'A' && c <= 'Z') return std::string("repository name must be lowercase");
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-' || c == '/';
    if (!ok) return "has an invalid character " + q(std::string_view(&c, 1)) + " in its name";
  }
  return std::nullopt;
}

// A repository digest (`name@sha256:...`) or an image ID (`sha256:<64 hex>`,
// what `docker import` images have): both name exactly one image.
bool imagePinned(std::string_view image) {
  if (image.find('@') != image.npos) return true;
  if (image.size() != 7 + 64 || image.substr(0, 7) != "sha256:") return false;
  for (char c : image.substr(7)) {
    if (!isLowerHex(c)) return false;
  }
  return true;
}

}  // namespace foundationd::config
