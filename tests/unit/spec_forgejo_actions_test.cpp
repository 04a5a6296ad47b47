// The forge's Actions secrets and variables in the spec: `actions_secrets` /
// `actions_variables` of [forgejo.repos."o/n"] and [forgejo.orgs.NAME] (the
// rest of [forgejo] is in spec_loader_test.cpp).
#include <map>

#include <doctest/doctest.h>

#include "config/graph.hpp"
#include "config/names.hpp"
#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kDigest(64, 'a');
const std::string kVersions =
    "[images]\nweb = \"docker.io/library/nginx:1.27@sha256:" + kDigest + "\"\n";
const std::string kHeader = "spec_version = 1\nproject = \"demo\"\nversions = \"VERSIONS\"\n";
// Line 4 onwards.
const std::string kForgejo =
    "[containers.forgejo]\nimage = \"${versions.web}\"\n"                          // 4-5
    "[credentials.admin.fields]\npassword = { generate = \"password\" }\n"         // 6-7
    "[credentials.ci-s3.fields]\nkey = { generate = \"hex\" }\n"                   // 8-9
    "[forgejo]\ncontainer = \"forgejo\"\n"                                         // 10-11
    "[forgejo.admin]\nusername = \"platform-admin\"\nemail = \"p@example.org\"\n"  // 12-14
    "password = \"${credentials.admin.password}\"\n"                               // 15
    "[forgejo.orgs.olsitec]\n"                                                     // 16
    "[forgejo.repos.\"olsitec/foundation\"]\n";                                    // 17

LoadResult load(const std::string& body) {
  return loadSpecText(kHeader + kForgejo + body, "foundation.toml",
                      [](const std::string& path) -> std::optional<std::string> {
                        if (path == "VERSIONS") return kVersions;
                        return std::nullopt;
                      });
}

void fails(const std::string& body, const std::string& needle) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find(needle) != std::string::npos);
}

Spec loads(const std::string& body) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.items().empty());
  return *r.spec;
}

}  // namespace

TEST_CASE("Actions secrets and variables of a repository and an organisation") {
  const Spec s = loads(
      "[forgejo.repos.\"olsitec/foundation\".actions_secrets]\n"
      "S3_SECRET_KEY = \"${credentials.ci-s3.key}\"\n"
      "DEPLOY = \"prefix-${credentials.ci-s3.key}\"\n"
      "[forgejo.repos.\"olsitec/foundation\".actions_variables]\n"
      "S3_ENDPOINT = \"http://rustfs:9000\"\n"
      "[forgejo.orgs.olsitec.actions_variables]\n"
      "REGISTRY = \"forge.example.org\"\n"
      "[forgejo.orgs.olsitec.actions_secrets]\n"
      "ORG_KEY = \"${credentials.ci-s3.key}\"\n"
      "[forgejo.repos.\"olsitec/other\"]\n");
  const ForgejoSpec& f = *s.forgejo;
  const ForgejoActions& repo = f.repoOptions.at("olsitec/foundation").actions;
  REQUIRE(repo.secrets.size() == 2);
  CHECK(repo.secrets.at("S3_SECRET_KEY").references() ==
        std::vector<CredentialRef>{{"ci-s3", "key"}});
  CHECK(repo.secrets.at("DEPLOY").sensitive());
  CHECK(repo.variables ==
        std::map<std::string, std::string>{{"S3_ENDPOINT", "http://rustfs:9000"}});
  CHECK(f.repoOptions.at("olsitec/other").actions.empty());
  REQUIRE(f.orgActions.contains("olsitec"));
  CHECK(f.orgActions.at("olsitec").variables.at("REGISTRY") == "forge.example.org");
  CHECK(f.orgActions.at("olsitec").secrets.at("ORG_KEY").sensitive());

  // A rotation of ci-s3 reaches the forge step: the credential is one of its
  // dependencies in the graph.
  const Graph g = Graph::build(s);
  CHECK(g.dependencies(ResourceKey{Kind::forgejo, ""})
            .contains(ResourceKey{Kind::credential, "ci-s3"}));
}

TEST_CASE("an organisation without Actions declarations has no orgActions entry") {
  const Spec s = loads("");
  CHECK(s.forgejo->orgActions.empty());
}

