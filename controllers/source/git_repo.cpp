#include "controllers/source/git_repo.hpp"

#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

#include <sodium.h>
#include <sys/stat.h>

#include "controllers/source/process.hpp"

namespace foundationd::source {
namespace {

using Env = SecretEnv;

bool isHex(std::string_view s) {
  if (s.size() < 7 || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

// The last "fatal:"/"error:" line git printed (or the last line), bounded and
// printable: enough to act on, never a wall of text.
std::string gitSaid(std::string_view err) {
  std::string_view pick;
  std::size_t pos = 0;
  while (pos < err.size()) {
    auto end = err.find('\n', pos);
    if (end == std::string_view::npos) end = err.size();
    std::string_view line = err.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && (pick.empty() || line.rfind("fatal:", 0) == 0 ||
                          line.rfind("error:", 0) == 0 || pick.rfind("fatal:", 0) != 0)) {
      pick = line;
    }
    pos = end + 1;
  }
  std::string out;
  for (char c : pick.substr(0, 300)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

Env baseEnv(const std::filesystem::path& home) {
  Env env;
  const char* path = std::getenv("PATH");
  env.emplace_back("PATH", path ? path : "/usr/local/bin:/usr/bin:/bin");
  env.emplace_back("HOME", home.string());
  env.emplace_back("LC_ALL", "C");
  env.emplace_back("GIT_CONFIG_NOSYSTEM", "1");
  env.emplace_back("GIT_CONFIG_GLOBAL", "/dev/null");
  env.emplace_back("GIT_TERMINAL_PROMPT", "0");
  env.emplace_back("GIT_ASKPASS", "true");  // never prompt: an empty answer, then 401
  env.emplace_back("GIT_HTTP_LOW_SPEED_LIMIT", "1000");
  env.emplace_back("GIT_HTTP_LOW_SPEED_TIME", "30");
  // What an operator may need to reach the server (an internal CA, a proxy).
  for (const char* k :
       {"GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy",
        "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}) {
    if (const char* v = std::getenv(k)) env.emplace_back(k, v);
  }
  return env;
}

}  // namespace

std::optional<std::string> gitUrlProblem(std::string_view url) {
  if (url.empty()) return "is empty";
  const auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    const auto hostStart = scheme + 3;
    const auto pathStart = url.find('/', hostStart);
    const auto authority =
        url.substr(hostStart, pathStart == std::string_view::npos ? std::string_view::npos
                                                                  : pathStart - hostStart);
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos &&
        authority.substr(0, at).find(':') != std::string_view::npos) {
      return "carries a password; put the token in a credential ([source] token = "
             "\"${credentials.NAME.FIELD}\") instead";
    }
  }
  if (url.front() == '-') return "must not start with '-'";
  for (char c : url) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f)
      return "must not contain spaces or control characters";
  }
  return std::nullopt;
}

state::SecretBytes authorizationHeader(std::string_view token) {
  state::ensureSodium();
  const std::string prefix = "foundationd:";
  state::SecretBytes plain(prefix.size() + token.size());
  std::memcpy(plain.data(), prefix.data(), prefix.size());
  std::memcpy(plain.data() + prefix.size(), token.data(), token.size());
  const std::size_t b64len =
      sodium_base64_ENCODED_LEN(plain.size(), sodium_base64_VARIANT_ORIGINAL);
  const std::string head = "Authorization: Basic ";
  state::SecretBytes out(head.size() + b64len);
  std::memcpy(out.data(), head.data(), head.size());
  sodium_bin2base64(reinterpret_cast<char*>(out.data() + head.size()), b64len, plain.data(),
                    plain.size(), sodium_base64_VARIANT_ORIGINAL);
  // b64len counts the terminating NUL: drop it from the view.
  state::SecretBytes trimmed = state::SecretBytes::copyOf(out.view().substr(0, out.size() - 1));
  return trimmed;
}

Error classifyFetchError(int exitCode, std::string_view err, const std::string& url,
                         const std::string& branch) {
  const std::string where = "git fetch of " + url + " (branch " + branch + ")";
  const std::string said = gitSaid(err);
  const std::string tail = said.empty() ? "" : "; git said: " + said;
  if (contains(err, "couldn't find remote ref")) {
    return Error::make(ErrorCode::not_found, where +
                                                 " failed: the branch does not exist on the "
                                                 "server (deleted or renamed?)" +
                                                 tail);
  }
  if (contains(err, "Authentication failed") || contains(err, "returned error: 401") ||
      contains(err, "returned error: 403") || contains(err, "could not read Username") ||
      contains(err, "could not read Password") || contains(err, "terminal prompts disabled")) {
    return Error::make(ErrorCode::peer,
                       where +
                           " failed: the server refused the credentials; "
                           "check [source] token and that the token may "
                           "read the repository" +
                           tail,
                       401);
  }
  if (contains(err, "returned error: 404") || contains(err, "not found") ||
      contains(err, "does not appear to be a git repository")) {
    return Error::make(ErrorCode::not_found, where + " failed: no repository at that URL" + tail,
                       404);
  }
  if (contains(err, "Failed to connect") || contains(err, "Could not resolve") ||
      contains(err, "Connection refused") || contains(err, "Connection timed out") ||
      contains(err, "Connection reset") || contains(err, "Empty reply") ||
      contains(err, "returned error: 5") || contains(err, "Operation timed out") ||
      contains(err, "unable to access")) {
    return Error::make(ErrorCode::unavailable,
                       where + " failed: the git server is unreachable or failing" + tail);
  }
  return Error::make(ErrorCode::peer,
                     where + " failed (git exit " + std::to_string(exitCode) + ")" + tail);
}

GitRepo::GitRepo(GitOptions options) : options_(std::move(options)) {}

Status GitRepo::ensureInit() {
  if (initialized_) return Status::success();
  std::error_code ec;
  if (!std::filesystem::exists(options_.cacheDir / "HEAD", ec)) {
    std::filesystem::create_directories(options_.cacheDir, ec);
    if (ec) {
      return Error::make(ErrorCode::io, "cannot create the git cache " +
                                            options_.cacheDir.string() + ": " + ec.message());
    }
    ::chmod(options_.cacheDir.c_str(), 0700);
    ProcessRequest req;
    req.argv = {options_.git, "init", "--bare", "-q", options_.cacheDir.string()};
    req.env = baseEnv(options_.cacheDir);
    req.timeout = std::chrono::seconds(30);
    auto r = runProcess(req);
    if (!r) return r.error();
    if (r->exitCode != 0) {
      return Error::make(ErrorCode::io, "git init of the cache " + options_.cacheDir.string() +
                                            " failed: " + gitSaid(r->err));
    }
  }
  initialized_ = true;
  return Status::success();
}

Result<std::string> GitRepo::fetch(const state::SecretBytes* token) {
  if (options_.branch.empty() || options_.branch.front() == '-' ||
      options_.branch.find_first_of(" \t\n:^~?*[\\") != std::string::npos) {
    return Error::make(ErrorCode::invalid_argument, "[source] branch is not a valid branch name");
  }
  return fetchRef(token, "refs/heads/" + options_.branch,
                  "refs/remotes/origin/" + options_.branch, options_.branch);
}

Result<std::string> GitRepo::fetchPullRequest(const state::SecretBytes* token,
                                              std::int64_t number) {
  if (number <= 0) return Error::make(ErrorCode::invalid_argument, "not a pull request number");
  const std::string n = std::to_string(number);
  return fetchRef(token, "refs/pull/" + n + "/head", "refs/foundationd/pull/" + n,
                  "pull request #" + n);
}

Result<std::string> GitRepo::fetchRef(const state::SecretBytes* token,
                                      const std::string& remoteRef, const std::string& localRef,
                                      const std::string& what) {
  if (auto problem = gitUrlProblem(options_.url)) {
    return Error::make(ErrorCode::invalid_argument, "[source] url " + *problem);
  }
  if (Status st = ensureInit(); !st) return st.error();
  const std::string& ref = localRef;
  ProcessRequest req;
  req.argv = {options_.git,
              "-C",
              options_.cacheDir.string(),
              "fetch",
              "--quiet",
              "--no-tags",
              "--no-write-fetch-head",
              "--",
              options_.url,
              "+" + remoteRef + ":" + localRef};
  req.env = baseEnv(options_.cacheDir);
  state::SecretBytes header;
  if (token != nullptr && !token->empty()) {
    header = authorizationHeader(token->view());
    req.env.emplace_back("GIT_CONFIG_COUNT", "1");
    req.env.emplace_back("GIT_CONFIG_KEY_0", "http.extraHeader");
    req.env.emplace_back("GIT_CONFIG_VALUE_0", std::string(header.view()));
  }
  req.timeout = options_.timeout;
  ++fetches_;
  auto r = runProcess(req);
  if (token != nullptr && !token->empty()) {
    auto& v = req.env.back().second;
    sodium_memzero(v.data(), v.size());
  }
  if (!r) {
    if (r.error().code == ErrorCode::timeout) {
      return Error::make(ErrorCode::timeout, "git fetch of " + options_.url + " (branch " +
                                                 what + ") timed out");
    }
    return r.error();
  }
  if (r->exitCode != 0)
    return classifyFetchError(r->exitCode, r->err, options_.url, what);

  ProcessRequest rev;
  rev.argv = {options_.git, "-C", options_.cacheDir.string(), "rev-parse",
              "--verify",   "-q", ref + "^{commit}"};
  rev.env = baseEnv(options_.cacheDir);
  rev.timeout = std::chrono::seconds(30);
  auto h = runProcess(rev);
  if (!h) return h.error();
  std::string head = h->out;
  while (!head.empty() && (head.back() == '\n' || head.back() == '\r')) head.pop_back();
  if (h->exitCode != 0 || !isHex(head)) {
    return Error::make(ErrorCode::protocol, "git fetch of " + options_.url + " (branch " +
                                                what + ") left no commit in " + ref);
  }
  return head;
}

Result<std::optional<std::string>> GitRepo::readFile(std::string_view commit,
                                                     std::string_view path) {
  if (!isHex(commit)) return Error::make(ErrorCode::invalid_argument, "not a commit id");
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string_view::npos) {
    return std::optional<std::string>();
  }
  // No ".." component: a spec reads files of its own repository only.
  std::size_t pos = 0;
  while (pos <= path.size()) {
    auto end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    if (path.substr(pos, end - pos) == "..") return std::optional<std::string>();
    pos = end + 1;
  }
  if (Status st = ensureInit(); !st) return st.error();
  ProcessRequest req;
  req.argv = {options_.git, "-C",   options_.cacheDir.string(),
              "cat-file",   "blob", std::string(commit) + ":" + std::string(path)};
  req.env = baseEnv(options_.cacheDir);
  req.timeout = std::chrono::seconds(30);
  req.maxOutput = 16 * 1024 * 1024;
  auto r = runProcess(req);
  if (!r) return r.error();
  if (r->exitCode != 0) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r->out));
}

