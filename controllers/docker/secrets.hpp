// How the Docker controller sees generated credentials.
//
// plan() needs no passphrase: it only asks for a digest of each referenced
// credential field (a keyed hash kept in the state store), so a rotated secret
// changes a container's config hash without the secret being known. apply()
// asks for the plain value, which exists only while the state is unlocked.
// Implementations: NoSecrets (a spec with no [credentials]) and, with the
// credentials controller, one backed by the state store.
#pragma once

#include <optional>
#include <string>

#include "config/spec.hpp"

namespace foundationd::docker {

class SecretResolver {
 public:
  virtual ~SecretResolver() = default;
  // A stable digest of the current value; nullopt when not generated yet.
  virtual std::optional<std::string> digest(const config::CredentialRef& ref) const = 0;
  // The value; nullopt when locked or not generated. Never log it.
  virtual std::optional<std::string> value(const config::CredentialRef& ref) const = 0;
};

// For specs without credentials: nothing resolves.
class NoSecrets final : public SecretResolver {
 public:
  std::optional<std::string> digest(const config::CredentialRef&) const override {
    return std::nullopt;
  }
  std::optional<std::string> value(const config::CredentialRef&) const override {
    return std::nullopt;
  }
};

// `v` with its credential references filled in from `secrets`; nullopt when
// one is not available (locked, or not generated yet), and then `*missing`
// (when given) names it. What was assembled before that is wiped. Used by
// every controller that hands a value to a peer (containers, PostgreSQL
// roles, the forge). Defined in container_config.cpp.
std::optional<std::string> resolveSecrets(const config::Value& v, const SecretResolver& secrets,
                                          config::CredentialRef* missing = nullptr);

}  // namespace foundationd::docker
