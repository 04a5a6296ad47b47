// [files.*] and a container's `files`: parsing, reading beside the spec,
// interpolation of the content, validation, and located errors.
#include <doctest/doctest.h>

#include <map>

#include "config/graph.hpp"
#include "config/spec_loader.hpp"

using namespace foundationd::config;

namespace {

const std::string kImage = "docker.io/library/caddy:2@sha256:" + std::string(64, 'c');
const std::string kHead = "spec_version = 1\nproject = \"demo\"\nversions = \"VERSIONS\"\n"
                          "[credentials.hook.fields]\nsecret = { generate = \"hex\" }\n"
                          "[containers.proxy]\nimage = \"${versions.caddy}\"\n";

std::map<std::string, std::string> repo() {
  return {
      {"VERSIONS", "[images]\ncaddy = \"" + kImage + "\"\n"},
      {"caddy/Caddyfile", ":80 {\n  respond \"v${versions.caddy}\"\n}\n"},
      {"caddy/secret.conf", "# header\ntoken ${credentials.hook.secret}\n"},
      {"caddy/bad.conf", "ok\nkey ${credentials.hook.secrte}\n"},
  };
}

LoadResult load(const std::string& body, std::map<std::string, std::string> files = repo()) {
  return loadSpecText(kHead + body, "conf/foundation.toml",
                      [files](const std::string& p) -> std::optional<std::string> {
                        auto it = files.find(p);
                        if (it == files.end()) return std::nullopt;
                        return it->second;
                      });
}

Spec ok(const std::string& body) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  REQUIRE(r.spec.has_value());
  return *r.spec;
}

void fails(const std::string& body, const std::string& needle) {
  const auto r = load(body);
  INFO(r.diagnostics.formatAll());
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find(needle) != std::string::npos);
}

std::string text(const Value& v) {
  std::string out;
  for (const auto& s : v.segments) {
    if (const auto* t = std::get_if<std::string>(&s)) out += *t;
    else out += "<" + std::get<CredentialRef>(s).name + "." + std::get<CredentialRef>(s).field + ">";
  }
  return out;
}

}  // namespace

TEST_CASE("a file from the spec repository is read beside the spec and interpolated") {
  const auto spec = ok(
      "files = { \"/etc/caddy/Caddyfile\" = \"caddyfile\" }\n"
      "[files.caddyfile]\nsource = \"caddy/Caddyfile\"\n");
  const auto& f = spec.files.at("caddyfile");
  CHECK(f.source == "caddy/Caddyfile");
  CHECK(text(f.content) == ":80 {\n  respond \"v" + kImage + "\"\n}\n");
  CHECK_FALSE(f.content.sensitive());
  CHECK(f.mode == 0444);
  CHECK(f.uid == 0);
  CHECK(f.onChange.kind == OnChange::Kind::recreate);
  const auto& m = spec.containers.at("proxy").files.at("/etc/caddy/Caddyfile");
  CHECK(m.file == "caddyfile");
  CHECK(text(m.content) == text(f.content));
  CHECK(m.effective.kind == OnChange::Kind::recreate);
}

TEST_CASE("a file with a credential is sensitive, 0400 by default, and its consumer waits for the credential") {
  const auto spec = ok(
      "files = { \"/etc/app.conf\" = \"conf\" }\n"
      "[files.conf]\nsource = \"caddy/secret.conf\"\nowner = \"999:998\"\n");
  const auto& f = spec.files.at("conf");
  CHECK(f.content.sensitive());
  CHECK(text(f.content) == "# header\ntoken <hook.secret>\n");
  CHECK(f.mode == 0400);
  CHECK(f.uid == 999);
  CHECK(f.gid == 998);
  const auto graph = Graph::build(spec);
  CHECK(graph.dependencies({Kind::container, "proxy"}).count({Kind::credential, "hook"}) == 1);
}

