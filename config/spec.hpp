// The spec model: what foundation.toml (spec_version 1) says, after parsing,
// `${versions.*}` substitution and validation. See docs/spec.md.
//
// Plain data, no behaviour beyond small helpers. Maps are std::map so that
// iteration order (and therefore plans, hashes and output) is deterministic.
// Every element keeps the SourceLoc of its table or key so later stages
// (graph, controllers) can still point at the line that declared it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/units.hpp"

namespace foundationd::config {

// A reference to one field of a credential: ${credentials.NAME.FIELD}; or,
// with runnerToken set, to the forge's Actions runner registration token
// (${forgejo.runner_token}: name "forgejo", field "runner_token"), which the
// forge step seals in the state and which resolves like a credential.
struct CredentialRef {
  std::string name;
  std::string field;
  bool runnerToken = false;
  static CredentialRef forgejoRunnerToken() { return {"forgejo", "runner_token", true}; }
  // "credentials.NAME.FIELD" or "forgejo.runner_token", as the spec writes it.
  std::string str() const {
    return runnerToken ? "forgejo.runner_token" : "credentials." + name + "." + field;
  }
  bool operator==(const CredentialRef&) const = default;
  auto operator<=>(const CredentialRef&) const = default;
};

// A string that may embed credential references. `${versions.*}` and `$$`
// are already substituted by the loader, so segments are literal text or
// credential references. A value with any credential segment is *sensitive*:
// it is never printed, logged, or put in a label.
struct Value {
  using Segment = std::variant<std::string, CredentialRef>;
  std::vector<Segment> segments;
  SourceLoc loc;

