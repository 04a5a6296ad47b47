#include "daemon/passphrase.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace foundationd::daemon {
namespace {

// Reads one line from `fd` into wiped memory, without the line ending. A
// line longer than kMaxPassphraseBytes is refused, never cut.
Result<state::SecretBytes> readLine(int fd, const std::string& source) {
  state::SecretBytes buf(kMaxPassphraseBytes + 2);  // room for "\r" and one byte too many
  std::size_t len = 0;
  bool eol = false;
  while (len < buf.size()) {
    char ch;
    ssize_t n = ::read(fd, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error::make(ErrorCode::io, "cannot read the passphrase from " + source + ": " +
                                            std::strerror(errno));
    }
    if (n == 0) {
      if (len == 0) {
        return Error::make(ErrorCode::invalid_argument, "no passphrase from " + source);
      }
      break;
    }
    if (ch == '\n') {
      eol = true;
      break;
    }
    buf.data()[len++] = static_cast<unsigned char>(ch);
  }
  if (len > 0 && buf.data()[len - 1] == '\r') --len;
  if (len > kMaxPassphraseBytes || (!eol && len == buf.size())) {
    return Error::make(ErrorCode::invalid_argument,
                       "the passphrase from " + source + " is longer than " +
                           std::to_string(kMaxPassphraseBytes) +
                           " bytes; it is refused rather than cut");
  }
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

Status checkStrength(std::string_view passphrase) {
  // Characters, not bytes: a UTF-8 continuation byte does not count.
  std::size_t chars = 0;
  std::size_t different = 0;
  std::array<unsigned char, 256> seen{};  // which byte values occur; wiped below
  for (char c : passphrase) {
    const auto b = static_cast<unsigned char>(c);
    if ((b & 0xC0) != 0x80) ++chars;
    if (!seen[b]) ++different;
    seen[b] = 1;
  }
  sodium_memzero(seen.data(), seen.size());
  if (chars < kMinPassphraseChars) {
    return Error::make(ErrorCode::invalid_argument,
                       "the passphrase is too short (" + std::to_string(chars) +
                           " characters): use at least " + std::to_string(kMinPassphraseChars) +
                           ", e.g. four or five random words");
  }
  if (different < kMinDistinctChars) {
    return Error::make(ErrorCode::invalid_argument,
                       "the passphrase repeats too few characters (" +
                           std::to_string(different) + " different): use at least " +
                           std::to_string(kMinDistinctChars) +
                           " different ones, e.g. four or five random words");
  }
  return Status::success();
}

Result<state::SecretBytes> readNewPassphrase(const std::optional<std::string>& file,
                                             const std::string& prompt) {
  auto first = readPassphrase(file, prompt);
  if (!first) return first;
  if (auto st = checkStrength(first.value().view()); !st) return st.error();
  if (file) return first;  // a file is written once, deliberately: no confirmation
  const bool tty = ::isatty(STDIN_FILENO);
  auto again = tty ? fromTty("Repeat it: ") : readLine(STDIN_FILENO, "standard input");
  if (!again) {
    if (!tty) {
      return Error::make(ErrorCode::invalid_argument,
                         "the new passphrase must be confirmed: on standard input, give it on "
                         "two identical lines (" + again.error().message + ")");
    }
    return again;
  }
  if (!(first.value() == again.value())) {
    return Error::make(ErrorCode::invalid_argument, "the two passphrases differ");
  }
  return first;
}

Result<state::SecretBytes> readSecretValue(const std::string& prompt) {
  if (::isatty(STDIN_FILENO)) {
    auto first = fromTty(prompt);
    if (!first) return first;
    auto again = fromTty("Repeat it: ");
    if (!again) return again;
    if (!(first.value() == again.value())) {
      return Error::make(ErrorCode::invalid_argument, "the two values differ; nothing was changed");
    }
    return first;
  }
  state::SecretBytes buf(kMaxSecretBytes + 1);
  std::size_t len = 0;
  while (len < buf.size()) {
    ssize_t n = ::read(STDIN_FILENO, buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error::make(ErrorCode::io,
                         std::string("cannot read the value from standard input: ") +
                             std::strerror(errno));
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  if (len > kMaxSecretBytes) {
    return Error::make(ErrorCode::invalid_argument,
                       "the value on standard input is longer than " +
                           std::to_string(kMaxSecretBytes) + " bytes; nothing was changed");
  }
  if (len > 0 && buf.data()[len - 1] == '\n') --len;
  if (len > 0 && buf.data()[len - 1] == '\r') --len;
  if (len == 0) {
    return Error::make(ErrorCode::invalid_argument,
                       "no value on standard input (give it on stdin or at the terminal, never "
                       "as an argument); nothing was changed");
  }
  return state::SecretBytes::copyOf(
      std::string_view(reinterpret_cast<const char*>(buf.data()), len));
}

}  // namespace foundationd::daemon
