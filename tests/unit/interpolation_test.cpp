// Interpolation: the function itself, then where the loader allows secrets.
#include <doctest/doctest.h>

#include "config/interpolation.hpp"
#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

struct Fixture {
  std::map<std::string, std::string> versions{{"postgres", "postgres:16@sha256:x"},
                                              {"vault", "openbao:2"}};
  std::map<std::string, std::set<std::string>> credentials{
      {"postgres-superuser", {"username", "password"}}, {"forgejo-db", {"password"}}};
  InterpolationScope scope{&versions, false, &credentials};
  Diagnostics diags;
  const SourceLoc loc{"foundation.toml", 7, 9};

  std::optional<Value> run(std::string_view text, SecretPolicy p = SecretPolicy::allowed) {
    return interpolate(text, loc, scope, p, "\"x\" of [containers.web]", diags);
  }
  std::string errors() const { return diags.formatAll(); }
};

std::string literalOf(const Value& v) { return v.display(); }

}  // namespace

TEST_CASE("plain text passes through; an empty string has no segments") {
  Fixture f;
  auto v = f.run("hello world");
  REQUIRE(v);
  CHECK(literalOf(*v) == "hello world");
  CHECK_FALSE(v->sensitive());
  CHECK(v->loc.line == 7);
  CHECK(f.run("")->segments.empty());
  CHECK(*f.run("abc") == Value::literal("abc"));
}

TEST_CASE("${versions.KEY} is substituted") {
  Fixture f;
  CHECK(literalOf(*f.run("${versions.postgres}")) == "postgres:16@sha256:x");
  CHECK(literalOf(*f.run("image=${versions.vault};")) == "image=openbao:2;");
  CHECK(f.run("${versions.vault}")->segments.size() == 1);  // merged into one literal
  CHECK(f.diags.items().empty());
}

TEST_CASE("$$ is a literal $, and a lone $ stays literal") {
  Fixture f;
  CHECK(literalOf(*f.run("$$")) == "$");
  CHECK(literalOf(*f.run("cost: $$5")) == "cost: $5");
  CHECK(literalOf(*f.run("$${versions.vault}")) == "${versions.vault}");
  CHECK(literalOf(*f.run("echo $HOME")) == "echo $HOME");
  CHECK(literalOf(*f.run("trailing $")) == "trailing $");
  CHECK(literalOf(*f.run("$$$$")) == "$$");
  CHECK(f.diags.items().empty());
}

TEST_CASE("${credentials.NAME.FIELD} becomes a CredentialRef segment") {
  Fixture f;
  auto v = f.run("postgres://u:${credentials.postgres-superuser.password}@db/x");
  REQUIRE(v);
  REQUIRE(v->segments.size() == 3);
  CHECK(std::get<std::string>(v->segments[0]) == "postgres://u:");
  CHECK(std::get<CredentialRef>(v->segments[1]) ==
        CredentialRef{"postgres-superuser", "password"});
  CHECK(std::get<std::string>(v->segments[2]) == "@db/x");
  CHECK(v->sensitive());
  CHECK(v->display() == "(sensitive)");
  CHECK(v->references() == std::vector<CredentialRef>{{"postgres-superuser", "password"}});
}

TEST_CASE("two references and versions mix in one string") {
  Fixture f;
  auto v = f.run("${credentials.postgres-superuser.username}:${credentials.forgejo-db.password}"
                 " ${versions.vault}");
  REQUIRE(v);
  CHECK(v->references().size() == 2);
  CHECK(std::get<std::string>(v->segments.back()) == " openbao:2");
}

TEST_CASE("unknown version: located, with a suggestion") {
  Fixture f;
  CHECK_FALSE(f.run("${versions.postgress}"));
  CHECK(f.errors() ==
        "foundation.toml:7:9: error: unknown version \"postgress\" in \"x\" of [containers.web]; "
        "did you mean \"postgres\"?\n");
}

TEST_CASE("unknown version without a versions file says how to declare one") {
  Fixture f;
  f.scope.versions = nullptr;
  CHECK_FALSE(f.run("${versions.postgres}"));
  CHECK(f.errors().find("the spec declares no versions file (add versions = \"VERSIONS\" at the "
                        "top level)") != std::string::npos);
}

