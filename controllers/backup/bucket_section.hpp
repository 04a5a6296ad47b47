// The bucket sections, "buckets/NAME" (docs/dr.md "Buckets"): the objects
// of every [buckets.*] the backup protects, one restic snapshot per bucket.
//
// Backup:
// - Every object is listed (ListObjectsV2) and downloaded (GetObject,
//   streamed) into a private 0700 directory beside the state, as the file
//   objects/SHA256(KEY): S3 keys are not file paths ("a" and "a/b" can both
//   exist, a key may hold "..", "//" or be 1024 bytes long), so each object
//   gets a fixed-length name and inventory.json maps keys to files (with
//   each one's size, ETag and SHA-256).
// - `restic backup inventory.json objects` is run in that directory: restic
//   deduplicates the objects' contents (an unchanged object costs nothing
//   in the next backup) and one object can be read back alone with
//   `restic dump SNAPSHOT /objects/HASH`. The directory is removed
//   afterwards, on failure too.
// - The manifest gets the bucket's inventory: key, size and ETag of each
//   object, their count and total bytes; the section's sha256 is that of
//   /inventory.json.
// - An object deleted between the listing and its download is left out
//   (reported); the S3 calls block, so they run on a thread of their own,
//   never on the io_context's.
//
// Restore (verify first, then write; nothing is ever deleted):
// - The snapshot is restored into a private directory beside the state;
//   inventory.json's SHA-256 is compared with the manifest, its entries
//   with the manifest's inventory, and every file's size and SHA-256 with
//   inventory.json. A mismatch: nothing is written.
// - The bucket must exist (`foundationd apply --once` creates it); one that
//   holds any object is refused without `force` (and with it only the
//   backup's objects are written over; other objects stay).
// - PutObject of each object, then the bucket is listed and every key of
//   the manifest compared: present, same size, and the same ETag when the
//   manifest's is the MD5 of a single-part upload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/backup/backup.hpp"
#include "controllers/buckets/s3_xml.hpp"

namespace foundationd::backup {

inline constexpr const char* kBucketKind = "bucket-objects";
inline constexpr const char* kBucketInventoryPath = "/inventory.json";

// "buckets/NAME".
std::string bucketSection(const std::string& bucket);

// The [buckets.*] a backup protects, in name order: all but those named in
// [backup] disposable and those its targets are stored in (the repository
// would back itself up).
std::vector<std::string> protectedBuckets(const config::Spec& spec);

// The file an object is stored as in its snapshot: "objects/" + the
// SHA-256 (hex) of its key.
std::string objectFile(std::string_view key);

// One entry of a snapshot's /inventory.json.
struct InventoryEntry {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
  std::string sha256;  // of the content
  std::string file;    // objectFile(key)
};
// invalid_argument when a key is not UTF-8 (JSON cannot hold it).
Result<std::string> inventoryJson(const std::string& bucket,
                                  const std::vector<InventoryEntry>& entries);
Result<std::vector<InventoryEntry>> parseInventory(std::string_view text);

// After a restore: the bucket's listing against the manifest's inventory,
// for the manifest's keys only (others may be in the bucket): each present,
// the same size, and the same ETag when the manifest's is the MD5 of a
// single-part upload (32 hex digits; a multipart ETag "...-N" depends on the
// part sizes, and the restore uploads in one part). "" when all agree, else
// the differences (the first 10, and how many more).
std::string compareInventory(const std::vector<BucketObject>& expected,
                             const std::vector<buckets::ObjectInfo>& live);

Task<Result<Section>> backupBucket(BackupContext& ctx, Restic& repo, const std::string& bucket,
                                   const std::vector<std::string>& tags, const std::string& host,
                                   const Report& report);

// A bucket section read back into a private directory and verified; removed
// with the object.
class BucketStage {
 public:
  explicit BucketStage(std::string dir) : dir_(std::move(dir)) {}
  ~BucketStage();
  BucketStage(const BucketStage&) = delete;
  BucketStage& operator=(const BucketStage&) = delete;
  const std::string& dir() const noexcept { return dir_; }
  std::vector<InventoryEntry> entries;

 private:
  std::string dir_;
};
// Restores the section's snapshot into a private directory beside the state
// and verifies it against the manifest (see the contract above).
Task<Result<std::unique_ptr<BucketStage>>> stageBucket(BackupContext& ctx, Restic& repo,
                                                       const Section& s);
// Before anything is written: the bucket is in the spec, exists, and is empty
// (or `force`).
Task<Status> precheckBucket(BackupContext& ctx, const Section& s, bool force);
Task<Status> restoreBucket(BackupContext& ctx, const Section& s, const BucketStage& stage,
                           const Report& report);

}  // namespace foundationd::backup
