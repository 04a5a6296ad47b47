// The bucket sections. Contract in bucket_section.hpp.
#include "controllers/backup/bucket_section.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "controllers/backup/backup_internal.hpp"
#include "controllers/buckets/s3_client.hpp"

namespace foundationd::backup {

using namespace internal;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Runs blocking `f` (returning Status) on a thread of its own and awaits it:
// the S3 calls and the hashing of large files never block the io_context.
// `f` stays in the caller's frame; the spawned lambda holds a pointer to it
// (GCC 12 and lambda temporaries in co_await: see Daemon::onPool).
template <typename F>
Task<Status> offThread(F& f) {
  boost::asio::thread_pool pool(1);
  F* fp = &f;
  auto run = [fp]() -> Task<Status> { co_return (*fp)(); };
  Status st = co_await boost::asio::co_spawn(pool, run, boost::asio::use_awaitable);
  pool.join();
  co_return st;
}

Error ioError(const std::string& what) {
  return Error::make(ErrorCode::io, what + ": " + std::strerror(errno));
}

// A private directory (0700) beside the state, removed with the object.
struct TempDir {
  fs::path dir;
  ~TempDir() {
    if (dir.empty()) return;
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Result<fs::path> makeTempDir(const std::string& stateDir, const char* prefix) {
  std::string tmpl = (fs::path(stateDir) / (std::string(prefix) + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) return ioError("cannot make a temporary directory in " + stateDir);
  return fs::path(tmpl);
}

Status writeAll(int fd, std::string_view piece, const std::string& path) {
  while (!piece.empty()) {
    const ssize_t n = ::write(fd, piece.data(), piece.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ioError("writing " + path);
    piece.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::success();
}

// SHA-256 and size of a file.
Status hashFile(const fs::path& path, std::string& sha256, std::uint64_t& size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ioError("opening " + path.string());
  Sha256 sha;
  std::string buf(256 * 1024, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const Error e = ioError("reading " + path.string());
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    sha.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  size = sha.bytes();
  sha256 = sha.hex();
  return Status::success();
}

std::string humanCount(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The bucket's server and keys, resolved from the state.
struct BucketTarget {
  std::string server;
  buckets::S3Endpoint endpoint;
};

Result<BucketTarget> targetOf(const BackupContext& ctx, const std::string& bucket,
                              const std::string& section) {
  const auto b = ctx.spec.buckets.find(bucket);
  if (b == ctx.spec.buckets.end()) {
    return Error::make(ErrorCode::invalid_argument,
                       section + ": the spec has no [buckets." + bucket + "] to restore into");
  }
  const auto s3 = ctx.spec.s3.find(b->second.s3);
  if (s3 == ctx.spec.s3.end()) {
    return Error::make(ErrorCode::invalid_argument, section + ": no [s3." + b->second.s3 + "]");
  }
  if (!ctx.secrets) {
    return Error::make(ErrorCode::internal, section + ": the S3 keys cannot be resolved here");
  }
  config::CredentialRef missing;
  auto access = docker::resolveSecrets(s3->second.accessKey, *ctx.secrets, &missing);
  auto secret = access ? docker::resolveSecrets(s3->second.secretKey, *ctx.secrets, &missing)
                       : std::nullopt;
  if (!access || !secret) {
    return Error::make(ErrorCode::unavailable, section + ": the keys of [s3." + s3->first +
                                                   "] are not available (credential " +
                                                   missing.name + "." + missing.field + ")");
  }
  BucketTarget t;
  t.server = s3->first;
  t.endpoint = buckets::S3Endpoint{s3->second.endpoint, s3->second.region, std::move(*access),
                                   std::move(*secret)};
  return t;
}

bool isMd5Etag(std::string_view etag) {
  if (etag.size() != 32) return false;
  for (char c : etag) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::string shown(std::string_view key) {
  std::string out = "\"" + std::string(key.substr(0, 200)) + (key.size() > 200 ? "...\"" : "\"");
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return out;
}

}  // namespace

std::string bucketSection(const std::string& bucket) { return "buckets/" + bucket; }

std::vector<std::string> protectedBuckets(const config::Spec& spec) {
  std::set<std::string> skip;
  if (spec.backup) {
    for (const auto& [name, _] : spec.backup->disposable) skip.insert(name);
    if (spec.backup->local.kind == config::BackupTarget::Kind::bucket) {
      skip.insert(spec.backup->local.bucket);
    }
    if (spec.backup->offsite && spec.backup->offsite->kind == config::BackupTarget::Kind::bucket) {
      skip.insert(spec.backup->offsite->bucket);
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, _] : spec.buckets) {
    if (!skip.count(name)) out.push_back(name);
  }
  return out;
}

std::string objectFile(std::string_view key) {
  Sha256 sha;
  sha.update(key);
  return "objects/" + sha.hex();
}

Result<std::string> inventoryJson(const std::string& bucket,
                                  const std::vector<InventoryEntry>& entries) {
  json objects = json::array();
  for (const auto& e : entries) {
    objects.push_back({{"key", e.key},
                       {"size", e.size},
                       {"etag", e.etag},
                       {"sha256", e.sha256},
                       {"file", e.file}});
  }
  json doc = {{"format", 1}, {"bucket", bucket}, {"objects", std::move(objects)}};
  try {
    return doc.dump(1) + "\n";
  } catch (const json::exception&) {
    return Error::make(ErrorCode::invalid_argument,
                       "bucket " + bucket + " holds a key that is not UTF-8; S3 keys are UTF-8, "
                       "and the inventory (JSON) cannot record it");
  }
}

Result<std::vector<InventoryEntry>> parseInventory(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  const auto bad = [](const std::string& why) {
    return Error::make(ErrorCode::protocol, "not a bucket inventory: " + why);
  };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  std::vector<InventoryEntry> out;
  try {
    if (doc.at("format").get<int>() != 1) return bad("an unknown format");
    for (const auto& o : doc.at("objects")) {
      InventoryEntry e;
      e.key = o.at("key").get<std::string>();
      e.size = o.at("size").get<std::uint64_t>();
      e.etag = o.at("etag").get<std::string>();
      e.sha256 = o.at("sha256").get<std::string>();
      e.file = o.at("file").get<std::string>();
      if (e.file != objectFile(e.key)) return bad("the file of " + shown(e.key) + " is not its own");
      out.push_back(std::move(e));
    }
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  return out;
}

std::string compareInventory(const std::vector<BucketObject>& expected,
                             const std::vector<buckets::ObjectInfo>& live) {
  std::map<std::string_view, const buckets::ObjectInfo*> byKey;
  for (const auto& o : live) byKey[o.key] = &o;
  std::vector<std::string> diffs;
  for (const auto& want : expected) {
    const auto it = byKey.find(want.key);
    if (it == byKey.end()) {
      diffs.push_back(shown(want.key) + " is missing");
    } else if (it->second->size != want.size) {
      diffs.push_back(shown(want.key) + " has " + std::to_string(it->second->size) + " bytes, " +
                      std::to_string(want.size) + " in the manifest");
    } else if (isMd5Etag(want.etag) && it->second->etag != want.etag) {
      diffs.push_back(shown(want.key) + " has the ETag " + it->second->etag + ", " + want.etag +
                      " in the manifest");
    }
  }
  std::string out;
  for (std::size_t i = 0; i < diffs.size() && i < 10; ++i) out += (i ? "; " : "") + diffs[i];
  if (diffs.size() > 10) out += "; and " + std::to_string(diffs.size() - 10) + " more";
  return out;
}

// --- backup -------------------------------------------------------------------

Task<Result<Section>> backupBucket(BackupContext& ctx, Restic& repo, const std::string& bucket,
                                   const std::vector<std::string>& tags, const std::string& host,
                                   const Report& report) {
  Section s;
  s.name = bucketSection(bucket);
  s.kind = kBucketKind;
  s.path = kBucketInventoryPath;
  s.bucket = bucket;
  const auto fail = [&](const Error& e) { return Error::make(e.code, s.name + ": " + e.message); };
  auto target = targetOf(ctx, bucket, s.name);
  if (!target) co_return target.error();
  s.s3 = target->server;
  auto made = makeTempDir(ctx.stateDir, "bucket");
  if (!made) co_return fail(made.error());
  TempDir stage{*made};
  if (::mkdir((stage.dir / "objects").c_str(), 0700) != 0) {
    co_return fail(ioError("cannot make " + (stage.dir / "objects").string()));
  }

  // Listed and downloaded on a thread of its own.
  std::vector<InventoryEntry> entries;
  std::vector<std::string> vanished;
  auto download = [&]() -> Status {
    buckets::S3Client s3(target->endpoint);
    s3.setTimeout(std::chrono::seconds(60));
    auto list = s3.listObjects(bucket);
    if (!list) return list.error();
    for (const auto& o : *list) {
      InventoryEntry e;
      e.key = o.key;
      e.file = objectFile(o.key);
      const fs::path path = stage.dir / e.file;
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return ioError("cannot create " + path.string());
      Sha256 sha;
      auto got = s3.getObject(bucket, o.key, [&](std::string_view piece) -> Status {
        sha.update(piece);
        return writeAll(fd, piece, path.string());
      });
      ::close(fd);
      if (!got) {
        // Deleted since the listing: not in this backup (said so).
        if (got.error().message.find("NoSuchKey") != std::string::npos) {
          ::unlink(path.c_str());
          vanished.push_back(o.key);
          continue;
        }
        return got.error();
      }
      e.size = got->size;
      e.etag = got->etag.empty() ? o.etag : got->etag;
      e.sha256 = sha.hex();
      entries.push_back(std::move(e));
    }
    return Status::success();
  };
  if (auto st = co_await offThread(download); !st) co_return fail(st.error());

  auto inventory = inventoryJson(bucket, entries);
  if (!inventory) co_return fail(inventory.error());
  {
    const fs::path path = stage.dir / "inventory.json";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) co_return fail(ioError("cannot create " + path.string()));
    auto st = writeAll(fd, *inventory, path.string());
    ::close(fd);
    if (!st) co_return fail(st.error());
  }
  std::vector<std::string> paths{"inventory.json", "objects"};
  auto done = co_await repo.backupDirectory(stage.dir.string(), paths, tags, host);
  if (!done) co_return fail(done.error());

  Sha256 invSha;
  invSha.update(*inventory);
  s.sha256 = invSha.hex();
  s.snapshot = done->snapshotId;
  for (const auto& e : entries) {
    s.objects.push_back(BucketObject{e.key, e.size, e.etag});
    s.bytes += e.size;
  }
  s.counts["objects"] = static_cast<std::int64_t>(entries.size());
  std::string line = s.name + ": " + humanCount(entries.size(), "object", "objects") + ", " +
                     std::to_string(s.bytes) + " bytes, from [s3." + s.s3 + "] (snapshot " +
                     s.snapshot + ")";
  if (!vanished.empty()) {
    line += "; " + humanCount(vanished.size(), "object was", "objects were") +
            " deleted while the backup ran and are not in it (e.g. " + shown(vanished.front()) + ")";
  }
  report(line);
  co_return s;
}

// --- restore ------------------------------------------------------------------

BucketStage::~BucketStage() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

Task<Result<std::unique_ptr<BucketStage>>> stageBucket(BackupContext& ctx, Restic& repo,
                                                       const Section& s) {
  const auto fail = [&](const Error& e) { return Error::make(e.code, s.name + ": " + e.message); };
  auto made = makeTempDir(ctx.stateDir, "restore");
  if (!made) co_return fail(made.error());
  auto stage = std::make_unique<BucketStage>(made->string());
  if (auto st = co_await repo.restoreTo(s.snapshot, stage->dir()); !st) co_return fail(st.error());

  // inventory.json is the manifest's (its SHA-256), says what the manifest
  // says, and every file is what it says.
  std::string problem;
  auto verify = [&]() -> Status {
    std::ifstream in(fs::path(stage->dir()) / "inventory.json", std::ios::binary);
    if (!in) return Error::make(ErrorCode::protocol, "the snapshot has no inventory.json");
    std::stringstream text;
    text << in.rdbuf();
    Sha256 sha;
    sha.update(text.str());
    if (sha.hex() != s.sha256) {
      problem = "its inventory.json is not the one the manifest recorded (sha256 " +
                sha.hex().substr(0, 16) + "..., " + s.sha256.substr(0, 16) + "... in the manifest)";
      return Status::success();
    }
    auto entries = parseInventory(text.str());
    if (!entries) return entries.error();
    if (entries->size() != s.objects.size()) {
      problem = "its inventory lists " + std::to_string(entries->size()) + " objects, the manifest " +
                std::to_string(s.objects.size());
      return Status::success();
    }
    for (std::size_t i = 0; i < entries->size(); ++i) {
      const auto& e = (*entries)[i];
      const auto& m = s.objects[i];
      if (e.key != m.key || e.size != m.size || e.etag != m.etag) {
        problem = "its inventory differs from the manifest's at " + shown(m.key);
        return Status::success();
      }
      std::string got;
      std::uint64_t size = 0;
      if (auto st = hashFile(fs::path(stage->dir()) / e.file, got, size); !st) {
        problem = "the object " + shown(e.key) + " cannot be read back (" + st.error().message + ")";
        return Status::success();
      }
      if (size != e.size || got != e.sha256) {
        problem = "the object " + shown(e.key) + " read back (" + std::to_string(size) +
                  " bytes, sha256 " + got.substr(0, 16) + "...) is not what was backed up (" +
                  std::to_string(e.size) + " bytes, sha256 " + e.sha256.substr(0, 16) + "...)";
        return Status::success();
      }
    }
    stage->entries = std::move(*entries);
    return Status::success();
  };
  if (auto st = co_await offThread(verify); !st) co_return fail(st.error());
  if (!problem.empty()) co_return Error::make(ErrorCode::protocol, s.name + ": " + problem);
  co_return std::move(stage);
}

Task<Status> precheckBucket(BackupContext& ctx, const Section& s, bool force) {
  auto target = targetOf(ctx, s.bucket, s.name);
  if (!target) co_return target.error();
  Result<bool> has = false;
  auto look = [&]() -> Status {
    buckets::S3Client s3(target->endpoint);
    s3.setTimeout(std::chrono::seconds(30));
    has = s3.hasObjects(s.bucket);
    return Status::success();
  };
  (void)co_await offThread(look);
  if (!has) {
    if (has.error().code == ErrorCode::not_found) {
      co_return Error::make(ErrorCode::not_found,
                            s.name + ": the bucket " + s.bucket + " does not exist on [s3." +
                                target->server + "]: `foundationd apply --once` creates it first");
    }
    co_return Error::make(has.error().code, s.name + ": " + has.error().message);
  }
  if (*has && !force) {
    co_return Error::make(ErrorCode::conflict,
                          s.name + ": the bucket " + s.bucket + " already holds objects; restore "
                          "refuses to write into a bucket that has data (--force writes the "
                          "backup's objects over the ones with the same keys; other objects are "
                          "kept, nothing is deleted)");
  }
  co_return Status::success();
}

Task<Status> restoreBucket(BackupContext& ctx, const Section& s, const BucketStage& stage,
                           const Report& report) {
  auto target = targetOf(ctx, s.bucket, s.name);
  if (!target) co_return target.error();
  std::string diff;
  std::size_t written = 0;
  auto upload = [&]() -> Status {
    buckets::S3Client s3(target->endpoint);
    s3.setTimeout(std::chrono::seconds(60));
    for (const auto& e : stage.entries) {
      const fs::path path = fs::path(stage.dir()) / e.file;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return ioError("opening " + path.string());
      auto etag = s3.putObject(s.bucket, e.key, fd, e.size, e.sha256);
      ::close(fd);
      if (!etag) return etag.error();
      ++written;
    }
    auto live = s3.listObjects(s.bucket);
    if (!live) return live.error();
    diff = compareInventory(s.objects, *live);
    return Status::success();
  };
  auto st = co_await offThread(upload);
  if (!st) {
    co_return Error::make(st.error().code, s.name + ": " + st.error().message + " (" +
                                               std::to_string(written) + " of " +
                                               std::to_string(stage.entries.size()) +
                                               " objects written)");
  }
  if (!diff.empty()) {
    co_return Error::make(ErrorCode::protocol,
                          s.name + ": restored, but the bucket differs from the manifest: " + diff);
  }
  report(s.name + ": restored into bucket " + s.bucket + " on [s3." + target->server + "] (" +
         humanCount(written, "object", "objects") + ", " + std::to_string(s.bytes) +
         " bytes; keys, sizes and ETags equal to the manifest)");
  co_return Status::success();
}

}  // namespace foundationd::backup
