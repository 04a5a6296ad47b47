// ApiToken: generated when absent (0600, 64 hex characters), loaded when
// present, refused when unsafe; constant-time matches().
#include "api/token.hpp"
#include "tests/unit/temp_dir.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace api = foundationd::api;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const fs::path& p, const std::string& content, mode_t mode) {
  {
    std::ofstream out(p);
    out << content;
  }
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("an absent token file is generated: 64 hex characters, mode 0600, parents 0700") {
  foundationd::test::TempDir dir{"token"};
  const fs::path file = dir.path / "etc" / "foundationd" / "api-token";
  auto token = api::ApiToken::loadOrCreate(file);
  REQUIRE(token.ok());
  CHECK(token->generated());

  const std::string content = slurp(file);
  REQUIRE(content.size() == 65);
  CHECK(content.back() == '\n');
  const std::string hex = content.substr(0, 64);
  CHECK(hex.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(token->matches(hex));
  CHECK(!token->matches(hex.substr(0, 63)));
  CHECK(!token->matches(content));  // the newline is not part of the token

  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat(file.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);

  // Loaded again, the same token; not generated this time.
  auto again = api::ApiToken::loadOrCreate(file);
  REQUIRE(again.ok());
  CHECK(!again->generated());
  CHECK(again->matches(hex));

  // Two generations differ.
  const fs::path other = dir.path / "other-token";
  auto second = api::ApiToken::loadOrCreate(other);
  REQUIRE(second.ok());
  CHECK(!second->matches(hex));
}

TEST_CASE("an existing token file is read with surrounding whitespace ignored") {
  foundationd::test::TempDir dir{"token"};
  const fs::path file = dir.path / "api-token";
  writeFile(file, "  operator-chosen-token-1234\n\n", 0640);
  auto token = api::ApiToken::loadOrCreate(file);
  REQUIRE(token.ok());
  CHECK(token->matches("operator-chosen-token-1234"));
  CHECK(!token->matches(" operator-chosen-token-1234"));
  CHECK(!token->matches("operator-chosen-token-123"));
  CHECK(!token->matches(""));
}

TEST_CASE("unsafe or unusable token files are refused, naming the file, never the content") {
  foundationd::test::TempDir dir{"token"};
  SUBCASE("readable by others") {
    const fs::path file = dir.path / "api-token";
    writeFile(file, "operator-chosen-token-1234\n", 0644);
    auto token = api::ApiToken::loadOrCreate(file);
    REQUIRE(!token.ok());
    CHECK((token.error().code == foundationd::ErrorCode::invalid_argument));
    CHECK(token.error().message.find(file.string()) != std::string::npos);
    CHECK(token.error().message.find("chmod 600") != std::string::npos);
    CHECK(token.error().message.find("operator-chosen") == std::string::npos);
  }
  SUBCASE("too short") {
    const fs::path file = dir.path / "api-token";
    writeFile(file, "short\n", 0600);
    auto token = api::ApiToken::loadOrCreate(file);
    REQUIRE(!token.ok());
    CHECK(token.error().message.find("short") == std::string::npos);
  }
  SUBCASE("empty") {
    const fs::path file = dir.path / "api-token";
    writeFile(file, "", 0600);
    CHECK(!api::ApiToken::loadOrCreate(file).ok());
  }
  SUBCASE("a directory") {
    fs::create_directory(dir.path / "api-token");
    CHECK(!api::ApiToken::loadOrCreate(dir.path / "api-token").ok());
  }
  SUBCASE("absent in a directory we cannot write") {
    if (::geteuid() == 0) {
      // root writes anywhere: use a path under a regular file instead
      writeFile(dir.path / "file", "x", 0600);
      auto token = api::ApiToken::loadOrCreate(dir.path / "file" / "api-token");
      REQUIRE(!token.ok());
      CHECK((token.error().code == foundationd::ErrorCode::io));
    } else {
      fs::create_directory(dir.path / "ro");
      fs::permissions(dir.path / "ro", fs::perms::owner_read | fs::perms::owner_exec);
      auto token = api::ApiToken::loadOrCreate(dir.path / "ro" / "api-token");
      REQUIRE(!token.ok());
      CHECK((token.error().code == foundationd::ErrorCode::io));
      CHECK(token.error().message.find("api.token_file") != std::string::npos);
    }
  }
}

TEST_CASE("fromString tokens match exactly") {
  const auto t = api::ApiToken::fromString("0123456789abcdef");
  CHECK(t.matches("0123456789abcdef"));
  CHECK(!t.matches("0123456789abcdeF"));
  CHECK(!t.matches("0123456789abcdef0"));
  const auto empty = api::ApiToken::fromString("");
  CHECK(!empty.matches(""));
}
