// The few S3 XML documents the bucket controller reads and writes.
//
// There is no XML library among our dependencies, and S3 answers with small,
// flat documents, so this is a minimal, defensive element extractor rather
// than a parser: it finds elements by local name (any namespace prefix),
// skips the prolog, comments, CDATA and processing instructions, respects
// quoted attribute values, tracks nesting of same-named elements and never
// reads past the input. Malformed input yields "not found", never UB
// (fuzz_s3_xml exercises it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace foundationd::buckets {

struct XmlElement {
  std::string_view inner;  // between the start and end tags ("" when self-closing)
  std::string_view outer;  // the whole element, tags included
};

// Every element whose local name is `name`, outermost first; elements nested
// inside a match are not listed separately. Unterminated elements are dropped.
std::vector<XmlElement> xmlFind(std::string_view doc, std::string_view name);

// The first such element, if any.
std::optional<XmlElement> xmlFirst(std::string_view doc, std::string_view name);

// The character data of an element's content: entities decoded, CDATA
// unwrapped, comments dropped, surrounding whitespace trimmed (unless `trim`
// is false: an object key may begin or end with a space).
std::string xmlText(std::string_view inner, bool trimmed = true);

// xmlText of the first `name` element, or nullopt.
std::optional<std::string> xmlFirstText(std::string_view doc, std::string_view name,
                                        bool trimmed = true);

// Escapes text for element content.
std::string xmlEscape(std::string_view text);

// ---- S3 documents -------------------------------------------------------

// ListAllMyBucketsResult -> bucket names.
Result<std::vector<std::string>> parseListBuckets(std::string_view body);

// VersioningConfiguration -> "Enabled", "Suspended", or "" (never enabled).
Result<std::string> parseVersioning(std::string_view body);

struct LifecycleRule {
  std::string id;
  bool enabled = false;
  std::optional<int> expirationDays;  // Expiration/Days
  bool wholeBucket = false;           // no filter, or an empty prefix and nothing else
  bool otherActions = false;          // transitions, noncurrent-version rules, ...
  std::string xml;                    // the <Rule> element as received, to keep it
};

// LifecycleConfiguration -> its rules.
Result<std::vector<LifecycleRule>> parseLifecycle(std::string_view body);

// One object of a ListObjectsV2 answer.
struct ObjectInfo {
  std::string key;         // exactly as stored (not trimmed)
  std::uint64_t size = 0;
  std::string etag;        // without its quotes: "9a0364b9e99bb480dd25e1f0284c8555", "...-3"
};
struct ObjectPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;         // IsTruncated
  std::string continuationToken;  // NextContinuationToken, when truncated
};
// ListBucketResult (ListObjectsV2) -> one page. protocol for an entry
// without a key or with an unreadable size, or a truncated page without a
// continuation token.
Result<ObjectPage> parseListObjectsV2(std::string_view body);

// An ETag header or element value without its surrounding quotes.
std::string unquoteEtag(std::string_view etag);

struct S3ErrorBody {
  std::string code;     // "NoSuchBucket", ...
  std::string message;  // the server's text; never holds our secrets
};
// An <Error> body, if the document is one.
std::optional<S3ErrorBody> parseError(std::string_view body);

// The rule foundationd owns in a bucket's lifecycle configuration.
inline constexpr std::string_view kExpiryRuleId = "foundationd-expire";

std::string versioningXml(bool enabled);  // Enabled | Suspended
// The rule foundationd writes for expire_days = days (> 0).
std::string expiryRuleXml(int days);
// A LifecycleConfiguration holding `rules` (each a whole <Rule> element).
std::string lifecycleXml(const std::vector<std::string>& rules);
// CreateBucketConfiguration for a region other than us-east-1, else "".
std::string createBucketXml(std::string_view region);

}  // namespace foundationd::buckets
