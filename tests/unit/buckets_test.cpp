// The bucket controller without a server: request building (URL, signing
// provider, payload hash), the S3 client's reading of answers through a
// captured transport, plan() (pure), apply() and reconcile() against FakeS3.
#include "controllers/buckets/buckets.hpp"

#include <doctest/doctest.h>

#include "tests/fakes/fake_s3.hpp"

using namespace foundationd;
using namespace foundationd::buckets;
using foundationd::fakes::FakeS3;
using foundationd::transport::PeerRequest;
using foundationd::transport::PeerResponse;

namespace {

const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string header(const PeerRequest& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "<none>";
}

config::BucketSpec bucket(const std::string& name, bool versioning, int days,
                          const std::string& s3 = "store") {
  config::BucketSpec b;
  b.name = name;
  b.s3 = s3;
  b.versioning = versioning;
  b.expireDays = days;
  return b;
}

config::Spec specWith(std::vector<config::BucketSpec> list, bool lockedKeys = false) {
  config::Spec spec;
  config::S3Spec s3;
  s3.name = "store";
  s3.container = "s3";
  s3.endpoint = "http://127.0.0.1:1";
  if (lockedKeys) {
    s3.accessKey.segments.push_back(config::CredentialRef{"root", "accessKey"});
    s3.secretKey.segments.push_back(config::CredentialRef{"root", "secretKey"});
  } else {
    s3.accessKey = config::Value::literal("AK");
    s3.secretKey = config::Value::literal("SK-secret");
  }
  spec.s3["store"] = s3;
  for (auto& b : list) spec.buckets[b.name] = b;
  return spec;
}

std::vector<const config::BucketSpec*> ptrs(const std::vector<config::BucketSpec>& v) {
  std::vector<const config::BucketSpec*> out;
  for (const auto& b : v) out.push_back(&b);
  return out;
}

// A ClientFactory handing out one shared FakeS3.
ClientFactory sharedFake(FakeS3& fake) {
  struct Proxy final : S3Api {
    FakeS3* f;
    std::uint64_t start;
    explicit Proxy(FakeS3* fk) : f(fk), start(fk->calls.size()) {}
    Result<std::vector<std::string>> listBuckets() override { return f->listBuckets(); }
    Status createBucket(const std::string& b) override { return f->createBucket(b); }
    Result<std::string> getVersioning(const std::string& b) override { return f->getVersioning(b); }
    Status putVersioning(const std::string& b, bool e) override { return f->putVersioning(b, e); }
    Result<std::optional<std::vector<LifecycleRule>>> getLifecycle(const std::string& b) override {
      return f->getLifecycle(b);
    }
    Status putLifecycle(const std::string& b, const std::string& x) override {
      return f->putLifecycle(b, x);
    }
    Status deleteLifecycle(const std::string& b) override { return f->deleteLifecycle(b); }
    std::uint64_t requestCount() const noexcept override { return f->calls.size() - start; }
  };
  return [&fake](const S3Endpoint&) { return std::make_unique<Proxy>(&fake); };
}

const StepOutcome* find(const StepReport& r, config::Kind kind, const std::string& name) {
  for (const auto& o : r.outcomes) {
    if (o.key.kind == kind && o.key.name == name) return &o;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("buildRequest: path style, sub-resource with '=', payload hash, signing provider") {
  S3Endpoint ep{"http://127.0.0.1:9000/", "eu-west-1", "AK", "SK"};
  auto list = buildRequest(ep, "GET", "", "", "");
  CHECK(list.url == "http://127.0.0.1:9000/");
  CHECK(header(list, "x-amz-content-sha256") == kEmptySha);
  CHECK(header(list, "Content-Type") == "<none>");
  REQUIRE(list.sigv4);
  CHECK(list.sigv4->provider == "aws:amz:eu-west-1:s3");
  CHECK(list.sigv4->accessKey == "AK");
  CHECK(list.sigv4->secretKey == "SK");

  auto put = buildRequest(ep, "PUT", "my.bucket", "versioning", versioningXml(true));
  CHECK(put.method == "PUT");
  CHECK(put.url == "http://127.0.0.1:9000/my.bucket?versioning=");
  CHECK(header(put, "x-amz-content-sha256") == sha256Hex(versioningXml(true)));
  CHECK(header(put, "Content-Type") == "application/xml");
  CHECK(put.body == versioningXml(true));

  S3Endpoint noRegion{"http://h:1", "", "a", "b"};
  CHECK(buildRequest(noRegion, "GET", "b", "lifecycle", "").sigv4->provider ==
        "aws:amz:us-east-1:s3");
  // SHA-256 test vector (FIPS 180-2 "abc").
  CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("object requests: keys encoded as SigV4 paths, sorted query, payload hash") {
  CHECK(encodeKey("a b/\xC3\xA9t\xC3\xA9/x+y=z~_.-") == "a%20b/%C3%A9t%C3%A9/x%2By%3Dz~_.-");
  CHECK(encodeKey("100%") == "100%25");
  S3Endpoint ep{"http://127.0.0.1:9000/", "", "AK", "SK"};
  auto get = buildObjectRequest(ep, "GET", "data", "dir/a b", "", kEmptySha);
  CHECK(get.url == "http://127.0.0.1:9000/data/dir/a%20b");
  CHECK(get.pathAsIs);
  CHECK(header(get, "x-amz-content-sha256") == kEmptySha);
  REQUIRE(get.sigv4);
  CHECK(get.sigv4->provider == "aws:amz:us-east-1:s3");
  auto list = buildObjectRequest(ep, "GET", "data", "", "list-type=2&max-keys=5", kEmptySha);
  CHECK(list.url == "http://127.0.0.1:9000/data?list-type=2&max-keys=5");
}

TEST_CASE("S3Client::listObjects follows continuation tokens in canonical query order") {
  std::vector<PeerRequest> sent;
  std::vector<std::string> bodies{
      "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key><Size>1</Size>"
      "<ETag>\"e1\"</ETag></Contents><NextContinuationToken>t 1/=</NextContinuationToken>"
      "</ListBucketResult>",
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>b</Key><Size>2</Size>"
      "<ETag>\"e2\"</ETag></Contents></ListBucketResult>"};
  auto transport = [&](const PeerRequest& r) -> Result<PeerResponse> {
    sent.push_back(r);
    PeerResponse a;
    a.status = 200;
    a.body = bodies.at(sent.size() - 1);
    return a;
  };
  S3Client s3(S3Endpoint{"http://h:1", "us-east-1", "a", "b"}, transport);
  auto all = s3.listObjects("bkt", 1);
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].key == "a");
  CHECK((*all)[1].etag == "e2");
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].url == "http://h:1/bkt?list-type=2&max-keys=1");
  CHECK(sent[1].url == "http://h:1/bkt?continuation-token=t%201%2F%3D&list-type=2&max-keys=1");
}

