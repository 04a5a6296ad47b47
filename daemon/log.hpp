// Logging: one event per record, key=value fields, never a secret.
//
// Under journald (stderr is the journal stream: $JOURNAL_STREAM matches it),
// each record goes through sd_journal_send with structured fields, so
// `journalctl -o json` shows them: MESSAGE (the key=value line), PRIORITY,
// SYSLOG_IDENTIFIER=foundationd, EVENT, and one upper-case field per key
// (resource=container.web -> RESOURCE=container.web; a key that would clash
// with a journal field of its own, such as message, gets FOUNDATIOND_).
// Otherwise one line on stderr with the time (UTC) and level first:
//   time=2026-12-03T08:30:01.123Z level=info event=apply.done resource=container.web took=1.2s
// Values with spaces or quotes are quoted. There is no redaction here by
// design; secrets never reach this layer. Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace foundationd::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

using Field = std::pair<std::string, std::string>;

void write(Level level, const std::string& event, std::initializer_list<Field> fields = {});
void write(Level level, const std::string& event, const std::vector<Field>& fields);
inline void info(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::info, e, f); }
inline void warn(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::warning, e, f); }
inline void error(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::error, e, f); }

// Formats one record's key=value text, without time and level (tests, and
// the journal's MESSAGE).
std::string format(const std::string& event, std::initializer_list<Field> fields);
std::string format(const std::string& event, const std::vector<Field>& fields);

// The stderr line: "time=... level=... " + format(...).
std::string line(Level level, const std::string& event, const std::vector<Field>& fields);

// "error", "warning", "notice", "info", "debug".
const char* levelName(Level level);

// The journal field a key is sent as ("resource" -> "RESOURCE",
// "took-ms" -> "TOOK_MS", "message" -> "FOUNDATIOND_MESSAGE").
std::string journalFieldName(const std::string& key);

// True when stderr is connected to the journal ($JOURNAL_STREAM names it).
bool stderrIsJournal();

// Debug lines are dropped unless enabled (FOUNDATIOND_DEBUG=1).
void setDebug(bool on);

}  // namespace foundationd::log
