// The spec loader end to end: top level, VERSIONS, [networks], [volumes],
// [credentials], the services ([vault], [s3], [buckets], [postgres],
// [forgejo]), cross-resource checks and the example platform spec.
// Containers are in spec_containers_test.cpp, interpolation in
// interpolation_test.cpp.
#include <doctest/doctest.h>

#include <map>

#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kDigest(64, 'a');
const std::string kVersions =
    "[images]\nweb = \"docker.io/library/nginx:1.27@sha256:" + kDigest + "\"\n";
// Three lines: a body starts on line 4.
const std::string kHeader = "spec_version = 1\nproject = \"demo\"\nversions = \"VERSIONS\"\n";

FileReader readerOf(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
}

LoadResult loadRaw(const std::string& text, const std::string& versions = kVersions) {
  return loadSpecText(text, "foundation.toml", readerOf({{"VERSIONS", versions}}));
}

LoadResult load(const std::string& body, const std::string& versions = kVersions) {
  return loadRaw(kHeader + body, versions);
}

bool has(const LoadResult& r, const std::string& needle) {
  return r.diagnostics.formatAll().find(needle) != std::string::npos;
}

// The body fails to load and the output contains `needle`.
void fails(const std::string& body, const std::string& needle) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  CHECK_FALSE(r.spec.has_value());
  CHECK(has(r, needle));
}

// The body loads without errors or warnings.
Spec loads(const std::string& body) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.items().empty());
  return *r.spec;
}

// A valid [containers.NAME] for services to point at.
std::string container(const std::string& name) {
  return "[containers." + name + "]\nimage = \"${versions.web}\"\n";
}

}  // namespace

// ---------------------------------------------------------------- example ---

TEST_CASE("the example platform spec loads with no errors and no warnings") {
  const auto r = loadSpecFile("config/examples/foundation.toml");
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.items().empty());
  const Spec& s = *r.spec;
  CHECK(s.project == "olsitec-foundation");
  CHECK(s.strictPinning);
  CHECK(s.versionsFile == std::optional<std::string>("config/examples/VERSIONS"));
  CHECK(s.networks.contains("foundation-net"));
  for (const char* c : {"postgres", "vault", "rustfs", "forgejo", "caddy", "runner",
                        "registry-cache"}) {
    CHECK(s.containers.contains(c));
  }
  CHECK(s.containers.size() == 7);
  // Self-contained: configuration comes from the spec repository ([files]);
  // the only host path mounted is the Docker socket the runner drives.
  for (const auto& [name, c] : s.containers) {
    for (const auto& m : c.volumes) {
      if (m.bind) CHECK(m.source == "/var/run/docker.sock");
    }
  }
  CHECK(s.containers.at("caddy").files.at("/etc/caddy/Caddyfile").file == "caddyfile");
  CHECK(s.files.at("caddyfile").content.display().find("reverse_proxy forgejo:3000") !=
        std::string::npos);
  CHECK(s.files.at("openbao-config").onChange.kind == OnChange::Kind::restart);
  CHECK(s.containers.at("runner").files.contains("/etc/runner/config.yml"));
  for (const char* b : {"forgejo-packages", "forgejo-artifacts", "forgejo-lfs",
                        "foundation-backups"}) {
    CHECK(s.buckets.contains(b));
  }
  CHECK(s.containers.at("postgres").image.rfind("docker.io/library/postgres:16.4@sha256:", 0) ==
        0);
  const Value& pw = s.containers.at("forgejo").env.at("FORGEJO__database__PASSWD");
  CHECK(pw.sensitive());
  CHECK(pw.references() == std::vector<CredentialRef>{{"forgejo-db", "password"}});
  CHECK(s.credentials.at("postgres-superuser").vaultPath == "postgres/superuser-credentials");
  REQUIRE(s.vault.has_value());
  CHECK(s.vault->policies.contains("forgejo"));
  CHECK(s.s3.at("rustfs").secretKey.references() ==
        std::vector<CredentialRef>{{"rustfs-root", "secretKey"}});
  CHECK(s.postgres.at("main").databases.at("forgejo").owner == "forgejo");
  REQUIRE(s.forgejo.has_value());
  CHECK(s.forgejo->admin->username == "platform-admin");
  CHECK(s.forgejo->repos.contains("olsitec/foundation"));
  CHECK(s.forgejo->repoOptions.at("olsitec/foundation").isPrivate);
  CHECK(s.forgejo->runnerTokenVaultPath == std::optional<std::string>("forgejo/runner-registration"));
  CHECK(s.forgejo->webhooks.at("olsitec/foundation").secret.sensitive());
}

TEST_CASE("loadSpecFile reports an unreadable spec") {
  const auto r = loadSpecFile("/nonexistent/foundation.toml");
  CHECK_FALSE(r.spec);
  CHECK(r.diagnostics.formatAll() ==
        "/nonexistent/foundation.toml: error: cannot read the spec file: No such file or "
        "directory\n");
}

// -------------------------------------------------------------- top level ---