const char* verdictName(GitRepo::Signature::Verdict verdict) noexcept {
  using V = GitRepo::Signature::Verdict;
  switch (verdict) {
    case V::good:
      return "good";
    case V::unsigned_commit:
      return "unsigned";
    case V::unknown_key:
      return "unknown_key";
    case V::bad:
      return "bad_signature";
    case V::unverifiable:
      return "unverifiable";
  }
  return "unverifiable";
}

GitRepo::Signature judgeSignature(int verifyExit, std::string_view letter, std::string_view signer,
                                  std::string_view key, std::string_view verifyStderr,
                                  const std::string& allowedSigners) {
  using V = GitRepo::Signature::Verdict;
  GitRepo::Signature sig;
  sig.key = gitSaid(key);
  const std::string keyText = sig.key.empty() ? std::string("an unknown key") : "key " + sig.key;
  if (letter == "G" && verifyExit == 0) {
    sig.verdict = V::good;
    sig.signer = gitSaid(signer);
    sig.reason = "good signature by " + sig.signer + " (" + keyText + ")";
  } else if (letter == "N" || letter.empty()) {
    sig.verdict = V::unsigned_commit;
    sig.reason = "no signature: the commit is not signed";
  } else if (letter == "U" || (letter == "G" && verifyExit != 0)) {
    sig.verdict = V::unknown_key;
    sig.reason = "signed by " + keyText + ", which is not in the allowed signers file " +
                 allowedSigners + " (or not valid for that commit's date)";
  } else if (letter == "B") {
    sig.verdict = V::bad;
    sig.reason = "bad signature (by " + keyText + "): the commit or its signature was altered";
  } else {
    sig.verdict = V::unverifiable;
    const std::string said = gitSaid(verifyStderr);
    sig.reason = "the signature cannot be checked (git's verdict " + std::string(letter) + ")" +
                 (said.empty() ? "" : "; git said: " + said);
  }
  return sig;
}

