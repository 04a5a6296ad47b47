#include "controllers/buckets/s3_xml.hpp"

#include <charconv>

namespace foundationd::buckets {

namespace {

constexpr auto npos = std::string_view::npos;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

struct Tag {
  std::size_t begin = 0;  // at '<'
  std::size_t end = 0;    // one past '>'
  std::string_view local;
  bool closing = false;
  bool selfClosing = false;
};

// The next start or end tag at or after `pos`; comments, CDATA, processing
// instructions and declarations are stepped over. nullopt at the end of the
// input or at an unterminated construct.
std::optional<Tag> nextTag(std::string_view d, std::size_t pos) {
  while (pos < d.size()) {
    std::size_t lt = d.find('<', pos);
    if (lt == npos) return std::nullopt;
    std::string_view rest = d.substr(lt);
    std::size_t skipTo = npos;
    if (rest.starts_with("<!--")) {
      skipTo = d.find("-->", lt + 4);
      if (skipTo == npos) return std::nullopt;
      pos = skipTo + 3;
      continue;
    }
    if (rest.starts_with("<![CDATA[")) {
      skipTo = d.find("]]>", lt + 9);
      if (skipTo == npos) return std::nullopt;
      pos = skipTo + 3;
      continue;
    }
    if (rest.starts_with("<?")) {
      skipTo = d.find("?>", lt + 2);
      if (skipTo == npos) return std::nullopt;
      pos = skipTo + 2;
      continue;
    }
    if (rest.starts_with("<!")) {
      skipTo = d.find('>', lt + 2);
      if (skipTo == npos) return std::nullopt;
      pos = skipTo + 1;
      continue;
    }
    Tag tag;
    tag.begin = lt;
    std::size_t i = lt + 1;
    if (i < d.size() && d[i] == '/') {
      tag.closing = true;
      ++i;
    }
    std::size_t nameStart = i;
    while (i < d.size() && !isSpace(d[i]) && d[i] != '>' && d[i] != '/' && d[i] != '<') ++i;
    if (i == nameStart) {  // a stray '<': not markup we understand
      pos = lt + 1;
      continue;
    }
    std::string_view name = d.substr(nameStart, i - nameStart);
    char quote = 0;
    while (i < d.size()) {
      char c = d[i];
      if (quote != 0) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      }
      ++i;
    }
    if (i >= d.size()) return std::nullopt;
    tag.end = i + 1;
    tag.selfClosing = !tag.closing && d[i - 1] == '/';
    std::size_t colon = name.rfind(':');
    tag.local = colon == npos ? name : name.substr(colon + 1);
    return tag;
  }
  return std::nullopt;
}

void appendUtf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the entity at s[0] == '&'; returns how many bytes it used (0: not
// an entity we know, the '&' stays literal).
std::size_t decodeEntity(std::string_view s, std::string& out) {
  std::size_t semi = s.find(';');
  if (semi == npos || semi > 12) return 0;
  std::string_view name = s.substr(1, semi - 1);
  if (name == "amp")
    out += '&';
  else if (name == "lt")
    out += '<';
  else if (name == "gt")
    out += '>';
  else if (name == "quot")
    out += '"';
  else if (name == "apos")
    out += '\'';
  else if (name.size() >= 2 && name[0] == '#') {
    unsigned long cp = 0;
    bool hex = name[1] == 'x' || name[1] == 'X';
    std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty()) return 0;
    auto [ptr, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || cp == 0 || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return 0;
    }
    appendUtf8(out, cp);
  } else {
    return 0;
  }
  return semi + 1;
}

std::optional<int> parseDays(std::string_view text) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

Error notA(std::string_view what) {
  return Error::make(ErrorCode::protocol,
                     "S3 answered without a " + std::string(what) + " document");
}

}  // namespace

std::vector<XmlElement> xmlFind(std::string_view d, std::string_view name) {
  std::vector<XmlElement> out;
  std::size_t pos = 0;
  while (auto tag = nextTag(d, pos)) {
    pos = tag->end;
    if (tag->closing || tag->local != name) continue;
    if (tag->selfClosing) {
      out.push_back({d.substr(tag->end, 0), d.substr(tag->begin, tag->end - tag->begin)});
      continue;
    }
    int depth = 1;
    std::optional<Tag> close;
    std::size_t p = tag->end;
    while (auto t = nextTag(d, p)) {
      p = t->end;
      if (t->local != name) continue;
      if (t->closing) {
        if (--depth == 0) {
          close = t;
          break;
        }
      } else if (!t->selfClosing) {
        ++depth;
      }
    }
    if (!close) break;  // unterminated: nothing after it can be trusted
    out.push_back({d.substr(tag->end, close->begin - tag->end),
                   d.substr(tag->begin, close->end - tag->begin)});
    pos = close->end;
  }
  return out;
}

