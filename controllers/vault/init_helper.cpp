#include "controllers/vault/init_helper.hpp"

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/secret.hpp"
#include "state/store.hpp"

extern char** environ;

namespace foundationd::vault {

namespace {

using nlohmann::json;

constexpr int kExitInitialized = 0;
constexpr int kExitAlready = 3;

bool writeAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

Result<InitResult> runInitHelper(const std::string& exe, const HelperRequest& request,
                                 const state::UnlockedKey& key) {
  if (key.locked()) return Error::make(ErrorCode::unavailable, "the state is locked");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error::make(ErrorCode::io, "pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  // Nothing else of the daemon's (listening sockets, the database) goes along:
  // a restarted daemon must be able to bind while the helper still runs.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: a signal to the daemon's process group does not reach it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::string arg0 = exe, arg1 = "vault-init-helper";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    return Error::make(ErrorCode::internal, "cannot start the Vault init helper " + exe);
  }
  std::string hex(key.dataKey().size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), key.dataKey().data(), key.dataKey().size());
  hex.resize(key.dataKey().size() * 2);
  json j{{"state_dir", request.stateDir},
         {"address", request.address},
         {"shares", request.shares},
         {"threshold", request.threshold},
         {"data_key", hex}};
  std::string text = j.dump();
  j["data_key"] = "";
  sodium_memzero(hex.data(), hex.size());
  const bool sent = writeAll(fds[1], text);
  sodium_memzero(text.data(), text.size());
  ::close(fds[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Error::make(ErrorCode::internal, "waitpid failed");
  }
  if (!sent)
    return Error::make(ErrorCode::internal, "the Vault init helper did not take its request");
  if (!WIFEXITED(status)) {
    return Error::make(ErrorCode::internal, "the Vault init helper was killed");
  }
  switch (WEXITSTATUS(status)) {
    case kExitInitialized:
      return InitResult::initialized;
    case kExitAlready:
      return InitResult::already_initialized;
    default:
      return Error::make(ErrorCode::peer, "the Vault init helper failed (exit " +
                                              std::to_string(WEXITSTATUS(status)) +
                                              "; see its message in the log)");
  }
}

int initHelperMain() {
  // Whatever happens to the daemon, finish: Vault's answer must reach the disk.
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  state::protectProcess();  // it holds the data key and, soon, Vault's keys
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, false);
  sodium_memzero(text.data(), text.size());
  if (!j.is_object()) {
    std::fprintf(stderr, "vault-init-helper: bad request on stdin\n");
    return 1;
  }
  std::string hex = j.value("data_key", "");
  j["data_key"] = "";
  state::ensureSodium();
  state::SecretBytes dataKey(state::kDataKeyBytes);
  std::size_t len = 0;
  const bool decoded = hex.size() == state::kDataKeyBytes * 2 &&
                       sodium_hex2bin(dataKey.data(), dataKey.size(), hex.data(), hex.size(),
                                      nullptr, &len, nullptr) == 0 &&
                       len == state::kDataKeyBytes;
  sodium_memzero(hex.data(), hex.size());
  if (!decoded) {
    std::fprintf(stderr, "vault-init-helper: bad data key\n");
    return 1;
  }
  state::UnlockedKey key(std::move(dataKey));
  const std::string stateDir = j.value("state_dir", "");
  auto store = state::Store::openDir(stateDir);
  if (!store) {
    std::fprintf(stderr, "vault-init-helper: %s\n", store.error().message.c_str());
    return 1;
  }
  VaultClient client(j.value("address", ""));
  auto r = initializeLocked(client, **store, key, j.value("shares", 0), j.value("threshold", 0),
                            std::filesystem::path(stateDir) / kInitLockFile);
  if (!r) {
    std::fprintf(stderr, "vault-init-helper: %s\n", r.error().message.c_str());
    return 1;
  }
  return *r == InitResult::initialized ? kExitInitialized : kExitAlready;
}

}  // namespace foundationd::vault
