#include "controllers/backup/manifest.hpp"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace foundationd::backup {

using json = nlohmann::json;

const Section* Manifest::find(std::string_view name) const {
  for (const auto& s : sections) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::uint64_t Manifest::totalBytes() const {
  std::uint64_t n = 0;
  for (const auto& s : sections) n += s.bytes;
  return n;
}

std::string toJson(const Manifest& m) {
  json sections = json::array();
  for (const auto& s : m.sections) {
    json j = {{"name", s.name},     {"kind", s.kind},   {"path", s.path},
              {"snapshot", s.snapshot}, {"bytes", s.bytes}, {"sha256", s.sha256}};
    if (!s.instance.empty()) j["instance"] = s.instance;
    if (!s.database.empty()) j["database"] = s.database;
    if (s.kind == "postgres-database") j["row_counts"] = s.rowCounts;
    if (s.kind == "forge-data") {
      json repos = json::object();
      for (const auto& [name, head] : s.repoHeads) {
        const auto p = s.repoPaths.find(name);
        repos[name] = {{"head", head}, {"path", p == s.repoPaths.end() ? "" : p->second}};
      }
      j["repositories"] = std::move(repos);
      j["mounts"] = s.mounts;
      j["freeze_ms"] = s.freezeMs;
    }
    if (s.kind == "bucket-objects") {
      j["bucket"] = s.bucket;
      j["s3"] = s.s3;
      json objects = json::array();
      for (const auto& o : s.objects) {
        objects.push_back({{"key", o.key}, {"size", o.size}, {"etag", o.etag}});
      }
      j["objects"] = std::move(objects);
    }
    if (s.kind == "vault-snapshot" && !s.canaryPath.empty()) {
      j["canary"] = {{"mount", s.canaryMount}, {"path", s.canaryPath}, {"sha256", s.canarySha256}};
    }
    j["seconds"] = s.seconds;
    if (!s.counts.empty()) j["counts"] = s.counts;
    sections.push_back(std::move(j));
  }
  json doc = {{"format", m.format},
              {"id", m.id},
              {"created_at", m.createdAt},
              {"project", m.project},
              {"spec_revision", m.specRevision},
              {"foundationd_version", m.foundationdVersion},
              {"reason", m.reason},
              {"images", m.images},
              {"sections", std::move(sections)},
              {"not_included", m.notIncluded}};
  return doc.dump(2) + "\n";
}

namespace {

Error bad(const std::string& why) {
  return Error::make(ErrorCode::invalid_argument, "not a foundationd backup manifest: " + why);
}

}  // namespace

Result<Manifest> parseManifest(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  Manifest m;
  try {
    m.format = doc.at("format").get<int>();
    if (m.format != kManifestFormat) {
      return bad("format " + std::to_string(m.format) + "; this foundationd reads format " +
                 std::to_string(kManifestFormat));
    }
    m.id = doc.at("id").get<std::string>();
    m.createdAt = doc.at("created_at").get<std::string>();
    m.project = doc.value("project", "");
    m.specRevision = doc.value("spec_revision", "");
    m.foundationdVersion = doc.value("foundationd_version", "");
    m.reason = doc.value("reason", "");
    if (doc.contains("images")) m.images = doc.at("images").get<std::map<std::string, std::string>>();
    if (doc.contains("not_included")) {
      m.notIncluded = doc.at("not_included").get<std::vector<std::string>>();
    }
    for (const auto& j : doc.at("sections")) {
      Section s;
      s.name = j.at("name").get<std::string>();
      s.kind = j.at("kind").get<std::string>();
      s.path = j.at("path").get<std::string>();
      s.snapshot = j.at("snapshot").get<std::string>();
      s.bytes = j.at("bytes").get<std::uint64_t>();
      s.sha256 = j.at("sha256").get<std::string>();
      s.instance = j.value("instance", "");
      s.database = j.value("database", "");
      s.seconds = j.value("seconds", 0.0);
      if (j.contains("counts")) {
        s.counts = j.at("counts").get<std::map<std::string, std::int64_t>>();
      }
      if (j.contains("row_counts")) {
        s.rowCounts = j.at("row_counts").get<std::map<std::string, std::int64_t>>();
      }
      if (j.contains("repositories")) {
        for (const auto& [name, r] : j.at("repositories").items()) {
          s.repoHeads[name] = r.at("head").get<std::string>();
          s.repoPaths[name] = r.at("path").get<std::string>();
        }
      }
      if (j.contains("mounts")) s.mounts = j.at("mounts").get<std::vector<std::string>>();
      s.freezeMs = j.value("freeze_ms", std::int64_t{-1});
      s.bucket = j.value("bucket", "");
      s.s3 = j.value("s3", "");
      if (j.contains("objects")) {
        for (const auto& o : j.at("objects")) {
          BucketObject b;
          b.key = o.at("key").get<std::string>();
          b.size = o.at("size").get<std::uint64_t>();
          b.etag = o.value("etag", "");
          s.objects.push_back(std::move(b));
        }
      }
      if (j.contains("canary")) {
        const auto& c = j.at("canary");
        s.canaryMount = c.at("mount").get<std::string>();
        s.canaryPath = c.at("path").get<std::string>();
        s.canarySha256 = c.at("sha256").get<std::string>();
        if (s.canaryMount.empty() || s.canaryPath.empty() || s.canarySha256.size() != 64) {
          return bad("section " + s.name + " has a canary without a mount, a path or a SHA-256");
        }
      }
      if (s.sha256.size() != 64) return bad("section " + s.name + " has no SHA-256");
      m.sections.push_back(std::move(s));
    }
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  if (m.id.empty()) return bad("no id");
  return m;
}

Result<std::map<std::string, std::int64_t>> parseRowCounts(std::string_view out) {
  std::map<std::string, std::int64_t> counts;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t nl = out.find('\n', pos);
    if (nl == std::string_view::npos) nl = out.size();
    const std::string_view line = out.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    const auto bar = line.rfind('|');
    if (bar == std::string_view::npos || bar == 0 || bar + 1 == line.size()) {
      return Error::make(ErrorCode::protocol,
                         "row counts: expected \"schema.table|N\", got \"" +
                             std::string(line.substr(0, 80)) + "\"");
    }
    std::int64_t n = 0;
    for (char c : line.substr(bar + 1)) {
      if (c < '0' || c > '9') {
        return Error::make(ErrorCode::protocol, "row counts: \"" + std::string(line.substr(0, 80)) +
                                                    "\" does not end with a count");
      }
      n = n * 10 + (c - '0');
    }
    counts[std::string(line.substr(0, bar))] = n;
  }
  return counts;
}

std::string newBackupId(std::int64_t unixSeconds, std::uint16_t random) {
  const std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ-%04x", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, unsigned(random));
  return buf;
}

bool sectionSelected(std::string_view section, std::string_view selector) {
  if (selector.empty()) return false;
  if (section == selector) return true;
  const std::string_view sel =
      selector.back() == '/' ? selector.substr(0, selector.size() - 1) : selector;
  return section.size() > sel.size() && section.substr(0, sel.size()) == sel &&
         section[sel.size()] == '/';
}

}  // namespace foundationd::backup
