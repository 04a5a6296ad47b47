// Credential generators: random values for `[credentials]` fields (SPEC.md).
//
// Contract:
// - Randomness is libsodium's CSPRNG (randombytes_buf / randombytes_uniform,
//   the latter unbiased for alphabets that are not a power of two).
// - The value is returned in SecretBytes (guarded, wiped memory); scratch
//   buffers are SecretBytes too. Thread-safe; no I/O.
// - Outputs:
//     password  `length` characters, each uniform over [A-Za-z0-9], plus
//               kPasswordSymbols when `symbols` (no class is forced: every
//               character is drawn independently, which maximises entropy)
//     hex       `bytes` random bytes as 2*bytes lowercase hex digits
//     base64url `bytes` random bytes, RFC 4648 §5 alphabet, no padding
//     uuid      an RFC 4122 version-4 UUID, lowercase, 8-4-4-4-12
// - validate() says whether a Generator is in range; generate() on an
//   invalid one throws std::invalid_argument (spec validation runs first, so
//   that would be a bug).
#pragma once

#include <string_view>

#include "common/result.hpp"
#include "config/spec.hpp"
#include "state/secret.hpp"

namespace foundationd::credentials {

// The punctuation a password with `symbols = true` may contain: RFC 3986's
// unreserved marks plus "!*+=", all of which are legal as-is in a URL's
// userinfo, and need no quoting in env files, JSON, TOML, SQL string
// literals, INI values or `${...}` interpolation (no quotes, backslash,
// backtick, '$', '#', '%', ';', '&', '@', ':', '/', brackets or whitespace).
inline constexpr std::string_view kPasswordSymbols = "!*+-.=_~";

inline constexpr int kMaxPasswordLength = 4096;
inline constexpr int kMaxRandomBytes = 4096;

// invalid_argument when `length`/`bytes` is outside 1..4096 for its kind.
Status validate(const config::Generator& generator);

state::SecretBytes generate(const config::Generator& generator);

}  // namespace foundationd::credentials
