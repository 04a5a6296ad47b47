// libFuzzer target: the bucket controller's minimal S3 XML reader
// (controllers/buckets/s3_xml.hpp) on arbitrary bytes. Every element it
// returns must lie inside the input; the document parsers must never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controllers/buckets/s3_xml.hpp"

using namespace foundationd::buckets;

namespace {

void inside(std::string_view doc, std::string_view part) {
  if (part.empty()) return;
  if (part.data() < doc.data() || part.data() + part.size() > doc.data() + doc.size()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view doc(reinterpret_cast<const char*>(data), size);
  for (std::string_view name : {"Name", "Rule", "Error", "Buckets", "Status", "Contents", "Key"}) {
    for (const auto& e : xmlFind(doc, name)) {
      inside(doc, e.outer);
      inside(doc, e.inner);
      if (e.inner.size() > e.outer.size()) std::abort();
      (void)xmlText(e.inner);
    }
    if (auto e = xmlFirst(doc, name)) inside(doc, e->outer);
  }
  (void)xmlText(doc);
  (void)parseListBuckets(doc);
  (void)parseVersioning(doc);
  (void)parseLifecycle(doc);
  (void)parseError(doc);
  if (auto page = parseListObjectsV2(doc)) {
    for (const auto& o : page->objects) {
      if (o.key.empty()) std::abort();  // an empty key is refused, never listed
    }
    if (page->truncated && page->continuationToken.empty()) std::abort();
  }
  (void)xmlText(doc, false);
  return 0;
}
