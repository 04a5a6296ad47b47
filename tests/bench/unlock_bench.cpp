// bench_unlock: how long `unseal` takes and how much memory it needs, per KDF
// profile (TESTING.md "Benchmarks, not timed tests").
//
//   bench_unlock [RUNS] [PROFILE...]     (default: 5 runs; all three profiles)
//
// Each profile runs in a forked child so its peak RSS (wait4's ru_maxrss) is
// its own: initialize once, then RUNS unlocks; prints the median, min and max
// unlock time and the child's peak RSS. A baseline child that only opens the
// store gives the RSS that is not the KDF's.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/store.hpp"

using namespace foundationd::state;
namespace fs = std::filesystem;

namespace {

int runProfile(const fs::path& dir, KdfProfile profile, int runs) {
  auto store = Store::open(dir / toString(profile) / Store::kFileName);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
    return 1;
  }
  auto key = (*store)->initialize("benchmark passphrase", profile);
  if (!key) {
    std::fprintf(stderr, "initialize: %s\n", key.error().message.c_str());
    return 1;
  }
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto unlocked = (*store)->unlock("benchmark passphrase");
    auto t1 = std::chrono::steady_clock::now();
    if (!unlocked) {
      std::fprintf(stderr, "unlock: %s\n", unlocked.error().message.c_str());
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const KdfParams p = KdfParams::forProfile(profile);
  std::printf("%-12s ops=%llu mem=%5llu MiB  unlock median %8.1f ms  (min %.1f, max %.1f, n=%d)",
              toString(profile), static_cast<unsigned long long>(p.opsLimit),
              static_cast<unsigned long long>(p.memLimit >> 20), ms[ms.size() / 2], ms.front(),
              ms.back(), runs);
  std::fflush(stdout);
  return 0;
}

int runBaseline(const fs::path& dir) {
  auto store = Store::open(dir / "baseline" / Store::kFileName);
  if (!store) return 1;
  std::printf("%-12s (open the store, no KDF)                                            ",
              "baseline");
  std::fflush(stdout);
  return 0;
}

// Runs `body` in a child; prints the child's peak RSS after its line.
template <typename F>
bool inChild(F body) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) _exit(body());
  int status = 0;
  struct rusage usage {};
  if (wait4(pid, &status, 0, &usage) < 0) return false;
  std::printf("  peak RSS %7.1f MiB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  if (runs < 1) runs = 1;
  std::vector<KdfProfile> profiles;
  for (int i = 2; i < argc; ++i) {
    auto p = parseKdfProfile(argv[i]);
    if (!p) {
      std::fprintf(stderr, "%s\n", p.error().message.c_str());
      return 2;
    }
    profiles.push_back(*p);
  }
  if (profiles.empty()) {
    profiles = {KdfProfile::interactive, KdfProfile::moderate, KdfProfile::sensitive};
  }

  std::string tmpl = (fs::temp_directory_path() / "fd-bench-unlock-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return 1;
  const fs::path dir = tmpl;
  bool ok = inChild([&] { return runBaseline(dir); });
  for (KdfProfile p : profiles) ok = inChild([&] { return runProfile(dir, p, runs); }) && ok;
  std::error_code ec;
  fs::remove_all(dir, ec);
  return ok ? 0 : 1;
}
