// Running a helper program (git) as a child process: argv without a shell,
// an explicit environment, stdout/stderr captured, a deadline.
//
// Contract:
// - posix_spawn (safe from a multi-threaded process); the child gets only the
//   environment given here, every descriptor above 2 closed, and its own
//   process group so a timeout kills its helpers too (git-remote-https).
// - Blocking: call from the daemon's thread pool, never the io thread.
// - Secrets go in `env`, never in `argv` (argv is world-readable in /proc).
//   The caller wipes its copies; the buffers built here are zeroed before
//   they are freed.
// - Errors: io (cannot spawn: the message names the program), timeout (the
//   deadline passed; the child was killed). A non-zero exit is not an error:
//   it is in exitCode.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <spawn.h>
#include <sys/types.h>

#include "common/result.hpp"
#include "state/wiping_allocator.hpp"

namespace foundationd::source {

// A child's environment, whose values may be secrets (a token, an S3 secret
// key): every value is zeroed (its whole buffer, state/wipe.hpp) when the
// list is destroyed, assigned over or cleared (moves hand the buffers over;
// copies are zeroed in turn), and the list's own blocks are zeroed when they
// are freed (state/wiping_allocator.hpp): when it grows, the old block held
// the short values in place (a std::string keeps up to 15 bytes inside
// itself). What would drop one value unzeroed (erase, pop_back, resize) is
// not offered. tests/unit/transport_wipe_test.cpp checks all of it with a
// probe of freed memory.
using EnvEntry = std::pair<std::string, std::string>;

struct SecretEnv : std::vector<EnvEntry, state::WipingAllocator<EnvEntry>> {
  using vector::vector;
  SecretEnv() = default;
  SecretEnv(const SecretEnv&) = default;
  SecretEnv(SecretEnv&&) noexcept = default;
  SecretEnv& operator=(const SecretEnv& other);
  SecretEnv& operator=(SecretEnv&& other) noexcept;
  ~SecretEnv();

  void clear() noexcept;  // every value zeroed, then none left

  iterator erase(const_iterator) = delete;
  iterator erase(const_iterator, const_iterator) = delete;
  void pop_back() = delete;
  void resize(size_type) = delete;
  void resize(size_type, const value_type&) = delete;

 private:
  void wipeValues() noexcept;
};

struct ProcessRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  SecretEnv env;                  // the child's whole environment
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::size_t maxOutput = 8 * 1024 * 1024;  // per stream; the rest is dropped
};

struct ProcessResult {
  int exitCode = -1;  // 128 + signal when killed by one
  std::string out;
  std::string err;
};

Result<ProcessResult> runProcess(const ProcessRequest& request);

// The spawn itself, shared with the backup controller's streaming child
// (controllers/backup/child_process.cpp): argv[0] looked up in PATH, exactly
// `env` as the environment (its "K=V" buffers zeroed before they are freed),
// signals unblocked and at their defaults, a process group of its own, and
// the caller's file actions (which it keeps and destroys). io error naming
// the program when it cannot be started.
Result<pid_t> spawnChild(const std::vector<std::string>& argv, std::span<const EnvEntry> env,
                         const posix_spawn_file_actions_t& actions);

}  // namespace foundationd::source
