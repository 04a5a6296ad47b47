// Reading the master passphrase: from --passphrase-file (its
// first line), else from the TTY without echo, else one line from stdin when
// stdin is not a TTY. Returned in wiped memory; never logged.
#pragma once

#include <optional>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "state/secret.hpp"

namespace foundationd::daemon {

// `prompt` is shown on the TTY only. An empty passphrase is refused.
Result<state::SecretBytes> readPassphrase(const std::optional<std::string>& file,
                                          const std::string& prompt);

// The limits of a passphrase. Longer than kMaxPassphraseBytes is refused
// everywhere (never cut); a new one (init, rekey) must also have at least
// kMinPassphraseChars characters, kMinDistinctChars of them different: a
// simple rule an operator can check by eye, met by four random words.
inline constexpr std::size_t kMaxPassphraseBytes = 1024;
inline constexpr std::size_t kMinPassphraseChars = 12;
inline constexpr std::size_t kMinDistinctChars = 5;

// A new passphrase's strength (the rule above), with a message that says it.
Status checkStrength(std::string_view passphrase);

// For a new passphrase: checked against the rule above; on a TTY asked twice,
// on stdin read from two lines, and both must match (a file is taken as is).
Result<state::SecretBytes> readNewPassphrase(const std::optional<std::string>& file,
                                             const std::string& prompt);

// A value a person supplies (`foundationd secret set`), never from argv: on a
// TTY asked twice without echo (both must match); otherwise all of standard
// input, one trailing newline removed (so `printf %s "$V" |` and a file with a
// final newline give the same value). Empty, or more than kMaxSecretBytes,
// is refused.
inline constexpr std::size_t kMaxSecretBytes = 64 * 1024;
Result<state::SecretBytes> readSecretValue(const std::string& prompt);

}  // namespace foundationd::daemon
