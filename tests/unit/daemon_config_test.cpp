#include <doctest/doctest.h>

#include "config/daemon_config.hpp"

using namespace foundationd::config;
using namespace std::chrono_literals;

namespace {

DaemonConfig loads(const std::string& text) {
  auto r = loadDaemonConfigText(text, "foundationd.toml");
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.config);
  CHECK(r.diagnostics.items().empty());
  return *r.config;
}

std::string errors(const std::string& text) {
  auto r = loadDaemonConfigText(text, "foundationd.toml");
  CHECK_FALSE(r.config);
  return r.diagnostics.formatAll();
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("an empty config gives the documented defaults") {
  const DaemonConfig c = loads("");
  const DaemonConfig d;
  CHECK(c.stateDir == "/var/lib/foundationd");
  CHECK(c.apiListen == std::vector<std::string>{"unix:/run/foundationd/api.sock",
                                                "tcp:127.0.0.1:9420"});
  CHECK(c.apiTokenFile == "/etc/foundationd/api-token");
  CHECK(c.dockerSocket == "/var/run/docker.sock");
  CHECK(c.source.kind == "file");
  CHECK(c.source.path == "/srv/foundation/foundation.toml");
  CHECK(c.source.branch == "main");
  CHECK(c.source.specPath == "foundation.toml");
  CHECK(c.source.pollInterval == Duration(5min));
  CHECK_FALSE(c.source.token);
  CHECK(c.resyncInterval == Duration(60s));
  CHECK(c.kdf == "moderate");
  CHECK(c.keepKeyInMemory);
  CHECK(c.stateDir == d.stateDir);
}

TEST_CASE("the INTERFACES.md example loads") {
  const DaemonConfig c = loads(R"(state_dir = "/var/lib/foundationd"
[api]
listen = ["unix:/run/foundationd/api.sock", "tcp:127.0.0.1:9420"]
token_file = "/etc/foundationd/api-token"
[docker]
socket = "/var/run/docker.sock"
[source]
kind = "file"
path = "/srv/foundation/foundation.toml"
[reconcile]
resync_interval = "60s"
[unlock]
kdf = "moderate"
keep_key_in_memory = true
)");
  CHECK(c.source.path == "/srv/foundation/foundation.toml");
}

TEST_CASE("a git source with credential references") {
  const DaemonConfig c = loads(R"([source]
kind = "git"
url = "https://git.example.org/olsitec/foundation.git"
branch = "release"
spec_path = "deploy/foundation.toml"
poll_interval = "2m"
token = "${credentials.spec-repo.token}"
webhook_secret = "${credentials.forgejo-webhook.secret}"
[reconcile]
resync_interval = "5m"
[unlock]
kdf = "interactive"
keep_key_in_memory = false
)");
  CHECK(c.source.kind == "git");
  CHECK(c.source.branch == "release");
  CHECK(c.source.specPath == "deploy/foundation.toml");
  CHECK(c.source.pollInterval == Duration(2min));
  CHECK(c.source.token == std::optional<CredentialRef>(CredentialRef{"spec-repo", "token"}));
  CHECK(c.source.webhookSecret ==
        std::optional<CredentialRef>(CredentialRef{"forgejo-webhook", "secret"}));
  CHECK(c.resyncInterval == Duration(5min));
  CHECK(c.kdf == "interactive");
  CHECK_FALSE(c.keepKeyInMemory);
  for (const char* url : {"ssh://git@h/x.git", "git@host:org/repo.git", "file:///srv/repo",
                          "http://h/x"}) {
    CAPTURE(url);
    loads(std::string("[source]\nkind = \"git\"\nurl = \"") + url + "\"\n");
  }
}

TEST_CASE("unknown keys are located with did-you-mean") {
  CHECK(errors("stat_dir = \"/x\"\n[api]\nlisten = []\ntokenfile = \"/t\"\n[unlok]\n") ==
        "foundationd.toml:1:1: error: unknown key \"stat_dir\" at the top level; did you mean "
        "\"state_dir\"?\n"
        "foundationd.toml:3:10: error: \"listen\" in [api] must not be empty\n"
        "foundationd.toml:4:1: error: unknown key \"tokenfile\" in [api]; did you mean "
        "\"token_file\"?\n"
        "foundationd.toml:5:2: error: unknown table [unlok]; did you mean [unlock]?\n");
  CHECK(contains(errors("[source]\npoll = \"1m\"\n"), "unknown key \"poll\" in [source]"));
}

TEST_CASE("wrong types") {
  CHECK(errors("state_dir = 5\n") ==
        "foundationd.toml:1:13: error: expected a string for \"state_dir\" at the top level, "
        "got an integer\n");
  CHECK(contains(errors("[unlock]\nkeep_key_in_memory = \"yes\"\n"),
                 "expected a boolean for \"keep_key_in_memory\" in [unlock], got a string"));
  CHECK(contains(errors("api = 1\n"), "expected a table for \"api\" at the top level"));
}

TEST_CASE("syntax errors are located") {
  CHECK(errors("[api\n").rfind("foundationd.toml:1:", 0) == 0);
}

TEST_CASE("paths must be absolute") {
  CHECK(contains(errors("state_dir = \"var/lib\"\n"),
                 "\"state_dir\" at the top level must be an absolute path"));
  CHECK(contains(errors("[docker]\nsocket = \"docker.sock\"\n"), "\"socket\" in [docker]"));
  CHECK(contains(errors("[api]\ntoken_file = \"t\"\n"), "\"token_file\" in [api]"));
  CHECK(contains(errors("[source]\npath = \"f.toml\"\n"), "\"path\" in [source]"));
}

TEST_CASE("listen addresses") {
  const DaemonConfig c = loads("[api]\nlisten = [\"unix:/run/x.sock\", \"tcp:0.0.0.0:9420\", "
                               "\"tcp:[::1]:9420\", \"tcp:localhost:1\"]\n");
  CHECK(c.apiListen.size() == 4);
  CHECK(errors("[api]\nlisten = [\"http://x\"]\n") ==
        "foundationd.toml:2:11: error: invalid listen address \"http://x\" in [api]: expected "
        "\"unix:/path\" or \"tcp:host:port\"\n");
  CHECK(contains(errors("[api]\nlisten = [\"unix:relative.sock\"]\n"),
                 "socket path must be an absolute path"));
  CHECK(contains(errors("[api]\nlisten = [\"tcp:127.0.0.1:0\"]\n"), "invalid port"));
  CHECK(contains(errors("[api]\nlisten = [\"tcp:127.0.0.1\"]\n"), "expected \"tcp:host:port\""));
  CHECK(contains(errors("[api]\nlisten = [\"tcp::::1:80\"]\n"), "IPv6 addresses in brackets"));
  CHECK(contains(errors("[api]\nlisten = [\"tcp:[::1:80\"]\n"), "expected \"tcp:[ipv6]:port\""));
  CHECK(contains(errors("[api]\nlisten = [\"tcp:h:1\", \"tcp:h:1\"]\n"), "is listed twice"));
  CHECK(contains(errors("[api]\nlisten = [1]\n"), "expected a string for \"listen[0]\""));
}

TEST_CASE("webhook_listen: addresses that serve the webhooks only") {
  CHECK(loads("").apiWebhookListen.empty());
  const DaemonConfig c = loads("[api]\nwebhook_listen = [\"tcp:0.0.0.0:9421\"]\n");
  CHECK(c.apiWebhookListen == std::vector<std::string>{"tcp:0.0.0.0:9421"});
  CHECK(c.apiListen.size() == 2);  // the default listeners stay
  CHECK(errors("[api]\nwebhook_listen = [\"0.0.0.0:9421\"]\n") ==
        "foundationd.toml:2:19: error: invalid webhook_listen address \"0.0.0.0:9421\" in [api]: "
        "expected \"unix:/path\" or \"tcp:host:port\"\n");
  // One address serves one of them: in both lists (given or the default) it is refused.
  CHECK(contains(errors("[api]\nlisten = [\"tcp:127.0.0.1:9\"]\nwebhook_listen = [\"tcp:127.0.0.1:9\"]\n"),
                 "webhook_listen address \"tcp:127.0.0.1:9\" is also in \"listen\""));
  CHECK(contains(errors("[api]\nwebhook_listen = [\"tcp:127.0.0.1:9420\"]\n"),
                 "is also in \"listen\""));
  CHECK(contains(errors("[api]\nwebhook_listen = [\"tcp:h:1\", \"tcp:h:1\"]\n"), "is listed twice"));
  CHECK(contains(errors("[api]\nwebhook_listen = \"tcp:0.0.0.0:9421\"\n"), "webhook_listen"));
}

TEST_CASE("source kind") {
  CHECK(errors("[source]\nkind = \"gti\"\n") ==
        "foundationd.toml:2:8: error: invalid \"kind\" \"gti\" in [source]; expected \"file\" or "
        "\"git\"; did you mean \"git\"?\n");
  CHECK(errors("[source]\nkind = \"git\"\n") ==
        "foundationd.toml:2:1: error: [source] with kind = \"git\" needs a \"url\"\n");
  CHECK(contains(errors("[source]\nkind = \"git\"\nurl = \"not a url\"\n"),
                 "invalid \"url\" \"not a url\" in [source]"));
}

TEST_CASE("git-only keys on a file source are ignored with a warning") {
  auto r = loadDaemonConfigText("[source]\nkind = \"file\"\nbranch = \"main\"\n", "d.toml");
  CHECK(r.config);
  CHECK(r.diagnostics.formatAll() ==
        "d.toml:3:1: warning: \"branch\" in [source] is ignored unless kind = \"git\"\n");
}

TEST_CASE("token and webhook_secret are credential references, never secrets") {
  CHECK(errors("[source]\nkind = \"git\"\nurl = \"https://h/x\"\ntoken = \"ghp_abc\"\n") ==
        "foundationd.toml:4:9: error: \"token\" in [source] must be a credential reference "
        "\"${credentials.NAME.FIELD}\"; secrets are never written in the config\n");
  for (const char* bad : {"${credentials.x}", "${credentials.x.y.z}", "${credentials.a.b}x",
                          "${versions.x}", "${credentials.a.b-c}"}) {
    CAPTURE(bad);
    CHECK(contains(errors(std::string("[source]\nkind = \"git\"\nurl = \"https://h/x\"\n"
                                      "webhook_secret = \"") + bad + "\"\n"),
                   "must be a credential reference"));
  }
}

TEST_CASE("durations, branch and spec_path") {
  CHECK(contains(errors("[reconcile]\nresync_interval = \"60\"\n"),
                 "invalid duration \"60\" for \"resync_interval\" in [reconcile]"));
  CHECK(contains(errors("[reconcile]\nresync_interval = \"0s\"\n"), "must be positive"));
  CHECK(contains(errors("[source]\nkind = \"git\"\nurl = \"https://h/x\"\npoll_interval = \"x\"\n"),
                 "invalid duration \"x\" for \"poll_interval\""));
  CHECK(contains(errors("[source]\nkind = \"git\"\nurl = \"https://h/x\"\nbranch = \"a..b\"\n"),
                 "invalid \"branch\" \"a..b\""));
  CHECK(contains(errors("[source]\nkind = \"git\"\nurl = \"https://h/x\"\nspec_path = \"/abs\"\n"),
                 "invalid \"spec_path\" \"/abs\""));
  CHECK(contains(errors("[source]\nkind = \"git\"\nurl = \"https://h/x\"\nspec_path = \"../x\"\n"),
                 "invalid \"spec_path\""));
}

TEST_CASE("kdf") {
  for (const char* k : {"interactive", "moderate", "sensitive"}) {
    CHECK(loads(std::string("[unlock]\nkdf = \"") + k + "\"\n").kdf == k);
  }
  CHECK(errors("[unlock]\nkdf = \"moderat\"\n") ==
        "foundationd.toml:2:7: error: invalid \"kdf\" \"moderat\" in [unlock]; expected "
        "interactive, moderate or sensitive; did you mean \"moderate\"?\n");
}

TEST_CASE("loadDaemonConfigFile") {
  auto missing = loadDaemonConfigFile("/nonexistent/foundationd.toml");
  CHECK_FALSE(missing.config);
  CHECK(missing.diagnostics.formatAll() ==
        "/nonexistent/foundationd.toml: error: cannot read the config file: No such file or "
        "directory\n");
}

TEST_CASE("a source URL with credentials in it is refused, located, without echoing them") {
  for (const char* url : {"https://s3cr3tt0ken@git.example.org/o/r.git",
                          "https://user:s3cr3tt0ken@git.example.org/o/r.git",
                          "http://s3cr3tt0ken@127.0.0.1:3000/o/r.git"}) {
    CAPTURE(url);
    const std::string e =
        errors(std::string("[source]\nkind = \"git\"\nurl = \"") + url + "\"\n");
    CHECK(contains(e, "foundationd.toml:3:"));
    CHECK(contains(e, "has credentials in it"));
    CHECK_FALSE(contains(e, "s3cr3tt0ken"));
  }
  // A login name for SSH is not a secret.
  loads("[source]\nkind = \"git\"\nurl = \"ssh://git@h/x.git\"\n");
}

TEST_CASE("a token over plain http:// is refused unless allowed (or on loopback)") {
  const std::string base =
      "[source]\nkind = \"git\"\ntoken = \"${credentials.repo.token}\"\nurl = ";
  const std::string e = errors(base + "\"http://git.example.org/o/r.git\"\n");
  CHECK(contains(e, "foundationd.toml:3:"));
  CHECK(contains(e, "plain text over http:// to git.example.org"));
  CHECK(contains(e, "allow_plain_http = true"));
  CHECK(loads(base + "\"http://git.example.org/o/r.git\"\nallow_plain_http = true\n")
            .source.allowPlainHttp);
  loads(base + "\"https://git.example.org/o/r.git\"\n");
  loads(base + "\"http://127.0.0.1:3000/o/r.git\"\n");
  loads(base + "\"http://localhost/o/r.git\"\n");
  loads(base + "\"http://[::1]:3000/o/r.git\"\n");
  loads("[source]\nkind = \"git\"\nurl = \"http://git.example.org/o/r.git\"\n");  // no token
}

TEST_CASE("[source] allowed_signers, require_signed and settle") {
  const std::string git = "[source]\nkind = \"git\"\nurl = \"https://forge.example/o/f.git\"\n";
  const DaemonConfig off = loads(git);
  CHECK(off.source.allowedSigners.empty());
  CHECK_FALSE(off.source.requireSigned);
  CHECK(off.source.settle == 0s);

  const DaemonConfig on =
      loads(git + "allowed_signers = \"/etc/foundationd/allowed_signers\"\nsettle = \"90s\"\n");
  CHECK(on.source.allowedSigners == "/etc/foundationd/allowed_signers");
  CHECK(on.source.requireSigned);  // implied by the file
  CHECK(on.source.settle == 90s);
  const DaemonConfig audit =
      loads(git + "allowed_signers = \"/etc/foundationd/allowed_signers\"\nrequire_signed = false\n");
  CHECK_FALSE(audit.source.requireSigned);
  CHECK(loads(git + "settle = \"0s\"\n").source.settle == 0s);

  CHECK(contains(errors(git + "require_signed = true\n"),
                 "foundationd.toml:4:1: error: \"require_signed\" in [source] needs \"allowed_signers\""));
  CHECK(contains(errors(git + "allowed_signers = \"allowed_signers\"\n"), "foundationd.toml:4:"));
  CHECK(contains(errors(git + "settle = \"soon\"\n"), "foundationd.toml:4:"));
  CHECK(contains(errors(git + "require_signed = \"yes\"\n"), "foundationd.toml:4:"));
}
