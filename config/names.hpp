// Syntax checks for names and small value formats used by the spec and the
// daemon config. Pure functions. Those returning std::optional<std::string>
// give nullopt when valid, else the reason ("must be 3 to 63 characters").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace foundationd::config {

// Docker's name rule for containers, networks and volumes: [a-zA-Z0-9][a-zA-Z0-9_.-]*
bool isDockerName(std::string_view s) noexcept;
// Credential names: [A-Za-z0-9][A-Za-z0-9_-]* (no dots: they separate a reference's parts).
bool isCredentialName(std::string_view s) noexcept;
// [A-Za-z_][A-Za-z0-9_]*: credential fields, environment variable names.
bool isIdentifier(std::string_view s) noexcept;
// PostgreSQL role and database names: an identifier of at most 63 bytes, not pg_*.
std::optional<std::string> postgresNameProblem(std::string_view s);
// S3 bucket naming rules (AWS general purpose buckets).
std::optional<std::string> bucketNameProblem(std::string_view s);
// Forgejo user/organisation names, and repository names.
std::optional<std::string> forgejoNameProblem(std::string_view s);
std::optional<std::string> forgejoRepoNameProblem(std::string_view s);
// The forge's rule for Actions secret and variable names ([A-Za-z_][A-Za-z0-9_]*,
// not GITEA_*/GITHUB_*/FORGEJO_*), written in upper case as the forge stores them.
std::optional<std::string> forgejoActionsNameProblem(std::string_view s);
// A path under a Vault KV mount: relative, no empty, "." or ".." segments.
std::optional<std::string> vaultPathProblem(std::string_view s);
// An absolute path with no "." or ".." segments; `allowRoot` admits "/".
std::optional<std::string> absolutePathProblem(std::string_view s, bool allowRoot = false);
// An http:// or https:// URL with a host.
std::optional<std::string> httpUrlProblem(std::string_view s);

bool isIpv4(std::string_view s);
bool isIpv6(std::string_view s);
// "10.1.0.0/16" or "fd00::/64"; the reason, when invalid, may suggest the network address.
std::optional<std::string> cidrProblem(std::string_view s);

// "1".."65535"; nullopt otherwise.
std::optional<std::uint16_t> parsePort(std::string_view s);

}  // namespace foundationd::config
