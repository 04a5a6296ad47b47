// The forge's data section's pure parts (the repository listing, the
// one-repository selector, its manifest fields) and the freeze: thawed
// whatever the body does — fails, throws, or its coroutine is destroyed
// mid-freeze (then the blocking fallback runs); and a freeze past its limit
// is thawed at the limit, whatever the body does.
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include "controllers/backup/forge_section.hpp"
#include "controllers/backup/freeze.hpp"
#include "controllers/backup/manifest.hpp"

using namespace foundationd;
using namespace foundationd::backup;

namespace {

struct Calls {
  std::vector<std::string> log;
  Status freezeResult = Status::success();
  Status thawResult = Status::success();
};

Freezer recording(Calls& c) {
  Freezer f;
  f.freeze = [&c]() -> Task<Status> {
    c.log.push_back("freeze");
    co_return c.freezeResult;
  };
  f.thaw = [&c]() -> Task<Status> {
    c.log.push_back("thaw");
    co_return c.thawResult;
  };
  f.thawNow = [&c] { c.log.push_back("thawNow"); };
  return f;
}

Status runFrozen(const Freezer& f, std::function<Task<Status>()> body,
                 std::chrono::milliseconds* held) {
  boost::asio::io_context io;
  std::optional<Status> out;
  std::exception_ptr error;
  boost::asio::co_spawn(io, whileFrozen(f, body, held), [&](std::exception_ptr e, Status s) {
    if (e) error = e;
    else out.emplace(std::move(s));
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return *out;
}

// A body that waits an hour unless cancelled; with `say`, logs how it ended.
std::function<Task<Status>()> hourLongBody(Calls& c, bool say) {
  return [&c, say]() -> Task<Status> {
    c.log.push_back("body");
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::hours(1));
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (say) {
      c.log.push_back(ec == boost::asio::error::operation_aborted ? "body cancelled"
                                                                  : "body ended");
    }
    co_return Status::success();
  };
}

}  // namespace

TEST_CASE("the freeze is lifted when the body succeeds, fails or throws") {
  Calls c;
  const Freezer f = recording(c);
  std::chrono::milliseconds held{-1};
  SUBCASE("success") {
    auto st = runFrozen(f, [&]() -> Task<Status> {
      c.log.push_back("body");
      co_return Status::success();
    }, &held);
    CHECK(st.ok());
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw"});
    CHECK(held.count() >= 0);
  }
  SUBCASE("a failure mid-section: the body's error, and thawed") {
    auto st = runFrozen(f, [&]() -> Task<Status> {
      c.log.push_back("body");
      co_return Error::make(ErrorCode::peer, "restic failed");
    }, &held);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "restic failed");
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw"});
    CHECK(held.count() >= 0);
  }
  SUBCASE("an exception: rethrown after the thaw") {
    CHECK_THROWS_AS(runFrozen(f, [&]() -> Task<Status> {
      c.log.push_back("body");
      throw std::runtime_error("boom");
      co_return Status::success();
    }, &held), std::runtime_error);
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw"});
  }
  SUBCASE("the freeze fails: no body, nothing thawed") {
    c.freezeResult = Error::make(ErrorCode::conflict, "not running");
    auto st = runFrozen(f, [&]() -> Task<Status> {
      c.log.push_back("body");
      co_return Status::success();
    }, &held);
    CHECK_FALSE(st.ok());
    CHECK(c.log == std::vector<std::string>{"freeze"});
  }
  SUBCASE("the thaw fails: reported, and the blocking fallback tried once more") {
    c.thawResult = Error::make(ErrorCode::unavailable, "the Engine went away");
    auto st = runFrozen(f, [&]() -> Task<Status> { co_return Status::success(); }, &held);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "the Engine went away");
    CHECK(c.log == std::vector<std::string>{"freeze", "thaw", "thawNow"});
  }
}

TEST_CASE("a coroutine destroyed mid-freeze is thawed by the guard's fallback") {
  Calls c;
  const Freezer f = recording(c);
  {
    boost::asio::io_context io;
    auto body = [&]() -> Task<Status> {
      c.log.push_back("body");
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                  std::chrono::hours(1));
      co_await t.async_wait(boost::asio::use_awaitable);  // never completes
      co_return Status::success();
    };
    boost::asio::co_spawn(io, whileFrozen(f, body, nullptr), boost::asio::detached);
    io.run_for(std::chrono::milliseconds(50));
    CHECK(c.log == std::vector<std::string>{"freeze", "body"});
  }  // the io_context and the suspended frame are destroyed here
  CHECK(c.log == std::vector<std::string>{"freeze", "body", "thawNow"});
}

