#include "api/metrics_registry.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include <prometheus/check_names.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace foundationd::api {
namespace {

// prometheus-cpp 1.0 writes HELP as given; the exposition format wants
// backslash and newline escaped. Our HELP texts are constants: refuse the
// two characters rather than emit a broken line.
const std::string& checkedHelp(const std::string& name, const std::string& help) {
  if (help.find_first_of("\\\n") != std::string::npos) {
    throw std::invalid_argument("metric " + name + ": HELP must not hold a backslash or newline");
  }
  return help;
}

template <typename T>
T& registered(std::mutex& lock, std::vector<std::unique_ptr<T>>& into, std::unique_ptr<T> f) {
  T& ref = *f;
  std::lock_guard guard(lock);
  into.push_back(std::move(f));
  return ref;
}

}  // namespace

// --- MetricFamily -------------------------------------------------------------

MetricFamily::MetricFamily(std::string name, std::vector<std::string> labelNames, bool histogram)
    : name_(std::move(name)), labelNames_(std::move(labelNames)) {
  if (!prometheus::CheckMetricName(name_)) {
    throw std::invalid_argument("bad metric name: " + name_);
  }
  for (const std::string& l : labelNames_) {
    if (!prometheus::CheckLabelName(l) || (histogram && l == "le")) {
      throw std::invalid_argument("bad label name " + l + " on metric " + name_);
    }
  }
  std::vector<std::string> sorted = labelNames_;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw std::invalid_argument("duplicate label name on metric " + name_);
  }
}

prometheus::Labels MetricFamily::labels(const LabelValues& values) const {
  if (values.size() != labelNames_.size()) {
    throw std::invalid_argument("metric " + name_ + " takes " + std::to_string(labelNames_.size()) +
                                " label values, got " + std::to_string(values.size()));
  }
  prometheus::Labels out;
  for (std::size_t i = 0; i < values.size(); ++i) out.emplace(labelNames_[i], values[i]);
  return out;
}

// --- Counter --------------------------------------------------------------------

Counter::Counter(prometheus::Registry& registry, std::string name, const std::string& help,
                 std::vector<std::string> labelNames)
    : MetricFamily(std::move(name), std::move(labelNames), false),
      family_(prometheus::BuildCounter()
                  .Name(this->name())
                  .Help(checkedHelp(this->name(), help))
                  .Register(registry)) {
  if (this->labelNames().empty()) family_.Add({});
}

void Counter::inc(const LabelValues& values, double by) {
  const prometheus::Labels l = labels(values);
  if (!(by >= 0)) return;
  family_.Add(l).Increment(by);
}

void Counter::set(const LabelValues& values, double total) {
  prometheus::Counter& c = family_.Add(labels(values));
  const double by = total - c.Value();
  if (by > 0) c.Increment(by);
}

double Counter::value(const LabelValues& values) const {
  const prometheus::Labels l = labels(values);
  if (!family_.Has(l)) return 0;
  return family_.Add(l).Value();
}

// --- Gauge ----------------------------------------------------------------------

Gauge::Gauge(prometheus::Registry& registry, std::mutex& renderLock, std::string name,
             const std::string& help, std::vector<std::string> labelNames)
    : MetricFamily(std::move(name), std::move(labelNames), false),
      family_(prometheus::BuildGauge()
                  .Name(this->name())
                  .Help(checkedHelp(this->name(), help))
                  .Register(registry)),
      renderLock_(renderLock) {
  if (this->labelNames().empty()) series({});
}

prometheus::Gauge& Gauge::series(const LabelValues& values) {
  prometheus::Gauge& g = family_.Add(labels(values));
  std::lock_guard guard(mutex_);
  touched_.insert(values);
  return g;
}

void Gauge::set(const LabelValues& values, double v) { series(values).Set(v); }

void Gauge::inc(const LabelValues& values, double by) { series(values).Increment(by); }

double Gauge::value(const LabelValues& values) const {
  const prometheus::Labels l = labels(values);
  if (!family_.Has(l)) return 0;
  return family_.Add(l).Value();
}

