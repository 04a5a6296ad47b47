// WipingAllocator: a standard allocator whose deallocate() zeroes the block
// (sodium_memzero, which the compiler may not elide) before freeing it. For
// containers that briefly hold a secret outside SecretBytes, e.g. the JSON
// parser's buffers while it reads an unseal body (api/secret_json.hpp): every
// block they free, also the smaller ones left behind when a string grows,
// is zeroed first.
//
// Contract:
// - Stateless: all instances compare equal; rebinding keeps the wiping.
// - Memory comes from ::operator new (not guarded, not mlock'ed): it holds a
//   secret only for as long as the container does, and the process is not
//   dumpable (protectProcess()).
// - What lives inside the container object itself (std::basic_string's
//   short-string buffer, under 16 bytes) does not pass through the
//   allocator: its owner wipes it, or it lives in a block that is.
// - wipedBytes() counts the bytes zeroed so far (all threads; for tests).
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <string>

#include <sodium.h>

namespace foundationd::state {

namespace detail {
inline std::atomic<std::size_t> wipedByteCount{0};
}  // namespace detail

inline std::size_t wipedBytes() noexcept {
  return detail::wipedByteCount.load(std::memory_order_relaxed);
}

template <typename T>
struct WipingAllocator {
  using value_type = T;

  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: implicit, as std::allocator

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (p == nullptr) return;
    sodium_memzero(static_cast<void*>(p), n * sizeof(T));
    detail::wipedByteCount.fetch_add(n * sizeof(T), std::memory_order_relaxed);
    ::operator delete(static_cast<void*>(p), std::align_val_t{alignof(T)});
  }

  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

// A string whose heap buffers are zeroed when freed (short strings: see above).
using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

}  // namespace foundationd::state
