#include "api/metrics_registry.hpp"
#include "api/metrics_text.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <cmath>
#include <stdexcept>
#include <utility>

#include <prometheus/check_names.h>
#include <prometheus/metric_family.h>

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

// The text exposition format, as prometheus-cpp 1.0's TextSerializer writes
// it (the same bytes: tests/unit/metrics_test.cpp compares the two), into one
// string: its ostream, a locale imbued and a printf per value, were most of
// a scrape's time.
void putDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "Nan";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else {
    // An ostream's default format with precision digits10 + 1: %.16g.
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general,
                           std::numeric_limits<double>::digits10 + 1);
    out.append(buf, r.ptr);
  }
}

template <typename Int>
void putInt(std::string& out, Int v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void putLabelValue(std::string& out, const std::string& v) {
  for (char c : v) {
    if (c == '\n') {
      out += "\\n";
    } else {
      if (c == '\\' || c == '"') out += '\\';
      out += c;
    }
  }
}

// name + suffix + {labels[,extra="value"]} + ' '
void putHead(std::string& out, const prometheus::MetricFamily& family,
             const prometheus::ClientMetric& metric, std::string_view suffix = {},
             std::string_view extraName = {}, const std::string* extraText = nullptr,
             const double* extraValue = nullptr) {
  out += family.name;
  out += suffix;
  if (!metric.label.empty() || !extraName.empty()) {
    out += '{';
    const char* prefix = "";
    for (const auto& lp : metric.label) {
      out += prefix;
      out += lp.name;
      out += "=\"";
      putLabelValue(out, lp.value);
      out += '"';
      prefix = ",";
    }
    if (!extraName.empty()) {
      out += prefix;
      out += extraName;
      out += "=\"";
      if (extraText != nullptr) putLabelValue(out, *extraText);
      if (extraValue != nullptr) putDouble(out, *extraValue);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

void putTail(std::string& out, const prometheus::ClientMetric& metric) {
  if (metric.timestamp_ms != 0) {
    out += ' ';
    putInt(out, metric.timestamp_ms);
  }
  out += '\n';
}

void putFamily(std::string& out, const prometheus::MetricFamily& family) {
  using prometheus::MetricType;
  if (!family.help.empty()) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    out += family.help;
    out += '\n';
  }
  const char* type = "untyped";
  switch (family.type) {
    case MetricType::Counter: type = "counter"; break;
    case MetricType::Gauge: type = "gauge"; break;
    case MetricType::Summary: type = "summary"; break;
    case MetricType::Histogram: type = "histogram"; break;
    default: break;
  }
  out += "# TYPE ";
  out += family.name;
  out += ' ';
  out += type;
  out += '\n';
  for (const auto& m : family.metric) {
    switch (family.type) {
      case MetricType::Counter:
        putHead(out, family, m);
        putDouble(out, m.counter.value);
        putTail(out, m);
        break;
      case MetricType::Gauge:
        putHead(out, family, m);
        putDouble(out, m.gauge.value);
        putTail(out, m);
        break;
      case MetricType::Summary: {
        putHead(out, family, m, "_count");
        putInt(out, m.summary.sample_count);
        putTail(out, m);
        putHead(out, family, m, "_sum");
        putDouble(out, m.summary.sample_sum);
        putTail(out, m);
        for (const auto& q : m.summary.quantile) {
          putHead(out, family, m, "", "quantile", nullptr, &q.quantile);
          putDouble(out, q.value);
          putTail(out, m);
        }
        break;
      }
      case MetricType::Histogram: {
        const auto& h = m.histogram;
        putHead(out, family, m, "_count");
        putInt(out, h.sample_count);
        putTail(out, m);
        putHead(out, family, m, "_sum");
        putDouble(out, h.sample_sum);
        putTail(out, m);
        double last = -std::numeric_limits<double>::infinity();
        for (const auto& b : h.bucket) {
          putHead(out, family, m, "_bucket", "le", nullptr, &b.upper_bound);
          last = b.upper_bound;
          putInt(out, b.cumulative_count);
          putTail(out, m);
        }
        if (last != std::numeric_limits<double>::infinity()) {
          const std::string inf = "+Inf";
          putHead(out, family, m, "_bucket", "le", &inf);
          putInt(out, h.sample_count);
          putTail(out, m);
        }
        break;
      }
      default:
        putHead(out, family, m);
        putDouble(out, m.untyped.value);
        putTail(out, m);
        break;
    }
  }
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
  return serializeText(families);
}

std::string serializeText(const std::vector<prometheus::MetricFamily>& families) {
  std::string out;
  out.reserve(16384);
  for (const auto& f : families) putFamily(out, f);
  return out;
}

}  // namespace foundationd::api