TEST_CASE("a freeze past its limit is thawed there and then, and its cut is refused") {
  Calls c;
  Freezer f = recording(c);
  f.limit = std::chrono::milliseconds(30);
  f.limitHint = "raise max_freeze";
  std::chrono::milliseconds held{-1};
  SUBCASE("a body that is cancelled: thawed at the limit, the body awaited, a timeout") {
    auto st = runFrozen(f, hourLongBody(c, true), &held);
    REQUIRE_FALSE(st.ok());
    CHECK((st.error().code == ErrorCode::timeout));
    CHECK(st.error().message.find("limit of 30ms") != std::string::npos);
    CHECK(st.error().message.find("not consistent") != std::string::npos);
    CHECK(st.error().message.find("raise max_freeze") != std::string::npos);
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw", "body cancelled"});
    CHECK(held.count() >= 30);
    CHECK(held.count() < 1000);
  }
  SUBCASE("a body deaf to cancellation: thawed at the limit all the same, before it ends") {
    auto st = runFrozen(
        f,
        [&]() -> Task<Status> {
          c.log.push_back("body");
          co_await boost::asio::this_coro::reset_cancellation_state(
              boost::asio::cancellation_filter<boost::asio::cancellation_type::none>());
          boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                      std::chrono::milliseconds(300));
          co_await t.async_wait(boost::asio::use_awaitable);
          c.log.push_back("body ended");
          co_return Status::success();  // a cut read past the limit: not kept
        },
        &held);
    REQUIRE_FALSE(st.ok());
    CHECK((st.error().code == ErrorCode::timeout));
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw", "body ended"});
    CHECK(held.count() < 300);
  }
  SUBCASE("a body that throws once cancelled: the limit's error, thawed once") {
    auto st = runFrozen(
        f,
        [&]() -> Task<Status> {
          c.log.push_back("body");
          boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                      std::chrono::hours(1));
          co_await t.async_wait(boost::asio::use_awaitable);  // throws operation_aborted
          co_return Status::success();
        },
        &held);
    REQUIRE_FALSE(st.ok());
    CHECK((st.error().code == ErrorCode::timeout));
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw"});
  }
  SUBCASE("a body within the limit: its result, thawed once after it") {
    f.limit = std::chrono::hours(1);
    auto st = runFrozen(
        f,
        [&]() -> Task<Status> {
          c.log.push_back("body");
          co_return Error::make(ErrorCode::peer, "restic failed");
        },
        &held);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "restic failed");
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw"});
  }
  SUBCASE("the thaw at the limit fails: said so, and the blocking fallback tried") {
    c.thawResult = Error::make(ErrorCode::unavailable, "the Engine went away");
    auto st = runFrozen(f, hourLongBody(c, false), &held);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message.find("thawing at the freeze's limit of 30ms") != std::string::npos);
    CHECK(st.error().message.find("the Engine went away") != std::string::npos);
    CHECK(c.log == std::vector<std::string>{"freeze", "body", "thaw", "thawNow"});
  }
}

TEST_CASE("the forge's repository listing") {
  Section s;
  const std::string a(40, 'a');
  const std::string out = "/data/git/repositories/olsitec/foundation.git " + a + "\n"
                          "/data/git/repositories/olsitec/empty.git \n"
                          "/data/git/repositories/olsitec/foundation.wiki.git " + a + "\n";
  REQUIRE(parseRepoListing(out, s).ok());
  CHECK(s.repoHeads == std::map<std::string, std::string>{{"olsitec/empty", ""},
                                                          {"olsitec/foundation", a},
                                                          {"olsitec/foundation.wiki", a}});
  CHECK(s.repoPaths.at("olsitec/foundation") == "data/git/repositories/olsitec/foundation.git");
  Section bad;
  CHECK_FALSE(parseRepoListing("/data/x.git zzz\n", bad).ok());          // not a commit
  CHECK_FALSE(parseRepoListing("relative/a/b.git " + a + "\n", bad).ok());  // not a path
  CHECK_FALSE(parseRepoListing("/b.git " + a + "\n", bad).ok());            // no owner
  Section none;
  CHECK(parseRepoListing("", none).ok());
  CHECK(none.repoHeads.empty());
}