void Gauge::dropAllLocked() {
  for (const LabelValues& values : touched_) {
    const prometheus::Labels l = labels(values);
    if (family_.Has(l)) family_.Remove(&family_.Add(l));
  }
  touched_.clear();
}

void Gauge::clear() {
  std::lock_guard scrape(renderLock_);
  std::lock_guard guard(mutex_);
  dropAllLocked();
  if (labelNames().empty()) {
    family_.Add({});
    touched_.insert({});
  }
}

void Gauge::unset() {
  std::lock_guard scrape(renderLock_);
  std::lock_guard guard(mutex_);
  dropAllLocked();
}

void Gauge::replaceAll(std::map<LabelValues, double> next) {
  for (const auto& [values, v] : next) (void)labels(values);  // throws before any change
  if (labelNames().empty() && next.empty()) next[{}] = 0;
  std::lock_guard scrape(renderLock_);
  std::lock_guard guard(mutex_);
  dropAllLocked();
  for (const auto& [values, v] : next) {
    family_.Add(labels(values)).Set(v);
    touched_.insert(values);
  }
}

// --- Histogram ------------------------------------------------------------------

Histogram::Histogram(prometheus::Registry& registry, std::string name, const std::string& help,
                     std::vector<std::string> labelNames, std::vector<double> buckets)
    : MetricFamily(std::move(name), std::move(labelNames), true),
      family_(prometheus::BuildHistogram()
                  .Name(this->name())
                  .Help(checkedHelp(this->name(), help))
                  .Register(registry)),
      buckets_(std::move(buckets)) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    if (!std::isfinite(buckets_[i]) || (i > 0 && !(buckets_[i] > buckets_[i - 1]))) {
      throw std::invalid_argument("histogram " + this->name() +
                                  ": buckets must be finite and strictly increasing");
    }
  }
  if (this->labelNames().empty()) family_.Add({}, buckets_);
}

std::vector<double> Histogram::defaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Histogram::observe(const LabelValues& values, double v) {
  const prometheus::Labels l = labels(values);
  if (std::isnan(v)) return;
  family_.Add(l, buckets_).Observe(v);
}

Histogram::Snapshot Histogram::snapshot(const LabelValues& values) const {
  Snapshot snap;
  snap.cumulative.assign(buckets_.size() + 1, 0);
  const prometheus::Labels l = labels(values);
  if (!family_.Has(l)) return snap;
  const prometheus::ClientMetric m = family_.Add(l, buckets_).Collect();
  for (std::size_t i = 0; i < m.histogram.bucket.size() && i < snap.cumulative.size(); ++i) {
    snap.cumulative[i] = m.histogram.bucket[i].cumulative_count;
  }
  snap.sum = m.histogram.sample_sum;
  snap.count = m.histogram.sample_count;
  return snap;
}

// --- MetricsRegistry ------------------------------------------------------------

MetricsRegistry::MetricsRegistry() : registry_(prometheus::Registry::InsertBehavior::Throw) {}

Counter& MetricsRegistry::counter(std::string name, std::string help,
                                  std::vector<std::string> labelNames) {
  return registered(familiesLock_, counters_,
                    std::make_unique<Counter>(registry_, std::move(name), help,
                                              std::move(labelNames)));
}

Gauge& MetricsRegistry::gauge(std::string name, std::string help,
                              std::vector<std::string> labelNames) {
  return registered(familiesLock_, gauges_,
                    std::make_unique<Gauge>(registry_, renderLock_, std::move(name), help,
                                            std::move(labelNames)));
}

Histogram& MetricsRegistry::histogram(std::string name, std::string help,
                                      std::vector<std::string> labelNames,
                                      std::vector<double> buckets) {
  return registered(familiesLock_, histograms_,
                    std::make_unique<Histogram>(registry_, std::move(name), help,
                                                std::move(labelNames), std::move(buckets)));
}

std::string MetricsRegistry::render() const {
  std::vector<prometheus::MetricFamily> families;
  {
    std::lock_guard scrape(renderLock_);
    families = registry_.Collect();
  }
  std::sort(families.begin(), families.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (prometheus::MetricFamily& f : families) {
    std::sort(f.metric.begin(), f.metric.end(),
              [](const auto& a, const auto& b) { return a.label < b.label; });
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace foundationd::api
