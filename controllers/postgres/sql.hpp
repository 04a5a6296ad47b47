// SQL text for the PostgreSQL controller: quoting, the observation query and
// its parsed answer, and the scripts that change roles and databases. Pure:
// no I/O. Every script is sent to `psql` on stdin, never on its command line.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace foundationd::postgres {

// "name" with embedded quotes doubled: an identifier, case kept.
std::string quoteIdent(std::string_view name);
// 'text' with embedded quotes doubled, for standard_conforming_strings = on
// (every script sets it). Rejects nothing: a NUL cannot be in a std::string
// coming from a credential, and quotes are the only special character.
std::string quoteLiteral(std::string_view text);

struct LiveRole {
  std::string name;
  bool login = false;
  bool superuser = false;
  std::optional<std::string> verifier;  // rolpassword; only read for the roles asked about
};

struct LiveDatabase {
  std::string name;
  std::string owner;
};

struct Live {
  std::map<std::string, LiveRole> roles;          // user-created roles and those asked about
  std::map<std::string, LiveDatabase> databases;  // user-created databases and those asked about
};

// One statement whose single value is a JSON document of the roles (oid >=
// 16384, i.e. not built in, plus `roles`) and databases (not templates, oid
// >= 16384, plus `databases`). Password verifiers are read for `roles` only.
std::string observeQuery(const std::vector<std::string>& roles,
                         const std::vector<std::string>& databases);
Result<Live> parseObservation(std::string_view psqlOutput);

// The preamble of every changing script: terse errors (no statement text
// echoed back), and nothing of the session's statements in the server log.
std::string scriptPreamble();

// CREATE ROLE "name" LOGIN PASSWORD '<password>' — `password` is a SCRAM
// verifier (or, for a non-ASCII password, the password itself).
std::string createRoleSql(std::string_view role, std::string_view password);
// ALTER ROLE "name" WITH LOGIN PASSWORD '<password>'.
std::string alterRoleSql(std::string_view role, std::string_view password);
std::string createDatabaseSql(std::string_view db, std::string_view owner);
std::string alterDatabaseOwnerSql(std::string_view db, std::string_view owner);

// The first "ERROR:" / "FATAL:" line of psql's stderr (or its first line),
// with anything that looks like a password or verifier cut out. Bounded.
std::string psqlErrorText(std::string_view stderrText);

// psql's argv for every exec: -X -q -At -v ON_ERROR_STOP=1 -U <superuser> -d postgres.
std::vector<std::string> psqlArgv(const std::string& superuser);

}  // namespace foundationd::postgres
