// Internal to config/: typed, located access to a parsed toml++ document.
//
// A TomlReader reports every problem (unknown key with "did you mean", wrong
// type, missing required key, out-of-range value) into Diagnostics and
// returns nullopt/nullptr, so callers simply skip what is broken and keep
// checking the rest: all errors come out of one pass. Not thread-safe; one
// reader per load.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/units.hpp"

namespace foundationd::config::detail {

// A position in the document, for messages: "[containers.web]" or the top level.
struct Where {
  std::string path;  // dotted TOML path, keys quoted when not bare; "" = top level

  std::string table() const { return path.empty() ? "the top level" : "[" + path + "]"; }
  std::string in() const { return path.empty() ? "at the top level" : "in " + table(); }
  std::string of() const { return path.empty() ? "at the top level" : "of " + table(); }
  Where child(std::string_view key) const;
  // The i-th element of array `key`: "[containers.web.networks[0]]".
  Where element(std::string_view key, std::size_t i) const;
};

// The key as TOML would need it written: bare when possible, else quoted.
std::string tomlKey(std::string_view key);
// "a string", "an integer", ... for "got ..." in messages.
std::string typeName(const toml::node& node);

// The whole content of a regular file; nullopt (errno set when the OS said
// why) when it cannot be read.
std::optional<std::string> readTextFile(const std::string& path);

// Result of reading a TOML document: the table, or a located syntax error
// already reported.
std::optional<toml::table> parseToml(std::string_view text, const std::string& file,
                                     Diagnostics& diags);

class TomlReader {
 public:
  TomlReader(std::string file, Diagnostics& diags) : file_(std::move(file)), diags_(diags) {}

  const std::string& file() const noexcept { return file_; }
  Diagnostics& diags() noexcept { return diags_; }

  SourceLoc loc(const toml::source_region& region) const;
  SourceLoc loc(const toml::node& node) const { return loc(node.source()); }
  SourceLoc loc(const toml::key& key) const { return loc(key.source()); }

  void error(SourceLoc at, std::string message) { diags_.error(std::move(at), std::move(message)); }
  void warning(SourceLoc at, std::string message) {
    diags_.warning(std::move(at), std::move(message));
  }

  // Every key of `t` not in `allowed` is an error, with a suggestion.
  void checkKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                 const Where& w);
  void checkKeys(const toml::table& t, const std::vector<std::string>& allowed, const Where& w);

  // "expected a string for "image" in [containers.web], got an integer"
  void typeError(const toml::node& node, std::string_view expected, std::string_view what,
                 const Where& w);
  void missing(const toml::table& t, std::string_view key, const Where& w);

  // The key's location in `t` (for errors about a key rather than its value).
  SourceLoc keyLoc(const toml::table& t, std::string_view key) const;

  // Typed getters. Absent: nullopt (plus an error when `required`).
  // Wrong type or out of range: an error, nullopt.
  const toml::table* table(const toml::table& t, std::string_view key, const Where& w,
                           bool required = false);
  const toml::array* array(const toml::table& t, std::string_view key, const Where& w);
  std::optional<std::string> string(const toml::table& t, std::string_view key, const Where& w,
                                    bool required = false);
  std::optional<bool> boolean(const toml::table& t, std::string_view key, const Where& w);
  std::optional<std::int64_t> integer(const toml::table& t, std::string_view key, const Where& w,
                                      std::int64_t min, std::int64_t max, bool required = false);
  std::optional<Duration> duration(const toml::table& t, std::string_view key, const Where& w);

  // Checks a duration's text; `what` names it for the message.
  std::optional<Duration> durationText(const toml::node& node, std::string_view what,
                                       const Where& w);

 private:
  std::string file_;
  Diagnostics& diags_;
};

// `"key"`, used to name a key in messages.
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace foundationd::config::detail
