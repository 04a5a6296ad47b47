#include "controllers/docker/config_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sodium.h>

#include "controllers/docker/container_config.hpp"

namespace foundationd::docker {
namespace {

namespace fs = std::filesystem;
using config::OnChange;

Error ioError(const std::string& what, const fs::path& p) {
  return Error::make(ErrorCode::io, what + " " + p.string() + ": " + std::strerror(errno));
}

bool live(const OnChange& o) {
  return o.kind == OnChange::Kind::signal || o.kind == OnChange::Kind::exec;
}

Status ensureDir(const fs::path& dir, mode_t mode) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error::make(ErrorCode::io, "create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), mode) != 0) return ioError("chmod", dir);
  return Status::success();
}

struct OnDisk {
  bool exists = false;
  bool same = false;  // content, mode and owner as desired
};

OnDisk inspect(const fs::path& p, const std::string& text, const config::FileSpec& f) {
  OnDisk d;
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return d;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return d;
  }
  d.exists = true;
  std::string current(text.size() + 1, '\0');
  std::size_t got = 0;
  while (got < current.size()) {
    ssize_t n = ::read(fd, current.data() + got, current.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  d.same = got == text.size() && current.compare(0, text.size(), text) == 0 &&
           (st.st_mode & 07777) == static_cast<mode_t>(f.mode) && st.st_uid == f.uid &&
           st.st_gid == f.gid;
  if (!current.empty()) sodium_memzero(current.data(), current.size());
  return d;
}

Status writeAll(int fd, const std::string& text, const fs::path& p) {
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("write", p);
    off += static_cast<std::size_t>(n);
  }
  return Status::success();
}

// The new content, complete and fsynced, in `tmp`, with its mode and owner.
Status writeTemp(const fs::path& tmp, const std::string& text, const config::FileSpec& f) {
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ioError("create", tmp);
  Status st = writeAll(fd, text, tmp);
  if (st && ::fchown(fd, f.uid, f.gid) != 0) st = ioError("chown", tmp);
  if (st && ::fchmod(fd, static_cast<mode_t>(f.mode)) != 0) st = ioError("chmod", tmp);
  if (st && ::fsync(fd) != 0) st = ioError("fsync", tmp);
  ::close(fd);
  if (!st) ::unlink(tmp.c_str());
  return st;
}

// Copies the new content into the existing inode (a live consumer's bind
// mount holds it), after it is durable in `tmp`.
Status rewriteInPlace(const fs::path& target, const std::string& text, const config::FileSpec& f) {
  int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ioError("open", target);
  Status st = Status::success();
  if (::ftruncate(fd, 0) != 0) st = ioError("truncate", target);
  if (st) st = writeAll(fd, text, target);
  if (st && ::fchown(fd, f.uid, f.gid) != 0) st = ioError("chown", target);
  if (st && ::fchmod(fd, static_cast<mode_t>(f.mode)) != 0) st = ioError("chmod", target);
  if (st && ::fsync(fd) != 0) st = ioError("fsync", target);
  ::close(fd);
  return st;
}

Status syncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("open", dir);
  ::fsync(fd);
  ::close(fd);
  return Status::success();
}

// `f` is mounted by a consumer that follows changes live.
bool mountedLive(const config::Spec& spec, const std::string& name) {
  for (const auto& [_, c] : spec.containers) {
    for (const auto& [path, m] : c.files) {
      if (m.file == name && live(m.effective)) return true;
    }
  }
  return false;
}

}  // namespace

std::string configFileHostPath(const std::string& project, const std::string& name,
                               bool sensitive, const std::string& filesDir,
                               const std::string& secretsDir) {
  return sensitive ? (fs::path(secretsDir) / "_files" / project / name).string()
                   : (fs::path(filesDir) / name).string();
}

std::vector<std::string> configFileBinds(const config::ContainerSpec& c,
                                         const std::string& project,
                                         const std::string& filesDir,
                                         const std::string& secretsDir) {
  std::vector<std::string> binds;
  for (const auto& [path, m] : c.files) {
    binds.push_back(configFileHostPath(project, m.file, m.content.sensitive(), filesDir,
                                       secretsDir) +
                    ":" + path + ":ro");
  }
  return binds;
}

