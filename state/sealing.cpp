#include "state/sealing.hpp"

#include <stdexcept>

#include <sodium.h>

namespace foundationd::state {

static_assert(kKdfSaltBytes == crypto_pwhash_SALTBYTES);
static_assert(kNonceBytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kDataKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

namespace {

constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::string_view kWrapContext = "foundationd/data-key";
constexpr std::string_view kSealContext = "foundationd/secret";
constexpr std::string_view kFingerprintContext = "foundationd/key-fingerprint/v1";

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

void appendLe(std::string& out, std::uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Binds the format version, the KDF parameters and the salt to the wrapped
// key, so none of them can be swapped without the unwrap failing.
std::string wrapAd(const WrappedKey& w) {
  std::string ad(kWrapContext);
  ad.push_back(static_cast<char>(w.version));
  appendLe(ad, static_cast<std::uint32_t>(w.kdf.alg), 4);
  appendLe(ad, w.kdf.opsLimit, 8);
  appendLe(ad, w.kdf.memLimit, 8);
  ad += w.salt;
  return ad;
}

std::string sealAd(std::uint8_t version, std::string_view id) {
  std::string ad(kSealContext);
  ad.push_back(static_cast<char>(version));
  ad += id;
  return ad;
}

// nonce || AEAD(key, plaintext, ad)
std::string aeadEncrypt(const SecretBytes& key, std::string_view ad, std::string_view plaintext) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, kNonceBytes);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + kNonceBytes, &clen, bytes(plaintext),
                                             plaintext.size(), bytes(ad), ad.size(), nullptr, nonce,
                                             key.data());
  out.resize(kNonceBytes + clen);
  return out;
}

// The plaintext of nonce || ciphertext, or nothing when authentication fails.
bool aeadDecrypt(const SecretBytes& key, std::string_view ad, std::string_view boxed,
                 SecretBytes& plaintext) {
  if (boxed.size() < kNonceBytes + kTagBytes) return false;
  const auto* nonce = bytes(boxed);
  std::string_view ct = boxed.substr(kNonceBytes);
  SecretBytes out(ct.size() - kTagBytes);
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &mlen, nullptr, bytes(ct), ct.size(),
                                                 bytes(ad), ad.size(), nonce, key.data()) != 0) {
    return false;
  }
  plaintext = std::move(out);
  return true;
}

Status checkKey(const SecretBytes& key) {
  if (key.size() != kDataKeyBytes) {
    return Error::make(ErrorCode::internal, "data key has the wrong size (state is locked?)");
  }
  return {};
}

}  // namespace

const char* toString(KdfProfile profile) noexcept {
  switch (profile) {
    case KdfProfile::interactive:
      return "interactive";
    case KdfProfile::moderate:
      return "moderate";
    case KdfProfile::sensitive:
      return "sensitive";
  }
  return "moderate";
}

Result<KdfProfile> parseKdfProfile(std::string_view name) {
  if (name == "interactive") return KdfProfile::interactive;
  if (name == "moderate") return KdfProfile::moderate;
  if (name == "sensitive") return KdfProfile::sensitive;
  return Error::make(ErrorCode::invalid_argument,
                     "unknown KDF profile \"" + std::string(name) +
                         "\": use \"interactive\", \"moderate\" or \"sensitive\"");
}

KdfParams KdfParams::forProfile(KdfProfile profile) noexcept {
  KdfParams p;
  p.alg = crypto_pwhash_ALG_ARGON2ID13;
  switch (profile) {
    case KdfProfile::interactive:
      p.opsLimit = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
      p.memLimit = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
      break;
    case KdfProfile::moderate:
      p.opsLimit = crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
      p.memLimit = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
      break;
    case KdfProfile::sensitive:
      p.opsLimit = crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE;
      p.memLimit = crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE;
      break;
  }
  return p;
}

Status KdfParams::validate() const {
  if (alg != crypto_pwhash_ALG_ARGON2ID13) {
    return Error::make(ErrorCode::invalid_argument,
                       "unsupported KDF algorithm " + std::to_string(alg) + " (expected Argon2id)");
  }
  if (opsLimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      opsLimit > crypto_pwhash_argon2id_OPSLIMIT_MAX) {
    return Error::make(ErrorCode::invalid_argument, "KDF opslimit out of range");
  }
  if (memLimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      memLimit > crypto_pwhash_argon2id_MEMLIMIT_MAX) {
    return Error::make(ErrorCode::invalid_argument, "KDF memlimit out of range");
  }
  return {};
}

SecretBytes newDataKey() {
  return SecretBytes::random(kDataKeyBytes);
}

