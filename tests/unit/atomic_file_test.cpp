// state::writeFileAtomic (export-vault-keys, the Vault init fallback): mode
// 0600 whatever the umask, symlinks neither at the target nor at a guessable
// temporary name followed, nothing left behind.
#include "state/atomic_file.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/temp_dir.hpp"
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using foundationd::state::writeFileAtomic;

namespace {

// Every case's scratch directory: /tmp/fd-atomic-test-XXXXXX.
struct TempDir : foundationd::test::TempDir {
  TempDir() : foundationd::test::TempDir("atomic-test") {}
};

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

mode_t modeOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode;
}

}  // namespace

TEST_CASE("writeFileAtomic: mode 0600 under a permissive umask, replaces the old file") {
  TempDir tmp;
  const fs::path file = tmp.path / "keys.json";
  const mode_t old = ::umask(0);
  auto st = writeFileAtomic(file, "first\n");
  REQUIRE(st.ok());
  CHECK((modeOf(file) & 07777) == 0600);
  REQUIRE(writeFileAtomic(file, "second\n").ok());
  ::umask(old);
  CHECK(readFile(file) == "second\n");
  CHECK((modeOf(file) & 07777) == 0600);
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);  // no temporary file left
}

TEST_CASE("writeFileAtomic: a symlink at the target or at the old temp name is not followed") {
  TempDir tmp;
  const fs::path victim = tmp.path / "victim";
  {
    std::ofstream(victim) << "precious\n";
  }
  const fs::path file = tmp.path / "keys.json";
  fs::create_symlink(victim, file);
  fs::create_symlink(victim, tmp.path / "keys.json.tmp");  // the name the old code used
  REQUIRE(writeFileAtomic(file, "sealed material\n").ok());
  CHECK(readFile(victim) == "precious\n");
  CHECK(S_ISREG(modeOf(file)));
  CHECK((modeOf(file) & 07777) == 0600);
  CHECK(readFile(file) == "sealed material\n");
}

TEST_CASE("writeFileAtomic: a missing directory is an io error naming the path") {
  TempDir tmp;
  const fs::path file = tmp.path / "no-such-dir" / "keys.json";
  auto st = writeFileAtomic(file, "x");
  REQUIRE_FALSE(st.ok());
  CHECK((st.error().code == foundationd::ErrorCode::io));
  CHECK(st.error().message.find("no-such-dir") != std::string::npos);
}
