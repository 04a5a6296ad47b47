// `backup verify`'s pure parts (controllers/backup/verify.hpp and the helpers
// it shares with restore): the comparison of a manifest with what a scratch
// restore holds (row counts, HEAD commits), the scratch names, the image a
// manifest records, and the verification records kept in the state.
#include <doctest/doctest.h>

#include "controllers/backup/backup_internal.hpp"
#include "controllers/backup/forge_section.hpp"
#include "controllers/backup/vault_section.hpp"
#include "controllers/backup/verify.hpp"
#include "temp_dir.hpp"

using namespace foundationd;
using namespace foundationd::backup;

TEST_CASE("row counts: equal, different, missing, and tables beyond the manifest") {
  const std::map<std::string, std::int64_t> manifest{{"public.items", 500}, {"public.notes", 7}};
  CHECK(internal::rowCountDiff(manifest, manifest, true).empty());
  auto fewer = manifest;
  fewer["public.items"] = 499;
  CHECK(internal::rowCountDiff(manifest, fewer, true) ==
        "public.items 499 rows, 500 in the manifest");
  auto missing = manifest;
  missing.erase("public.notes");
  CHECK(internal::rowCountDiff(manifest, missing, true) ==
        "public.notes missing, 7 in the manifest");
  auto extra = manifest;
  extra["public.more"] = 3;
  // The restore into a live database keeps the tables it does not know: not a difference there.
  CHECK(internal::rowCountDiff(manifest, extra, false).empty());
  CHECK(internal::rowCountDiff(manifest, extra, true) == "public.more 3 rows, not in the manifest");
}

TEST_CASE("HEAD commits: equal, moved, missing") {
  const std::string a(40, 'a'), b(40, 'b');
  const std::map<std::string, std::string> manifest{{"o/one", a}, {"o/empty", ""}};
  const std::vector<std::string> names{"o/empty", "o/one"};
  CHECK(headDiff(manifest, manifest, names).empty());
  std::map<std::string, std::string> moved{{"o/one", b}, {"o/empty", ""}};
  CHECK(headDiff(manifest, moved, names) == "o/one HEAD " + b + ", " + a + " in the manifest");
  std::map<std::string, std::string> gone{{"o/one", a}};
  CHECK(headDiff(manifest, gone, names) == "o/empty HEAD (missing), (empty) in the manifest");
}

TEST_CASE("scratch names carry the backup id and 16 random bits") {
  CHECK(scratchPrefix("20261203T120000Z-a1b2", 0x00ff) == "fd-verify-20261203T120000Z-a1b2-00ff");
  CHECK(scratchPrefix("x", 0xbeef) == "fd-verify-x-beef");
}

TEST_CASE("the image a manifest records for a container") {
  Manifest m;
  m.images["p-pg"] = "postgres:15 (sha256:0123abcd)";
  m.images["p-odd"] = "busybox:1";
  m.images["p-noid"] = "forge:1 (unknown)";
  CHECK(manifestImage(m, "p-pg") == std::optional<std::string>("sha256:0123abcd"));
  CHECK(manifestImage(m, "p-odd") == std::optional<std::string>("busybox:1"));
  CHECK(manifestImage(m, "p-noid") == std::optional<std::string>("forge:1"));
  CHECK_FALSE(manifestImage(m, "p-none"));
}

TEST_CASE("the vault section's canary in the manifest: round trip, absent, incomplete refused") {
  Manifest m;
  m.id = "20261204T010000Z-00aa";
  m.createdAt = "2026-12-04T01:00:00Z";
  Section v;
  v.name = "vault";
  v.kind = "vault-snapshot";
  v.path = "/vault/raft.snap";
  v.snapshot = "abcd1234";
  v.bytes = 4096;
  v.sha256 = std::string(64, 'b');
  v.counts["secrets"] = 2;
  v.canaryMount = "foundation";
  v.canaryPath = kVaultCanaryPath;
  v.canarySha256 = std::string(64, 'c');
  m.sections.push_back(v);
  const std::string text = toJson(m);
  auto back = parseManifest(text);
  REQUIRE(back.ok());
  REQUIRE(back->sections.size() == 1);
  CHECK(back->sections[0].canaryMount == "foundation");
  CHECK(back->sections[0].canaryPath == "foundationd/backup-canary");
  CHECK(back->sections[0].canarySha256 == std::string(64, 'c'));
  CHECK(back->sections[0].counts.at("secrets") == 2);

  // A backup taken before canaries: no "canary" object, empty fields.
  m.sections[0].canaryMount.clear();
  m.sections[0].canaryPath.clear();
  m.sections[0].canarySha256.clear();
  const std::string old = toJson(m);
  CHECK(old.find("canary") == std::string::npos);
  auto none = parseManifest(old);
  REQUIRE(none.ok());
  CHECK(none->sections[0].canaryPath.empty());
  CHECK(none->sections[0].canarySha256.empty());

  // A canary without its digest is refused, by section.
  std::string bad = text;
  bad.replace(bad.find(std::string(64, 'c')), 64, "cc");
  auto refused = parseManifest(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("section vault has a canary without") != std::string::npos);
}

