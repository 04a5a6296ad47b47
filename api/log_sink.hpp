// How api/ logs without depending on daemon/ (the arrows point the other
// way): the daemon passes a LogSink that forwards to daemon/log.hpp. The
// default writes the same format to stderr.
//
// Contract: fields never carry secrets; api/ logs methods, paths (never query
// strings or bodies), statuses, peer kinds and error codes only.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace foundationd::api {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };
using LogField = std::pair<std::string, std::string>;
using LogSink =
    std::function<void(LogLevel level, const std::string& event, const std::vector<LogField>&)>;

// "<6>event=api.listening address=unix:/run/foundationd/api.sock" on stderr
// (debug lines dropped), thread-safe.
LogSink stderrLogSink();

// Calls `sink` when it is set.
inline void logTo(const LogSink& sink, LogLevel level, const std::string& event,
                  std::vector<LogField> fields = {}) {
  if (sink) sink(level, event, fields);
}

}  // namespace foundationd::api
