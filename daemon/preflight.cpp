#include "daemon/preflight.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "controllers/docker/docker_client.hpp"
#include "controllers/source/process.hpp"
#include "controllers/transport/unix_http_client.hpp"
#include "config/spec_loader.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "state/store.hpp"

namespace foundationd::daemon {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// The Engine API version foundationd's Docker client speaks (docker_client.hpp).
constexpr int kMinApiMajor = 1;
constexpr int kMinApiMinor = 41;

PreflightCheck pass(std::string name, std::string detail) {
  return {std::move(name), CheckResult::pass, std::move(detail), ""};
}
PreflightCheck warn(std::string name, std::string detail, std::string fix) {
  return {std::move(name), CheckResult::warn, std::move(detail), std::move(fix)};
}
PreflightCheck fail(std::string name, std::string detail, std::string fix) {
  return {std::move(name), CheckResult::fail, std::move(detail), std::move(fix)};
}
PreflightCheck skip(std::string name, std::string detail) {
  return {std::move(name), CheckResult::skip, std::move(detail), ""};
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / kGiB);
  return buf;
}

// GET `target` from the Docker Engine, parsed.
Result<nlohmann::json> dockerGet(const std::string& socket, const std::string& target) {
  asio::io_context io;
  transport::UnixHttpClient client(io.get_executor(), socket);
  transport::HttpRequest req;
  req.target = target;
  req.timeout = std::chrono::seconds(10);
  auto r = runSync(io, client.request(std::move(req)));
  if (!r) return r.error();
  if (r->status != 200) {
    return Error::make(ErrorCode::peer, "HTTP " + std::to_string(r->status) + " from " + target);
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (doc.is_discarded()) return Error::make(ErrorCode::protocol, "not JSON from " + target);
  return doc;
}

// "2026-12-03T08:40:00.123456789Z" or "...+01:00" -> seconds since the epoch.
std::optional<std::time_t> parseRfc3339(const std::string& s) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t t = timegm(&tm);
  std::size_t i = static_cast<std::size_t>(consumed);
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int hh = 0;
    int mm = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    const int offset = (hh * 60 + mm) * 60;
    t += s[i] == '+' ? -offset : offset;
  }
  return t;
}

void dockerChecks(const PreflightInput& in, std::vector<PreflightCheck>& out,
                  std::optional<nlohmann::json>& info) {
  const std::string& socket = in.config.dockerSocket;
  struct stat st{};
  if (::stat(socket.c_str(), &st) != 0) {
    out.push_back(fail("docker socket", socket + ": " + std::strerror(errno),
                       "install and start Docker (`systemctl start docker`), or set [docker] "
                       "socket in the daemon config (docs/config.md)"));
    return;
  }
  if (::access(socket.c_str(), R_OK | W_OK) != 0) {
    out.push_back(fail("docker socket", "no read/write permission on " + socket + " for uid " +
                                            std::to_string(::geteuid()),
                       "run foundationd as root (as its systemd unit does), or add this user "
                       "to the socket's group (`docker`)"));
    return;
  }
  out.push_back(pass("docker socket", socket + " is readable and writable by this user"));

  auto version = dockerGet(socket, "/version");
  if (!version) {
    out.push_back(fail("docker", "the Engine does not answer on " + socket + ": " +
                                     version.error().message,
                       "start it (`systemctl start docker`) and look at `journalctl -u docker`"));
    return;
  }
  const std::string api = version->value("ApiVersion", std::string("?"));
  int major = 0;
  int minor = 0;
  const bool parsed = std::sscanf(api.c_str(), "%d.%d", &major, &minor) == 2;
  const std::string detail = "Engine " + version->value("Version", std::string("?")) + ", API " +
                             api + " (foundationd needs " + std::to_string(kMinApiMajor) + "." +
                             std::to_string(kMinApiMinor) + " or newer)";
  if (!parsed || major < kMinApiMajor || (major == kMinApiMajor && minor < kMinApiMinor)) {
    out.push_back(fail("docker", detail, "upgrade the Docker Engine (Debian's docker.io 20.10 "
                                         "or newer)"));
  } else {
    out.push_back(pass("docker", detail));
  }
  auto i = dockerGet(socket, "/info");
  if (i) info = std::move(i).value();
}