Result<FilesWritten> writeConfigFiles(const config::Spec& spec, const SecretResolver& secrets,
                                      const std::string& filesDir, const std::string& secretsDir) {
  FilesWritten out;
  bool dirsReady[2] = {false, false};
  for (const auto& [name, f] : spec.files) {
    const bool sensitive = f.content.sensitive();
    config::CredentialRef missing;
    auto text = resolveSecrets(f.content, secrets, &missing);
    if (!text) {
      out.unavailable[name] = "needs credential " + missing.name + "." + missing.field +
                              ", which is not available";
      continue;
    }
    if (!dirsReady[sensitive]) {
      Status st = sensitive ? ensureDir(fs::path(secretsDir), 0700)
                            : ensureDir(fs::path(filesDir), 0755);
      if (st && sensitive) st = ensureDir(fs::path(secretsDir) / "_files", 0700);
      if (st && sensitive) st = ensureDir(fs::path(secretsDir) / "_files" / spec.project, 0700);
      if (!st) return st.error();
      dirsReady[sensitive] = true;
    }
    const fs::path target = configFileHostPath(spec.project, name, sensitive, filesDir, secretsDir);
    // Docker creates a missing bind source as a directory: replace such a stray one.
    std::error_code ec;
    if (fs::is_directory(target, ec)) fs::remove_all(target, ec);
    const OnDisk disk = inspect(target, *text, f);
    if (disk.same) {
      sodium_memzero(text->data(), text->size());
      continue;
    }
    fs::path tmp = target;
    tmp += ".tmp";
    Status st = writeTemp(tmp, *text, f);
    if (st) {
      if (disk.exists && mountedLive(spec, name)) {
        st = rewriteInPlace(target, *text, f);
        ::unlink(tmp.c_str());
      } else if (::rename(tmp.c_str(), target.c_str()) != 0) {
        st = ioError("rename", tmp);
        ::unlink(tmp.c_str());
      }
    }
    sodium_memzero(text->data(), text->size());
    if (!st) return st.error();
    (void)syncDir(target.parent_path());
    out.changed.insert(name);
  }
  return out;
}

std::vector<FileConsumer> followingConsumers(const config::Spec& spec,
                                             const SecretResolver& secrets) {
  std::vector<FileConsumer> out;
  for (const auto& [name, c] : spec.containers) {
    for (const auto& [path, m] : c.files) {
      if (m.effective.kind == OnChange::Kind::recreate) continue;
      out.push_back({name, path, m.file, m.effective, valueDigest(m.content, secrets)});
    }
  }
  return out;
}

Task<Status> followChange(DockerApi& api, const FileConsumer& c, std::chrono::seconds stopTimeout) {
  auto inspected = co_await api.inspectContainer(c.container);
  if (!inspected) {
    if (inspected.error().code == ErrorCode::not_found) co_return Status::success();
    co_return inspected.error();
  }
  if (!inspected->running) co_return Status::success();  // reads the file when it starts
  switch (c.onChange.kind) {
    case OnChange::Kind::recreate:
      co_return Status::success();  // the config hash took care of it
    case OnChange::Kind::restart: {
      auto st = co_await api.stopContainer(inspected->id, stopTimeout);
      if (!st) co_return st;
      co_return co_await api.startContainer(inspected->id);
    }
    case OnChange::Kind::signal:
      co_return co_await api.killContainer(inspected->id, c.onChange.signal);
    case OnChange::Kind::exec: {
      ExecOptions options;
      options.maxOutput = std::size_t{1} << 20;
      auto r = co_await api.exec(c.container, c.onChange.command, options);
      if (!r) co_return r.error();
      if (r->exitCode != 0) {
        std::string said = r->stderrText.empty() ? r->stdoutText : r->stderrText;
        if (said.size() > 400) said = said.substr(0, 400) + "...";
        co_return Error::make(ErrorCode::unavailable,
                              "on_change command " + c.onChange.command.front() + " in " +
                                  c.container + " exited with " + std::to_string(r->exitCode) +
                                  (said.empty() ? std::string() : ": " + said));
      }
      co_return Status::success();
    }
  }
  co_return Status::success();
}

nlohmann::json planConfigFiles(const config::Spec& spec, const SecretResolver& secrets,
                               const std::string& filesDir, const std::string& secretsDir,
                               const AppliedLookup& applied) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, f] : spec.files) {
    const bool sensitive = f.content.sensitive();
    const std::string digest = valueDigest(f.content, secrets);
    const std::string host =
        configFileHostPath(spec.project, name, sensitive, filesDir, secretsDir);
    std::string change;
    if (!sensitive) {
      const OnDisk disk = inspect(host, f.content.display(), f);
      change = disk.same ? "unchanged" : disk.exists ? "update" : "create";
    } else {
      std::optional<std::string> last = applied ? applied(name) : std::nullopt;
      bool resolvable = true;
      for (const auto& ref : f.content.references()) resolvable &= secrets.digest(ref).has_value();
      change = !resolvable ? "unavailable" : !last ? "create" : *last == digest ? "unchanged" : "update";
    }
    nlohmann::json consumers = nlohmann::json::array();
    for (const auto& [cname, c] : spec.containers) {
      for (const auto& [path, m] : c.files) {
        if (m.file != name) continue;
        std::string action = "none";
        if (m.effective.kind == OnChange::Kind::recreate) {
          if (change == "update") action = "recreate";
        } else {
          std::optional<std::string> seen =
              applied ? applied(cname + ":" + path) : std::nullopt;
          if (change == "update" || (seen && *seen != digest)) action = config::toString(m.effective);
        }
        consumers.push_back({{"container", cname}, {"path", path},
                             {"on_change", config::toString(m.effective)}, {"action", action}});
      }
    }
    out.push_back({{"file", name}, {"host_path", host}, {"sensitive", sensitive},
                   {"change", change}, {"consumers", consumers}});
  }
  return out;
}

}  // namespace foundationd::docker
