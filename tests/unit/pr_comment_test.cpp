// The pull request plan comment (controllers/source/pr_comment.hpp): the
// forge repository of a source URL, the Markdown, and the post-or-update
// dance against a scripted forge API. The real forge: tests/e2e/test_pr_plans.py.
#include "controllers/source/pr_comment.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace src = foundationd::source;
namespace transport = foundationd::transport;
using foundationd::Error;
using foundationd::ErrorCode;
using foundationd::Result;

namespace {

// A scripted forge: the comments of pull request 5 and every request seen.
struct Forge {
  nlohmann::json comments = nlohmann::json::array();
  std::vector<std::string> calls;  // "METHOD path"
  std::vector<std::string> auth;   // the Authorization header of each call
  int nextId = 100;
  int forbiddenId = 0;  // PATCH of this comment is 403 (someone else's)
};
Forge* forge = nullptr;

Result<transport::PeerResponse> fakeHttp(const transport::PeerRequest& req) {
  const std::string prefix = "https://forge.example/git/api/v1/repos/olsitec/foundation/issues";
  REQUIRE(req.url.rfind(prefix, 0) == 0);
  const std::string path = req.url.substr(prefix.size());
  forge->calls.push_back(req.method + " " + path);
  std::string auth;
  for (const auto& [k, v] : req.headers) {
    if (k == "Authorization") auth = v;
  }
  if (req.basicAuth) auth = "basic " + req.basicAuth->user;
  forge->auth.push_back(auth);
  transport::PeerResponse r;
  r.status = 200;
  if (req.method == "GET" && path == "/5/comments") {
    r.body = forge->comments.dump();
  } else if (req.method == "POST" && path == "/5/comments") {
    const auto body = nlohmann::json::parse(req.body);
    nlohmann::json c = {{"id", forge->nextId++}, {"body", body["body"]}};
    forge->comments.push_back(c);
    r.status = 201;
    r.body = c.dump();
  } else if (req.method == "PATCH" && path.rfind("/comments/", 0) == 0) {
    const int id = std::stoi(path.substr(10));
    r.status = 404;
    if (id == forge->forbiddenId) {
      r.status = 403;
      r.body = R"({"message":"user should be the owner"})";
    }
    for (auto& c : forge->comments) {
      if (c["id"] == id && id != forge->forbiddenId) {
        c["body"] = nlohmann::json::parse(req.body)["body"];
        r.status = 200;
        r.body = c.dump();
      }
    }
  } else {
    r.status = 500;
  }
  return r;
}

src::ForgeRepo repo() { return *src::forgeRepoFromUrl("https://forge.example/git/olsitec/foundation.git"); }

}  // namespace

TEST_CASE("forgeRepoFromUrl and urlOrigin") {
  auto r = src::forgeRepoFromUrl("http://127.0.0.1:3000/olsitec/foundation.git");
  REQUIRE(r);
  CHECK(r->apiBase == "http://127.0.0.1:3000/api/v1");
  CHECK(r->owner == "olsitec");
  CHECK(r->name == "foundation");
  r = src::forgeRepoFromUrl("https://forge.example/git/olsitec/foundation/");
  REQUIRE(r);
  CHECK(r->apiBase == "https://forge.example/git/api/v1");
  CHECK(r->name == "foundation");
  CHECK_FALSE(src::forgeRepoFromUrl("file:///srv/foundation.git"));
  CHECK_FALSE(src::forgeRepoFromUrl("https://forge.example/foundation.git"));
  CHECK_FALSE(src::forgeRepoFromUrl("ssh://git@forge.example/o/r.git"));
  CHECK(src::urlOrigin("http://127.0.0.1:3000") == "http://127.0.0.1:3000");
  CHECK(src::urlOrigin("http://127.0.0.1:3000/o/r.git") == "http://127.0.0.1:3000");
  CHECK(src::urlOrigin("git@forge:o/r") == "");
}

