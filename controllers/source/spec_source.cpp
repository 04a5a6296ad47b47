#include "controllers/source/spec_source.hpp"

#include <optional>

#include <nlohmann/json.hpp>

#include <sodium.h>

namespace foundationd::source {

std::string describeSource(const config::DaemonConfig::Source& source) {
  if (source.kind == "git")
    return "git:" + source.url + "#" + source.branch + ":" + source.specPath;
  return "file:" + source.path;
}

std::filesystem::path cacheDirFor(const std::string& stateDir, const std::string& url) {
  state::ensureSodium();
  unsigned char hash[crypto_generichash_BYTES];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(url.data()),
                     url.size(), nullptr, 0);
  char hex[2 * 8 + 1];
  sodium_bin2hex(hex, sizeof hex, hash, 8);
  return std::filesystem::path(stateDir) / "source" / (std::string("git-") + hex);
}

GitOptions gitOptionsFor(const config::DaemonConfig& cfg) {
  GitOptions o;
  o.url = cfg.source.url;
  o.branch = cfg.source.branch;
  o.cacheDir = cacheDirFor(cfg.stateDir, cfg.source.url);
  return o;
}

std::string shortRevision(std::string_view revision) {
  return std::string(revision.substr(0, 12));
}

Result<config::LoadResult> loadAtCommit(GitRepo& repo, std::string_view commit,
                                        const std::string& specPath) {
  auto text = repo.readFile(commit, specPath);
  if (!text) return text.error();
  if (!text.value()) {
    config::LoadResult missing;
    missing.diagnostics.error(config::SourceLoc{specPath, 0, 0},
                              "no such file at commit " + shortRevision(commit) +
                                  " (check [source] spec_path and the branch)");
    return missing;
  }
  const auto slash = specPath.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : specPath.substr(0, slash + 1);
  std::optional<Error> gitError;
  const config::FileReader reader = [&](const std::string& rel) -> std::optional<std::string> {
    if (rel.empty() || rel.front() == '/') return std::nullopt;  // outside the repository
    auto r = repo.readFile(commit, dir + rel);
    if (!r) {
      gitError = r.error();
      return std::nullopt;
    }
    return std::move(r).value();
  };
  auto loaded = config::loadSpecText(*text.value(), specPath, reader);
  if (gitError) return *gitError;
  return loaded;
}

VerifiedLoad verifyThenLoad(GitRepo& repo, const std::string& commit, const std::string& specPath,
                            const std::string& allowedSigners, bool requireSigned) {
  VerifiedLoad out;
  if (requireSigned) {
    auto sig = repo.verifyCommit(commit, allowedSigners);
    if (!sig) {
      GitRepo::Signature failed;
      failed.reason = "the signature cannot be checked: " + sig.error().message;
      out.signature = std::move(failed);
    } else {
      out.signature = std::move(sig).value();
    }
    if (!out.signature->good()) return out;
  }
  out.read = true;
  out.loaded = loadAtCommit(repo, commit, specPath);
  return out;
}

std::string SettleRecord::toJson() const {
  nlohmann::json doc{{"revision", revision},
                     {"previous", previous},
                     {"period_ms", periodMs},
                     {"containers", containers},
                     {"failed_before", failedBefore}};
  if (deadlineUnixMs) doc["deadline_unix_ms"] = *deadlineUnixMs;
  return doc.dump();
}

std::optional<SettleRecord> SettleRecord::fromJson(std::string_view text) {
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  try {
    SettleRecord r;
    r.revision = doc.at("revision").get<std::string>();
    r.previous = doc.at("previous").get<std::string>();
    r.periodMs = doc.at("period_ms").get<std::int64_t>();
    r.containers = doc.at("containers").get<std::set<std::string>>();
    r.failedBefore = doc.at("failed_before").get<std::set<std::string>>();
    if (doc.contains("deadline_unix_ms"))
      r.deadlineUnixMs = doc["deadline_unix_ms"].get<std::int64_t>();
    if (r.revision.empty() || r.previous.empty() || r.periodMs <= 0) return std::nullopt;
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace foundationd::source
