#include "config/spec_reader.hpp"

#include "config/names.hpp"

namespace foundationd::config::detail {

namespace {

std::set<std::string> keysOf(const toml::table& root, std::string_view section) {
  std::set<std::string> out;
  if (const toml::table* t = root.get_as<toml::table>(section)) {
    for (auto&& [k, v] : *t) out.emplace(k.str());
  }
  return out;
}

constexpr std::string_view kReservedLabelPrefix = "foundationd.";

}  // namespace

Declared collectDeclared(const toml::table& root) {
  Declared d;
  d.containers = keysOf(root, "containers");
  d.networks = keysOf(root, "networks");
  d.volumes = keysOf(root, "volumes");
  d.s3 = keysOf(root, "s3");
  d.files = keysOf(root, "files");
  if (const toml::table* creds = root.get_as<toml::table>("credentials")) {
    for (auto&& [name, node] : *creds) {
      auto& fields = d.credentials[std::string(name.str())];
      const toml::table* t = node.as_table();
      const toml::table* f = t ? t->get_as<toml::table>("fields") : nullptr;
      if (!f) continue;
      for (auto&& [field, v] : *f) fields.emplace(field.str());
    }
  }
  if (const toml::table* forge = root.get_as<toml::table>("forgejo")) {
    d.runnerToken = forge->get_as<toml::table>("runner_token") != nullptr;
  }
  return d;
}

std::optional<std::string> dockerNameProblem(std::string_view s) {
  if (isDockerName(s)) return std::nullopt;
  return "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*";
}

std::optional<std::string> SpecReader::text(const toml::table& t, std::string_view key,
                                            const Where& w, bool required) {
  const toml::node* node = t.get(key);
  if (!node) {
    if (required) missing(t, key, w);
    return std::nullopt;
  }
  return textOf(*node, quote(key), w);
}

std::optional<std::string> SpecReader::textOf(const toml::node& node, std::string_view what,
                                              const Where& w) {
  if (!node.is_string()) {
    typeError(node, "a string", what, w);
    return std::nullopt;
  }
  auto v = interpolate(node.as_string()->get(), loc(node), scope, SecretPolicy::forbidden,
                       std::string(what) + " " + w.of(), diags());
  if (!v) return std::nullopt;
  return v->display();  // never sensitive: secrets were refused
}

std::optional<Value> SpecReader::secret(const toml::table& t, std::string_view key,
                                        const Where& w, bool required) {
  const toml::node* node = t.get(key);
  if (!node) {
    if (required) missing(t, key, w);
    return std::nullopt;
  }
  return secretOf(*node, quote(key), w);
}

std::optional<Value> SpecReader::secretOf(const toml::node& node, std::string_view what,
                                          const Where& w) {
  if (!node.is_string()) {
    typeError(node, "a string", what, w);
    return std::nullopt;
  }
  return interpolate(node.as_string()->get(), loc(node), scope, SecretPolicy::allowed,
                     std::string(what) + " " + w.of(), diags());
}

std::optional<std::vector<std::string>> SpecReader::textArray(const toml::table& t,
                                                              std::string_view key,
                                                              const Where& w) {
  const toml::array* a = array(t, key, w);
  if (!a) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (std::size_t i = 0; i < a->size(); ++i) {
    auto s = textOf(*a->get(i), quote(std::string(key) + "[" + std::to_string(i) + "]"), w);
    if (s) {
      out.push_back(std::move(*s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::map<std::string, std::string> SpecReader::labels(const toml::table& t, const Where& w) {
  std::map<std::string, std::string> out;
  const toml::table* l = table(t, "labels", w);
  if (!l) return out;
  for (auto&& [key, node] : *l) {
    const std::string name(key.str());
    if (name.empty()) {
      error(loc(key), "empty label key in \"labels\" " + w.of());
      continue;
    }
    if (name.rfind(kReservedLabelPrefix, 0) == 0) {
      error(loc(key), "label " + quote(name) + " " + w.of() +
                          " uses the reserved prefix \"foundationd.\" (foundationd sets those)");
      continue;
    }
    auto value = textOf(node, "label " + quote(name), w);
    if (value) out.emplace(name, std::move(*value));
  }
  return out;
}

bool SpecReader::checkRef(const std::set<std::string>& known, const std::string& name,
                          std::string_view kind, const SourceLoc& at,
                          const std::string& context) {
  if (known.contains(name)) return true;
  std::string message = "unknown " + std::string(kind) + " " + quote(name) + " " + context;
  const std::string guess =
      closestMatch(name, std::vector<std::string>(known.begin(), known.end()));
  if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
  error(at, std::move(message));
  return false;
}

void SpecReader::forEachEntry(const toml::table& parent, std::string_view section,
                              std::string_view kind, const NameCheck& nameProblem,
                              const EntryFn& fn, const Where& where) {
  const toml::table* entries = table(parent, section, where);
  if (!entries) return;
  const Where sectionWhere = where.child(section);
  for (auto&& [key, node] : *entries) {
    const std::string name(key.str());
    if (auto problem = nameProblem(name)) {
      error(loc(key), "invalid " + std::string(kind) + " name " + quote(name) + ": " + *problem);
    }
    const toml::table* t = node.as_table();
    if (!t) {
      typeError(node, "a table", quote(name), sectionWhere);
      continue;
    }
    fn(name, *t, sectionWhere.child(name), loc(key));
  }
}

}  // namespace foundationd::config::detail
