// Internal to config/: the spec loader's reader. Adds to TomlReader what the
// spec needs: interpolation of every string, the names declared anywhere in
// the document (collected before parsing, so a reference is checked where it
// is written, whatever the order of the tables), and the per-section parsers.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>

#include "config/interpolation.hpp"
#include "config/spec.hpp"
#include "config/spec_loader.hpp"
#include "config/toml_reader.hpp"

namespace foundationd::config::detail {

// Names declared in the document, whether or not their tables are valid, so
// that one broken table does not cascade into "unknown ..." errors elsewhere.
struct Declared {
  std::set<std::string> containers, networks, volumes, s3, files;
  std::map<std::string, std::set<std::string>> credentials;  // name -> field names
  bool runnerToken = false;  // [forgejo.runner_token] is a table
};
Declared collectDeclared(const toml::table& root);

class SpecReader : public TomlReader {
 public:
  using TomlReader::TomlReader;

  InterpolationScope scope;
  Declared declared;
  bool strictPinning = false;
  // Reads a file relative to the spec's directory ([files.*] source); may be empty.
  FileReader readFile;

  // A string with ${versions.*} and $$ substituted; secrets are an error.
  std::optional<std::string> text(const toml::table& t, std::string_view key, const Where& w,
                                  bool required = false);
  // The same for any node; `what` is its quoted name, e.g. "\"command[1]\"".
  std::optional<std::string> textOf(const toml::node& node, std::string_view what,
                                    const Where& w);
  // A string where secrets are consumed: credential references are kept.
  std::optional<Value> secret(const toml::table& t, std::string_view key, const Where& w,
                              bool required = false);
  std::optional<Value> secretOf(const toml::node& node, std::string_view what, const Where& w);
  // An array of strings, each interpolated (no secrets).
  std::optional<std::vector<std::string>> textArray(const toml::table& t, std::string_view key,
                                                    const Where& w);
  // The "labels" table of `t`: string values, no reserved "foundationd." keys.
  std::map<std::string, std::string> labels(const toml::table& t, const Where& w);

  // `name` must be in `known`; else "unknown <kind> "name" <context>; did you mean ...".
  bool checkRef(const std::set<std::string>& known, const std::string& name,
                std::string_view kind, const SourceLoc& at, const std::string& context);

  // Calls `fn` for every entry of the optional table parent[section] (parent
  // being at `where`), checking that each is a table and that its name
  // satisfies `nameProblem`; `fn` gets the entry's Where and its key's loc.
  using NameCheck = std::function<std::optional<std::string>(std::string_view)>;
  using EntryFn = std::function<void(const std::string& name, const toml::table& t,
                                     const Where& w, const SourceLoc& keyLoc)>;
  void forEachEntry(const toml::table& parent, std::string_view section, std::string_view kind,
                    const NameCheck& nameProblem, const EntryFn& fn,
                    const Where& where = Where{});
};

// Name checks shared by several sections.
std::optional<std::string> dockerNameProblem(std::string_view s);

// Per-section parsers (spec_parse_*.cpp); each appends what it reads to `spec`.
void parseNetworks(SpecReader& r, const toml::table& root, Spec& spec);
void parseVolumes(SpecReader& r, const toml::table& root, Spec& spec);
void parseCredentials(SpecReader& r, const toml::table& root, Spec& spec);
void parseFiles(SpecReader& r, const toml::table& root, Spec& spec);
void parseContainers(SpecReader& r, const toml::table& root, Spec& spec);
// The value of a container's `files` entry: "NAME" or { file, on_change }.
// Copies each mounted file's content and on_change into the containers' FileMounts.
void resolveFileMounts(Spec& spec);
std::optional<OnChange> parseOnChange(SpecReader& r, const toml::node& node, const Where& w);
std::optional<FileMount> parseFileMount(SpecReader& r, const toml::node& node,
                                        const std::string& path, const Where& w);
void parseVault(SpecReader& r, const toml::table& root, Spec& spec);
void parseS3(SpecReader& r, const toml::table& root, Spec& spec);
void parseBuckets(SpecReader& r, const toml::table& root, Spec& spec);
void parsePostgres(SpecReader& r, const toml::table& root, Spec& spec);
void parseForgejo(SpecReader& r, const toml::table& root, Spec& spec);
void parseBackup(SpecReader& r, const toml::table& root, Spec& spec);  // spec_parse_backup.cpp

// Checks that need the whole parsed spec: depends_on conditions, duplicate
// Vault paths, dependency cycles.
void validateSpec(SpecReader& r, const Spec& spec);

}  // namespace foundationd::config::detail
