#include "controllers/postgres/scram.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <vector>

#include <sodium.h>

namespace foundationd::postgres {
namespace {

using Digest = std::array<unsigned char, crypto_auth_hmacsha256_BYTES>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Digest hmac(std::string_view key, const unsigned char* msg, std::size_t len) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, bytes(key), key.size());
  crypto_auth_hmacsha256_update(&st, msg, len);
  Digest out{};
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

// PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block: what SCRAM's Hi() is.
Digest hi(std::string_view password, std::string_view salt, int iterations) {
  std::vector<unsigned char> first(salt.begin(), salt.end());
  for (unsigned char b : {0, 0, 0, 1}) first.push_back(b);
  Digest u = hmac(password, first.data(), first.size());
  Digest result = u;
  for (int i = 1; i < iterations; ++i) {
    u = hmac(password, u.data(), u.size());
    for (std::size_t j = 0; j < result.size(); ++j) result[j] ^= u[j];
  }
  sodium_memzero(u.data(), u.size());
  return result;
}

std::string base64(const unsigned char* data, std::size_t len) {
  std::string out(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

struct Keys {
  Digest stored;
  Digest server;
};

Keys keysOf(std::string_view password, std::string_view salt, int iterations) {
  Digest salted = hi(password, salt, iterations);
  const std::string_view saltedKey(reinterpret_cast<const char*>(salted.data()), salted.size());
  static constexpr std::string_view kClient = "Client Key";
  static constexpr std::string_view kServer = "Server Key";
  Digest client = hmac(saltedKey, bytes(kClient), kClient.size());
  Keys k{};
  crypto_hash_sha256(k.stored.data(), client.data(), client.size());
  k.server = hmac(saltedKey, bytes(kServer), kServer.size());
  sodium_memzero(salted.data(), salted.size());
  sodium_memzero(client.data(), client.size());
  return k;
}

}  // namespace

bool scramApplicable(std::string_view password) noexcept {
  for (char c : password) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::string scramVerifier(std::string_view password, std::string_view salt, int iterations) {
  const Keys k = keysOf(password, salt, iterations);
  return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" + base64(bytes(salt), salt.size()) +
         "$" + base64(k.stored.data(), k.stored.size()) + ":" +
         base64(k.server.data(), k.server.size());
}

std::string newScramVerifier(std::string_view password) {
  std::array<unsigned char, 16> salt{};
  randombytes_buf(salt.data(), salt.size());
  return scramVerifier(password,
                       std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

std::optional<bool> scramMatches(std::string_view password, std::string_view stored) {
  static constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
  if (stored.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  stored.remove_prefix(kPrefix.size());
  const auto colon = stored.find(':');
  const auto dollar = stored.find('$');
  if (colon == stored.npos || dollar == stored.npos || colon > dollar) return std::nullopt;
  int iterations = 0;
  const auto iterText = stored.substr(0, colon);
  auto [end, ec] = std::from_chars(iterText.data(), iterText.data() + iterText.size(), iterations);
  if (ec != std::errc() || end != iterText.data() + iterText.size() || iterations < 1 ||
      iterations > 10'000'000) {
    return std::nullopt;
  }
  auto salt = unbase64(stored.substr(colon + 1, dollar - colon - 1));
  if (!salt || salt->empty()) return std::nullopt;
  const auto keysText = stored.substr(dollar + 1);
  const auto keyColon = keysText.find(':');
  if (keyColon == keysText.npos) return std::nullopt;
  auto storedKey = unbase64(keysText.substr(0, keyColon));
  auto serverKey = unbase64(keysText.substr(keyColon + 1));
  if (!storedKey || !serverKey || storedKey->size() != crypto_hash_sha256_BYTES ||
      serverKey->size() != crypto_auth_hmacsha256_BYTES) {
    return std::nullopt;
  }
  const Keys k = keysOf(password, *salt, iterations);
  const bool same = sodium_memcmp(k.stored.data(), storedKey->data(), k.stored.size()) == 0 &&
                    sodium_memcmp(k.server.data(), serverKey->data(), k.server.size()) == 0;
  return same;
}

}  // namespace foundationd::postgres
