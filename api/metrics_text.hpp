// The Prometheus text exposition format of collected metric families, byte
// for byte what prometheus-cpp 1.0's TextSerializer writes, into one string
// (MetricsRegistry::render; tests/unit/metrics_test.cpp compares the two).
#pragma once

#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace foundationd::api {

std::string serializeText(const std::vector<prometheus::MetricFamily>& families);

}  // namespace foundationd::api