TEST_CASE("a minimal spec gets the documented defaults") {
  const Spec s = loads("[networks.net]\n[volumes.data]\n" + container("web"));
  CHECK(s.file == "foundation.toml");
  CHECK(s.specVersion == 1);
  CHECK(s.project == "demo");
  CHECK_FALSE(s.prune);
  CHECK_FALSE(s.strictPinning);
  CHECK(s.versions.at("web") == "docker.io/library/nginx:1.27@sha256:" + kDigest);
  CHECK(s.networks.at("net").driver == "bridge");
  CHECK_FALSE(s.networks.at("net").internal);
  CHECK_FALSE(s.networks.at("net").subnet);
  CHECK(s.volumes.at("data").driver == "local");
  const ContainerSpec& c = s.containers.at("web");
  CHECK(c.image == s.versions.at("web"));
  CHECK(c.imageLoc.line == 7);
  CHECK(c.loc.line == 6);
  CHECK(c.restart == "no");
  CHECK_FALSE(c.command);
  CHECK_FALSE(c.healthcheck);
  CHECK_FALSE(c.readOnly);
  CHECK_FALSE(c.privileged);
  CHECK_FALSE(s.vault);
  CHECK_FALSE(s.forgejo);
}

TEST_CASE("[rollout] settle: a duration from 0s to 1h, located errors otherwise") {
  CHECK_FALSE(loads(container("web")).settle);
  const Spec s = loads("[rollout]\nsettle = \"2m\"\n" + container("web"));
  REQUIRE(s.settle);
  CHECK(*s.settle == std::chrono::minutes(2));
  CHECK(*loads("[rollout]\nsettle = \"0s\"\n" + container("web")).settle ==
        std::chrono::seconds(0));
  fails("[rollout]\nsettle = \"2h\"\n", "foundation.toml:5:10: error: \"settle\" in [rollout] must be between");
  fails("[rollout]\nsettle = \"soon\"\n", "foundation.toml:5:");
  fails("[rollout]\nsettel = \"1m\"\n", "unknown key \"settel\" in [rollout]");
}

TEST_CASE("TOML syntax errors are located and stop the load") {
  const auto r = loadRaw("spec_version = 1\nproject = \n");
  CHECK_FALSE(r.spec);
  CHECK(r.diagnostics.errorCount() == 1);
  CHECK(r.diagnostics.formatAll().rfind("foundation.toml:2:11: error: TOML syntax error: ", 0) ==
        0);
}

TEST_CASE("spec_version is required, an integer, and 1") {
  SUBCASE("missing") {
    const auto r = loadRaw("project = \"demo\"\n");
    CHECK(r.diagnostics.formatAll() ==
          "foundation.toml:1:1: error: missing required key \"spec_version\" at the top level\n");
  }
  SUBCASE("wrong type") {
    const auto r = loadRaw("spec_version = \"1\"\nproject = \"demo\"\n");
    CHECK(r.diagnostics.formatAll() ==
          "foundation.toml:1:16: error: expected an integer for \"spec_version\" at the top "
          "level, got a string\n");
  }
  SUBCASE("unsupported: refused, and nothing else is checked") {
    const auto r = loadRaw("spec_version = 2\nwhatever = 1\n");
    CHECK_FALSE(r.spec);
    CHECK(r.diagnostics.formatAll() ==
          "foundation.toml:1:16: error: unsupported spec_version 2; this foundationd "
          "understands 1\n");
  }
  SUBCASE("1 is accepted") { CHECK(loadRaw("spec_version = 1\nproject = \"p\"\n").spec); }
}

TEST_CASE("project is required and a valid name") {
  CHECK(loadRaw("spec_version = 1\n").diagnostics.formatAll() ==
        "foundation.toml:1:1: error: missing required key \"project\" at the top level\n");
  CHECK(loadRaw("spec_version = 1\nproject = \"-bad name\"\n").diagnostics.formatAll() ==
        "foundation.toml:2:11: error: invalid project name \"-bad name\": must match "
        "[a-zA-Z0-9][a-zA-Z0-9_.-]*\n");
  CHECK(loadRaw("spec_version = 1\nproject = \"olsitec-foundation.v2\"\n").spec);
}

TEST_CASE("prune and strict_pinning are booleans") {
  CHECK(loads("prune = true\nstrict_pinning = true\n").prune);
  fails("prune = \"yes\"\n",
        "foundation.toml:4:9: error: expected a boolean for \"prune\" at the top level, got a "
        "string");
  fails("strict_pinning = 1\n", "expected a boolean for \"strict_pinning\" at the top level");
}

TEST_CASE("unknown keys and tables get a did-you-mean") {
  const auto r = load("prunee = true\n[contaners.web]\nimage = \"x\"\n[whatever]\n");
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:4:1: error: unknown key \"prunee\" at the top level; did you mean "
        "\"prune\"?\n"
        "foundation.toml:5:2: error: unknown table [contaners]; did you mean [containers]?\n"
        "foundation.toml:7:2: error: unknown table [whatever]\n");
}

TEST_CASE("unknown key in a container table") {
  const auto r = load(container("forgejo") + "helthcheck = { test = \"true\" }\n");
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:6:1: error: unknown key \"helthcheck\" in [containers.forgejo]; did you "
        "mean \"healthcheck\"?\n");
}

TEST_CASE("wrong types name the key, the table, and what was found") {
  fails("[containers.web]\nimage = 5\n",
        "foundation.toml:5:9: error: expected a string for \"image\" in [containers.web], got an "
        "integer");
  fails("containers = 5\n", "expected a table for \"containers\" at the top level, got an integer");
  fails("[containers]\nweb = \"nginx\"\n",
        "expected a table for \"web\" in [containers], got a string");
  fails("[[containers]]\nimage = \"x\"\n", "expected a table for \"containers\" at the top level, "
                                            "got an array");
}

