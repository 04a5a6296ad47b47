#include "controllers/credentials/generators.hpp"

#include <array>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include <doctest/doctest.h>
#include <sodium.h>

using namespace foundationd;
using config::Generator;
using credentials::generate;
using credentials::kPasswordSymbols;

namespace {

// doctest cannot print ErrorCode (ADL finds foundationd::toString), so
// compare its name.
template <class R>
std::string codeOf(const R& r) {
  return foundationd::toString(r.error().code);
}

constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kHex = "0123456789abcdef";
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

Generator password(int length, bool symbols = false) {
  Generator g;
  g.kind = Generator::Kind::password;
  g.length = length;
  g.symbols = symbols;
  return g;
}

Generator ofBytes(Generator::Kind kind, int bytes) {
  Generator g;
  g.kind = kind;
  g.bytes = bytes;
  return g;
}

bool allIn(std::string_view s, std::string_view alphabet) {
  return s.find_first_not_of(alphabet) == std::string_view::npos;
}

// Draws `samples` values and tallies every character of each.
std::array<long, 256> tally(const Generator& g, int samples) {
  std::array<long, 256> counts{};
  for (int i = 0; i < samples; ++i) {
    auto v = generate(g);
    for (unsigned char c : v.view()) ++counts[c];
  }
  return counts;
}

// Pearson's chi-square of `counts` against a uniform distribution over
// `alphabet`; characters outside the alphabet fail the test outright.
double chiSquare(const std::array<long, 256>& counts, std::string_view alphabet) {
  long total = 0;
  for (long c : counts) total += c;
  long inside = 0;
  for (unsigned char c : alphabet) inside += counts[c];
  REQUIRE(inside == total);
  const double expected = static_cast<double>(total) / static_cast<double>(alphabet.size());
  double chi = 0;
  for (unsigned char c : alphabet) {
    const double d = static_cast<double>(counts[c]) - expected;
    chi += d * d / expected;
  }
  return chi;
}

// A loose bound: the mean of chi-square with k-1 degrees of freedom plus ten
// standard deviations. A uniform generator essentially never exceeds it; a
// constant one, or one with modulo bias (`byte % 62` over-weights 8 of 62
// characters by 25%), exceeds it many times over at these sample sizes.
double looseBound(std::size_t k) {
  const double df = static_cast<double>(k - 1);
  return df + 10.0 * std::sqrt(2.0 * df);
}

}  // namespace

TEST_CASE("password: length and alphabet") {
  for (int length : {1, 8, 32, 100, credentials::kMaxPasswordLength}) {
    auto p = generate(password(length));
    CHECK(p.size() == static_cast<std::size_t>(length));
    CHECK(allIn(p.view(), kAlnum));
  }
  const std::string withSymbols = std::string(kAlnum) + std::string(kPasswordSymbols);
  for (int i = 0; i < 50; ++i) {
    auto p = generate(password(64, true));
    CHECK(p.size() == 64);
    CHECK(allIn(p.view(), withSymbols));
  }
}

TEST_CASE("password: the symbol set is documented and free of troublesome characters") {
  CHECK(kPasswordSymbols == "!*+-.=_~");
  for (char c : std::string_view("\"'\\`$#%;&@:/ \t<>[]{}()|")) {
    CHECK(kPasswordSymbols.find(c) == std::string_view::npos);
  }
}

TEST_CASE("password: 1000 values are all distinct") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(std::string(generate(password(32)).view()));
  CHECK(seen.size() == 1000);
  // Even short ones: 62^8 values, so a collision among 1000 is ~1e-8 likely.
  std::set<std::string> shortOnes;
  for (int i = 0; i < 1000; ++i) shortOnes.insert(std::string(generate(password(8)).view()));
  CHECK(shortOnes.size() == 1000);
}

TEST_CASE("password: characters are uniform over the alphabet") {
  auto counts = tally(password(64), 2000);  // 128,000 characters, ~2,064 per character
  const double chi = chiSquare(counts, kAlnum);
  INFO("chi-square " << chi << ", bound " << looseBound(kAlnum.size()));
  CHECK(chi < looseBound(kAlnum.size()));
  for (unsigned char c : kAlnum) CHECK(counts[c] > 0);

  const std::string withSymbols = std::string(kAlnum) + std::string(kPasswordSymbols);
  auto symCounts = tally(password(64, true), 2000);
  const double symChi = chiSquare(symCounts, withSymbols);
  INFO("chi-square with symbols " << symChi);
  CHECK(symChi < looseBound(withSymbols.size()));
}

