// A small Prometheus metrics registry: counters, gauges and histograms with
// labels, rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Output is deterministic: families sorted by name, series by label values
// (byte order), histogram buckets in ascending order; every family has its
// HELP and TYPE lines. A family without labels always shows its one series
// (0 until touched); a labelled family shows only the series touched so far.
//
// Thread-safety: every operation may be called from any thread. Each family
// guards its series with its own mutex; registration and render() take the
// registry's mutex. (In the daemon everything runs on the io_context thread
// except the Docker client's request observer and /proc reads, so contention
// is nil; the locks make the registry safe to share anyway.)
//
// Errors: registering a bad or duplicate name, or passing the wrong number
// of label values, is a bug and throws std::invalid_argument.
//
// Lifetime: families live as long as the registry; references returned by
// counter()/gauge()/histogram() stay valid.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace foundationd::api {

using LabelValues = std::vector<std::string>;

enum class MetricType { counter, gauge, histogram };

class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::vector<std::string> labelNames,
               MetricType type);
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const noexcept { return name_; }
  MetricType type() const noexcept { return type_; }
  const std::vector<std::string>& labelNames() const noexcept { return labelNames_; }

  // Appends "# HELP", "# TYPE" and every series.
  void render(std::string& out) const;

 protected:
  void checkLabels(const LabelValues& values) const;
  // `{a="x",b="y"}` for these values, with `extra` (e.g. le="0.5") appended;
  // "" when there are no labels at all.
  std::string labelText(const LabelValues& values, const std::string& extra = {}) const;
  virtual void renderSeries(std::string& out) const = 0;

  mutable std::mutex mutex_;

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> labelNames_;
  MetricType type_;
};

// A monotonic total.
class Counter final : public MetricFamily {
 public:
  Counter(std::string name, std::string help, std::vector<std::string> labelNames);
  // `by` must be >= 0 (negative increments are ignored).
  void inc(const LabelValues& labels = {}, double by = 1);
  // Mirrors a total kept elsewhere (process CPU time, the Docker client's
  // own tallies). The caller keeps it monotonic.
  void set(const LabelValues& labels, double total);
  double value(const LabelValues& labels = {}) const;

 private:
  void renderSeries(std::string& out) const override;
  std::map<LabelValues, double> series_;
};

// A value that goes up and down.
class Gauge final : public MetricFamily {
 public:
  Gauge(std::string name, std::string help, std::vector<std::string> labelNames);
  void set(const LabelValues& labels, double v);
  void set(double v) { set({}, v); }
  void inc(const LabelValues& labels = {}, double by = 1);
  double value(const LabelValues& labels = {}) const;
  // Drops every series (e.g. before re-deriving a set of label values); a
  // family without labels goes back to 0.
  void clear();
  // Replaces every series at once (one lock: a scrape never sees half).
  void replaceAll(std::map<LabelValues, double> series);
  // No sample at all, not even for a family without labels (only its HELP
  // and TYPE are rendered) until the next set()/inc(): for a value that does
  // not apply (no Vault in the spec, no git source), rather than a false 0.
  void unset();

 private:
  void renderSeries(std::string& out) const override;
  std::map<LabelValues, double> series_;
};

// Observations counted into cumulative buckets (upper bounds, "le"), with
// their sum and count. "+Inf" is implicit.
class Histogram final : public MetricFamily {
 public:
  // `buckets` must be finite and strictly increasing.
  Histogram(std::string name, std::string help, std::vector<std::string> labelNames,
            std::vector<double> buckets);
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
  struct Series {
    std::vector<std::uint64_t> counts;  // per bucket (not cumulative), then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  void renderSeries(std::string& out) const override;
  std::vector<double> buckets_;
  std::map<LabelValues, Series> series_;
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& counter(std::string name, std::string help, std::vector<std::string> labelNames = {});
  Gauge& gauge(std::string name, std::string help, std::vector<std::string> labelNames = {});
  Histogram& histogram(std::string name, std::string help, std::vector<std::string> labelNames,
                       std::vector<double> buckets = Histogram::defaultBuckets());

  // The whole exposition, families sorted by name.
  std::string render() const;

 private:
  template <typename F, typename... Args>
  F& add(Args&&... args);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<MetricFamily>> families_;  // by name
};

// Text-format helpers (exposed for tests).
std::string formatMetricValue(double v);             // "1", "0.25", "+Inf", "NaN"
std::string escapeLabelValue(const std::string& v);  // \\ \" \n
std::string escapeHelp(const std::string& v);        // \\ \n

}  // namespace foundationd::api