  static Value literal(std::string text, SourceLoc loc = {});
  bool sensitive() const noexcept;
  // The text when not sensitive; "(sensitive)" otherwise. Safe to print.
  std::string display() const;
  // Every credential reference in this value, in order.
  std::vector<CredentialRef> references() const;
  bool operator==(const Value& o) const { return segments == o.segments; }
};

struct NetworkSpec {
  std::string name;
  SourceLoc loc;
  std::string driver = "bridge";
  bool internal = false;
  std::optional<std::string> subnet;  // CIDR, validated
  std::map<std::string, std::string> labels;
};

struct VolumeSpec {
  std::string name;
  SourceLoc loc;
  std::string driver = "local";
  std::map<std::string, std::string> labels;
};

// A field whose value a person supplies: `{ provided = true }`, set with
// `foundationd secret set NAME.FIELD` (docs/spec.md "Provided values").
struct Provided {
  bool operator==(const Provided&) const = default;
};

// A field of a credential: a literal (not secret), a generator, or provided.
struct Generator {
  enum class Kind { password, hex, base64url, uuid };
  Kind kind = Kind::password;
  int length = 32;       // password: characters
  int bytes = 32;        // hex, base64url: random bytes
  bool symbols = false;  // password: add punctuation to [A-Za-z0-9]
  bool operator==(const Generator&) const = default;
};
const char* toString(Generator::Kind kind) noexcept;

struct CredentialField {
  std::variant<std::string, Generator, Provided> value;  // literal, generator or provided
  SourceLoc loc;
  bool generated() const noexcept { return value.index() == 1; }
  bool provided() const noexcept { return value.index() == 2; }
};

struct CredentialSpec {
  std::string name;
  SourceLoc loc;
  std::string vaultPath;  // under the KV mount; defaults to the name
  std::optional<Duration> rotateEvery;
  std::map<std::string, CredentialField> fields;
};

struct NetworkAttachment {
  std::string network;
  std::vector<std::string> aliases;
  SourceLoc loc;
};

// "source:target[:ro|:rw]". A source starting with '/' is a host bind mount;
// otherwise it names a volume (which must be declared in [volumes]).
struct Mount {
  std::string source;
  std::string target;
  bool readOnly = false;
  bool bind = false;
  SourceLoc loc;
};

// "[host-ip:][host-port:]container-port[/proto]"; host-port may be absent
// (Docker picks one) only when host-ip is absent too, like compose.
struct PortMapping {
  std::string hostIp;               // "" = all interfaces
  std::optional<std::uint16_t> hostPort;
  std::uint16_t containerPort = 0;
  std::string protocol = "tcp";     // tcp | udp | sctp
  SourceLoc loc;
};

struct Healthcheck {
  std::vector<std::string> test;    // ["CMD", ...] | ["CMD-SHELL", "..."] | ["NONE"]
  std::optional<Duration> interval, timeout, startPeriod;
  std::optional<int> retries;
  SourceLoc loc;
};

// started: running; healthy: its healthcheck says healthy; completed: a job
// (run = "once") that exited 0.
enum class DependCondition { started, healthy, completed };
const char* toString(DependCondition c) noexcept;

struct Dependency {
  std::string container;
  DependCondition condition = DependCondition::started;
  SourceLoc loc;
};

// How a consumer of a [files.*] file follows a change of its content
// (docs/spec.md "[files.NAME]").
struct OnChange {
  enum class Kind { recreate, restart, signal, exec };
  Kind kind = Kind::recreate;
  std::string signal;                // Kind::signal: "SIGHUP"
  std::vector<std::string> command;  // Kind::exec: argv run inside the container
  bool operator==(const OnChange&) const = default;
};
// "recreate", "restart", "signal:SIGHUP" or "exec:caddy reload ..." (for plans).
std::string toString(const OnChange& o);

// A configuration file rendered by foundationd: from a file of the spec
// repository (read with the spec, at the same commit) or an inline string,
// with ${versions.*} substituted and ${credentials.*} kept as references.
struct FileSpec {
  std::string name;
  SourceLoc loc;
  std::optional<std::string> source;  // path as written, relative to the spec's directory
  Value content;                      // the template; sensitive when it references a credential
  int mode = 0444;                    // 0400 by default when sensitive
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  OnChange onChange;                  // default for the containers mounting it
};

// A [files.*] file mounted into a container at a path (the map's key).
struct FileMount {
  std::string file;
  std::optional<OnChange> onChange;  // overrides the file's own, as written
  SourceLoc loc;
  // Filled in by the loader from [files.NAME], so that a controller sees what
  // a container mounts without the whole spec.
  Value content;       // the file's template
  OnChange effective;  // onChange, else the file's on_change
};

struct ContainerSpec {
  std::string name;
  SourceLoc loc;
  std::string image;  // after ${versions.*}; never sensitive
  SourceLoc imageLoc;
  std::optional<std::vector<std::string>> command;
  std::optional<std::vector<std::string>> entrypoint;
  std::map<std::string, Value> env;
  std::map<std::string, Value> secretFiles;  // path in container -> content
  std::map<std::string, FileMount> files;    // path in container -> [files.*] name
  std::vector<NetworkAttachment> networks;
  std::vector<Mount> volumes;
  std::vector<PortMapping> ports;
  std::string restart = "no";  // no | always | unless-stopped | on-failure
  std::optional<std::string> user;
  std::optional<Healthcheck> healthcheck;
  std::vector<Dependency> dependsOn;
  std::map<std::string, std::string> labels;
  std::optional<std::int64_t> memoryBytes;
  std::optional<double> cpus;
  bool readOnly = false;
  bool privileged = false;
  std::vector<std::string> capAdd;
  std::vector<std::string> capDrop;
  std::optional<Duration> stopTimeout;
  std::vector<std::string> tmpfs;
  // run = "once": a job, run to completion once per config hash and not
  // restarted after it exits (docs/spec.md "Jobs"). Default: a service.
  bool runOnce = false;
  SourceLoc runLoc;
  // How long a depends_on condition may take before this container fails
  // (default: the controller's, 5 minutes). Orders work: not in the hash.
  std::optional<Duration> dependsTimeout;
};

struct VaultPolicy {
  std::string name;
  std::string rules;
  SourceLoc loc;
};

struct VaultSpec {
  SourceLoc loc;
  std::string container;
  std::string address = "http://127.0.0.1:8200";
  int keyShares = 5;
  int keyThreshold = 3;
  std::string kvMount = "foundation";
  std::map<std::string, VaultPolicy> policies;
};

struct S3Spec {
  std::string name;
  SourceLoc loc;
  std::string container;
  std::string endpoint;
  std::string region = "us-east-1";
  Value accessKey;
  Value secretKey;
};

struct BucketSpec {
  std::string name;
  SourceLoc loc;
  std::string s3;  // name of an [s3.*] table
  bool versioning = false;
  int expireDays = 0;
};

struct PostgresRole {
  std::string name;
  SourceLoc loc;
  Value password;
};

struct PostgresDatabase {
  std::string name;
  SourceLoc loc;
  std::string owner;  // a role declared in the same [postgres.*]
};

struct PostgresSpec {
  std::string name;
  SourceLoc loc;
  std::string container;
  std::string superuser = "postgres";
  std::map<std::string, PostgresRole> roles;
  std::map<std::string, PostgresDatabase> databases;
};

struct ForgejoAdmin {
  std::string username;
  std::string email;
  Value password;
  SourceLoc loc;
};

struct ForgejoWebhook {
  std::string repo;  // "owner/name"
  std::string url;
  Value secret;
  SourceLoc loc;
};

// The Actions secrets and variables of a repository or an organisation
// (`actions_secrets` / `actions_variables` of [forgejo.repos."o/n"] or
// [forgejo.orgs.NAME]). Names as the forge stores them: upper case.
struct ForgejoActions {
  std::map<std::string, Value> secrets;        // NAME -> value (credential references allowed)
  std::map<std::string, std::string> variables;  // NAME -> value (no secrets: readable)
  bool empty() const noexcept { return secrets.empty() && variables.empty(); }
};

// Options of a [forgejo.repos."owner/name"] table (all optional).
struct ForgejoRepo {
  std::string name;  // "owner/name"
  SourceLoc loc;
  bool isPrivate = false;  // Forgejo's own default for a new repository
  std::string description;
  ForgejoActions actions;
};

struct ForgejoSpec {
  SourceLoc loc;
  std::string container;
  std::string url = "http://127.0.0.1:3000";
  std::optional<ForgejoAdmin> admin;
  std::map<std::string, SourceLoc> orgs;   // name -> where declared
  std::map<std::string, SourceLoc> repos;  // "owner/name" -> where declared
  std::map<std::string, ForgejoRepo> repoOptions;  // same keys as `repos`
  std::optional<std::string> runnerTokenVaultPath;
  std::map<std::string, ForgejoWebhook> webhooks;  // keyed by repo
  std::map<std::string, ForgejoActions> orgActions;  // org -> its Actions secrets/variables
};

// A place restic keeps a backup repository ([backup.local], [backup.offsite]).
// Exactly one of: a directory of this host (or a mount), a [buckets.*] of the
// spec (on its [s3.*] server, with that server's keys), or a restic
// repository URL of another kind ("s3:https://host/bucket/prefix",
// "sftp:user@host:/path", "rest:https://host/path").
struct BackupTarget {
  enum class Kind { path, bucket, repository };
  Kind kind = Kind::path;
  SourceLoc loc;
  std::string path;        // Kind::path: absolute
  std::string bucket;      // Kind::bucket: a [buckets.*] name
  std::string prefix;      // Kind::bucket: a folder in the bucket ("" = its root)
  std::string repository;  // Kind::repository: as restic spells it
  std::optional<Value> accessKey;  // Kind::repository "s3:": the offsite key pair
  std::optional<Value> secretKey;
};

struct BackupRetention {
  int keepDaily = 7;
  int keepWeekly = 4;
  int keepMonthly = 6;
  SourceLoc loc;
};

// [backup] (docs/dr.md). What is protected is not listed: every database of
// every [postgres.*] instance, the [vault] data and foundationd's own state.
// `disposable` names containers, volumes and buckets never backed up.
struct BackupSpec {
  SourceLoc loc;
  BackupTarget local;                   // [backup.local]: required
  std::optional<BackupTarget> offsite;  // [backup.offsite]
  Duration schedule = std::chrono::hours(24);
  // `verify_schedule`: the daemon restores the newest complete backup into
  // scratch containers this long after the last verify (docs/dr.md
  // "Verify"); nullopt = "off" (verify from a timer or by hand instead).
  std::optional<Duration> verifySchedule = std::chrono::hours(24 * 7);
  // `max_freeze`: the longest the forge's container stays paused for its
  // cut (docs/dr.md "The forge's data"); past it the forge is thawed and the
  // backup fails, its cut not consistent.
  Duration maxFreeze = std::chrono::minutes(10);
  BackupRetention retention;
  std::map<std::string, SourceLoc> disposable;  // container, volume or bucket name -> where
  // `recovery`: where `backup export-recovery` writes the recovery bundle,
  // relative to the spec file's directory (the spec repository's checkout);
  // "" = not named.
  std::string recovery;
  SourceLoc recoveryLoc;
};

struct Spec {
  std::string file;  // path of the spec file as loaded
  int specVersion = 1;
  std::string project;
  std::optional<std::string> versionsFile;  // resolved path, when given
  bool prune = false;
  bool strictPinning = false;
  // [rollout] settle (docs/source.md "Rollback"): how long a new revision
  // that carries this spec is watched after it is applied; overrides the
  // daemon config's [source] settle for that revision. nullopt = not set.
  std::optional<Duration> settle;
  std::map<std::string, std::string> versions;  // [images] of VERSIONS

  std::map<std::string, NetworkSpec> networks;
  std::map<std::string, VolumeSpec> volumes;
  std::map<std::string, CredentialSpec> credentials;
  std::map<std::string, FileSpec> files;
  std::map<std::string, ContainerSpec> containers;
  std::optional<VaultSpec> vault;
  std::map<std::string, S3Spec> s3;
  std::map<std::string, BucketSpec> buckets;
  std::map<std::string, PostgresSpec> postgres;
  std::optional<ForgejoSpec> forgejo;
  std::optional<BackupSpec> backup;
};

}  // namespace foundationd::config
