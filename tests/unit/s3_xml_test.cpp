// The minimal S3 XML reader and writer (controllers/buckets/s3_xml.hpp):
// documents as SeaweedFS, versitygw and AWS write them, and malformed input.
#include "controllers/buckets/s3_xml.hpp"

#include <doctest/doctest.h>

using namespace foundationd::buckets;

TEST_CASE("xmlFind: elements by local name, any prefix, nesting, skipped markup") {
  std::string doc =
      "<?xml version=\"1.0\"?><!-- <Name>no</Name> --><a:Root xmlns:a=\"x\">"
      "<a:Name attr=\"1>2\">one</a:Name><![CDATA[<Name>no</Name>]]>"
      "<Name/><Name>t&amp;wo</Name><Outer><Outer>in</Outer></Outer></a:Root>";
  auto names = xmlFind(doc, "Name");
  REQUIRE(names.size() == 3);
  CHECK(xmlText(names[0].inner) == "one");
  CHECK(names[1].inner.empty());
  CHECK(names[1].outer == "<Name/>");
  CHECK(xmlText(names[2].inner) == "t&wo");
  auto outer = xmlFind(doc, "Outer");
  REQUIRE(outer.size() == 1);  // the nested one is inside the match
  CHECK(outer[0].inner == "<Outer>in</Outer>");
  CHECK(xmlFirstText(doc, "Missing") == std::nullopt);
}

TEST_CASE("xmlText: entities, CDATA, comments, whitespace") {
  CHECK(xmlText("  a&lt;b&gt;c&quot;&apos;&#65;&#x42;  ") == "a<b>c\"'AB");
  CHECK(xmlText("<![CDATA[x<y]]>") == "x<y");
  CHECK(xmlText("a<!-- c -->b") == "ab");
  CHECK(xmlText("&unknown; & &#xZZ; &#0;") == "&unknown; & &#xZZ; &#0;");
  CHECK(xmlText("&#x20AC;") == "\xE2\x82\xAC");
}

TEST_CASE("xmlFind: malformed input never matches past the end") {
  std::vector<std::string> bads{"<Name>open",
                                "<Name",
                                "<Name attr=\">",
                                "<!-- never closed <Name>x</Name>",
                                "<![CDATA[ <Name>x</Name>",
                                "<",
                                "</Name>",
                                "<<<>>>",
                                "<Name></Nam>",
                                std::string("<Name>\0</Name>", 14)};
  for (const auto& bad : bads) {
    auto found = xmlFind(bad, "Name");
    for (const auto& e : found) {
      CHECK(e.outer.data() >= bad.data());
      CHECK(e.outer.data() + e.outer.size() <= bad.data() + bad.size());
    }
  }
  CHECK(xmlFind("<Name>open", "Name").empty());
  CHECK(xmlFind("<Name></Nam>", "Name").empty());
  CHECK(xmlFind(std::string("<Name>\0</Name>", 14), "Name").size() == 1);
}

TEST_CASE("parseListBuckets: SeaweedFS and AWS shapes") {
  auto r = parseListBuckets(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>admin</ID><DisplayName>admin"
      "</DisplayName></Owner><Buckets><Bucket><Name>alpha</Name><CreationDate>2026-11-28T07:33:"
      "35Z</CreationDate></Bucket><Bucket><Name>beta.x</Name></Bucket></Buckets>"
      "</ListAllMyBucketsResult>");
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  CHECK((*r)[0] == "alpha");
  CHECK((*r)[1] == "beta.x");
  auto empty =
      parseListBuckets("<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>");
  REQUIRE(empty);
  CHECK(empty->empty());
  auto none = parseListBuckets("<ListAllMyBucketsResult><Owner/></ListAllMyBucketsResult>");
  REQUIRE(none);
  CHECK(none->empty());
  CHECK(!parseListBuckets("<Error><Code>AccessDenied</Code></Error>"));
  CHECK(
      !parseListBuckets("<ListAllMyBucketsResult><Buckets><Bucket></Bucket></Buckets>"
                        "</ListAllMyBucketsResult>"));
  CHECK(!parseListBuckets(""));
}

