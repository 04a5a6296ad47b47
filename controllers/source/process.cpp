#include "controllers/source/process.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/wipe.hpp"

namespace foundationd::source {

void SecretEnv::wipeValues() noexcept {
  for (auto& [_, value] : *this) state::wipe(value);
}

SecretEnv& SecretEnv::operator=(const SecretEnv& other) {
  if (this != &other) {
    wipeValues();
    vector::operator=(other);
  }
  return *this;
}

SecretEnv& SecretEnv::operator=(SecretEnv&& other) noexcept {
  if (this != &other) {
    wipeValues();
    vector::operator=(std::move(other));
  }
  return *this;
}

SecretEnv::~SecretEnv() {
  wipeValues();
}

void SecretEnv::clear() noexcept {
  wipeValues();
  vector::clear();
}

namespace {

// Zeroes a string's bytes before it is freed (it may hold a token).
struct WipedStrings {
  std::vector<std::string> items;
  ~WipedStrings() {
    for (auto& s : items) state::wipe(s);
  }
};

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void closeEnd(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

Result<pid_t> spawnChild(const std::vector<std::string>& args, std::span<const EnvEntry> env,
                         const posix_spawn_file_actions_t& actions) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  WipedStrings envStrings;
  envStrings.items.reserve(env.size());
  for (const auto& [k, v] : env) envStrings.items.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : envStrings.items) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  // PATH lookup uses the child's PATH when the env sets one, else the parent's.
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Error::make(ErrorCode::io, "cannot run " + args[0] + ": " + std::strerror(rc));
  }
  return pid;
}

Result<ProcessResult> runProcess(const ProcessRequest& request) {
  if (request.argv.empty()) return Error::make(ErrorCode::internal, "runProcess: empty argv");
  Pipe out, err;
  if (::pipe2(out.fd, O_CLOEXEC) != 0 || ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return Error::make(ErrorCode::io, std::string("cannot create a pipe: ") + std::strerror(errno));
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err.fd[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  auto spawned = spawnChild(request.argv, request.env, fa);
  posix_spawn_file_actions_destroy(&fa);
  if (!spawned) return spawned.error();
  const pid_t pid = spawned.value();
  out.closeEnd(1);
  err.closeEnd(1);

  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + request.timeout;
  bool timedOut = false;
  pollfd fds[2] = {{out.fd[0], POLLIN, 0}, {err.fd[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open = 2;
  char buf[16384];
  while (open > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        const std::size_t room =
            request.maxOutput > sinks[i]->size() ? request.maxOutput - sinks[i]->size() : 0;
        sinks[i]->append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
  if (timedOut) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut) {
    return Error::make(ErrorCode::timeout, request.argv[0] + " did not finish within " +
                                               std::to_string(request.timeout.count() / 1000) +
                                               " s and was killed");
  }
  if (WIFEXITED(status))
    result.exitCode = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exitCode = 128 + WTERMSIG(status);
  return result;
}

}  // namespace foundationd::source
