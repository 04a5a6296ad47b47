// From a spec resource to what the Docker Engine is asked for, and the
// canonical form that identifies it.
//
// The canonical config is a JSON document with sorted keys, holding only
// fields that differ from their defaults (so a later version that learns a new
// optional field does not change existing hashes). Secret values appear only
// as {"sensitive": "<digest>"}. It is safe to print and is stored in the
// resource's `foundationd.config` label; its SHA-256 is the
// `foundationd.config-hash` label. A hash mismatch, and nothing else, makes a
// container be recreated. Pure functions, no I/O.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"

namespace foundationd::docker {
// Where [files.*] that hold no secret live on the host (the daemon passes
// <state_dir>/files); those that hold one live under the secrets tmpfs.
inline constexpr const char* kDefaultFilesDir = "/var/lib/foundationd/files";
}  // namespace foundationd::docker

namespace foundationd::docker {

inline constexpr const char* kLabelManaged = "foundationd.managed";
inline constexpr const char* kLabelProject = "foundationd.project";
inline constexpr const char* kLabelHash = "foundationd.config-hash";
inline constexpr const char* kLabelConfig = "foundationd.config";
// The container's depends_on targets, comma-separated (not part of its
// identity): lets prune remove dependents before their dependencies once the
// spec no longer says what depended on what.
inline constexpr const char* kLabelDependsOn = "foundationd.depends-on";

struct Desired {
  nlohmann::json canonical;  // safe to print and to put in a label
  std::string hash;          // hex SHA-256 of canonical.dump()
};

Desired desiredContainer(const config::ContainerSpec& c, const SecretResolver& secrets);

// A stable digest of `v`'s content that needs no secret: SHA-256 of the text
// for a literal; for a value referencing credentials, a hash over its text
// and the credentials' digests. Used for [files.*] content.
std::string valueDigest(const config::Value& v, const SecretResolver& secrets);
Desired desiredNetwork(const config::NetworkSpec& n);
Desired desiredVolume(const config::VolumeSpec& v);

// Hex SHA-256 (libsodium) of `text`.
std::string sha256Hex(const std::string& text);

// The labels foundationd puts on what it owns: the user's labels plus
// managed/project/config-hash/config.
Labels ownedLabels(const std::map<std::string, std::string>& userLabels,
                   const std::string& project, const Desired& desired);

// POST /containers/create body. Fails (invalid_argument) when a referenced
// secret has no value (state locked, or not generated yet).
// `secretsDir` is where secret_files live on the host (secret_files.hpp),
// `filesDir` where [files.*] without secrets do (config_files.hpp).
Result<nlohmann::json> containerCreateBody(const config::ContainerSpec& c,
                                           const std::string& project, const Desired& desired,
                                           const SecretResolver& secrets,
                                           const std::string& secretsDir,
                                           const std::string& filesDir = kDefaultFilesDir);
// The networks beyond the first, which must be connected after create
// (Engine API < 1.44 accepts one network at create time).
std::vector<config::NetworkAttachment> extraNetworks(const config::ContainerSpec& c);

nlohmann::json networkCreateBody(const config::NetworkSpec& n, const std::string& project,
                                 const Desired& desired);
nlohmann::json volumeCreateBody(const config::VolumeSpec& v, const std::string& project,
                                const Desired& desired);

// One changed field between two canonical configs, in the spec's own terms:
// the spec's key ("stop_timeout", "env.FOO", "healthcheck.interval") and its
// value as the spec writes it ("3s", "64MiB", ["a", "b"], true, 1.5), typed.
// A null value means "not set". A secret value is never carried: when
// `sensitive` is true a set value is the string "(sensitive)".
struct FieldChange {
  std::string field;
  nlohmann::json before;
  nlohmann::json after;
  bool sensitive = false;
};
std::vector<FieldChange> diffCanonical(const nlohmann::json& before, const nlohmann::json& after);

// Image pins that hold (docs/spec.md "Digest pins"): why the image `live`
// runs is not the one `pinned` names, or nullopt. A pin by image ID
// ("sha256:<64 hex>", what `docker import` images have) is compared with the
// container's ImageID; a pin by repository digest ("name[:tag]@sha256:...")
// with the reference the container was created from (the Engine lists the
// image ID instead once that reference no longer names what runs). A tag
// pin is never drift: nullopt.
std::optional<std::string> imagePinProblem(const std::string& pinned, const std::string& liveImage,
                                           const std::string& liveImageId);

}  // namespace foundationd::docker
