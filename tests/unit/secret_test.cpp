#include "state/secret.hpp"

#include <string>
#include <type_traits>
#include <utility>

#include <doctest/doctest.h>

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