TEST_CASE("Actions names follow the forge's rules, located at the key") {
  fails(
      "[forgejo.repos.\"olsitec/foundation\".actions_secrets]\n"
      "GITEA_TOKEN = \"${credentials.ci-s3.key}\"\n",
      "foundation.toml:19:1: error: invalid Actions secret name \"GITEA_TOKEN\": must not "
      "start with GITEA_ (reserved by the forge)");
  fails(
      "[forgejo.repos.\"olsitec/foundation\".actions_secrets]\n"
      "github_x = \"${credentials.ci-s3.key}\"\n",
      "invalid Actions secret name \"github_x\": must be upper case");
  fails("[forgejo.orgs.olsitec.actions_variables]\n1ST = \"x\"\n",
        "foundation.toml:19:1: error: invalid Actions variable name \"1ST\": must not start "
        "with a digit");
  fails("[forgejo.orgs.olsitec.actions_variables]\n\"A-B\" = \"x\"\n",
        "invalid Actions variable name \"A-B\": may contain only A-Z, 0-9 and '_'");
  fails("[forgejo.orgs.olsitec.actions_variables]\nFORGEJO_URL = \"x\"\n",
        "must not start with FORGEJO_");

  CHECK(forgejoActionsNameProblem("S3_KEY") == std::nullopt);
  CHECK(forgejoActionsNameProblem("_X1") == std::nullopt);
  CHECK(forgejoActionsNameProblem("GITHUB_TOKEN").has_value());
  CHECK(forgejoActionsNameProblem("GITHUBX") == std::nullopt);  // only the GITHUB_ prefix
  CHECK(forgejoActionsNameProblem("").has_value());
  CHECK(forgejoActionsNameProblem("A.B").has_value());
}

TEST_CASE("Actions values: references checked, no secret in a variable, none empty") {
  fails(
      "[forgejo.repos.\"olsitec/foundation\".actions_secrets]\n"
      "KEY = \"${credentials.ci-s4.key}\"\n",
      "unknown credential \"ci-s4\"");
  fails(
      "[forgejo.repos.\"olsitec/foundation\".actions_secrets]\n"
      "KEY = \"${credentials.ci-s3.kee}\"\n",
      "ci-s3");
  fails(
      "[forgejo.repos.\"olsitec/foundation\".actions_variables]\n"
      "KEY = \"${credentials.ci-s3.key}\"\n",
      "secrets may not be used in \"KEY\" of "
      "[forgejo.repos.\"olsitec/foundation\".actions_variables]");
  fails("[forgejo.repos.\"olsitec/foundation\".actions_variables]\nKEY = 3\n",
        "expected a string for \"KEY\"");
  fails("[forgejo.repos.\"olsitec/foundation\".actions_variables]\nKEY = \"\"\n",
        "\"KEY\" of [forgejo.repos.\"olsitec/foundation\".actions_variables] is empty");
  fails("[forgejo.repos.\"olsitec/foundation\".actions_secrets]\nKEY = \"\"\n",
        "\"KEY\" of [forgejo.repos.\"olsitec/foundation\".actions_secrets] is empty");
  fails("[forgejo.repos.\"olsitec/foundation\".actions_secret]\n",
        "unknown key \"actions_secret\" in [forgejo.repos.\"olsitec/foundation\"]; did you mean "
        "\"actions_secrets\"?");
  fails("[forgejo.orgs.olsitec.actions_secretz]\n",
        "unknown key \"actions_secretz\" in [forgejo.orgs.olsitec]");
  // Under an undeclared repository or organisation: the owner is unknown, or
  // the organisation does not exist to hold it.
  fails("[forgejo.repos.\"olsitek/x\".actions_variables]\nA = \"b\"\n",
        "unknown owner \"olsitek\" of repository \"olsitek/x\"");

  // A literal secret is accepted with the usual warning (it is in git).
  const auto r = load("[forgejo.repos.\"olsitec/foundation\".actions_secrets]\nKEY = \"lit\"\n");
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find(
            "foundation.toml:19:7: warning: \"KEY\" of "
            "[forgejo.repos.\"olsitec/foundation\".actions_secrets] is a literal") !=
        std::string::npos);
}