Result<GitRepo::Signature> GitRepo::verifyCommit(std::string_view commit,
                                                 const std::filesystem::path& allowedSigners) {
  if (!isHex(commit) || commit.size() < 40)
    return Error::make(ErrorCode::invalid_argument, "not a full commit id");
  if (Status st = ensureInit(); !st) return st.error();
  // The allowed signers file is the daemon's, never the repository's. A file
  // that cannot be read makes git's verdict "no principal": refused, and said.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(allowedSigners, ec)) {
    Signature sig;
    sig.verdict = Signature::Verdict::unverifiable;
    sig.reason = "the allowed signers file " + allowedSigners.string() +
                 " cannot be read; no revision can be trusted until it can";
    return sig;
  }
  const std::vector<std::string> trust = {
      "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile=" + allowedSigners.string()};
  // (An OpenPGP signature is handed to gpg with an empty keyring under the
  // cache's HOME: "cannot be checked", never trusted.)
  ProcessRequest verify;
  verify.argv = {options_.git, "-C", options_.cacheDir.string()};
  verify.argv.insert(verify.argv.end(), trust.begin(), trust.end());
  verify.argv.insert(verify.argv.end(), {"verify-commit", "--raw", std::string(commit)});
  verify.env = baseEnv(options_.cacheDir);
  verify.timeout = std::chrono::seconds(30);
  auto v = runProcess(verify);
  if (!v) return v.error();

  ProcessRequest show = verify;
  show.argv.resize(show.argv.size() - 3);
  show.argv.insert(show.argv.end(),
                   {"show", "-s", "--no-show-signature", "--format=%G?%x00%GS%x00%GK",
                    std::string(commit)});
  auto d = runProcess(show);
  if (!d) return d.error();
  if (d->exitCode != 0) {
    return Error::make(ErrorCode::io, "git show of commit " + std::string(commit.substr(0, 12)) +
                                          " failed: " + gitSaid(d->err));
  }
  std::string out = d->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  std::string_view rest = out;
  auto field = [&rest]() {
    const auto nul = rest.find('\0');
    std::string_view f = rest.substr(0, nul);
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    return f;
  };
  const auto letter = field();
  const auto signer = field();
  const auto key = field();
  return judgeSignature(v->exitCode, letter, signer, key, v->err, allowedSigners.string());
}

bool GitRepo::hasCommit(std::string_view commit) {
  if (!isHex(commit)) return false;
  if (!std::filesystem::exists(options_.cacheDir / "HEAD")) return false;
  ProcessRequest req;
  req.argv = {options_.git, "-C", options_.cacheDir.string(),
              "cat-file",   "-e", std::string(commit) + "^{commit}"};
  req.env = baseEnv(options_.cacheDir);
  req.timeout = std::chrono::seconds(30);
  auto r = runProcess(req);
  return r && r->exitCode == 0;
}

}  // namespace foundationd::source
