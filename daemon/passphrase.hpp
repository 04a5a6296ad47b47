// Reading the master passphrase (INTERFACES.md): from --passphrase-file (its
// first line), else from the TTY without echo, else one line from stdin when
// stdin is not a TTY. Returned in wiped memory; never logged.
#pragma once

#include <optional>
#include <string>

#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::daemon {

// `prompt` is shown on the TTY only. An empty passphrase is refused.
Result<state::SecretBytes> readPassphrase(const std::optional<std::string>& file,
                                          const std::string& prompt);

// For a new passphrase: on a TTY it is asked twice and must match.
Result<state::SecretBytes> readNewPassphrase(const std::optional<std::string>& file,
                                             const std::string& prompt);

}  // namespace foundationd::daemon
