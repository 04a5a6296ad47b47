// An asynchronous child process for streaming (restic reading a dump on its
// stdin, or writing one on its stdout), driven from the io_context's thread.
//
// Contract:
// - posix_spawn (as controllers/source/process.cpp): argv without a shell,
//   only the environment given, every descriptor above those listed here
//   closed, its own process group (kill() reaches its helpers, e.g. ssh).
// - Secrets never in argv or env: `secretFds` are pipes the child reads as
//   /dev/fd/N (N = 3, 4, ...), each filled with its bytes and closed before
//   the spawn (a pipe holds 64 KiB: enough for a password). The caller's
//   copies are its own to wipe.
// - stdin is a pipe when `pipeStdin`, else /dev/null; stdout and stderr are
//   always pipes, read with readSome()/readAll() (non-blocking, asio).
//   stderr must be read (readAll) concurrently with any long stdin/stdout
//   exchange, or a chatty child blocks on it.
// - wait() reaps the child without blocking the io thread (polls WNOHANG).
//   The destructor kills and reaps a child still running.
// - Errors: io (cannot spawn, names argv[0]; a broken pipe).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/result.hpp"
#include "controllers/source/process.hpp"

namespace foundationd::backup {

template <typename T>
using Task = boost::asio::awaitable<T>;

struct ChildRequest {
  std::vector<std::string> argv;                         // argv[0] is looked up in PATH
  source::SecretEnv env;  // the child's whole environment (values zeroed when destroyed)
  std::vector<std::string_view> secretFds;               // /dev/fd/3, /dev/fd/4, ...
  bool pipeStdin = false;
  std::string cwd{};  // its working directory ("" = ours)
};

class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> spawn(boost::asio::any_io_executor ex,
                                                     const ChildRequest& request);
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const noexcept { return pid_; }

  // Writes all of `bytes` to its stdin.
  Task<Status> write(std::string_view bytes);
  // Closes its stdin (end of input).
  void closeStdin();
  // Up to `max` bytes of stdout; "" at its end.
  Task<Result<std::string>> readSome(std::size_t max = 256 * 1024);
  // The rest of stdout or stderr, up to `max` bytes kept (the rest is read
  // and dropped).
  Task<std::string> readAllOut(std::size_t max);
  Task<std::string> readAllErr(std::size_t max);
  // SIGKILL to its process group.
  void kill();
  // Its exit code, 128 + signal when killed by one.
  Task<int> wait();

 private:
  ChildProcess(boost::asio::any_io_executor ex, pid_t pid, int in, int out, int err);
  static Task<std::string> readAll(boost::asio::posix::stream_descriptor& d, std::size_t max);

  pid_t pid_;
  std::optional<int> status_;
  boost::asio::posix::stream_descriptor in_, out_, err_;
};

}  // namespace foundationd::backup
