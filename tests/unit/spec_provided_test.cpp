// Operator-provided credential fields ({ provided = true }) and the forge's
// runner registration token (${forgejo.runner_token}): parsing, validation
// and the dependency graph.
#include <doctest/doctest.h>

#include <map>

#include "config/graph.hpp"
#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kVersions =
    "[images]\nweb = \"docker.io/library/nginx:1.27@sha256:" + std::string(64, 'a') + "\"\n";
// Three lines: a body starts on line 4.
const std::string kHeader = "spec_version = 1\nproject = \"demo\"\nversions = \"VERSIONS\"\n";

LoadResult load(const std::string& body) {
  return loadSpecText(kHeader + body, "foundation.toml",
                      [](const std::string& path) -> std::optional<std::string> {
                        if (path == "VERSIONS") return kVersions;
                        return std::nullopt;
                      });
}

Spec loads(const std::string& body) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.items().empty());
  return *r.spec;
}

void fails(const std::string& body, const std::string& needle) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find(needle) != std::string::npos);
}

std::string container(const std::string& name) {
  return "[containers." + name + "]\nimage = \"${versions.web}\"\n";
}

const std::string kForge = container("forgejo") + "[vault]\ncontainer = \"forgejo\"\n" +
                           "[forgejo]\ncontainer = \"forgejo\"\n";

}  // namespace

TEST_CASE("{ provided = true } declares a field a person supplies") {
  const Spec s = loads(
      "[credentials.smtp.fields]\nuser = \"mailer\"\npassword = { provided = true }\n"
      "token = { generate = \"hex\" }\n" +
      container("app") + "env = { SMTP_PASSWORD = \"${credentials.smtp.password}\" }\n");
  const auto& c = s.credentials.at("smtp");
  CHECK(c.fields.at("password").provided());
  CHECK_FALSE(c.fields.at("password").generated());
  CHECK_FALSE(c.fields.at("user").provided());
  CHECK(c.fields.at("token").generated());
  CHECK_FALSE(c.fields.at("token").provided());
  CHECK(s.containers.at("app").env.at("SMTP_PASSWORD").references() ==
        std::vector<CredentialRef>{{"smtp", "password"}});
}

TEST_CASE("provided: located errors") {
  fails("[credentials.smtp.fields]\npassword = { provided = false }\n",
        "foundation.toml:5:25: error: \"provided\" in [credentials.smtp.fields.password] must "
        "be true (a value set with `foundationd secret set smtp.password`)");
  fails("[credentials.smtp.fields]\npassword = { provided = \"yes\" }\n",
        "foundation.toml:5:25: error: expected a boolean for \"provided\"");
  fails("[credentials.smtp.fields]\npassword = { provided = true, length = 3 }\n",
        "unknown key \"length\" in [credentials.smtp.fields.password]");
  fails("[credentials.smtp.fields]\nport = 25\n",
        "expected a string, a generator table ({ generate = ... }) or { provided = true } for "
        "\"port\" in [credentials.smtp.fields], got an integer");
}

TEST_CASE("${forgejo.runner_token} in env, secret_files and files") {
  const Spec s = loads(
      kForge + "[forgejo.runner_token]\nvault_path = \"forgejo/runner\"\n" + container("runner") +
      "env = { TOKEN = \"${forgejo.runner_token}\" }\n"
      "secret_files = { \"/run/secrets/token\" = \"t=${forgejo.runner_token}\" }\n"
      "files = { \"/etc/runner.yaml\" = \"runner-config\" }\n"
      "[files.runner-config]\ncontent = \"token: ${forgejo.runner_token}\\n\"\n");
  const auto& env = s.containers.at("runner").env.at("TOKEN");
  CHECK(env.sensitive());
  REQUIRE(env.references().size() == 1);
  CHECK(env.references()[0].runnerToken);
  CHECK(env.references()[0] == CredentialRef::forgejoRunnerToken());
  CHECK(env.references()[0].str() == "forgejo.runner_token");
  CHECK(s.containers.at("runner").secretFiles.at("/run/secrets/token").sensitive());
  CHECK(s.files.at("runner-config").content.sensitive());
  // The runner waits for the forge step, which makes the token.
  const Graph g = Graph::build(s);
  CHECK(g.dependencies({Kind::container, "runner"}).count({Kind::forgejo, ""}) == 1);
  CHECK(g.dependencies({Kind::container, "runner"}).count({Kind::credential, "forgejo"}) == 0);
}

TEST_CASE("${forgejo.runner_token}: located errors") {
  fails(kForge + container("runner") + "env = { TOKEN = \"${forgejo.runner_token}\" }\n",
        "error: ${forgejo.runner_token} in env \"TOKEN\" of [containers.runner] needs "
        "[forgejo.runner_token] in the spec");
  fails(container("runner") + "env = { TOKEN = \"${forgejo.runner_token}\" }\n",
        "needs [forgejo.runner_token] in the spec");
  fails(kForge + "[forgejo.runner_token]\nvault_path = \"forgejo/runner\"\n" + container("runner") +
            "command = [\"${forgejo.runner_token}\"]\n",
        "secrets may not be used in \"command[0]\" of [containers.runner]: "
        "${forgejo.runner_token} would leak");
  fails(kForge + "[forgejo.runner_token]\nvault_path = \"forgejo/runner\"\n" + container("runner") +
            "env = { TOKEN = \"${forgejo.token}\" }\n",
        "unknown reference \"${forgejo.token}\"");
}

TEST_CASE("the forge's own container may not need the runner token: a cycle") {
  const auto r = load(container("forgejo") + "env = { T = \"${forgejo.runner_token}\" }\n" +
                      "[vault]\ncontainer = \"forgejo\"\n[forgejo]\ncontainer = \"forgejo\"\n"
                      "[forgejo.runner_token]\nvault_path = \"forgejo/runner\"\n");
  CHECK_FALSE(r.spec);
  CHECK(r.diagnostics.formatAll().find("dependency cycle: container.forgejo -> forgejo -> "
                                       "container.forgejo") != std::string::npos);
}
