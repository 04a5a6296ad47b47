#include "controllers/backup/restic.hpp"

#include <cstdlib>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

namespace foundationd::backup {

using json = nlohmann::json;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr std::size_t kMaxStderr = 64 * 1024;
constexpr std::size_t kMaxStdout = 16 * 1024 * 1024;

std::uint64_t unsignedField(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer()) return static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->get<std::int64_t>()));
  return static_cast<std::uint64_t>(std::max(0.0, it->get<double>()));
}

std::string stringField(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The first line of restic's stderr that says why ("Fatal: ..."), else its
// last non-empty line; bounded.
std::string why(std::string_view err) {
  std::string last;
  std::size_t pos = 0;
  while (pos < err.size()) {
    std::size_t nl = err.find('\n', pos);
    if (nl == std::string_view::npos) nl = err.size();
    std::string line(err.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty()) continue;
    if (line.rfind("Fatal: ", 0) == 0) return line.substr(7, 300);
    last = line.substr(0, 300);
  }
  return last.empty() ? "no message" : last;
}

}  // namespace

Result<BackupSummary> parseBackupSummary(std::string_view out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t nl = out.find('\n', pos);
    if (nl == std::string_view::npos) nl = out.size();
    const std::string_view line = out.substr(pos, nl - pos);
    pos = nl + 1;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || stringField(j, "message_type") != "summary") {
      continue;
    }
    BackupSummary s;
    s.snapshotId = stringField(j, "snapshot_id");
    s.bytesProcessed = unsignedField(j, "total_bytes_processed");
    s.dataAdded = unsignedField(j, "data_added");
    if (s.snapshotId.empty()) {
      return Error::make(ErrorCode::protocol, "restic's backup summary has no snapshot_id");
    }
    return s;
  }
  return Error::make(ErrorCode::protocol, "restic backup printed no summary (message_type "
                                          "\"summary\"); no snapshot was recorded");
}

std::string Snapshot::tag(std::string_view key) const {
  const std::string prefix = std::string(key) + "=";
  for (const auto& t : tags) {
    if (t.rfind(prefix, 0) == 0) return t.substr(prefix.size());
  }
  return {};
}

Result<std::vector<Snapshot>> parseSnapshots(std::string_view out) {
  const json j = json::parse(out, nullptr, false);
  if (j.is_null()) return std::vector<Snapshot>{};
  if (j.is_discarded() || !j.is_array()) {
    return Error::make(ErrorCode::protocol, "restic snapshots --json: not a JSON array");
  }
  std::vector<Snapshot> snaps;
  for (const auto& e : j) {
    if (!e.is_object()) {
      return Error::make(ErrorCode::protocol, "restic snapshots --json: an entry is not an object");
    }
    Snapshot s;
    s.id = stringField(e, "id");
    s.shortId = stringField(e, "short_id");
    s.time = stringField(e, "time");
    s.hostname = stringField(e, "hostname");
    for (const char* key : {"paths", "tags"}) {
      const auto it = e.find(key);
      if (it == e.end() || it->is_null()) continue;
      if (!it->is_array()) {
        return Error::make(ErrorCode::protocol,
                           std::string("restic snapshots --json: \"") + key + "\" is not an array");
      }
      for (const auto& v : *it) {
        if (v.is_string()) (std::string(key) == "paths" ? s.paths : s.tags).push_back(v.get<std::string>());
      }
    }
    if (s.id.empty()) return Error::make(ErrorCode::protocol, "restic snapshots --json: no id");
    if (s.shortId.empty()) s.shortId = s.id.substr(0, 8);
    snaps.push_back(std::move(s));
  }
  return snaps;
}

