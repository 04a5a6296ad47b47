// The JSON form of a WrappedKey, shared by every file that carries one beside
// what it seals (the Vault keys file of `export-vault-keys`, the recovery
// bundle of `backup export-recovery`), and the base64 those files use for
// binary fields. A WrappedKey is not secret (sealing.hpp): only the data key
// it wraps is, and that needs the passphrase.
//
//   {"version": 1, "kdf": {"alg": 2, "ops_limit": 3, "mem_limit": 67108864},
//    "salt": "<base64>", "ciphertext": "<base64>"}
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "state/sealing.hpp"

namespace foundationd::state {

// Standard base64 (RFC 4648 section 4, padded), through libsodium.
std::string toBase64(std::string_view bytes);
// The bytes, or nullopt for text that is not standard padded base64.
std::optional<std::string> fromBase64(std::string_view text);

nlohmann::json wrappedKeyToJson(const WrappedKey& wrapped);

// A WrappedKey from its JSON form. invalid_argument (the message names the
// field) for a missing field, a wrong type, bad base64 or KDF parameters out
// of range; nothing is derived here.
Result<WrappedKey> wrappedKeyFromJson(const nlohmann::json& j);

}  // namespace foundationd::state