void diskCheck(const std::optional<nlohmann::json>& info, std::vector<PreflightCheck>& out) {
  if (!info) {
    out.push_back(skip("disk", "the Docker Engine did not say where volumes live"));
    return;
  }
  const std::string root = info->value("DockerRootDir", std::string("/var/lib/docker"));
  struct statvfs v{};
  if (::statvfs(root.c_str(), &v) != 0) {
    out.push_back(warn("disk", "cannot look at " + root + ": " + std::strerror(errno),
                       "check the free space where Docker keeps volumes (`df -h " + root + "`)"));
    return;
  }
  const double freeBytes = static_cast<double>(v.f_bavail) * static_cast<double>(v.f_frsize);
  const double total = static_cast<double>(v.f_blocks) * static_cast<double>(v.f_frsize);
  const double share = total > 0 ? freeBytes / total : 0.0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", share * 100.0);
  const std::string detail =
      gib(freeBytes) + " free of " + gib(total) + " (" + pct + ") in " + root + " (volumes, images)";
  const std::string fix = "free space or grow the filesystem of " + root +
                          " (`docker system df` shows what uses it; foundationd never deletes "
                          "volumes)";
  if (freeBytes < 2 * kGiB) {
    out.push_back(fail("disk", detail, fix));
  } else if (freeBytes < 10 * kGiB || share < 0.10) {
    out.push_back(warn("disk", detail, fix));
  } else {
    out.push_back(pass("disk", detail));
  }
}

void clockCheck(const std::optional<nlohmann::json>& info, std::vector<PreflightCheck>& out) {
  timex tx{};
  const int state = ::adjtimex(&tx);
  const bool synced = state != TIME_ERROR;
  std::string detail = synced ? "the kernel says the clock is synchronised"
                              : "the kernel says the clock is not synchronised (no NTP)";
  std::optional<long> skew;
  if (info && info->contains("SystemTime") && (*info)["SystemTime"].is_string()) {
    if (auto engine = parseRfc3339((*info)["SystemTime"].get<std::string>())) {
      skew = static_cast<long>(*engine - std::time(nullptr));
      detail += "; the Docker Engine's clock differs by " + std::to_string(*skew) + " s";
    }
  }
  if (skew && (*skew > 5 || *skew < -5)) {
    out.push_back(fail("clock", detail,
                       "the Engine and this host disagree: check the Engine's host and NTP "
                       "(`timedatectl`)"));
  } else if (!synced) {
    out.push_back(warn("clock", detail,
                       "enable time synchronisation (`timedatectl set-ntp true`, or chrony): "
                       "TLS, tokens and logs depend on the clock"));
  } else {
    out.push_back(pass("clock", detail));
  }
}

void secretsDirCheck(const PreflightInput& in, std::vector<PreflightCheck>& out) {
  fs::path p = in.secretsDir;
  std::error_code ec;
  while (!p.empty() && p != p.root_path() && !fs::exists(p, ec)) p = p.parent_path();
  struct statfs s{};
  if (::statfs(p.c_str(), &s) != 0) {
    out.push_back(warn("secret files", "cannot look at " + p.string() + ": " + std::strerror(errno),
                       "mount a tmpfs for " + in.secretsDir));
    return;
  }
  const bool memory = static_cast<unsigned long>(s.f_type) == TMPFS_MAGIC ||
                      static_cast<unsigned long>(s.f_type) == RAMFS_MAGIC;
  const std::string where = in.secretsDir + (p.string() == in.secretsDir ? "" : " (on " + p.string() + ")");
  if (memory) {
    out.push_back(pass("secret files", where + " is in memory (tmpfs)"));
  } else {
    out.push_back(warn("secret files", where + " is not a tmpfs: secret files would be written "
                                               "to disk",
                       "mount a tmpfs on /run (systemd does) or on " + in.secretsDir));
  }
}

void stateDirCheck(const PreflightInput& in, std::vector<PreflightCheck>& out) {
  const std::string& dir = in.stateDir;
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    out.push_back(warn("state directory", dir + " does not exist yet",
                       "`foundationd init --state-dir " + dir + "` creates it (mode 0700)"));
    return;
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  const std::string detail = dir + ": owner uid " + std::to_string(st.st_uid) + ", mode " + mode;
  if (st.st_uid != ::geteuid()) {
    out.push_back(fail("state directory", detail + "; foundationd runs as uid " +
                                              std::to_string(::geteuid()),
                       "`chown -R " + std::to_string(::geteuid()) + " " + dir +
                           "` (the daemon's user owns its state)"));
    return;
  }
  if ((st.st_mode & 077) != 0) {
    out.push_back(fail("state directory", detail + ": others may read it",
                       "`chmod 700 " + dir + "`"));
    return;
  }
  if (!fs::exists(fs::path(dir) / state::Store::kFileName)) {
    out.push_back(warn("state directory", detail + "; no state in it yet",
                       "`foundationd init --state-dir " + dir + "`"));
    return;
  }
  out.push_back(pass("state directory", detail));
}

