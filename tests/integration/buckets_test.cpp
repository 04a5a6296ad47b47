// The bucket controller against real S3 servers, each in a container this
// test starts (on a free loopback port Docker picks) and removes:
//  - SeaweedFS (FOUNDATIOND_S3_IMAGE, tests/peers/seaweedfs-image): the whole
//    surface — create, versioning, expiry lifecycle, orphans, drift;
//  - versitygw (FOUNDATIOND_S3_IMAGE_VERSITYGW, tests/peers/versitygw-image):
//    create, versioning and drift; it answers NotImplemented to lifecycle,
//    which the controller must report rather than hide.
// What the servers hold afterwards is read back with plain S3 calls.
#include "controllers/buckets/buckets.hpp"
#include "controllers/buckets/s3_client.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <doctest/doctest.h>
#include <unistd.h>

using namespace foundationd;
using namespace foundationd::buckets;
using namespace std::chrono_literals;

namespace {

const std::string kAccess = "fdtestadmin";
const std::string kSecret = "fdtest-secret-0123456789";

std::string requiredImage(const std::string& var, const std::string& recipe) {
  const char* image = std::getenv(var.c_str());
  if (image != nullptr && *image != '\0') return image;
  const char* skip = std::getenv("FOUNDATIOND_SKIP_INTEGRATION");
  const char* ci = std::getenv("CI");
  const bool inCi = ci != nullptr && std::string_view(ci) == "true";
  if (!inCi && skip != nullptr && std::string_view(skip) == "1") return {};
  FAIL(var << " is not set: build it with " << recipe << " (or run scripts/test) and export " << var
           << "=<image>");
  return {};
}

std::string run(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) return out;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p.get()) != nullptr) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// One S3 server container; removed with its data on destruction.
struct Peer {
  std::string name;
  std::string endpoint;
  explicit Peer(const std::string& image, const std::string& tag) {
    name = "fdtest-buckets-it-" + tag + "-" + std::to_string(::getpid());
    (void)run("docker rm -f -v " + name + " >/dev/null 2>&1");
    // Credentials through the environment of `docker run` (this test's own
    // throwaway keys); both servers' variable names are given.
    std::string cmd = "AWS_ACCESS_KEY_ID=" + kAccess + " AWS_SECRET_ACCESS_KEY=" + kSecret +
                      " ROOT_ACCESS_KEY_ID=" + kAccess + " ROOT_SECRET_ACCESS_KEY=" + kSecret +
                      " docker run -d --name " + name +
                      " --label foundationd.test=buckets -p 127.0.0.1::9000"
                      " -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY"
                      " -e ROOT_ACCESS_KEY_ID -e ROOT_SECRET_ACCESS_KEY " +
                      image + " 2>&1";
    std::string id = run(cmd);
    REQUIRE_MESSAGE(id.size() >= 12, "docker run failed: " << id);
    std::string port = run("docker port " + name + " 9000/tcp");
    auto colon = port.rfind(':');
    REQUIRE_MESSAGE(colon != std::string::npos, "no published port: " << port);
    endpoint = "http://127.0.0.1:" + port.substr(colon + 1, port.find('\n') - colon - 1);
  }
  ~Peer() { (void)run("docker rm -f -v " + name + " >/dev/null 2>&1"); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
};

config::BucketSpec bucket(const std::string& name, bool versioning, int days) {
  config::BucketSpec b;
  b.name = name;
  b.s3 = "store";
  b.versioning = versioning;
  b.expireDays = days;
  return b;
}

config::Spec specFor(const Peer& peer, std::vector<config::BucketSpec> list) {
  config::Spec spec;
  config::S3Spec s3;
  s3.name = "store";
  s3.container = peer.name;
  s3.endpoint = peer.endpoint;
  s3.accessKey.segments.push_back(config::CredentialRef{"s3-root", "accessKey"});
  s3.secretKey.segments.push_back(config::CredentialRef{"s3-root", "secretKey"});
  spec.s3["store"] = s3;
  for (auto& b : list) spec.buckets[b.name] = b;
  return spec;
}

SecretLookup secretsWith(const std::string& secret) {
  return [secret](const config::CredentialRef& ref) -> std::optional<std::string> {
    if (ref.name != "s3-root") return std::nullopt;
    return ref.field == "accessKey" ? kAccess : secret;
  };
}

const StepOutcome& outcome(const Outcome& out, config::Kind kind, const std::string& name) {
  for (const auto& o : out.report.outcomes) {
    if (o.key.kind == kind && o.key.name == name) return o;
  }
  FAIL("no outcome for " << name);
  return out.report.outcomes.front();
}

std::string messages(const Outcome& out) {
  std::string s;
  for (const auto& o : out.report.outcomes) s += o.key.str() + ": " + o.message + "\n";
  return s;
}

// Plain S3 calls to look at (and tamper with) what the server holds.
S3Client direct(const Peer& peer) {
  return S3Client(S3Endpoint{peer.endpoint, "us-east-1", kAccess, kSecret});
}

std::optional<int> ourExpiryDays(S3Client& s3, const std::string& b) {
  auto lc = s3.getLifecycle(b);
  REQUIRE_MESSAGE(lc, lc.error().message);
  if (!lc->has_value()) return std::nullopt;
  for (const auto& r : **lc) {
    if (r.id == kExpiryRuleId) return r.expirationDays;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("buckets on SeaweedFS: create, no-op, drift, spec changes, lifecycle, orphans") {
  std::string image = requiredImage("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image");
  if (image.empty()) return;
  Peer peer(image, "seaweedfs");
  auto secrets = secretsWith(kSecret);
  Options opt;
  opt.waitReady = 90s;  // the container was just started: the first reconcile waits for it
  opt.pollInterval = 250ms;

  std::vector<config::BucketSpec> list{bucket("fd-backups", true, 7), bucket("fd-lfs", false, 0)};
  auto first = reconcile(specFor(peer, list), secrets, opt);
  INFO(messages(first));
  REQUIRE(first.report.ok());
  CHECK(outcome(first, config::Kind::bucket, "fd-backups").changed);
  CHECK(outcome(first, config::Kind::bucket, "fd-lfs").changed);

  auto s3 = direct(peer);
  auto names = s3.listBuckets();
  REQUIRE(names);
  CHECK(std::count(names->begin(), names->end(), "fd-backups") == 1);
  CHECK(std::count(names->begin(), names->end(), "fd-lfs") == 1);
  CHECK(s3.getVersioning("fd-backups").value() == "Enabled");
  CHECK(s3.getVersioning("fd-lfs").value() != "Enabled");
  CHECK(ourExpiryDays(s3, "fd-backups") == 7);
  CHECK(ourExpiryDays(s3, "fd-lfs") == std::nullopt);

  opt.applied = first.applied;
  opt.waitReady = 10s;

  SUBCASE("a second run changes nothing and makes 1 + 2 x buckets requests") {
    auto again = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(again));
    CHECK(again.report.ok());
    for (const auto& o : again.report.outcomes) CHECK_MESSAGE(!o.changed, o.key.str());
    CHECK(again.requests == 5);
    REQUIRE(again.servers.size() == 1);
    REQUIRE(again.servers[0].plan);
    CHECK(again.servers[0].plan->empty());
  }

  SUBCASE("versioning turned off by hand is drift, repaired") {
    REQUIRE(s3.putVersioning("fd-backups", false).ok());
    REQUIRE(s3.getVersioning("fd-backups").value() == "Suspended");
    auto fixed = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(fixed));
    const auto& o = outcome(fixed, config::Kind::bucket, "fd-backups");
    CHECK(o.ok);
    CHECK(o.changed);
    CHECK(o.drift);
    CHECK(s3.getVersioning("fd-backups").value() == "Enabled");
    CHECK(!outcome(fixed, config::Kind::bucket, "fd-lfs").changed);
  }

  SUBCASE("versioning on in the spec, then off again (suspended: S3 has no 'never')") {
    list[1].versioning = true;
    auto on = reconcile(specFor(peer, list), secrets, opt);
    CHECK(outcome(on, config::Kind::bucket, "fd-lfs").changed);
    CHECK(!outcome(on, config::Kind::bucket, "fd-lfs").drift);
    CHECK(s3.getVersioning("fd-lfs").value() == "Enabled");
    list[1].versioning = false;
    opt.applied = on.applied;
    auto off = reconcile(specFor(peer, list), secrets, opt);
    CHECK(outcome(off, config::Kind::bucket, "fd-lfs").changed);
    CHECK(s3.getVersioning("fd-lfs").value() == "Suspended");
  }

  SUBCASE("expiry changed, removed by hand (drift), then set to 0 in the spec") {
    list[0].expireDays = 30;
    auto changed = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(changed));
    CHECK(outcome(changed, config::Kind::bucket, "fd-backups").changed);
    CHECK(ourExpiryDays(s3, "fd-backups") == 30);

    opt.applied = changed.applied;
    REQUIRE(s3.deleteLifecycle("fd-backups").ok());
    auto repaired = reconcile(specFor(peer, list), secrets, opt);
    CHECK(outcome(repaired, config::Kind::bucket, "fd-backups").drift);
    CHECK(ourExpiryDays(s3, "fd-backups") == 30);

    list[0].expireDays = 0;
    auto removed = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(removed));
    CHECK(outcome(removed, config::Kind::bucket, "fd-backups").changed);
    auto lc = s3.getLifecycle("fd-backups");
    REQUIRE(lc);
    CHECK(!lc->has_value());
    // The bucket itself is still there, versioned.
    CHECK(s3.getVersioning("fd-backups").value() == "Enabled");
  }

  SUBCASE("a lifecycle rule of someone else's is kept when expiry goes to 0") {
    std::string foreign =
        "<Rule><ID>logs-cleanup</ID><Filter><Prefix>logs/</Prefix></Filter>"
        "<Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>";
    REQUIRE(s3.putLifecycle("fd-backups", lifecycleXml({foreign, expiryRuleXml(7)})).ok());
    list[0].expireDays = 0;
    auto out = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(out));
    CHECK(outcome(out, config::Kind::bucket, "fd-backups").changed);
    auto lc = s3.getLifecycle("fd-backups");
    REQUIRE(lc);
    REQUIRE(lc->has_value());
    REQUIRE((*lc)->size() == 1);
    CHECK((**lc)[0].id == "logs-cleanup");
  }

  SUBCASE("a bucket not in the spec is reported and left alone") {
    REQUIRE(s3.createBucket("fd-orphan").ok());
    auto out = reconcile(specFor(peer, list), secrets, opt);
    INFO(messages(out));
    CHECK(out.report.ok());
    CHECK(outcome(out, config::Kind::s3, "store").message.find("kept: fd-orphan") !=
          std::string::npos);
    REQUIRE(out.servers[0].plan);
    CHECK(out.servers[0].plan->orphans == std::vector<std::string>{"fd-orphan"});
    auto after = s3.listBuckets();
    REQUIRE(after);
    CHECK(std::count(after->begin(), after->end(), "fd-orphan") == 1);
  }

  SUBCASE("a bucket deleted by hand is created again as drift") {
    auto fresh = bucket("fd-gone", true, 0);
    list.push_back(fresh);
    auto made = reconcile(specFor(peer, list), secrets, opt);
    REQUIRE(made.report.ok());
    opt.applied = made.applied;
    // DeleteBucket by hand (the controller never does): a plain request.
    auto del = transport::peerRequest(buildRequest(
        S3Endpoint{peer.endpoint, "us-east-1", kAccess, kSecret}, "DELETE", "fd-gone", "", ""));
    REQUIRE(del);
    REQUIRE_MESSAGE(del->ok(), del->body);
    auto again = reconcile(specFor(peer, list), secrets, opt);
    const auto& o = outcome(again, config::Kind::bucket, "fd-gone");
    CHECK(o.changed);
    CHECK(o.drift);
    CHECK(s3.getVersioning("fd-gone").value() == "Enabled");
  }

  SUBCASE("a wrong secret fails with the server's reason and never shows the secret") {
    const std::string wrong = "not-the-secret-987654321";
    auto out = reconcile(specFor(peer, list), secretsWith(wrong), opt);
    CHECK(!out.report.ok());
    const auto& o = outcome(out, config::Kind::s3, "store");
    CHECK(!o.ok);
    CHECK(o.message.find("403") != std::string::npos);
    CHECK(o.message.find(wrong) == std::string::npos);
    CHECK(o.message.find(kSecret) == std::string::npos);
  }

  SUBCASE("dry run observes and plans without changing anything") {
    list[0].versioning = false;
    opt.dryRun = true;
    auto out = reconcile(specFor(peer, list), secrets, opt);
    REQUIRE(out.servers[0].plan);
    REQUIRE(out.servers[0].plan->changes.size() == 1);
    CHECK(std::string(toString(out.servers[0].plan->changes[0].action)) == "suspend-versioning");
    CHECK(s3.getVersioning("fd-backups").value() == "Enabled");
  }
}

