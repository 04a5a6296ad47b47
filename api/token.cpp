#include "api/token.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

namespace foundationd::api {
namespace {

namespace fs = std::filesystem;

std::string errnoText(int err) {
  return std::generic_category().message(err);
}

Error ioError(const fs::path& file, const std::string& what, int err) {
  return Error::make(ErrorCode::io,
                     "api token file " + file.string() + ": " + what + ": " + errnoText(err));
}

bool isSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<ApiToken> readToken(const fs::path& file, int fd);

Status writeAll(int fd, const unsigned char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::make(ErrorCode::io, errnoText(errno));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::success();
}

}  // namespace

ApiToken ApiToken::fromString(std::string_view token) {
  return ApiToken(state::SecretBytes::copyOf(token), false);
}

bool ApiToken::matches(std::string_view presented) const noexcept {
  if (token_.empty() || presented.size() != token_.size()) return false;
  return sodium_memcmp(token_.data(), presented.data(), token_.size()) == 0;
}

Result<ApiToken> ApiToken::loadOrCreate(const fs::path& file) {
  state::ensureSodium();
  Fd existing{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (existing.fd >= 0) return readToken(file, existing.fd);
  if (errno != ENOENT) return ioError(file, "cannot open", errno);

  // Absent: generate one.
  std::error_code ec;
  const fs::path parent = file.parent_path();
  if (!parent.empty() && !fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) {
      return Error::make(ErrorCode::io, "api token file " + file.string() +
                                            ": cannot create its directory: " + ec.message());
    }
    fs::permissions(parent, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  Fd out{::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (out.fd < 0) {
    const int err = errno;
    if (err == EEXIST) {  // created meanwhile by someone else: use theirs
      Fd again{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
      if (again.fd >= 0) return readToken(file, again.fd);
      return ioError(file, "cannot open", errno);
    }
    return Error::make(ErrorCode::io,
                       "api token file " + file.string() + ": absent and cannot be created (" +
                           errnoText(err) +
                           "); create it yourself with 64 hex characters, mode 0600, owned by "
                           "the daemon's user, or point api.token_file at a writable path");
  }
  state::SecretBytes raw = state::SecretBytes::random(kGeneratedBytes);
  state::SecretBytes hex(kGeneratedBytes * 2 + 1);  // + NUL from sodium_bin2hex
  sodium_bin2hex(reinterpret_cast<char*>(hex.data()), hex.size(), raw.data(), raw.size());
  hex.data()[kGeneratedBytes * 2] = '\n';
  if (Status st = writeAll(out.fd, hex.data(), hex.size()); !st) {
    ::unlink(file.c_str());
    return Error::make(ErrorCode::io,
                       "api token file " + file.string() + ": cannot write: " + st.error().message);
  }
  if (::fsync(out.fd) != 0) {
    const int err = errno;
    ::unlink(file.c_str());
    return ioError(file, "cannot fsync", err);
  }
  if (!parent.empty()) {
    Fd dir{::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd >= 0) ::fsync(dir.fd);
  }
  return ApiToken(state::SecretBytes::copyOf(hex.view().substr(0, kGeneratedBytes * 2)), true);
}

namespace {

Result<ApiToken> readToken(const fs::path& file, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ioError(file, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) {
    return Error::make(ErrorCode::invalid_argument,
                       "api token file " + file.string() + " is not a regular file");
  }
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    return Error::make(ErrorCode::invalid_argument,
                       "api token file " + file.string() +
                           " is readable or writable by others; run chmod 600 on it");
  }
  if (static_cast<std::size_t>(st.st_size) > ApiToken::kMaxFileBytes) {
    return Error::make(ErrorCode::invalid_argument,
                       "api token file " + file.string() + " is larger than " +
                           std::to_string(ApiToken::kMaxFileBytes) + " bytes");
  }
  // Read straight into guarded memory: the token never sits in a std::string.
  state::SecretBytes buf(ApiToken::kMaxFileBytes);
  std::size_t got = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioError(file, "cannot read", errno);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got == buf.size()) break;
  }
  std::size_t begin = 0;
  std::size_t end = got;
  while (begin < end && isSpace(buf.data()[begin])) ++begin;
  while (end > begin && isSpace(buf.data()[end - 1])) --end;
  if (end - begin < ApiToken::kMinLength) {
    return Error::make(ErrorCode::invalid_argument,
                       "api token file " + file.string() + " holds no token of at least " +
                           std::to_string(ApiToken::kMinLength) +
                           " characters; delete it to have one generated");
  }
  return ApiToken::fromString(buf.view().substr(begin, end - begin));
}

}  // namespace

}  // namespace foundationd::api
