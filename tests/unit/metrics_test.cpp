// The metrics registry's exposition format, exactly, and the foundationd
// metric set. The promtool check runs as its own meson test (api-promtool).
#include "api/metrics.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "api/metrics_registry.hpp"
#include "api/metrics_text.hpp"

#include <cmath>
#include <limits>

#include <prometheus/text_serializer.h>

namespace api = foundationd::api;

TEST_CASE("the text format, exactly: help, type, labels, escaping, histograms, order") {
  api::MetricsRegistry reg;
  auto& requests = reg.counter("test_requests_total", "Requests by code.", {"code"});
  requests.inc({"500"}, 3);
  requests.inc({"200"});
  requests.inc({"200"});
  requests.inc({"200"}, -1);  // ignored: counters only go up
  auto& temp = reg.gauge("test_temperature_celsius", "A gauge.", {"room"});
  temp.set({"a\"b\\c\nd"}, -1.5);
  auto& up = reg.gauge("test_up", "Plain gauge, never touched.");
  (void)up;
  auto& dur = reg.histogram("test_duration_seconds", "Durations.", {}, {0.5, 1});
  dur.observe(0.25);
  dur.observe(0.5);  // le is inclusive
  dur.observe(0.5);
  dur.observe(4);
  auto& lat = reg.histogram("test_latency_seconds", "Labelled histogram.", {"op", "kind"}, {1});
  lat.observe({"read", "b"}, 2);
  lat.observe({"read", "a"}, 0.5);
  auto& empty = reg.counter("test_empty_total", "Labelled, never used.", {"x"});
  (void)empty;

  // Families by name, series by labels; a family with no series is left out
  // (prometheus-cpp's serializer), histograms give count and sum first.
  const std::string want =
      "# HELP test_duration_seconds Durations.\n"
      "# TYPE test_duration_seconds histogram\n"
      "test_duration_seconds_count 4\n"
      "test_duration_seconds_sum 5.25\n"
      "test_duration_seconds_bucket{le=\"0.5\"} 3\n"
      "test_duration_seconds_bucket{le=\"1\"} 3\n"
      "test_duration_seconds_bucket{le=\"+Inf\"} 4\n"
      "# HELP test_latency_seconds Labelled histogram.\n"
      "# TYPE test_latency_seconds histogram\n"
      "test_latency_seconds_count{kind=\"a\",op=\"read\"} 1\n"
      "test_latency_seconds_sum{kind=\"a\",op=\"read\"} 0.5\n"
      "test_latency_seconds_bucket{kind=\"a\",op=\"read\",le=\"1\"} 1\n"
      "test_latency_seconds_bucket{kind=\"a\",op=\"read\",le=\"+Inf\"} 1\n"
      "test_latency_seconds_count{kind=\"b\",op=\"read\"} 1\n"
      "test_latency_seconds_sum{kind=\"b\",op=\"read\"} 2\n"
      "test_latency_seconds_bucket{kind=\"b\",op=\"read\",le=\"1\"} 0\n"
      "test_latency_seconds_bucket{kind=\"b\",op=\"read\",le=\"+Inf\"} 1\n"
      "# HELP test_requests_total Requests by code.\n"
      "# TYPE test_requests_total counter\n"
      "test_requests_total{code=\"200\"} 2\n"
      "test_requests_total{code=\"500\"} 3\n"
      "# HELP test_temperature_celsius A gauge.\n"
      "# TYPE test_temperature_celsius gauge\n"
      "test_temperature_celsius{room=\"a\\\"b\\\\c\\nd\"} -1.5\n"
      "# HELP test_up Plain gauge, never touched.\n"
      "# TYPE test_up gauge\n"
      "test_up 0\n";
  CHECK(reg.render() == want);
  CHECK(reg.render() == want);  // deterministic

  const auto snap = dur.snapshot();
  CHECK(snap.count == 4);
  CHECK(snap.sum == 5.25);
  CHECK(snap.cumulative == std::vector<std::uint64_t>{3, 3, 4});
  CHECK(lat.snapshot({"read", "zzz"}).count == 0);
  CHECK(requests.value({"200"}) == 2);
  CHECK(temp.value({"nowhere"}) == 0);
}

