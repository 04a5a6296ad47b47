// A backup's manifest (docs/dr.md "What a backup holds"): what each section
// is, its size and SHA-256, PostgreSQL row counts per table, the spec
// revision and the images in force. Stored as manifest.json in the backup's
// last restic snapshot: a backup without it is incomplete.
//
// Pure: JSON in and out (nlohmann), and the parsers of what the sections'
// producers print. No I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace foundationd::backup {

inline constexpr int kManifestFormat = 1;
// The restic tags of every snapshot foundationd writes, and of one backup's.
inline constexpr const char* kTag = "foundationd";
inline constexpr const char* kBackupTagKey = "fd-backup";    // fd-backup=ID
inline constexpr const char* kSectionTagKey = "fd-section";  // fd-section=NAME
inline constexpr const char* kManifestSection = "manifest";
inline constexpr const char* kManifestPath = "/manifest.json";

// One object of a bucket's inventory (bucket-objects sections).
struct BucketObject {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // as the server gave it, unquoted ("...-N" for a multipart upload)
};

struct Section {
  std::string name;      // "postgres/main/globals", "postgres/main/db/appdb", "state"
  std::string kind;      // "postgres-globals" | "postgres-database" | "state"
  std::string path;      // the file inside its snapshot
  std::string snapshot;  // restic snapshot id (short)
  std::uint64_t bytes = 0;
  std::string sha256;  // hex, of exactly the bytes stored
  std::string instance;  // postgres-*: the [postgres.*] name
  std::string database;  // postgres-database
  std::map<std::string, std::int64_t> rowCounts;  // postgres-database: "schema.table" -> rows
  // forge-data (forge_section.hpp): a tar of the forge container's writable
  // volumes, taken frozen.
  std::vector<std::string> mounts;                  // their mount points, as archived
  std::map<std::string, std::string> repoHeads;     // "owner/name" -> HEAD commit ("" = empty)
  std::map<std::string, std::string> repoPaths;     // "owner/name" -> its directory in the tar
  std::int64_t freezeMs = -1;                       // how long the forge was paused
  double seconds = 0;  // how long taking it took (the dump or copy and restic's storing)
  std::map<std::string, std::int64_t> counts;  // vault-snapshot: "secrets" -> under the KV mount;
                                               // bucket-objects: "objects" -> how many
  // bucket-objects (bucket_section.hpp): the bucket and its [s3.*] server,
  // and its inventory in key order; `bytes` is the objects' total size and
  // `sha256` that of the snapshot's /inventory.json.
  std::string bucket;
  std::string s3;
  std::vector<BucketObject> objects;
  // vault-snapshot: the canary foundationd wrote to the KV mount just before
  // the snapshot (vault_section.hpp), its KV mount, its path under it and the
  // SHA-256 of its value (vaultCanaryDigest), never the value. Empty in a
  // backup taken before canaries: verify then says the canary was not checked.
  std::string canaryMount;  // the KV mount the canary (and the secrets count) is under
  std::string canaryPath;
  std::string canarySha256;
};

struct Manifest {
  int format = kManifestFormat;
  std::string id;         // the backup's id (fd-backup=ID)
  std::string createdAt;  // RFC 3339 UTC
  std::string project;
  std::string specRevision;  // the last applied revision recorded in the state ("" = none)
  std::string foundationdVersion;
  std::string reason;  // why it was taken ("" = on request or schedule)
  std::map<std::string, std::string> images;  // container -> "image-ref (sha256:image-id)"
  std::vector<Section> sections;
  // What is protected but not in this backup, and why (e.g. Vault on file
  // storage); printed by `backup list`.
  std::vector<std::string> notIncluded;

  const Section* find(std::string_view name) const;
  std::uint64_t totalBytes() const;
};

std::string toJson(const Manifest& m);
// invalid_argument (with what is wrong) for a document that is not a
// manifest of a format this build reads.
Result<Manifest> parseManifest(std::string_view text);

// `psql -At` output of the row-count query: "schema.table|N" lines.
Result<std::map<std::string, std::int64_t>> parseRowCounts(std::string_view out);

// A new backup id from a UTC time (seconds since the epoch) and 2 random
// bytes: "20261203T120000Z-a1b2". Sorts by time.
std::string newBackupId(std::int64_t unixSeconds, std::uint16_t random);

// Names a section ("postgres/main/db/appdb") may be selected by: itself, or
// a prefix ending at a '/' boundary ("postgres/main" selects the instance).
bool sectionSelected(std::string_view section, std::string_view selector);

}  // namespace foundationd::backup