TEST_CASE("every error is reported in one pass, sorted by position") {
  const auto r = load(
      "[networks.\"bad name\"]\n"                 // 4
      "[containers.web]\n"                         // 5
      "image = \"${versions.web}\"\n"              // 6
      "restart = \"sometimes\"\n"                  // 7
      "memory = \"lots\"\n"                        // 8
      "[volumes.data]\n"                           // 9
      "driver = 3\n"                               // 10
      "[credentials.db]\n"                         // 11
      "vault_path = \"/abs\"\n");                  // 12
  CHECK(r.diagnostics.errorCount() == 6);
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:4:11: error: invalid network name \"bad name\": must match "
        "[a-zA-Z0-9][a-zA-Z0-9_.-]*\n"
        "foundation.toml:7:11: error: invalid \"restart\" \"sometimes\" in [containers.web]; "
        "expected no, always, unless-stopped or on-failure\n"
        "foundation.toml:8:10: error: invalid size \"lots\" for \"memory\" in [containers.web]; "
        "use e.g. \"512MiB\", \"1GiB\" or \"1GB\"\n"
        "foundation.toml:10:10: error: expected a string for \"driver\" in [volumes.data], got "
        "an integer\n"
        "foundation.toml:11:1: error: missing required key \"fields\" in [credentials.db]\n"
        "foundation.toml:12:14: error: invalid \"vault_path\" \"/abs\" in [credentials.db]: must "
        "be relative to the KV mount (no leading \"/\")\n");
}

// --------------------------------------------------------------- VERSIONS ---

TEST_CASE("VERSIONS: a missing file is an error on the versions key") {
  const auto r = loadSpecText(kHeader + container("web"), "foundation.toml", readerOf({}));
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:3:12: error: cannot read the versions file \"VERSIONS\"\n");
}

TEST_CASE("VERSIONS: resolved beside the spec, errors located in VERSIONS") {
  const auto r = loadSpecText(kHeader, "conf/foundation.toml",
                              readerOf({{"VERSIONS", "[images]\nweb = 3\n[extra]\n"}}));
  CHECK(r.diagnostics.formatAll() ==
        "conf/VERSIONS:2:7: error: expected a string for \"web\" in [images], got an integer\n"
        "conf/VERSIONS:3:2: error: unknown table [extra]; valid keys: images\n");
  const auto ok = loadSpecText(kHeader, "conf/foundation.toml", readerOf({{"VERSIONS", kVersions}}));
  REQUIRE(ok.spec);
  CHECK(ok.spec->versionsFile == std::optional<std::string>("conf/VERSIONS"));
}

TEST_CASE("VERSIONS: an unknown key is located at the reference, with a suggestion") {
  CHECK(load("[containers.web]\nimage = \"${versions.wbe}\"\n").diagnostics.formatAll() ==
        "foundation.toml:5:9: error: unknown version \"wbe\" in \"image\" of [containers.web]; "
        "did you mean \"web\"?\n");
}

TEST_CASE("VERSIONS: exactly an [images] table of strings") {
  SUBCASE("no [images]") {
    CHECK(load("", "x = 1\n").diagnostics.formatAll() ==
          "VERSIONS:1:1: error: missing required key \"images\" at the top level\n"
          "VERSIONS:1:1: error: unknown key \"x\" at the top level; valid keys: images\n");
  }
  SUBCASE("bad key name") {
    CHECK(has(load("", "[images]\n\"a.b\" = \"x\"\n"),
              "VERSIONS:2:1: error: invalid version name \"a.b\""));
  }
  SUBCASE("syntax error") {
    const auto r = load(container("web"), "[images\n");
    CHECK(r.diagnostics.errorCount() == 1);  // no "unknown version" noise
    CHECK(has(r, "VERSIONS:1:"));
  }
  SUBCASE("broken entries do not cascade into unknown-version errors") {
    const auto r = load(container("web"), "[images]\nweb = 1\n");
    CHECK(r.diagnostics.errorCount() == 1);
  }
}

// -------------------------------------------------------- networks/volumes ---

TEST_CASE("[networks.*]") {
  const Spec s = loads(
      "[networks.front]\ndriver = \"bridge\"\ninternal = true\nsubnet = \"10.20.0.0/16\"\n"
      "labels = { team = \"platform\" }\n[networks.v6]\nsubnet = \"fd00:1::/64\"\n");
  CHECK(s.networks.at("front").internal);
  CHECK(s.networks.at("front").subnet == std::optional<std::string>("10.20.0.0/16"));
  CHECK(s.networks.at("front").labels.at("team") == "platform");

  fails("[networks.bridge]\n",
        "foundation.toml:4:11: error: invalid network name \"bridge\": it is one of Docker's "
        "built-in networks (bridge, host, none); use it without declaring it");
  fails("[networks.net]\nsubnet = \"10.20.0.1/16\"\n",
        "invalid \"subnet\" \"10.20.0.1/16\" in [networks.net]: has host bits set; did you mean "
        "\"10.20.0.0/16\"?");
  fails("[networks.net]\nsubnet = \"10.20.0.0/33\"\n", "has a prefix length over 32");
  fails("[networks.net]\nsubnet = \"10.20.0.0\"\n", "must be an address and a prefix length");
  fails("[networks.net]\ndrivr = \"x\"\n",
        "unknown key \"drivr\" in [networks.net]; did you mean \"driver\"?");
  fails("[networks.net]\ndriver = \"\"\n", "\"driver\" in [networks.net] must not be empty");
  fails("[networks.net]\ninternal = \"no\"\n", "expected a boolean for \"internal\"");
  fails("[networks.net]\nlabels = { \"foundationd.project\" = \"x\" }\n",
        "label \"foundationd.project\" of [networks.net] uses the reserved prefix "
        "\"foundationd.\"");
}

