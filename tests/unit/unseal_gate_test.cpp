// The unseal backoff (state/unseal_gate.hpp) with the real Store and the real
// Argon2id: one passphrase under test at a time, the failure counted before
// the KDF, per-path counters, fail closed.
#include "state/unseal_gate.hpp"

#include <atomic>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/temp_dir.hpp"
#include <sqlite3.h>

using namespace foundationd;
using namespace foundationd::state;
namespace fs = std::filesystem;

namespace {

// Every case's scratch directory: /tmp/fd-gate-test-XXXXXX.
struct TempDir : foundationd::test::TempDir {
  TempDir() : foundationd::test::TempDir("gate-test") {}
};

std::unique_ptr<Store> openStore(const fs::path& file, StoreOptions options = {}) {
  auto store = Store::open(file, std::move(options));
  REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
  return std::move(store).value();
}

std::unique_ptr<Store> initialised(const fs::path& file, StoreOptions options = {}) {
  auto store = openStore(file, std::move(options));
  REQUIRE(store->initialize("correct horse", KdfProfile::interactive).ok());
  return store;
}

}  // namespace

TEST_CASE("32 parallel unseal attempts: one Argon2id runs, 31 are refused") {
  TempDir tmp;
  auto store = initialised(tmp.path / Store::kFileName);
  UnsealGate gate(*store);
  constexpr int kClients = 32;
  std::atomic<int> admitted{0}, refused{0}, inKdf{0}, maxInKdf{0};
  std::atomic<std::int64_t> countedBeforeKdf{-1};
  std::barrier start(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      start.arrive_and_wait();
      auto a = gate.admit(UnsealPath::remote);
      if (a.verdict != UnsealGate::Verdict::admitted) {
        CHECK((a.verdict == UnsealGate::Verdict::busy ||
               a.verdict == UnsealGate::Verdict::backoff));
        CHECK(a.retryAfter >= std::chrono::seconds(1));
        ++refused;
        return;
      }
      ++admitted;
      countedBeforeKdf = store->unsealAttempts(UnsealPath::remote)->failures;
      const int now = ++inKdf;
      int seen = maxInKdf.load();
      while (now > seen && !maxInKdf.compare_exchange_weak(seen, now)) {
      }
      auto key = store->unlock("wrong horse");
      --inKdf;
      CHECK((key.error().code == ErrorCode::wrong_passphrase));
      CHECK(a.ticket.wrong() == 1);
    });
  }
  for (auto& t : clients) t.join();
  CHECK(admitted == 1);
  CHECK(refused == kClients - 1);
  CHECK(maxInKdf == 1);
  CHECK(countedBeforeKdf == 1);  // persisted before the KDF ran
  CHECK(store->unsealAttempts(UnsealPath::remote)->failures == 1);
  // Right after the failure the path is in backoff, whatever the passphrase.
  auto next = gate.admit(UnsealPath::remote);
  CHECK((next.verdict == UnsealGate::Verdict::backoff));
  CHECK(next.retryAfter == std::chrono::seconds(1));
}

TEST_CASE("an attempt cut off mid-KDF stays counted, across a restart") {
  TempDir tmp;
  const fs::path file = tmp.path / Store::kFileName;
  {
    auto store = initialised(file);
    UnsealGate gate(*store);
    auto a = gate.admit(UnsealPath::remote);
    REQUIRE((a.verdict == UnsealGate::Verdict::admitted));
    // The process dies here, before the KDF's verdict: nothing else runs.
  }
  auto store = openStore(file);
  CHECK(store->unsealAttempts(UnsealPath::remote)->failures == 1);
  UnsealGate gate(*store);
  CHECK((gate.admit(UnsealPath::remote).verdict == UnsealGate::Verdict::backoff));
}

TEST_CASE("a success resets the path's counter; the right passphrase is not delayed by the other path") {
  TempDir tmp;
  auto store = initialised(tmp.path / Store::kFileName);
  for (int i = 0; i < 6; ++i) REQUIRE(store->recordUnsealFailure(UnsealPath::remote).ok());
  UnsealGate gate(*store);
  auto remote = gate.admit(UnsealPath::remote);
  CHECK((remote.verdict == UnsealGate::Verdict::backoff));
  CHECK(remote.retryAfter > std::chrono::seconds(30));  // 32 s after 6 failures

  auto trusted = gate.admit(UnsealPath::trusted);
  REQUIRE((trusted.verdict == UnsealGate::Verdict::admitted));
  CHECK(gate.busy());
  REQUIRE(store->unlock("correct horse").ok());
  REQUIRE(trusted.ticket.unlocked().ok());
  CHECK_FALSE(gate.busy());
  CHECK(store->unsealAttempts(UnsealPath::trusted)->failures == 0);
  CHECK(store->unsealAttempts(UnsealPath::remote)->failures == 6);  // untouched
}

TEST_CASE("the gate fails closed when the counter cannot be written") {
  TempDir tmp;
  const fs::path file = tmp.path / Store::kFileName;
  StoreOptions options;
  options.busyTimeout = std::chrono::milliseconds(50);
  auto store = initialised(file, options);
  UnsealGate gate(*store);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto a = gate.admit(UnsealPath::trusted);
  CHECK((a.verdict == UnsealGate::Verdict::failed));
  CHECK_FALSE(a.ticket);
  REQUIRE(a.error.has_value());
  CHECK(a.error->message.find("refusing to test a passphrase") != std::string::npos);
  CHECK_FALSE(gate.busy());
  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  CHECK((gate.admit(UnsealPath::trusted).verdict == UnsealGate::Verdict::admitted));
}

TEST_CASE("backoff doubles from 1 s and stops at 15 minutes") {
  CHECK(UnsealGate::backoff(0) == std::chrono::seconds(0));
  CHECK(UnsealGate::backoff(1) == std::chrono::seconds(1));
  CHECK(UnsealGate::backoff(2) == std::chrono::seconds(2));
  CHECK(UnsealGate::backoff(5) == std::chrono::seconds(16));
  CHECK(UnsealGate::backoff(11) == std::chrono::seconds(900));
  CHECK(UnsealGate::backoff(1000) == std::chrono::seconds(900));
}