TEST_CASE("the canary's digest: SHA-256 of its fields as one JSON object, keys in order") {
  const std::map<std::string, std::string> value{{"nonce", "0123456789abcdef0123456789abcdef"},
                                                 {"backup", "20261204T010000Z-00aa"}};
  // sha256('{"backup":"20261204T010000Z-00aa","nonce":"0123456789abcdef0123456789abcdef"}')
  CHECK(vaultCanaryDigest(value) ==
        "83e0f59324edb813ad93ee4b8221fe2b308433172c840601390f5f263d29d13a");
  auto other = value;
  other["nonce"] = "0123456789abcdef0123456789abcdee";
  CHECK(vaultCanaryDigest(other) != vaultCanaryDigest(value));
  other = value;
  other["extra"] = "";
  CHECK(vaultCanaryDigest(other) != vaultCanaryDigest(value));
}

TEST_CASE("the scratch OpenBao's configuration: raft storage at the path given, plain HTTP") {
  const std::string c = scratchVaultConfig("/fd-verify/data");
  CHECK(c.find("storage \"raft\" {\n  path = \"/fd-verify/data\"\n") != std::string::npos);
  CHECK(c.find("address = \"0.0.0.0:8200\"") != std::string::npos);
  CHECK(c.find("tls_disable = true") != std::string::npos);
}

namespace {
std::string field(const std::string& tar, std::size_t at, std::size_t len) {
  const std::string f = tar.substr(at, len);
  return f.substr(0, f.find('\0'));
}
}  // namespace

TEST_CASE("tarArchive: ustar headers, checksums, contents padded, two zero blocks at the end") {
  std::vector<TarEntry> entries;
  entries.push_back({"fd-verify/", "", 0755});
  entries.push_back({"fd-verify/openbao.hcl", "ui = false\n", 0644});
  const std::string tar = tarArchive(entries);
  // dir header, file header, one content block, two end blocks.
  REQUIRE(tar.size() == 5 * 512);
  CHECK(field(tar, 0, 100) == "fd-verify/");
  CHECK(tar[156] == '5');
  CHECK(field(tar, 100, 8) == "0000755");
  CHECK(field(tar, 512, 100) == "fd-verify/openbao.hcl");
  CHECK(tar[512 + 156] == '0');
  CHECK(field(tar, 512 + 100, 8) == "0000644");
  CHECK(field(tar, 512 + 124, 12) == "00000000013");  // 11 bytes, octal
  CHECK(field(tar, 512 + 257, 6) == "ustar");
  CHECK(field(tar, 512 + 108, 8) == "0000000");     // uid 0
  CHECK(tar.substr(1024, 11) == "ui = false\n");
  CHECK(tar.substr(1024 + 11, 512 - 11) == std::string(512 - 11, '\0'));
  CHECK(tar.substr(1536) == std::string(1024, '\0'));
  // Each header's checksum: the sum of its bytes with the checksum field as spaces.
  for (std::size_t at : {std::size_t{0}, std::size_t{512}}) {
    std::string h = tar.substr(at, 512);
    const unsigned recorded = static_cast<unsigned>(std::stoul(field(h, 148, 7), nullptr, 8));
    std::fill(h.begin() + 148, h.begin() + 156, ' ');
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    CHECK(recorded == sum);
  }
}

TEST_CASE("picking the backup to verify: newest complete, a named one, an incomplete one refused") {
  std::vector<BackupEntry> list(3);
  list[0].id = "a";
  list[0].complete = true;
  list[1].id = "b";
  list[1].complete = true;
  list[2].id = "c";  // interrupted: no manifest
  auto newest = internal::pickBackup(list, "", "/repo");
  REQUIRE(newest.ok());
  CHECK((*newest)->id == "b");
  auto named = internal::pickBackup(list, "a", "/repo");
  REQUIRE(named.ok());
  CHECK((*named)->id == "a");
  auto incomplete = internal::pickBackup(list, "c", "/repo");
  REQUIRE_FALSE(incomplete.ok());
  CHECK(std::string(toString(incomplete.error().code)) == "conflict");
  CHECK(incomplete.error().message.find("incomplete") != std::string::npos);
  auto unknown = internal::pickBackup(list, "zz", "/repo");
  REQUIRE_FALSE(unknown.ok());
  CHECK(std::string(toString(unknown.error().code)) == "not_found");
  auto none = internal::pickBackup({}, "", "/repo");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message == "no complete backup in /repo");
}

