#include "controllers/postgres/sql.hpp"

#include <nlohmann/json.hpp>

namespace foundationd::postgres {

std::string quoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string quoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

namespace {

std::string textArray(const std::vector<std::string>& items) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ",";
    out += quoteLiteral(items[i]);
  }
  return out + "]::text[]";
}

}  // namespace

std::string observeQuery(const std::vector<std::string>& roles,
                         const std::vector<std::string>& databases) {
  const std::string r = textArray(roles);
  const std::string d = textArray(databases);
  return "SET standard_conforming_strings = on;\n"
         "SELECT json_build_object("
         "'roles', coalesce((SELECT json_agg(json_build_object("
         "'name', rolname, 'login', rolcanlogin, 'super', rolsuper, "
         "'verifier', CASE WHEN rolname::text = ANY(" +
         r +
         ") THEN rolpassword END)) "
         "FROM pg_catalog.pg_authid WHERE oid >= 16384 OR rolname::text = ANY(" +
         r +
         ")), '[]'), "
         "'databases', coalesce((SELECT json_agg(json_build_object("
         "'name', datname, 'owner', pg_catalog.pg_get_userbyid(datdba))) "
         "FROM pg_catalog.pg_database WHERE NOT datistemplate AND "
         "(oid >= 16384 OR datname::text = ANY(" +
         d + "))), '[]'));\n";
}

Result<Live> parseObservation(std::string_view psqlOutput) {
  auto doc = nlohmann::json::parse(psqlOutput, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("roles") ||
      !doc.contains("databases") || !doc["roles"].is_array() || !doc["databases"].is_array()) {
    return Error::make(ErrorCode::protocol,
                       "psql's answer to the observation query is not the expected JSON document");
  }
  Live live;
  try {
    for (const auto& r : doc["roles"]) {
      LiveRole role;
      role.name = r.at("name").get<std::string>();
      role.login = r.at("login").get<bool>();
      role.superuser = r.at("super").get<bool>();
      if (r.contains("verifier") && r["verifier"].is_string()) {
        role.verifier = r["verifier"].get<std::string>();
      }
      live.roles.emplace(role.name, std::move(role));
    }
    for (const auto& d : doc["databases"]) {
      LiveDatabase db;
      db.name = d.at("name").get<std::string>();
      db.owner = d.at("owner").is_string() ? d["owner"].get<std::string>() : "";
      live.databases.emplace(db.name, std::move(db));
    }
  } catch (const nlohmann::json::exception&) {
    return Error::make(ErrorCode::protocol,
                       "psql's answer to the observation query has an unexpected shape");
  }
  return live;
}

std::string scriptPreamble() {
  // log_statement and friends are superuser-settable; the placeholder for
  // pg_stat_statements is harmless where the module is not loaded.
  return "\\set VERBOSITY terse\n"
         "SET standard_conforming_strings = on;\n"
         "SET log_statement = 'none';\n"
         "SET log_min_duration_statement = -1;\n"
         "SET log_min_error_statement = 'panic';\n"
         "SET pg_stat_statements.track_utility = off;\n";
}

std::string createRoleSql(std::string_view role, std::string_view password) {
  return "CREATE ROLE " + quoteIdent(role) + " LOGIN PASSWORD " + quoteLiteral(password) + ";\n";
}

std::string alterRoleSql(std::string_view role, std::string_view password) {
  return "ALTER ROLE " + quoteIdent(role) + " WITH LOGIN PASSWORD " + quoteLiteral(password) +
         ";\n";
}

std::string createDatabaseSql(std::string_view db, std::string_view owner) {
  return "CREATE DATABASE " + quoteIdent(db) + " OWNER " + quoteIdent(owner) + ";\n";
}

std::string alterDatabaseOwnerSql(std::string_view db, std::string_view owner) {
  return "ALTER DATABASE " + quoteIdent(db) + " OWNER TO " + quoteIdent(owner) + ";\n";
}

std::string psqlErrorText(std::string_view stderrText) {
  std::string_view pick;
  std::string_view rest = stderrText;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == rest.npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.empty()) continue;
    if (pick.empty()) pick = line;
    if (line.find("ERROR:") != line.npos || line.find("FATAL:") != line.npos) {
      pick = line;
      break;
    }
  }
  std::string out(pick.substr(0, 300));
  // A statement quoted back (it should not be, with VERBOSITY terse) would
  // carry the password: cut at the first PASSWORD or verifier.
  for (std::string_view marker : {"PASSWORD", "password '", "SCRAM-SHA-256$"}) {
    if (auto at = out.find(marker); at != std::string::npos) {
      out = out.substr(0, at) + "(redacted)";
    }
  }
  if (out.empty()) out = "psql failed without a message";
  return out;
}

std::vector<std::string> psqlArgv(const std::string& superuser) {
  return {"psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", superuser, "-d", "postgres"};
}

}  // namespace foundationd::postgres
