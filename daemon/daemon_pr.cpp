// Plans on pull requests (docs/source.md "Plans on pull requests"): a
// pull_request delivery to the tracked branch queues the pull request; the
// source loop (the only user of the GitRepo) fetches its head commit,
// verifies it like a branch revision, plans it against the live host with
// the same planSpec() GET /v1/plan uses, and posts (or updates) one comment
// on the pull request. Nothing is applied: the spec in force is not touched.
//
// Thread: the io thread; git, SQLite and the forge's API on the pool.
#include <map>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "controllers/credentials/credentials.hpp"
#include "controllers/docker/secrets.hpp"
#include "controllers/source/pr_comment.hpp"
#include "controllers/source/spec_source.hpp"
#include "daemon/converge.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

struct Daemon::PullRequests {
  std::map<std::int64_t, std::string> queue;     // number -> head commit (the newest wins)
  std::map<std::int64_t, std::int64_t> comments;  // number -> foundationd's comment id
  api::Counter* plans = nullptr;                 // foundationd_pr_plans_total{result}
};

namespace {

bool planAction(const std::string& action) {
  // Gitea and Forgejo say "synchronized" for a push to the branch, GitHub
  // "synchronize"; "edited" may change the base branch.
  return action == "opened" || action == "reopened" || action == "synchronized" ||
         action == "synchronize" || action == "edited";
}

}  // namespace

void Daemon::startPullRequests() {
  prs_ = std::make_shared<PullRequests>();
  prs_->plans = &metrics_.registry().counter(
      "foundationd_pr_plans_total",
      "Pull requests planned and commented on, by result (planned, invalid, untrusted, failed).",
      {"result"});
  for (const char* r : {"planned", "invalid", "untrusted", "failed"}) prs_->plans->inc({r}, 0);
}

bool Daemon::pullRequestsQueued() const { return prs_ && !prs_->queue.empty(); }

api::WebhookOutcome Daemon::queuePullRequest(const api::PullRequestEvent& pr,
                                             std::string& message) {
  const std::string n = "pull request #" + std::to_string(pr.number);
  const std::string& branch = config_.source.branch;
  if (pr.baseRef != branch && pr.baseRef != "refs/heads/" + branch) {
    message = n + " is to " + pr.baseRef + ", not the tracked branch " + branch;
    return api::WebhookOutcome::ignored;
  }
  if (!planAction(pr.action)) {
    message = n + " " + pr.action + ": nothing to plan";
    return api::WebhookOutcome::ignored;
  }
  if (!prs_) startPullRequests();
  prs_->queue[pr.number] = pr.headSha;
  message = "planning " + n + " at " + source::shortRevision(pr.headSha);
  return api::WebhookOutcome::accepted;
}

