// [containers.*]: every key, its default, and its failing and passing cases.
#include <doctest/doctest.h>

#include <map>

#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kDigest(64, 'b');
const std::string kVersions =
    "[images]\nweb = \"docker.io/library/nginx:1.27@sha256:" + kDigest + "\"\n"
    "loose = \"docker.io/library/nginx:1.27\"\n";
// Header (3 lines) + [containers.web] + image: container keys start on line 6.
const std::string kHeader =
    "spec_version = 1\nproject = \"demo\"\nversions = \"VERSIONS\"\n"
    "[containers.web]\nimage = \"${versions.web}\"\n";
const std::string kDeclarations =
    "[networks.foundation-net]\n[networks.backend]\n[volumes.data]\n"
    "[credentials.db.fields]\npassword = { generate = \"password\" }\n"
    "[containers.db]\nimage = \"${versions.web}\"\n"
    "healthcheck = { test = \"pg_isready\" }\n"
    "[containers.cache]\nimage = \"${versions.web}\"\n";

LoadResult load(const std::string& keys) {
  return loadSpecText(kHeader + keys + kDeclarations, "foundation.toml",
                      [](const std::string& p) -> std::optional<std::string> {
                        if (p == "VERSIONS") return kVersions;
                        return std::nullopt;
                      });
}

ContainerSpec web(const std::string& keys) {
  const auto r = load(keys);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.items().empty());
  return r.spec->containers.at("web");
}

void fails(const std::string& keys, const std::string& needle) {
  const auto r = load(keys);
  INFO(r.diagnostics.formatAll());
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("container names follow Docker's rule") {
  const auto r = loadSpecText(
      "spec_version = 1\nproject = \"p\"\n[containers.\"web app\"]\nimage = \"nginx@sha256:" +
          kDigest + "\"\n",
      "foundation.toml", nullptr);
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:3:13: error: invalid container name \"web app\": must match "
        "[a-zA-Z0-9][a-zA-Z0-9_.-]*\n");
}

TEST_CASE("image is required") {
  const auto r = loadSpecText("spec_version = 1\nproject = \"p\"\n[containers.web]\n",
                              "foundation.toml", nullptr);
  CHECK(r.diagnostics.formatAll() ==
        "foundation.toml:3:1: error: missing required key \"image\" in [containers.web]\n");
}

TEST_CASE("image pinning: a warning, an error under strict_pinning, a malformed digest always") {
  const std::string head = "spec_version = 1\nproject = \"p\"\n";
  const std::string body = "[containers.web]\nimage = \"nginx:1.27\"\n";
  auto run = [](const std::string& text) {
    return loadSpecText(text, "foundation.toml", nullptr);
  };
  SUBCASE("unpinned: warning, still loads") {
    const auto r = run(head + body);
    CHECK(r.spec);
    CHECK(r.diagnostics.formatAll() ==
          "foundation.toml:4:9: warning: image \"nginx:1.27\" of [containers.web] is not pinned "
          "by digest\n");
  }
  SUBCASE("unpinned with strict_pinning: error") {
    const auto r = run(head + "strict_pinning = true\n" + body);
    CHECK_FALSE(r.spec);
    CHECK(r.diagnostics.formatAll() ==
          "foundation.toml:5:9: error: image \"nginx:1.27\" of [containers.web] is not pinned "
          "by digest (strict_pinning = true)\n");
  }
  SUBCASE("pinned after interpolation: clean, even under strict_pinning") {
    CHECK(web("").image == "docker.io/library/nginx:1.27@sha256:" + kDigest);
  }
  SUBCASE("a pin from VERSIONS that lacks a digest warns at the image key") {
    const auto r = load("");
    CHECK(r.diagnostics.warningCount() == 0);
    const auto loose = loadSpecText(
        "spec_version = 1\nproject = \"p\"\nversions = \"V\"\n[containers.web]\n"
        "image = \"${versions.loose}\"\n",
        "foundation.toml", [](const std::string&) { return std::optional<std::string>(kVersions); });
    CHECK(loose.diagnostics.formatAll() ==
          "foundation.toml:5:9: warning: image \"docker.io/library/nginx:1.27\" of "
          "[containers.web] is not pinned by digest\n");
  }
  SUBCASE("malformed digests are errors without strict_pinning") {
    for (const std::string& bad : std::vector<std::string>{"nginx@sha256:abc", "nginx@sha512:" + kDigest,
                                  "nginx@sha256:" + std::string(64, 'A'),
                                  "nginx@sha256:" + std::string(63, 'a') + "g"}) {
      CAPTURE(bad);
      const auto r = run(head + "[containers.web]\nimage = \"" + bad + "\"\n");
      CHECK_FALSE(r.spec);
      CHECK(r.diagnostics.formatAll().find("has a malformed digest") != std::string::npos);
    }
  }
  SUBCASE("malformed references") {
    for (const std::string bad : {"", "Nginx:1", "nginx:bad tag", "nginx:", "a//b"}) {
      CAPTURE(bad);
      CHECK_FALSE(run(head + "[containers.web]\nimage = \"" + bad + "\"\n").spec);
    }
    CHECK(run(head + "[containers.web]\nimage = \"registry.local:5000/team/app:v1@sha256:" +
              kDigest + "\"\n")
              .diagnostics.items()
              .empty());
  }
}

