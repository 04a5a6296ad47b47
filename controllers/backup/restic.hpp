// The restic client: Debian's restic (0.14) run as a child process, its
// `--json` output parsed with nlohmann (docs/dr.md "The engine").
//
// Contract:
// - The repository password never touches argv, the environment or a file:
//   it is written to a pipe the child reads as `--password-file /dev/fd/3`
//   (child_process.hpp). Back-end keys (AWS_* for s3:) go in the child's
//   environment, which only its own user can read (/proc/PID/environ 0400).
// - Every call runs `restic --no-cache`: no metadata cached on this host that
//   could hide a tampered repository, nothing to clean up.
// - Errors: a restic failure becomes an Error whose message names the
//   operation and restic's own first "Fatal:" line: wrong_passphrase (the
//   password does not open the repository), not_found (no repository
//   there), peer (anything else restic refused). Never a secret in them.
// - Thread: the io_context's; nothing here blocks it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/result.hpp"
#include "controllers/backup/child_process.hpp"
#include "state/secret.hpp"

namespace foundationd::backup {

// Where a repository is, as restic takes it, and the environment its back
// end needs (s3: keys). `display` is safe to print (no key in it).
struct Repository {
  std::string location;
  source::SecretEnv env;  // its keys (zeroed when destroyed)
  std::string display;
  // The same repository reached through rclone's S3 back end (restic's
  // `rclone:` location, rclone started by restic as `rclone serve restic
  // --stdio`, the remote and its keys in RCLONE_CONFIG_* variables), for a
  // process that must also hold another S3 repository's AWS_* keys:
  // `restic copy` from a bucket local target to an s3: offsite on other
  // keys. Both forms read and write the same objects. Empty when the
  // repository is not on S3 with keys of its own.
  std::string rcloneLocation;
  source::SecretEnv rcloneEnv;
};

// The rclone form of an `s3:` location (restic's spelling: s3:http[s]://HOST/
// BUCKET[/PREFIX], or s3:HOST/BUCKET[/PREFIX] for https) with its key pair and
// region, set on `repo`. False (and `repo` unchanged) if `location` is not
// one. Pure.
bool setRcloneForm(Repository& repo, std::string_view accessKey, std::string_view secretKey,
                   std::string_view region);

// The summary line of `restic backup --json` (message_type "summary").
struct BackupSummary {
  std::string snapshotId;  // short id, as restic 0.14 prints it
  std::uint64_t bytesProcessed = 0;
  std::uint64_t dataAdded = 0;
};
// From the whole stdout of `backup --json` (status lines may come first).
Result<BackupSummary> parseBackupSummary(std::string_view out);

struct Snapshot {
  std::string id;
  std::string shortId;
  std::string time;  // RFC 3339, as restic writes it
  std::string hostname;
  std::vector<std::string> paths;
  std::vector<std::string> tags;
  // The value of the tag "KEY=VALUE" ("" when none).
  std::string tag(std::string_view key) const;
};
// `restic snapshots --json`: a JSON array (restic prints "null" for none).
Result<std::vector<Snapshot>> parseSnapshots(std::string_view out);

// A restic failure as an Error (see the contract); `what` names the operation.
Error resticError(std::string_view stderrText, int exitCode, const std::string& what);

class Restic {
 public:
  Restic(boost::asio::any_io_executor ex, Repository repo, std::string_view password,
         std::string binary = "restic");

  const Repository& repository() const noexcept { return repo_; }

  // Whether a repository exists there and opens with the password
  // (false: nothing there yet; wrong_passphrase: one that does not open).
  Task<Result<bool>> exists();
  Task<Status> init();
  // restic check (structure and indexes; `readData`: every pack read back).
  Task<Status> check(bool readData);

  // `restic backup --stdin --stdin-filename PATH` with `tags`, under `host`;
  // `produce` writes the content with child.write(). A failed produce kills
  // restic before it ends its input, so no snapshot of a partial stream is
  // made.
  using Producer = std::function<Task<Status>(ChildProcess& child)>;
  Task<Result<BackupSummary>> backupStdin(const std::string& path,
                                          const std::vector<std::string>& tags,
                                          const std::string& host, const Producer& produce);
  // `restic backup PATHS...` run in the directory `cwd`, so the snapshot
  // holds each path at its root ("/inventory.json", "/objects/...") whatever
  // the directory was called.
  Task<Result<BackupSummary>> backupDirectory(const std::string& cwd,
                                              const std::vector<std::string>& paths,
                                              const std::vector<std::string>& tags,
                                              const std::string& host);
  // `restic restore SNAPSHOT --target DIR`: the snapshot's files under DIR.
  Task<Status> restoreTo(const std::string& snapshot, const std::string& target);
  // Snapshots carrying every one of `tags`, oldest first.
  Task<Result<std::vector<Snapshot>>> snapshots(const std::vector<std::string>& tags);
  // `restic dump SNAPSHOT PATH`, stdout piece by piece to `sink`.
  Task<Status> dump(const std::string& snapshot, const std::string& path,
                    const std::function<Task<Status>(std::string_view)>& sink);
  // The same as a running child whose stdout the caller reads (readSome);
  // the caller then calls finishDump().
  Task<Result<std::unique_ptr<ChildProcess>>> startDump(const std::string& snapshot,
                                                        const std::string& path);
  Task<Status> finishDump(ChildProcess& child, const std::string& what);

  // The offsite copy: this repository initialised with `from`'s chunker
  // parameters (so the copy deduplicates), and `restic copy` of the
  // snapshots of `from` carrying every one of `tags` into this one. The
  // source's password goes on a second pipe (/dev/fd/4). When both back
  // ends need the same environment variable with different values (restic
  // 0.14 has one AWS key pair per process), this repository is reached
  // through its rclone form; invalid_argument when it has none.
  Task<Status> initFrom(const Restic& from);
  Task<Status> copyFrom(const Restic& from, const std::vector<std::string>& tags);
  // Any other restic command (forget, prune): its stdout, or resticError.
  Task<Result<std::string>> raw(std::vector<std::string> args, const std::string& what);

 private:
  // `viaRclone`: the repository as rcloneLocation/rcloneEnv (requestFrom).
  ChildRequest request(std::vector<std::string> args, bool pipeStdin = false,
                       bool viaRclone = false) const;
  Result<ChildRequest> requestFrom(const Restic& from, std::vector<std::string> args) const;
  // Runs to the end; stdout on exit 0, else resticError.
  Task<Result<std::string>> run(std::vector<std::string> args, const std::string& what);
  Task<Result<std::string>> runRequest(ChildRequest request, const std::string& what);

  boost::asio::any_io_executor ex_;
  Repository repo_;
  state::SecretBytes password_;
  std::string binary_;
};

}  // namespace foundationd::backup
