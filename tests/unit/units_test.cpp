#include <doctest/doctest.h>

#include "config/units.hpp"

using namespace foundationd::config;
using namespace std::chrono_literals;

TEST_CASE("parseDuration accepts every unit") {
  CHECK(parseDuration("500ms") == Duration(500));
  CHECK(parseDuration("30s") == Duration(30s));
  CHECK(parseDuration("5m") == Duration(5min));
  CHECK(parseDuration("2h") == Duration(2h));
  CHECK(parseDuration("90d") == Duration(90 * 24h));
  CHECK(parseDuration("0s") == Duration(0));
}

TEST_CASE("parseDuration accepts compound durations, largest unit first") {
  CHECK(parseDuration("1h30m") == Duration(90min));
  CHECK(parseDuration("1m30s500ms") == Duration(90'500));
  CHECK_FALSE(parseDuration("30s1m"));
  CHECK_FALSE(parseDuration("1s1s"));
}

TEST_CASE("parseDuration refuses bare numbers and malformed text") {
  CHECK_FALSE(parseDuration(""));
  CHECK_FALSE(parseDuration("30"));  // the unit is required
  CHECK_FALSE(parseDuration("s"));
  CHECK_FALSE(parseDuration("5 m"));
  CHECK_FALSE(parseDuration("-5s"));
  CHECK_FALSE(parseDuration("1.5s"));
  CHECK_FALSE(parseDuration("5y"));
  CHECK_FALSE(parseDuration("5S"));
  CHECK_FALSE(parseDuration("5sec"));
  CHECK_FALSE(parseDuration("99999999999999999999s"));  // overflow
  CHECK_FALSE(parseDuration("9223372036854775807d"));
}

TEST_CASE("formatDuration renders the shortest exact unit") {
  CHECK(formatDuration(Duration(1500)) == "1500ms");
  CHECK(formatDuration(Duration(30'000)) == "30s");
  CHECK(formatDuration(Duration(7'776'000'000)) == "90d");
  CHECK(formatDuration(Duration(90min)) == "90m");
  CHECK(formatDuration(Duration(2h)) == "2h");
  CHECK(formatDuration(Duration(0)) == "0s");
  CHECK(formatDuration(Duration(-2000)) == "-2s");
  for (const char* text : {"500ms", "30s", "5m", "2h", "90d"}) {
    CHECK(formatDuration(*parseDuration(text)) == text);
  }
}

TEST_CASE("formatSize renders the spec's shortest exact unit, binary first") {
  CHECK(formatSize(67'108'864) == "64MiB");
  CHECK(formatSize(1LL << 30) == "1GiB");
  CHECK(formatSize(3LL << 40) == "3TiB");
  CHECK(formatSize(1536LL << 20) == "1536MiB");
  CHECK(formatSize(1'000'000'000) == "1GB");
  CHECK(formatSize(2'000) == "2kB");
  CHECK(formatSize(1'500) == "1500B");
  CHECK(formatSize(0) == "0B");
  for (const char* text : {"512MiB", "1GiB", "1GB", "7kB", "6MiB", "123B"}) {
    CHECK(formatSize(*parseSize(text)) == text);
  }
  for (std::int64_t n : {1LL, 1024LL, 999'999LL, 1LL << 33, 5'000'000'000LL}) {
    CHECK(parseSize(formatSize(n)) == n);
  }
}

TEST_CASE("parseSize: binary, decimal and plain bytes") {
  CHECK(parseSize("512") == 512);
  CHECK(parseSize("512B") == 512);
  CHECK(parseSize("1KiB") == 1024);
  CHECK(parseSize("512MiB") == 512LL * 1024 * 1024);
  CHECK(parseSize("1GiB") == 1LL << 30);
  CHECK(parseSize("2TiB") == 2LL << 40);
  CHECK(parseSize("1kB") == 1000);
  CHECK(parseSize("1KB") == 1000);
  CHECK(parseSize("1MB") == 1'000'000);
  CHECK(parseSize("1GB") == 1'000'000'000);
  CHECK(parseSize("1TB") == 1'000'000'000'000);
}

TEST_CASE("parseSize refuses malformed text") {
  CHECK_FALSE(parseSize(""));
  CHECK_FALSE(parseSize("GiB"));
  CHECK_FALSE(parseSize("1 GiB"));
  CHECK_FALSE(parseSize("1.5GiB"));
  CHECK_FALSE(parseSize("-1"));
  CHECK_FALSE(parseSize("1gib"));
  CHECK_FALSE(parseSize("1XB"));
  CHECK_FALSE(parseSize("99999999999TiB"));  // overflow
}
