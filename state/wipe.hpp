// wipe(): zeroes a string that held a secret, before it is freed or reused.
//
// Contract:
// - The whole buffer is zeroed, its capacity and not only its size (what a
//   longer value left behind in it too), with sodium_memzero, which the
//   compiler may not elide; then the string is empty.
// - A block the string freed earlier, when it grew, is not reached: a string
//   that grows while it holds a secret belongs in a WipingAllocator
//   (wiping_allocator.hpp) or in SecretBytes.
#pragma once

#include <string>

#include <sodium.h>

namespace foundationd::state {

inline void wipe(std::string& s) noexcept {
  if (s.capacity() > 0) sodium_memzero(s.data(), s.capacity());
  s.clear();
}

// Wipes `s` (as wipe() does) when the scope ends, however it ends: for a
// string that holds a secret for the rest of a function.
struct WipeOnExit {
  explicit WipeOnExit(std::string& str) noexcept : s(str) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit() { wipe(s); }

  std::string& s;
};

}  // namespace foundationd::state