TEST_CASE("the uniformity check rejects biased or constant generators") {
  // Guards the test itself: what would a `byte % 62` generator score?
  std::array<long, 256> biased{};
  for (int b = 0; b < 256; ++b) biased[static_cast<unsigned char>(kAlnum[b % 62])] += 500;
  CHECK(chiSquare(biased, kAlnum) > looseBound(kAlnum.size()));
  std::array<long, 256> constant{};
  constant['a'] = 128000;
  CHECK(chiSquare(constant, kAlnum) > looseBound(kAlnum.size()));
}

TEST_CASE("hex: 2*bytes lowercase digits, uniform") {
  for (int bytes : {1, 16, 32, 64}) {
    auto h = generate(ofBytes(Generator::Kind::hex, bytes));
    CHECK(h.size() == static_cast<std::size_t>(2 * bytes));
    CHECK(allIn(h.view(), kHex));
  }
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(std::string(generate(ofBytes(Generator::Kind::hex, 16)).view()));
  }
  CHECK(seen.size() == 1000);
  auto counts = tally(ofBytes(Generator::Kind::hex, 32), 1000);
  CHECK(chiSquare(counts, kHex) < looseBound(kHex.size()));
}

TEST_CASE("base64url: unpadded RFC 4648 url-safe encoding of `bytes` bytes") {
  for (int bytes = 1; bytes <= 40; ++bytes) {
    auto b = generate(ofBytes(Generator::Kind::base64url, bytes));
    CHECK(b.size() == static_cast<std::size_t>((4 * bytes + 2) / 3));
    CHECK(allIn(b.view(), kBase64Url));
    std::string decoded(static_cast<std::size_t>(bytes) + 1, '\0');
    std::size_t len = 0;
    REQUIRE(sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(),
                              b.view().data(), b.size(), nullptr, &len, nullptr,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    CHECK(len == static_cast<std::size_t>(bytes));
  }
  // 30 bytes = 40 characters that each carry 6 random bits.
  auto counts = tally(ofBytes(Generator::Kind::base64url, 30), 3000);
  CHECK(chiSquare(counts, kBase64Url) < looseBound(kBase64Url.size()));
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(std::string(generate(ofBytes(Generator::Kind::base64url, 32)).view()));
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("uuid: RFC 4122 version 4 format") {
  std::set<std::string> seen;
  std::map<char, int> variants;
  for (int i = 0; i < 1000; ++i) {
    Generator g;
    g.kind = Generator::Kind::uuid;
    auto u = generate(g);
    const std::string s(u.view());
    REQUIRE(s.size() == 36);
    for (std::size_t j = 0; j < s.size(); ++j) {
      if (j == 8 || j == 13 || j == 18 || j == 23) {
        CHECK(s[j] == '-');
      } else {
        CHECK(kHex.find(s[j]) != std::string_view::npos);
      }
    }
    CHECK(s[14] == '4');                                                    // version
    CHECK(std::string_view("89ab").find(s[19]) != std::string_view::npos);  // variant 10xx
    ++variants[s[19]];
    seen.insert(s);
  }
  CHECK(seen.size() == 1000);
  CHECK(variants.size() == 4);  // the two free variant bits are random
}

TEST_CASE("out-of-range generators are refused") {
  CHECK(credentials::validate(password(32)).ok());
  CHECK(codeOf(credentials::validate(password(0))) == "invalid_argument");
  CHECK_FALSE(credentials::validate(password(credentials::kMaxPasswordLength + 1)).ok());
  CHECK_FALSE(credentials::validate(ofBytes(Generator::Kind::hex, 0)).ok());
  CHECK_FALSE(credentials::validate(ofBytes(Generator::Kind::base64url, -1)).ok());
  CHECK_THROWS_AS(generate(password(0)), std::invalid_argument);
  CHECK_THROWS_AS(generate(ofBytes(Generator::Kind::hex, 0)), std::invalid_argument);
}