TEST_CASE("an unusable versions file fails quietly (its own error explains)") {
  Fixture f;
  f.scope.versionsUnavailable = true;
  CHECK_FALSE(f.run("${versions.nope}"));
  CHECK(f.diags.items().empty());
  CHECK(f.run("${versions.postgres}"));  // what could be read still works
}

TEST_CASE("unknown credential or field: located, with a suggestion") {
  Fixture f;
  CHECK_FALSE(f.run("${credentials.postgres-superusr.password}"));
  CHECK_FALSE(f.run("${credentials.forgejo-db.pasword}"));
  CHECK(f.errors() ==
        "foundation.toml:7:9: error: unknown credential \"postgres-superusr\" in \"x\" of "
        "[containers.web]; did you mean \"postgres-superuser\"?\n"
        "foundation.toml:7:9: error: unknown field \"pasword\" of credential \"forgejo-db\" in "
        "\"x\" of [containers.web]; did you mean \"password\"?\n");
}

TEST_CASE("credentials are refused where secrets are forbidden") {
  Fixture f;
  CHECK_FALSE(f.run("--password=${credentials.forgejo-db.password}", SecretPolicy::forbidden));
  CHECK(f.errors() ==
        "foundation.toml:7:9: error: secrets may not be used in \"x\" of [containers.web]: "
        "${credentials.forgejo-db.password} would leak into argv, labels or output; use secrets "
        "only in container env and secret_files, [files.*] content, [s3.*] access_key/secret_key, "
        "[postgres.*.roles.*] password, [forgejo.admin] password, [forgejo.webhooks.*] "
        "secret and actions_secrets of [forgejo.repos.*] and [forgejo.orgs.*]\n");
  Fixture g;
  CHECK(g.run("${versions.vault}", SecretPolicy::forbidden));  // versions are fine anywhere
}

TEST_CASE("other ${...} forms are errors") {
  for (const char* text : {"${HOME}", "${}", "${foo.bar}", "${secrets.x.y}"}) {
    Fixture f;
    CAPTURE(text);
    CHECK_FALSE(f.run(text));
    CHECK(f.errors().find("only ${versions.KEY}, ${credentials.NAME.FIELD} and "
                          "${forgejo.runner_token} are supported (write \"$$\" for a literal \"$\")") != std::string::npos);
  }
  for (const char* text : {"${versions}", "${versions.}", "${versions.a.b}"}) {
    Fixture f;
    CAPTURE(text);
    CHECK_FALSE(f.run(text));
    CHECK(f.errors().find("expected ${versions.KEY}") != std::string::npos);
  }
  for (const char* text : {"${credentials.x}", "${credentials.x.y.z}", "${credentials..y}"}) {
    Fixture f;
    CAPTURE(text);
    CHECK_FALSE(f.run(text));
    CHECK(f.errors().find("expected ${credentials.NAME.FIELD}") != std::string::npos);
  }
}

TEST_CASE("an unterminated ${ is an error") {
  Fixture f;
  CHECK_FALSE(f.run("abc ${versions.vault"));
  CHECK(f.errors() ==
        "foundation.toml:7:9: error: unterminated \"${\" in \"x\" of [containers.web]; write "
        "\"$$\" for a literal \"$\"\n");
}

TEST_CASE("every bad reference of one string is reported") {
  Fixture f;
  CHECK_FALSE(f.run("${versions.nope} ${HOME} ${credentials.nope.x}"));
  CHECK(f.diags.errorCount() == 3);
}

// ------------------------------------------------ through the loader ---

namespace {

const std::string kSpec =
    "spec_version = 1\nproject = \"p\"\nversions = \"VERSIONS\"\n"
    "[networks.net]\n[volumes.data]\n"
    "[credentials.db.fields]\nusername = \"app\"\npassword = { generate = \"password\" }\n"
    "[containers.web]\nimage = \"${versions.web}\"\n";

LoadResult load(const std::string& extra) {
  return loadSpecText(kSpec + extra, "foundation.toml", [](const std::string&) {
    return std::optional<std::string>("[images]\nweb = \"nginx@sha256:" + std::string(64, 'c') +
                                      "\"\n");
  });
}

const std::string kRef = "${credentials.db.password}";

}  // namespace

