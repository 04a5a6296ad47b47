// A backup run's record and the condition derived from it (controllers/
// backup/run.hpp): the record's round trip through the state, and assess()
// for every condition and due time.
#include <doctest/doctest.h>

#include "controllers/backup/run.hpp"
#include "temp_dir.hpp"

using namespace foundationd;
using namespace foundationd::backup;

namespace {

constexpr std::int64_t kHour = 3600 * 1000;
const std::chrono::milliseconds kDay{24 * kHour};

RunRecord run(const std::string& id, std::int64_t finished, bool ok,
              RunRecord::Offsite offsite = RunRecord::Offsite::confirmed) {
  RunRecord r;
  r.id = id;
  r.startedUnixMs = finished - 60000;
  r.finishedUnixMs = finished;
  r.ok = ok;
  if (!ok) r.error = "pg_dump in container pg failed (exit 1): no such database";
  r.offsite = ok ? offsite : RunRecord::Offsite::none;
  if (offsite == RunRecord::Offsite::failed) r.offsiteError = "connection refused";
  r.by = "daemon";
  return r;
}

}  // namespace

TEST_CASE("a run record round-trips through JSON, sections and offsite included") {
  RunRecord r = run("20261203T120000Z-a1b2", 1764763200000, true);
  r.bytes = 12345;
  r.sections = {{"postgres/main/db/appdb", 12000, 1.5}, {"state", 345, 0.25}};
  auto back = parseRunRecord(toJson(r));
  REQUIRE(back.ok());
  CHECK(back->id == r.id);
  CHECK(back->startedUnixMs == r.startedUnixMs);
  CHECK(back->finishedUnixMs == r.finishedUnixMs);
  CHECK(back->ok);
  CHECK(std::string(toString(back->offsite)) == toString(RunRecord::Offsite::confirmed));
  CHECK(back->bytes == 12345);
  REQUIRE(back->sections.size() == 2);
  CHECK(back->sections[0].name == "postgres/main/db/appdb");
  CHECK(back->sections[0].seconds == doctest::Approx(1.5));
  CHECK(back->by == "daemon");
  CHECK_FALSE(parseRunRecord("not json").ok());
  CHECK_FALSE(parseRunRecord(R"({"id": 5})").ok());
}

TEST_CASE("complete: the local manifest and the offsite copy (or none declared)") {
  CHECK(run("a", 1, true, RunRecord::Offsite::confirmed).complete());
  CHECK(run("a", 1, true, RunRecord::Offsite::none).complete());
  CHECK_FALSE(run("a", 1, true, RunRecord::Offsite::failed).complete());
  CHECK_FALSE(run("a", 1, false).complete());
}

TEST_CASE("the state keeps the last attempt and the last complete run") {
  test::TempDir dir("backup-run");
  auto store = state::Store::openDir(dir.path);
  REQUIRE(store.ok());
  auto empty = readHistory(**store);
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->lastAttempt);
  CHECK_FALSE(empty->lastComplete);

  REQUIRE(recordRun(**store, run("one", 1000, true)).ok());
  REQUIRE(recordRun(**store, run("two", 2000, true, RunRecord::Offsite::failed)).ok());
  auto h = readHistory(**store);
  REQUIRE(h.ok());
  REQUIRE(h->lastAttempt);
  REQUIRE(h->lastComplete);
  CHECK(h->lastAttempt->id == "two");
  CHECK(h->lastComplete->id == "one");  // "two" is only local: not complete

  REQUIRE(recordRun(**store, run("", 3000, false)).ok());
  h = readHistory(**store);
  REQUIRE(h.ok());
  CHECK_FALSE(h->lastAttempt->ok);
  CHECK(h->lastComplete->id == "one");
}

TEST_CASE("assess: never, ok, failed, offsite_failed, stale, and when the next one is due") {
  const std::int64_t now = 100 * kDay.count();
  RunHistory h;
  auto a = assess(h, kDay, now);
  CHECK(std::string(toString(a.condition)) == toString(Condition::never));
  CHECK(a.nextDueUnixMs == now);

  // A complete backup 2 h ago: ok, due a day after it.
  h.lastAttempt = h.lastComplete = run("ok1", now - 2 * kHour, true);
  a = assess(h, kDay, now);
  CHECK(std::string(toString(a.condition)) == toString(Condition::ok));
  CHECK(a.nextDueUnixMs == now - 2 * kHour + kDay.count());
  CHECK(a.message.find("ok1") != std::string::npos);

  // The next attempt failed: failed, retried 10 minutes after it, and the
  // message says which complete backup there is.
  h.lastAttempt = run("", now - 60000, false);
  a = assess(h, kDay, now);
  CHECK(std::string(toString(a.condition)) == toString(Condition::failed));
  CHECK(a.nextDueUnixMs == now - 60000 + 10 * 60000);
  CHECK(a.message.find("no such database") != std::string::npos);
  CHECK(a.message.find("ok1") != std::string::npos);

  // Only the offsite copy failed.
  h.lastAttempt = run("local-only", now - 60000, true, RunRecord::Offsite::failed);
  a = assess(h, kDay, now);
  CHECK(std::string(toString(a.condition)) == toString(Condition::offsite_failed));
  CHECK(a.message.find("connection refused") != std::string::npos);

  // A retry is never later than the schedule itself (a 5-minute schedule).
  a = assess(h, std::chrono::minutes(5), now);
  CHECK(a.nextDueUnixMs == now - 60000 + 5 * 60000);

  // The last complete backup is more than twice the schedule old: stale,
  // and due at once.
  h.lastAttempt = h.lastComplete = run("old", now - 49 * kHour, true);
  a = assess(h, kDay, now);
  CHECK(std::string(toString(a.condition)) == toString(Condition::stale));
  CHECK(a.nextDueUnixMs <= now);
  // ... but not at 47 hours.
  h.lastAttempt = h.lastComplete = run("old", now - 47 * kHour, true);
  CHECK(std::string(toString(assess(h, kDay, now).condition)) == toString(Condition::ok));
}