TEST_CASE("[volumes.*]") {
  const Spec s = loads("[volumes.pg-data]\ndriver = \"local\"\nlabels = { backup = \"yes\" }\n");
  CHECK(s.volumes.at("pg-data").labels.at("backup") == "yes");
  fails("[volumes.\"-data\"]\n", "invalid volume name \"-data\"");
  fails("[volumes.data]\nsize = \"1GiB\"\n",
        "unknown key \"size\" in [volumes.data]; valid keys: driver, labels");
  fails("[volumes.data]\nlabels = { x = 1 }\n",
        "expected a string for label \"x\" in [volumes.data], got an integer");
}

// ------------------------------------------------------------ credentials ---

TEST_CASE("[credentials.*]: literals and generators with their defaults") {
  const Spec s = loads(
      "[credentials.db]\nvault_path = \"postgres/superuser-credentials\"\nrotate_every = \"90d\"\n"
      "[credentials.db.fields]\n"
      "username = \"postgres\"\n"
      "password = { generate = \"password\" }\n"
      "long = { generate = \"password\", length = 40, symbols = true }\n"
      "hex = { generate = \"hex\", bytes = 16 }\n"
      "b64 = { generate = \"base64url\" }\n"
      "id = { generate = \"uuid\" }\n"
      "[credentials.plain.fields]\nsecret = { generate = \"hex\" }\n");
  const CredentialSpec& c = s.credentials.at("db");
  CHECK(c.vaultPath == "postgres/superuser-credentials");
  CHECK(c.rotateEvery == std::optional<Duration>(std::chrono::hours(24 * 90)));
  CHECK_FALSE(c.fields.at("username").generated());
  CHECK(std::get<std::string>(c.fields.at("username").value) == "postgres");
  CHECK(std::get<Generator>(c.fields.at("password").value) == Generator{});
  const auto& long_ = std::get<Generator>(c.fields.at("long").value);
  CHECK(long_.length == 40);
  CHECK(long_.symbols);
  CHECK(std::get<Generator>(c.fields.at("hex").value).bytes == 16);
  CHECK((std::get<Generator>(c.fields.at("b64").value).kind == Generator::Kind::base64url));
  CHECK(std::get<Generator>(c.fields.at("b64").value).bytes == 32);
  CHECK((std::get<Generator>(c.fields.at("id").value).kind == Generator::Kind::uuid));
  CHECK(s.credentials.at("plain").vaultPath == "plain");  // default: the name
  CHECK_FALSE(s.credentials.at("plain").rotateEvery);
}

TEST_CASE("[credentials.*]: names, paths and durations") {
  fails("[credentials.\"db.main\".fields]\nx = \"y\"\n",
        "invalid credential name \"db.main\": must match [A-Za-z0-9][A-Za-z0-9_-]* (no dots");
  fails("[credentials.db]\nvault_path = \"a//b\"\n[credentials.db.fields]\nx = \"y\"\n",
        "must not contain empty segments");
  fails("[credentials.db]\nvault_path = \"a/../b\"\n[credentials.db.fields]\nx = \"y\"\n",
        "must not contain \".\" or \"..\" segments");
  fails("[credentials.db]\nrotate_every = \"90\"\n[credentials.db.fields]\nx = \"y\"\n",
        "foundation.toml:5:16: error: invalid duration \"90\" for \"rotate_every\" in "
        "[credentials.db]; use a number and a unit (ms, s, m, h, d), e.g. \"30s\"");
  fails("[credentials.db]\nrotate_every = \"0d\"\n[credentials.db.fields]\nx = \"y\"\n",
        "\"rotate_every\" in [credentials.db] must be positive");
  fails("[credentials.db]\nrotate = \"90d\"\n[credentials.db.fields]\nx = \"y\"\n",
        "unknown key \"rotate\" in [credentials.db]; did you mean \"rotate_every\"?");
}

TEST_CASE("[credentials.*]: fields") {
  fails("[credentials.db.fields]\n",
        "foundation.toml:4:1: error: [credentials.db.fields] must declare at least one field");
  fails("[credentials.db.fields]\naccess-key = \"x\"\n",
        "invalid field name \"access-key\" in [credentials.db.fields]: must match "
        "[A-Za-z_][A-Za-z0-9_]*");
  fails("[credentials.db.fields]\nport = 5432\n",
        "expected a string, a generator table ({ generate = ... }) or { provided = true } for "
        "\"port\" in [credentials.db.fields], got an integer");
}

