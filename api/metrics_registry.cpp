#include "api/metrics_registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace foundationd::api {
namespace {

bool validName(const std::string& s, bool allowColon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allowColon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

const char* typeName(MetricType t) {
  switch (t) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

void appendSample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  out += labels;
  out += ' ';
  out += formatMetricValue(v);
  out += '\n';
}

}  // namespace

std::string formatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return "0";  // also -0
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string escapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// --- MetricFamily -------------------------------------------------------------

MetricFamily::MetricFamily(std::string name, std::string help, std::vector<std::string> labelNames,
                           MetricType type)
    : name_(std::move(name)),
      help_(std::move(help)),
      labelNames_(std::move(labelNames)),
      type_(type) {
  if (!validName(name_, true)) throw std::invalid_argument("bad metric name: " + name_);
  for (const std::string& l : labelNames_) {
    if (!validName(l, false) || l.rfind("__", 0) == 0 ||
        (type_ == MetricType::histogram && l == "le")) {
      throw std::invalid_argument("bad label name " + l + " on metric " + name_);
    }
  }
  std::vector<std::string> sorted = labelNames_;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw std::invalid_argument("duplicate label name on metric " + name_);
  }
}

void MetricFamily::checkLabels(const LabelValues& values) const {
  if (values.size() != labelNames_.size()) {
    throw std::invalid_argument("metric " + name_ + " takes " + std::to_string(labelNames_.size()) +
                                " label values, got " + std::to_string(values.size()));
  }
}

std::string MetricFamily::labelText(const LabelValues& values, const std::string& extra) const {
  if (labelNames_.empty() && extra.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labelNames_.size(); ++i) {
    if (i > 0) out += ',';
    out += labelNames_[i];
    out += "=\"";
    out += escapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!labelNames_.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void MetricFamily::render(std::string& out) const {
  out += "# HELP " + name_ + " " + escapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + typeName(type_) + "\n";
  std::lock_guard lock(mutex_);
  renderSeries(out);
}

// --- Counter --------------------------------------------------------------------

Counter::Counter(std::string name, std::string help, std::vector<std::string> labelNames)
    : MetricFamily(std::move(name), std::move(help), std::move(labelNames), MetricType::counter) {
  if (this->labelNames().empty()) series_[{}] = 0;
}

void Counter::inc(const LabelValues& labels, double by) {
  checkLabels(labels);
  if (!(by >= 0)) return;
  std::lock_guard lock(mutex_);
  series_[labels] += by;
}

void Counter::set(const LabelValues& labels, double total) {
  checkLabels(labels);
  std::lock_guard lock(mutex_);
  series_[labels] = total;
}

double Counter::value(const LabelValues& labels) const {
  std::lock_guard lock(mutex_);
  const auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Counter::renderSeries(std::string& out) const {
  for (const auto& [labels, v] : series_) appendSample(out, name(), labelText(labels), v);
}

// --- Gauge ----------------------------------------------------------------------

Gauge::Gauge(std::string name, std::string help, std::vector<std::string> labelNames)
    : MetricFamily(std::move(name), std::move(help), std::move(labelNames), MetricType::gauge) {
  if (this->labelNames().empty()) series_[{}] = 0;
}

void Gauge::set(const LabelValues& labels, double v) {
  checkLabels(labels);
  std::lock_guard lock(mutex_);
  series_[labels] = v;
}

void Gauge::inc(const LabelValues& labels, double by) {
  checkLabels(labels);
  std::lock_guard lock(mutex_);
  series_[labels] += by;
}

double Gauge::value(const LabelValues& labels) const {
  std::lock_guard lock(mutex_);
  const auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Gauge::clear() {
  std::lock_guard lock(mutex_);
  series_.clear();
  if (labelNames().empty()) series_[{}] = 0;
}

void Gauge::unset() {
  std::lock_guard lock(mutex_);
  series_.clear();
}

void Gauge::replaceAll(std::map<LabelValues, double> series) {
  for (const auto& [labels, v] : series) checkLabels(labels);
  std::lock_guard lock(mutex_);
  series_ = std::move(series);
  if (labelNames().empty() && series_.empty()) series_[{}] = 0;
}

void Gauge::renderSeries(std::string& out) const {
  for (const auto& [labels, v] : series_) appendSample(out, name(), labelText(labels), v);
}

// --- Histogram ------------------------------------------------------------------

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> labelNames,
                     std::vector<double> buckets)
    : MetricFamily(std::move(name), std::move(help), std::move(labelNames), MetricType::histogram),
      buckets_(std::move(buckets)) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    if (!std::isfinite(buckets_[i]) || (i > 0 && !(buckets_[i] > buckets_[i - 1]))) {
      throw std::invalid_argument("histogram " + this->name() +
                                  ": buckets must be finite and strictly increasing");
    }
  }
  if (this->labelNames().empty()) series_[{}].counts.assign(buckets_.size() + 1, 0);
}

std::vector<double> Histogram::defaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Histogram::observe(const LabelValues& labels, double v) {
  checkLabels(labels);
  if (std::isnan(v)) return;
  const std::size_t i = static_cast<std::size_t>(
      std::lower_bound(buckets_.begin(), buckets_.end(), v) - buckets_.begin());
  std::lock_guard lock(mutex_);
  Series& s = series_[labels];
  if (s.counts.empty()) s.counts.assign(buckets_.size() + 1, 0);
  ++s.counts[i];  // the first bucket whose bound is >= v ("le"), else +Inf
  s.sum += v;
  ++s.count;
}

Histogram::Snapshot Histogram::snapshot(const LabelValues& labels) const {
  Snapshot snap;
  snap.cumulative.assign(buckets_.size() + 1, 0);
  std::lock_guard lock(mutex_);
  const auto it = series_.find(labels);
  if (it == series_.end()) return snap;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < it->second.counts.size(); ++i) {
    running += it->second.counts[i];
    snap.cumulative[i] = running;
  }
  snap.sum = it->second.sum;
  snap.count = it->second.count;
  return snap;
}

