#include "state/wrapped_key_json.hpp"

#include <sodium.h>

#include "state/secret.hpp"

namespace foundationd::state {

using json = nlohmann::json;

std::string toBase64(std::string_view bytes) {
  ensureSodium();
  constexpr int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::string> fromBase64(std::string_view text) {
  ensureSodium();
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

json wrappedKeyToJson(const WrappedKey& w) {
  return json{{"version", w.version},
              {"kdf",
               {{"alg", w.kdf.alg}, {"ops_limit", w.kdf.opsLimit}, {"mem_limit", w.kdf.memLimit}}},
              {"salt", toBase64(w.salt)},
              {"ciphertext", toBase64(w.ciphertext)}};
}

Result<WrappedKey> wrappedKeyFromJson(const json& j) {
  const auto bad = [](const std::string& what) {
    return Error::make(ErrorCode::invalid_argument, "wrapped_key: " + what);
  };
  WrappedKey w;
  std::optional<std::string> salt, ciphertext;
  try {
    w.version = static_cast<std::uint8_t>(j.at("version").get<int>());
    const json& kdf = j.at("kdf");
    w.kdf.alg = kdf.at("alg").get<int>();
    w.kdf.opsLimit = kdf.at("ops_limit").get<std::uint64_t>();
    w.kdf.memLimit = kdf.at("mem_limit").get<std::uint64_t>();
    salt = fromBase64(j.at("salt").get<std::string>());
    ciphertext = fromBase64(j.at("ciphertext").get<std::string>());
  } catch (const json::exception& e) {
    return bad(std::string("a field is missing or of the wrong type (") + e.what() + ")");
  }
  if (w.version != kWrapVersion) {
    return bad("version " + std::to_string(w.version) + " (this foundationd reads " +
               std::to_string(kWrapVersion) + ")");
  }
  if (!salt) return bad("salt is not base64");
  if (!ciphertext) return bad("ciphertext is not base64");
  w.salt = std::move(*salt);
  w.ciphertext = std::move(*ciphertext);
  if (auto st = w.kdf.validate(); !st) return bad(st.error().message);
  return w;
}

}  // namespace foundationd::state