bool setRcloneForm(Repository& repo, std::string_view accessKey, std::string_view secretKey,
                   std::string_view region) {
  std::string_view rest = repo.location;
  if (rest.substr(0, 3) != "s3:") return false;
  rest.remove_prefix(3);
  std::string scheme = "https";
  for (const std::string_view s : {"http://", "https://"}) {
    if (rest.substr(0, s.size()) == s) {
      scheme = std::string(s.substr(0, s.size() - 3));
      rest.remove_prefix(s.size());
    }
  }
  const auto slash = rest.find('/');
  if (rest.empty() || rest.front() == '/' || slash == std::string_view::npos) return false;
  const std::string_view host = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty() || path.front() == '/') return false;
  // The remote's name: rclone reads a remote NAME's options from
  // RCLONE_CONFIG_NAME_OPTION; a name of our own, so that an rclone.conf of
  // the operator's cannot shadow it.
  const std::string var = "RCLONE_CONFIG_FOUNDATIOND_";
  repo.rcloneLocation = "rclone:foundationd:" + std::string(path);
  repo.rcloneEnv = {
      {var + "TYPE", "s3"},
      {var + "PROVIDER", "Other"},
      {var + "ENV_AUTH", "false"},
      {var + "ACCESS_KEY_ID", std::string(accessKey)},
      {var + "SECRET_ACCESS_KEY", std::string(secretKey)},
      {var + "ENDPOINT", scheme + "://" + std::string(host)},
      {var + "REGION", region.empty() ? std::string("us-east-1") : std::string(region)},
      {var + "FORCE_PATH_STYLE", "true"},
      // The bucket exists (restic's s3: back end made it, or the operator):
      // a write-only key may not be allowed to create or even list buckets.
      {var + "NO_CHECK_BUCKET", "true"},
      // No rclone.conf: the remote is the environment's alone.
      {"RCLONE_CONFIG", "/dev/null"},
  };
  return true;
}

Error resticError(std::string_view stderrText, int exitCode, const std::string& what) {
  const std::string reason = why(stderrText);
  if (stderrText.find("wrong password or no key found") != std::string_view::npos) {
    return Error::make(ErrorCode::wrong_passphrase,
                       what + ": the backup repository does not open with the password in "
                              "this state (wrong password, or its keys were tampered with)");
  }
  if (stderrText.find("Is there a repository at the following location?") !=
      std::string_view::npos) {
    return Error::make(ErrorCode::not_found, what + ": no backup repository there (" + reason + ")");
  }
  if (exitCode == 127 && reason == "no message") {
    return Error::make(ErrorCode::io, what + ": restic did not run (exit 127)");
  }
  return Error::make(ErrorCode::peer,
                     what + ": restic failed (exit " + std::to_string(exitCode) + "): " + reason);
}

Restic::Restic(boost::asio::any_io_executor ex, Repository repo, std::string_view password,
               std::string binary)
    : ex_(std::move(ex)),
      repo_(std::move(repo)),
      password_(state::SecretBytes::copyOf(password)),
      binary_(std::move(binary)) {}

ChildRequest Restic::request(std::vector<std::string> args, bool pipeStdin, bool viaRclone) const {
  ChildRequest r;
  r.argv = {binary_,           "--no-cache",
            "--repo",          viaRclone ? repo_.rcloneLocation : repo_.location,
            "--password-file", "/dev/fd/3"};
  r.argv.insert(r.argv.end(), std::make_move_iterator(args.begin()),
                std::make_move_iterator(args.end()));
  r.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}};
  // HOME: the sftp: back end runs ssh, which finds its keys and known_hosts there.
  if (const char* home = std::getenv("HOME")) r.env.emplace_back("HOME", home);
  if (const char* tmp = std::getenv("TMPDIR")) r.env.emplace_back("TMPDIR", tmp);
  for (const auto& e : viaRclone ? repo_.rcloneEnv : repo_.env) r.env.push_back(e);
  r.secretFds = {password_.view()};
  r.pipeStdin = pipeStdin;
  return r;
}

Task<Result<std::string>> Restic::run(std::vector<std::string> args, const std::string& what) {
  co_return co_await runRequest(request(std::move(args)), what);
}

