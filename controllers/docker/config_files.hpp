// [files.*]: configuration files rendered by foundationd and bind-mounted
// read-only into the containers that name them (docs/spec.md "[files.NAME]").
//
// A file that references no credential lives under `filesDir`
// (<state_dir>/files: it survives a reboot, so a container restarted by
// Docker at boot finds it); one that does lives under the secrets tmpfs
// (`secretsDir`/_files/PROJECT, directories 0700), never on disk. Each is written
// only when its content, mode or owner differ from what is there: the new
// content goes to a temporary file, is fsynced, and replaces the old one by
// rename. A bind mount of a single file holds the inode it was started with,
// so when a consumer follows changes live (on_change = signal or a command)
// the new content — already complete and durable beside it — is copied into
// the mounted inode instead of renaming over it.
//
// Consumers follow a change of content as declared: `recreate` (the digest is
// in the container's config hash, container_config.cpp), `restart` (a start
// mounts the new file), `signal:SIG` or a command run inside the container.
// Which content a consumer has seen is kept per mount in the state (applied
// hashes of kind "file"), so a change is followed exactly once, even across
// a crash between the write and the reload.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/docker/secrets.hpp"

namespace foundationd::docker {

// The host path of file `name` of `project`: <filesDir>/NAME, or
// <secretsDir>/_files/PROJECT/NAME when it holds a secret (the tmpfs is
// shared by every project of the host; a state dir is one project's).
std::string configFileHostPath(const std::string& project, const std::string& name,
                               bool sensitive, const std::string& filesDir,
                               const std::string& secretsDir);

// The bind specs ("host:container:ro") of `c`'s files.
std::vector<std::string> configFileBinds(const config::ContainerSpec& c,
                                         const std::string& project,
                                         const std::string& filesDir,
                                         const std::string& secretsDir);

struct FilesWritten {
  std::set<std::string> changed;                   // written now (content, mode or owner)
  std::map<std::string, std::string> unavailable;  // name -> why (a secret not available)
};

// Renders and writes every file of `spec`. A file whose secret is not
// available (state locked, value not set) is skipped and listed; the others
// are still written. Fails only when the filesystem refuses.
Result<FilesWritten> writeConfigFiles(const config::Spec& spec, const SecretResolver& secrets,
                                      const std::string& filesDir, const std::string& secretsDir);

// One container mounting one file whose changes it follows without being
// recreated (restart, signal, exec).
struct FileConsumer {
  std::string container;
  std::string target;  // path in the container
  std::string file;
  config::OnChange onChange;
  std::string digest;  // of the content it should see (valueDigest)
  std::string key() const { return container + ":" + target; }  // applied-hash name
};
inline constexpr const char* kAppliedKind = "file";

std::vector<FileConsumer> followingConsumers(const config::Spec& spec,
                                             const SecretResolver& secrets);

// Makes `c`'s container see the new content: restart, signal, or the
// command (its exit status must be 0). A container that is not running has
// nothing to follow (it reads the file when it starts): success.
Task<Status> followChange(DockerApi& api, const FileConsumer& c, std::chrono::seconds stopTimeout);

// plan: for each file, whether it would be written ("create", "update",
// "unchanged", or "unavailable" when a secret is missing) and what each
// consumer would do. `applied(name)` returns the recorded digest of an
// applied-hash name (consumer keys, and "=NAME" for the last content written
// of a file holding a secret, which plan cannot read back); may be empty.
// No content, secret or not, is ever in the result.
using AppliedLookup = std::function<std::optional<std::string>(const std::string& name)>;
nlohmann::json planConfigFiles(const config::Spec& spec, const SecretResolver& secrets,
                               const std::string& filesDir, const std::string& secretsDir,
                               const AppliedLookup& applied);

}  // namespace foundationd::docker
