// [files.*] on the host: where they go, the config hash of their consumers,
// writes only on change (content, mode, owner), in place for live consumers,
// secrets only under the secrets directory, and plan's view.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "controllers/docker/config_files.hpp"
#include "controllers/docker/container_config.hpp"
#include "unit/spec_fixture.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace foundationd;
using foundationd::testing::specFrom;
namespace fs = std::filesystem;

namespace {

class MapSecrets final : public docker::SecretResolver {
 public:
  std::map<std::string, std::string> digests, values;
  std::optional<std::string> digest(const config::CredentialRef& r) const override {
    auto it = digests.find(r.name + "." + r.field);
    if (it == digests.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> value(const config::CredentialRef& r) const override {
    auto it = values.find(r.name + "." + r.field);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

std::string spec(const std::string& plainContent, const std::string& onChange,
                 const std::string& mode = "0o444") {
  return R"(
spec_version = 1
project = "p"
[credentials.app.fields]
token = { generate = "hex" }
[files.plain]
content = ")" + plainContent + R"("
mode = )" + mode + R"(
owner = "0:0"
[files.secret]
content = "token=${credentials.app.token}\n"
mode = 0o440
[containers.web]
image = "img/web:1"
files = { "/etc/web.conf" = { file = "plain", on_change = )" + onChange + R"( }, "/run/app.conf" = "secret" }
)";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDirs {
  foundationd::test::TempDir tmp{"files"};
  fs::path root = tmp.path;
  std::string files = (root / "state-files").string();
  std::string secrets = (root / "secrets").string();
};

}  // namespace

TEST_CASE("files without a secret go under the state dir, with one under the secrets dir") {
  auto s = specFrom(spec("a", "\"recreate\""));
  auto binds = docker::configFileBinds(s.containers.at("web"), "p", "/var/lib/fd/files", "/run/fd/secrets");
  CHECK(binds == std::vector<std::string>{"/var/lib/fd/files/plain:/etc/web.conf:ro",
                                          "/run/fd/secrets/_files/p/secret:/run/app.conf:ro"});
}

TEST_CASE("the content's digest is in the config hash only for recreate consumers") {
  MapSecrets secrets;
  secrets.digests["app.token"] = "d1";
  auto hashOf = [&](const std::string& content, const std::string& onChange) {
    return docker::desiredContainer(specFrom(spec(content, onChange)).containers.at("web"), secrets).hash;
  };
  CHECK(hashOf("a", "\"recreate\"") != hashOf("b", "\"recreate\""));
  CHECK(hashOf("a", "\"restart\"") == hashOf("b", "\"restart\""));
  CHECK(hashOf("a", "[\"reload\"]") == hashOf("b", "[\"reload\"]"));
  CHECK(hashOf("a", "\"restart\"") != hashOf("a", "\"signal:SIGHUP\""));
  // A rotation of the secret file's credential recreates (its mount is "recreate").
  const auto before = hashOf("a", "\"restart\"");
  secrets.digests["app.token"] = "d2";
  CHECK(hashOf("a", "\"restart\"") != before);
  // The canonical config (a label) holds no content, only digests.
  auto d = docker::desiredContainer(specFrom(spec("visible-text", "\"recreate\"")).containers.at("web"), secrets);
  CHECK(d.canonical.dump().find("visible-text") == std::string::npos);
}

TEST_CASE("files are written once, rewritten on a change of content or mode, secrets 0440 in the secrets dir") {
  TempDirs dirs;
  MapSecrets secrets;
  secrets.digests["app.token"] = "d1";
  secrets.values["app.token"] = "s3cret";
  auto s = specFrom(spec("one", "\"restart\""));
  auto w = docker::writeConfigFiles(s, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(w->changed == std::set<std::string>{"plain", "secret"});
  const fs::path plain = fs::path(dirs.files) / "plain";
  const fs::path secret = fs::path(dirs.secrets) / "_files" / "p" / "secret";
  CHECK(slurp(plain) == "one");
  CHECK(slurp(secret) == "token=s3cret\n");
  struct stat st {};
  REQUIRE(::stat(secret.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0440);
  REQUIRE(::stat((fs::path(dirs.secrets) / "_files").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  // Nothing of the secret under the state dir.
  for (const auto& e : fs::recursive_directory_iterator(dirs.files)) {
    CHECK(slurp(e.path()).find("s3cret") == std::string::npos);
  }

  // Unchanged: no write (the inode stays the same too).
  REQUIRE(::stat(plain.c_str(), &st) == 0);
  const auto inode = st.st_ino;
  w = docker::writeConfigFiles(s, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(w->changed.empty());

  // A restart consumer: replaced by rename (a new inode).
  auto s2 = specFrom(spec("two", "\"restart\""));
  w = docker::writeConfigFiles(s2, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(w->changed == std::set<std::string>{"plain"});
  CHECK(slurp(plain) == "two");
  REQUIRE(::stat(plain.c_str(), &st) == 0);
  CHECK(st.st_ino != inode);
  CHECK_FALSE(fs::exists(plain.string() + ".tmp"));

  // A live consumer: the mounted inode itself gets the new content.
  const auto inode2 = st.st_ino;
  auto s3 = specFrom(spec("three", "[\"reload\"]"));
  w = docker::writeConfigFiles(s3, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(slurp(plain) == "three");
  REQUIRE(::stat(plain.c_str(), &st) == 0);
  CHECK(st.st_ino == inode2);

  // Mode only.
  auto s4 = specFrom(spec("three", "[\"reload\"]", "0o440"));
  w = docker::writeConfigFiles(s4, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(w->changed == std::set<std::string>{"plain"});
  REQUIRE(::stat(plain.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0440);
}

TEST_CASE("a file whose secret is not available is skipped, the others are written") {
  TempDirs dirs;
  MapSecrets secrets;  // nothing resolves
  auto s = specFrom(spec("one", "\"recreate\""));
  auto w = docker::writeConfigFiles(s, secrets, dirs.files, dirs.secrets);
  REQUIRE(w);
  CHECK(w->changed == std::set<std::string>{"plain"});
  REQUIRE(w->unavailable.count("secret") == 1);
  CHECK(w->unavailable.at("secret") == "needs credential app.token, which is not available");
  CHECK_FALSE(fs::exists(fs::path(dirs.secrets) / "_files" / "p" / "secret"));
  // And its consumer is not created (Docker would make a directory of the bind source).
  auto body = docker::containerCreateBody(s.containers.at("web"), "p",
                                          docker::desiredContainer(s.containers.at("web"), secrets),
                                          secrets, dirs.secrets, dirs.files);
  REQUIRE_FALSE(body);
  CHECK(body.error().message.find("needs credential app.token") != std::string::npos);
}

TEST_CASE("plan says which files change and what each consumer does, without content") {
  TempDirs dirs;
  MapSecrets secrets;
  secrets.digests["app.token"] = "d1";
  secrets.values["app.token"] = "s3cret";
  std::map<std::string, std::string> applied;
  docker::AppliedLookup lookup = [&](const std::string& n) -> std::optional<std::string> {
    auto it = applied.find(n);
    return it == applied.end() ? std::nullopt : std::optional(it->second);
  };
  auto s = specFrom(spec("one", "[\"caddy\", \"reload\"]"));
  auto p = docker::planConfigFiles(s, secrets, dirs.files, dirs.secrets, lookup);
  REQUIRE(p.size() == 2);
  CHECK(p[0]["file"] == "plain");
  CHECK(p[0]["change"] == "create");
  CHECK(p[1]["change"] == "create");
  CHECK(p[1]["sensitive"] == true);

  REQUIRE(docker::writeConfigFiles(s, secrets, dirs.files, dirs.secrets));
  applied["secret"] = docker::valueDigest(s.files.at("secret").content, secrets);
  p = docker::planConfigFiles(s, secrets, dirs.files, dirs.secrets, lookup);
  CHECK(p[0]["change"] == "unchanged");
  CHECK(p[1]["change"] == "unchanged");

  auto s2 = specFrom(spec("two", "[\"caddy\", \"reload\"]"));
  p = docker::planConfigFiles(s2, secrets, dirs.files, dirs.secrets, lookup);
  CHECK(p[0]["change"] == "update");
  CHECK(p[0]["consumers"][0]["action"] == "exec:caddy reload");
  secrets.digests["app.token"] = "d2";  // rotated
  p = docker::planConfigFiles(s2, secrets, dirs.files, dirs.secrets, lookup);
  CHECK(p[1]["change"] == "update");
  CHECK(p[1]["consumers"][0]["action"] == "recreate");
  CHECK(p.dump().find("s3cret") == std::string::npos);
  CHECK(p.dump().find("two") == std::string::npos);
}
