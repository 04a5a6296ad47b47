#include "state/secret.hpp"

#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include <csignal>

#include <sodium.h>
#include <sys/prctl.h>

namespace foundationd::state {

void ensureSodium() {
  // sodium_init() is itself idempotent and thread-safe; the static only
  // saves the call and turns failure into one exception at first use.
  static const bool initialised = [] { return sodium_init() >= 0; }();
  if (!initialised) throw std::runtime_error("libsodium could not be initialised");
}

void protectProcess() noexcept {
  (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  (void)std::signal(SIGPIPE, SIG_IGN);
}

SecretBytes::SecretBytes(std::size_t size) {
  if (size == 0) return;
  ensureSodium();
  data_ = static_cast<unsigned char*>(sodium_malloc(size));
  if (data_ == nullptr) throw std::bad_alloc();
  sodium_memzero(data_, size);  // sodium_malloc fills with 0xdb
  size_ = size;
}

SecretBytes SecretBytes::copyOf(std::string_view bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretBytes SecretBytes::random(std::size_t size) {
  SecretBytes s(size);
  if (size > 0) randombytes_buf(s.data_, size);
  return s;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    wipe();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() {
  wipe();
}

std::string_view SecretBytes::view() const noexcept {
  if (data_ == nullptr) return {};
  return {reinterpret_cast<const char*>(data_), size_};
}

void SecretBytes::wipe() noexcept {
  if (data_ != nullptr) sodium_free(data_);  // zeroes before unmapping
  data_ = nullptr;
  size_ = 0;
}

bool SecretBytes::equals(std::string_view other) const noexcept {
  if (other.size() != size_) return false;
  if (size_ == 0) return true;
  return sodium_memcmp(data_, other.data(), size_) == 0;
}

}  // namespace foundationd::state
