#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <regex>
#include <string>

#include "daemon/log.hpp"

using namespace foundationd;

TEST_CASE("log: a stderr line has the UTC time and the level first") {
  const std::string line =
      log::line(log::Level::warning, "docker.unreachable", {{"error", "no such file"}});
  CHECK(std::regex_match(line, std::regex(R"(time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )"
                                          R"(level=warning event=docker\.unreachable )"
                                          R"(error="no such file")")));
  CHECK(std::string(log::levelName(log::Level::error)) == "error");
  CHECK(std::string(log::levelName(log::Level::info)) == "info");
}

TEST_CASE("log: keys become journal fields; the journal's own names are not taken") {
  CHECK(log::journalFieldName("resource") == "RESOURCE");
  CHECK(log::journalFieldName("took-ms") == "TOOK_MS");
  CHECK(log::journalFieldName("state_dir") == "STATE_DIR");
  CHECK(log::journalFieldName("message") == "FOUNDATIOND_MESSAGE");
  CHECK(log::journalFieldName("priority") == "FOUNDATIOND_PRIORITY");
  CHECK(log::journalFieldName("event") == "FOUNDATIOND_EVENT");
  CHECK(log::journalFieldName("syslog_identifier") == "FOUNDATIOND_SYSLOG_IDENTIFIER");
  CHECK(log::journalFieldName("_pid") == "FOUNDATIOND__PID");
  CHECK(log::journalFieldName("2fa") == "FOUNDATIOND_2FA");
}

TEST_CASE("log: stderr is the journal only when JOURNAL_STREAM names it") {
  const char* saved = std::getenv("JOURNAL_STREAM");
  const std::string old = saved ? saved : "";
  struct stat st {};
  REQUIRE(::fstat(STDERR_FILENO, &st) == 0);
  ::unsetenv("JOURNAL_STREAM");
  CHECK_FALSE(log::stderrIsJournal());
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  CHECK(log::stderrIsJournal());
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);
  CHECK_FALSE(log::stderrIsJournal());  // inherited by a child whose stderr is elsewhere
  if (saved) {
    ::setenv("JOURNAL_STREAM", old.c_str(), 1);
  } else {
    ::unsetenv("JOURNAL_STREAM");
  }
}
