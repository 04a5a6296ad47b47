#include "config/spec_loader.hpp"

#include <cerrno>
#include <cstring>
#include <limits>

#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config {

namespace {

using detail::quote;
using detail::SpecReader;
using detail::Where;

// `rel` as seen from the directory of `base` (absolute paths stay as they are).
std::string besideFile(const std::string& base, const std::string& rel) {
  if (!rel.empty() && rel.front() == '/') return rel;
  const auto slash = base.rfind('/');
  if (slash == std::string::npos) return rel;
  return base.substr(0, slash + 1) + rel;
}

bool isVersionKey(std::string_view s) {
  return isCredentialName(s);  // [A-Za-z0-9][A-Za-z0-9_-]*: no dots, they end the reference
}

// Reads VERSIONS into spec.versions. False when it could not be used fully
// (its errors are reported; references into it are then not reported again).
bool loadVersions(SpecReader& r, const toml::table& root, const FileReader& readFile,
                  Spec& spec) {
  const toml::node* node = root.get("versions");
  auto rel = r.string(root, "versions", Where{});
  if (!rel) return node == nullptr;
  const SourceLoc at = r.loc(*node);
  if (rel->empty()) {
    r.error(at, "\"versions\" at the top level must not be empty");
    return false;
  }
  const std::string path = besideFile(spec.file, *rel);
  spec.versionsFile = path;
  std::optional<std::string> text = readFile ? readFile(*rel) : std::nullopt;
  if (!text) {
    r.error(at, "cannot read the versions file " + quote(path));
    return false;
  }
  Diagnostics& diags = r.diags();
  const std::size_t before = diags.errorCount();
  auto doc = detail::parseToml(*text, path, diags);
  if (!doc) return false;
  detail::TomlReader vr(path, diags);
  vr.checkKeys(*doc, {"images"}, Where{});
  if (const toml::table* images = vr.table(*doc, "images", Where{}, true)) {
    const Where iw{"images"};
    for (auto&& [key, value] : *images) {
      const std::string name(key.str());
      if (!isVersionKey(name)) {
        vr.error(vr.loc(key), "invalid version name " + quote(name) +
                                  ": must match [A-Za-z0-9][A-Za-z0-9_-]*");
        continue;
      }
      if (!value.is_string()) {
        vr.typeError(value, "a string", quote(name), iw);
        continue;
      }
      spec.versions.emplace(name, value.as_string()->get());
    }
  }
  return diags.errorCount() == before;
}

void parseTopLevel(SpecReader& r, const toml::table& root, Spec& spec) {
  const Where top;
  r.checkKeys(root,
              {"spec_version", "project", "versions", "prune", "strict_pinning", "networks",
               "volumes", "credentials", "files", "containers", "vault", "s3", "buckets", "postgres",
               "forgejo", "backup", "rollout"},
              top);
  if (auto project = r.text(root, "project", top, true)) {
    if (!isDockerName(*project)) {
      r.error(r.loc(*root.get("project")), "invalid project name " + quote(*project) +
                                               ": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
    }
    spec.project = *project;
  }
  if (auto prune = r.boolean(root, "prune", top)) spec.prune = *prune;
  if (auto strict = r.boolean(root, "strict_pinning", top)) spec.strictPinning = *strict;
  r.strictPinning = spec.strictPinning;
  // [rollout]: how a new revision is rolled out (docs/source.md "Rollback").
  if (const toml::table* rollout = r.table(root, "rollout", top)) {
    const Where w{"rollout"};
    r.checkKeys(*rollout, {"settle"}, w);
    if (auto settle = r.duration(*rollout, "settle", w)) {
      if (settle->count() < 0 || *settle > std::chrono::hours(1)) {
        r.error(r.loc(*rollout->get("settle")),
                "\"settle\" " + w.in() +
                    " must be between \"0s\" (no watch, no rollback) and \"1h\"");
      } else {
        spec.settle = *settle;
      }
    }
  }
}

}  // namespace

LoadResult loadSpecText(const std::string& text, const std::string& fileName,
                        const FileReader& readFile) {
  LoadResult result;
  SpecReader r(fileName, result.diagnostics);
  auto root = detail::parseToml(text, fileName, result.diagnostics);
  if (!root) return result;

  Spec spec;
  spec.file = fileName;
  // The version decides what every other key means: check it first, and stop
  // at a version this build does not understand.
  const auto version = r.integer(*root, "spec_version", Where{},
                                 std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max(), true);
  if (version && *version != 1) {
    r.error(r.loc(*root->get("spec_version")),
            "unsupported spec_version " + std::to_string(*version) +
                "; this foundationd understands 1");
    return result;
  }

  parseTopLevel(r, *root, spec);
  const bool versionsOk = loadVersions(r, *root, readFile, spec);
  if (spec.versionsFile) r.scope.versions = &spec.versions;
  r.scope.versionsUnavailable = !versionsOk;
  r.declared = detail::collectDeclared(*root);
  r.scope.credentials = &r.declared.credentials;
  r.scope.runnerToken = r.declared.runnerToken;
  r.readFile = readFile;

  detail::parseNetworks(r, *root, spec);
  detail::parseVolumes(r, *root, spec);
  detail::parseCredentials(r, *root, spec);
  detail::parseFiles(r, *root, spec);
  detail::parseContainers(r, *root, spec);
  detail::resolveFileMounts(spec);
  detail::parseVault(r, *root, spec);
  detail::parseS3(r, *root, spec);
  detail::parseBuckets(r, *root, spec);
  detail::parsePostgres(r, *root, spec);
  detail::parseForgejo(r, *root, spec);
  detail::parseBackup(r, *root, spec);
  detail::validateSpec(r, spec);

  if (!result.diagnostics.hasErrors()) result.spec = std::move(spec);
  return result;
}

LoadResult loadSpecFile(const std::string& path) {
  errno = 0;
  auto text = detail::readTextFile(path);
  if (!text) {
    LoadResult result;
    const std::string why = errno ? std::strerror(errno) : "not a regular file";
    result.diagnostics.error(SourceLoc{path, 0, 0}, "cannot read the spec file: " + why);
    return result;
  }
  return loadSpecFileText(path, *text);
}

LoadResult loadSpecFileText(const std::string& path, const std::string& text) {
  const FileReader reader = [&path](const std::string& rel) {
    return detail::readTextFile(besideFile(path, rel));
  };
  return loadSpecText(text, path, reader);
}

}  // namespace foundationd::config