TEST_CASE("[credentials.*]: generators accept only their own keys") {
  fails("[credentials.db.fields]\npassword = { generate = \"password\", bytes = 32 }\n",
        "foundation.toml:5:37: error: unknown key \"bytes\" for generate = \"password\" in "
        "[credentials.db.fields.password]; valid keys: generate, length, symbols");
  fails("[credentials.db.fields]\nkey = { generate = \"hex\", length = 32 }\n",
        "unknown key \"length\" for generate = \"hex\" in [credentials.db.fields.key]; valid "
        "keys: generate, bytes");
  fails("[credentials.db.fields]\nid = { generate = \"uuid\", bytes = 16 }\n",
        "unknown key \"bytes\" for generate = \"uuid\"");
  fails("[credentials.db.fields]\npassword = { generate = \"password\", lenght = 32 }\n",
        "did you mean \"length\"?");
  fails("[credentials.db.fields]\npassword = { generate = \"pasword\" }\n",
        "unknown generator \"pasword\" in [credentials.db.fields.password]; valid generators: "
        "password, hex, base64url, uuid; did you mean \"password\"?");
  fails("[credentials.db.fields]\npassword = { length = 32 }\n",
        "missing required key \"generate\" in [credentials.db.fields.password]");
  fails("[credentials.db.fields]\npassword = { generate = \"password\", length = 7 }\n",
        "\"length\" in [credentials.db.fields.password] must be between 8 and 4096, got 7");
  fails("[credentials.db.fields]\nkey = { generate = \"base64url\", bytes = 4097 }\n",
        "\"bytes\" in [credentials.db.fields.key] must be between 8 and 4096, got 4097");
  fails("[credentials.db.fields]\npassword = { generate = \"password\", symbols = 1 }\n",
        "expected a boolean for \"symbols\"");
  CHECK(loads("[credentials.db.fields]\np = { generate = \"password\", length = 8 }\n"
              "q = { generate = \"hex\", bytes = 4096 }\n")
            .credentials.size() == 1);
}

TEST_CASE("two credentials may not share a vault_path") {
  fails("[credentials.a]\nvault_path = \"x/y\"\n[credentials.a.fields]\nu = \"v\"\n"
        "[credentials.b]\nvault_path = \"x/y\"\n[credentials.b.fields]\nu = \"v\"\n",
        "foundation.toml:8:1: error: vault_path \"x/y\" of [credentials.b] is already used by "
        "[credentials.a]");
}

// ---------------------------------------------------------------- [vault] ---

TEST_CASE("[vault]") {
  const std::string base = container("vault");
  SUBCASE("defaults") {
    const Spec s = loads(base + "[vault]\ncontainer = \"vault\"\n");
    REQUIRE(s.vault);
    CHECK(s.vault->address == "http://127.0.0.1:8200");
    CHECK(s.vault->keyShares == 5);
    CHECK(s.vault->keyThreshold == 3);
    CHECK(s.vault->kvMount == "foundation");
  }
  SUBCASE("a single share gets threshold 1") {
    const Spec s = loads(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 1\n");
    CHECK(s.vault->keyThreshold == 1);
  }
  SUBCASE("policies") {
    const Spec s = loads(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.forgejo]\n"
                                "rules = '''\npath \"foundation/data/forgejo/*\" { capabilities "
                                "= [\"read\"] }\n'''\n");
    CHECK(s.vault->policies.at("forgejo").rules.find("capabilities") != std::string::npos);
  }
  SUBCASE("container is required and declared") {
    fails(base + "[vault]\n", "missing required key \"container\" in [vault]");
    fails(base + "[vault]\ncontainer = \"valt\"\n",
          "foundation.toml:7:13: error: unknown container \"valt\" in \"container\" of [vault]; "
          "did you mean \"vault\"?");
  }
  SUBCASE("address") {
    fails(base + "[vault]\ncontainer = \"vault\"\naddress = \"127.0.0.1:8200\"\n",
          "invalid URL \"127.0.0.1:8200\" for \"address\" in [vault]: must start with http:// or "
          "https://");
    fails(base + "[vault]\ncontainer = \"vault\"\naddress = \"http://h:99999\"\n",
          "has an invalid port");
    CHECK(loads(base + "[vault]\ncontainer = \"vault\"\naddress = \"https://[::1]:8200/\"\n").vault);
  }
  SUBCASE("shares and threshold follow Vault's rules") {
    fails(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 0\n",
          "\"key_shares\" in [vault] must be between 1 and 255, got 0");
    fails(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 256\n", "got 256");
    fails(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 3\nkey_threshold = 4\n",
          "\"key_threshold\" in [vault] (4) must not exceed \"key_shares\" (3)");
    fails(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 3\nkey_threshold = 1\n",
          "\"key_threshold\" in [vault] must be at least 2 when \"key_shares\" is more than 1");
    CHECK(loads(base + "[vault]\ncontainer = \"vault\"\nkey_shares = 2\nkey_threshold = 2\n")
              .vault->keyShares == 2);
  }
  SUBCASE("kv_mount") {
    fails(base + "[vault]\ncontainer = \"vault\"\nkv_mount = \"sys\"\n",
          "\"kv_mount\" \"sys\" in [vault] is reserved by Vault");
    fails(base + "[vault]\ncontainer = \"vault\"\nkv_mount = \"a/b\"\n",
          "invalid \"kv_mount\" \"a/b\"");
    CHECK(loads(base + "[vault]\ncontainer = \"vault\"\nkv_mount = \"secrets_v2\"\n")
              .vault->kvMount == "secrets_v2");
  }
  SUBCASE("policy names and rules") {
    fails(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.root]\nrules = \"x\"\n",
          "invalid policy name \"root\": \"root\" is Vault's built-in policy");
    fails(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.Admin]\nrules = \"x\"\n",
          "invalid policy name \"Admin\"");
    fails(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.ci]\n",
          "missing required key \"rules\" in [vault.policies.ci]");
    fails(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.ci]\nrules = \" \"\n",
          "\"rules\" in [vault.policies.ci] must not be empty");
    fails(base + "[vault]\ncontainer = \"vault\"\n[vault.policies.ci]\nrule = \"x\"\n",
          "did you mean \"rules\"?");
  }
}

