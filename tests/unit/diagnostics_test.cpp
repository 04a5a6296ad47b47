#include <doctest/doctest.h>

#include "config/diagnostics.hpp"

using namespace foundationd::config;

TEST_CASE("Diagnostic::format renders file:line:col: severity: message") {
  Diagnostic d{Severity::error, {"foundation.toml", 12, 3}, "unknown key \"x\""};
  CHECK(d.format() == "foundation.toml:12:3: error: unknown key \"x\"");
  d.severity = Severity::warning;
  CHECK(d.format() == "foundation.toml:12:3: warning: unknown key \"x\"");
}

TEST_CASE("Diagnostic::format omits an unknown line/column, and an unknown file") {
  CHECK(Diagnostic{Severity::error, {"spec.toml", 0, 0}, "cannot read"}.format() ==
        "spec.toml: error: cannot read");
  CHECK(Diagnostic{Severity::error, {"spec.toml", 4, 0}, "m"}.format() == "spec.toml:4: error: m");
  CHECK(Diagnostic{Severity::error, {"", 0, 0}, "m"}.format() == "error: m");
}

TEST_CASE("Diagnostics counts errors and warnings separately") {
  Diagnostics d;
  CHECK_FALSE(d.hasErrors());
  d.warning({"a", 1, 1}, "w");
  CHECK_FALSE(d.hasErrors());
  CHECK(d.warningCount() == 1);
  d.error({"a", 2, 1}, "e1");
  d.error({"a", 3, 1}, "e2");
  CHECK(d.hasErrors());
  CHECK(d.errorCount() == 2);
  CHECK(d.warningCount() == 1);
  CHECK(d.items().size() == 3);
}

TEST_CASE("Diagnostics sorts by file, line, column, then message") {
  Diagnostics d;
  d.error({"b.toml", 1, 1}, "in b");
  d.error({"a.toml", 10, 2}, "line ten");
  d.error({"a.toml", 2, 9}, "zeta");
  d.error({"a.toml", 2, 9}, "alpha");
  d.error({"a.toml", 2, 1}, "col one");
  CHECK(d.formatAll() ==
        "a.toml:2:1: error: col one\n"
        "a.toml:2:9: error: alpha\n"
        "a.toml:2:9: error: zeta\n"
        "a.toml:10:2: error: line ten\n"
        "b.toml:1:1: error: in b\n");
  // Insertion order does not matter: the output is deterministic.
  Diagnostics reversed;
  auto items = d.items();
  for (auto it = items.rbegin(); it != items.rend(); ++it) reversed.error(it->loc, it->message);
  CHECK(reversed.formatAll() == d.formatAll());
}

TEST_CASE("Diagnostics formats errors apart from warnings") {
  Diagnostics d;
  d.warning({"a.toml", 3, 1}, "not pinned");
  d.error({"a.toml", 5, 1}, "bad restart");
  d.error({"a.toml", 1, 1}, "first");
  CHECK(d.formatAll(Severity::error) == "a.toml:1:1: error: first\na.toml:5:1: error: bad restart\n");
  CHECK(d.formatAll(Severity::warning) == "a.toml:3:1: warning: not pinned\n");
  CHECK(Diagnostics().formatAll(Severity::warning).empty());
}

TEST_CASE("closestMatch suggests the nearest plausible candidate") {
  const std::vector<std::string> keys{"image", "healthcheck", "networks", "volumes", "ports",
                                      "restart", "depends_on"};
  CHECK(closestMatch("helthcheck", keys) == "healthcheck");
  CHECK(closestMatch("healtchek", keys) == "healthcheck");
  CHECK(closestMatch("imag", keys) == "image");
  CHECK(closestMatch("Image", keys) == "image");
  CHECK(closestMatch("netwroks", keys) == "networks");  // a transposition is one edit
  CHECK(closestMatch("dependson", keys) == "depends_on");
  CHECK(closestMatch("port", keys) == "ports");
}

TEST_CASE("closestMatch says nothing when no candidate is close") {
  const std::vector<std::string> keys{"image", "healthcheck", "ports"};
  CHECK(closestMatch("zzz", keys).empty());
  CHECK(closestMatch("completely_unrelated", keys).empty());
  CHECK(closestMatch("", keys).empty());
  CHECK(closestMatch("image", {}).empty());
  CHECK(closestMatch("ab", {"xy"}).empty());
}

TEST_CASE("closestMatch breaks ties deterministically") {
  CHECK(closestMatch("bat", {"cat", "bag"}) == "bag");
  CHECK(closestMatch("bat", {"bag", "cat"}) == "bag");
}