void Histogram::renderSeries(std::string& out) const {
  for (const auto& [labels, s] : series_) {
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= buckets_.size(); ++i) {
      running += s.counts[i];
      const std::string le =
          i < buckets_.size() ? formatMetricValue(buckets_[i]) : std::string("+Inf");
      appendSample(out, name() + "_bucket", labelText(labels, "le=\"" + le + "\""),
                   static_cast<double>(running));
    }
    appendSample(out, name() + "_sum", labelText(labels), s.sum);
    appendSample(out, name() + "_count", labelText(labels), static_cast<double>(s.count));
  }
}

// --- MetricsRegistry ------------------------------------------------------------

template <typename F, typename... Args>
F& MetricsRegistry::add(Args&&... args) {
  auto family = std::make_unique<F>(std::forward<Args>(args)...);
  F& ref = *family;
  std::lock_guard lock(mutex_);
  if (families_.count(ref.name()) != 0) {
    throw std::invalid_argument("metric registered twice: " + ref.name());
  }
  families_.emplace(ref.name(), std::move(family));
  return ref;
}

Counter& MetricsRegistry::counter(std::string name, std::string help,
                                  std::vector<std::string> labelNames) {
  return add<Counter>(std::move(name), std::move(help), std::move(labelNames));
}

Gauge& MetricsRegistry::gauge(std::string name, std::string help,
                              std::vector<std::string> labelNames) {
  return add<Gauge>(std::move(name), std::move(help), std::move(labelNames));
}

Histogram& MetricsRegistry::histogram(std::string name, std::string help,
                                      std::vector<std::string> labelNames,
                                      std::vector<double> buckets) {
  return add<Histogram>(std::move(name), std::move(help), std::move(labelNames),
                        std::move(buckets));
}

std::string MetricsRegistry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) family->render(out);
  return out;
}

}  // namespace foundationd::api