void sourceCheck(const PreflightInput& in, std::vector<PreflightCheck>& out) {
  const auto& src = in.config.source;
  if (src.kind == "git") {
    source::ProcessRequest req;
    req.argv = {"git", "ls-remote", "--heads", src.url, src.branch};
    req.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"GIT_TERMINAL_PROMPT", "0"},
               {"HOME", "/nonexistent"}};
    req.timeout = std::chrono::seconds(20);
    auto r = source::runProcess(req);
    const std::string name = "spec source";
    if (!r) {
      out.push_back(fail(name, "git " + src.url + ": " + r.error().message,
                         "install git, and check the network to the forge"));
    } else if (r->exitCode != 0) {
      std::string err = r->err.substr(0, 300);
      while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
      out.push_back(
          src.token ? warn(name, "git ls-remote " + src.url + " without the token: " + err,
                           "the daemon fetches with [source] token once unsealed; check the "
                           "url and that the token's credential exists")
                    : fail(name, "git ls-remote " + src.url + ": " + err,
                           "check [source] url, the network and the forge (docs/source.md)"));
    } else if (r->out.find("refs/heads/" + src.branch) == std::string::npos) {
      out.push_back(fail(name, src.url + " answers but has no branch " + src.branch,
                         "push the branch, or set [source] branch"));
    } else {
      out.push_back(pass(name, src.url + " answers; branch " + src.branch + " exists"));
    }
  }
  if (in.specPath.empty()) {
    out.push_back(skip("spec", "a git source: give --spec FILE to check a local copy"));
  } else if (!in.spec) {
    out.push_back(fail("spec", in.specPath + ": " + in.specProblem,
                       "`foundationd check " + in.specPath + "` shows every error"));
  } else {
    out.push_back(pass("spec", in.specPath + ": valid, project \"" + in.spec->project + "\""));
  }
}

// Whether something listens on host:port (TCP), within a short deadline.
bool tcpAnswers(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* a = res; a && !ok; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 3000) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return ok;
}

// "http://127.0.0.1:8200/x" -> ("127.0.0.1", "8200").
std::optional<std::pair<std::string, std::string>> hostPort(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return std::nullopt;
  std::string rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string port = url.rfind("https", 0) == 0 ? "443" : "80";
  std::string host = rest;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  return std::make_pair(host, port);
}

struct Peer {
  std::string what;       // "vault", "s3.main", ...
  std::string container;  // its container in the spec
  std::string url;        // "" when reached through docker exec
};