TEST_CASE("command and entrypoint are arrays of strings") {
  const auto c = web("command = [\"postgres\", \"-c\", \"max_connections=200\"]\nentrypoint = []\n");
  CHECK(c.command == std::optional<std::vector<std::string>>({"postgres", "-c",
                                                              "max_connections=200"}));
  CHECK(c.entrypoint == std::optional<std::vector<std::string>>(std::vector<std::string>{}));
  fails("command = \"postgres -c x\"\n",
        "foundation.toml:6:11: error: expected an array for \"command\" in [containers.web], got "
        "a string");
  fails("command = [\"a\", 1]\n",
        "expected a string for \"command[1]\" in [containers.web], got an integer");
}

TEST_CASE("env: valid names, string values, secrets allowed") {
  const auto c = web("env = { POSTGRES_USER = \"postgres\", _X1 = \"\", "
                     "PW = \"${credentials.db.password}\" }\n");
  CHECK(c.env.at("POSTGRES_USER").display() == "postgres");
  CHECK(c.env.at("PW").sensitive());
  CHECK(c.env.at("_X1").segments.empty());
  fails("env = { \"1X\" = \"a\" }\n",
        "invalid environment variable name \"1X\" in [containers.web]: must match "
        "[A-Za-z_][A-Za-z0-9_]*");
  fails("env = { \"A-B\" = \"a\" }\n", "invalid environment variable name \"A-B\"");
  fails("env = { PORT = 8080 }\n",
        "foundation.toml:6:16: error: expected a string (quote numbers and booleans) for env "
        "\"PORT\" in [containers.web], got an integer");
  fails("env = { DEBUG = true }\n", "got a boolean");
  fails("env = [\"A=b\"]\n", "expected a table for \"env\" in [containers.web], got an array");
}

TEST_CASE("secret_files: absolute paths to secret values") {
  const auto c = web("secret_files = { \"/run/secrets/pg\" = \"${credentials.db.password}\" }\n");
  CHECK(c.secretFiles.at("/run/secrets/pg").references() ==
        std::vector<CredentialRef>{{"db", "password"}});
  fails("secret_files = { \"run/pg\" = \"x\" }\n",
        "secret file path \"run/pg\" of [containers.web] must be an absolute path");
  fails("secret_files = { \"/run/../pg\" = \"x\" }\n", "must not contain \".\" or \"..\"");
  fails("secret_files = { \"/run/pg\" = 1 }\n",
        "expected a string for secret_files \"/run/pg\" in [containers.web], got an integer");
}