// ---------------------------------------------------------- [s3] [buckets] ---

namespace {
const std::string kS3 = container("rustfs") +
                        "[credentials.root.fields]\nak = { generate = \"hex\" }\n"
                        "sk = { generate = \"password\" }\n"
                        "[s3.rustfs]\ncontainer = \"rustfs\"\nendpoint = \"http://127.0.0.1:9000\"\n"
                        "access_key = \"${credentials.root.ak}\"\n"
                        "secret_key = \"${credentials.root.sk}\"\n";
}

TEST_CASE("[s3.*]") {
  const Spec s = loads(kS3);
  const S3Spec& s3 = s.s3.at("rustfs");
  CHECK(s3.region == "us-east-1");
  CHECK(s3.endpoint == "http://127.0.0.1:9000");
  CHECK(s3.accessKey.references() == std::vector<CredentialRef>{{"root", "ak"}});
  fails(container("rustfs") + "[s3.rustfs]\ncontainer = \"rustfs\"\n",
        "missing required key \"endpoint\" in [s3.rustfs]");
  fails(container("rustfs") + "[s3.rustfs]\ncontainer = \"rustfs\"\n",
        "missing required key \"access_key\" in [s3.rustfs]");
  fails(container("rustfs") + "[s3.rustfs]\ncontainer = \"rustfs\"\n",
        "missing required key \"secret_key\" in [s3.rustfs]");
  fails(kS3 + "region = \"US East\"\n", "invalid \"region\" \"US East\" in [s3.rustfs]");
  fails(kS3 + "bucket = \"x\"\n", "unknown key \"bucket\" in [s3.rustfs]");
  fails(container("rustfs") + "[s3.rustfs]\ncontainer = \"minio\"\n",
        "unknown container \"minio\" in \"container\" of [s3.rustfs]");
  fails(container("rustfs") + "[s3.\"my s3\"]\n", "invalid s3 name \"my s3\"");
  fails(container("rustfs") + "[s3.x]\ncontainer = \"rustfs\"\nendpoint = \"s3.local:9000\"\n",
        "invalid URL \"s3.local:9000\" for \"endpoint\" in [s3.x]: must start with http://");
}

TEST_CASE("[s3.*]: a literal secret_key loads with a warning") {
  const auto r = load(container("rustfs") +
                      "[s3.rustfs]\ncontainer = \"rustfs\"\nendpoint = \"http://h:9000\"\n"
                      "access_key = \"admin\"\nsecret_key = \"hunter2\"\n");
  CHECK(r.spec);
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:10:14: warning: \"secret_key\" of [s3.rustfs] is a literal; generate "
        "it in [credentials] and reference it as ${credentials.NAME.FIELD}\n");
}

TEST_CASE("[buckets.*]") {
  const Spec s = loads(kS3 + "[buckets.foundation-backups]\ns3 = \"rustfs\"\nversioning = true\n"
                             "expire_days = 30\n[buckets.\"a.b-c\"]\ns3 = \"rustfs\"\n");
  CHECK(s.buckets.at("foundation-backups").versioning);
  CHECK(s.buckets.at("foundation-backups").expireDays == 30);
  CHECK(s.buckets.at("a.b-c").expireDays == 0);
  fails(kS3 + "[buckets.data]\ns3 = \"rustf\"\n",
        "unknown s3 server \"rustf\" in \"s3\" of [buckets.data] (declare it as [s3.rustf]); did "
        "you mean \"rustfs\"?");
  fails(kS3 + "[buckets.data]\n", "missing required key \"s3\" in [buckets.data]");
  fails(kS3 + "[buckets.data]\ns3 = \"rustfs\"\nexpire_days = -1\n",
        "\"expire_days\" in [buckets.data] must be between 0 and 1000000, got -1");
  fails(kS3 + "[buckets.data]\ns3 = \"rustfs\"\nversioning = \"on\"\n",
        "expected a boolean for \"versioning\" in [buckets.data], got a string");
  for (const char* bad : {"ab", "Data", "-data", "data-", "my..bucket", "192.168.1.1",
                          "xn--data", "my_bucket"}) {
    CAPTURE(bad);
    fails(kS3 + "[buckets.\"" + bad + "\"]\ns3 = \"rustfs\"\n", "invalid bucket name");
  }
  const std::string longName(64, 'a');
  fails(kS3 + "[buckets." + longName + "]\ns3 = \"rustfs\"\n", "must be 3 to 63 characters");
  CHECK(loads(kS3 + "[buckets." + std::string(63, 'a') + "]\ns3 = \"rustfs\"\n").buckets.size() ==
        1);
}

// ------------------------------------------------------------- [postgres] ---

namespace {
const std::string kPg = container("postgres") +
                        "[credentials.db.fields]\npassword = { generate = \"password\" }\n"
                        "[postgres.main]\ncontainer = \"postgres\"\n";
}

