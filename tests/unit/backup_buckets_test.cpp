// The bucket sections' pure parts (controllers/backup/bucket_section.hpp):
// which buckets a backup protects, the inventory file, the comparison after
// a restore, and the manifest's inventory round trip. The S3 and restic
// parts run against real servers in tests/e2e/test_backup_buckets.py.
#include <doctest/doctest.h>

#include "controllers/backup/bucket_section.hpp"
#include "controllers/backup/manifest.hpp"
#include "spec_fixture.hpp"

using namespace foundationd;
using namespace foundationd::backup;

namespace {

const char* kSpec =
    "spec_version = 1\nproject = \"demo\"\n"
    "[containers.s3]\nimage = \"s3:1\"\n"
    "[credentials.k.fields]\nsecret = \"s3cr3t\"\n"
    "[s3.main]\ncontainer = \"s3\"\nendpoint = \"http://127.0.0.1:8333/\"\n"
    "access_key = \"admin\"\nsecret_key = \"${credentials.k.secret}\"\n"
    "[buckets.assets]\ns3 = \"main\"\n"
    "[buckets.cache]\ns3 = \"main\"\n"
    "[buckets.restic]\ns3 = \"main\"\n"
    "[buckets.uploads]\ns3 = \"main\"\n"
    "[backup]\ndisposable = [\"cache\"]\n"
    "[backup.local]\nbucket = \"restic\"\n";

}  // namespace

TEST_CASE("protected buckets: all but the disposable ones and the backup's own") {
  const auto spec = testing::specFrom(kSpec);
  CHECK(protectedBuckets(spec) == std::vector<std::string>{"assets", "uploads"});
  CHECK(bucketSection("assets") == "buckets/assets");
  CHECK(sectionSelected("buckets/assets", "buckets"));
  CHECK_FALSE(sectionSelected("buckets/assets2", "buckets/assets"));
}

TEST_CASE("an unknown name in disposable names buckets too") {
  const auto loaded = config::loadSpecText(
      std::string(kSpec).replace(std::string(kSpec).find("[\"cache\"]"), 9, "[\"cahce\"]"),
      "test.toml", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
  CHECK_FALSE(loaded.spec.has_value());
  CHECK(loaded.diagnostics.formatAll().find("unknown container, volume or bucket \"cahce\"") !=
        std::string::npos);
}

TEST_CASE("object files: the SHA-256 of the key, whatever the key") {
  CHECK(objectFile("") == "objects/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(objectFile("abc") == "objects/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // "a" and "a/b" both exist in S3; as files they could not.
  CHECK(objectFile("a") != objectFile("a/b"));
  CHECK(objectFile("../../etc/passwd").find("..") == std::string::npos);
}

TEST_CASE("the inventory file round-trips; tampering and non-UTF-8 keys are refused") {
  std::vector<InventoryEntry> entries{
      {"a b/\xC3\xA9.bin", 3, "9a0364b9e99bb480dd25e1f0284c8555", std::string(64, 'a'),
       objectFile("a b/\xC3\xA9.bin")},
      {"empty", 0, "d41d8cd98f00b204e9800998ecf8427e", std::string(64, 'b'), objectFile("empty")}};
  auto text = inventoryJson("assets", entries);
  REQUIRE(text);
  auto back = parseInventory(*text);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[0].key == entries[0].key);
  CHECK((*back)[0].size == 3);
  CHECK((*back)[0].etag == entries[0].etag);
  CHECK((*back)[1].sha256 == entries[1].sha256);

  // A file name that is not its key's: refused (never a path from the snapshot).
  std::string moved = *text;
  const auto at = moved.find(objectFile("empty"));
  REQUIRE(at != std::string::npos);
  moved.replace(at, objectFile("empty").size(), "objects/../../x");
  CHECK_FALSE(parseInventory(moved));
  CHECK_FALSE(parseInventory("[]"));
  CHECK_FALSE(parseInventory("{\"format\":2,\"objects\":[]}"));

  std::vector<InventoryEntry> bad{{"\xFF\xFE", 1, "", "", objectFile("\xFF\xFE")}};
  auto refused = inventoryJson("assets", bad);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("not UTF-8") != std::string::npos);
}

TEST_CASE("compareInventory: the manifest's keys, sizes and single-part ETags") {
  const std::vector<BucketObject> manifest{
      {"a", 3, "900150983cd24fb0d6963f7d28e17f72"},
      {"big", 20971520, "0123456789abcdef0123456789abcdef-4"},
      {"dir/b", 0, "d41d8cd98f00b204e9800998ecf8427e"}};
  std::vector<buckets::ObjectInfo> live{
      {"a", 3, "900150983cd24fb0d6963f7d28e17f72"},
      {"big", 20971520, "fedcba9876543210fedcba9876543210"},  // re-uploaded in one part
      {"dir/b", 0, "d41d8cd98f00b204e9800998ecf8427e"},
      {"extra", 5, "x"}};  // not in the backup: allowed (a --force restore keeps it)
  CHECK(compareInventory(manifest, live) == "");

  live[0].size = 4;
  live[2].etag = "ffffffffffffffffffffffffffffffff";
  live.pop_back();
  auto diff = compareInventory(manifest, live);
  CHECK(diff.find("\"a\" has 4 bytes, 3 in the manifest") != std::string::npos);
  CHECK(diff.find("\"dir/b\" has the ETag ffffffffffffffffffffffffffffffff") != std::string::npos);
  live.erase(live.begin() + 1);
  CHECK(compareInventory(manifest, live).find("\"big\" is missing") != std::string::npos);

  std::vector<BucketObject> many;
  for (int i = 0; i < 15; ++i) many.push_back({"k" + std::to_string(i), 1, ""});
  CHECK(compareInventory(many, {}).find("and 5 more") != std::string::npos);
}

TEST_CASE("a manifest's bucket inventory round-trips") {
  Manifest m;
  m.id = "20261203T120000Z-a1b2";
  m.createdAt = "2026-12-03T12:00:00Z";
  Section s;
  s.name = "buckets/assets";
  s.kind = kBucketKind;
  s.path = kBucketInventoryPath;
  s.snapshot = "abcd1234";
  s.sha256 = std::string(64, 'c');
  s.bucket = "assets";
  s.s3 = "main";
  s.objects = {{"x/y z", 7, "e1"}, {"\xC3\xA9", 0, "e2"}};
  s.bytes = 7;
  s.counts["objects"] = 2;
  m.sections.push_back(s);
  auto back = parseManifest(toJson(m));
  REQUIRE(back);
  const Section* b = back->find("buckets/assets");
  REQUIRE(b != nullptr);
  CHECK(b->bucket == "assets");
  CHECK(b->s3 == "main");
  REQUIRE(b->objects.size() == 2);
  CHECK(b->objects[0].key == "x/y z");
  CHECK(b->objects[0].size == 7);
  CHECK(b->objects[1].etag == "e2");
  CHECK(b->counts.at("objects") == 2);
  CHECK(b->bytes == 7);
}
