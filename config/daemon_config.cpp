#include "config/daemon_config.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "config/names.hpp"
#include "config/toml_reader.hpp"

namespace foundationd::config {

namespace {

using detail::quote;
using detail::TomlReader;
using detail::Where;

// "unix:/abs/path" or "tcp:host:port" (IPv6 hosts in brackets).
std::optional<std::string> listenProblem(std::string_view s) {
  if (s.rfind("unix:", 0) == 0) {
    if (auto problem = absolutePathProblem(s.substr(5))) return "socket path " + *problem;
    return std::nullopt;
  }
  if (s.rfind("tcp:", 0) != 0) return "expected \"unix:/path\" or \"tcp:host:port\"";
  std::string_view rest = s.substr(4);
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == rest.npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return "expected \"tcp:[ipv6]:port\"";
    }
    host = rest.substr(1, close - 1);
    if (!isIpv6(host)) return "has an invalid IPv6 address";
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == rest.npos) return "expected \"tcp:host:port\"";
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) return "has no host";
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-';
      if (!ok) return "has an invalid host (write IPv6 addresses in brackets)";
    }
  }
  if (!parsePort(port)) return "has an invalid port (1-65535)";
  return std::nullopt;
}

std::optional<std::string> gitUrlProblem(std::string_view s) {
  for (std::string_view scheme : {"https://", "http://", "ssh://", "git://", "file://"}) {
    if (s.rfind(scheme, 0) == 0) {
      if (s.size() == scheme.size()) return "has nothing after the scheme";
      if (s.find_first_of(" \t\r\n") != s.npos) return "must not contain spaces";
      return std::nullopt;
    }
  }
  // scp-like "user@host:path"
  const auto colon = s.find(':');
  const auto at = s.find('@');
  if (at != s.npos && colon != s.npos && at > 0 && colon > at + 1 && colon + 1 < s.size() &&
      s.find_first_of(" \t\r\n") == s.npos) {
    return std::nullopt;
  }
  return "expected an https://, http://, ssh://, git:// or file:// URL, or user@host:path";
}

// The authority of a scheme://authority/path URL ("" when none).
std::string_view urlAuthority(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == url.npos) return {};
  std::string_view rest = url.substr(scheme + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

// Credentials written into an http(s):// or git:// URL (user:password@ or
// token@). ssh:// and user@host:path name a login, not a secret.
bool urlHasCredentials(std::string_view url) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0 &&
      url.rfind("git://", 0) != 0) {
    return false;
  }
  return urlAuthority(url).find('@') != std::string_view::npos;
}