TEST_CASE("networks: names or { name, aliases }, declared or built in") {
  const auto c = web("networks = [\"foundation-net\", { name = \"backend\", aliases = [\"db\", "
                     "\"db.local\"] }]\n");
  REQUIRE(c.networks.size() == 2);
  CHECK(c.networks[0].network == "foundation-net");
  CHECK(c.networks[0].loc.line == 6);
  CHECK(c.networks[1].aliases == std::vector<std::string>{"db", "db.local"});
  CHECK(web("networks = [\"bridge\"]\n").networks[0].network == "bridge");
  CHECK(web("networks = [\"host\"]\n").networks[0].network == "host");
  CHECK(web("networks = [\"none\"]\n").networks[0].network == "none");

  fails("networks = [\"foundation_net\"]\n",
        "foundation.toml:6:13: error: unknown network \"foundation_net\" in \"networks\" of "
        "[containers.web] (declare it in [networks]); did you mean \"foundation-net\"?");
  fails("networks = [{ name = \"backend\", alias = [\"x\"] }]\n",
        "unknown key \"alias\" in [containers.web.networks[0]]; did you mean \"aliases\"?");
  fails("networks = [{ aliases = [\"x\"] }]\n", "missing required key \"name\"");
  fails("networks = [{ name = \"backend\", aliases = [\"-x\"] }]\n", "invalid alias \"-x\"");
  fails("networks = [{ name = \"bridge\", aliases = [\"x\"] }]\n",
        "aliases need a user-defined network");
  fails("networks = [\"backend\", \"backend\"]\n",
        "network \"backend\" is listed twice in [containers.web]");
  fails("networks = [\"host\", \"backend\"]\n",
        "network \"host\" of [containers.web] cannot be combined with other networks");
  fails("networks = [1]\n",
        "expected a network name or { name, aliases } for \"networks[0]\" in [containers.web], "
        "got an integer");
  fails("networks = [\"host\"]\nports = [\"80:80\"]\n",
        "\"ports\" of [containers.web] have no effect with network \"host\"");
}

TEST_CASE("volumes: source:target[:ro|:rw]") {
  const auto c = web("volumes = [\"data:/var/lib/data\", \"/etc/app.conf:/etc/app.conf:ro\", "
                     "\"/srv:/srv:rw\"]\n");
  REQUIRE(c.volumes.size() == 3);
  CHECK(c.volumes[0].source == "data");
  CHECK_FALSE(c.volumes[0].bind);
  CHECK(c.volumes[0].target == "/var/lib/data");
  CHECK_FALSE(c.volumes[0].readOnly);
  CHECK(c.volumes[1].bind);
  CHECK(c.volumes[1].readOnly);
  CHECK_FALSE(c.volumes[2].readOnly);

  fails("volumes = [\"dta:/data\"]\n",
        "foundation.toml:6:12: error: unknown volume \"dta\" in \"volumes\" of [containers.web] "
        "(declare it in [volumes]); did you mean \"data\"?");
  fails("volumes = [\"data:relative\"]\n",
        "invalid volume \"data:relative\" of [containers.web]: target must be an absolute path");
  fails("volumes = [\"data:/x:rx\"]\n", "unknown mode \"rx\" (expected ro or rw)");
  fails("volumes = [\"data\"]\n", "expected \"source:target\" or \"source:target:ro\"");
  fails("volumes = [\"a:/b:ro:z\"]\n", "expected \"source:target\"");
  fails("volumes = [\"./conf:/conf\"]\n", "relative bind source \"./conf\": use an absolute path");
  fails("volumes = [\":/x\"]\n", "has an empty source");
  fails("volumes = [\"/a/../b:/x\"]\n", "bind source must not contain \".\" or \"..\" segments");
  fails("volumes = [\"data:/\"]\n", "target must not be \"/\"");
  fails("volumes = [\"data:/x\", \"/y:/x/\"]\n",
        "mount target \"/x\" is used more than once in [containers.web]");
}