TEST_CASE("one repository is selected as forge/repo/OWNER/NAME") {
  CHECK(forgeRepoSelector("forge/repo/olsitec/foundation") == "olsitec/foundation");
  CHECK_FALSE(forgeRepoSelector("forge/data"));
  CHECK_FALSE(forgeRepoSelector("forge/repo/olsitec"));
  CHECK_FALSE(forgeRepoSelector("forge/repo/olsitec/"));
  CHECK_FALSE(forgeRepoSelector("forge/repo/a/b/c"));
  CHECK_FALSE(forgeRepoSelector("postgres/main"));
}

TEST_CASE("the forge section's manifest fields round-trip") {
  Manifest m;
  m.id = "20261203T120000Z-a1b2";
  m.createdAt = "2026-12-03T12:00:00Z";
  Section s;
  s.name = kForgeSection;
  s.kind = kForgeKind;
  s.path = "/forge/data.tar";
  s.snapshot = "abcd1234";
  s.bytes = 10;
  s.sha256 = std::string(64, 'f');
  s.mounts = {"/data"};
  s.repoHeads = {{"o/r", std::string(40, '1')}, {"o/empty", ""}};
  s.repoPaths = {{"o/r", "data/git/repositories/o/r.git"}, {"o/empty", "data/git/repositories/o/empty.git"}};
  s.freezeMs = 42;
  m.sections.push_back(s);
  auto back = parseManifest(toJson(m));
  REQUIRE(back.ok());
  const Section* f = back->find(kForgeSection);
  REQUIRE(f);
  CHECK(f->repoHeads == s.repoHeads);
  CHECK(f->repoPaths == s.repoPaths);
  CHECK(f->mounts == s.mounts);
  CHECK(f->freezeMs == 42);
}

// --- retention ---------------------------------------------------------------

#include "controllers/backup/retention.hpp"

namespace {

BackupEntry entry(const std::string& id, bool complete, std::vector<std::string> sections) {
  BackupEntry e;
  e.id = id;
  e.complete = complete;
  for (const auto& s : sections) e.snapshotOf[s] = id + ":" + s;
  if (complete) e.snapshotOf["manifest"] = id + ":manifest";
  return e;
}

}  // namespace

TEST_CASE("restic's forget dry run: the backups its policy removes") {
  const std::string out =
      R"([{"tags":null,"host":"h","paths":null,"keep":[{"tags":["foundationd","fd-backup=B3","fd-section=manifest"],"id":"c"}],)"
      R"("remove":[{"tags":["foundationd","fd-backup=B2","fd-section=manifest"],"id":"b"},)"
      R"({"tags":["foundationd","fd-backup=B1","fd-section=manifest"],"id":"a"}],"reasons":[]}])";
  auto ids = parseForgetDryRun(out);
  REQUIRE(ids.ok());
  CHECK(*ids == std::set<std::string>{"B1", "B2"});
  CHECK(parseForgetDryRun("null")->empty());
  CHECK(parseForgetDryRun(R"([{"keep":[],"remove":null}])")->empty());
  CHECK_FALSE(parseForgetDryRun("{").ok());
}

TEST_CASE("retention drops whole backups, failed ones too, never every complete one") {
  const std::vector<BackupEntry> backups{
      entry("B1", true, {"postgres/main/db/a", "forge/data", "state"}),
      entry("B2", false, {"postgres/main/db/a"}),  // failed before B3
      entry("B3", true, {"postgres/main/db/a", "state"}),
      entry("B4", false, {"postgres/main/db/a"}),  // maybe still being written
  };
  auto plan = planRetention(backups, {"B1"});
  REQUIRE(plan.ok());
  CHECK(plan->drop == std::vector<std::string>{"B1", "B2"});
  CHECK(plan->keptComplete == 1);
  std::set<std::string> snaps(plan->snapshots.begin(), plan->snapshots.end());
  CHECK(snaps == std::set<std::string>{"B1:postgres/main/db/a", "B1:forge/data", "B1:state",
                                       "B1:manifest", "B2:postgres/main/db/a"});
  // Nothing removed by the policy: only the failed one older than B3.
  auto none = planRetention(backups, {});
  REQUIRE(none.ok());
  CHECK(none->drop == std::vector<std::string>{"B2"});
  // Never the only complete backup(s).
  CHECK_FALSE(planRetention(backups, {"B1", "B3"}).ok());
  // No complete backup at all: nothing is forgotten.
  auto nothing = planRetention({entry("B9", false, {"state"})}, {});
  REQUIRE(nothing.ok());
  CHECK(nothing->drop.empty());
}
