// The git spec source against Debian's real git: a repository made in a
// temporary directory and fetched over file:// (and a refused connection for
// the unreachable case). The HTTP server, token auth and webhooks are in
// tests/e2e/test_gitops.py.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "controllers/source/git_repo.hpp"
#include "controllers/source/process.hpp"
#include "controllers/source/spec_source.hpp"
#include "tests/unit/temp_dir.hpp"

namespace fs = std::filesystem;
namespace src = foundationd::source;
using foundationd::ErrorCode;

namespace {

std::string git(const fs::path& dir, std::vector<std::string> args) {
  src::ProcessRequest req;
  req.argv = {"git", "-C", dir.string()};
  req.argv.insert(req.argv.end(), args.begin(), args.end());
  req.env = {{"PATH", std::getenv("PATH")},
             {"HOME", dir.string()},
             {"GIT_CONFIG_NOSYSTEM", "1"},
             {"GIT_AUTHOR_NAME", "t"},
             {"GIT_AUTHOR_EMAIL", "t@example.org"},
             {"GIT_COMMITTER_NAME", "t"},
             {"GIT_COMMITTER_EMAIL", "t@example.org"}};
  auto r = src::runProcess(req);
  REQUIRE(r);
  INFO(r->err);
  REQUIRE(r->exitCode == 0);
  std::string out = r->out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

const char* kSpec = R"(spec_version = 1
project = "gitops-test"
versions = "VERSIONS"

[containers.web]
image = "${versions.busybox}"
command = ["sleep", "3600"]
)";

std::string commitAll(const fs::path& repo, const std::string& message) {
  git(repo, {"add", "-A"});
  git(repo, {"commit", "-q", "-m", message});
  return git(repo, {"rev-parse", "HEAD"});
}

}  // namespace

TEST_CASE("runProcess: output, exit code, environment, timeout") {
  src::ProcessRequest req;
  req.argv = {"sh", "-c", "echo out; echo err >&2; echo \"$ONLY\"; exit 3"};
  req.env = {{"PATH", "/usr/bin:/bin"}, {"ONLY", "this"}};
  auto r = src::runProcess(req);
  REQUIRE(r);
  CHECK(r->exitCode == 3);
  CHECK(r->out == "out\nthis\n");
  CHECK(r->err == "err\n");
  req.argv = {"sleep", "5"};
  req.timeout = std::chrono::milliseconds(200);
  auto t = src::runProcess(req);
  REQUIRE_FALSE(t);
  CHECK(std::string(foundationd::toString(t.error().code)) == "timeout");
  req.argv = {"/nonexistent/program"};
  auto n = src::runProcess(req);
  REQUIRE_FALSE(n);
  CHECK(std::string(foundationd::toString(n.error().code)) == "io");
}