TEST_CASE("parseVersioning: never set, Enabled, Suspended, unknown") {
  CHECK(
      parseVersioning("<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                      "</VersioningConfiguration>")
          .value() == "");
  CHECK(parseVersioning("<VersioningConfiguration/>").value() == "");
  CHECK(parseVersioning("<VersioningConfiguration><Status>Enabled</Status>"
                        "</VersioningConfiguration>")
            .value() == "Enabled");
  CHECK(parseVersioning("<VersioningConfiguration><Status> Suspended </Status><MfaDelete>"
                        "Disabled</MfaDelete></VersioningConfiguration>")
            .value() == "Suspended");
  CHECK(!parseVersioning(
      "<VersioningConfiguration><Status>Bogus</Status></VersioningConfiguration>"));
  CHECK(!parseVersioning("<html>gateway</html>"));
}

TEST_CASE("parseLifecycle: our rule, foreign rules, legacy prefix, filters, other actions") {
  std::string doc =
      "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Rule><ID>foundationd-expire</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
      "<Expiration><Days>7</Days></Expiration></Rule>"
      "<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Disabled</Status>"
      "<Expiration><Days>1</Days></Expiration></Rule>"
      "<Rule><ID>legacy</ID><Prefix></Prefix><Status>Enabled</Status>"
      "<Transition><Days>3</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>"
      "<Rule><ID>tagged</ID><Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>"
      "<Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>"
      "<Rule><Status>Enabled</Status><Filter/><Expiration><Days>x</Days></Expiration></Rule>"
      "</LifecycleConfiguration>";
  auto r = parseLifecycle(doc);
  REQUIRE(r);
  REQUIRE(r->size() == 5);
  const auto& ours = (*r)[0];
  CHECK(ours.id == "foundationd-expire");
  CHECK(ours.enabled);
  CHECK(ours.expirationDays == 7);
  CHECK(ours.wholeBucket);
  CHECK(!ours.otherActions);
  CHECK(ours.xml.rfind("<Rule>", 0) == 0);
  CHECK(ours.xml.find("</Rule>") == ours.xml.size() - 7);
  CHECK((*r)[1].id == "logs");
  CHECK(!(*r)[1].enabled);
  CHECK(!(*r)[1].wholeBucket);
  CHECK((*r)[2].wholeBucket);
  CHECK((*r)[2].otherActions);
  CHECK(!(*r)[2].expirationDays);
  CHECK(!(*r)[3].wholeBucket);
  CHECK((*r)[3].otherActions);
  CHECK((*r)[4].id.empty());
  CHECK((*r)[4].wholeBucket);
  CHECK(!(*r)[4].expirationDays);
  CHECK(!parseLifecycle("<Error><Code>NoSuchLifecycleConfiguration</Code></Error>"));
}

TEST_CASE("parseError") {
  auto e = parseError(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The "
      "specified bucket does not exist</Message><Resource>/x</Resource></Error>");
  REQUIRE(e);
  CHECK(e->code == "NoSuchBucket");
  CHECK(e->message == "The specified bucket does not exist");
  CHECK(!parseError("<ListAllMyBucketsResult/>"));
}

TEST_CASE("documents we write read back as what they say") {
  auto v = parseVersioning(versioningXml(true));
  CHECK(v.value() == "Enabled");
  CHECK(parseVersioning(versioningXml(false)).value() == "Suspended");
  auto lc = parseLifecycle(lifecycleXml({expiryRuleXml(30)}));
  REQUIRE(lc);
  REQUIRE(lc->size() == 1);
  CHECK((*lc)[0].id == kExpiryRuleId);
  CHECK((*lc)[0].expirationDays == 30);
  CHECK((*lc)[0].wholeBucket);
  CHECK((*lc)[0].enabled);
  CHECK(createBucketXml("us-east-1").empty());
  CHECK(createBucketXml("").empty());
  CHECK(xmlFirstText(createBucketXml("eu-<x>"), "LocationConstraint") == "eu-<x>");
}

TEST_CASE("parseListObjectsV2: SeaweedFS/AWS shapes, quoted ETags, keys kept as stored") {
  const std::string page1 =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>fd-data</Name><Prefix></Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
      "<IsTruncated>true</IsTruncated>"
      "<Contents><Key>a/b/c.bin</Key><LastModified>2026-12-03T12:00:00.000Z</LastModified>"
      "<ETag>&quot;9a0364b9e99bb480dd25e1f0284c8555&quot;</ETag><Size>7</Size>"
      "<StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents><Key> spaced key &amp; é </Key><ETag>\"0123456789abcdef0123456789abcdef-2\"</ETag>"
      "<Size>10485760</Size><Owner><ID>x</ID></Owner></Contents>"
      "<Contents><Key>IsTruncated</Key><ETag>\"e\"</ETag><Size>0</Size></Contents>"
      "<NextContinuationToken>tok/+=en</NextContinuationToken></ListBucketResult>";
  auto p = parseListObjectsV2(page1);
  REQUIRE(p);
  REQUIRE(p->objects.size() == 3);
  CHECK(p->objects[0].key == "a/b/c.bin");
  CHECK(p->objects[0].size == 7);
  CHECK(p->objects[0].etag == "9a0364b9e99bb480dd25e1f0284c8555");
  CHECK(p->objects[1].key == " spaced key & \xC3\xA9 ");  // not trimmed
  CHECK(p->objects[1].size == 10485760);
  CHECK(p->objects[1].etag == "0123456789abcdef0123456789abcdef-2");
  CHECK(p->objects[2].key == "IsTruncated");
  CHECK(p->truncated);
  CHECK(p->continuationToken == "tok/+=en");

  auto last = parseListObjectsV2(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
      "</ListBucketResult>");
  REQUIRE(last);
  CHECK(last->objects.empty());
  CHECK(!last->truncated);
  // A key named like the truncation flag does not make a page truncated.
  auto keyNamed = parseListObjectsV2(
      "<ListBucketResult><Contents><Key>x</Key><Size>1</Size><IsTruncated>true</IsTruncated>"
      "</Contents><IsTruncated>false</IsTruncated></ListBucketResult>");
  REQUIRE(keyNamed);
  CHECK(!keyNamed->truncated);
}

TEST_CASE("parseListObjectsV2: what it refuses") {
  CHECK(!parseListObjectsV2("<ListAllMyBucketsResult/>"));
  CHECK(!parseListObjectsV2("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"));
  CHECK(!parseListObjectsV2(
      "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"));
  CHECK(!parseListObjectsV2(
      "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>"));
  CHECK(!parseListObjectsV2(
      "<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>"));
  // Truncated, but with no way to go on.
  CHECK(!parseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"));
  CHECK(unquoteEtag(" \"abc\" ") == "abc");
  CHECK(unquoteEtag("abc") == "abc");
  CHECK(unquoteEtag("\"") == "\"");
}
