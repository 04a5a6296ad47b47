// SCRAM-SHA-256 password verifiers as PostgreSQL stores them in pg_authid:
//   SCRAM-SHA-256$<iterations>:<salt, base64>$<StoredKey, base64>:<ServerKey, base64>
// (RFC 5802/7677; PostgreSQL's src/common/scram-common.c). foundationd uses
// them two ways, so that a role's password never travels in clear text:
// - to compare: the stored verifier is recomputed from the desired password
//   with the verifier's own salt and iteration count; equal keys mean the
//   role's password is the desired one, without the password being read;
// - to set: ALTER ROLE ... PASSWORD '<verifier>' (PostgreSQL stores an
//   already-encrypted password as given).
// PBKDF2-HMAC-SHA256 is built on libsodium's HMAC-SHA256 (libsodium has no
// PBKDF2). Only printable-ASCII passwords are handled: PostgreSQL SASLprep-
// normalises others, which this code does not reproduce (scramApplicable).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace foundationd::postgres {

inline constexpr int kScramIterations = 4096;  // PostgreSQL's default

// True when the verifier computed here is exactly PostgreSQL's: the password
// is printable ASCII (SASLprep leaves such a string unchanged).
bool scramApplicable(std::string_view password) noexcept;

// A verifier for `password` with `salt` (raw bytes) and `iterations`.
std::string scramVerifier(std::string_view password, std::string_view salt,
                          int iterations = kScramIterations);

// A verifier with a fresh random 16-byte salt.
std::string newScramVerifier(std::string_view password);

// Whether `stored` (a pg_authid.rolpassword) is a SCRAM verifier of
// `password`; nullopt when `stored` is not a SCRAM-SHA-256 verifier (md5,
// empty, malformed) and so cannot be compared.
std::optional<bool> scramMatches(std::string_view password, std::string_view stored);

}  // namespace foundationd::postgres