Task<Result<std::string>> Restic::runRequest(ChildRequest req, const std::string& what) {
  auto child = ChildProcess::spawn(ex_, req);
  if (!child) co_return std::move(child).error();
  auto& c = **child;
  auto [out, err] = co_await (c.readAllOut(kMaxStdout) && c.readAllErr(kMaxStderr));
  const int code = co_await c.wait();
  if (code != 0) co_return resticError(err, code, what + " (" + repo_.display + ")");
  co_return std::move(out);
}

Task<Result<std::string>> Restic::raw(std::vector<std::string> args, const std::string& what) {
  co_return co_await run(std::move(args), what);
}

Task<Result<bool>> Restic::exists() {
  std::vector<std::string> args{"cat", "config"};
  auto r = co_await run(std::move(args), "opening the backup repository");
  if (r) co_return true;
  if (r.error().code == ErrorCode::not_found) co_return false;
  co_return std::move(r).error();
}

Task<Status> Restic::init() {
  std::vector<std::string> args{"init"};
  auto r = co_await run(std::move(args), "creating the backup repository");
  if (!r) co_return std::move(r).error();
  co_return Status::success();
}

Task<Status> Restic::check(bool readData) {
  std::vector<std::string> args{"check"};
  if (readData) args.push_back("--read-data");
  auto r = co_await run(std::move(args), "checking the backup repository");
  if (!r) co_return std::move(r).error();
  co_return Status::success();
}

Task<Result<BackupSummary>> Restic::backupStdin(const std::string& path,
                                                const std::vector<std::string>& tags,
                                                const std::string& host,
                                                const Producer& produce) {
  std::vector<std::string> args{"backup", "--json", "--quiet", "--stdin", "--stdin-filename",
                                path,     "--host", host};
  for (const auto& t : tags) {
    args.push_back("--tag");
    args.push_back(t);
  }
  auto child = ChildProcess::spawn(ex_, request(std::move(args), true));
  if (!child) co_return std::move(child).error();
  auto& c = **child;
  const auto feed = [&]() -> Task<Status> {
    auto st = co_await produce(c);
    if (st) {
      c.closeStdin();
    } else {
      c.kill();  // no snapshot of a partial stream
    }
    co_return st;
  };
  auto [fed, out, err] =
      co_await (feed() && c.readAllOut(kMaxStdout) && c.readAllErr(kMaxStderr));
  const int code = co_await c.wait();
  if (!fed) co_return fed.error();
  const std::string what = "backing up " + path + " (" + repo_.display + ")";
  if (code != 0) co_return resticError(err, code, what);
  co_return parseBackupSummary(out);
}

Task<Result<BackupSummary>> Restic::backupDirectory(const std::string& cwd,
                                                    const std::vector<std::string>& paths,
                                                    const std::vector<std::string>& tags,
                                                    const std::string& host) {
  std::vector<std::string> args{"backup", "--json", "--quiet", "--host", host};
  for (const auto& t : tags) {
    args.push_back("--tag");
    args.push_back(t);
  }
  args.push_back("--");
  args.insert(args.end(), paths.begin(), paths.end());
  ChildRequest req = request(std::move(args));
  req.cwd = cwd;
  auto out = co_await runRequest(std::move(req), "backing up " + cwd);
  if (!out) co_return std::move(out).error();
  co_return parseBackupSummary(*out);
}

Task<Status> Restic::restoreTo(const std::string& snapshot, const std::string& target) {
  std::vector<std::string> args{"restore", snapshot, "--target", target};
  auto r = co_await run(std::move(args), "restoring snapshot " + snapshot + " into " + target);
  if (!r) co_return std::move(r).error();
  co_return Status::success();
}

Task<Result<std::vector<Snapshot>>> Restic::snapshots(const std::vector<std::string>& tags) {
  std::vector<std::string> args{"snapshots", "--json"};
  if (!tags.empty()) {
    std::string joined;  // one --tag with a,b: snapshots carrying all of them
    for (const auto& t : tags) joined += (joined.empty() ? "" : ",") + t;
    args.push_back("--tag");
    args.push_back(joined);
  }
  auto out = co_await run(std::move(args), "listing the backups");
  if (!out) co_return std::move(out).error();
  co_return parseSnapshots(*out);
}