TEST_CASE("GitRepo: fetch a branch, read files at a commit, new commits, errors") {
  foundationd::test::TempDir tmp{"git-test"};
  const fs::path origin = tmp.path / "origin";
  fs::create_directories(origin);
  git(origin, {"init", "-q", "-b", "main"});
  write(origin / "infra/foundation.toml", kSpec);
  write(origin / "infra/VERSIONS", "[images]\nbusybox = \"busybox:1\"\n");
  const std::string first = commitAll(origin, "first");

  src::GitOptions o;
  o.url = "file://" + origin.string();
  o.branch = "main";
  o.cacheDir = tmp.path / "state/source/git-x";
  src::GitRepo repo(o);
  auto head = repo.fetch(nullptr);
  REQUIRE(head);
  CHECK(head.value() == first);
  CHECK(repo.hasCommit(first));
  struct stat st {};
  REQUIRE(::stat(o.cacheDir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  auto loaded = src::loadAtCommit(repo, first, "infra/foundation.toml");
  REQUIRE(loaded);
  REQUIRE(loaded->spec);
  CHECK(loaded->spec->containers.at("web").image == "busybox:1");

  // A second commit changes VERSIONS; the first commit still reads as it was.
  write(origin / "infra/VERSIONS", "[images]\nbusybox = \"busybox:2\"\n");
  const std::string second = commitAll(origin, "second");
  head = repo.fetch(nullptr);
  REQUIRE(head);
  CHECK(head.value() == second);
  auto atSecond = src::loadAtCommit(repo, second, "infra/foundation.toml");
  REQUIRE(atSecond);
  REQUIRE(atSecond->spec);
  CHECK(atSecond->spec->containers.at("web").image == "busybox:2");
  auto atFirst = src::loadAtCommit(repo, first, "infra/foundation.toml");
  REQUIRE(atFirst);
  REQUIRE(atFirst->spec);
  CHECK(atFirst->spec->containers.at("web").image == "busybox:1");

  // An invalid spec is diagnostics (located, named by repository path), not an error.
  write(origin / "infra/foundation.toml", std::string(kSpec) + "bogus = 1\n");
  const std::string third = commitAll(origin, "third");
  REQUIRE(repo.fetch(nullptr));
  auto bad = src::loadAtCommit(repo, third, "infra/foundation.toml");
  REQUIRE(bad);
  CHECK_FALSE(bad->spec);
  CHECK(bad->diagnostics.formatAll().find("infra/foundation.toml:8:1: error:") !=
        std::string::npos);
  auto missing = src::loadAtCommit(repo, third, "nope.toml");
  REQUIRE(missing);
  CHECK_FALSE(missing->spec);
  CHECK(missing->diagnostics.formatAll().find("no such file at commit") != std::string::npos);

  // Files outside the repository are not read.
  auto outside = repo.readFile(third, "../origin/infra/VERSIONS");
  REQUIRE(outside);
  CHECK_FALSE(outside.value());

  // The branch is gone.
  src::GitOptions gone = o;
  gone.branch = "nope";
  src::GitRepo goneRepo(gone);
  auto g = goneRepo.fetch(nullptr);
  REQUIRE_FALSE(g);
  CHECK(std::string(foundationd::toString(g.error().code)) == "not_found");
  CHECK(g.error().message.find("branch does not exist") != std::string::npos);

  // No repository there.
  src::GitOptions none = o;
  none.url = "file://" + (tmp.path / "none").string();
  none.cacheDir = tmp.path / "state/source/git-none";
  src::GitRepo noneRepo(none);
  auto n = noneRepo.fetch(nullptr);
  REQUIRE_FALSE(n);
  CHECK(std::string(foundationd::toString(n.error().code)) == "not_found");
}

TEST_CASE("GitRepo: an unreachable server is unavailable; a URL with a password is refused") {
  foundationd::test::TempDir tmp{"git-test"};
  src::GitOptions o;
  o.url = "http://127.0.0.1:9/foundation.git";  // discard port: refused
  o.cacheDir = tmp.path / "cache";
  src::GitRepo repo(o);
  auto r = repo.fetch(nullptr);
  REQUIRE_FALSE(r);
  CHECK(std::string(foundationd::toString(r.error().code)) == "unavailable");
  CHECK(r.error().message.find("unreachable") != std::string::npos);

  o.url = "https://user:hunter2@forge.example/org/foundation.git";
  src::GitRepo withPassword(o);
  auto p = withPassword.fetch(nullptr);
  REQUIRE_FALSE(p);
  CHECK(std::string(foundationd::toString(p.error().code)) == "invalid_argument");
  CHECK(p.error().message.find("hunter2") == std::string::npos);
  CHECK(src::gitUrlProblem("https://user@forge.example/x.git") == std::nullopt);
  CHECK(src::gitUrlProblem("-uhttps://x") != std::nullopt);
}

TEST_CASE("classifyFetchError: what git said, as something to act on") {
  const std::string url = "https://forge.example/org/foundation.git";
  auto auth = src::classifyFetchError(
      128, "fatal: Authentication failed for 'https://forge.example/org/foundation.git/'\n", url,
      "main");
  CHECK(std::string(foundationd::toString(auth.code)) == "peer");
  CHECK(auth.message.find("refused the credentials") != std::string::npos);
  auto auth401 = src::classifyFetchError(
      128, "fatal: unable to access '...': The requested URL returned error: 401\n", url, "main");
  CHECK(std::string(foundationd::toString(auth401.code)) == "peer");
  auto down = src::classifyFetchError(
      128, "fatal: unable to access '...': Failed to connect to forge.example port 443\n", url,
      "main");
  CHECK(std::string(foundationd::toString(down.code)) == "unavailable");
  auto gone = src::classifyFetchError(128, "fatal: couldn't find remote ref refs/heads/main\n", url,
                                      "main");
  CHECK(std::string(foundationd::toString(gone.code)) == "not_found");
  CHECK(gone.message.find("git said: fatal: couldn't find remote ref") != std::string::npos);
}

TEST_CASE("authorizationHeader: Basic with the token as the password") {
  auto h = src::authorizationHeader("tok123");
  // base64("foundationd:tok123")
  CHECK(h.view() == "Authorization: Basic Zm91bmRhdGlvbmQ6dG9rMTIz");
}

TEST_CASE("describeSource and cacheDirFor") {
  foundationd::config::DaemonConfig cfg;
  cfg.source.kind = "git";
  cfg.source.url = "https://forge.example/org/foundation.git";
  CHECK(src::describeSource(cfg.source) ==
        "git:https://forge.example/org/foundation.git#main:foundation.toml");
  const auto dir = src::cacheDirFor("/var/lib/foundationd", cfg.source.url);
  CHECK(dir.parent_path() == "/var/lib/foundationd/source");
  CHECK(dir.filename().string().rfind("git-", 0) == 0);
  CHECK(dir != src::cacheDirFor("/var/lib/foundationd", "https://other.example/x.git"));
}

TEST_CASE("GitRepo::verifyCommit: git's verdict on SSH signatures against an allowed signers file") {
  foundationd::test::TempDir tmp{"git-test"};
  auto keygen = [&](const std::string& name) {
    src::ProcessRequest req;
    req.argv = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                "-f", (tmp.path / name).string()};
    req.env = {{"PATH", std::getenv("PATH")}, {"HOME", tmp.path.string()}};
    auto r = src::runProcess(req);
    REQUIRE(r);
    INFO(r->err);
    REQUIRE(r->exitCode == 0);
    std::ifstream in(tmp.path / (name + ".pub"));
    std::string pub;
    std::getline(in, pub);
    return pub;
  };
  const std::string alice = keygen("alice");
  keygen("mallory");
  const fs::path allowed = tmp.path / "allowed_signers";
  write(allowed, "alice@example.org " + alice + "\n");

  const fs::path origin = tmp.path / "origin";
  fs::create_directories(origin);
  git(origin, {"init", "-q", "-b", "main"});
  auto signedBy = [&](const std::string& key, const std::string& message) {
    write(origin / "foundation.toml", std::string(kSpec) + "# " + message + "\n");
    git(origin, {"add", "-A"});
    git(origin, {"-c", "gpg.format=ssh", "-c", "user.signingkey=" + (tmp.path / key).string(),
                 "commit", "-q", "-S", "-m", message});
    return git(origin, {"rev-parse", "HEAD"});
  };
  const std::string good = signedBy("alice", "signed by alice");
  const std::string bad = signedBy("mallory", "signed by mallory");
  write(origin / "foundation.toml", std::string(kSpec) + "# unsigned\n");
  const std::string unsignedCommit = commitAll(origin, "unsigned");

  src::GitOptions o;
  o.url = "file://" + origin.string();
  o.cacheDir = tmp.path / "cache";
  src::GitRepo repo(o);
  REQUIRE(repo.fetch(nullptr));

  auto g = repo.verifyCommit(good, allowed);
  REQUIRE(g);
  CHECK(g->good());
  CHECK(g->signer == "alice@example.org");
  CHECK(g->key.rfind("SHA256:", 0) == 0);

  auto m = repo.verifyCommit(bad, allowed);
  REQUIRE(m);
  CHECK_FALSE(m->good());
  CHECK(m->verdict == src::GitRepo::Signature::Verdict::unknown_key);
  CHECK(m->key.rfind("SHA256:", 0) == 0);
  CHECK(m->key != g->key);
  CHECK(m->reason.find("not in the allowed signers file") != std::string::npos);

  auto u = repo.verifyCommit(unsignedCommit, allowed);
  REQUIRE(u);
  CHECK(u->verdict == src::GitRepo::Signature::Verdict::unsigned_commit);
  CHECK(u->reason.find("no signature") != std::string::npos);

  // The trust list rotated: mallory in, alice out.
  const std::string mallory = [&] {
    std::ifstream in(tmp.path / "mallory.pub");
    std::string pub;
    std::getline(in, pub);
    return pub;
  }();
  write(allowed, "mallory@example.org " + mallory + "\n");
  auto m2 = repo.verifyCommit(bad, allowed);
  REQUIRE(m2);
  CHECK(m2->good());
  CHECK(m2->signer == "mallory@example.org");
  auto g2 = repo.verifyCommit(good, allowed);
  REQUIRE(g2);
  CHECK_FALSE(g2->good());

  // No trust list: nothing is trusted.
  auto none = repo.verifyCommit(bad, tmp.path / "missing");
  REQUIRE(none);
  CHECK(none->verdict == src::GitRepo::Signature::Verdict::unverifiable);
  CHECK(none->reason.find("cannot be read") != std::string::npos);
  // Only full commit ids.
  CHECK_FALSE(repo.verifyCommit("main", allowed));
}

TEST_CASE("judgeSignature: git's %G? letters and exit codes") {
  using V = src::GitRepo::Signature::Verdict;
  CHECK(src::judgeSignature(0, "G", "a@b", "SHA256:x", "", "/f").verdict == V::good);
  // git's letter alone is not enough: verify-commit must agree.
  CHECK(src::judgeSignature(1, "G", "a@b", "SHA256:x", "", "/f").verdict == V::unknown_key);
  CHECK(src::judgeSignature(1, "N", "", "", "", "/f").verdict == V::unsigned_commit);
  CHECK(src::judgeSignature(1, "U", "", "SHA256:k", "", "/f").reason.find("SHA256:k") !=
        std::string::npos);
  CHECK(src::judgeSignature(1, "B", "", "SHA256:k", "", "/f").verdict == V::bad);
  CHECK(src::judgeSignature(1, "E", "", "", "gpg: cannot", "/f").verdict == V::unverifiable);
  CHECK(std::string(src::verdictName(V::unsigned_commit)) == "unsigned");
}

TEST_CASE("GitRepo::fetchPullRequest: the forge's refs/pull/<n>/head, its commit read like any") {
  foundationd::test::TempDir tmp{"git-test"};
  const fs::path origin = tmp.path / "origin";
  fs::create_directories(origin);
  git(origin, {"init", "-q", "-b", "main"});
  write(origin / "foundation.toml", kSpec);
  write(origin / "VERSIONS", "[images]\nbusybox = \"busybox:1\"\n");
  const std::string base = commitAll(origin, "base");
  // What a forge publishes for pull request 7: a ref outside refs/heads.
  git(origin, {"checkout", "-q", "-b", "feature"});
  write(origin / "foundation.toml", std::string(kSpec) + "\n[containers.extra]\nimage = \"x\"\n");
  const std::string head = commitAll(origin, "feature");
  git(origin, {"update-ref", "refs/pull/7/head", head});
  git(origin, {"checkout", "-q", "main"});

  src::GitOptions o;
  o.url = "file://" + origin.string();
  o.cacheDir = tmp.path / "cache";
  src::GitRepo repo(o);
  REQUIRE(repo.fetch(nullptr).value() == base);  // the branch is not moved by the PR
  auto pr = repo.fetchPullRequest(nullptr, 7);
  REQUIRE(pr);
  CHECK(pr.value() == head);
  CHECK(repo.hasCommit(head));
  auto text = repo.readFile(head, "foundation.toml");
  REQUIRE(text);
  REQUIRE(text->has_value());
  CHECK((*text)->find("[containers.extra]") != std::string::npos);
  CHECK(repo.fetch(nullptr).value() == base);

  auto missing = repo.fetchPullRequest(nullptr, 8);
  REQUIRE_FALSE(missing);
  CHECK(std::string(foundationd::toString(missing.error().code)) == "not_found");
  CHECK_FALSE(repo.fetchPullRequest(nullptr, 0));
}

TEST_CASE("SettleRecord: the settle watch round-trips through the state's text; junk is none") {
  src::SettleRecord r;
  r.revision = std::string(40, 'b');
  r.previous = std::string(40, 'a');
  r.periodMs = 120000;
  r.containers = {"web", "worker"};
  r.failedBefore = {"bucket.logs"};
  auto back = src::SettleRecord::fromJson(r.toJson());
  REQUIRE(back);
  CHECK(back->revision == r.revision);
  CHECK(back->previous == r.previous);
  CHECK(back->periodMs == 120000);
  CHECK_FALSE(back->deadlineUnixMs);
  CHECK(back->containers == r.containers);
  CHECK(back->failedBefore == r.failedBefore);
  r.deadlineUnixMs = 1700000000123;
  back = src::SettleRecord::fromJson(r.toJson());
  REQUIRE(back);
  CHECK(back->deadlineUnixMs == std::optional<std::int64_t>(1700000000123));
  for (const char* junk : {"", "{}", "[]", "not json", R"({"revision":"x","previous":"","period_ms":1,"containers":[],"failed_before":[]})",
                           R"({"revision":"x","previous":"y","period_ms":"1","containers":[],"failed_before":[]})"}) {
    CHECK_FALSE(src::SettleRecord::fromJson(junk));
  }
}
