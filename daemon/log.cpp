#include "daemon/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace foundationd::log {
namespace {

std::mutex g_mutex;
bool g_debug = false;

std::string quoteIfNeeded(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t' || c == '\\') plain = false;
  }
  if (plain) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string format(const std::string& event, std::initializer_list<Field> fields) {
  std::string line = "event=" + quoteIfNeeded(event);
  for (const auto& [k, v] : fields) line += " " + k + "=" + quoteIfNeeded(v);
  return line;
}

void write(Level level, const std::string& event, std::initializer_list<Field> fields) {
  if (level == Level::debug && !g_debug) return;
  std::string line = format(event, fields);
  static const bool tty = isatty(STDERR_FILENO) == 1;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (tty) {
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), line.c_str());
  }
  std::fflush(stderr);
}

void setDebug(bool on) { g_debug = on; }

}  // namespace foundationd::log
