#include "controllers/source/pr_comment.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "controllers/source/spec_source.hpp"

namespace foundationd::source {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxText = 60000;

// Text inside a ``` fence: a fence in it would end ours.
std::string fenced(std::string text) {
  for (std::size_t pos = 0; (pos = text.find("```", pos)) != std::string::npos;) {
    text.replace(pos, 3, "'''");
  }
  if (text.size() > kMaxText) {
    text.resize(kMaxText);
    text += "\n... (cut: the plan is longer than this comment may be; run `foundationd plan`)";
  }
  if (!text.empty() && text.back() != '\n') text += '\n';
  return "```text\n" + text + "```\n";
}

std::string said(const transport::PeerResponse& r) {
  std::string msg;
  const auto doc = json::parse(r.body, nullptr, false);
  if (doc.is_object() && doc.contains("message") && doc["message"].is_string())
    msg = doc["message"].get<std::string>();
  std::string out;
  for (char c : msg.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out.empty() ? "" : ": " + out;
}

Error httpError(const std::string& what, const transport::PeerResponse& r) {
  const std::string hint =
      r.status == 401 || r.status == 403
          ? " (the credentials may not comment on the repository's issues: a token needs the "
            "write:issue scope)"
          : "";
  return Error::make(r.status == 404 ? ErrorCode::not_found : ErrorCode::peer,
                     what + " answered " + std::to_string(r.status) + said(r) + hint, r.status);
}

}  // namespace

std::string urlOrigin(std::string_view url) {
  std::size_t start = 0;
  if (url.rfind("https://", 0) == 0) {
    start = 8;
  } else if (url.rfind("http://", 0) == 0) {
    start = 7;
  } else {
    return "";
  }
  const auto slash = url.find('/', start);
  auto origin = std::string(url.substr(0, slash));
  while (!origin.empty() && origin.back() == '/') origin.pop_back();
  return origin;
}

std::optional<ForgeRepo> forgeRepoFromUrl(std::string_view url) {
  const std::string origin = urlOrigin(url);
  if (origin.empty() || origin.find('@') != std::string::npos) return std::nullopt;
  std::string path(url.substr(origin.size()));
  const auto cut = path.find_first_of("?#");
  if (cut != std::string::npos) path.resize(cut);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".git") == 0) path.resize(path.size() - 4);
  const auto nameAt = path.rfind('/');
  if (nameAt == std::string::npos || nameAt == 0) return std::nullopt;
  const auto ownerAt = path.rfind('/', nameAt - 1);
  if (ownerAt == std::string::npos) return std::nullopt;
  ForgeRepo repo;
  repo.owner = path.substr(ownerAt + 1, nameAt - ownerAt - 1);
  repo.name = path.substr(nameAt + 1);
  if (repo.owner.empty() || repo.name.empty()) return std::nullopt;
  repo.apiBase = origin + path.substr(0, ownerAt) + "/api/v1";
  return repo;
}

const char* verdictName(PullRequestPlan::Verdict verdict) noexcept {
  switch (verdict) {
    case PullRequestPlan::Verdict::planned:
      return "planned";
    case PullRequestPlan::Verdict::invalid:
      return "invalid";
    case PullRequestPlan::Verdict::untrusted:
      return "untrusted";
    case PullRequestPlan::Verdict::failed:
      return "failed";
  }
  return "failed";
}