TEST_CASE("serializeText writes what prometheus-cpp's TextSerializer writes, byte for byte") {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  const double values[] = {0, -0.0, 1, -1.5, 0.1, 0.1 + 0.2, 1e-5, 1.0 / 3, 42, 1e15, 1e16,
                           12345678901234567.0, 1700000000.5, 1796334490.373679, 0.122548573,
                           std::numeric_limits<double>::max(), std::numeric_limits<double>::min(),
                           std::numeric_limits<double>::denorm_min(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN()};
  std::vector<MetricFamily> families;
  MetricFamily g{"g", "Gauges.", MetricType::Gauge, {}};
  MetricFamily c{"c_total", "", MetricType::Counter, {}};
  int i = 0;
  for (double v : values) {
    ClientMetric m;
    m.label = {{"k", std::to_string(i++)}, {"q", "a\"b\\c\nd"}};
    m.gauge.value = v;
    m.counter.value = v;
    g.metric.push_back(m);
    m.label.clear();
    c.metric.push_back(m);
  }
  families.push_back(g);
  families.push_back(c);
  MetricFamily h{"h_seconds", "Histograms.", MetricType::Histogram, {}};
  for (bool withInf : {false, true}) {
    ClientMetric m;
    m.label = {{"step", withInf ? "inf" : "plain"}};
    m.histogram.sample_count = 18446744073709551615ull;
    m.histogram.sample_sum = 0.30000000000000004;
    for (double b : {0.001, 0.0025, 0.1, 1.0, 2.5, 300.0}) {
      m.histogram.bucket.push_back({static_cast<std::uint64_t>(b * 1000), b});
    }
    if (withInf) {
      m.histogram.bucket.push_back({7, std::numeric_limits<double>::infinity()});
    }
    h.metric.push_back(m);
  }
  families.push_back(h);
  MetricFamily s{"s", "Summaries.", MetricType::Summary, {}};
  ClientMetric sm;
  sm.summary.sample_count = 3;
  sm.summary.sample_sum = 1.5;
  sm.summary.quantile = {{0.5, 0.25}, {0.99, 1.0 / 7}};
  sm.timestamp_ms = 1700000000123;
  s.metric.push_back(sm);
  families.push_back(s);
  MetricFamily u{"u", "Untyped.", MetricType::Untyped, {}};
  ClientMetric um;
  um.untyped.value = 2.5;
  u.metric.push_back(um);
  families.push_back(u);
  CHECK(api::serializeText(families) == prometheus::TextSerializer().Serialize(families));
}

TEST_CASE("values: integers plainly, fractions and large values round-trip, +Inf by name") {
  api::MetricsRegistry reg;
  auto& g = reg.gauge("v", "Values.", {"k"});
  g.set({"a"}, 0);
  g.set({"b"}, 42);
  g.set({"c"}, 0.1);
  g.set({"d"}, 1700000000.5);
  g.set({"e"}, 1.0 / 0.0);
  auto& c = reg.counter("mirrored_total", "A total kept elsewhere.");
  c.set({}, 10);
  c.set({}, 4);  // a mirrored total never goes back
  CHECK(c.value() == 10);
  const std::string text = reg.render();
  for (const char* line : {"v{k=\"a\"} 0\n", "v{k=\"b\"} 42\n", "v{k=\"c\"} 0.1\n",
                           "v{k=\"d\"} 1700000000.5\n", "v{k=\"e\"} +Inf\n",
                           "mirrored_total 10\n"}) {
    CHECK_MESSAGE(text.find(line) != std::string::npos, line);
  }
}

TEST_CASE("gauges: clear, replaceAll and unset") {
  api::MetricsRegistry reg;
  auto& g = reg.gauge("g", "G.", {"k"});
  g.set({"a"}, 1);
  g.inc({"a"}, 2);
  CHECK(g.value({"a"}) == 3);
  g.replaceAll({{{"b"}, 5}});
  CHECK(g.value({"a"}) == 0);
  CHECK(reg.render() == "# HELP g G.\n# TYPE g gauge\ng{k=\"b\"} 5\n");
  g.clear();
  CHECK(reg.render() == "");
  auto& plain = reg.gauge("p", "P.");
  CHECK(reg.render() == "# HELP p P.\n# TYPE p gauge\np 0\n");
  plain.unset();
  CHECK(reg.render() == "");
  plain.set(2);
  CHECK(reg.render() == "# HELP p P.\n# TYPE p gauge\np 2\n");
  plain.clear();
  CHECK(reg.render() == "# HELP p P.\n# TYPE p gauge\np 0\n");
}

TEST_CASE("misuse is a bug: bad names, duplicates, wrong label counts throw") {
  api::MetricsRegistry reg;
  CHECK_THROWS_AS(reg.counter("1bad", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.counter("bad-name", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.gauge("ok", "x", {"__reserved"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.gauge("ok2", "x", {"a", "a"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("h", "x", {"le"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.histogram("h2", "x", {}, {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(reg.gauge("help_nl", "two\nlines"), std::invalid_argument);
  auto& c = reg.counter("c_total", "x", {"a"});
  CHECK_THROWS_AS(reg.counter("c_total", "again"), std::invalid_argument);
  CHECK_THROWS_AS(c.inc({}), std::invalid_argument);
  CHECK_THROWS_AS(c.inc({"1", "2"}), std::invalid_argument);
}

TEST_CASE("Metrics registers every metric INTERFACES.md names, and the process_* ones") {
  api::Metrics m;
  // A labelled family with no series yet is not rendered (prometheus-cpp):
  // one event of each kind, and a status with [vault], a resource and a
  // revision, make every family show.
  m.driftRepairs().inc({"container"}, 0);
  m.webhookDeliveries().inc({"accepted"}, 0);
  m.observeDockerRequest("GET /_ping", 200, std::chrono::milliseconds(1));
  m.vaultRequests().inc({"200"}, 0);
  m.specLastFetch().set(1700000000);
  api::StatusSnapshot s;
  s.vault = {true, true, false};
  s.spec.revision = "abc";
  s.resources.push_back({});
  s.resources.back().kind = "container";
  m.updateFromStatus(s);
  const std::string text = m.render();
  for (const char* name : {"foundationd_build_info",
                           "foundationd_locked",
                           "foundationd_vault_initialized",
                           "foundationd_vault_sealed",
                           "foundationd_reconcile_total",
                           "foundationd_reconcile_duration_seconds",
                           "foundationd_resources",
                           "foundationd_drift_repairs_total",
                           "foundationd_spec_info",
                           "foundationd_spec_last_fetch_timestamp_seconds",
                           "foundationd_webhook_deliveries_total",
                           "foundationd_unseal_attempts_total",
                           "foundationd_docker_requests_total",
                           "foundationd_docker_request_duration_seconds",
                           "foundationd_vault_requests_total",
                           "process_resident_memory_bytes",
                           "process_cpu_seconds_total",
                           "process_open_fds",
                           "process_start_time_seconds",
                           "process_virtual_memory_bytes"}) {
    CAPTURE(name);
    CHECK(text.find(std::string("# TYPE ") + name + " ") != std::string::npos);
  }
  CHECK(text.find("foundationd_build_info{revision=\"") != std::string::npos);
  CHECK(text.find("\nfoundationd_locked 1\n") != std::string::npos);
  CHECK(text.find("\nfoundationd_unseal_attempts_total{result=\"wrong_passphrase\"} 0\n") !=
        std::string::npos);
  CHECK(m.registry().render().find("process_resident_memory_bytes 0\n") == std::string::npos);
}

TEST_CASE("Metrics helpers: reconcile, unseal, Docker requests, state from the status") {
  api::Metrics m;
  m.recordReconcile("converged", std::chrono::milliseconds(1500));
  m.recordUnseal(api::UnsealOutcome::wrong_passphrase);
  m.recordUnseal(api::UnsealOutcome::unlocked);
  m.observeDockerRequest("GET /containers/json", 200, std::chrono::milliseconds(3));
  m.observeDockerRequest("GET /containers/json", 0, std::chrono::seconds(60));
  CHECK(m.reconcileTotal().value({"converged"}) == 1);
  CHECK(m.reconcileDuration().snapshot().sum == doctest::Approx(1.5));
  CHECK(m.unsealAttempts().value({"wrong_passphrase"}) == 1);
  CHECK(m.unsealAttempts().value({"unlocked"}) == 1);
  CHECK(m.dockerRequests().value({"GET /containers/json", "200"}) == 1);
  CHECK(m.dockerRequests().value({"GET /containers/json", "error"}) == 1);
  CHECK(m.dockerRequestDuration().snapshot({"GET /containers/json"}).count == 2);

  api::StatusSnapshot s;
  s.locked = false;
  s.vault = {true, true, true};
  s.spec.revision = "abc";
  s.resources.push_back({"container", "a", api::ResourceStatus::converged, "", {}});
  s.resources.push_back({"container", "b", api::ResourceStatus::converged, "", {}});
  s.resources.push_back({"volume", "v", api::ResourceStatus::failed, "disk full", {}});
  m.updateFromStatus(s);
  CHECK(m.locked().value() == 0);
  CHECK(m.vaultInitialized().value() == 1);
  CHECK(m.vaultSealed().value() == 1);
  CHECK(m.resources().value({"container", "converged"}) == 2);
  CHECK(m.resources().value({"volume", "failed"}) == 1);
  CHECK(m.specInfo().value({"abc"}) == 1);

  // A new snapshot replaces the derived series entirely.
  s.resources.pop_back();
  s.spec.revision = "def";
  m.updateFromStatus(s);
  const std::string text = m.registry().render();
  CHECK(text.find("kind=\"volume\"") == std::string::npos);
  CHECK(text.find("revision=\"abc\"") == std::string::npos);
  CHECK(m.specInfo().value({"def"}) == 1);
}

TEST_CASE("per-step durations and change counts") {
  api::Metrics m;
  CHECK(m.render().find("foundationd_reconcile_step_duration_seconds") == std::string::npos);
  m.recordStep("docker", std::chrono::milliseconds(3));
  m.recordStep("docker", std::chrono::milliseconds(40));
  m.recordStep("vault", std::chrono::microseconds(500));
  m.changes().inc({"container"});
  const auto docker = m.reconcileStepDuration().snapshot({"docker"});
  CHECK(docker.count == 2);
  CHECK(docker.sum == doctest::Approx(0.043));
  CHECK(docker.cumulative[0] == 0);  // le 1 ms
  CHECK(docker.cumulative[2] == 1);  // le 5 ms
  CHECK(m.reconcileStepDuration().snapshot({"vault"}).cumulative[0] == 1);
  const std::string text = m.render();
  CHECK(text.find("\nfoundationd_reconcile_step_duration_seconds_count{step=\"docker\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("\nfoundationd_changes_total{kind=\"container\"} 1\n") != std::string::npos);
}

TEST_CASE("metrics that do not apply have no sample, not a false 0") {
  api::Metrics m;
  api::StatusSnapshot s;  // a spec without [vault], a file source
  m.updateFromStatus(s);
  std::string text = m.render();
  CHECK(text.find("\nfoundationd_vault_sealed ") == std::string::npos);
  CHECK(text.find("\nfoundationd_vault_initialized ") == std::string::npos);
  CHECK(text.find("\nfoundationd_spec_last_fetch_timestamp_seconds ") == std::string::npos);
  // No metric for a feature that does not exist.
  CHECK(text.find("backup") == std::string::npos);
  // The locked start-up is its own result, never counted as failed.
  CHECK(text.find("\nfoundationd_reconcile_total{result=\"blocked\"} 0\n") != std::string::npos);
  m.recordReconcile("blocked", std::chrono::milliseconds(5));
  CHECK(m.reconcileTotal().value({"blocked"}) == 1);
  CHECK(m.reconcileTotal().value({"failed"}) == 0);

  // With [vault]: exported; without it again: gone.
  s.vault = {true, false, true};
  m.updateFromStatus(s);
  text = m.render();
  CHECK(text.find("\nfoundationd_vault_sealed 1\n") != std::string::npos);
  CHECK(text.find("\nfoundationd_vault_initialized 0\n") != std::string::npos);
  s.vault = {};
  m.updateFromStatus(s);
  CHECK(m.render().find("\nfoundationd_vault_sealed ") == std::string::npos);

  // After a git fetch the timestamp is there.
  m.specLastFetch().set(1700000000);
  CHECK(m.render().find("\nfoundationd_spec_last_fetch_timestamp_seconds ") != std::string::npos);
}

TEST_CASE("process metrics come from /proc/self") {
  api::Metrics m;
  m.updateProcess();
  const std::string text = m.registry().render();
  auto valueOf = [&](const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + name.size() + 2));
  };
  CHECK(valueOf("process_resident_memory_bytes") > 1e5);
  CHECK(valueOf("process_virtual_memory_bytes") > valueOf("process_resident_memory_bytes"));
  CHECK(valueOf("process_open_fds") >= 3);
  CHECK(valueOf("process_start_time_seconds") > 1.6e9);
  CHECK(valueOf("process_cpu_seconds_total") >= 0);
}

// The full default registry, with every family populated, through
// `promtool check metrics` (meson passes PROMTOOL to the `api` test).
TEST_CASE("promtool check metrics accepts the full default registry") {
  const char* promtool = std::getenv("PROMTOOL");
  const char* optOut = std::getenv("FOUNDATIOND_SKIP_PROMTOOL");
  const char* ci = std::getenv("CI");
  if ((promtool == nullptr || *promtool == '\0') && optOut != nullptr &&
      std::string(optOut) == "1" && !(ci != nullptr && std::string(ci) == "true")) {
    MESSAGE("skipped: FOUNDATIOND_SKIP_PROMTOOL=1");
    return;
  }
  const bool found = promtool != nullptr && *promtool != '\0';
  REQUIRE_MESSAGE(found,
                  "promtool not found: install Debian's prometheus package "
                  "(scripts/install-deps --test)");

  api::Metrics m;
  m.recordReconcile("converged", std::chrono::seconds(3));
  m.recordReconcile("failed", std::chrono::milliseconds(20));
  m.driftRepairs().inc({"container"});
  m.specLastFetch().set(1700000000);
  m.webhookDeliveries().inc({"accepted"});
  m.recordUnseal(api::UnsealOutcome::unlocked);
  m.observeDockerRequest("POST /containers/{id}/start", 204, std::chrono::milliseconds(40));
  m.vaultRequests().inc({"200"});
  m.recordReconcile("blocked", std::chrono::milliseconds(20));
  api::StatusSnapshot s;
  s.spec.revision = "3f2a1c9";
  s.resources.push_back({"container", "web", api::ResourceStatus::pending, "", {}});
  m.updateFromStatus(s);

  const auto file = std::filesystem::temp_directory_path() /
                    ("foundationd-metrics-" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream out(file);
    out << m.render();
  }
  const std::string cmd =
      std::string("'") + promtool + "' check metrics < '" + file.string() + "' 2>&1";
  std::string output;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = ::pclose(pipe);
  std::filesystem::remove(file);
  CAPTURE(output);
  CHECK(status == 0);
  CHECK(output.empty());
}

TEST_CASE("backup: timestamps, the condition and the last complete backup's sections") {
  api::Metrics m;
  api::StatusSnapshot s;
  m.updateFromStatus(s);  // no [backup]: no backup series at all
  CHECK(m.render().find("foundationd_backup_") == std::string::npos);

  s.backup.declared = true;
  s.backup.condition = "stale";
  api::BackupRunState last;
  last.id = "20261203T120000Z-a1b2";
  last.ok = true;
  last.offsite = "confirmed";
  last.finished = api::TimePoint(std::chrono::seconds(1764763200));
  last.sections = {{"postgres/main/db/appdb", 4096, 1.25}, {"state", 512, 0.5}};
  s.backup.lastAttempt = last;
  s.backup.lastComplete = last;
  m.updateFromStatus(s);
  const std::string text = m.render();
  CHECK(text.find("\nfoundationd_backup_last_success_timestamp_seconds 1764763200\n") !=
        std::string::npos);
  CHECK(text.find("\nfoundationd_backup_condition{condition=\"stale\"} 1\n") != std::string::npos);
  CHECK(text.find("\nfoundationd_backup_condition{condition=\"ok\"} 0\n") != std::string::npos);
  CHECK(text.find("\nfoundationd_backup_section_size_bytes{section=\"postgres/main/db/appdb\"} 4096\n") !=
        std::string::npos);
  CHECK(text.find("\nfoundationd_backup_section_duration_seconds{section=\"state\"} 0.5\n") !=
        std::string::npos);
  CHECK(text.find("\nfoundationd_backup_failures_total{reason=\"offsite\"} 0\n") !=
        std::string::npos);
  // Never verified: no timestamp, the failure counters at 0 for every reason.
  CHECK(text.find("foundationd_backup_last_verified_timestamp_seconds ") == std::string::npos);
  CHECK(text.find("\nfoundationd_backup_verify_failures_total{reason=\"mismatch\"} 0\n") !=
        std::string::npos);
  s.backup.lastVerifiedOk = api::TimePoint(std::chrono::seconds(1764766800));
  m.updateFromStatus(s);
  CHECK(m.render().find("\nfoundationd_backup_last_verified_timestamp_seconds 1764766800\n") !=
        std::string::npos);

  // No complete backup any more in the status (a fresh state): its series go.
  s.backup.lastComplete.reset();
  s.backup.condition = "failed";
  m.updateFromStatus(s);
  const std::string after = m.render();
  CHECK(after.find("foundationd_backup_last_success_timestamp_seconds ") == std::string::npos);
  CHECK(after.find("foundationd_backup_section_size_bytes{") == std::string::npos);
  CHECK(after.find("\nfoundationd_backup_condition{condition=\"failed\"} 1\n") != std::string::npos);
}
