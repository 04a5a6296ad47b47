#include "config/toml_reader.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

namespace foundationd::config::detail {

namespace {

bool isBareKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string joinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

}  // namespace

Where Where::child(std::string_view key) const {
  return Where{path.empty() ? tomlKey(key) : path + "." + tomlKey(key)};
}

Where Where::element(std::string_view key, std::size_t i) const {
  return Where{child(key).path + "[" + std::to_string(i) + "]"};
}

std::string tomlKey(std::string_view key) {
  return isBareKey(key) ? std::string(key) : quote(key);
}

std::string typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::optional<std::string> readTextFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    errno = EISDIR;
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return content;
}

std::optional<toml::table> parseToml(std::string_view text, const std::string& file,
                                     Diagnostics& diags) {
  // toml++ reports syntax errors by exception; this is the one place it is
  // turned into a located diagnostic.
  try {
    return toml::parse(text, std::string_view(file));
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    diags.error(SourceLoc{file, begin.line, begin.column},
                "TOML syntax error: " + std::string(e.description()));
    return std::nullopt;
  }
}

SourceLoc TomlReader::loc(const toml::source_region& region) const {
  return SourceLoc{file_, region.begin.line, region.begin.column};
}

void TomlReader::checkKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                           const Where& w) {
  std::vector<std::string> keys;
  for (auto k : allowed) keys.emplace_back(k);
  checkKeys(t, keys, w);
}

void TomlReader::checkKeys(const toml::table& t, const std::vector<std::string>& allowed,
                           const Where& w) {
  for (auto&& [key, node] : t) {
    const std::string name(key.str());
    bool known = false;
    for (const auto& a : allowed) known = known || a == name;
    if (known) continue;
    const std::string guess = closestMatch(name, allowed);
    std::string message;
    if (w.path.empty() && node.is_table()) {
      message = "unknown table [" + tomlKey(name) + "]";
      if (!guess.empty()) message += "; did you mean [" + guess + "]?";
    } else {
      message = "unknown key " + quote(name) + " " + w.in();
      if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
    }
    if (guess.empty() && !allowed.empty() && allowed.size() <= 6) {
      message += "; valid keys: " + joinKeys(allowed);
    }
    error(loc(key), std::move(message));
  }
}

void TomlReader::typeError(const toml::node& node, std::string_view expected,
                           std::string_view what, const Where& w) {
  error(loc(node), "expected " + std::string(expected) + " for " + std::string(what) + " " +
                       w.in() + ", got " + typeName(node));
}

void TomlReader::missing(const toml::table& t, std::string_view key, const Where& w) {
  error(loc(t), "missing required key " + quote(key) + " " + w.in());
}

SourceLoc TomlReader::keyLoc(const toml::table& t, std::string_view key) const {
  auto it = t.find(key);
  return it == t.end() ? loc(t) : loc(it->first);
}

const toml::table* TomlReader::table(const toml::table& t, std::string_view key, const Where& w,
                                     bool required) {
  const toml::node* node = t.get(key);
  if (!node) {
    if (required) missing(t, key, w);
    return nullptr;
  }
  if (!node->is_table()) {
    typeError(*node, "a table", quote(key), w);
    return nullptr;
  }
  return node->as_table();
}

const toml::array* TomlReader::array(const toml::table& t, std::string_view key, const Where& w) {
  const toml::node* node = t.get(key);
  if (!node) return nullptr;
  if (!node->is_array()) {
    typeError(*node, "an array", quote(key), w);
    return nullptr;
  }
  return node->as_array();
}

std::optional<std::string> TomlReader::string(const toml::table& t, std::string_view key,
                                              const Where& w, bool required) {
  const toml::node* node = t.get(key);
  if (!node) {
    if (required) missing(t, key, w);
    return std::nullopt;
  }
  if (!node->is_string()) {
    typeError(*node, "a string", quote(key), w);
    return std::nullopt;
  }
  return node->as_string()->get();
}

std::optional<bool> TomlReader::boolean(const toml::table& t, std::string_view key,
                                        const Where& w) {
  const toml::node* node = t.get(key);
  if (!node) return std::nullopt;
  if (!node->is_boolean()) {
    typeError(*node, "a boolean", quote(key), w);
    return std::nullopt;
  }
  return node->as_boolean()->get();
}

std::optional<std::int64_t> TomlReader::integer(const toml::table& t, std::string_view key,
                                                const Where& w, std::int64_t min,
                                                std::int64_t max, bool required) {
  const toml::node* node = t.get(key);
  if (!node) {
    if (required) missing(t, key, w);
    return std::nullopt;
  }
  if (!node->is_integer()) {
    typeError(*node, "an integer", quote(key), w);
    return std::nullopt;
  }
  const std::int64_t v = node->as_integer()->get();
  if (v < min || v > max) {
    std::string range = max == std::numeric_limits<std::int64_t>::max()
                            ? "at least " + std::to_string(min)
                            : "between " + std::to_string(min) + " and " + std::to_string(max);
    error(loc(*node), quote(key) + " " + w.in() + " must be " + range + ", got " +
                          std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> TomlReader::duration(const toml::table& t, std::string_view key,
                                             const Where& w) {
  const toml::node* node = t.get(key);
  if (!node) return std::nullopt;
  return durationText(*node, quote(key), w);
}

std::optional<Duration> TomlReader::durationText(const toml::node& node, std::string_view what,
                                                 const Where& w) {
  if (!node.is_string()) {
    typeError(node, "a duration string", what, w);
    return std::nullopt;
  }
  const std::string& text = node.as_string()->get();
  auto d = parseDuration(text);
  if (!d) {
    error(loc(node), "invalid duration " + quote(text) + " for " + std::string(what) + " " +
                         w.in() + "; use a number and a unit (ms, s, m, h, d), e.g. \"30s\"");
  }
  return d;
}

}  // namespace foundationd::config::detail
