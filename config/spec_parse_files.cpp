// [files.*] and the `files` of a container (docs/spec.md "[files.NAME]").
#include <algorithm>

#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

// "caddy/Caddyfile" -> nullopt; a path leaving the spec's directory -> why.
std::optional<std::string> sourcePathProblem(std::string_view p) {
  if (p.empty()) return "must not be empty";
  if (p.front() == '/') return "must be relative to the spec's directory, not absolute";
  int depth = 0;
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    const std::string_view seg = p.substr(start, end - start);
    if (seg == "..") {
      if (--depth < 0) return "escapes the spec's directory (files are read from the spec repository)";
    } else if (!seg.empty() && seg != ".") {
      ++depth;
    }
    start = end + 1;
  }
  if (depth == 0) return "names a directory, not a file";
  return std::nullopt;
}

bool isSignalName(std::string_view s) {
  if (s.size() < 4 || s.substr(0, 3) != "SIG") return false;
  return std::all_of(s.begin() + 3, s.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

// Appends `v`'s segments to `out`, merging adjacent literal text.
void append(Value& out, Value&& v) {
  for (auto& seg : v.segments) {
    if (auto* text = std::get_if<std::string>(&seg); text && !out.segments.empty()) {
      if (auto* last = std::get_if<std::string>(&out.segments.back())) {
        *last += *text;
        continue;
      }
    }
    out.segments.push_back(std::move(seg));
  }
}

// The text of a source file, interpolated line by line so that an error
// points at its line in that file.
std::optional<Value> renderSource(SpecReader& r, const std::string& text, const std::string& shown,
                                  const Where& w) {
  Value out;
  bool ok = true;
  std::size_t start = 0;
  std::uint32_t line = 1;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    const std::string_view piece(text.data() + start, end - start);
    if (piece.find('$') == std::string_view::npos) {
      append(out, Value::literal(std::string(piece)));
    } else {
      auto v = interpolate(piece, SourceLoc{shown, line, 1}, r.scope, SecretPolicy::allowed,
                           "line " + std::to_string(line) + " of " + quote(shown) + " (" +
                               w.table() + ")",
                           r.diags());
      if (v) append(out, std::move(*v));
      else ok = false;
    }
    start = end;
    ++line;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::string besideSpec(const std::string& specFile, const std::string& rel) {
  const auto slash = specFile.rfind('/');
  return slash == std::string::npos ? rel : specFile.substr(0, slash + 1) + rel;
}

void parseMode(SpecReader& r, const toml::table& t, const Where& w, FileSpec& f) {
  const toml::node* node = t.get("mode");
  const bool sensitive = f.content.sensitive();
  if (sensitive) f.mode = 0400;
  if (!node) return;
  std::optional<std::int64_t> mode;
  if (node->is_integer()) {
    mode = node->as_integer()->get();
  } else if (node->is_string()) {
    const std::string& s = node->as_string()->get();
    if (!s.empty() && s.size() <= 4 && s.find_first_not_of("01234567") == std::string::npos) {
      mode = std::stoll(s, nullptr, 8);
    }
  } else {
    r.typeError(*node, "an octal mode (0o444 or \"0444\")", "\"mode\"", w);
    return;
  }
  if (!mode || *mode < 0 || *mode > 0777) {
    r.error(r.loc(*node), "invalid \"mode\" " + w.in() +
                              ": expected permission bits such as 0o444 or \"0440\" (at most 0777)");
    return;
  }
  if (sensitive && *mode != 0400 && *mode != 0440) {
    r.error(r.loc(*node), "\"mode\" " + w.in() +
                              " must be 0400 or 0440: the file holds a secret (it references "
                              "${credentials.*})");
    return;
  }
  f.mode = static_cast<int>(*mode);
}

void parseOwner(SpecReader& r, const toml::table& t, const Where& w, FileSpec& f) {
  const toml::node* node = t.get("owner");
  if (!node) return;
  auto number = [](std::string_view s) -> std::optional<std::uint32_t> {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    return static_cast<std::uint32_t>(std::stoul(std::string(s)));
  };
  if (node->is_integer()) {
    const auto v = node->as_integer()->get();
    if (v >= 0 && v < 1'000'000'000) {
      f.uid = f.gid = static_cast<std::uint32_t>(v);
      return;
    }
  } else if (node->is_string()) {
    const std::string& s = node->as_string()->get();
    const auto colon = s.find(':');
    auto uid = number(std::string_view(s).substr(0, colon));
    auto gid = colon == std::string::npos ? uid : number(std::string_view(s).substr(colon + 1));
    if (uid && gid) {
      f.uid = *uid;
      f.gid = *gid;
      return;
    }
  } else {
    r.typeError(*node, "a numeric \"uid[:gid]\"", "\"owner\"", w);
    return;
  }
  r.error(r.loc(*node), "invalid \"owner\" " + w.in() +
                            ": expected a numeric \"uid[:gid]\" such as \"999:999\" (names would "
                            "be resolved in the container, not on the host)");
}

void parseFile(SpecReader& r, const std::string& name, const toml::table& t, const Where& w,
               Spec& spec) {
  r.checkKeys(t, {"source", "content", "mode", "owner", "on_change"}, w);
  FileSpec f;
  f.name = name;
  f.loc = r.loc(t);
  const toml::node* source = t.get("source");
  const toml::node* content = t.get("content");
  if (source && content) {
    r.error(r.loc(*content), w.table() + " has both \"source\" and \"content\"; keep one");
  } else if (!source && !content) {
    r.error(f.loc, w.table() + " needs \"source\" (a file beside the spec) or \"content\"");
  }
  if (source && !content) {
    if (auto rel = r.string(t, "source", w)) {
      const SourceLoc at = r.loc(*source);
      if (auto problem = sourcePathProblem(*rel)) {
        r.error(at, "invalid \"source\" " + quote(*rel) + " " + w.in() + ": " + *problem);
      } else {
        f.source = *rel;
        const std::string shown = besideSpec(spec.file, *rel);
        std::optional<std::string> text = r.readFile ? r.readFile(*rel) : std::nullopt;
        if (!text) {
          r.error(at, "cannot read " + quote(shown) + ", the \"source\" " + w.of() +
                          " (it is read beside the spec, at the spec's revision)");
        } else if (auto v = renderSource(r, *text, shown, w)) {
          f.content = std::move(*v);
          f.content.loc = at;
        }
      }
    }
  } else if (content && !source) {
    if (auto v = r.secretOf(*content, "\"content\"", w)) f.content = std::move(*v);
  }
  parseMode(r, t, w, f);
  parseOwner(r, t, w, f);
  if (const toml::node* on = t.get("on_change")) {
    if (auto o = parseOnChange(r, *on, w)) f.onChange = *o;
  }
  spec.files.emplace(name, std::move(f));
}

}  // namespace

std::optional<OnChange> parseOnChange(SpecReader& r, const toml::node& node, const Where& w) {
  OnChange o;
  if (const toml::array* a = node.as_array()) {
    if (a->empty()) {
      r.error(r.loc(node), "\"on_change\" " + w.in() + " must not be an empty command");
      return std::nullopt;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      auto item = r.textOf(*a->get(i), "\"on_change[" + std::to_string(i) + "]\"", w);
      if (!item) return std::nullopt;
      o.command.push_back(*item);
    }
    o.kind = OnChange::Kind::exec;
    return o;
  }
  auto text = r.textOf(node, "\"on_change\"", w);
  if (!text) return std::nullopt;
  if (*text == "recreate") return o;
  if (*text == "restart") {
    o.kind = OnChange::Kind::restart;
    return o;
  }
  if (text->rfind("signal:", 0) == 0 && isSignalName(text->substr(7))) {
    o.kind = OnChange::Kind::signal;
    o.signal = text->substr(7);
    return o;
  }
  std::string message = "invalid \"on_change\" " + quote(*text) + " " + w.in() +
                        "; expected \"recreate\", \"restart\", \"signal:SIGHUP\" (any SIG name) "
                        "or a command to run in the container, e.g. [\"caddy\", \"reload\"]";
  const std::string guess = closestMatch(*text, {"recreate", "restart"});
  if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
  r.error(r.loc(node), std::move(message));
  return std::nullopt;
}

std::optional<FileMount> parseFileMount(SpecReader& r, const toml::node& node,
                                        const std::string& path, const Where& w) {
  FileMount m;
  m.loc = r.loc(node);
  const std::string context = "in \"files\" " + w.of();
  if (node.is_string()) {
    auto name = r.textOf(node, quote(path), w);
    if (!name) return std::nullopt;
    m.file = *name;
  } else if (const toml::table* t = node.as_table()) {
    const Where mw = w.child("files").child(path);
    r.checkKeys(*t, {"file", "on_change"}, mw);
    auto name = r.text(*t, "file", mw, true);
    if (!name) return std::nullopt;
    m.file = *name;
    if (const toml::node* on = t->get("on_change")) {
      auto o = parseOnChange(r, *on, mw);
      if (!o) return std::nullopt;
      m.onChange = *o;
    }
  } else {
    r.typeError(node, "a file name or { file, on_change }", quote(path), w);
    return std::nullopt;
  }
  if (!r.checkRef(r.declared.files, m.file, "file", m.loc, context + " (declare it in [files])")) {
    return std::nullopt;
  }
  return m;
}

void resolveFileMounts(Spec& spec) {
  for (auto& [_, c] : spec.containers) {
    for (auto& [path, m] : c.files) {
      auto f = spec.files.find(m.file);
      if (f == spec.files.end()) continue;  // reported where it is written
      m.content = f->second.content;
      m.effective = m.onChange ? *m.onChange : f->second.onChange;
    }
  }
}

void parseFiles(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "files", "file",
                 [](std::string_view s) -> std::optional<std::string> {
                   if (isCredentialName(s)) return std::nullopt;
                   return "must match [A-Za-z0-9][A-Za-z0-9_-]*";
                 },
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) { parseFile(r, name, t, w, spec); });
}

}  // namespace foundationd::config::detail
