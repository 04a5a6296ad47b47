#include "daemon/passphrase.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace foundationd::daemon {
namespace {

// Reads one line from `fd` into wiped memory (at most 4 KiB), without the
// line ending.
Result<state::SecretBytes> readLine(int fd, const std::string& source) {
  state::SecretBytes buf(4096);
  std::size_t len = 0;
  while (len < buf.size()) {
    char ch;
    ssize_t n = ::read(fd, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error::make(ErrorCode::io, "cannot read the passphrase from " + source + ": " +
                                            std::strerror(errno));
    }
    if (n == 0 || ch == '\n') break;
    buf.data()[len++] = static_cast<unsigned char>(ch);
  }
  if (len > 0 && buf.data()[len - 1] == '\r') --len;
  if (len == 0) return Error::make(ErrorCode::invalid_argument, "empty passphrase from " + source);
  return state::SecretBytes::copyOf(std::string_view(reinterpret_cast<const char*>(buf.data()), len));
}

Result<state::SecretBytes> fromTty(const std::string& prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return Error::make(ErrorCode::io, "no terminal to ask the passphrase on");
  (void)!::write(fd, prompt.data(), prompt.size());
  termios old{};
  bool restore = ::tcgetattr(fd, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  auto line = readLine(fd, "the terminal");
  if (restore) ::tcsetattr(fd, TCSAFLUSH, &old);
  ::close(fd);
  return line;
}

}  // namespace

Result<state::SecretBytes> readPassphrase(const std::optional<std::string>& file,
                                          const std::string& prompt) {
  if (file) {
    int fd = ::open(file->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return Error::make(ErrorCode::io, "cannot open passphrase file " + *file + ": " +
                                            std::strerror(errno));
    }
    auto line = readLine(fd, *file);
    ::close(fd);
    return line;
  }
  if (::isatty(STDIN_FILENO)) return fromTty(prompt);
  return readLine(STDIN_FILENO, "standard input");
}

Result<state::SecretBytes> readNewPassphrase(const std::optional<std::string>& file,
                                             const std::string& prompt) {
  auto first = readPassphrase(file, prompt);
  if (!first || file || !::isatty(STDIN_FILENO)) return first;
  auto again = fromTty("Repeat it: ");
  if (!again) return again;
  if (!(first.value() == again.value())) {
    return Error::make(ErrorCode::invalid_argument, "the two passphrases differ");
  }
  return first;
}

}  // namespace foundationd::daemon