Result<SecretBytes> deriveKek(std::string_view passphrase, const KdfParams& params,
                              std::string_view salt) {
  ensureSodium();
  if (Status st = params.validate(); !st) return st.error();
  if (salt.size() != kKdfSaltBytes) {
    return Error::make(ErrorCode::invalid_argument, "KDF salt has the wrong size");
  }
  SecretBytes kek(kDataKeyBytes);
  if (crypto_pwhash(kek.data(), kek.size(), passphrase.data(), passphrase.size(), bytes(salt),
                    params.opsLimit, static_cast<std::size_t>(params.memLimit), params.alg) != 0) {
    return Error::make(ErrorCode::internal, "Argon2id failed (out of memory? it needs " +
                                                std::to_string(params.memLimit >> 20) + " MiB)");
  }
  return kek;
}

Result<WrappedKey> wrapKey(const SecretBytes& dataKey, std::string_view passphrase,
                           KdfProfile profile) {
  ensureSodium();
  if (Status st = checkKey(dataKey); !st) return st.error();
  if (passphrase.empty()) {
    return Error::make(ErrorCode::invalid_argument, "the passphrase must not be empty");
  }
  WrappedKey w;
  w.version = kWrapVersion;
  w.kdf = KdfParams::forProfile(profile);
  w.salt.assign(kKdfSaltBytes, '\0');
  randombytes_buf(w.salt.data(), w.salt.size());
  auto kek = deriveKek(passphrase, w.kdf, w.salt);
  if (!kek) return std::move(kek).error();
  w.ciphertext = aeadEncrypt(*kek, wrapAd(w), dataKey.view());
  return w;
}

Result<SecretBytes> unwrapKey(const WrappedKey& wrapped, std::string_view passphrase) {
  ensureSodium();
  if (wrapped.version != kWrapVersion) {
    return Error::make(ErrorCode::invalid_argument, "unsupported wrapped-key format version " +
                                                        std::to_string(wrapped.version) +
                                                        " (written by a newer foundationd?)");
  }
  auto kek = deriveKek(passphrase, wrapped.kdf, wrapped.salt);
  if (!kek) return std::move(kek).error();
  SecretBytes dataKey;
  if (!aeadDecrypt(*kek, wrapAd(wrapped), wrapped.ciphertext, dataKey) ||
      dataKey.size() != kDataKeyBytes) {
    return Error::make(ErrorCode::wrong_passphrase, "wrong passphrase");
  }
  return dataKey;
}

Result<WrappedKey> rewrap(const WrappedKey& wrapped, std::string_view oldPassphrase,
                          std::string_view newPassphrase, KdfProfile profile) {
  auto dataKey = unwrapKey(wrapped, oldPassphrase);
  if (!dataKey) return std::move(dataKey).error();
  return wrapKey(*dataKey, newPassphrase, profile);
}

Result<std::string> seal(const SecretBytes& dataKey, std::string_view id,
                         std::string_view plaintext) {
  ensureSodium();
  if (Status st = checkKey(dataKey); !st) return st.error();
  std::string out(1, static_cast<char>(kSealVersion));
  out += aeadEncrypt(dataKey, sealAd(kSealVersion, id), plaintext);
  return out;
}

Result<SecretBytes> open(const SecretBytes& dataKey, std::string_view id, std::string_view sealed) {
  ensureSodium();
  if (Status st = checkKey(dataKey); !st) return st.error();
  if (sealed.empty() || static_cast<std::uint8_t>(sealed[0]) != kSealVersion) {
    return Error::make(ErrorCode::internal,
                       "sealed value of " + std::string(id) + " has an unknown format version");
  }
  SecretBytes plaintext;
  if (!aeadDecrypt(dataKey, sealAd(kSealVersion, id), sealed.substr(1), plaintext)) {
    return Error::make(ErrorCode::internal,
                       "sealed value of " + std::string(id) +
                           " failed authentication: corrupted, tampered with, or sealed under "
                           "another id or key");
  }
  return plaintext;
}

std::string keyFingerprint(const SecretBytes& dataKey) {
  ensureSodium();
  if (dataKey.empty()) return {};
  unsigned char out[32];
  crypto_generichash(out, sizeof out, bytes(kFingerprintContext), kFingerprintContext.size(),
                     dataKey.data(), dataKey.size());
  char hex[2 * sizeof out + 1];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return std::string(hex, 2 * sizeof out);
}

UnlockedKey::UnlockedKey(SecretBytes dataKey) : key_(std::move(dataKey)) {
  if (key_.size() != kDataKeyBytes) {
    key_.wipe();
    throw std::invalid_argument("UnlockedKey: a data key has 32 bytes");
  }
  fingerprint_ = keyFingerprint(key_);
}

void UnlockedKey::lock() noexcept {
  key_.wipe();
  fingerprint_.clear();
}

Result<std::string> UnlockedKey::seal(std::string_view id, std::string_view plaintext) const {
  if (locked()) return Error::make(ErrorCode::unavailable, "the state is locked: unseal first");
  return state::seal(key_, id, plaintext);
}

Result<SecretBytes> UnlockedKey::open(std::string_view id, std::string_view sealed) const {
  if (locked()) return Error::make(ErrorCode::unavailable, "the state is locked: unseal first");
  return state::open(key_, id, sealed);
}

}  // namespace foundationd::state
