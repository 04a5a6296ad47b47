// The git client of the spec source: a bare cache repository under the
// state directory, driven by Debian's `git` CLI (docs/source.md says why the
// CLI and not libgit2).
//
// Contract:
// - fetch() brings `branch` of `url` into refs/remotes/origin/<branch> and
//   returns the commit it points at; readFile() reads a blob *at a commit*
//   (`git cat-file blob <commit>:<path>`), so everything the spec loader
//   reads comes from one commit.
// - Auth: an HTTPS token travels to git in the environment
//   (GIT_CONFIG_COUNT/KEY/VALUE: http.extraHeader "Authorization: Basic
//   base64(foundationd:<token>)", the form Forgejo and Gitea accept for an
//   access token), never in argv, never in a URL, never in an error message.
//   git runs with HOME pointed at the cache, no system config, no terminal
//   prompt, and no GIT_TRACE*, so nothing asks for or prints credentials.
// - A URL carrying a password ("https://user:pw@host/...") is refused: the
//   URL is in argv and in messages.
// - Blocking (child processes): call from the daemon's pool. Not thread-safe:
//   one owner calls it at a time (the daemon's source loop).
// - Errors: unavailable (server down or unreachable), peer (auth refused, with
//   what to check), not_found (the branch does not exist), timeout, io.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::source {

struct GitOptions {
  std::string url;
  std::string branch = "main";
  std::filesystem::path cacheDir;  // the bare repository (created when missing)
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  std::string git = "git";  // the program
};

class GitRepo {
 public:
  explicit GitRepo(GitOptions options);
  GitRepo(const GitRepo&) = delete;
  GitRepo& operator=(const GitRepo&) = delete;

  const GitOptions& options() const noexcept { return options_; }

  // Fetches the branch and returns its head commit (40 hex). `token` may be
  // null (no auth).
  Result<std::string> fetch(const state::SecretBytes* token);
  // Fetches pull request `number`'s head (the forge's refs/pull/<n>/head,
  // which Forgejo and Gitea publish) into refs/foundationd/pull/<n> and
  // returns the commit it points at. Its commits then read like any other.
  Result<std::string> fetchPullRequest(const state::SecretBytes* token, std::int64_t number);
  // The content of `path` (relative to the repository root) at `commit`;
  // nullopt when there is no such file there.
  Result<std::optional<std::string>> readFile(std::string_view commit, std::string_view path);
  // Whether the cache holds `commit` (e.g. the last applied revision at start).
  bool hasCommit(std::string_view commit);

  // Whether `commit` (40 hex, already in the cache) carries a good signature
  // by a key of `allowedSigners` (git's allowed_signers file of SSH signing
  // keys), as `git verify-commit` decides it with gpg.format=ssh and
  // gpg.ssh.allowedSignersFile; the signer and key are read with the same
  // git (%G?, %GS, %GK). An error Result only when git cannot be run.
  struct Signature;
  Result<Signature> verifyCommit(std::string_view commit,
                                 const std::filesystem::path& allowedSigners);

  std::uint64_t fetchCount() const noexcept { return fetches_; }

 private:
  Status ensureInit();
  // `git fetch <url> +<remoteRef>:<localRef>`; the commit at localRef.
  Result<std::string> fetchRef(const state::SecretBytes* token, const std::string& remoteRef,
                               const std::string& localRef, const std::string& what);

  GitOptions options_;
  bool initialized_ = false;
  std::uint64_t fetches_ = 0;
};

// The verdict on a commit's signature.
struct GitRepo::Signature {
  enum class Verdict { good, unsigned_commit, unknown_key, bad, unverifiable };
  Verdict verdict = Verdict::unverifiable;
  std::string signer;  // the principal of the allowed_signers line (good only)
  std::string key;     // "SHA256:..." of the signing key ("" when unsigned)
  std::string reason;  // for status and events, e.g. "signed by key SHA256:... which is
                       // not in the allowed signers file ..."
  bool good() const noexcept { return verdict == Verdict::good; }
};

// The metric label of a verdict: good, unsigned, unknown_key, bad_signature,
// unverifiable.
const char* verdictName(GitRepo::Signature::Verdict verdict) noexcept;

// The verdict from what git said: verify-commit's exit code, the %G? letter,
// %GS, %GK and verify-commit's stderr. Pure (unit-tested).
GitRepo::Signature judgeSignature(int verifyExit, std::string_view letter, std::string_view signer,
                                  std::string_view key, std::string_view verifyStderr,
                                  const std::string& allowedSigners);

// What a failed `git fetch` said, as an Error a user can act on. `stderrText`
// must already be free of secrets (it is, as git never sees them in argv and
// tracing is off); it is quoted in part.
Error classifyFetchError(int exitCode, std::string_view stderrText, const std::string& url,
                         const std::string& branch);

// Why `url` cannot be used, or nullopt.
std::optional<std::string> gitUrlProblem(std::string_view url);

// "Authorization: Basic base64(foundationd:<token>)".
state::SecretBytes authorizationHeader(std::string_view token);

}  // namespace foundationd::source
