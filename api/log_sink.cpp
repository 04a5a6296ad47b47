#include "api/log_sink.hpp"

#include <cstdio>
#include <mutex>

namespace foundationd::api {
namespace {

std::string quoteIfNeeded(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t' || c == '\\') plain = false;
  }
  if (plain) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

LogSink stderrLogSink() {
  return [](LogLevel level, const std::string& event, const std::vector<LogField>& fields) {
    if (level == LogLevel::debug) return;
    static std::mutex mutex;
    std::string line =
        "<" + std::to_string(static_cast<int>(level)) + ">event=" + quoteIfNeeded(event);
    for (const auto& [k, v] : fields) line += " " + k + "=" + quoteIfNeeded(v);
    line += '\n';
    std::lock_guard lock(mutex);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
  };
}

}  // namespace foundationd::api
