// Interpolation of spec strings (docs/spec.md "Interpolation").
//
//   ${versions.KEY}              replaced by images.KEY of the VERSIONS file
//   ${credentials.NAME.FIELD}    kept as a CredentialRef segment (sensitive)
//   ${forgejo.runner_token}      the forge's runner registration token: a
//                                CredentialRef with runnerToken set (sensitive)
//   $$                           a literal '$'
//   $ followed by anything else  a literal '$'
// Any other ${...}, or an unterminated ${, is an error. Credential references
// are accepted only where the caller says secrets are consumed; elsewhere
// they are an error (a secret in argv or a label would leak).
//
// Pure: every problem goes to Diagnostics, located at the string's value.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "config/diagnostics.hpp"
#include "config/spec.hpp"

namespace foundationd::config {

struct InterpolationScope {
  // images.* of VERSIONS; null when the spec declares no versions file.
  const std::map<std::string, std::string>* versions = nullptr;
  // The versions file was declared but could not be read or parsed: unknown
  // keys are then not reported again (the file's own error says why).
  bool versionsUnavailable = false;
  // Declared credentials and their field names; null = none declared.
  const std::map<std::string, std::set<std::string>>* credentials = nullptr;
  // The spec declares [forgejo.runner_token]: ${forgejo.runner_token} resolves.
  bool runnerToken = false;
};

enum class SecretPolicy { forbidden, allowed };

// `what` names the string for messages, e.g. "\"image\" of [containers.web]".
// Returns nullopt when the text has any error (all of them are reported).
std::optional<Value> interpolate(std::string_view text, const SourceLoc& loc,
                                 const InterpolationScope& scope, SecretPolicy policy,
                                 std::string_view what, Diagnostics& diags);

// Where secrets may be used, for messages.
inline constexpr std::string_view kSecretPlaces =
    "container env and secret_files, [files.*] content, [s3.*] access_key/secret_key, "
    "[postgres.*.roles.*] password, [forgejo.admin] password, [forgejo.webhooks.*] secret and "
    "actions_secrets of [forgejo.repos.*] and [forgejo.orgs.*]";

}  // namespace foundationd::config
