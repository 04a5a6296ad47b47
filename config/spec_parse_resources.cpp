// [networks.*], [volumes.*] and [credentials.*].
#include <algorithm>

#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

bool isBuiltinNetwork(std::string_view name) {
  return name == "bridge" || name == "host" || name == "none";
}

std::optional<std::string> networkNameProblem(std::string_view s) {
  if (isBuiltinNetwork(s)) {
    return "it is one of Docker's built-in networks (bridge, host, none); use it without "
           "declaring it";
  }
  return dockerNameProblem(s);
}

std::optional<std::string> driverOf(SpecReader& r, const toml::table& t, const Where& w) {
  auto driver = r.text(t, "driver", w);
  if (driver && driver->empty()) {
    r.error(r.keyLoc(t, "driver"), "\"driver\" " + w.in() + " must not be empty");
    return std::nullopt;
  }
  return driver;
}

struct GeneratorKind {
  std::string_view name;
  Generator::Kind kind;
  std::vector<std::string> keys;  // valid keys besides "generate"
};

const std::vector<GeneratorKind>& generatorKinds() {
  static const std::vector<GeneratorKind> kinds{
      {"password", Generator::Kind::password, {"length", "symbols"}},
      {"hex", Generator::Kind::hex, {"bytes"}},
      {"base64url", Generator::Kind::base64url, {"bytes"}},
      {"uuid", Generator::Kind::uuid, {}},
  };
  return kinds;
}

std::optional<Generator> parseGenerator(SpecReader& r, const toml::table& t, const Where& w) {
  auto name = r.string(t, "generate", w, true);
  if (!name) return std::nullopt;
  const GeneratorKind* kind = nullptr;
  std::vector<std::string> names;
  for (const auto& k : generatorKinds()) {
    names.emplace_back(k.name);
    if (k.name == *name) kind = &k;
  }
  if (!kind) {
    std::string message = "unknown generator " + quote(*name) + " " + w.in() +
                          "; valid generators: password, hex, base64url, uuid";
    const std::string guess = closestMatch(*name, names);
    if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
    r.error(r.loc(*t.get("generate")), std::move(message));
    return std::nullopt;
  }

  std::vector<std::string> allowed{"generate"};
  allowed.insert(allowed.end(), kind->keys.begin(), kind->keys.end());
  bool ok = true;
  for (auto&& [key, node] : t) {
    const std::string k(key.str());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string message = "unknown key " + quote(k) + " for generate = " + quote(*name) + " " +
                          w.in();
    const std::string guess = closestMatch(k, allowed);
    if (!guess.empty()) {
      message += "; did you mean " + quote(guess) + "?";
    } else {
      message += "; valid keys: ";
      for (std::size_t i = 0; i < allowed.size(); ++i) message += (i ? ", " : "") + allowed[i];
    }
    r.error(r.loc(key), std::move(message));
    ok = false;
  }

  Generator g;
  g.kind = kind->kind;
  if (g.kind == Generator::Kind::password) {
    if (auto len = r.integer(t, "length", w, 8, 4096)) g.length = static_cast<int>(*len);
    else if (t.contains("length")) ok = false;
    if (auto sym = r.boolean(t, "symbols", w)) g.symbols = *sym;
    else if (t.contains("symbols")) ok = false;
  } else if (g.kind != Generator::Kind::uuid) {
    if (auto bytes = r.integer(t, "bytes", w, 8, 4096)) g.bytes = static_cast<int>(*bytes);
    else if (t.contains("bytes")) ok = false;
  }
  if (!ok) return std::nullopt;
  return g;
}

