#include "controllers/docker/secret_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

namespace foundationd::docker {
namespace {

namespace fs = std::filesystem;

Error ioError(const std::string& what, const fs::path& p) {
  return Error::make(ErrorCode::io, what + " " + p.string() + ": " + std::strerror(errno));
}

// uid:gid from a numeric `user` ("999" or "999:999"); nullopt otherwise.
std::optional<std::pair<uid_t, gid_t>> numericUser(const std::optional<std::string>& user) {
  if (!user || user->empty()) return std::nullopt;
  auto colon = user->find(':');
  std::string u = user->substr(0, colon);
  std::string g = colon == std::string::npos ? u : user->substr(colon + 1);
  auto digits = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(u) || !digits(g)) return std::nullopt;
  return std::make_pair(static_cast<uid_t>(std::stoul(u)), static_cast<gid_t>(std::stoul(g)));
}

Status ensureDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error::make(ErrorCode::io, "create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return ioError("chmod", dir);
  return Status::success();
}

bool sameContent(const fs::path& p, const std::string& value) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  std::string current(value.size() + 1, '\0');
  ssize_t n = ::read(fd, current.data(), current.size());
  ::close(fd);
  return n == static_cast<ssize_t>(value.size()) && current.compare(0, value.size(), value) == 0;
}

Status writeOne(const fs::path& target, const std::string& value,
                const std::optional<std::pair<uid_t, gid_t>>& owner) {
  // Docker creates a missing bind source as a directory: replace such a stray one.
  std::error_code ec;
  if (fs::is_directory(target, ec)) fs::remove(target, ec);
  // Up to date only with the right owner and mode too: something else may
  // have changed them (systemd chowns a RuntimeDirectory= it finds owned by
  // another user, recursively), and the container could no longer read it.
  struct stat st {};
  const bool rightOwner =
      ::lstat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0400 &&
      (!owner || (st.st_uid == owner->first && st.st_gid == owner->second));
  if (rightOwner && sameContent(target, value)) return Status::success();
  fs::path tmp = target;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
  if (fd < 0) return ioError("create", tmp);
  std::size_t off = 0;
  while (off < value.size()) {
    ssize_t n = ::write(fd, value.data() + off, value.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return ioError("write", tmp);
    }
    off += static_cast<std::size_t>(n);
  }
  // A container with a numeric `user` reads its file as the owner. Changing
  // the owner needs CAP_CHOWN (units/foundationd.service grants it, nothing
  // more). The daemon cannot read such a file back (sameContent), so it
  // rewrites it on each converge: a few bytes on a tmpfs, and the running
  // container keeps the copy it mounted (same value; a new value recreates it).
  if (owner && ::fchown(fd, owner->first, owner->second) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Error::make(ErrorCode::io,
                       "chown " + tmp.string() + " to " + std::to_string(owner->first) + ":" +
                           std::to_string(owner->second) + " (the container's numeric user): " +
                           std::strerror(err) +
                           (err == EPERM ? "; the daemon needs CAP_CHOWN for that "
                                           "(units/foundationd.service grants it)"
                                         : ""));
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return ioError("fsync", tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return ioError("rename", tmp);
  }
  return Status::success();
}

}  // namespace

std::string secretFileName(const std::string& containerPath) {
  std::string name;
  for (char ch : containerPath) {
    if (ch == '/') {
      if (!name.empty()) name += '_';
    } else {
      name += ch;
    }
  }
  return name;
}

std::vector<std::string> secretFileBinds(const config::ContainerSpec& c, const std::string& dir) {
  std::vector<std::string> binds;
  for (const auto& [path, _] : c.secretFiles) {
    binds.push_back((fs::path(dir) / c.name / secretFileName(path)).string() + ":" + path + ":ro");
  }
  return binds;
}

Status writeSecretFiles(const config::Spec& spec, const SecretResolver& secrets,
                        const std::string& dir, const std::set<std::string>& skip) {
  bool any = false;
  for (const auto& [_, c] : spec.containers) any |= !c.secretFiles.empty();
  if (!any) return Status::success();
  if (auto st = ensureDir(dir); !st) return st;
  for (const auto& [name, c] : spec.containers) {
    if (c.secretFiles.empty() || skip.count(name)) continue;
    fs::path cdir = fs::path(dir) / name;
    if (auto st = ensureDir(cdir); !st) return st;
    auto owner = numericUser(c.user);
    for (const auto& [path, value] : c.secretFiles) {
      std::string text;
      for (const auto& seg : value.segments) {
        if (const auto* lit = std::get_if<std::string>(&seg)) {
          text += *lit;
          continue;
        }
        const auto& ref = std::get<config::CredentialRef>(seg);
        auto v = secrets.value(ref);
        if (!v) {
          return Error::make(ErrorCode::invalid_argument,
                             "secret file " + path + " of container " + name + " needs credential " +
                                 ref.name + "." + ref.field + ", which is not available");
        }
        text += *v;
      }
      if (auto st = writeOne(cdir / secretFileName(path), text, owner); !st) return st;
    }
  }
  return Status::success();
}

}  // namespace foundationd::docker