std::optional<XmlElement> xmlFirst(std::string_view doc, std::string_view name) {
  // Same walk as xmlFind, stopping at the first match.
  std::size_t pos = 0;
  while (auto tag = nextTag(doc, pos)) {
    pos = tag->end;
    if (tag->closing || tag->local != name) continue;
    auto all = xmlFind(doc.substr(tag->begin), name);
    if (all.empty()) return std::nullopt;
    return all.front();
  }
  return std::nullopt;
}

std::string xmlText(std::string_view inner, bool trimmed) {
  std::string out;
  std::size_t i = 0;
  while (i < inner.size()) {
    char c = inner[i];
    if (c == '<') {
      std::string_view rest = inner.substr(i);
      if (rest.starts_with("<![CDATA[")) {
        std::size_t e = inner.find("]]>", i + 9);
        if (e == npos) e = inner.size();
        out.append(inner.substr(i + 9, e - (i + 9)));
        i = e == inner.size() ? e : e + 3;
        continue;
      }
      if (rest.starts_with("<!--")) {
        std::size_t e = inner.find("-->", i + 4);
        i = e == npos ? inner.size() : e + 3;
        continue;
      }
      std::size_t e = inner.find('>', i + 1);  // a child's tag: its text is kept
      i = e == npos ? inner.size() : e + 1;
      continue;
    }
    if (c == '&') {
      std::size_t used = decodeEntity(inner.substr(i), out);
      if (used > 0) {
        i += used;
        continue;
      }
    }
    out += c;
    ++i;
  }
  if (!trimmed) return out;
  return std::string(trim(out));
}

std::optional<std::string> xmlFirstText(std::string_view doc, std::string_view name,
                                        bool trimmed) {
  auto e = xmlFirst(doc, name);
  if (!e) return std::nullopt;
  return xmlText(e->inner, trimmed);
}

std::string xmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Result<std::vector<std::string>> parseListBuckets(std::string_view body) {
  auto root = xmlFirst(body, "ListAllMyBucketsResult");
  if (!root) return notA("ListAllMyBucketsResult");
  std::vector<std::string> names;
  auto list = xmlFirst(root->inner, "Buckets");
  if (!list) return names;  // some servers omit an empty <Buckets/>
  for (const auto& b : xmlFind(list->inner, "Bucket")) {
    auto name = xmlFirstText(b.inner, "Name");
    if (!name || name->empty()) {
      return Error::make(ErrorCode::protocol, "S3 listed a bucket without a name");
    }
    names.push_back(std::move(*name));
  }
  return names;
}

Result<std::string> parseVersioning(std::string_view body) {
  auto root = xmlFirst(body, "VersioningConfiguration");
  if (!root) return notA("VersioningConfiguration");
  auto status = xmlFirstText(root->inner, "Status");
  if (!status) return std::string{};
  if (*status != "Enabled" && *status != "Suspended" && !status->empty()) {
    return Error::make(ErrorCode::protocol, "S3 reported an unknown versioning status");
  }
  return *status;
}