TEST_CASE("[postgres.*]") {
  const Spec s = loads(kPg + "[postgres.main.roles.forgejo]\npassword = "
                             "\"${credentials.db.password}\"\n"
                             "[postgres.main.databases.forgejo]\nowner = \"forgejo\"\n"
                             "[postgres.main.databases.metrics]\n");
  const PostgresSpec& p = s.postgres.at("main");
  CHECK(p.superuser == "postgres");
  CHECK(p.roles.at("forgejo").password.references() ==
        std::vector<CredentialRef>{{"db", "password"}});
  CHECK(p.databases.at("forgejo").owner == "forgejo");
  CHECK(p.databases.at("metrics").owner == "postgres");  // default: the superuser
  CHECK(loads(kPg + "[postgres.main.databases.x]\nowner = \"postgres\"\n").postgres.size() == 1);

  fails(kPg + "[postgres.main.databases.forgejo]\nowner = \"forgejoo\"\n",
        "unknown role \"forgejoo\" in \"owner\" of [postgres.main.databases.forgejo] (declare it "
        "in [postgres.main.roles], or use the superuser)");
  fails(kPg + "[postgres.main.roles.forgejo]\n",
        "missing required key \"password\" in [postgres.main.roles.forgejo]");
  fails(kPg + "[postgres.main.roles.\"my-role\"]\npassword = \"${credentials.db.password}\"\n",
        "invalid role name \"my-role\": must match [A-Za-z_][A-Za-z0-9_]*");
  fails(kPg + "[postgres.main.roles.pg_admin]\npassword = \"${credentials.db.password}\"\n",
        "must not start with \"pg_\"");
  fails(kPg + "[postgres.main.databases." + std::string(64, 'd') + "]\n",
        "must be at most 63 characters");
  fails(kPg + "superuser = \"1root\"\n", "invalid \"superuser\" \"1root\" in [postgres.main]");
  fails(container("postgres") + "[postgres.main]\ncontainer = \"pg\"\n",
        "unknown container \"pg\" in \"container\" of [postgres.main]");
  fails(container("postgres") + "[postgres.main]\n",
        "missing required key \"container\" in [postgres.main]");
  fails(container("postgres") + "[postgres.\"-main\"]\ncontainer = \"postgres\"\n",
        "invalid postgres instance name \"-main\"");
  fails(kPg + "[postgres.main.roles.x]\npasword = \"y\"\n",
        "unknown key \"pasword\" in [postgres.main.roles.x]; did you mean \"password\"?");
}

// -------------------------------------------------------------- [forgejo] ---

namespace {
const std::string kForgejo =
    container("forgejo") +
    "[credentials.admin.fields]\npassword = { generate = \"password\" }\n"
    "[credentials.hook.fields]\nsecret = { generate = \"hex\" }\n"
    "[forgejo]\ncontainer = \"forgejo\"\n"
    "[forgejo.admin]\nusername = \"platform-admin\"\nemail = \"platform@example.org\"\n"
    "password = \"${credentials.admin.password}\"\n"
    "[forgejo.orgs.olsitec]\n";
}

TEST_CASE("[forgejo]") {
  const Spec s = loads(kForgejo +
                       "[forgejo.repos.\"olsitec/foundation\"]\n"
                       "private = true\ndescription = \"the spec\"\n"
                       "[forgejo.repos.\"platform-admin/scratch\"]\n"
                       "[forgejo.runner_token]\nvault_path = \"forgejo/runner-registration\"\n"
                       "[forgejo.webhooks.\"olsitec/foundation\"]\n"
                       "url = \"http://host.docker.internal:9420/v1/hooks/forgejo\"\n"
                       "secret = \"${credentials.hook.secret}\"\n");
  const ForgejoSpec& f = *s.forgejo;
  CHECK(f.url == "http://127.0.0.1:3000");
  CHECK(f.admin->email == "platform@example.org");
  CHECK(f.orgs.contains("olsitec"));
  CHECK(f.repos.size() == 2);
  CHECK(f.repoOptions.at("olsitec/foundation").isPrivate);
  CHECK(f.repoOptions.at("olsitec/foundation").description == "the spec");
  CHECK_FALSE(f.repoOptions.at("platform-admin/scratch").isPrivate);
  CHECK(f.webhooks.at("olsitec/foundation").secret.references() ==
        std::vector<CredentialRef>{{"hook", "secret"}});
}

