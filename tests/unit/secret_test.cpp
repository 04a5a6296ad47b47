#include "state/secret.hpp"
#include "state/wiping_allocator.hpp"

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <type_traits>
#include <utility>

#include <doctest/doctest.h>
#include <sys/prctl.h>

using foundationd::state::SecretBytes;

static_assert(!std::is_copy_constructible_v<SecretBytes>);
static_assert(!std::is_copy_assignable_v<SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);
static_assert(std::is_nothrow_move_assignable_v<SecretBytes>);

TEST_CASE("SecretBytes holds a copy and views it") {
  SecretBytes s = SecretBytes::copyOf("hunter2");
  CHECK(s.size() == 7);
  CHECK_FALSE(s.empty());
  CHECK(s.view() == "hunter2");
  CHECK(s.equals("hunter2"));
  CHECK_FALSE(s.equals("hunter3"));
  CHECK_FALSE(s.equals("hunter"));
}

TEST_CASE("SecretBytes of a size is zero-filled") {
  SecretBytes s(16);
  REQUIRE(s.size() == 16);
  for (std::size_t i = 0; i < s.size(); ++i) CHECK(s.data()[i] == 0);
}

TEST_CASE("SecretBytes empty values") {
  SecretBytes a;
  SecretBytes b = SecretBytes::copyOf("");
  CHECK(a.empty());
  CHECK(b.empty());
  CHECK(a.view().empty());
  CHECK(a == b);
  CHECK(a.equals(""));
}

TEST_CASE("SecretBytes equality compares contents") {
  SecretBytes a = SecretBytes::copyOf("same");
  SecretBytes b = SecretBytes::copyOf("same");
  SecretBytes c = SecretBytes::copyOf("diff");
  SecretBytes d = SecretBytes::copyOf("same but longer");
  CHECK(a == b);
  CHECK_FALSE(a == c);
  CHECK_FALSE(a == d);
}

TEST_CASE("SecretBytes moves leave the source empty") {
  SecretBytes a = SecretBytes::copyOf("secret");
  const unsigned char* p = a.data();
  SecretBytes b(std::move(a));
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the contract says empty
  CHECK(a.data() == nullptr);
  CHECK(b.data() == p);
  CHECK(b.view() == "secret");

  SecretBytes c = SecretBytes::copyOf("other");
  c = std::move(b);
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move)
  CHECK(c.view() == "secret");
}

TEST_CASE("SecretBytes wipe empties it") {
  SecretBytes s = SecretBytes::copyOf("secret");
  s.wipe();
  CHECK(s.empty());
  CHECK(s.data() == nullptr);
  s.wipe();  // idempotent
  CHECK(s.empty());
}

TEST_CASE("SecretBytes::random differs between calls") {
  SecretBytes a = SecretBytes::random(32);
  SecretBytes b = SecretBytes::random(32);
  CHECK(a.size() == 32);
  CHECK_FALSE(a == b);
  SecretBytes zero(32);
  CHECK_FALSE(a == zero);
}

TEST_CASE("SecretBytes pages are excluded from core dumps (VmFlags dd) and locked") {
  foundationd::state::SecretBytes s(64);
  const auto addr = reinterpret_cast<std::uintptr_t>(s.data());
  std::ifstream smaps("/proc/self/smaps");
  REQUIRE(smaps);
  std::string line;
  bool inside = false, found = false;
  std::string flags;
  while (std::getline(smaps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(' ') < 30 &&
        line.find('-') < line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) {
      flags = line;
      found = true;
      break;
    }
  }
  REQUIRE(found);
  CHECK(flags.find(" dd") != std::string::npos);
}

TEST_CASE("protectProcess makes the process non-dumpable and ignores SIGPIPE") {
  foundationd::state::protectProcess();
  CHECK(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
  struct sigaction sa {};
  REQUIRE(::sigaction(SIGPIPE, nullptr, &sa) == 0);
  CHECK((sa.sa_handler == SIG_IGN));
}

TEST_CASE("WipingAllocator zeroes every block it frees: a growing string's old ones too") {
  using foundationd::state::WipingString;
  using foundationd::state::wipedBytes;
  const std::size_t start = wipedBytes();
  std::size_t capacities = 0;
  {
    WipingString s(100, 's');
    std::size_t capacity = s.capacity();
    while (s.size() < 5000) {
      s.push_back('t');
      if (s.capacity() != capacity) {
        capacities += capacity + 1;  // the old block (with its terminator) was freed
        capacity = s.capacity();
      }
    }
    CHECK(wipedBytes() - start == capacities);
    capacities += capacity + 1;
  }
  CHECK(wipedBytes() - start == capacities);  // and the last one when destroyed
  foundationd::state::WipingAllocator<std::uint64_t> words;
  std::uint64_t* p = words.allocate(8);
  p[0] = 42;
  words.deallocate(p, 8);
  CHECK(wipedBytes() - start == capacities + 64);
  CHECK(foundationd::state::WipingAllocator<char>{} == words);
}