TEST_CASE("renderPlanComment: the marker first, the verdict, the plan or the located errors") {
  src::PullRequestPlan p;
  p.number = 5;
  p.commit = "0123456789abcdef0123456789abcdef01234567";
  p.inForce = "89abcdef0123456789abcdef0123456789abcdef";
  p.project = "olsitec";
  p.verdict = src::PullRequestPlan::Verdict::planned;
  p.hasChanges = true;
  p.planText = "  + container.web: create (does not exist)\n```\nPlan: 1 to create.";
  std::string md = src::renderPlanComment(p);
  CHECK(md.rfind(std::string(src::kPlanCommentMarker), 0) == 0);
  CHECK(md.find("plan for 0123456789ab") != std::string::npos);
  CHECK(md.find("container.web: create") != std::string::npos);
  CHECK(md.find("revision 89abcdef0123 is in force") != std::string::npos);
  CHECK(md.find("cannot be applied") == std::string::npos);
  // A fence in the text cannot end the comment's own.
  CHECK(md.find("```\nPlan") == std::string::npos);

  p.verdict = src::PullRequestPlan::Verdict::invalid;
  p.detail = "foundation.toml:3:1: error: unknown key \"imagee\"";
  md = src::renderPlanComment(p);
  CHECK(md.find("cannot be applied: the spec is invalid") != std::string::npos);
  CHECK(md.find("foundation.toml:3:1: error") != std::string::npos);
  CHECK(md.find("container.web") == std::string::npos);

  p.verdict = src::PullRequestPlan::Verdict::untrusted;
  p.detail = "unknown_key: signed by key SHA256:abc, which is not in the allowed signers file";
  md = src::renderPlanComment(p);
  CHECK(md.find("not signed by a trusted key") != std::string::npos);
  CHECK(md.find("SHA256:abc") != std::string::npos);

  p.verdict = src::PullRequestPlan::Verdict::planned;
  p.planText = std::string(70000, 'x');
  md = src::renderPlanComment(p);
  CHECK(md.size() < 62000);
  CHECK(md.find("(cut:") != std::string::npos);
}

TEST_CASE("upsertPlanComment: post once, then update the same comment; never another's") {
  Forge f;
  forge = &f;
  src::ForgeAuth auth;
  auth.kind = src::ForgeAuth::Kind::token;
  auth.secret = "t0ken";
  f.comments.push_back({{"id", 7}, {"body", "LGTM"}});

  // First: nothing of ours, a new comment.
  auto id = src::upsertPlanComment(repo(), auth, 5, std::string(src::kPlanCommentMarker) + "\none", 0,
                                   fakeHttp);
  REQUIRE(id);
  CHECK(id.value() == 100);
  CHECK(f.calls == std::vector<std::string>{"GET /5/comments", "POST /5/comments"});
  CHECK(f.auth[0] == "token t0ken");

  // Known id: one PATCH.
  f.calls.clear();
  id = src::upsertPlanComment(repo(), auth, 5, std::string(src::kPlanCommentMarker) + "\ntwo", 100,
                              fakeHttp);
  REQUIRE(id);
  CHECK(id.value() == 100);
  CHECK(f.calls == std::vector<std::string>{"PATCH /comments/100"});
  CHECK(f.comments.size() == 2);
  CHECK(f.comments[1]["body"].get<std::string>().find("two") != std::string::npos);

  // Forgotten (a restart): found by its marker, updated in place.
  f.calls.clear();
  id = src::upsertPlanComment(repo(), auth, 5, std::string(src::kPlanCommentMarker) + "\nthree", 0,
                              fakeHttp);
  REQUIRE(id);
  CHECK(id.value() == 100);
  CHECK(f.calls == std::vector<std::string>{"GET /5/comments", "PATCH /comments/100"});
  CHECK(f.comments.size() == 2);

  // Someone else's comment with the marker is left alone.
  f.forbiddenId = 100;
  f.calls.clear();
  src::ForgeAuth basic{src::ForgeAuth::Kind::basic, "platform-admin", "pw"};
  id = src::upsertPlanComment(repo(), basic, 5, std::string(src::kPlanCommentMarker) + "\nfour", 0,
                              fakeHttp);
  REQUIRE(id);
  CHECK(id.value() == 101);
  CHECK(f.auth.back() == "basic platform-admin");
  forge = nullptr;
}

TEST_CASE("upsertPlanComment: a refusal names the call and the status, never the token") {
  struct Refuse {
    static Result<transport::PeerResponse> http(const transport::PeerRequest&) {
      transport::PeerResponse r;
      r.status = 403;
      r.body = R"({"message":"token does not have at least one of required scope(s): [write:issue]"})";
      return r;
    }
  };
  src::ForgeAuth auth{src::ForgeAuth::Kind::token, "", "sekrit-token"};
  auto id = src::upsertPlanComment(repo(), auth, 5, "x", 0, Refuse::http);
  REQUIRE_FALSE(id);
  CHECK(id.error().message.find("403") != std::string::npos);
  CHECK(id.error().message.find("write:issue") != std::string::npos);
  CHECK(id.error().message.find("sekrit") == std::string::npos);
}
