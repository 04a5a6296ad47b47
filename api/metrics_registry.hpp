// The metrics registry: counters, gauges and histograms with labels, kept in
// prometheus-cpp's core registry, rendered in the text exposition format
// 0.0.4 by serializeText() (the same bytes as prometheus-cpp's own text
// serializer, which a unit test compares, written into one string; that
// serializer was most of a scrape's cost). This file is the thin shape the daemon uses:
// label values by position (the family declares its label names once),
// mirrored totals, a gauge replaced in one step, and "no sample" for a value
// that does not apply.
//
// Output is deterministic: families sorted by name, series by label values
// (prometheus-cpp keeps series in a hash map; render() sorts what it
// collects). A family without labels shows its one series (0 until touched)
// unless unset(); a family with no series at all is not rendered (not even
// its HELP and TYPE lines: prometheus-cpp omits it, which Prometheus reads as
// "no sample").
//
// Thread-safety: every operation may be called from any thread
// (prometheus-cpp's families and metrics are thread-safe; a gauge's
// replaceAll() and render() share one lock so a scrape never sees half).
//
// Errors: registering a bad or duplicate name, a HELP text with a newline or
// backslash (prometheus-cpp 1.0 writes HELP unescaped), or passing the wrong
// number of label values, is a bug and throws std::invalid_argument.
//
// Lifetime: families live as long as the registry; references returned by
// counter()/gauge()/histogram() stay valid.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace foundationd::api {

using LabelValues = std::vector<std::string>;

class MetricFamily {
 public:
  MetricFamily(std::string name, std::vector<std::string> labelNames, bool histogram);
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& labelNames() const noexcept { return labelNames_; }

 protected:
  ~MetricFamily() = default;
  // Throws unless there is one value per label name.
  prometheus::Labels labels(const LabelValues& values) const;

 private:
  std::string name_;
  std::vector<std::string> labelNames_;
};

// A monotonic total.
class Counter final : public MetricFamily {
 public:
  Counter(prometheus::Registry& registry, std::string name, const std::string& help,
          std::vector<std::string> labelNames);
  // `by` must be >= 0 (negative increments are ignored).
  void inc(const LabelValues& labels = {}, double by = 1);
  // Mirrors a total kept elsewhere (process CPU time, the Docker client's
  // own tallies): a total below the current value is ignored.
  void set(const LabelValues& labels, double total);
  double value(const LabelValues& labels = {}) const;

 private:
  prometheus::Family<prometheus::Counter>& family_;
};

// A value that goes up and down.
class Gauge final : public MetricFamily {
 public:
  Gauge(prometheus::Registry& registry, std::mutex& renderLock, std::string name,
        const std::string& help, std::vector<std::string> labelNames);
  void set(const LabelValues& labels, double v);
  void set(double v) { set({}, v); }
  void inc(const LabelValues& labels = {}, double by = 1);
  double value(const LabelValues& labels = {}) const;
  // Drops every series (e.g. before re-deriving a set of label values); a
  // family without labels goes back to 0.
  void clear();
  // Replaces every series at once (a scrape never sees half).
  void replaceAll(std::map<LabelValues, double> series);
  // No sample at all, not even for a family without labels, until the next
  // set()/inc(): for a value that does not apply (no Vault in the spec, no
  // git source), rather than a false 0.
  void unset();

 private:
  prometheus::Gauge& series(const LabelValues& labels);
  void dropAllLocked();

  prometheus::Family<prometheus::Gauge>& family_;
  std::mutex& renderLock_;
  mutable std::mutex mutex_;  // guards touched_
  std::set<LabelValues> touched_;
};

// Observations counted into cumulative buckets (upper bounds, "le"), with
// their sum and count. "+Inf" is implicit.
class Histogram final : public MetricFamily {
 public:
  // `buckets` must be finite and strictly increasing.
  Histogram(prometheus::Registry& registry, std::string name, const std::string& help,
            std::vector<std::string> labelNames, std::vector<double> buckets);
  void observe(const LabelValues& labels, double v);
  void observe(double v) { observe({}, v); }

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bucket, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot(const LabelValues& labels = {}) const;
  const std::vector<double>& buckets() const noexcept { return buckets_; }

  // Prometheus client libraries' defaults: 5 ms .. 10 s.
  static std::vector<double> defaultBuckets();

 private:
  prometheus::Family<prometheus::Histogram>& family_;
  std::vector<double> buckets_;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& counter(std::string name, std::string help, std::vector<std::string> labelNames = {});
  Gauge& gauge(std::string name, std::string help, std::vector<std::string> labelNames = {});
  Histogram& histogram(std::string name, std::string help, std::vector<std::string> labelNames,
                       std::vector<double> buckets = Histogram::defaultBuckets());

  // The whole exposition, families sorted by name, series by labels.
  std::string render() const;

 private:
  prometheus::Registry registry_;
  mutable std::mutex renderLock_;
  std::mutex familiesLock_;
  std::vector<std::unique_ptr<Counter>> counters_;
  std::vector<std::unique_ptr<Gauge>> gauges_;
  std::vector<std::unique_ptr<Histogram>> histograms_;
};

}  // namespace foundationd::api