Task<Result<std::unique_ptr<ChildProcess>>> Restic::startDump(const std::string& snapshot,
                                                              const std::string& path) {
  std::vector<std::string> args{"dump", snapshot, path};
  co_return ChildProcess::spawn(ex_, request(std::move(args)));
}

Task<Status> Restic::finishDump(ChildProcess& child, const std::string& what) {
  const std::string err = co_await child.readAllErr(kMaxStderr);
  const int code = co_await child.wait();
  if (code != 0) co_return resticError(err, code, what + " (" + repo_.display + ")");
  co_return Status::success();
}

Task<Status> Restic::dump(const std::string& snapshot, const std::string& path,
                          const std::function<Task<Status>(std::string_view)>& sink) {
  auto child = co_await startDump(snapshot, path);
  if (!child) co_return std::move(child).error();
  auto& c = **child;
  const auto pump = [&]() -> Task<Status> {
    for (;;) {
      auto piece = co_await c.readSome();
      if (!piece) co_return std::move(piece).error();
      if (piece->empty()) co_return Status::success();
      auto st = co_await sink(*piece);
      if (!st) {
        c.kill();
        co_return st;
      }
    }
  };
  auto [pumped, err] = co_await (pump() && c.readAllErr(kMaxStderr));
  const int code = co_await c.wait();
  const std::string what = "reading " + path + " of snapshot " + snapshot;
  if (code != 0 && pumped) co_return resticError(err, code, what + " (" + repo_.display + ")");
  if (!pumped) co_return pumped;
  co_return Status::success();
}

Result<ChildRequest> Restic::requestFrom(const Restic& from, std::vector<std::string> args) const {
  // Both back ends' variables go in one environment. restic 0.14 has one
  // AWS_* key pair per process: when the two repositories need different
  // ones, this one is reached through rclone, whose keys have names of
  // their own.
  const auto clashes = [&](const auto& env) {
    for (const auto& [k, v] : from.repo_.env) {
      for (const auto& [k2, v2] : env) {
        if (k2 == k && v2 != v) return true;
      }
    }
    return false;
  };
  bool viaRclone = false;
  if (clashes(repo_.env)) {
    if (repo_.rcloneLocation.empty() || clashes(repo_.rcloneEnv)) {
      return Error::make(ErrorCode::invalid_argument,
                         "copying from " + from.repo_.display + " to " + repo_.display +
                             ": both need the same environment variables with different values "
                             "(restic 0.14 takes one per process); use another kind of offsite "
                             "target (s3:, sftp:, rest:, a directory)");
    }
    viaRclone = true;
  }
  args.insert(args.end(),
              {"--from-repo", from.repo_.location, "--from-password-file", "/dev/fd/4"});
  ChildRequest r = request(std::move(args), false, viaRclone);
  for (const auto& [k, v] : from.repo_.env) {
    bool same = false;
    for (const auto& [k2, v2] : r.env) same = same || (k2 == k && v2 == v);
    if (!same) r.env.emplace_back(k, v);
  }
  r.secretFds.push_back(from.password_.view());
  return r;
}

Task<Status> Restic::initFrom(const Restic& from) {
  std::vector<std::string> args{"init", "--copy-chunker-params"};
  auto req = requestFrom(from, std::move(args));
  if (!req) co_return req.error();
  auto r = co_await runRequest(std::move(*req), "creating the offsite repository");
  if (!r) co_return std::move(r).error();
  co_return Status::success();
}

Task<Status> Restic::copyFrom(const Restic& from, const std::vector<std::string>& tags) {
  std::vector<std::string> args{"copy"};
  if (!tags.empty()) {
    std::string joined;
    for (const auto& t : tags) joined += (joined.empty() ? "" : ",") + t;
    args.push_back("--tag");
    args.push_back(joined);
  }
  auto req = requestFrom(from, std::move(args));
  if (!req) co_return req.error();
  auto r = co_await runRequest(std::move(*req), "copying to the offsite repository");
  if (!r) co_return std::move(r).error();
  co_return Status::success();
}

}  // namespace foundationd::backup
