#include "config/diagnostics.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>

namespace foundationd::config {

namespace {

std::string lower(const std::string& s) {
  std::string out = s;
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions,
// so "helthcheck" and "healthcehck" are both one or two edits away.
std::size_t editDistance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

std::string Diagnostic::format() const {
  std::string out;
  if (!loc.file.empty()) {
    out += loc.file;
    if (loc.line > 0) {
      out += ':' + std::to_string(loc.line);
      if (loc.column > 0) out += ':' + std::to_string(loc.column);
    }
    out += ": ";
  }
  out += severity == Severity::error ? "error: " : "warning: ";
  out += message;
  return out;
}

void Diagnostics::error(SourceLoc loc, std::string message) {
  items_.push_back(Diagnostic{Severity::error, std::move(loc), std::move(message)});
  ++errors_;
}

void Diagnostics::warning(SourceLoc loc, std::string message) {
  items_.push_back(Diagnostic{Severity::warning, std::move(loc), std::move(message)});
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = items_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.loc.file, a.loc.line, a.loc.column, a.severity, a.message) <
           std::tie(b.loc.file, b.loc.line, b.loc.column, b.severity, b.message);
  });
  return out;
}

std::string Diagnostics::formatAll() const {
  std::string out;
  for (const auto& d : sorted()) {
    out += d.format();
    out += '\n';
  }
  return out;
}

std::string Diagnostics::formatAll(Severity only) const {
  std::string out;
  for (const auto& d : sorted()) {
    if (d.severity != only) continue;
    out += d.format();
    out += '\n';
  }
  return out;
}

std::string closestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.empty()) return {};
  const std::string w = lower(word);
  // Allow roughly one typo per three characters, at least one, at most three.
  const std::size_t limit = std::clamp<std::size_t>(w.size() / 3, 1, 3);
  std::string best;
  std::size_t bestDistance = limit + 1;
  for (const auto& c : candidates) {
    const std::string lc = lower(c);
    const std::size_t gap = w.size() > lc.size() ? w.size() - lc.size() : lc.size() - w.size();
    // Lengths further apart than the limit cannot be within it: skip the
    // quadratic distance (keeps long hostile inputs cheap).
    std::size_t d = gap > limit ? limit + 1 : editDistance(w, lc);
    if (d >= w.size() || d >= c.size()) d = limit + 1;  // nothing in common: not a typo
    // A truncated or extended key ("alias" for "aliases", "rotate" for
    // "rotate_every") is a plausible slip too, ranked after true near misses.
    const bool prefix = std::min(w.size(), lc.size()) >= 3 &&
                        (lc.rfind(w, 0) == 0 || w.rfind(lc, 0) == 0);
    if (prefix) d = std::min(d, limit);
    if (d < bestDistance || (d == bestDistance && c < best)) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : std::string();
}

}  // namespace foundationd::config