TEST_CASE("ports: [host-ip:][host-port:]container-port[/proto]") {
  const auto c = web("ports = [\"80\", \"8080:80\", \"127.0.0.1:5432:5432\", \"53:53/udp\", "
                     "\"[::1]:9000:9000/tcp\", \"9999:9999/sctp\"]\n");
  REQUIRE(c.ports.size() == 6);
  CHECK(c.ports[0].containerPort == 80);
  CHECK_FALSE(c.ports[0].hostPort);
  CHECK(c.ports[0].hostIp.empty());
  CHECK(c.ports[1].hostPort == std::optional<std::uint16_t>(8080));
  CHECK(c.ports[2].hostIp == "127.0.0.1");
  CHECK(c.ports[2].protocol == "tcp");
  CHECK(c.ports[3].protocol == "udp");
  CHECK(c.ports[4].hostIp == "::1");
  CHECK(c.ports[4].hostPort == std::optional<std::uint16_t>(9000));
  CHECK(c.ports[5].protocol == "sctp");

  fails("ports = [\"127.0.0.1::80\"]\n",
        "foundation.toml:6:10: error: invalid port \"127.0.0.1::80\" of [containers.web]: a host "
        "port is required when a host address is given");
  fails("ports = [\"0\"]\n", "invalid container port \"0\" (expected 1-65535)");
  fails("ports = [\"65536:80\"]\n", "invalid host port \"65536\"");
  fails("ports = [\"80/http\"]\n", "unknown protocol \"http\" (expected tcp, udp or sctp)");
  fails("ports = [\"80/TCP\"]\n", "unknown protocol \"TCP\"");
  fails("ports = [\"8000-8010:8000-8010\"]\n", "port ranges are not supported");
  fails("ports = [\"::1:80:80\"]\n", "write an IPv6 host address in brackets");
  fails("ports = [\"localhost:80:80\"]\n", "invalid host address \"localhost\"");
  fails("ports = [\"[::1:80:80\"]\n", "unterminated IPv6 address");
  fails("ports = [\"[1.2.3.4]:80:80\"]\n", "invalid IPv6 host address \"1.2.3.4\"");
  fails("ports = [80]\n", "expected a string for \"ports[0]\" in [containers.web], got an integer");
}

TEST_CASE("restart") {
  CHECK(web("").restart == "no");
  for (const char* p : {"no", "always", "unless-stopped", "on-failure"}) {
    CHECK(web(std::string("restart = \"") + p + "\"\n").restart == p);
  }
  fails("restart = \"unless_stopped\"\n",
        "foundation.toml:6:11: error: invalid \"restart\" \"unless_stopped\" in [containers.web]; "
        "expected no, always, unless-stopped or on-failure; did you mean \"unless-stopped\"?");
}

TEST_CASE("user") {
  CHECK(web("user = \"999:999\"\n").user == std::optional<std::string>("999:999"));
  fails("user = \"\"\n", "invalid \"user\" \"\" in [containers.web]");
  fails("user = \"a b\"\n", "invalid \"user\" \"a b\"");
}