// http://localhost, 127.x.y.z or [::1]: plain HTTP that never leaves the host.
bool isLoopbackHttp(std::string_view url) {
  if (url.rfind("http://", 0) != 0) return false;
  std::string_view host = urlAuthority(url);
  if (host.rfind("[::1]", 0) == 0) return true;
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

// "${credentials.NAME.FIELD}" and nothing else.
std::optional<CredentialRef> parseCredentialRef(std::string_view s) {
  constexpr std::string_view prefix = "${credentials.";
  if (s.rfind(prefix, 0) != 0 || s.size() <= prefix.size() || s.back() != '}') return std::nullopt;
  const std::string_view body = s.substr(prefix.size(), s.size() - prefix.size() - 1);
  const auto dot = body.find('.');
  if (dot == body.npos) return std::nullopt;
  CredentialRef ref{std::string(body.substr(0, dot)), std::string(body.substr(dot + 1))};
  if (!isCredentialName(ref.name) || !isIdentifier(ref.field)) return std::nullopt;
  return ref;
}

class DaemonConfigParser {
 public:
  DaemonConfigParser(TomlReader& r, const toml::table& root) : r_(r), root_(root) {}

  DaemonConfig run() {
    r_.checkKeys(root_, {"state_dir", "api", "docker", "source", "reconcile", "unlock"}, Where{});
    path(root_, "state_dir", Where{}, c_.stateDir);
    api();
    if (const toml::table* t = r_.table(root_, "docker", Where{})) {
      const Where w{"docker"};
      r_.checkKeys(*t, {"socket"}, w);
      path(*t, "socket", w, c_.dockerSocket);
    }
    source();
    if (const toml::table* t = r_.table(root_, "reconcile", Where{})) {
      const Where w{"reconcile"};
      r_.checkKeys(*t, {"resync_interval"}, w);
      positive(*t, "resync_interval", w, c_.resyncInterval);
    }
    unlock();
    return std::move(c_);
  }

 private:
  void path(const toml::table& t, std::string_view key, const Where& w, std::string& out) {
    auto p = r_.string(t, key, w);
    if (!p) return;
    if (auto problem = absolutePathProblem(*p)) {
      r_.error(r_.loc(*t.get(key)), quote(key) + " " + w.in() + " " + *problem);
      return;
    }
    out = *p;
  }

  void positive(const toml::table& t, std::string_view key, const Where& w, Duration& out) {
    auto d = r_.duration(t, key, w);
    if (!d) return;
    if (d->count() <= 0) {
      r_.error(r_.loc(*t.get(key)), quote(key) + " " + w.in() + " must be positive");
      return;
    }
    out = *d;
  }

  void api() {
    const toml::table* t = r_.table(root_, "api", Where{});
    if (!t) return;
    const Where w{"api"};
    r_.checkKeys(*t, {"listen", "webhook_listen", "token_file"}, w);
    std::map<std::string, std::string> seen;  // address -> the key it is in
    if (const toml::array* listen = r_.array(*t, "listen", w)) {
      if (listen->empty()) r_.error(r_.loc(*listen), "\"listen\" " + w.in() + " must not be empty");
      c_.apiListen = addresses(*listen, "listen", w, seen);
    } else {
      for (const std::string& a : c_.apiListen) seen.emplace(a, "listen");
    }
    // The forge's door: an address that serves the webhooks and nothing else.
    if (const toml::array* hooks = r_.array(*t, "webhook_listen", w)) {
      c_.apiWebhookListen = addresses(*hooks, "webhook_listen", w, seen);
    }
    path(*t, "token_file", w, c_.apiTokenFile);
  }

  std::vector<std::string> addresses(const toml::array& list, const std::string& key,
                                     const Where& w, std::map<std::string, std::string>& seen) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const toml::node& node = *list.get(i);
      const std::string what = quote(key + "[" + std::to_string(i) + "]");
      if (!node.is_string()) {
        r_.typeError(node, "a string", what, w);
        continue;
      }
      const std::string& addr = node.as_string()->get();
      if (auto problem = listenProblem(addr)) {
        r_.error(r_.loc(node), "invalid " + key + " address " + quote(addr) + " " + w.in() + ": " +
                                   *problem);
        continue;
      }
      if (auto [it, fresh] = seen.emplace(addr, key); !fresh) {
        r_.error(r_.loc(node), key + " address " + quote(addr) +
                                   (it->second == key ? " is listed twice"
                                                      : " is also in \"" + it->second +
                                                            "\": one address serves one of them"));
        continue;
      }
      out.push_back(addr);
    }
    return out;
  }

  void credential(const toml::table& t, std::string_view key, const Where& w,
                  std::optional<CredentialRef>& out) {
    auto text = r_.string(t, key, w);
    if (!text) return;
    auto ref = parseCredentialRef(*text);
    if (!ref) {
      r_.error(r_.loc(*t.get(key)),
               quote(key) + " " + w.in() +
                   " must be a credential reference \"${credentials.NAME.FIELD}\"; secrets "
                   "are never written in the config");
      return;
    }
    out = std::move(ref);
  }

  void source() {
    const toml::table* t = r_.table(root_, "source", Where{});
    if (!t) return;
    const Where w{"source"};
    auto& s = c_.source;
    r_.checkKeys(*t,
                 {"kind", "path", "url", "branch", "spec_path", "poll_interval", "token",
                  "webhook_secret", "allow_plain_http", "allowed_signers", "require_signed",
                  "settle"},
                 w);
    if (auto kind = r_.string(*t, "kind", w)) {
      if (*kind != "file" && *kind != "git") {
        std::string message = "invalid \"kind\" " + quote(*kind) + " " + w.in() +
                              "; expected \"file\" or \"git\"";
        const std::string guess = closestMatch(*kind, {"file", "git"});
        if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
        r_.error(r_.loc(*t->get("kind")), std::move(message));
      } else {
        s.kind = *kind;
      }
    }
    path(*t, "path", w, s.path);
    if (auto url = r_.string(*t, "url", w)) {
      if (urlHasCredentials(*url)) {
        // Never echoed: the URL holds a secret.
        r_.error(r_.loc(*t->get("url")),
                 "invalid \"url\" " + w.in() +
                     ": it has credentials in it (user:password@ or token@), which would sit in "
                     "plain text in this file, in git's argv and in logs; remove them and set "
                     "token = \"${credentials.NAME.FIELD}\" (sealed in the state)");
      } else if (auto problem = gitUrlProblem(*url)) {
        r_.error(r_.loc(*t->get("url")),
                 "invalid \"url\" " + quote(*url) + " " + w.in() + ": " + *problem);
      }
      s.url = *url;
    }
    if (auto branch = r_.string(*t, "branch", w)) {
      const bool ok = !branch->empty() && branch->front() != '-' &&
                      branch->find("..") == std::string::npos &&
                      branch->find_first_of(" \t~^:?*[\\") == std::string::npos;
      if (!ok) {
        r_.error(r_.loc(*t->get("branch")),
                 "invalid \"branch\" " + quote(*branch) + " " + w.in());
      }
      s.branch = *branch;
    }
    if (auto specPath = r_.string(*t, "spec_path", w)) {
      const bool ok = !specPath->empty() && specPath->front() != '/' &&
                      !vaultPathProblem(*specPath);  // relative, no empty/./.. segments
      if (!ok) {
        r_.error(r_.loc(*t->get("spec_path")),
                 "invalid \"spec_path\" " + quote(*specPath) + " " + w.in() +
                     ": must be a path inside the repository, e.g. \"foundation.toml\"");
      }
      s.specPath = *specPath;
    }
    positive(*t, "poll_interval", w, s.pollInterval);
    credential(*t, "token", w, s.token);
    credential(*t, "webhook_secret", w, s.webhookSecret);
    if (auto plain = r_.boolean(*t, "allow_plain_http", w)) s.allowPlainHttp = *plain;
    if (s.token && s.url.rfind("http://", 0) == 0 && !isLoopbackHttp(s.url) &&
        !s.allowPlainHttp && !urlHasCredentials(s.url)) {
      r_.error(r_.keyLoc(*t, "token"),
               "\"token\" " + w.in() +
                   " would be sent in plain text over http:// to " +
                   std::string(urlAuthority(s.url)) +
                   ": use an https:// URL, or set allow_plain_http = true if the network is "
                   "trusted");
    }
    trust(*t, w);

    if (s.kind == "git" && s.url.empty()) {
      r_.error(r_.keyLoc(*t, "kind"), "[source] with kind = \"git\" needs a \"url\"");
    }
    const bool git = s.kind == "git";
    for (std::string_view key : {"url", "branch", "spec_path", "poll_interval", "token",
                                 "webhook_secret", "allow_plain_http", "allowed_signers",
                                 "require_signed", "settle"}) {
      if (!git && t->contains(key)) {
        r_.warning(r_.keyLoc(*t, key),
                   quote(key) + " " + w.in() + " is ignored unless kind = \"git\"");
      }
    }
    if (git && t->contains("path")) {
      r_.warning(r_.keyLoc(*t, "path"), "\"path\" " + w.in() +
                                            " is ignored when kind = \"git\" (use spec_path)");
    }
  }

  // [source] allowed_signers / require_signed / settle (docs/source.md).
  void trust(const toml::table& t, const Where& w) {
    auto& s = c_.source;
    path(t, "allowed_signers", w, s.allowedSigners);
    s.requireSigned = !s.allowedSigners.empty();
    if (auto require = r_.boolean(t, "require_signed", w)) {
      if (*require && !t.contains("allowed_signers")) {
        r_.error(r_.keyLoc(t, "require_signed"),
                 "\"require_signed\" " + w.in() +
                     " needs \"allowed_signers\" (the file of trusted SSH signing keys, "
                     "e.g. \"/etc/foundationd/allowed_signers\")");
      }
      s.requireSigned = *require;
    }
    if (t.contains("settle")) {
      auto d = r_.duration(t, "settle", w);
      if (d && d->count() < 0) {
        r_.error(r_.loc(*t.get("settle")), "\"settle\" " + w.in() + " must not be negative");
      } else if (d) {
        s.settle = *d;
      }
    }
  }

  void unlock() {
    const toml::table* t = r_.table(root_, "unlock", Where{});
    if (!t) return;
    const Where w{"unlock"};
    r_.checkKeys(*t, {"kdf", "keep_key_in_memory"}, w);
    if (auto kdf = r_.string(*t, "kdf", w)) {
      static const std::vector<std::string> levels{"interactive", "moderate", "sensitive"};
      if (std::find(levels.begin(), levels.end(), *kdf) == levels.end()) {
        std::string message = "invalid \"kdf\" " + quote(*kdf) + " " + w.in() +
                              "; expected interactive, moderate or sensitive";
        const std::string guess = closestMatch(*kdf, levels);
        if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
        r_.error(r_.loc(*t->get("kdf")), std::move(message));
      } else {
        c_.kdf = *kdf;
      }
    }
    if (auto keep = r_.boolean(*t, "keep_key_in_memory", w)) c_.keepKeyInMemory = *keep;
  }

  TomlReader& r_;
  const toml::table& root_;
  DaemonConfig c_;
};

}  // namespace

DaemonConfigResult loadDaemonConfigText(const std::string& text, const std::string& fileName) {
  DaemonConfigResult result;
  auto root = detail::parseToml(text, fileName, result.diagnostics);
  if (!root) return result;
  TomlReader r(fileName, result.diagnostics);
  DaemonConfig config = DaemonConfigParser(r, *root).run();
  if (!result.diagnostics.hasErrors()) result.config = std::move(config);
  return result;
}

DaemonConfigResult loadDaemonConfigFile(const std::string& path) {
  errno = 0;
  auto text = detail::readTextFile(path);
  if (!text) {
    DaemonConfigResult result;
    const std::string why = errno ? std::strerror(errno) : "not a regular file";
    result.diagnostics.error(SourceLoc{path, 0, 0}, "cannot read the config file: " + why);
    return result;
  }
  return loadDaemonConfigText(*text, path);
}

}  // namespace foundationd::config
