// Plans on pull requests (docs/source.md "Plans on pull requests"): the
// comment foundationd posts on a pull request to the spec repository, and
// the forge API calls that post it or update its earlier one.
//
// Contract:
// - The comment is Markdown that starts with kPlanCommentMarker (an HTML
//   comment, hidden when rendered): foundationd finds its own comment by it,
//   and updates that one on each push instead of adding another.
// - It never holds a secret: the plan text is the renderer's (secret fields
//   are "(sensitive)"), diagnostics quote the spec (the repository's own
//   text, public in the pull request), reasons name keys by fingerprint.
// - Forgejo and Gitea API v1: GET/POST /repos/{owner}/{repo}/issues/{n}/comments,
//   PATCH /repos/{owner}/{repo}/issues/comments/{id}.
// - Blocking (HTTP): call from the daemon's pool. Errors name the call and
//   the status, never a credential.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "controllers/transport/http_client.hpp"

namespace foundationd::source {

inline constexpr std::string_view kPlanCommentMarker = "<!-- foundationd:plan -->";

// A repository on a forge, reached through its API.
struct ForgeRepo {
  std::string apiBase;  // "https://forge.example/api/v1" (a sub-path install keeps its prefix)
  std::string owner;
  std::string name;
};

// The forge repository of a git source URL ("https://forge.example/org/
// foundation.git" -> api "https://forge.example/api/v1", org, foundation);
// nullopt for a URL that is not http(s)://host[/prefix]/owner/name[.git].
std::optional<ForgeRepo> forgeRepoFromUrl(std::string_view url);

// "scheme://host[:port]" of an http(s) URL ("" when it is not one).
std::string urlOrigin(std::string_view url);

// Who comments: an access token ("Authorization: token ...") or a user and
// password (basic). The caller wipes it.
struct ForgeAuth {
  enum class Kind { token, basic } kind = Kind::token;
  std::string user;
  std::string secret;
};

// What was found planning a pull request's head commit.
struct PullRequestPlan {
  enum class Verdict { planned, invalid, untrusted, failed };
  Verdict verdict = Verdict::failed;
  std::int64_t number = 0;
  std::string commit;    // the head commit planned (40 hex)
  std::string project;   // the spec's project ("" when it did not load)
  std::string inForce;   // the revision in force on the host ("" when none)
  std::string at;        // when (RFC 3339)
  std::string planText;  // planned: as `foundationd plan` prints it
  bool hasChanges = false;
  std::string detail;    // invalid: the located errors; untrusted: the signature's
                         // verdict; failed: what failed
  std::string signedBy;  // planned with signatures required: "principal (SHA256:...)"
};

// "planned", "invalid", "untrusted", "failed".
const char* verdictName(PullRequestPlan::Verdict verdict) noexcept;

// The comment's Markdown (starts with the marker). Bounded: a plan over
// ~60 000 characters is cut, and says so. Pure (unit-tested).
std::string renderPlanComment(const PullRequestPlan& plan);

// Updates foundationd's comment on pull request `number` to `body`, or posts
// it when there is none: the comment `knownId` when it still exists (0 =
// unknown), else the first comment that starts with the marker, else a new
// one. Returns the comment's id.
using HttpFn = Result<transport::PeerResponse> (*)(const transport::PeerRequest&);
Result<std::int64_t> upsertPlanComment(const ForgeRepo& repo, const ForgeAuth& auth,
                                       std::int64_t number, const std::string& body,
                                       std::int64_t knownId,
                                       HttpFn http = transport::peerRequest);

}  // namespace foundationd::source
