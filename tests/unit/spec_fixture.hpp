// Test helper: a Spec from inline TOML (with an optional VERSIONS text),
// failing the test with the diagnostics when it does not load.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "config/spec_loader.hpp"

namespace foundationd::testing {

inline config::Spec specFrom(const std::string& toml, const std::string& versions = "") {
  auto loaded = config::loadSpecText(toml, "test.toml", [&](const std::string&)
                                         -> std::optional<std::string> {
    if (versions.empty()) return std::nullopt;
    return versions;
  });
  INFO(loaded.diagnostics.formatAll());
  REQUIRE(loaded.spec.has_value());
  return *loaded.spec;
}

}  // namespace foundationd::testing
