#include "config/units.hpp"

#include <array>
#include <limits>
#include <utility>

namespace foundationd::config {

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// Reads a run of decimal digits; false on none or on overflow.
bool readNumber(std::string_view text, std::size_t& pos, std::int64_t& out) {
  const std::size_t start = pos;
  out = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    const int digit = text[pos] - '0';
    if (out > (kMax - digit) / 10) return false;
    out = out * 10 + digit;
    ++pos;
  }
  return pos > start;
}

bool mulAdd(std::int64_t& acc, std::int64_t value, std::int64_t factor) {
  if (value != 0 && factor > kMax / value) return false;
  if (acc > kMax - value * factor) return false;
  acc += value * factor;
  return true;
}

struct Unit {
  std::string_view name;
  std::int64_t factor;
};

// Largest first: components of a compound duration must appear in this order.
constexpr std::array<Unit, 5> kDurationUnits{{
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};

constexpr std::array<Unit, 10> kSizeUnits{{
    {"B", 1},
    {"kB", 1'000}, {"KB", 1'000}, {"MB", 1'000'000}, {"GB", 1'000'000'000},
    {"TB", 1'000'000'000'000},
    {"KiB", std::int64_t{1} << 10}, {"MiB", std::int64_t{1} << 20},
    {"GiB", std::int64_t{1} << 30}, {"TiB", std::int64_t{1} << 40}}};

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::size_t pos = 0;
  std::int64_t total = 0;
  std::size_t lastUnit = 0;  // index into kDurationUnits that the next unit must exceed
  bool first = true;
  while (pos < text.size()) {
    std::int64_t n = 0;
    if (!readNumber(text, pos, n)) return std::nullopt;
    const std::size_t unitStart = pos;
    while (pos < text.size() && text[pos] >= 'a' && text[pos] <= 'z') ++pos;
    const std::string_view unit = text.substr(unitStart, pos - unitStart);
    std::size_t index = kDurationUnits.size();
    for (std::size_t i = 0; i < kDurationUnits.size(); ++i) {
      if (kDurationUnits[i].name == unit) index = i;
    }
    if (index == kDurationUnits.size()) return std::nullopt;  // includes a missing unit
    if (!first && index <= lastUnit) return std::nullopt;     // "1s2h", "1s1s"
    if (!mulAdd(total, n, kDurationUnits[index].factor)) return std::nullopt;
    lastUnit = index;
    first = false;
  }
  return Duration(total);
}

std::string formatDuration(Duration d) {
  std::int64_t ms = d.count();
  if (ms < 0) return "-" + formatDuration(Duration(-ms));
  if (ms == 0) return "0s";
  for (const auto& u : kDurationUnits) {
    if (ms % u.factor == 0) return std::to_string(ms / u.factor) + std::string(u.name);
  }
  return std::to_string(ms) + "ms";
}

std::optional<std::int64_t> parseSize(std::string_view text) {
  std::size_t pos = 0;
  std::int64_t n = 0;
  if (!readNumber(text, pos, n)) return std::nullopt;
  const std::string_view unit = text.substr(pos);
  if (unit.empty()) return n;
  for (const auto& u : kSizeUnits) {
    if (u.name == unit) {
      std::int64_t total = 0;
      if (!mulAdd(total, n, u.factor)) return std::nullopt;
      return total;
    }
  }
  return std::nullopt;
}

std::string formatSize(std::int64_t bytes) {
  if (bytes < 0) return std::to_string(bytes) + "B";
  if (bytes == 0) return "0B";
  // Binary units first (largest first), then decimal: the first exact one.
  static constexpr std::array<Unit, 8> kOrder{{
      {"TiB", std::int64_t{1} << 40}, {"GiB", std::int64_t{1} << 30},
      {"MiB", std::int64_t{1} << 20}, {"KiB", std::int64_t{1} << 10},
      {"TB", 1'000'000'000'000}, {"GB", 1'000'000'000}, {"MB", 1'000'000}, {"kB", 1'000}}};
  for (const auto& u : kOrder) {
    if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string(u.name);
  }
  return std::to_string(bytes) + "B";
}

}  // namespace foundationd::config