Result<std::vector<LifecycleRule>> parseLifecycle(std::string_view body) {
  auto root = xmlFirst(body, "LifecycleConfiguration");
  if (!root) return notA("LifecycleConfiguration");
  std::vector<LifecycleRule> rules;
  for (const auto& r : xmlFind(root->inner, "Rule")) {
    LifecycleRule rule;
    rule.xml = std::string(r.outer);
    // ID, Status and the legacy Prefix are direct children; Filter may
    // itself hold a Prefix, so the Filter is looked at first and cut out.
    std::string_view inner = r.inner;
    auto filter = xmlFirst(inner, "Filter");
    std::string rest(inner);
    if (filter) {
      std::size_t at = rest.find(filter->outer);
      if (at != std::string::npos) rest.erase(at, filter->outer.size());
    }
    rule.id = xmlFirstText(rest, "ID").value_or("");
    rule.enabled = xmlFirstText(rest, "Status").value_or("") == "Enabled";
    if (filter) {
      bool narrowed = xmlFirst(filter->inner, "And") || xmlFirst(filter->inner, "Tag") ||
                      xmlFirst(filter->inner, "ObjectSizeGreaterThan") ||
                      xmlFirst(filter->inner, "ObjectSizeLessThan");
      rule.wholeBucket = !narrowed && xmlFirstText(filter->inner, "Prefix").value_or("").empty();
    } else {
      rule.wholeBucket = xmlFirstText(rest, "Prefix").value_or("").empty();
    }
    if (auto exp = xmlFirst(rest, "Expiration")) {
      if (auto days = xmlFirstText(exp->inner, "Days")) rule.expirationDays = parseDays(*days);
      if (xmlFirst(exp->inner, "Date")) rule.otherActions = true;
      if (xmlFirstText(exp->inner, "ExpiredObjectDeleteMarker").value_or("") == "true") {
        rule.otherActions = true;
      }
    }
    for (std::string_view other :
         {"Transition", "NoncurrentVersionExpiration", "NoncurrentVersionTransition",
          "AbortIncompleteMultipartUpload"}) {
      if (xmlFirst(rest, other)) rule.otherActions = true;
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::string unquoteEtag(std::string_view etag) {
  etag = trim(etag);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

Result<ObjectPage> parseListObjectsV2(std::string_view body) {
  auto root = xmlFirst(body, "ListBucketResult");
  if (!root) return notA("ListBucketResult");
  ObjectPage page;
  // Contents elements are direct children; CommonPrefixes (with a
  // delimiter, which foundationd never sends) would hold no Contents.
  const auto contents = xmlFind(root->inner, "Contents");
  for (const auto& c : contents) {
    ObjectInfo o;
    auto key = xmlFirst(c.inner, "Key");
    if (!key) return Error::make(ErrorCode::protocol, "S3 listed an object without a key");
    o.key = xmlText(key->inner, false);
    if (o.key.empty()) return Error::make(ErrorCode::protocol, "S3 listed an object with an empty key");
    const std::string size = xmlFirstText(c.inner, "Size").value_or("");
    auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), o.size);
    if (size.empty() || ec != std::errc{} || ptr != size.data() + size.size()) {
      return Error::make(ErrorCode::protocol, "S3 listed an object without a readable size");
    }
    o.etag = unquoteEtag(xmlFirstText(c.inner, "ETag").value_or(""));
    page.objects.push_back(std::move(o));
  }
  // Direct children only: a key could be named "IsTruncated", but a Key's
  // text is inside <Contents>, which is cut out first.
  std::string rest;
  const char* at = root->inner.data();
  for (const auto& c : contents) {  // in document order, inside root->inner
    rest.append(at, c.outer.data());
    at = c.outer.data() + c.outer.size();
  }
  rest.append(at, root->inner.data() + root->inner.size());
  page.truncated = xmlFirstText(rest, "IsTruncated").value_or("false") == "true";
  if (page.truncated) {
    page.continuationToken = xmlFirstText(rest, "NextContinuationToken", false).value_or("");
    if (page.continuationToken.empty()) {
      return Error::make(ErrorCode::protocol,
                         "S3 answered a truncated listing without a NextContinuationToken");
    }
  }
  return page;
}

std::optional<S3ErrorBody> parseError(std::string_view body) {
  auto root = xmlFirst(body, "Error");
  if (!root) return std::nullopt;
  S3ErrorBody e;
  e.code = xmlFirstText(root->inner, "Code").value_or("");
  e.message = xmlFirstText(root->inner, "Message").value_or("");
  return e;
}

namespace {
constexpr std::string_view kNs = "http://s3.amazonaws.com/doc/2006-03-01/";
}

std::string versioningXml(bool enabled) {
  return "<VersioningConfiguration xmlns=\"" + std::string(kNs) + "\"><Status>" +
         (enabled ? "Enabled" : "Suspended") + "</Status></VersioningConfiguration>";
}

std::string expiryRuleXml(int days) {
  return "<Rule><ID>" + std::string(kExpiryRuleId) +
         "</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
         "<Expiration><Days>" +
         std::to_string(days) + "</Days></Expiration></Rule>";
}

std::string lifecycleXml(const std::vector<std::string>& rules) {
  std::string out = "<LifecycleConfiguration xmlns=\"" + std::string(kNs) + "\">";
  for (const auto& r : rules) out += r;
  out += "</LifecycleConfiguration>";
  return out;
}

std::string createBucketXml(std::string_view region) {
  if (region.empty() || region == "us-east-1") return {};
  return "<CreateBucketConfiguration xmlns=\"" + std::string(kNs) + "\"><LocationConstraint>" +
         xmlEscape(region) + "</LocationConstraint></CreateBucketConfiguration>";
}

}  // namespace foundationd::buckets
