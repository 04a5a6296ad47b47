#include "state/atomic_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/secret.hpp"

namespace foundationd::state {

namespace {

std::string randomSuffix() {
  ensureSodium();
  unsigned char bytes[8];
  randombytes_buf(bytes, sizeof bytes);
  char hex[sizeof bytes * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  return hex;
}

Error ioError(const std::string& what, const std::filesystem::path& path, int err) {
  return Error::make(ErrorCode::io, what + " " + path.string() + ": " + std::strerror(err));
}

}  // namespace

Status fsyncDirectory(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot open the directory", d, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ioError("cannot fsync the directory", d, err);
  return Status::success();
}

Status writeFileAtomic(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path dir = path.parent_path();
  const std::filesystem::path tmp =
      dir / ("." + path.filename().string() + "." + randomSuffix() + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ioError("cannot create", tmp, errno);
  bool ok = ::fchmod(fd, 0600) == 0;  // whatever the umask
  std::size_t off = 0;
  while (ok && off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<std::size_t>(n);
  }
  int err = errno;
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    err = errno;
  }
  ::close(fd);
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return ioError("cannot write", path, err);
  }
  return fsyncDirectory(dir);
}

}  // namespace foundationd::state
