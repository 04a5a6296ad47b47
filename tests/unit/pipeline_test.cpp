// What a failed service-step outcome stands for in the dependency graph
// (daemon/pipeline.hpp failedNodes): the node its dependents wait for.
#include <doctest/doctest.h>

#include "daemon/pipeline.hpp"

using foundationd::StepOutcome;
using foundationd::config::Kind;
using foundationd::config::ResourceKey;
using foundationd::daemon::failedNodes;

namespace {

StepOutcome failedAt(Kind kind, const std::string& name) {
  StepOutcome o;
  o.key = {kind, name};
  o.ok = false;
  o.message = "refused";
  return o;
}

}  // namespace

TEST_CASE("failedNodes: a role or database stands for its instance") {
  foundationd::config::Spec spec;
  CHECK(failedNodes(spec, failedAt(Kind::postgres, "db/role/app")) ==
        std::vector<ResourceKey>{{Kind::postgres, "db"}});
  CHECK(failedNodes(spec, failedAt(Kind::postgres, "db/database/app")) ==
        std::vector<ResourceKey>{{Kind::postgres, "db"}});
  CHECK(failedNodes(spec, failedAt(Kind::postgres, "db")) ==
        std::vector<ResourceKey>{{Kind::postgres, "db"}});
}

TEST_CASE("failedNodes: an S3 server stands for every bucket it serves, and only those") {
  foundationd::config::Spec spec;
  spec.buckets["a"].s3 = "main";
  spec.buckets["b"].s3 = "main";
  spec.buckets["c"].s3 = "other";
  CHECK(failedNodes(spec, failedAt(Kind::s3, "main")) ==
        std::vector<ResourceKey>{{Kind::s3, "main"}, {Kind::bucket, "a"}, {Kind::bucket, "b"}});
  CHECK(failedNodes(spec, failedAt(Kind::bucket, "c")) ==
        std::vector<ResourceKey>{{Kind::bucket, "c"}});
}
