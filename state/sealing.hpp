// Envelope encryption of the state (INTERFACES.md "State").
//
//   passphrase --Argon2id(salt, KdfParams)--> KEK (32 bytes)
//   KEK --XChaCha20-Poly1305--> wraps a random 32-byte data key (WrappedKey)
//   data key --XChaCha20-Poly1305, AD = the secret's id--> every sealed secret
//
// Contract:
// - Everything here is a pure function of its arguments plus libsodium's
//   CSPRNG; no I/O, no global state besides sodium_init(). Thread-safe.
// - deriveKek/wrapKey/unwrapKey/rewrap run Argon2id: they take 0.1 s to
//   seconds and up to 1 GiB of memory ("sensitive"): call them off the event
//   loop (STYLE.md: blocking work goes to the thread pool).
// - A WrappedKey is not secret: it carries the salt and the KDF parameters it
//   was made with, so changing the default profile never breaks unlocking.
// - Errors: a passphrase that does not unwrap the key -> ErrorCode::
//   wrong_passphrase ("wrong passphrase"); a sealed blob that fails
//   authentication (tampered, truncated, moved to another id, other key) ->
//   ErrorCode::internal (corruption); malformed parameters -> invalid_argument.
//   Messages never contain key material or plaintext.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::state {

// Argon2id cost presets, named after libsodium's OPSLIMIT_/MEMLIMIT_ constants:
// interactive (2 passes, 64 MiB; tests), moderate (3, 256 MiB; the default),
// sensitive (4, 1 GiB).
enum class KdfProfile { interactive, moderate, sensitive };
const char* toString(KdfProfile profile) noexcept;
// "interactive" | "moderate" | "sensitive"; anything else -> invalid_argument.
Result<KdfProfile> parseKdfProfile(std::string_view name);

// The Argon2id parameters a KEK was derived with; stored next to the salt.
struct KdfParams {
  int alg = 0;                 // crypto_pwhash_ALG_ARGON2ID13
  std::uint64_t opsLimit = 0;  // passes
  std::uint64_t memLimit = 0;  // bytes
  static KdfParams forProfile(KdfProfile profile) noexcept;
  // Argon2id with limits inside libsodium's bounds; else invalid_argument.
  Status validate() const;
  bool operator==(const KdfParams&) const = default;
};

inline constexpr std::size_t kDataKeyBytes = 32;
inline constexpr std::size_t kKdfSaltBytes = 16;  // crypto_pwhash_SALTBYTES
inline constexpr std::size_t kNonceBytes = 24;    // XChaCha20-Poly1305-IETF
inline constexpr std::uint8_t kWrapVersion = 1;   // WrappedKey format
inline constexpr std::uint8_t kSealVersion = 1;   // first byte of a sealed blob

// The data key encrypted under a passphrase-derived KEK. Safe to store.
struct WrappedKey {
  std::uint8_t version = kWrapVersion;
  KdfParams kdf;
  std::string salt;        // kKdfSaltBytes random bytes
  std::string ciphertext;  // nonce (24) || ciphertext of the data key + tag (48)
  bool operator==(const WrappedKey&) const = default;
};

// A fresh random data key.
SecretBytes newDataKey();

// Argon2id(passphrase, salt, params) -> 32-byte KEK. Errors: invalid_argument
// for bad params or salt size; internal when Argon2id fails (out of memory).
Result<SecretBytes> deriveKek(std::string_view passphrase, const KdfParams& params,
                              std::string_view salt);

// Wraps `dataKey` under `passphrase` with a new random salt and nonce.
// An empty passphrase is refused (invalid_argument).
Result<WrappedKey> wrapKey(const SecretBytes& dataKey, std::string_view passphrase,
                           KdfProfile profile);

// The data key, or wrong_passphrase. Uses the params stored in `wrapped`.
Result<SecretBytes> unwrapKey(const WrappedKey& wrapped, std::string_view passphrase);

// Rekey: unwraps with `oldPassphrase` (wrong_passphrase otherwise) and wraps
// the same data key under `newPassphrase` with a new salt, nonce and profile.
Result<WrappedKey> rewrap(const WrappedKey& wrapped, std::string_view oldPassphrase,
                          std::string_view newPassphrase, KdfProfile profile);

// Sealed blob: version (1 byte) || nonce (24) || ciphertext + tag (16).
// `id` is the secret's identity (e.g. "credential/postgres/password/v3"),
// bound as associated data: a blob copied under another id does not open.
Result<std::string> seal(const SecretBytes& dataKey, std::string_view id,
                         std::string_view plaintext);
Result<SecretBytes> open(const SecretBytes& dataKey, std::string_view id, std::string_view sealed);

// The unlocked data key. Move-only; lock() (or destruction) wipes it.
// Not thread-safe: its owner guards it (the daemon keeps at most one).
class UnlockedKey {
 public:
  UnlockedKey() = default;  // locked
  // Takes a 32-byte data key; throws std::invalid_argument on another size (a bug).
  explicit UnlockedKey(SecretBytes dataKey);

  UnlockedKey(UnlockedKey&&) noexcept = default;
  UnlockedKey& operator=(UnlockedKey&&) noexcept = default;

  bool locked() const noexcept { return key_.empty(); }
  // Wipes the key; seal/open then fail with ErrorCode::unavailable.
  void lock() noexcept;

  // A public fingerprint of the data key (hex BLAKE2b keyed by the key over a
  // fixed string): tells which key this is, reveals nothing of it. Empty when
  // locked. The store compares it with its own to refuse a foreign key.
  const std::string& fingerprint() const noexcept { return fingerprint_; }

  Result<std::string> seal(std::string_view id, std::string_view plaintext) const;
  Result<SecretBytes> open(std::string_view id, std::string_view sealed) const;

  // For wrapping (initialise/rekey). Empty when locked.
  const SecretBytes& dataKey() const noexcept { return key_; }

 private:
  SecretBytes key_;
  std::string fingerprint_;
};

// The fingerprint UnlockedKey computes, for a raw data key.
std::string keyFingerprint(const SecretBytes& dataKey);

}  // namespace foundationd::state
