#include "controllers/backup/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/async.hpp"
#include "controllers/source/process.hpp"

namespace foundationd::backup {
namespace {

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int f : fds) {
      if (f >= 0) ::close(f);
    }
  }
  int take(std::size_t i) { return std::exchange(fds[i], -1); }
};

// A pipe (both ends close-on-exec); false on failure.
bool makePipe(Fds& into) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  into.fds.push_back(p[0]);
  into.fds.push_back(p[1]);
  return true;
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(boost::asio::any_io_executor ex,
                                                          const ChildRequest& request) {
  if (request.argv.empty()) return Error::make(ErrorCode::internal, "spawn: empty argv");
  const auto ioError = [&](const char* what) {
    return Error::make(ErrorCode::io, std::string("cannot run ") + request.argv[0] + ": " + what +
                                          ": " + std::strerror(errno));
  };
  // [0,1] stdin, [2,3] stdout, [4,5] stderr, then one pair per secret.
  Fds p;
  for (int i = 0; i < 3; ++i) {
    if (!makePipe(p)) return ioError("pipe");
  }
  for (std::string_view secret : request.secretFds) {
    if (secret.size() > 60000) return Error::make(ErrorCode::internal, "spawn: secret too long");
    if (!makePipe(p)) return ioError("pipe");
    const int w = p.fds[p.fds.size() - 1];
    if (::write(w, secret.data(), secret.size()) != static_cast<ssize_t>(secret.size())) {
      return ioError("writing a secret to its pipe");
    }
    ::close(p.take(p.fds.size() - 1));  // the child reads it to its end
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (request.pipeStdin) {
    posix_spawn_file_actions_adddup2(&fa, p.fds[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, p.fds[3], 1);
  posix_spawn_file_actions_adddup2(&fa, p.fds[5], 2);
  // Each secret's pipe to 3, 4, ...: through numbers above every pipe, so
  // that moving one never overwrites another still to be moved.
  int high = 0;
  for (int f : p.fds) high = std::max(high, f);
  for (std::size_t i = 0; i < request.secretFds.size(); ++i) {
    posix_spawn_file_actions_adddup2(&fa, p.fds[6 + 2 * i], high + 1 + static_cast<int>(i));
  }
  for (std::size_t i = 0; i < request.secretFds.size(); ++i) {
    posix_spawn_file_actions_adddup2(&fa, high + 1 + static_cast<int>(i), static_cast<int>(3 + i));
  }
  posix_spawn_file_actions_addclosefrom_np(&fa, static_cast<int>(3 + request.secretFds.size()));
  if (!request.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, request.cwd.c_str());
  auto spawned = source::spawnChild(request.argv, request.env, fa);
  posix_spawn_file_actions_destroy(&fa);
  if (!spawned) return spawned.error();
  const pid_t pid = spawned.value();
  const int in = request.pipeStdin ? p.take(1) : -1;
  return std::unique_ptr<ChildProcess>(new ChildProcess(ex, pid, in, p.take(2), p.take(4)));
}

ChildProcess::ChildProcess(boost::asio::any_io_executor ex, pid_t pid, int in, int out, int err)
    : pid_(pid), in_(ex), out_(ex, out), err_(ex, err) {
  if (in >= 0) in_.assign(in);
}

ChildProcess::~ChildProcess() {
  if (status_) return;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

Task<Status> ChildProcess::write(std::string_view bytes) {
  if (!in_.is_open()) co_return Error::make(ErrorCode::internal, "the child's stdin is closed");
  boost::system::error_code ec;
  co_await boost::asio::async_write(in_, boost::asio::buffer(bytes.data(), bytes.size()),
                                    boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  if (ec) {
    co_return Error::make(ErrorCode::io, "writing to the child's stdin: " + ec.message());
  }
  co_return Status::success();
}

void ChildProcess::closeStdin() {
  boost::system::error_code ec;
  if (in_.is_open()) in_.close(ec);
}

Task<Result<std::string>> ChildProcess::readSome(std::size_t max) {
  std::string buf(max, '\0');
  boost::system::error_code ec;
  const std::size_t n = co_await out_.async_read_some(
      boost::asio::buffer(buf), boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  if (ec == boost::asio::error::eof) co_return std::string();
  if (ec) co_return Error::make(ErrorCode::io, "reading the child's stdout: " + ec.message());
  buf.resize(n);
  co_return buf;
}

Task<std::string> ChildProcess::readAll(boost::asio::posix::stream_descriptor& d,
                                        std::size_t max) {
  std::string out;
  char buf[16384];
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = co_await d.async_read_some(
        boost::asio::buffer(buf), boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (n > 0 && out.size() < max) out.append(buf, std::min(n, max - out.size()));
    if (ec) break;
  }
  co_return out;
}

Task<std::string> ChildProcess::readAllOut(std::size_t max) { return readAll(out_, max); }
Task<std::string> ChildProcess::readAllErr(std::size_t max) { return readAll(err_, max); }

void ChildProcess::kill() {
  if (!status_) ::kill(-pid_, SIGKILL);
  closeStdin();
}

Task<int> ChildProcess::wait() {
  while (!status_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status)
                : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                      : -1;
      break;
    }
    if (r < 0 && errno != EINTR) {
      status_ = -1;
      break;
    }
    co_await sleepFor(std::chrono::milliseconds(10));
  }
  co_return *status_;
}

}  // namespace foundationd::backup
