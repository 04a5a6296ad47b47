// Loading a spec: read foundation.toml and its VERSIONS file, parse with
// toml++, check every key, type and value, substitute ${versions.*}, check
// every reference, and build the dependency graph (cycles are errors).
//
// All problems are collected in one pass into Diagnostics; a Spec is returned
// only when there is no error (warnings allowed). Thread-safe: no globals.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "config/diagnostics.hpp"
#include "config/spec.hpp"

namespace foundationd::config {

struct LoadResult {
  std::optional<Spec> spec;  // set iff !diagnostics.hasErrors()
  Diagnostics diagnostics;
};

// Reads a file relative to the spec's directory; returns nullopt when it
// cannot be read. Injectable so the git source can serve files of a commit.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;

// Load from disk. `path` is used as-is in diagnostics.
LoadResult loadSpecFile(const std::string& path);

// Load the already-read `text` of the file at `path` (files it references,
// such as VERSIONS, are read beside it). For callers that hash the text first.
LoadResult loadSpecFileText(const std::string& path, const std::string& text);

// Load from text (tests, fuzzing, the git source). `fileName` names the spec
// in diagnostics; `readFile` resolves the VERSIONS file (paths relative to
// the spec's directory are joined by the caller's reader).
LoadResult loadSpecText(const std::string& text, const std::string& fileName,
                        const FileReader& readFile);

}  // namespace foundationd::config