void parseCredential(SpecReader& r, const std::string& name, const toml::table& t,
                     const Where& w, Spec& spec) {
  r.checkKeys(t, {"vault_path", "rotate_every", "fields"}, w);
  CredentialSpec c;
  c.name = name;
  c.loc = r.loc(t);
  c.vaultPath = name;
  if (auto path = r.text(t, "vault_path", w)) {
    if (auto problem = vaultPathProblem(*path)) {
      r.error(r.loc(*t.get("vault_path")),
              "invalid \"vault_path\" " + quote(*path) + " " + w.in() + ": " + *problem);
    }
    c.vaultPath = *path;
  }
  if (auto every = r.duration(t, "rotate_every", w)) {
    if (every->count() <= 0) {
      r.error(r.loc(*t.get("rotate_every")), "\"rotate_every\" " + w.in() + " must be positive");
    }
    c.rotateEvery = every;
  }
  if (const toml::table* fields = r.table(t, "fields", w, true)) {
    const Where fw = w.child("fields");
    if (fields->empty()) {
      r.error(r.loc(*fields), fw.table() + " must declare at least one field");
    }
    for (auto&& [key, node] : *fields) {
      const std::string field(key.str());
      if (!isIdentifier(field)) {
        r.error(r.loc(key), "invalid field name " + quote(field) + " " + fw.in() +
                                ": must match [A-Za-z_][A-Za-z0-9_]*");
      }
      CredentialField f;
      f.loc = r.loc(node);
      if (node.is_string()) {
        auto literal = r.textOf(node, quote(field), fw);
        if (!literal) continue;
        f.value = std::move(*literal);
      } else if (const toml::table* gt = node.as_table(); gt && gt->contains("provided")) {
        // { provided = true }: a person supplies it (`foundationd secret set`).
        const Where pw = fw.child(field);
        r.checkKeys(*gt, {"provided"}, pw);
        auto provided = r.boolean(*gt, "provided", pw);
        if (!provided) continue;
        if (!*provided) {
          r.error(r.loc(*gt->get("provided")),
                  "\"provided\" " + pw.in() + " must be true (a value set with `foundationd "
                  "secret set " + name + "." + field + "`); for a generated value write "
                  "{ generate = ... }, for a literal a string");
          continue;
        }
        f.value = Provided{};
      } else if (const toml::table* gt = node.as_table()) {
        auto g = parseGenerator(r, *gt, fw.child(field));
        if (!g) continue;
        f.value = *g;
      } else {
        r.typeError(node,
                    "a string, a generator table ({ generate = ... }) or { provided = true }",
                    quote(field),
                    fw);
        continue;
      }
      c.fields.emplace(field, std::move(f));
    }
  }
  spec.credentials.emplace(name, std::move(c));
}

}  // namespace

void parseNetworks(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "networks", "network", networkNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
                   r.checkKeys(t, {"driver", "internal", "subnet", "labels"}, w);
                   NetworkSpec n;
                   n.name = name;
                   n.loc = r.loc(t);
                   if (auto d = driverOf(r, t, w)) n.driver = *d;
                   if (auto internal = r.boolean(t, "internal", w)) n.internal = *internal;
                   if (auto subnet = r.text(t, "subnet", w)) {
                     if (auto problem = cidrProblem(*subnet)) {
                       r.error(r.loc(*t.get("subnet")), "invalid \"subnet\" " + quote(*subnet) +
                                                            " " + w.in() + ": " + *problem);
                     }
                     n.subnet = *subnet;
                   }
                   n.labels = r.labels(t, w);
                   spec.networks.emplace(name, std::move(n));
                 });
}

void parseVolumes(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "volumes", "volume", dockerNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
                   r.checkKeys(t, {"driver", "labels"}, w);
                   VolumeSpec v;
                   v.name = name;
                   v.loc = r.loc(t);
                   if (auto d = driverOf(r, t, w)) v.driver = *d;
                   v.labels = r.labels(t, w);
                   spec.volumes.emplace(name, std::move(v));
                 });
}

void parseCredentials(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(
      root, "credentials", "credential",
      [](std::string_view s) -> std::optional<std::string> {
        if (isCredentialName(s)) return std::nullopt;
        return "must match [A-Za-z0-9][A-Za-z0-9_-]* (no dots: they separate the parts of "
               "${credentials.NAME.FIELD})";
      },
      [&](const std::string& name, const toml::table& t, const Where& w, const SourceLoc&) {
        parseCredential(r, name, t, w, spec);
      });
}

}  // namespace foundationd::config::detail