std::string renderPlanComment(const PullRequestPlan& p) {
  using V = PullRequestPlan::Verdict;
  const std::string commit = shortRevision(p.commit);
  std::string out(kPlanCommentMarker);
  out += "\n";
  switch (p.verdict) {
    case V::planned:
      out += "### foundationd plan for " + commit + "\n\n";
      out += p.hasChanges ? "Merging this pull request changes the host as planned below."
                          : "Merging this pull request changes nothing on the host.";
      break;
    case V::invalid:
      out += "### :x: foundationd: " + commit + " cannot be applied: the spec is invalid\n\n";
      out += "foundationd would reject this revision (the host keeps its current one):";
      break;
    case V::untrusted:
      out += "### :x: foundationd: " + commit +
             " cannot be applied: not signed by a trusted key\n\n";
      out += "foundationd refuses this revision when it reaches the branch, and does not plan "
             "it. Sign the commit with a key of the daemon's allowed signers.";
      break;
    case V::failed:
      out += "### :warning: foundationd could not plan " + commit + "\n\n";
      break;
  }
  out += "\n\n";
  if (p.verdict == V::planned) {
    out += fenced(p.planText);
  } else if (!p.detail.empty()) {
    out += fenced(p.detail);
  }
  out += p.verdict == V::planned ? "\n<sub>Planned against the live host"
                                 : "\n<sub>Checked for the live host";
  if (!p.project.empty()) out += " (project `" + p.project + "`)";
  out += p.inForce.empty() ? std::string(", where no revision is in force")
                           : ", where revision " + shortRevision(p.inForce) + " is in force";
  if (!p.at.empty()) out += ", at " + p.at;
  if (!p.signedBy.empty()) out += "; signed by " + p.signedBy;
  out += ". Nothing is applied until the pull request is merged; this comment is updated on "
         "each push.</sub>\n";
  return out;
}

Result<std::int64_t> upsertPlanComment(const ForgeRepo& repo, const ForgeAuth& auth,
                                       std::int64_t number, const std::string& body,
                                       std::int64_t knownId, HttpFn http) {
  const std::string base = repo.apiBase + "/repos/" + transport::urlEncode(repo.owner) + "/" +
                           transport::urlEncode(repo.name) + "/issues";
  auto call = [&](const std::string& method, const std::string& url,
                  const std::optional<json>& payload) {
    transport::PeerRequest req;
    req.method = method;
    req.url = url;
    req.timeout = std::chrono::seconds(15);
    req.headers.emplace_back("Accept", "application/json");
    if (payload) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = payload->dump();
    }
    if (auth.kind == ForgeAuth::Kind::basic) {
      req.basicAuth = transport::BasicAuth{auth.user, auth.secret};
    } else {
      req.headers.emplace_back("Authorization", "token " + auth.secret);
    }
    auto r = http(req);
    if (req.basicAuth)
      sodium_memzero(req.basicAuth->password.data(), req.basicAuth->password.size());
    for (auto& [name, value] : req.headers) {
      if (name == "Authorization") sodium_memzero(value.data(), value.size());
    }
    return r;
  };
  const json payload = {{"body", body}};
  auto patch = [&](std::int64_t id) -> Result<bool> {
    auto r = call("PATCH", base + "/comments/" + std::to_string(id), payload);
    if (!r) return r.error();
    // Deleted meanwhile, or not ours (someone quoted the marker): post a new one.
    if (r->status == 404 || r->status == 403) return false;
    if (!r->ok()) return httpError("PATCH of comment " + std::to_string(id), *r);
    return true;
  };
  if (knownId > 0) {
    auto p = patch(knownId);
    if (!p) return p.error();
    if (*p) return knownId;
  }
  const std::string comments = base + "/" + std::to_string(number) + "/comments";
  auto list = call("GET", comments, std::nullopt);
  if (!list) return list.error();
  if (!list->ok()) return httpError("GET " + comments, *list);
  const auto doc = json::parse(list->body, nullptr, false);
  if (doc.is_array()) {
    for (const auto& c : doc) {
      if (!c.is_object() || !c.contains("body") || !c["body"].is_string()) continue;
      if (c["body"].get_ref<const std::string&>().rfind(kPlanCommentMarker, 0) != 0) continue;
      const auto id = c.value("id", std::int64_t{0});
      if (id <= 0 || id == knownId) continue;
      auto p = patch(id);
      if (!p) return p.error();
      if (*p) return id;
    }
  }
  auto posted = call("POST", comments, payload);
  if (!posted) return posted.error();
  if (!posted->ok()) return httpError("POST " + comments, *posted);
  const auto created = json::parse(posted->body, nullptr, false);
  const auto id = created.is_object() ? created.value("id", std::int64_t{0}) : 0;
  if (id <= 0) return Error::make(ErrorCode::protocol, "POST " + comments + ": no id in the answer");
  return id;
}

}  // namespace foundationd::source