TEST_CASE("S3Client reads answers: lists, already-owned, conflicts, no lifecycle, errors") {
  std::vector<PeerRequest> sent;
  std::vector<Result<PeerResponse>> answers;
  auto transport = [&](const PeerRequest& r) -> Result<PeerResponse> {
    sent.push_back(r);
    REQUIRE(!answers.empty());
    auto a = answers.front();
    answers.erase(answers.begin());
    return a;
  };
  auto answer = [](int status, std::string body) {
    PeerResponse r;
    r.status = status;
    r.body = std::move(body);
    return Result<PeerResponse>(r);
  };
  S3Client client({"http://s3:9000", "us-east-1", "AK", "SK-secret"}, transport);

  answers.push_back(answer(200,
                           "<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket>"
                           "</Buckets></ListAllMyBucketsResult>"));
  auto l = client.listBuckets();
  REQUIRE(l);
  CHECK(l->size() == 1);

  answers.push_back(answer(409, "<Error><Code>BucketAlreadyOwnedByYou</Code></Error>"));
  CHECK(client.createBucket("a").ok());
  CHECK(sent.back().url == "http://s3:9000/a");
  CHECK(sent.back().body.empty());  // us-east-1: no CreateBucketConfiguration

  answers.push_back(answer(409, "<Error><Code>BucketAlreadyExists</Code></Error>"));
  auto taken = client.createBucket("a");
  REQUIRE(!taken);
  CHECK(std::string(toString(taken.error().code)) == "conflict");

  answers.push_back(answer(404, "<Error><Code>NoSuchLifecycleConfiguration</Code></Error>"));
  auto none = client.getLifecycle("a");
  REQUIRE(none);
  CHECK(!none->has_value());

  answers.push_back(answer(200, ""));  // some servers: 200 with no body
  auto none2 = client.getLifecycle("a");
  REQUIRE(none2);
  CHECK(!none2->has_value());

  answers.push_back(answer(404, "<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>"));
  auto gone = client.getVersioning("zz");
  REQUIRE(!gone);
  CHECK(std::string(toString(gone.error().code)) == "not_found");
  CHECK(gone.error().message.find("NoSuchBucket") != std::string::npos);
  CHECK(gone.error().message.find("SK-secret") == std::string::npos);

  answers.push_back(answer(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>"));
  auto denied = client.putVersioning("a", true);
  REQUIRE(!denied);
  CHECK(std::string(toString(denied.error().code)) == "peer");
  CHECK(denied.error().httpStatus == 403);

  answers.push_back(answer(404, "<Error><Code>NoSuchLifecycleConfiguration</Code></Error>"));
  CHECK(client.deleteLifecycle("a").ok());

  answers.push_back(Error::make(ErrorCode::unavailable, "GET http://s3:9000/: refused"));
  auto down = client.listBuckets();
  REQUIRE(!down);
  CHECK(std::string(toString(down.error().code)) == "unavailable");
  CHECK(client.requestCount() == 9);
}

TEST_CASE("plan: a missing bucket is created with its settings; an in-sync one is left alone") {
  std::vector<config::BucketSpec> want{bucket("fresh", true, 7), bucket("plain", false, 0)};
  Observed obs;
  auto p = plan(ptrs(want), obs, {}, {"fresh", "plain"});
  REQUIRE(p.changes.size() == 4);
  CHECK(std::string(toString(p.changes[0].action)) == "create");
  CHECK(std::string(toString(p.changes[1].action)) == "enable-versioning");
  CHECK(std::string(toString(p.changes[2].action)) == "put-lifecycle");
  CHECK(p.changes[2].body == lifecycleXml({expiryRuleXml(7)}));
  CHECK(std::string(toString(p.changes[3].action)) == "create");
  CHECK(p.changes[3].bucket == "plain");
  for (const auto& c : p.changes) CHECK(!c.drift);

  Observed synced;
  synced.buckets = {"fresh", "plain"};
  auto rules = parseLifecycle(lifecycleXml({expiryRuleXml(7)})).value();
  synced.states["fresh"] = {"Enabled", rules};
  synced.states["plain"] = {"Suspended", std::nullopt};
  CHECK(plan(ptrs(want), synced, {}, {"fresh", "plain"}).empty());
  synced.states["plain"] = {"", std::nullopt};  // never versioned: fine for false
  CHECK(plan(ptrs(want), synced, {}, {"fresh", "plain"}).empty());
}

TEST_CASE("plan: versioning and expiry drift, spec changes, foreign rules kept") {
  std::vector<config::BucketSpec> want{bucket("b", false, 0)};
  Observed obs;
  obs.buckets = {"b", "stray"};
  auto mixed =
      parseLifecycle(lifecycleXml({expiryRuleXml(3),
                                   "<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter>"
                                   "<Status>Enabled</Status><Expiration><Days>1</Days>"
                                   "</Expiration></Rule>"}))
          .value();
  obs.states["b"] = {"Enabled", mixed};

  // expire_days went to 0, versioning turned off in the spec: not drift.
  auto p = plan(ptrs(want), obs, {{"b", "s3=store;versioning=true;expire_days=3"}}, {"b"});
  REQUIRE(p.changes.size() == 2);
  CHECK(std::string(toString(p.changes[0].action)) == "suspend-versioning");
  CHECK(std::string(toString(p.changes[1].action)) == "put-lifecycle");
  CHECK(p.changes[1].body.find("foundationd-expire") == std::string::npos);
  CHECK(p.changes[1].body.find("<ID>logs</ID>") != std::string::npos);
  CHECK(!p.changes[0].drift);
  REQUIRE(p.orphans.size() == 1);
  CHECK(p.orphans[0] == "stray");

  // The same live state against what had been applied as this very spec: drift.
  auto d = plan(ptrs(want), obs, {{"b", appliedDigest(want[0])}}, {"b"});
  REQUIRE(d.changes.size() == 2);
  CHECK(d.changes[0].drift);
  CHECK(d.changes[1].drift);

  // Only our rule: the configuration is deleted.
  obs.states["b"].lifecycle = parseLifecycle(lifecycleXml({expiryRuleXml(3)})).value();
  auto del = plan(ptrs(want), obs, {}, {"b"});
  CHECK(std::string(toString(del.changes.back().action)) == "delete-lifecycle");

  // Only foreign rules and expire_days = 0: nothing to do with them.
  obs.states["b"].lifecycle = parseLifecycle(lifecycleXml({mixed[1].xml})).value();
  obs.states["b"].versioning = "Suspended";
  CHECK(plan(ptrs(want), obs, {}, {"b"}).empty());

  // expire_days changed 3 -> 10, foreign rule kept alongside ours.
  std::vector<config::BucketSpec> ten{bucket("b", false, 10)};
  obs.states["b"].lifecycle = mixed;
  auto chg = plan(ptrs(ten), obs, {}, {"b"});
  REQUIRE(chg.changes.size() == 1);
  CHECK(chg.changes[0].reason == "expiry: 3 days -> 10 days");
  auto after = parseLifecycle(chg.changes[0].body).value();
  REQUIRE(after.size() == 2);
  CHECK(after[0].id == "logs");
  CHECK(after[1].expirationDays == 10);

  // Our rule disabled by hand: put back.
  auto disabled = parseLifecycle(lifecycleXml({"<Rule><ID>foundationd-expire</ID><Filter>"
                                               "<Prefix></Prefix></Filter><Status>Disabled"
                                               "</Status><Expiration><Days>10</Days>"
                                               "</Expiration></Rule>"}))
                      .value();
  obs.states["b"].lifecycle = disabled;
  auto re = plan(ptrs(ten), obs, {}, {"b"});
  REQUIRE(re.changes.size() == 1);
  CHECK(re.changes[0].reason == "expiry: disabled -> 10 days");

  // A recorded bucket that disappeared: re-created as drift.
  Observed gone;
  auto again = plan(ptrs(ten), gone, {{"b", appliedDigest(ten[0])}}, {"b"});
  CHECK(std::string(toString(again.changes[0].action)) == "create");
  CHECK(again.changes[0].drift);
}

TEST_CASE("apply: changes in order; a failure ends that bucket only") {
  FakeS3 s3;
  std::vector<config::BucketSpec> want{bucket("one", true, 5), bucket("two", true, 0)};
  auto p = plan(ptrs(want), Observed{}, {}, {"one", "two"});
  s3.failNext.insert("put-lifecycle");
  auto r = apply(s3, ptrs(want), p);
  REQUIRE(r.outcomes.size() == 2);
  CHECK(!r.outcomes[0].ok);
  CHECK(r.outcomes[0].message.find("500") != std::string::npos);
  CHECK(r.outcomes[1].ok);
  CHECK(r.outcomes[1].changed);
  CHECK(r.outcomes[1].message == "created; versioning: off -> Enabled");
  CHECK(s3.calls == std::vector<std::string>{"create one", "put-versioning one Enabled",
                                             "put-lifecycle one", "create two",
                                             "put-versioning two Enabled"});
}

TEST_CASE("reconcile: converges, then a no-op costs 1 + 2 x buckets requests") {
  FakeS3 s3;
  s3.buckets["orphan"] = {};
  auto spec = specWith({bucket("a", true, 3), bucket("b", false, 0)});
  Options opt;
  opt.waitReady = std::chrono::milliseconds(0);
  opt.clients = sharedFake(s3);
  auto first = reconcile(spec, {}, opt);
  CHECK(first.report.ok());
  auto* head = find(first.report, config::Kind::s3, "store");
  REQUIRE(head);
  CHECK(head->message.find("not in the spec, kept: orphan") != std::string::npos);
  CHECK(find(first.report, config::Kind::bucket, "a")->changed);
  CHECK(first.applied.size() == 2);
  CHECK(s3.buckets.count("orphan") == 1);

  opt.applied = first.applied;
  auto second = reconcile(spec, {}, opt);
  CHECK(second.report.ok());
  for (const auto& o : second.report.outcomes) CHECK(!o.changed);
  CHECK(second.requests == 1 + 2 * 2);
  REQUIRE(second.servers.size() == 1);
  REQUIRE(second.servers[0].plan);
  CHECK(second.servers[0].plan->orphans == std::vector<std::string>{"orphan"});

  // Versioning turned off by hand: repaired, and counted as drift.
  s3.buckets["a"].versioning = "Suspended";
  auto third = reconcile(spec, {}, opt);
  auto* a = find(third.report, config::Kind::bucket, "a");
  REQUIRE(a);
  CHECK(a->changed);
  CHECK(a->drift);
  CHECK(s3.buckets["a"].versioning == "Enabled");
}

TEST_CASE("reconcile: locked keys and a stopped host are blocked; a server down fails") {
  FakeS3 s3;
  Options opt;
  opt.waitReady = std::chrono::milliseconds(0);
  opt.clients = sharedFake(s3);

  auto locked = reconcile(specWith({bucket("a", true, 0)}, true), {}, opt);
  CHECK(!locked.report.ok());
  CHECK(find(locked.report, config::Kind::s3, "store")->blocked);
  CHECK(find(locked.report, config::Kind::bucket, "a")->blocked);
  CHECK(s3.calls.empty());

  // With the credentials resolvable, the same spec proceeds.
  SecretLookup secrets = [](const config::CredentialRef& ref) -> std::optional<std::string> {
    return ref.field == "accessKey" ? "AK" : "SK";
  };
  CHECK(reconcile(specWith({bucket("a", true, 0)}, true), secrets, opt).report.ok());

  opt.hostProblems["s3"] = "exited (1)";
  auto host = reconcile(specWith({bucket("a", true, 0)}), {}, opt);
  CHECK(find(host.report, config::Kind::bucket, "a")->blocked);
  CHECK(find(host.report, config::Kind::bucket, "a")->message.find("exited (1)") !=
        std::string::npos);
  opt.hostProblems.clear();

  s3.down = true;
  auto calls = s3.calls.size();
  opt.waitReady = std::chrono::milliseconds(120);
  opt.pollInterval = std::chrono::milliseconds(20);
  auto down = reconcile(specWith({bucket("a", true, 0)}), {}, opt);
  auto* o = find(down.report, config::Kind::bucket, "a");
  REQUIRE(o);
  CHECK(!o->ok);
  CHECK(!o->blocked);
  CHECK(o->message.find("connection refused") != std::string::npos);
  CHECK(s3.calls.size() - calls >= 3);  // it kept asking within the wait
}

TEST_CASE("resolveValue and appliedDigest") {
  config::Value v;
  v.segments.push_back(std::string("pre-"));
  v.segments.push_back(config::CredentialRef{"c", "f"});
  CHECK(!resolveValue(v, {}));
  SecretLookup s = [](const config::CredentialRef& r) -> std::optional<std::string> {
    return r.name + "." + r.field;
  };
  CHECK(resolveValue(v, s) == "pre-c.f");
  CHECK(appliedDigest(bucket("x", true, 9)) == "s3=store;versioning=true;expire_days=9");
}

TEST_CASE("a server without lifecycle: expire_days = 0 converges, N > 0 fails and says why") {
  FakeS3 s3;
  s3.noLifecycle = true;
  s3.buckets["keep"] = {};
  s3.buckets["exp"] = {};
  Options opt;
  opt.waitReady = std::chrono::milliseconds(0);
  opt.clients = sharedFake(s3);
  auto r = reconcile(specWith({bucket("keep", true, 0), bucket("exp", true, 4)}), {}, opt);
  auto* keep = find(r.report, config::Kind::bucket, "keep");
  auto* exp = find(r.report, config::Kind::bucket, "exp");
  REQUIRE(keep);
  REQUIRE(exp);
  CHECK(keep->ok);
  CHECK(s3.buckets["keep"].versioning == "Enabled");
  CHECK(!exp->ok);
  CHECK(exp->message.find("does not implement bucket lifecycle") != std::string::npos);
  CHECK(s3.buckets["exp"].versioning == "Enabled");  // what can be kept still is
  CHECK(r.applied.count("keep") == 1);
  CHECK(r.applied.count("exp") == 0);
}