TEST_CASE("[forgejo]: references and names") {
  fails(kForgejo + "[forgejo.repos.\"olsitek/foundation\"]\n",
        "unknown owner \"olsitek\" of repository \"olsitek/foundation\" (declare it in "
        "[forgejo.orgs], or use the admin's username); did you mean \"olsitec\"?");
  fails(kForgejo + "[forgejo.repos.\"foundation\"]\n",
        "invalid repository name \"foundation\": expected \"owner/name\"");
  fails(kForgejo + "[forgejo.repos.\"olsitec/x.git\"]\n", "must not end with \".git\"");
  fails(kForgejo + "[forgejo.repos.\"olsitec/x\"]\nvisibility = \"private\"\n",
        "unknown key \"visibility\" in [forgejo.repos.\"olsitec/x\"]");
  fails(kForgejo + "[forgejo.webhooks.\"olsitec/foundation\"]\nurl = \"http://h/\"\n"
                   "secret = \"${credentials.hook.secret}\"\n",
        "unknown repository \"olsitec/foundation\" for a webhook (declare it in "
        "[forgejo.repos])");
  fails(kForgejo + "[forgejo.repos.\"olsitec/f\"]\n[forgejo.webhooks.\"olsitec/f\"]\n"
                   "url = \"ftp://h/\"\nsecret = \"${credentials.hook.secret}\"\n",
        "invalid URL \"ftp://h/\" for \"url\" in [forgejo.webhooks.\"olsitec/f\"]");
  fails(kForgejo + "[forgejo.repos.\"olsitec/f\"]\n[forgejo.webhooks.\"olsitec/f\"]\n"
                   "url = \"http://h/\"\n",
        "missing required key \"secret\" in [forgejo.webhooks.\"olsitec/f\"]");
  fails(kForgejo + "[forgejo.orgs.team]\nfull_name = \"x\"\n",
        "unknown key \"full_name\" in [forgejo.orgs.team]");
  fails(kForgejo + "[forgejo.orgs.\"-team\"]\n", "invalid organisation name \"-team\"");
  fails(kForgejo + "[forgejo.orgs.platform-admin]\n",
        "organisation \"platform-admin\" has the admin's username");
  fails(kForgejo + "[forgejo.runner_token]\n",
        "missing required key \"vault_path\" in [forgejo.runner_token]");
  fails(kForgejo + "[forgejo.runner_token]\nvault_path = \"/x\"\n",
        "invalid \"vault_path\" \"/x\" in [forgejo.runner_token]");
  fails(container("forgejo") + "[forgejo]\ncontainer = \"forgejoo\"\n",
        "unknown container \"forgejoo\" in \"container\" of [forgejo]; did you mean \"forgejo\"?");
  fails(container("forgejo") + "[forgejo]\ncontainer = \"forgejo\"\nurl = \"localhost:3000\"\n",
        "invalid URL \"localhost:3000\" for \"url\" in [forgejo]");
  fails(kForgejo + "[forgejo.runner_tokn]\n",
        "unknown key \"runner_tokn\" in [forgejo]; did you mean \"runner_token\"?");
}

TEST_CASE("[forgejo.admin]") {
  const std::string base = container("forgejo") +
                           "[credentials.admin.fields]\npassword = { generate = \"password\" }\n"
                           "[forgejo]\ncontainer = \"forgejo\"\n[forgejo.admin]\n";
  const std::string pw = "password = \"${credentials.admin.password}\"\n";
  fails(base + "email = \"a@b.c\"\n" + pw, "missing required key \"username\" in [forgejo.admin]");
  fails(base + "username = \"x\"\n" + pw, "missing required key \"email\" in [forgejo.admin]");
  fails(base + "username = \"x\"\nemail = \"a@b.c\"\n",
        "missing required key \"password\" in [forgejo.admin]");
  fails(base + "username = \"x\"\nemail = \"not-an-email\"\n" + pw,
        "invalid \"email\" \"not-an-email\" in [forgejo.admin]: expected user@domain");
  fails(base + "username = \"a..b\"\nemail = \"a@b.c\"\n" + pw,
        "invalid user name \"a..b\": must not contain two non-alphanumerics in a row");
  CHECK(loads(base + "username = \"x\"\nemail = \"a@b.c\"\n" + pw).forgejo->admin);
}

// --------------------------------------------------- cross-resource checks ---

TEST_CASE("a host port may be published once on the host") {
  fails(container("a") + "ports = [\"8080:80\"]\n" + container("b") +
            "ports = [\"127.0.0.1:8080:80\"]\n",
        "host port 8080/tcp of [containers.b] is already published by [containers.a]");
  fails(container("a") + "ports = [\"8080:80\", \"0.0.0.0:8080:81\"]\n",
        "host port 8080/tcp of [containers.a] is already published earlier in the same "
        "container");
  CHECK(loads(container("a") + "ports = [\"8080:80\", \"8080:80/udp\"]\n" + container("b") +
              "ports = [\"8081:80\"]\n")
            .containers.size() == 2);
  CHECK(loads(container("a") + "ports = [\"127.0.0.1:8080:80\"]\n" + container("b") +
              "ports = [\"127.0.0.2:8080:80\"]\n")
            .containers.size() == 2);
}

TEST_CASE("the runner token path may not collide with a credential's") {
  fails(kForgejo + "[credentials.x]\nvault_path = \"forgejo/runner\"\n[credentials.x.fields]\n"
                   "a = \"b\"\n[forgejo.runner_token]\nvault_path = \"forgejo/runner\"\n",
        "vault_path \"forgejo/runner\" of [forgejo.runner_token] is already used by "
        "[credentials.x]");
}

TEST_CASE("a dependency cycle is an error that prints the cycle") {
  const auto r = load("[containers.a]\nimage = \"${versions.web}\"\ndepends_on = [\"b\"]\n"
                      "[containers.b]\nimage = \"${versions.web}\"\ndepends_on = [\"a\"]\n");
  CHECK_FALSE(r.spec);
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:4:1: error: dependency cycle: container.a -> container.b -> "
        "container.a\n");
}

TEST_CASE("a longer cycle through a service is reported from its smallest node") {
  // vault runs in container "v", whose env needs nothing; container "c" waits
  // for "v"; "v" waits for "c": container.c -> container.v -> container.c.
  const auto r = load(container("c") + "depends_on = [\"v\"]\n" + container("v") +
                      "depends_on = [\"c\"]\n[vault]\ncontainer = \"v\"\n");
  CHECK(has(r, "dependency cycle: container.c -> container.v -> container.c"));
}