TEST_CASE("inline content, modes, owners and on_change forms") {
  const auto spec = ok(
      "files = { \"/a\" = \"a\", \"/b\" = { file = \"b\", on_change = [\"caddy\", \"reload\"] } }\n"
      "[files.a]\ncontent = \"x=${credentials.hook.secret}\"\nmode = 0o440\nowner = 70\n"
      "on_change = \"signal:SIGHUP\"\n"
      "[files.b]\ncontent = \"plain $$HOME\"\nmode = \"0644\"\non_change = \"restart\"\n");
  const auto& a = spec.files.at("a");
  CHECK(a.mode == 0440);
  CHECK(a.uid == 70);
  CHECK(a.gid == 70);
  CHECK(a.onChange.kind == OnChange::Kind::signal);
  CHECK(a.onChange.signal == "SIGHUP");
  const auto& b = spec.files.at("b");
  CHECK(text(b.content) == "plain $HOME");
  CHECK(b.mode == 0644);
  CHECK(b.onChange.kind == OnChange::Kind::restart);
  const auto& files = spec.containers.at("proxy").files;
  CHECK(files.at("/a").effective.kind == OnChange::Kind::signal);
  CHECK(files.at("/b").effective.kind == OnChange::Kind::exec);  // the mount's own wins
  CHECK(files.at("/b").effective.command == std::vector<std::string>{"caddy", "reload"});
  CHECK(toString(files.at("/b").effective) == "exec:caddy reload");
}

TEST_CASE("a missing source file is a located error") {
  const auto r = load("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"caddy/Nope\"\n");
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll() ==
        "conf/foundation.toml:10:10: error: cannot read \"conf/caddy/Nope\", the \"source\" of "
        "[files.x] (it is read beside the spec, at the spec's revision)\n");
}

TEST_CASE("a source path may not leave the spec's directory") {
  fails("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"../etc/passwd\"\n",
        "escapes the spec's directory");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"caddy/../../x\"\n",
        "escapes the spec's directory");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"/etc/passwd\"\n", "not absolute");
  // Going down and back up stays inside.
  const auto r = load("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"caddy/../caddy/Caddyfile\"\n",
                      [] {
                        auto files = repo();
                        files["caddy/../caddy/Caddyfile"] = "ok\n";
                        return files;
                      }());
  CHECK(r.spec.has_value());
}

TEST_CASE("an unknown reference inside a source file points at its line in that file") {
  const auto r = load("files = { \"/x\" = \"x\" }\n[files.x]\nsource = \"caddy/bad.conf\"\n");
  CHECK_FALSE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll().find("conf/caddy/bad.conf:2:1: error: unknown field \"secrte\" of "
                                       "credential \"hook\" in line 2 of \"conf/caddy/bad.conf\" "
                                       "([files.x]); did you mean \"secret\"?") != std::string::npos);
}

TEST_CASE("bad [files] tables and mounts are refused with their location") {
  fails("files = { \"/x\" = \"nope\" }\n[files.x]\ncontent = \"a\"\n",
        "foundation.toml:8:18: error: unknown file \"nope\" in \"files\" of [containers.proxy]");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\nsource = \"caddy/Caddyfile\"\n",
        "has both \"source\" and \"content\"");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\nmode = 0o444\n", "needs \"source\"");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"${credentials.hook.secret}\"\nmode = 0o444\n",
        "must be 0400 or 0440");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\nmode = \"0999\"\n", "invalid \"mode\"");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\nowner = \"caddy\"\n",
        "invalid \"owner\"");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\non_change = \"restrat\"\n",
        "did you mean \"restart\"?");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\non_change = \"signal:hup\"\n",
        "invalid \"on_change\"");
  fails("files = { \"relative\" = \"x\" }\n[files.x]\ncontent = \"a\"\n", "file path \"relative\"");
  fails("files = { \"/x\" = \"x\" }\n[files.x]\ncontent = \"a\"\nsauce = \"b\"\n",
        "unknown key \"sauce\"");
}

TEST_CASE("two mounts at the same target are refused") {
  fails("files = { \"/etc/x\" = \"x\" }\nsecret_files = { \"/etc/x\" = \"${credentials.hook.secret}\" }\n"
        "[files.x]\ncontent = \"a\"\n",
        "mount target \"/etc/x\" is used more than once");
  fails("files = { \"/data\" = \"x\" }\nvolumes = [\"/srv:/data\"]\n[files.x]\ncontent = \"a\"\n",
        "mount target \"/data\" is used more than once");
}

TEST_CASE("a file mounted by no container is a warning, not an error") {
  const auto r = load("[files.lonely]\ncontent = \"a\"\n");
  REQUIRE(r.spec.has_value());
  CHECK(r.diagnostics.formatAll() ==
        "conf/foundation.toml:8:1: warning: [files.lonely] is mounted by no container (add it to "
        "a container's \"files\")\n");
}