TEST_CASE("the loader substitutes versions and keeps references") {
  const auto r = load("env = { A = \"" + kRef + "\", B = \"$${x}\" }\n");
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec);
  const auto& c = r.spec->containers.at("web");
  CHECK(c.image == "nginx@sha256:" + std::string(64, 'c'));
  CHECK(c.env.at("A").references() == std::vector<CredentialRef>{{"db", "password"}});
  CHECK(c.env.at("B").display() == "${x}");
}

TEST_CASE("secrets are allowed exactly where they are consumed") {
  const std::string services =
      "[containers.s3]\nimage = \"${versions.web}\"\n"
      "[s3.main]\ncontainer = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\n"
      "access_key = \"${credentials.db.username}\"\nsecret_key = \"" + kRef + "\"\n"
      "[postgres.main]\ncontainer = \"web\"\n[postgres.main.roles.app]\npassword = \"" + kRef +
      "\"\n"
      "[forgejo]\ncontainer = \"web\"\n[forgejo.admin]\nusername = \"admin\"\n"
      "email = \"a@example.org\"\npassword = \"" + kRef + "\"\n"
      "[forgejo.repos.\"admin/spec\"]\n[forgejo.webhooks.\"admin/spec\"]\n"
      "url = \"http://h:9420/\"\nsecret = \"" + kRef + "\"\n";
  const auto r = load("env = { PW = \"" + kRef + "\" }\nsecret_files = { \"/run/pw\" = \"" + kRef +
                      "\" }\n" + services);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec);
  CHECK(r.diagnostics.items().empty());
}

TEST_CASE("secrets anywhere else are refused, naming the place") {
  struct Case {
    std::string extra;
    std::string where;
  };
  const std::vector<Case> cases{
      {"command = [\"--pw\", \"" + kRef + "\"]\n", "\"command[1]\" of [containers.web]"},
      {"entrypoint = [\"" + kRef + "\"]\n", "\"entrypoint[0]\" of [containers.web]"},
      {"labels = { pw = \"" + kRef + "\" }\n", "label \"pw\" of [containers.web]"},
      {"user = \"" + kRef + "\"\n", "\"user\" of [containers.web]"},
      {"healthcheck = { test = \"check " + kRef + "\" }\n",
       "\"test\" of [containers.web.healthcheck]"},
      {"volumes = [\"" + kRef + ":/x\"]\n", "\"volumes[0]\" of [containers.web]"},
      {"[vault]\ncontainer = \"web\"\n[vault.policies.p]\nrules = \"" + kRef + "\"\n",
       "\"rules\" of [vault.policies.p]"},
      {"[credentials.other.fields]\nx = \"" + kRef + "\"\n", "\"x\" of [credentials.other.fields]"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.extra);
    const auto r = load(c.extra);
    CHECK_FALSE(r.spec);
    CHECK(r.diagnostics.formatAll().find("secrets may not be used in " + c.where) !=
          std::string::npos);
  }
  // The image too: a secret there would end up in `docker ps`.
  const auto r = loadSpecText(
      "spec_version = 1\nproject = \"p\"\n[credentials.db.fields]\npw = \"x\"\n"
      "[containers.web]\nimage = \"${credentials.db.pw}\"\n",
      "foundation.toml", nullptr);
  CHECK(r.diagnostics.formatAll().find(
            "foundation.toml:6:9: error: secrets may not be used in \"image\" of "
            "[containers.web]") != std::string::npos);
}

TEST_CASE("the loader reports a bad reference at the string's location") {
  const auto r = load("env = { A = \"${credentials.db.passwd}\" }\n");
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:11:13: error: unknown field \"passwd\" of credential \"db\" in env \"A\" "
        "of [containers.web]; did you mean \"password\"?\n");
}

TEST_CASE("references resolve whatever the order of the tables") {
  const auto r = loadSpecText(
      "spec_version = 1\nproject = \"p\"\n"
      "[containers.web]\nimage = \"nginx@sha256:" + std::string(64, 'd') + "\"\n"
      "env = { PW = \"${credentials.late.pw}\" }\n"
      "[credentials.late.fields]\npw = { generate = \"hex\" }\n",
      "foundation.toml", nullptr);
  INFO(r.diagnostics.formatAll());
  CHECK(r.spec);
}