TEST_CASE("buckets: an endpoint that never answers fails within the wait, as unavailable") {
  config::Spec spec;
  config::S3Spec s3;
  s3.name = "store";
  s3.container = "none";
  s3.endpoint = "http://127.0.0.1:9";  // discard: nothing listens
  s3.accessKey = config::Value::literal("a");
  s3.secretKey = config::Value::literal("b");
  spec.s3["store"] = s3;
  spec.buckets["x-bucket"] = bucket("x-bucket", true, 0);
  Options opt;
  opt.waitReady = 1s;
  opt.pollInterval = 200ms;
  auto started = std::chrono::steady_clock::now();
  auto out = reconcile(spec, {}, opt);
  CHECK(std::chrono::steady_clock::now() - started < 30s);  // bounded, not a timing check
  CHECK(!out.report.ok());
  CHECK(out.requests >= 2);  // it asked again within the wait
  CHECK(out.report.outcomes[0].message.find("127.0.0.1:9") != std::string::npos);
}

TEST_CASE("buckets on versitygw: create, versioning drift; lifecycle NotImplemented is reported") {
  std::string image =
      requiredImage("FOUNDATIOND_S3_IMAGE_VERSITYGW", "tests/peers/versitygw-image");
  if (image.empty()) return;
  Peer peer(image, "versitygw");
  auto secrets = secretsWith(kSecret);
  Options opt;
  opt.waitReady = 60s;
  opt.pollInterval = 250ms;

  std::vector<config::BucketSpec> list{bucket("fd-packages", true, 0),
                                       bucket("fd-artifacts", false, 0)};
  auto first = reconcile(specFor(peer, list), secrets, opt);
  INFO(messages(first));
  REQUIRE(first.report.ok());
  auto s3 = direct(peer);
  CHECK(s3.getVersioning("fd-packages").value() == "Enabled");
  CHECK(s3.getVersioning("fd-artifacts").value() != "Enabled");

  opt.applied = first.applied;
  auto noop = reconcile(specFor(peer, list), secrets, opt);
  CHECK(noop.report.ok());
  for (const auto& o : noop.report.outcomes) CHECK_MESSAGE(!o.changed, o.key.str());
  CHECK(noop.requests == 5);

  REQUIRE(s3.putVersioning("fd-packages", false).ok());
  auto fixed = reconcile(specFor(peer, list), secrets, opt);
  CHECK(outcome(fixed, config::Kind::bucket, "fd-packages").drift);
  CHECK(s3.getVersioning("fd-packages").value() == "Enabled");

  REQUIRE(s3.createBucket("fd-stray").ok());
  list[1].expireDays = 5;
  auto lc = reconcile(specFor(peer, list), secrets, opt);
  INFO(messages(lc));
  const auto& o = outcome(lc, config::Kind::bucket, "fd-artifacts");
  CHECK(!o.ok);
  CHECK(o.message.find("does not implement bucket lifecycle") != std::string::npos);
  CHECK(outcome(lc, config::Kind::bucket, "fd-packages").ok);
  CHECK(outcome(lc, config::Kind::s3, "store").message.find("kept: fd-stray") != std::string::npos);
}