TEST_CASE("healthcheck") {
  SUBCASE("full form") {
    const auto c = web("healthcheck = { test = [\"CMD-SHELL\", \"pg_isready -U postgres\"], "
                       "interval = \"5s\", timeout = \"3s\", retries = 10, start_period = \"10s\" }\n");
    REQUIRE(c.healthcheck);
    CHECK(c.healthcheck->test == std::vector<std::string>{"CMD-SHELL", "pg_isready -U postgres"});
    CHECK(c.healthcheck->interval == std::optional<Duration>(std::chrono::seconds(5)));
    CHECK(c.healthcheck->timeout == std::optional<Duration>(std::chrono::seconds(3)));
    CHECK(c.healthcheck->startPeriod == std::optional<Duration>(std::chrono::seconds(10)));
    CHECK(c.healthcheck->retries == std::optional<int>(10));
  }
  SUBCASE("a string means CMD-SHELL; CMD and NONE forms") {
    CHECK(web("healthcheck = { test = \"curl -f localhost\" }\n").healthcheck->test ==
          std::vector<std::string>{"CMD-SHELL", "curl -f localhost"});
    CHECK(web("healthcheck = { test = [\"CMD\", \"curl\", \"-f\", \"x\"] }\n").healthcheck->test
              .size() == 4);
    CHECK(web("healthcheck = { test = [\"NONE\"] }\n").healthcheck->test ==
          std::vector<std::string>{"NONE"});
    CHECK(web("[containers.web.healthcheck]\ntest = \"true\"\nretries = 0\n").healthcheck->retries ==
          std::optional<int>(0));
  }
  SUBCASE("failures") {
    fails("healthcheck = { test = [\"pg_isready\"] }\n",
          "foundation.toml:6:24: error: invalid \"test\" in [containers.web.healthcheck]: the "
          "first item must be \"CMD\", \"CMD-SHELL\" or \"NONE\"");
    fails("healthcheck = { test = [\"CMD\"] }\n", "needs a command after \"CMD\"");
    fails("healthcheck = { test = [\"CMD-SHELL\", \"a\", \"b\"] }\n",
          "takes exactly one command string");
    fails("healthcheck = { test = [\"NONE\", \"x\"] }\n", "[\"NONE\"] takes no arguments");
    fails("healthcheck = { test = [] }\n", "the first item must be");
    fails("healthcheck = { test = 1 }\n", "expected an array or a string for \"test\"");
    fails("healthcheck = { interval = \"5s\" }\n",
          "missing required key \"test\" in [containers.web.healthcheck]");
    fails("healthcheck = { test = \"x\", intervall = \"5s\" }\n",
          "unknown key \"intervall\" in [containers.web.healthcheck]; did you mean \"interval\"?");
    fails("healthcheck = { test = \"x\", interval = \"5\" }\n",
          "invalid duration \"5\" for \"interval\" in [containers.web.healthcheck]");
    fails("healthcheck = { test = \"x\", timeout = \"0s\" }\n",
          "\"timeout\" in [containers.web.healthcheck] must be positive");
    fails("healthcheck = { test = \"x\", retries = -1 }\n",
          "\"retries\" in [containers.web.healthcheck] must be between 0 and 1000000, got -1");
    fails("healthcheck = \"curl\"\n", "expected a table for \"healthcheck\"");
  }
}

TEST_CASE("depends_on: names (started) or a table of conditions") {
  const auto list = web("depends_on = [\"db\", \"cache\"]\n");
  REQUIRE(list.dependsOn.size() == 2);
  CHECK(list.dependsOn[0].container == "db");
  CHECK((list.dependsOn[0].condition == DependCondition::started));
  CHECK(list.dependsOn[0].loc.line == 6);
  const auto table = web("depends_on = { db = \"healthy\", cache = \"started\" }\n");
  REQUIRE(table.dependsOn.size() == 2);
  CHECK(table.dependsOn[0].container == "cache");  // TOML tables are ordered by key here
  CHECK((table.dependsOn[1].condition == DependCondition::healthy));

  fails("depends_on = [\"dbb\"]\n",
        "foundation.toml:6:15: error: unknown container \"dbb\" in \"depends_on\" of "
        "[containers.web]; did you mean \"db\"?");
  fails("depends_on = [\"web\"]\n", "container \"web\" cannot depend on itself");
  fails("depends_on = [\"db\", \"db\"]\n", "container \"db\" is listed twice");
  fails("depends_on = { cache = \"healthy\" }\n",
        "foundation.toml:6:16: error: container \"web\" depends on \"cache\" being healthy, but "
        "[containers.cache] has no healthcheck; add one or use \"started\"");
  fails("depends_on = { db = \"ready\" }\n",
        "invalid condition \"ready\" for \"db\" in \"depends_on\" of [containers.web]; expected "
        "\"started\", \"healthy\" or \"completed\"");
  fails("depends_on = \"db\"\n", "expected an array of names or a table of conditions");
}