asio::awaitable<void> Daemon::planPullRequest() {
  auto& q = *prs_;
  const auto first = q.queue.begin();
  const std::int64_t number = first->first;
  const std::string commit = first->second;
  q.queue.erase(first);
  const std::string label = "#" + std::to_string(number);

  source::PullRequestPlan result;
  result.number = number;
  result.commit = commit;
  result.inForce = specInForce_;
  result.at = api::formatTime(api::Clock::now());

  // The git token (as for the branch), which may also be what comments.
  std::optional<state::SecretBytes> token;
  std::string problem;
  if (config_.source.token) {
    if (key_.locked()) {
      problem = "locked: the git token is in the sealed state";
    } else {
      state::Store* store = store_.get();
      const state::UnlockedKey* key = &key_;
      const config::CredentialRef ref = *config_.source.token;
      const config::CredentialRef* refp = &ref;
      auto read = [store, key, refp] {
        return store->currentSecret(*key, credentials::kKind, refp->name, refp->field);
      };
      auto secret = co_await onPool(read);
      if (secret) {
        token.emplace(std::move(secret->value));
      } else {
        problem = "cannot read the git token credential " + ref.name + "." + ref.field;
      }
    }
  }

  std::optional<config::Spec> spec;
  if (problem.empty()) {
    struct Fetched {
      Result<std::string> head = Error::make(ErrorCode::internal, "not run");
      source::VerifiedLoad load;
    };
    source::GitRepo* repo = sourceRepo();
    const state::SecretBytes* tokenp = token ? &*token : nullptr;
    const std::string* commitp = &commit;
    const std::string specPath = config_.source.specPath;
    const std::string* specPathp = &specPath;
    const std::string signers = config_.source.allowedSigners;
    const std::string* signersp = &signers;
    const bool require = config_.source.requireSigned;
    auto job = [repo, tokenp, number, commitp, specPathp, signersp, require] {
      Fetched f;
      if (!repo) {
        f.head = Error::make(ErrorCode::unavailable, "no git source");
        return f;
      }
      f.head = repo->fetchPullRequest(tokenp, number);
      if (!f.head) return f;
      // Exactly the commit the delivery announced (the branch may have moved
      // on since: the newer delivery plans the newer commit).
      if (!repo->hasCommit(*commitp)) {
        f.head = Error::make(ErrorCode::not_found, "commit " + source::shortRevision(*commitp) +
                                                       " is not on the pull request's branch "
                                                       "(force-pushed away?)");
        return f;
      }
      f.load = source::verifyThenLoad(*repo, *commitp, *specPathp, *signersp, require);
      return f;
    };
    Fetched f = co_await onPool(job);
    if (!f.head) {
      problem = f.head.error().message;
    } else if (f.load.signature && !f.load.signature->good()) {
      result.verdict = source::PullRequestPlan::Verdict::untrusted;
      result.detail = std::string(source::verdictName(f.load.signature->verdict)) + ": " +
                      f.load.signature->reason;
    } else if (!f.load.loaded) {
      problem = f.load.loaded.error().message;
    } else if (!f.load.loaded->spec) {
      result.verdict = source::PullRequestPlan::Verdict::invalid;
      result.detail = f.load.loaded->diagnostics.formatAll(config::Severity::error);
    } else {
      spec = std::move(f.load.loaded->spec);
      if (f.load.signature)
        result.signedBy = f.load.signature->signer + " (" + f.load.signature->key + ")";
    }
  }
  if (spec) {
    result.project = spec->project;
    auto planned = co_await planSpec(*spec);
    if (planned) {
      result.verdict = source::PullRequestPlan::Verdict::planned;
      result.planText = planned->text();
      result.hasChanges = planned->hasChanges();
    } else {
      problem = "cannot plan against the live host: " + planned.error().message;
    }
  }
  if (!problem.empty()) {
    result.verdict = source::PullRequestPlan::Verdict::failed;
    result.detail = problem;
  }
  const std::string body = source::renderPlanComment(result);

  // Who comments (docs/source.md): the [source] token, else the forge admin
  // of the spec in force when that forge serves the spec repository.
  std::int64_t commentId = 0;
  std::string commentError;
  const auto forge = source::forgeRepoFromUrl(config_.source.url);
  std::optional<source::ForgeAuth> auth;
  if (!forge) {
    commentError = "the [source] url is not http(s)://host/owner/repo: no forge API to comment on";
  } else if (token) {
    auth.emplace();
    auth->kind = source::ForgeAuth::Kind::token;
    auth->secret = std::string(token->view());
  } else if (spec_ && spec_->forgejo && spec_->forgejo->admin &&
             source::urlOrigin(spec_->forgejo->url) == source::urlOrigin(config_.source.url) &&
             !key_.locked()) {
    const config::Spec* specp = &*spec_;
    state::Store* store = store_.get();
    const state::UnlockedKey* key = &key_;
    auto resolve = [specp, store, key] {
      StoreSecrets secrets(*specp, store, key);
      return docker::resolveSecrets(specp->forgejo->admin->password, secrets);
    };
    auto password = co_await onPool(resolve);
    if (password) {
      auth.emplace();
      auth->kind = source::ForgeAuth::Kind::basic;
      auth->user = spec_->forgejo->admin->username;
      auth->secret = std::move(*password);
      sodium_memzero(password->data(), password->size());
    } else {
      commentError = "the forge admin's password is not available";
    }
  } else {
    commentError =
        "no credentials to comment with: set [source] token (with the write:issue scope), or "
        "let the spec's [forgejo.admin] manage the forge that serves the repository";
  }
  if (token) token->wipe();
  if (auth) {
    const source::ForgeRepo* forgep = &*forge;
    const source::ForgeAuth* authp = &*auth;
    const std::string* bodyp = &body;
    const std::int64_t known = q.comments.count(number) ? q.comments[number] : 0;
    auto post = [forgep, authp, number, bodyp, known] {
      return source::upsertPlanComment(*forgep, *authp, number, *bodyp, known);
    };
    auto posted = co_await onPool(post);
    sodium_memzero(auth->secret.data(), auth->secret.size());
    if (posted) {
      commentId = posted.value();
      q.comments[number] = commentId;
    } else {
      commentError = posted.error().message;
    }
  }

  const char* verdict = source::verdictName(result.verdict);
  q.plans->inc({verdict});
  nlohmann::json fields{{"pull_request", number}, {"commit", commit}, {"result", verdict}};
  if (commentId > 0) fields["comment"] = commentId;
  if (!commentError.empty()) fields["comment_error"] = commentError;
  if (!result.detail.empty() && result.verdict != source::PullRequestPlan::Verdict::invalid)
    fields["reason"] = result.detail;
  if (commentError.empty()) {
    log::info("pr.planned", {{"pull_request", label}, {"commit", commit}, {"result", verdict}});
  } else {
    log::warn("pr.planned", {{"pull_request", label},
                             {"commit", commit},
                             {"result", verdict},
                             {"comment_error", commentError}});
  }
  const std::string text = fields.dump();
  state::Store* store = store_.get();
  const std::string* textp = &text;
  auto audit = [store, textp] { return store->appendAudit("pr.planned", *textp); };
  (void)co_await onPool(audit);
}

}  // namespace foundationd::daemon
