// Logging: one event per line on stderr, with an sd-daemon priority prefix
// ("<6>") when stderr is not a TTY (journald reads it), and key=value fields:
//   <6>event=apply.done resource=container.web action=create took=1.2s
// Values with spaces or quotes are quoted. Never pass a secret to a logger:
// there is no redaction here by design; secrets never reach this layer.
// Thread-safe (one mutex around the write).
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

namespace foundationd::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

using Field = std::pair<std::string, std::string>;

void write(Level level, const std::string& event, std::initializer_list<Field> fields = {});
inline void info(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::info, e, f); }
inline void warn(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::warning, e, f); }
inline void error(const std::string& e, std::initializer_list<Field> f = {}) { write(Level::error, e, f); }

// Formats one line without the prefix (tests).
std::string format(const std::string& event, std::initializer_list<Field> fields);

// Debug lines are dropped unless enabled (FOUNDATIOND_DEBUG=1).
void setDebug(bool on);

}  // namespace foundationd::log