// ---- objects: what the backup of a bucket uses (docs/dr.md "Buckets") ------

namespace {

// A temporary file holding `content`, read back by putObject.
struct TempFile {
  std::string path;
  int fd = -1;
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/fd-s3obj-XXXXXX";
    fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    path = tmpl;
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

void waitUntilServing(S3Client& s3) {
  for (int i = 0; i < 360; ++i) {
    if (s3.listBuckets()) return;
    std::this_thread::sleep_for(250ms);
  }
  FAIL("the S3 server did not answer within 90 s");
}

std::string put(S3Client& s3, const std::string& bucket, const std::string& key,
                const std::string& content) {
  TempFile f(content);
  auto etag = s3.putObject(bucket, key, f.fd, content.size(), sha256Hex(content));
  REQUIRE_MESSAGE(etag, key << ": " << etag.error().message);
  return *etag;
}

std::string get(S3Client& s3, const std::string& bucket, const std::string& key,
                ObjectInfo* info = nullptr) {
  std::string got;
  std::size_t pieces = 0;
  auto r = s3.getObject(bucket, key, [&](std::string_view piece) -> Status {
    got += piece;
    ++pieces;
    return Status::success();
  });
  REQUIRE_MESSAGE(r, key << ": " << r.error().message);
  CHECK(r->size == got.size());
  if (!got.empty()) CHECK(pieces >= 1);  // an empty object may come with no piece at all
  if (info) *info = *r;
  return got;
}

// Put, list (paginated), get, overwrite, and the refusals, on one server.
void objectRoundTrip(S3Client& s3, const std::string& bucket, bool checksPayloadHash) {
  waitUntilServing(s3);
  REQUIRE(s3.createBucket(bucket).ok());
  CHECK(s3.hasObjects(bucket).value() == false);
  CHECK(s3.listObjects(bucket)->empty());

  // Every byte value, and a body larger than one libcurl buffer (streamed).
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  std::string large;
  for (int i = 0; i < 3 * 1024 * 1024 / 256; ++i) large += binary;
  const std::vector<std::pair<std::string, std::string>> objects{
      {"binary.bin", binary},
      {"nested/deeper/large.bin", large},
      {"a key with spaces.txt", "spaces\n"},
      {"unicod\xC3\xA9/\xE2\x82\xAC uro/\xF0\x9F\x93\xA6.txt", "unicode\n"},
      {"x+y=z&q?#%.txt", "reserved characters\n"},
      {"empty", ""},
  };
  std::map<std::string, std::string> etags;
  for (const auto& [key, content] : objects) etags[key] = put(s3, bucket, key, content);
  // A single-part upload's ETag is the MD5 of its content; "" has a known one.
  CHECK(etags["empty"] == "d41d8cd98f00b204e9800998ecf8427e");

  auto listed = s3.listObjects(bucket, 2);  // 6 objects: 3 pages, 2 continuations
  REQUIRE_MESSAGE(listed, listed.error().message);
  REQUIRE(listed->size() == objects.size());
  std::map<std::string, ObjectInfo> byKey;
  for (const auto& o : *listed) byKey[o.key] = o;
  for (const auto& [key, content] : objects) {
    INFO(key);
    REQUIRE(byKey.count(key) == 1);
    CHECK(byKey[key].size == content.size());
    CHECK(byKey[key].etag == etags[key]);
    ObjectInfo info;
    CHECK(get(s3, bucket, key, &info) == content);
    CHECK(info.etag == etags[key]);
  }
  CHECK(s3.hasObjects(bucket).value() == true);

  // Overwritten: the new content, the new ETag.
  const std::string etag2 = put(s3, bucket, "binary.bin", "changed");
  CHECK(etag2 != etags["binary.bin"]);
  CHECK(get(s3, bucket, "binary.bin") == "changed");

  // A body whose hash is not the signed one is refused, and nothing is stored.
  {
    TempFile f("tampered");
    auto r = s3.putObject(bucket, "tampered", f.fd, 8, sha256Hex("something else"));
    auto again = s3.listObjects(bucket);
    REQUIRE(again);
    bool stored = false;
    for (const auto& o : *again) stored = stored || o.key == "tampered";
    if (checksPayloadHash) {
      CHECK(!r);
      CHECK(!stored);
    } else {
      // SeaweedFS does not check x-amz-content-sha256 against the body: it
      // stores it. A restore still compares every object's SHA-256 with the
      // backup's inventory before and after writing (docs/dr.md "Buckets").
      CHECK(r);
      CHECK(stored);
    }
  }
  // A missing key or bucket: not_found, the sink never called.
  bool called = false;
  auto missing = s3.getObject(bucket, "no/such/key", [&](std::string_view) -> Status {
    called = true;
    return Status::success();
  });
  REQUIRE(!missing);
  CHECK((missing.error().code == ErrorCode::not_found));
  CHECK(!called);
  auto noBucket = s3.listObjects("fd-no-such-bucket");
  REQUIRE(!noBucket);
  CHECK((noBucket.error().code == ErrorCode::not_found));
  // A sink that fails aborts the transfer with its error.
  auto aborted = s3.getObject(bucket, "nested/deeper/large.bin", [](std::string_view) -> Status {
    return Error::make(ErrorCode::io, "disk full");
  });
  REQUIRE(!aborted);
  CHECK(aborted.error().message == "disk full");
}

// More than one page of the server's own default size (1000 keys).
void manyKeys(S3Client& s3, const std::string& bucket) {
  REQUIRE(s3.createBucket(bucket).ok());
  for (int i = 0; i < 1005; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "k/%04d", i);
    put(s3, bucket, key, std::to_string(i));
  }
  auto all = s3.listObjects(bucket);
  REQUIRE_MESSAGE(all, all.error().message);
  REQUIRE(all->size() == 1005);
  CHECK(all->front().key == "k/0000");
  CHECK(all->back().key == "k/1004");
  CHECK(all->back().size == 4);
}

}  // namespace

TEST_CASE("objects on SeaweedFS: put, paginated list, streamed get, encoded keys, >1000 keys") {
  std::string image = requiredImage("FOUNDATIOND_S3_IMAGE", "tests/peers/seaweedfs-image");
  if (image.empty()) return;
  Peer peer(image, "seaweedfs-objects");
  auto s3 = direct(peer);
  objectRoundTrip(s3, "fd-objects", /*checksPayloadHash=*/false);
  manyKeys(s3, "fd-many");
}

TEST_CASE("objects on versitygw: put, paginated list, streamed get, encoded keys, >1000 keys") {
  std::string image =
      requiredImage("FOUNDATIOND_S3_IMAGE_VERSITYGW", "tests/peers/versitygw-image");
  if (image.empty()) return;
  Peer peer(image, "versitygw-objects");
  auto s3 = direct(peer);
  objectRoundTrip(s3, "fd-objects", /*checksPayloadHash=*/true);
  manyKeys(s3, "fd-many");
}
