#include "daemon/log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
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

template <typename Fields>
std::string formatFields(const std::string& event, const Fields& fields) {
  std::string out = "event=" + quoteIfNeeded(event);
  for (const auto& [k, v] : fields) out += " " + k + "=" + quoteIfNeeded(v);
  return out;
}

std::string utcNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  return std::string(buf, n) + frac;
}

// One record to the journal; false when journald refused it (the caller
// then writes the line to stderr, so nothing is lost).
bool sendToJournal(Level level, const std::string& event, const std::vector<Field>& fields) {
  std::vector<std::string> items;
  items.reserve(fields.size() + 4);
  items.push_back("MESSAGE=" + formatFields(event, fields));
  items.push_back("PRIORITY=" + std::to_string(static_cast<int>(level)));
  items.push_back("SYSLOG_IDENTIFIER=foundationd");
  items.push_back("EVENT=" + event);
  for (const auto& [k, v] : fields) items.push_back(journalFieldName(k) + "=" + v);
  std::vector<iovec> iov(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    iov[i].iov_base = items[i].data();
    iov[i].iov_len = items[i].size();
  }
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
}

void writeRecord(Level level, const std::string& event, const std::vector<Field>& fields) {
  if (level == Level::debug && !g_debug) return;
  static const bool journal = stderrIsJournal();
  if (journal && sendToJournal(level, event, fields)) return;
  const std::string text = line(level, event, fields) + "\n";
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

std::string format(const std::string& event, std::initializer_list<Field> fields) {
  return formatFields(event, fields);
}

std::string format(const std::string& event, const std::vector<Field>& fields) {
  return formatFields(event, fields);
}

std::string line(Level level, const std::string& event, const std::vector<Field>& fields) {
  return "time=" + utcNow() + " level=" + levelName(level) + " " + formatFields(event, fields);
}

const char* levelName(Level level) {
  switch (level) {
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "info";
}

std::string journalFieldName(const std::string& key) {
  std::string name;
  for (char c : key) {
    if (c >= 'a' && c <= 'z') {
      name += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name += c;
    } else {
      name += '_';
    }
  }
  // Fields the journal or its clients give a meaning of their own.
  static const char* const kReserved[] = {"MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE",
                                          "CODE_LINE", "CODE_FUNC", "ERRNO", "EVENT",
                                          "INVOCATION_ID", "USER_INVOCATION_ID", "UNIT",
                                          "USER_UNIT", "DOCUMENTATION", "TID"};
  bool reserved = name.empty() || name.front() == '_' || (name.front() >= '0' && name.front() <= '9') ||
                  name.rfind("SYSLOG_", 0) == 0 || name.rfind("OBJECT_", 0) == 0 ||
                  name.rfind("COREDUMP", 0) == 0;
  for (const char* r : kReserved) reserved |= name == r;
  return reserved ? "FOUNDATIOND_" + name : name;
}

bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void write(Level level, const std::string& event, std::initializer_list<Field> fields) {
  writeRecord(level, event, std::vector<Field>(fields));
}

void write(Level level, const std::string& event, const std::vector<Field>& fields) {
  writeRecord(level, event, fields);
}

void setDebug(bool on) { g_debug = on; }

}  // namespace foundationd::log
