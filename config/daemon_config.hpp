// The daemon's own config: /etc/foundationd/foundationd.toml (INTERFACES.md).
// Every value has a default; DaemonConfig{} is what `serve` runs with when
// there is no file. Unknown keys and bad values are located errors.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/spec.hpp"
#include "config/units.hpp"

namespace foundationd::config {

struct DaemonConfig {
  std::string stateDir = "/var/lib/foundationd";
  std::vector<std::string> apiListen = {"unix:/run/foundationd/api.sock", "tcp:127.0.0.1:9420"};
  // Addresses that serve the webhook routes only (for the forge to reach);
  // none by default. No address may be in both lists.
  std::vector<std::string> apiWebhookListen;
  std::string apiTokenFile = "/etc/foundationd/api-token";
  std::string dockerSocket = "/var/run/docker.sock";

  struct Source {
    std::string kind = "file";  // file | git
    std::string path = "/srv/foundation/foundation.toml";  // kind = file
    std::string url;                                       // kind = git
    std::string branch = "main";
    std::string specPath = "foundation.toml";
    Duration pollInterval = std::chrono::minutes(5);
    std::optional<CredentialRef> token;
    std::optional<CredentialRef> webhookSecret;
    bool allowPlainHttp = false;  // a token over http:// to a host other than loopback
    // Signed commits (docs/source.md "Trust"): git's allowed_signers file of
    // SSH signing keys, outside the repository; with require_signed the tip
    // of the branch must carry a good signature by one of them to be applied.
    std::string allowedSigners;  // "" = none
    bool requireSigned = false;  // true when allowed_signers is set, unless said otherwise
    // Automatic rollback: how long a new revision is watched after it is
    // applied; 0 = off.
    Duration settle = std::chrono::seconds(0);
  } source;

  Duration resyncInterval = std::chrono::seconds(60);
  std::string kdf = "moderate";  // interactive | moderate | sensitive
  bool keepKeyInMemory = true;
};

struct DaemonConfigResult {
  std::optional<DaemonConfig> config;  // set iff no error
  Diagnostics diagnostics;
};

// A file that cannot be read is an error: a caller that wants the defaults
// when no file exists checks for it first. Git-only keys on a file source
// (and `path` on a git source) are warnings, not errors (docs/spec.md).
DaemonConfigResult loadDaemonConfigFile(const std::string& path);
DaemonConfigResult loadDaemonConfigText(const std::string& text, const std::string& fileName);

}  // namespace foundationd::config
