// SecretBytes: a secret value in guarded memory (STYLE.md "Code", like
// PowerDNS's credentials code).
//
// Contract:
// - Owns a libsodium `sodium_malloc` buffer (guard pages, mlock'ed when the
//   RLIMIT allows, excluded from core dumps where the OS supports it); the
//   buffer is zeroed and freed by `sodium_free` on destruction, on wipe() and
//   when moved-from. Move-only: a secret is never silently duplicated.
// - Equality is constant-time in the contents (`sodium_memcmp`); only the
//   lengths, which are not secret, are compared in variable time.
// - Deliberately has no operator<< and no implicit conversion to string: the
//   only way to read the bytes is view()/data(), which stands out in review.
// - Not thread-safe; an instance belongs to one owner at a time.
// - Allocation failure throws std::bad_alloc (a resource failure, not an
//   expected one); libsodium failing to initialise throws std::runtime_error.
#pragma once

#include <cstddef>
#include <string_view>

namespace foundationd::state {

// Initialises libsodium exactly once (thread-safe). Every function of state/
// that uses libsodium calls it; callers elsewhere may call it too.
// Throws std::runtime_error when libsodium cannot be initialised.
void ensureSodium();

// For a process that holds keys (serve, the Vault init helper, commands that
// unlock the state): PR_SET_DUMPABLE 0 (no core dump; other processes of
// the same user can neither ptrace it nor read its /proc/PID/mem or
// environ) and SIGPIPE ignored (a peer closing a socket or pipe is an error
// value, not a death). SecretBytes pages are excluded from core dumps on
// their own (sodium_malloc: MADV_DONTDUMP, mlock).
void protectProcess() noexcept;

class SecretBytes {
 public:
  SecretBytes() noexcept = default;  // empty
  // `size` zero bytes.
  explicit SecretBytes(std::size_t size);
  // A copy of `bytes` (e.g. a passphrase read from a request body).
  static SecretBytes copyOf(std::string_view bytes);
  // `size` bytes from libsodium's CSPRNG.
  static SecretBytes random(std::size_t size);

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes();

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  unsigned char* data() noexcept { return data_; }
  const unsigned char* data() const noexcept { return data_; }
  // The bytes as text. Valid until this object is wiped, moved from or destroyed.
  std::string_view view() const noexcept;

  // Zeroes and frees the buffer now; the object becomes empty.
  void wipe() noexcept;

  // Constant-time comparison of the contents (lengths are not secret).
  bool equals(std::string_view other) const noexcept;
  friend bool operator==(const SecretBytes& a, const SecretBytes& b) noexcept {
    return a.equals(b.view());
  }

 private:
  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace foundationd::state
