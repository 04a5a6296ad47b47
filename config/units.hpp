// Durations ("500ms", "30s", "5m", "2h", "90d") and sizes ("512MiB", "1GiB",
// also plain byte counts and kB/MB/GB decimal units). Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace foundationd::config {

using Duration = std::chrono::milliseconds;

// nullopt when the text is not a valid duration. A bare number is refused
// (the unit is required so "30" is never silently seconds or milliseconds).
std::optional<Duration> parseDuration(std::string_view text);

// The shortest exact rendering: 1500ms -> "1500ms", 30000 -> "30s", 7776000000 -> "90d".
std::string formatDuration(Duration d);

// Bytes; nullopt when invalid. "1GiB" = 2^30; "1GB" = 10^9; "512" = 512 bytes.
std::optional<std::int64_t> parseSize(std::string_view text);

// The shortest exact rendering in the spec's units, binary first:
// 67108864 -> "64MiB", 1000000000 -> "1GB", 1500 -> "1500B", 0 -> "0B".
// parseSize(formatSize(n)) == n.
std::string formatSize(std::int64_t bytes);

}  // namespace foundationd::config