TEST_CASE("verification records: round trip, per backup, last and last successful") {
  VerifyRecord r;
  r.id = "20261203T120000Z-a1b2";
  r.startedUnixMs = 1000;
  r.finishedUnixMs = 2000;
  r.ok = false;
  r.reason = "mismatch";
  r.error = "postgres/main: public.items 499 rows, 500 in the manifest";
  r.checks = {{"sections", true, "", "5 sections"}, {"postgres/main", false, "mismatch", "x"}};
  r.notChecked = {"vault: not restored"};
  r.by = "cli";
  auto back = parseVerifyRecord(toJson(r));
  REQUIRE(back.ok());
  CHECK(back->id == r.id);
  CHECK(back->finishedUnixMs == 2000);
  CHECK_FALSE(back->ok);
  CHECK(back->reason == "mismatch");
  REQUIRE(back->checks.size() == 2);
  CHECK(back->checks[1].section == "postgres/main");
  CHECK_FALSE(back->checks[1].ok);
  CHECK(back->notChecked == r.notChecked);
  CHECK_FALSE(parseVerifyRecord("[]").ok());

  CHECK(verifiedColumn(std::nullopt) == "never");
  CHECK(verifiedColumn(r) == "failed: mismatch");

  test::TempDir dir("backup-verify");
  auto store = state::Store::openDir(dir.path);
  REQUIRE(store.ok());
  auto none = readVerify(**store, r.id);
  REQUIRE(none.ok());
  CHECK_FALSE(*none);
  REQUIRE(recordVerify(**store, r).ok());
  VerifyRecord good = r;
  good.id = "20261204T120000Z-c3d4";
  good.ok = true;
  good.reason.clear();
  good.error.clear();
  good.finishedUnixMs = 3000;
  REQUIRE(recordVerify(**store, good).ok());
  auto first = readVerify(**store, r.id);
  REQUIRE(first.ok());
  REQUIRE(*first);
  CHECK(verifiedColumn(*first) == "failed: mismatch");
  auto second = readVerify(**store, good.id);
  REQUIRE(second.ok());
  CHECK(verifiedColumn(*second) == "verified");
  auto h = readVerifyHistory(**store);
  REQUIRE(h.ok());
  REQUIRE(h->last);
  REQUIRE(h->lastOk);
  CHECK(h->last->id == good.id);
  CHECK(h->lastOk->finishedUnixMs == 3000);
  // A later failure is the last one; the last success stays.
  r.finishedUnixMs = 4000;
  REQUIRE(recordVerify(**store, r).ok());
  h = readVerifyHistory(**store);
  REQUIRE(h.ok());
  CHECK(h->last->id == r.id);
  CHECK(h->lastOk->id == good.id);
}

TEST_CASE("the daemon's verify schedule: after a complete backup, every period, sooner after a failure") {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  const auto h = [](int n) { return static_cast<std::int64_t>(n) * 3600 * 1000; };
  RunHistory backups;
  VerifyHistory verifies;
  const std::optional<milliseconds> week = hours(24 * 7);
  // Nothing complete yet: nothing to verify; "off": never.
  CHECK_FALSE(verifyDueUnixMs(backups, verifies, week).has_value());
  RunRecord done;
  done.id = "b1";
  done.ok = true;
  done.finishedUnixMs = h(10);
  backups.lastComplete = done;
  CHECK_FALSE(verifyDueUnixMs(backups, verifies, std::nullopt).has_value());
  // Never verified: due as soon as the backup is complete.
  CHECK(verifyDueUnixMs(backups, verifies, week) == std::optional<std::int64_t>(h(10)));
  // Verified: a week after that verify finished (a newer backup does not
  // make it due sooner).
  VerifyRecord v;
  v.id = "b1";
  v.ok = true;
  v.finishedUnixMs = h(11);
  verifies.last = v;
  verifies.lastOk = v;
  backups.lastComplete->finishedUnixMs = h(20);
  CHECK(verifyDueUnixMs(backups, verifies, week) == std::optional<std::int64_t>(h(11 + 24 * 7)));
  // Failed: an hour after it (or the period, when shorter).
  v.ok = false;
  v.reason = "mismatch";
  verifies.last = v;
  CHECK(verifyDueUnixMs(backups, verifies, week) == std::optional<std::int64_t>(h(12)));
  CHECK(verifyDueUnixMs(backups, verifies, milliseconds(60000)) ==
        std::optional<std::int64_t>(h(11) + 60000));
}

TEST_CASE("a verify that chose no backup is not recorded") {
  VerifyRecord r;
  CHECK_FALSE(wasChosen(r));
  r.id = "b1";
  r.checks = {{"backup", false, "setup", "b1 is incomplete"}};
  CHECK_FALSE(wasChosen(r));
  r.checks.push_back({"sections", true, "", "3 sections"});
  CHECK(wasChosen(r));
}