TEST_CASE("a healthy dependency on a disabled healthcheck is refused") {
  const auto r = loadSpecText(
      "spec_version = 1\nproject = \"p\"\n[containers.a]\nimage = \"x@sha256:" + kDigest +
          "\"\ndepends_on = { b = \"healthy\" }\n[containers.b]\nimage = \"x@sha256:" + kDigest +
          "\"\nhealthcheck = { test = [\"NONE\"] }\n",
      "foundation.toml", nullptr);
  CHECK(r.diagnostics.formatAll().find("disables its healthcheck (test = [\"NONE\"])") !=
        std::string::npos);
}

TEST_CASE("run: a service by default, \"once\" for a job; restart must not contradict it") {
  CHECK_FALSE(web("").runOnce);
  CHECK_FALSE(web("run = \"service\"\n").runOnce);
  CHECK(web("run = \"once\"\n").runOnce);
  CHECK(web("run = \"once\"\nrestart = \"on-failure\"\n").runOnce);
  fails("run = \"onc\"\n",
        "foundation.toml:6:7: error: invalid \"run\" \"onc\" in [containers.web]; expected "
        "\"service\" (kept running) or \"once\" (a job, run to completion once per config)");
  fails("run = \"once\"\nrestart = \"always\"\n",
        "foundation.toml:7:1: error: restart = \"always\" in [containers.web] contradicts run = "
        "\"once\": Docker would start the job again after it completes; use \"no\" or "
        "\"on-failure\"");
  fails("run = true\n", "expected a string for \"run\" in [containers.web]");
}

TEST_CASE("depends_on a job waits for \"completed\"; a service never completes") {
  const std::string job = "[containers.migrate]\nimage = \"x@sha256:" + kDigest +
                          "\"\nrun = \"once\"\n";
  auto spec = [&](const std::string& dep) {
    return loadSpecText("spec_version = 1\nproject = \"p\"\n[containers.a]\nimage = \"x@sha256:" +
                            kDigest + "\"\ndepends_on = " + dep + "\n" + job,
                        "foundation.toml", nullptr);
  };
  const auto ok = spec("{ migrate = \"completed\" }");
  INFO(ok.diagnostics.formatAll());
  REQUIRE(ok.spec.has_value());
  CHECK((ok.spec->containers.at("a").dependsOn.at(0).condition == DependCondition::completed));
  const auto started = spec("[\"migrate\"]");
  CHECK_FALSE(started.spec.has_value());
  CHECK(started.diagnostics.formatAll().find(
            "foundation.toml:5:15: error: container \"a\" depends on \"migrate\" being started, "
            "but [containers.migrate] is a job (run = \"once\") that exits when done; use "
            "depends_on = { migrate = \"completed\" }") != std::string::npos);
  fails("depends_on = { db = \"completed\" }\n",
        "container \"web\" depends on \"db\" being completed, but [containers.db] is a service "
        "that is kept running; \"completed\" needs a job (run = \"once\")");
}

TEST_CASE("depends_timeout: a positive duration") {
  CHECK_FALSE(web("").dependsTimeout.has_value());
  CHECK(web("depends_timeout = \"2m\"\n").dependsTimeout == std::chrono::minutes(2));
  fails("depends_timeout = \"0s\"\n",
        "foundation.toml:6:19: error: \"depends_timeout\" in [containers.web] must be positive");
  fails("depends_timeout = 30\n", "\"depends_timeout\"");
}

TEST_CASE("labels: strings, no reserved prefix") {
  CHECK(web("labels = { \"org.example.team\" = \"platform\" }\n").labels.at("org.example.team") ==
        "platform");
  fails("labels = { \"foundationd.managed\" = \"true\" }\n",
        "foundation.toml:6:12: error: label \"foundationd.managed\" of [containers.web] uses the "
        "reserved prefix \"foundationd.\" (foundationd sets those)");
  fails("labels = { team = 1 }\n", "expected a string for label \"team\"");
}

