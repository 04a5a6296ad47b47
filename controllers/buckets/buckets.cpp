#include "controllers/buckets/buckets.hpp"

#include <algorithm>
#include <set>
#include <thread>

namespace foundationd::buckets {

using config::Kind;

namespace {

bool isOurs(const LifecycleRule& r) {
  return r.id == kExpiryRuleId;
}

bool ourRuleAsSpecified(const LifecycleRule& r, int days) {
  return r.enabled && r.expirationDays == days && r.wholeBucket && !r.otherActions;
}

std::string describeRules(const std::vector<const LifecycleRule*>& ours) {
  if (ours.empty()) return "none";
  if (ours.size() > 1) return std::to_string(ours.size()) + " rules";
  const auto& r = *ours.front();
  if (!r.enabled) return "disabled";
  if (!r.wholeBucket) return "filtered";
  if (!r.expirationDays) return "no expiry days";
  return std::to_string(*r.expirationDays) + " days";
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// Lists until the server answers, within `wait`. Only "no answer" is waited
// on (refused, timeout, 503); any other error is final.
Result<std::vector<std::string>> listWhenReady(S3Api& api, const Options& options) {
  auto deadline = std::chrono::steady_clock::now() + options.waitReady;
  for (;;) {
    auto listed = api.listBuckets();
    if (listed) return listed;
    auto code = listed.error().code;
    bool retry = code == ErrorCode::unavailable || code == ErrorCode::timeout ||
                 listed.error().httpStatus >= 500;
    if (!retry || std::chrono::steady_clock::now() + options.pollInterval > deadline) {
      return listed;
    }
    std::this_thread::sleep_for(options.pollInterval);
  }
}

}  // namespace

std::optional<std::string> resolveValue(const config::Value& value, const SecretLookup& secrets) {
  std::string out;
  for (const auto& seg : value.segments) {
    if (const auto* text = std::get_if<std::string>(&seg)) {
      out += *text;
      continue;
    }
    if (!secrets) return std::nullopt;
    auto v = secrets(std::get<config::CredentialRef>(seg));
    if (!v) return std::nullopt;
    out += *v;
  }
  return out;
}

std::string appliedDigest(const config::BucketSpec& b) {
  return "s3=" + b.s3 + ";versioning=" + (b.versioning ? "true" : "false") +
         ";expire_days=" + std::to_string(b.expireDays);
}

const char* toString(Action a) noexcept {
  switch (a) {
    case Action::create:
      return "create";
    case Action::enableVersioning:
      return "enable-versioning";
    case Action::suspendVersioning:
      return "suspend-versioning";
    case Action::putLifecycle:
      return "put-lifecycle";
    case Action::deleteLifecycle:
      return "delete-lifecycle";
  }
  return "?";
}

Result<Observed> observe(S3Api& api, const std::vector<const config::BucketSpec*>& wanted) {
  auto listed = api.listBuckets();
  if (!listed) return std::move(listed).error();
  return observeListed(api, wanted, std::move(listed).value());
}

Result<Observed> observeListed(S3Api& api, const std::vector<const config::BucketSpec*>& wanted,
                               std::vector<std::string> buckets) {
  Observed out;
  out.buckets = std::move(buckets);
  std::set<std::string> present(out.buckets.begin(), out.buckets.end());
  for (const auto* b : wanted) {
    if (!present.count(b->name)) continue;
    BucketState st;
    auto v = api.getVersioning(b->name);
    if (!v) return std::move(v).error();
    st.versioning = std::move(v).value();
    auto lc = api.getLifecycle(b->name);
    if (lc) {
      st.lifecycle = std::move(lc).value();
    } else if (lc.error().httpStatus == 501) {
      st.lifecycleUnsupported = true;
    } else {
      return std::move(lc).error();
    }
    out.states.emplace(b->name, std::move(st));
  }
  return out;
}

Plan plan(const std::vector<const config::BucketSpec*>& wanted, const Observed& observed,
          const std::map<std::string, std::string>& applied,
          const std::vector<std::string>& specBuckets) {
  Plan out;
  for (const auto* b : wanted) {
    auto memo = applied.find(b->name);
    bool wasApplied = memo != applied.end() && memo->second == appliedDigest(*b);
    auto it = observed.states.find(b->name);
    BucketState fresh;  // what a bucket we create starts as
    const BucketState& st = it == observed.states.end() ? fresh : it->second;
    bool creating = it == observed.states.end();
    if (creating) {
      // Ours before (any recorded config) and gone now: drift.
      out.changes.push_back({b->name, Action::create, "", memo != applied.end(), "created"});
    }
    bool drift = wasApplied && !creating;

    if (b->versioning && st.versioning != "Enabled") {
      out.changes.push_back(
          {b->name, Action::enableVersioning, "", drift,
           "versioning: " + (st.versioning.empty() ? std::string("off") : st.versioning) +
               " -> Enabled"});
    } else if (!b->versioning && st.versioning == "Enabled") {
      out.changes.push_back(
          {b->name, Action::suspendVersioning, "", drift, "versioning: Enabled -> Suspended"});
    }

    std::vector<const LifecycleRule*> ours;
    std::vector<std::string> others;
    if (st.lifecycle) {
      for (const auto& r : *st.lifecycle) {
        if (isOurs(r))
          ours.push_back(&r);
        else
          others.push_back(r.xml);
      }
    }
    if (b->expireDays > 0 && st.lifecycleUnsupported) {
      out.problems[b->name] =
          "expire_days = " + std::to_string(b->expireDays) +
          " cannot be kept: this S3 server does not implement bucket lifecycle (NotImplemented)";
    } else if (b->expireDays > 0) {
      bool inSync = ours.size() == 1 && ourRuleAsSpecified(*ours.front(), b->expireDays);
      if (!inSync) {
        std::vector<std::string> rules = others;
        rules.push_back(expiryRuleXml(b->expireDays));
        out.changes.push_back(
            {b->name, Action::putLifecycle, lifecycleXml(rules), drift,
             "expiry: " + describeRules(ours) + " -> " + std::to_string(b->expireDays) + " days"});
      }
    } else if (!ours.empty()) {
      std::string reason = "expiry: " + describeRules(ours) + " -> none";
      if (others.empty()) {
        out.changes.push_back({b->name, Action::deleteLifecycle, "", drift, reason});
      } else {
        out.changes.push_back({b->name, Action::putLifecycle, lifecycleXml(others), drift, reason});
      }
    }
  }
  std::set<std::string> named(specBuckets.begin(), specBuckets.end());
  for (const auto& name : observed.buckets) {
    if (!named.count(name)) out.orphans.push_back(name);
  }
  return out;
}

StepReport apply(S3Api& api, const std::vector<const config::BucketSpec*>& wanted,
                 const Plan& plan) {
  StepReport report;
  for (const auto* b : wanted) {
    StepOutcome o;
    o.key = {Kind::bucket, b->name};
    std::vector<std::string> done;
    auto problem = plan.problems.find(b->name);
    for (const auto& c : plan.changes) {
      if (c.bucket != b->name) continue;
      Status st;
      switch (c.action) {
        case Action::create:
          st = api.createBucket(c.bucket);
          break;
        case Action::enableVersioning:
          st = api.putVersioning(c.bucket, true);
          break;
        case Action::suspendVersioning:
          st = api.putVersioning(c.bucket, false);
          break;
        case Action::putLifecycle:
          st = api.putLifecycle(c.bucket, c.body);
          break;
        case Action::deleteLifecycle:
          st = api.deleteLifecycle(c.bucket);
          break;
      }
      if (!st) {
        o.ok = false;
        o.message = st.error().message;
        break;
      }
      o.changed = true;
      o.drift = o.drift || c.drift;
      done.push_back(c.reason);
    }
    if (o.ok && problem != plan.problems.end()) {
      o.ok = false;
      done.push_back(problem->second);
      o.message = join(done, "; ");
    } else if (o.ok) {
      o.message = join(done, "; ");
    }
    report.outcomes.push_back(std::move(o));
  }
  return report;
}

Outcome reconcile(const config::Spec& spec, const SecretLookup& secrets, const Options& options) {
  Outcome out;
  std::vector<std::string> specBuckets;
  for (const auto& [name, b] : spec.buckets) specBuckets.push_back(name);

  for (const auto& [s3name, s3] : spec.s3) {
    std::vector<const config::BucketSpec*> wanted;
    for (const auto& [name, b] : spec.buckets) {
      if (b.s3 == s3name) wanted.push_back(&b);
    }
    ServerResult server{s3name, std::nullopt, 0};
    StepOutcome head;
    head.key = {Kind::s3, s3name};

    // Every outcome of this server at once: the server's, then its buckets'.
    auto finish = [&](bool ok, bool blocked, const std::string& why) {
      head.ok = ok;
      head.blocked = blocked;
      head.message = why;
      out.report.outcomes.push_back(head);
      if (ok) return;
      for (const auto* b : wanted) {
        StepOutcome o;
        o.key = {Kind::bucket, b->name};
        o.ok = false;
        o.blocked = blocked;
        o.message = "s3 " + s3name + ": " + why;
        out.report.outcomes.push_back(std::move(o));
      }
    };

    if (auto hp = options.hostProblems.find(s3.container); hp != options.hostProblems.end()) {
      finish(false, true, "waiting for container " + s3.container + ": " + hp->second);
      out.servers.push_back(std::move(server));
      continue;
    }
    auto access = resolveValue(s3.accessKey, secrets);
    auto secret = resolveValue(s3.secretKey, secrets);
    if (!access || !secret) {
      finish(false, true, "access_key/secret_key not available (state locked or not generated)");
      out.servers.push_back(std::move(server));
      continue;
    }
    S3Endpoint endpoint{s3.endpoint, s3.region, std::move(*access), std::move(*secret)};
    std::unique_ptr<S3Api> api;
    if (options.clients) {
      api = options.clients(endpoint);
    } else {
      auto client = std::make_unique<S3Client>(endpoint);
      client->setTimeout(options.requestTimeout);
      api = std::move(client);
    }

    // Wait for an answer, then observe (the first list is reused).
    auto listed = listWhenReady(*api, options);
    if (!listed) {
      finish(false, false, listed.error().message);
      server.requests = api->requestCount();
      out.requests += server.requests;
      out.servers.push_back(std::move(server));
      continue;
    }
    auto observed = observeListed(*api, wanted, std::move(listed).value());
    if (!observed) {
      finish(false, false, observed.error().message);
      server.requests = api->requestCount();
      out.requests += server.requests;
      out.servers.push_back(std::move(server));
      continue;
    }
    Plan p = plan(wanted, *observed, options.applied, specBuckets);
    std::string summary = std::to_string(observed->buckets.size()) + " bucket(s) on the server";
    if (!p.orphans.empty()) summary += "; not in the spec, kept: " + join(p.orphans, ", ");

    if (options.dryRun) {
      finish(true, false, summary);
    } else {
      StepReport r = apply(*api, wanted, p);
      finish(true, false, summary);
      for (auto& o : r.outcomes) {
        if (o.ok) {
          auto it = spec.buckets.find(o.key.name);
          if (it != spec.buckets.end()) out.applied[o.key.name] = appliedDigest(it->second);
        }
        out.report.outcomes.push_back(std::move(o));
      }
    }
    server.plan = std::move(p);
    server.requests = api->requestCount();
    out.requests += server.requests;
    out.servers.push_back(std::move(server));
  }
  return out;
}

}  // namespace foundationd::buckets
