// Located diagnostics for the spec and the daemon config.
//
// Every problem the parser or the validator finds is collected here (all in
// one pass), each with the file, line and column toml++ reports for the
// offending key or value. format() renders the compiler-style line users see:
//   foundation.toml:12:3: error: unknown key "helthcheck" in [containers.forgejo]; did you mean "healthcheck"?
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace foundationd::config {

struct SourceLoc {
  std::string file;  // as given to the loader (relative paths stay relative)
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

enum class Severity { error, warning };

struct Diagnostic {
  Severity severity = Severity::error;
  SourceLoc loc;
  std::string message;

  // "file:line:col: error: message" (line/col omitted when unknown).
  std::string format() const;
};

class Diagnostics {
 public:
  void error(SourceLoc loc, std::string message);
  void warning(SourceLoc loc, std::string message);

  bool hasErrors() const noexcept { return errors_ > 0; }
  std::size_t errorCount() const noexcept { return errors_; }
  std::size_t warningCount() const noexcept { return items_.size() - errors_; }
  const std::vector<Diagnostic>& items() const noexcept { return items_; }

  // Sorted by file, line, column, then message: deterministic output.
  std::vector<Diagnostic> sorted() const;

  // Every diagnostic, sorted, one formatted line each (with trailing '\n').
  std::string formatAll() const;
  // The same, of one severity only (errors apart from warnings).
  std::string formatAll(Severity only) const;

 private:
  std::vector<Diagnostic> items_;
  std::size_t errors_ = 0;
};

// The closest candidate to `word` by edit distance, or "" when none is close
// enough to be a plausible typo (used for "did you mean").
std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace foundationd::config
