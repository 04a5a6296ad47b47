#include "controllers/backup/run.hpp"

#include <algorithm>
#include <cstdlib>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include "controllers/backup/retention.hpp"
#include "controllers/docker/docker_client.hpp"

namespace foundationd::backup {

namespace {

constexpr const char* kRecordKind = "backup-run";
constexpr const char* kLastAttempt = "last-attempt";
constexpr const char* kLastComplete = "last-complete";

std::int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ago(std::int64_t ms) {
  const std::int64_t minutes = ms / 60000;
  if (minutes < 120) return std::to_string(minutes) + " min";
  const std::int64_t hours = minutes / 60;
  if (hours < 48) return std::to_string(hours) + " h";
  return std::to_string(hours / 24) + " days";
}

Result<std::optional<RunRecord>> readOne(state::Store& store, const char* name) {
  auto text = store.appliedHash(kRecordKind, name);
  if (!text) return std::move(text).error();
  if (!text.value()) return std::optional<RunRecord>{};
  auto r = parseRunRecord(**text);
  if (!r) return std::move(r).error();
  return std::optional<RunRecord>(std::move(r).value());
}

}  // namespace

std::function<void(const std::string&)> blockingUnpauser(std::string socket) {
  return [socket = std::move(socket)](const std::string& container) {
    boost::asio::io_context io;
    docker::DockerClient c(io.get_executor(), socket);
    boost::asio::co_spawn(io, c.pauseContainer(container, false), boost::asio::detached);
    io.run();
  };
}

Result<RunSetup> prepareRun(const config::Spec& spec, state::Store& store,
                            const state::UnlockedKey& key, const docker::SecretResolver& secrets) {
  auto password = resticPassword(store, key, true);
  if (!password) return std::move(password).error();
  auto local = repositoryFor(spec, spec.backup->local, secrets);
  if (!local) return Error::make(local.error().code, "[backup.local]: " + local.error().message);
  RunSetup setup{std::move(password).value(),
                 RunTargets{std::move(local).value(), std::nullopt, spec.backup->retention}};
  if (spec.backup->offsite) {
    auto off = repositoryFor(spec, *spec.backup->offsite, secrets);
    if (!off) return Error::make(off.error().code, "[backup.offsite]: " + off.error().message);
    setup.targets.offsite = std::move(off).value();
  }
  return setup;
}

std::string resticBinary() {
  const char* b = std::getenv("FOUNDATIOND_RESTIC");
  return b && *b ? b : "restic";
}

const char* toString(RunRecord::Offsite offsite) noexcept {
  switch (offsite) {
    case RunRecord::Offsite::none: return "none";
    case RunRecord::Offsite::confirmed: return "confirmed";
    case RunRecord::Offsite::failed: return "failed";
  }
  return "none";
}

const char* toString(Condition c) noexcept {
  switch (c) {
    case Condition::never: return "never";
    case Condition::ok: return "ok";
    case Condition::failed: return "failed";
    case Condition::offsite_failed: return "offsite_failed";
    case Condition::stale: return "stale";
  }
  return "never";
}

std::string toJson(const RunRecord& r) {
  nlohmann::json sections = nlohmann::json::array();
  for (const auto& s : r.sections) {
    sections.push_back({{"name", s.name}, {"bytes", s.bytes}, {"seconds", s.seconds}});
  }
  return nlohmann::json{{"id", r.id},
                        {"started_ms", r.startedUnixMs},
                        {"finished_ms", r.finishedUnixMs},
                        {"ok", r.ok},
                        {"error", r.error},
                        {"offsite", toString(r.offsite)},
                        {"offsite_error", r.offsiteError},
                        {"bytes", r.bytes},
                        {"sections", std::move(sections)},
                        {"by", r.by},
                        {"reason", r.reason},
                        {"retention_error", r.retentionError}}
      .dump();
}

Result<RunRecord> parseRunRecord(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error::make(ErrorCode::invalid_argument, "a backup run record that is not JSON");
  }
  try {
    RunRecord r;
    r.id = j.value("id", "");
    r.startedUnixMs = j.value("started_ms", std::int64_t{0});
    r.finishedUnixMs = j.value("finished_ms", std::int64_t{0});
    r.ok = j.value("ok", false);
    r.error = j.value("error", "");
    const std::string off = j.value("offsite", "none");
    r.offsite = off == "confirmed" ? RunRecord::Offsite::confirmed
                : off == "failed"  ? RunRecord::Offsite::failed
                                   : RunRecord::Offsite::none;
    r.offsiteError = j.value("offsite_error", "");
    r.bytes = j.value("bytes", std::uint64_t{0});
    r.by = j.value("by", "");
    r.reason = j.value("reason", "");
    r.retentionError = j.value("retention_error", "");
    if (j.contains("sections") && j["sections"].is_array()) {
      for (const auto& s : j["sections"]) {
        r.sections.push_back(
            {s.value("name", ""), s.value("bytes", std::uint64_t{0}), s.value("seconds", 0.0)});
      }
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Error::make(ErrorCode::invalid_argument,
                       std::string("a backup run record with a field of the wrong type: ") +
                           e.what());
  }
}

Result<RunHistory> readHistory(state::Store& store) {
  RunHistory h;
  auto attempt = readOne(store, kLastAttempt);
  if (!attempt) return std::move(attempt).error();
  h.lastAttempt = std::move(attempt).value();
  auto complete = readOne(store, kLastComplete);
  if (!complete) return std::move(complete).error();
  h.lastComplete = std::move(complete).value();
  return h;
}

Status recordRun(state::Store& store, const RunRecord& r) {
  const std::string text = toJson(r);
  if (auto st = store.setAppliedHash(kRecordKind, kLastAttempt, text); !st) return st;
  if (r.complete()) return store.setAppliedHash(kRecordKind, kLastComplete, text);
  return Status::success();
}

Assessment assess(const RunHistory& history, std::chrono::milliseconds schedule,
                  std::int64_t now, std::chrono::milliseconds retry) {
  Assessment a;
  const std::int64_t every = schedule.count();
  const std::int64_t retryMs = std::min(retry.count(), every);
  if (!history.lastAttempt) {
    a.condition = Condition::never;
    a.message = "no backup taken yet";
    a.nextDueUnixMs = now;
    return a;
  }
  const RunRecord& last = *history.lastAttempt;
  if (history.lastComplete) {
    a.nextDueUnixMs = history.lastComplete->finishedUnixMs + every;
  } else {
    a.nextDueUnixMs = now;
  }
  if (!last.complete()) a.nextDueUnixMs = last.finishedUnixMs + retryMs;
  const std::string lastGood =
      history.lastComplete ? "the last complete backup is " + history.lastComplete->id + ", " +
                                 ago(now - history.lastComplete->finishedUnixMs) + " old"
                           : "there is no complete backup";
  if (!last.ok) {
    a.condition = Condition::failed;
    a.message = "the last backup failed: " + last.error + "; " + lastGood;
    return a;
  }
  if (last.offsite == RunRecord::Offsite::failed) {
    a.condition = Condition::offsite_failed;
    a.message = "backup " + last.id + " exists on this host only: its offsite copy failed: " +
                last.offsiteError + "; " + lastGood;
    return a;
  }
  if (history.lastComplete && now - history.lastComplete->finishedUnixMs > 2 * every) {
    a.condition = Condition::stale;
    a.message = lastGood + ": older than twice the schedule";
    return a;
  }
  a.condition = Condition::ok;
  a.message = lastGood;
  return a;
}

namespace {

// `restic copy` of backup `id` to `offsite`, confirmed by counting its
// snapshots there.
Task<Status> copyOffsite(boost::asio::any_io_executor ex, Restic& local, const Repository& offsite, std::string_view password,
                         const std::string& binary, const std::string& id, const Report& report,
                         std::size_t& confirmed) {
  Restic off(ex, offsite, password, binary);
  auto exists = co_await off.exists();
  if (!exists) co_return std::move(exists).error();
  if (!*exists) {
    if (auto st = co_await off.initFrom(local); !st) co_return st;
    report("created the offsite repository " + offsite.display);
  }
  const std::vector<std::string> tags{std::string(kBackupTagKey) + "=" + id};
  if (auto st = co_await off.copyFrom(local, tags); !st) co_return st;
  auto here = co_await local.snapshots(tags);
  if (!here) co_return std::move(here).error();
  auto there = co_await off.snapshots(tags);
  if (!there) co_return std::move(there).error();
  if (there->size() != here->size()) {
    co_return Error::make(ErrorCode::protocol, "after the copy the offsite repository lists " +
                                                   std::to_string(there->size()) + " of its " +
                                                   std::to_string(here->size()) + " snapshots");
  }
  confirmed = there->size();
  co_return Status::success();
}

}  // namespace

Task<RunRecord> runBackup(BackupContext& ctx, const RunTargets& targets,
                          std::string_view password, const std::string& resticBinary,
                          const Report& report, std::string by) {
  RunRecord r;
  r.by = std::move(by);
  r.reason = ctx.reason;
  r.startedUnixMs = nowUnixMs();
  auto ex = co_await boost::asio::this_coro::executor;
  Restic local(ex, targets.local, password, resticBinary);
  auto m = co_await takeBackup(ctx, local, report);
  if (!m) {
    r.error = m.error().message;
    r.finishedUnixMs = nowUnixMs();
    co_return r;
  }
  r.ok = true;
  r.id = m->id;
  r.bytes = m->totalBytes();
  for (const auto& s : m->sections) r.sections.push_back({s.name, s.bytes, s.seconds});
  for (const auto& n : m->notIncluded) report("not included: " + n);
  report("backup " + m->id + " complete in " + targets.local.display);
  if (targets.retention) {  // whole backups; never the only complete one
    auto kept = co_await applyRetention(local, *targets.retention, report);
    if (!kept) r.retentionError = kept.error().message;
  }
  if (!targets.offsite) {
    report("offsite: none declared ([backup.offsite]): backup " + m->id +
           " exists on this host alone");
  } else {
    std::size_t confirmed = 0;
    auto st = co_await copyOffsite(ex, local, *targets.offsite, password, resticBinary, m->id, report,
                                   confirmed);
    if (st) {
      r.offsite = RunRecord::Offsite::confirmed;
      report("offsite: backup " + m->id + " copied to " + targets.offsite->display + " (" +
             std::to_string(confirmed) + " snapshots confirmed there)");
    } else {
      r.offsite = RunRecord::Offsite::failed;
      r.offsiteError = st.error().message;
    }
  }
  r.finishedUnixMs = nowUnixMs();
  co_return r;
}

}  // namespace foundationd::backup