TEST_CASE("memory: a size of at least 6MiB") {
  CHECK(web("memory = \"1GiB\"\n").memoryBytes == std::optional<std::int64_t>(1LL << 30));
  CHECK(web("memory = \"512MiB\"\n").memoryBytes == std::optional<std::int64_t>(512LL << 20));
  CHECK(web("memory = \"1GB\"\n").memoryBytes == std::optional<std::int64_t>(1'000'000'000));
  CHECK(web("memory = 67108864\n").memoryBytes == std::optional<std::int64_t>(64LL << 20));
  fails("memory = \"1 GiB\"\n",
        "foundation.toml:6:10: error: invalid size \"1 GiB\" for \"memory\" in [containers.web]");
  fails("memory = \"1MiB\"\n", "must be at least 6MiB (Docker's minimum), got 1MiB");
  fails("memory = true\n", "expected a size string (\"512MiB\") for \"memory\"");
}

TEST_CASE("cpus: a positive number") {
  CHECK(web("cpus = 1.5\n").cpus == std::optional<double>(1.5));
  CHECK(web("cpus = 2\n").cpus == std::optional<double>(2.0));
  fails("cpus = 0\n", "\"cpus\" in [containers.web] must be a positive number");
  fails("cpus = -0.5\n", "must be a positive number");
  fails("cpus = nan\n", "must be a positive number");
  fails("cpus = inf\n", "must be a positive number");
  fails("cpus = \"2\"\n", "expected a number for \"cpus\" in [containers.web], got a string");
}

TEST_CASE("read_only, privileged, cap_add, cap_drop") {
  const auto c = web("read_only = true\nprivileged = true\ncap_add = [\"IPC_LOCK\"]\n"
                     "cap_drop = [\"ALL\"]\n");
  CHECK(c.readOnly);
  CHECK(c.privileged);
  CHECK(c.capAdd == std::vector<std::string>{"IPC_LOCK"});
  CHECK(c.capDrop == std::vector<std::string>{"ALL"});
  fails("read_only = \"yes\"\n", "expected a boolean for \"read_only\"");
  fails("cap_add = [\"net admin\"]\n", "invalid capability \"net admin\" in \"cap_add\"");
  fails("cap_drop = \"ALL\"\n", "expected an array for \"cap_drop\"");
}

TEST_CASE("stop_timeout: a duration in whole seconds") {
  CHECK(web("stop_timeout = \"30s\"\n").stopTimeout ==
        std::optional<Duration>(std::chrono::seconds(30)));
  CHECK(web("stop_timeout = \"2m\"\n").stopTimeout ==
        std::optional<Duration>(std::chrono::minutes(2)));
  fails("stop_timeout = \"1500ms\"\n", "\"stop_timeout\" in [containers.web] must be whole seconds");
  fails("stop_timeout = 30\n",
        "expected a duration string for \"stop_timeout\" in [containers.web], got an integer");
}

TEST_CASE("tmpfs: absolute paths with optional options") {
  CHECK(web("tmpfs = [\"/tmp\", \"/run:size=64m,mode=1777\"]\n").tmpfs ==
        std::vector<std::string>{"/tmp", "/run:size=64m,mode=1777"});
  fails("tmpfs = [\"tmp\"]\n", "invalid tmpfs \"tmp\" of [containers.web]: path must be an absolute "
                               "path");
  fails("tmpfs = [\"/tmp:\"]\n", "has empty options");
  fails("tmpfs = [\"/data\"]\nvolumes = [\"data:/data\"]\n",
        "mount target \"/data\" is used more than once");
}

TEST_CASE("a container reports all its errors at once") {
  const auto r = load("restart = \"sometimes\"\nmemory = \"x\"\ncpus = 0\nports = [\"0\"]\n");
  CHECK(r.diagnostics.errorCount() == 4);
}
