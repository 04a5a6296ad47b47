#include "controllers/credentials/generators.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>

#include <sodium.h>

namespace foundationd::credentials {

namespace {

using state::SecretBytes;

constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// The first `size` bytes of `buffer` (which may hold a trailing NUL).
SecretBytes prefix(const SecretBytes& buffer, std::size_t size) {
  return SecretBytes::copyOf(buffer.view().substr(0, size));
}

SecretBytes password(int length, bool symbols) {
  std::string alphabet(kAlnum);
  if (symbols) alphabet += kPasswordSymbols;
  const auto n = static_cast<std::uint32_t>(alphabet.size());
  SecretBytes out(static_cast<std::size_t>(length));
  for (std::size_t i = 0; i < out.size(); ++i) {
    out.data()[i] = static_cast<unsigned char>(alphabet[randombytes_uniform(n)]);
  }
  return out;
}

SecretBytes hex(int bytes) {
  SecretBytes raw = SecretBytes::random(static_cast<std::size_t>(bytes));
  SecretBytes text(2 * raw.size() + 1);
  sodium_bin2hex(reinterpret_cast<char*>(text.data()), text.size(), raw.data(), raw.size());
  return prefix(text, 2 * raw.size());
}

SecretBytes base64url(int bytes) {
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  SecretBytes raw = SecretBytes::random(static_cast<std::size_t>(bytes));
  SecretBytes text(sodium_base64_ENCODED_LEN(raw.size(), kVariant));
  sodium_bin2base64(reinterpret_cast<char*>(text.data()), text.size(), raw.data(), raw.size(),
                    kVariant);
  return prefix(text, text.size() - 1);  // ENCODED_LEN counts the NUL
}

SecretBytes uuid() {
  SecretBytes raw = SecretBytes::random(16);
  unsigned char* b = raw.data();
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // variant 10xx (RFC 4122)
  SecretBytes digits(33);
  sodium_bin2hex(reinterpret_cast<char*>(digits.data()), digits.size(), b, 16);
  SecretBytes out(36);
  std::size_t d = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out.data()[i] = (i == 8 || i == 13 || i == 18 || i == 23) ? '-' : digits.data()[d++];
  }
  return out;
}

}  // namespace

Status validate(const config::Generator& g) {
  switch (g.kind) {
    case config::Generator::Kind::password:
      if (g.length < 1 || g.length > kMaxPasswordLength) {
        return Error::make(ErrorCode::invalid_argument, "password length must be between 1 and " +
                                                            std::to_string(kMaxPasswordLength) +
                                                            ", got " + std::to_string(g.length));
      }
      return {};
    case config::Generator::Kind::hex:
    case config::Generator::Kind::base64url:
      if (g.bytes < 1 || g.bytes > kMaxRandomBytes) {
        return Error::make(ErrorCode::invalid_argument, "random bytes must be between 1 and " +
                                                            std::to_string(kMaxRandomBytes) +
                                                            ", got " + std::to_string(g.bytes));
      }
      return {};
    case config::Generator::Kind::uuid:
      return {};
  }
  return Error::make(ErrorCode::invalid_argument, "unknown generator kind");
}

SecretBytes generate(const config::Generator& g) {
  if (Status st = validate(g); !st) throw std::invalid_argument(st.error().message);
  state::ensureSodium();
  switch (g.kind) {
    case config::Generator::Kind::password:
      return password(g.length, g.symbols);
    case config::Generator::Kind::hex:
      return hex(g.bytes);
    case config::Generator::Kind::base64url:
      return base64url(g.bytes);
    case config::Generator::Kind::uuid:
      return uuid();
  }
  throw std::invalid_argument("unknown generator kind");
}

}  // namespace foundationd::credentials