void portAndPeerChecks(const PreflightInput& in, std::vector<PreflightCheck>& out) {
  if (!in.spec) {
    out.push_back(skip("ports", "no spec to read them from"));
    return;
  }
  const config::Spec& spec = *in.spec;
  asio::io_context io;
  docker::DockerClient client(io.get_executor(), in.config.dockerSocket);
  auto runningNow = [&](const std::string& name) -> Result<docker::ContainerInspect> {
    return runSync(io, client.inspectContainer(name));
  };

  std::size_t ports = 0;
  for (const auto& [name, c] : spec.containers) {
    for (const auto& p : c.ports) {
      if (!p.hostPort || p.protocol == "sctp") continue;
      ++ports;
      const std::string ip = p.hostIp.empty() ? "0.0.0.0" : p.hostIp;
      const std::string label = "port " + (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) +
                                ":" + std::to_string(*p.hostPort) + "/" + p.protocol;
      const bool v6 = ip.find(':') != std::string::npos;
      const int type = p.protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM;
      int fd = ::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);
      int err = 0;
      if (fd < 0) {
        err = errno;
      } else {
        int one = 1;
        (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage ss{};
        socklen_t len = 0;
        bool addrOk = false;
        if (v6) {
          auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
          a->sin6_family = AF_INET6;
          a->sin6_port = htons(*p.hostPort);
          addrOk = ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) == 1;
          len = sizeof *a;
        } else {
          auto* a = reinterpret_cast<sockaddr_in*>(&ss);
          a->sin_family = AF_INET;
          a->sin_port = htons(*p.hostPort);
          addrOk = ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) == 1;
          len = sizeof *a;
        }
        if (!addrOk) err = EINVAL;
        else if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) err = errno;
        ::close(fd);
      }
      if (err == 0) {
        out.push_back(pass(label, "free (container " + name + ")"));
      } else if (err == EADDRINUSE) {
        auto live = runningNow(name);
        if (live && live->running) {
          out.push_back(pass(label, "held by its own container " + name + " (running)"));
        } else {
          out.push_back(fail(label, "in use by a process foundationd does not manage (container " +
                                        name + " publishes it)",
                             "find it with `ss -lntup 'sport = :" + std::to_string(*p.hostPort) +
                                 "'`; stop it, or change the port in the spec"));
        }
      } else if (err == EADDRNOTAVAIL) {
        out.push_back(fail(label, "no interface of this host has the address " + ip,
                           "use an address of this host (`ip -brief address`) or \"\" for all"));
      } else {
        out.push_back(warn(label, std::string("cannot check: ") + std::strerror(err),
                           "run preflight as root, as the daemon runs"));
      }
    }
  }
  if (ports == 0) out.push_back(pass("ports", "the spec publishes no host port"));

  std::vector<Peer> peers;
  if (spec.vault) peers.push_back({"vault", spec.vault->container, spec.vault->address});
  for (const auto& [n, s] : spec.s3) peers.push_back({"s3." + n, s.container, s.endpoint});
  for (const auto& [n, p] : spec.postgres) peers.push_back({"postgres." + n, p.container, ""});
  if (spec.forgejo) peers.push_back({"forgejo", spec.forgejo->container, spec.forgejo->url});
  for (const auto& peer : peers) {
    const std::string label = "peer " + peer.what;
    if (peer.container.empty()) {
      if (peer.url.empty()) continue;
    } else {
      auto live = runningNow(peer.container);
      if (!live || !live->running) {
        out.push_back(skip(label, "container " + peer.container +
                                      " is not running yet; checked once it runs"));
        continue;
      }
      if (!live->health.empty() && live->health != "healthy") {
        out.push_back(fail(label, "container " + peer.container + " is " + live->health,
                           "`docker logs " + peer.container + "`; `foundationd status`"));
        continue;
      }
    }
    if (peer.url.empty()) {
      out.push_back(pass(label, "container " + peer.container + " runs (reached by docker exec)"));
      continue;
    }
    auto hp = hostPort(peer.url);
    if (hp && tcpAnswers(hp->first, hp->second)) {
      out.push_back(pass(label, peer.url + " answers"));
    } else {
      out.push_back(fail(label, peer.url + " does not answer",
                         "check that the container publishes that port on this host, and its "
                         "logs (`docker logs " + peer.container + "`)"));
    }
  }
}

}  // namespace

const char* checkResultName(CheckResult r) noexcept {
  switch (r) {
    case CheckResult::pass:
      return "pass";
    case CheckResult::warn:
      return "warn";
    case CheckResult::fail:
      return "fail";
    case CheckResult::skip:
      return "skip";
  }
  return "fail";
}

std::vector<PreflightCheck> runPreflight(const PreflightInput& in) {
  std::vector<PreflightCheck> out;
  std::optional<nlohmann::json> info;
  dockerChecks(in, out, info);
  diskCheck(info, out);
  clockCheck(info, out);
  secretsDirCheck(in, out);
  stateDirCheck(in, out);
  sourceCheck(in, out);
  if (info) {
    portAndPeerChecks(in, out);
  } else {
    out.push_back(skip("ports and peers", "need the Docker Engine"));
  }
  return out;
}

int cmdPreflight(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  PreflightInput in;
  in.config = *cfg;
  in.stateDir = stateDirOf(args, *cfg);
  std::optional<config::Spec> spec;
  if (args.spec || !args.positional.empty() || cfg->source.kind == "file") {
    in.specPath = specPathOf(args, *cfg);
    auto loaded = config::loadSpecFile(in.specPath);
    if (loaded.spec) {
      spec = std::move(loaded.spec);
      in.spec = &*spec;
    } else {
      in.specProblem = std::to_string(loaded.diagnostics.errorCount()) + " error(s)";
    }
  }
  const auto checks = runPreflight(in);
  std::size_t counts[4] = {0, 0, 0, 0};
  for (const auto& c : checks) {
    ++counts[static_cast<int>(c.result)];
    std::printf("%-4s  %s: %s\n", checkResultName(c.result), c.name.c_str(), c.detail.c_str());
    if (!c.fix.empty()) std::printf("      -> %s\n", c.fix.c_str());
  }
  std::printf("preflight: %zu passed, %zu warning(s), %zu failed, %zu skipped\n", counts[0],
              counts[1], counts[2], counts[3]);
  return counts[static_cast<int>(CheckResult::fail)] == 0 ? 0 : 1;
}

}  // namespace foundationd::daemon
