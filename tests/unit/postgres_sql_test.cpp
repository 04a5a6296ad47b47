// The PostgreSQL controller's pure parts: quoting, the observation answer,
// error text redaction, SCRAM verifiers (the server's own verifier is checked
// in tests/integration/postgres_test.cpp).
#include <string>

#include <doctest/doctest.h>

#include "controllers/postgres/scram.hpp"
#include "controllers/postgres/sql.hpp"

namespace pg = foundationd::postgres;

TEST_CASE("postgres sql: identifiers and literals are quoted") {
  CHECK(pg::quoteIdent("app") == "\"app\"");
  CHECK(pg::quoteIdent("Mixed\"Case") == "\"Mixed\"\"Case\"");
  CHECK(pg::quoteLiteral("it's") == "'it''s'");
  CHECK(pg::quoteLiteral("back\\slash $$x$$") == "'back\\slash $$x$$'");
  CHECK(pg::createRoleSql("app", "pw'1") == "CREATE ROLE \"app\" LOGIN PASSWORD 'pw''1';\n");
  CHECK(pg::alterDatabaseOwnerSql("db", "app") == "ALTER DATABASE \"db\" OWNER TO \"app\";\n");
  CHECK(pg::scriptPreamble().find("standard_conforming_strings = on") != std::string::npos);
  CHECK(pg::scriptPreamble().find("log_statement = 'none'") != std::string::npos);
}

TEST_CASE("postgres sql: the observation query asks for the spec's names, its answer parses") {
  const auto q = pg::observeQuery({"app", "o'x"}, {});
  CHECK(q.find("ARRAY['app','o''x']::text[]") != std::string::npos);
  CHECK(q.find("ARRAY[]::text[]") != std::string::npos);
  auto live = pg::parseObservation(
      R"({"roles":[{"name":"app","login":true,"super":false,"verifier":"SCRAM-SHA-256$x"},)"
      R"({"name":"other","login":false,"super":false,"verifier":null}],)"
      R"("databases":[{"name":"appdb","owner":"app"}]})"
      "\n");
  REQUIRE(live.ok());
  CHECK(live->roles.at("app").login);
  CHECK(live->roles.at("app").verifier == std::optional<std::string>("SCRAM-SHA-256$x"));
  CHECK_FALSE(live->roles.at("other").verifier.has_value());
  CHECK(live->databases.at("appdb").owner == "app");
  CHECK_FALSE(pg::parseObservation("not json").ok());
  CHECK_FALSE(pg::parseObservation(R"({"roles":[{"name":1}],"databases":[]})").ok());
}

TEST_CASE("postgres sql: psql's error text keeps the ERROR line and never a password") {
  CHECK(pg::psqlErrorText("psql:<stdin>:7: ERROR:  role \"x\" already exists\n") ==
        "psql:<stdin>:7: ERROR:  role \"x\" already exists");
  const auto redacted =
      pg::psqlErrorText("ERROR:  syntax error at ALTER ROLE \"x\" PASSWORD 'SCRAM-SHA-256$4096:s'");
  CHECK(redacted.find("SCRAM") == std::string::npos);
  CHECK(redacted.find("(redacted)") != std::string::npos);
  CHECK(pg::psqlErrorText("") == "psql failed without a message");
}

TEST_CASE("postgres scram: verifiers round-trip and tell passwords apart") {
  const std::string v = pg::scramVerifier("pencil", "0123456789abcdef", 4096);
  CHECK(v.rfind("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$", 0) == 0);
  CHECK(pg::scramMatches("pencil", v) == std::optional<bool>(true));
  CHECK(pg::scramMatches("pencil2", v) == std::optional<bool>(false));
  const auto fresh = pg::newScramVerifier("pencil");
  CHECK(fresh != pg::newScramVerifier("pencil"));  // a fresh salt each time
  CHECK(pg::scramMatches("pencil", fresh) == std::optional<bool>(true));
  CHECK_FALSE(pg::scramMatches("pencil", "md5abcdef").has_value());
  CHECK_FALSE(pg::scramMatches("pencil", "SCRAM-SHA-256$x:y$z").has_value());
  CHECK_FALSE(pg::scramMatches("pencil", "").has_value());
  // Stored by PostgreSQL 15 (Debian) for CREATE ROLE probe PASSWORD 'pencil'.
  const std::string server =
      "SCRAM-SHA-256$4096:orvQPu3+fqU/owSIZwxzDw==$pqxUF8i7oYCJ4NEIvsHLy7HGuJZurUyroumRysMDW8o=:"
      "Y0WcPZeIvHJ+ywVAot0FXh/zWP+r9yJwtAGV0ZTqS7M=";
  CHECK(pg::scramMatches("pencil", server) == std::optional<bool>(true));
  CHECK(pg::scramMatches("pencil ", server) == std::optional<bool>(false));
  CHECK(pg::scramApplicable("A-z 0~"));
  CHECK_FALSE(pg::scramApplicable("caf\xc3\xa9"));
}
