// The guard of stateful services' image changes (controllers/docker/
// stateful_guard.hpp): which containers are stateful, the PostgreSQL major
// version of an image and of a data directory, and what a refusal says.
#include <doctest/doctest.h>

#include "controllers/docker/stateful_guard.hpp"
#include "unit/spec_fixture.hpp"

using namespace foundationd;
using namespace foundationd::docker;

TEST_CASE("the PostgreSQL major version of an image: PG_MAJOR, else Debian's bin directory") {
  CHECK(postgresMajorOfImage({"PATH=/usr/bin", "PG_MAJOR=16", "PG_VERSION=16.4-1.pgdg120+1"}) ==
        "16");
  CHECK(postgresMajorOfImage({"PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/bin",
                              "PGDATA=/var/lib/postgresql/data"}) == "15");
  CHECK(postgresMajorOfImage({"PG_MAJOR=9.6"}) == "9.6");
  CHECK_FALSE(postgresMajorOfImage({"PATH=/usr/local/bin:/usr/bin"}));
  CHECK_FALSE(postgresMajorOfImage({"PG_MAJOR=latest"}));
  CHECK_FALSE(postgresMajorOfImage({}));
}

TEST_CASE("a data directory's PG_VERSION") {
  CHECK(parsePgVersion("15\n") == "15");
  CHECK(parsePgVersion("9.6\n") == "9.6");
  CHECK_FALSE(parsePgVersion(""));
  CHECK_FALSE(parsePgVersion("cat: can't open 'PG_VERSION': No such file"));
}

TEST_CASE("stateful hosts: PostgreSQL, Vault, the forge and S3 servers, nothing else") {
  const auto spec = testing::specFrom(R"(
spec_version = 1
project = "demo"
[credentials.k.fields]
secret = "s3cr3t"
[containers.pg]
image = "postgres:15"
[containers.bao]
image = "openbao:2"
[containers.s3]
image = "s3:1"
[containers.web]
image = "caddy:2"
[postgres.main]
container = "pg"
superuser = "postgres"
[vault]
container = "bao"
address = "http://127.0.0.1:8200"
[s3.store]
container = "s3"
endpoint = "http://127.0.0.1:9000"
access_key = "admin"
secret_key = "${credentials.k.secret}"
)");
  const auto hosts = statefulHosts(spec);
  CHECK(hosts.at("pg") == "postgres.main");
  CHECK(hosts.at("bao") == "vault");
  CHECK(hosts.at("s3") == "s3.store");
  CHECK_FALSE(hosts.count("web"));
}

TEST_CASE("a refused major upgrade names both versions and the ways on") {
  const auto m = majorUpgradeRefusal("postgres.main", "15", "16");
  CHECK(m.find("initialised by PostgreSQL 15") != std::string::npos);
  CHECK(m.find("holds PostgreSQL 16") != std::string::npos);
  CHECK(m.find("foundationd backup") != std::string::npos);
  CHECK(m.find("pg_upgrade") != std::string::npos);
  CHECK(m.find("foundationd restore --section postgres/main") != std::string::npos);
}
