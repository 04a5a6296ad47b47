#include "state/sealing.hpp"

#include <stdexcept>
#include <string>

#include <doctest/doctest.h>
#include <sodium.h>

using namespace foundationd;
using namespace foundationd::state;

namespace {

// doctest cannot print ErrorCode (ADL finds foundationd::toString), so
// compare its name.
template <class R>
std::string codeOf(const R& r) {
  return foundationd::toString(r.error().code);
}

constexpr KdfProfile kFast = KdfProfile::interactive;
constexpr std::string_view kId = "credential/postgres-superuser/password/v3";

}  // namespace

TEST_CASE("KDF profiles map to libsodium's Argon2id constants") {
  KdfParams i = KdfParams::forProfile(KdfProfile::interactive);
  KdfParams m = KdfParams::forProfile(KdfProfile::moderate);
  KdfParams s = KdfParams::forProfile(KdfProfile::sensitive);
  CHECK(i.alg == crypto_pwhash_ALG_ARGON2ID13);
  CHECK(i.opsLimit == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE);
  CHECK(i.memLimit == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
  CHECK(m.opsLimit == crypto_pwhash_argon2id_OPSLIMIT_MODERATE);
  CHECK(m.memLimit == crypto_pwhash_argon2id_MEMLIMIT_MODERATE);
  CHECK(s.opsLimit == crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE);
  CHECK(s.memLimit == 1024ull * 1024 * 1024);
  CHECK(i.validate().ok());
  CHECK(s.validate().ok());

  KdfParams bad = i;
  bad.alg = crypto_pwhash_ALG_ARGON2I13;
  CHECK(codeOf(bad.validate()) == "invalid_argument");
  bad = i;
  bad.memLimit = 1;
  CHECK_FALSE(bad.validate().ok());
  bad = i;
  bad.opsLimit = 0;
  CHECK_FALSE(bad.validate().ok());
}

TEST_CASE("KDF profile names parse") {
  CHECK((*parseKdfProfile("interactive") == KdfProfile::interactive));
  CHECK((*parseKdfProfile("moderate") == KdfProfile::moderate));
  CHECK((*parseKdfProfile("sensitive") == KdfProfile::sensitive));
  auto bad = parseKdfProfile("paranoid");
  REQUIRE_FALSE(bad.ok());
  CHECK(codeOf(bad) == "invalid_argument");
  CHECK(std::string(toString(KdfProfile::moderate)) == "moderate");
}

TEST_CASE("deriveKek is deterministic in passphrase, salt and params") {
  KdfParams p = KdfParams::forProfile(kFast);
  std::string salt(kKdfSaltBytes, 'a');
  auto a = deriveKek("correct horse", p, salt);
  auto b = deriveKek("correct horse", p, salt);
  auto c = deriveKek("correct horse", p, std::string(kKdfSaltBytes, 'b'));
  auto d = deriveKek("correct horsf", p, salt);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  REQUIRE(d.ok());
  CHECK(a->size() == kDataKeyBytes);
  CHECK(*a == *b);
  CHECK_FALSE(*a == *c);
  CHECK_FALSE(*a == *d);
  CHECK(codeOf(deriveKek("x", p, "short")) == "invalid_argument");
}

TEST_CASE("seal/open round trips") {
  SecretBytes key = newDataKey();
  for (std::string plaintext : {std::string(), std::string("s3cr3t"), std::string("a\0b\xff", 4),
                                std::string(100000, 'x')}) {
    auto sealed = seal(key, kId, plaintext);
    REQUIRE(sealed.ok());
    CHECK(sealed->size() == 1 + kNonceBytes + plaintext.size() + 16);
    CHECK(static_cast<std::uint8_t>((*sealed)[0]) == kSealVersion);
    auto opened = open(key, kId, *sealed);
    REQUIRE(opened.ok());
    CHECK(opened->equals(plaintext));
  }
}

TEST_CASE("sealing twice uses fresh nonces and hides the plaintext") {
  SecretBytes key = newDataKey();
  const std::string plaintext = "correct-horse-battery-staple";
  auto a = seal(key, kId, plaintext);
  auto b = seal(key, kId, plaintext);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  CHECK(a->substr(1, kNonceBytes) != b->substr(1, kNonceBytes));
  CHECK(a->find(plaintext) == std::string::npos);
}

TEST_CASE("every flipped byte of a sealed blob is detected") {
  SecretBytes key = newDataKey();
  auto sealed = seal(key, kId, "postgres-password");
  REQUIRE(sealed.ok());
  // Covers the version byte, every nonce byte, the ciphertext and the tag.
  for (std::size_t i = 0; i < sealed->size(); ++i) {
    for (unsigned char bit : {0x01, 0x80}) {
      std::string tampered = *sealed;
      tampered[i] = static_cast<char>(tampered[i] ^ bit);
      auto opened = open(key, kId, tampered);
      REQUIRE_FALSE(opened.ok());
      CHECK(codeOf(opened) == "internal");
      CHECK(opened.error().message.find("postgres-password") == std::string::npos);
    }
  }
}

TEST_CASE("truncated or extended blobs are rejected") {
  SecretBytes key = newDataKey();
  auto sealed = seal(key, kId, "value");
  REQUIRE(sealed.ok());
  for (std::size_t n = 0; n < sealed->size(); ++n) {
    CHECK_FALSE(open(key, kId, sealed->substr(0, n)).ok());
  }
  CHECK_FALSE(open(key, kId, *sealed + "x").ok());
}

TEST_CASE("a blob moved to another id does not open") {
  SecretBytes key = newDataKey();
  auto sealed = seal(key, "credential/a/password/v1", "value");
  REQUIRE(sealed.ok());
  CHECK(open(key, "credential/a/password/v1", *sealed).ok());
  CHECK_FALSE(open(key, "credential/b/password/v1", *sealed).ok());
  CHECK_FALSE(open(key, "credential/a/password/v2", *sealed).ok());
  CHECK_FALSE(open(key, "credential/a/username/v1", *sealed).ok());
  CHECK_FALSE(open(key, "", *sealed).ok());
}

TEST_CASE("a blob does not open under another key") {
  SecretBytes k1 = newDataKey();
  SecretBytes k2 = newDataKey();
  auto sealed = seal(k1, kId, "value");
  REQUIRE(sealed.ok());
  CHECK_FALSE(open(k2, kId, *sealed).ok());
  SecretBytes shortKey = SecretBytes::random(16);
  CHECK_FALSE(seal(shortKey, kId, "v").ok());
  CHECK_FALSE(open(shortKey, kId, *sealed).ok());
}

TEST_CASE("wrap/unwrap: the right passphrase recovers the data key") {
  SecretBytes dataKey = newDataKey();
  auto wrapped = wrapKey(dataKey, "correct horse", kFast);
  REQUIRE(wrapped.ok());
  CHECK(wrapped->version == kWrapVersion);
  CHECK(wrapped->salt.size() == kKdfSaltBytes);
  CHECK(wrapped->kdf == KdfParams::forProfile(kFast));
  CHECK(wrapped->ciphertext.size() == kNonceBytes + kDataKeyBytes + 16);
  CHECK(wrapped->ciphertext.find(std::string(dataKey.view())) == std::string::npos);

  auto unwrapped = unwrapKey(*wrapped, "correct horse");
  REQUIRE(unwrapped.ok());
  CHECK(*unwrapped == dataKey);

  auto again = wrapKey(dataKey, "correct horse", kFast);
  REQUIRE(again.ok());
  CHECK(again->salt != wrapped->salt);  // a new salt every time
}

TEST_CASE("wrap/unwrap: a wrong passphrase is a stable error") {
  SecretBytes dataKey = newDataKey();
  auto wrapped = wrapKey(dataKey, "correct horse", kFast);
  REQUIRE(wrapped.ok());
  for (std::string_view wrong : {"correct hors", "correct horse ", "Correct horse", ""}) {
    auto r = unwrapKey(*wrapped, wrong);
    REQUIRE_FALSE(r.ok());
    CHECK(codeOf(r) == "wrong_passphrase");
    CHECK(r.error().message == "wrong passphrase");
    CHECK(std::string(toString(r.error().code)) == "wrong_passphrase");
  }
}

TEST_CASE("wrap/unwrap: tampered parameters do not unwrap") {
  SecretBytes dataKey = newDataKey();
  auto wrapped = wrapKey(dataKey, "pw", kFast);
  REQUIRE(wrapped.ok());
  WrappedKey w = *wrapped;
  w.kdf.opsLimit += 1;
  CHECK_FALSE(unwrapKey(w, "pw").ok());
  w = *wrapped;
  w.salt[0] = static_cast<char>(w.salt[0] ^ 1);
  CHECK_FALSE(unwrapKey(w, "pw").ok());
  w = *wrapped;
  w.ciphertext[30] = static_cast<char>(w.ciphertext[30] ^ 1);
  CHECK(codeOf(unwrapKey(w, "pw")) == "wrong_passphrase");
  w = *wrapped;
  w.version = 2;
  CHECK(codeOf(unwrapKey(w, "pw")) == "invalid_argument");
  w = *wrapped;
  w.kdf.alg = 0;
  CHECK(codeOf(unwrapKey(w, "pw")) == "invalid_argument");
}

TEST_CASE("wrapKey refuses an empty passphrase") {
  auto r = wrapKey(newDataKey(), "", kFast);
  REQUIRE_FALSE(r.ok());
  CHECK(codeOf(r) == "invalid_argument");
}

TEST_CASE("rewrap: the new passphrase unwraps the same key, the old one no longer does") {
  SecretBytes dataKey = newDataKey();
  auto wrapped = wrapKey(dataKey, "old", kFast);
  REQUIRE(wrapped.ok());
  auto sealed = seal(dataKey, kId, "value");
  REQUIRE(sealed.ok());

  CHECK(codeOf(rewrap(*wrapped, "wrong", "new", kFast)) == "wrong_passphrase");

  auto rewrapped = rewrap(*wrapped, "old", "new", kFast);
  REQUIRE(rewrapped.ok());
  CHECK(rewrapped->salt != wrapped->salt);
  CHECK(codeOf(unwrapKey(*rewrapped, "old")) == "wrong_passphrase");
  auto key = unwrapKey(*rewrapped, "new");
  REQUIRE(key.ok());
  CHECK(*key == dataKey);
  auto opened = open(*key, kId, *sealed);
  REQUIRE(opened.ok());
  CHECK(opened->view() == "value");
}

TEST_CASE("UnlockedKey seals, opens and forgets on lock") {
  SecretBytes raw = newDataKey();
  const std::string expectedFingerprint = keyFingerprint(raw);
  UnlockedKey key(SecretBytes::copyOf(raw.view()));
  CHECK_FALSE(key.locked());
  CHECK(key.fingerprint() == expectedFingerprint);
  CHECK(key.fingerprint().size() == 64);
  CHECK(key.fingerprint().find(std::string(raw.view())) == std::string::npos);
  CHECK(UnlockedKey(newDataKey()).fingerprint() != expectedFingerprint);

  auto sealed = key.seal(kId, "value");
  REQUIRE(sealed.ok());
  auto opened = key.open(kId, *sealed);
  REQUIRE(opened.ok());
  CHECK(opened->view() == "value");

  key.lock();
  CHECK(key.locked());
  CHECK(key.dataKey().empty());
  CHECK(key.fingerprint().empty());
  CHECK(codeOf(key.seal(kId, "value")) == "unavailable");
  CHECK(codeOf(key.open(kId, *sealed)) == "unavailable");

  UnlockedKey none;
  CHECK(none.locked());
  CHECK_THROWS_AS(UnlockedKey(SecretBytes::random(16)), std::invalid_argument);
}

// state/wrapped_key_json: the one JSON form of a WrappedKey (the Vault keys
// file, the recovery bundle).
#include "state/wrapped_key_json.hpp"

TEST_CASE("a WrappedKey round-trips through its JSON form and still unwraps") {
  auto key = newDataKey();
  auto wrapped = wrapKey(key, "correct horse", kFast);
  REQUIRE(wrapped);
  const nlohmann::json j = wrappedKeyToJson(*wrapped);
  CHECK(j.at("salt").get<std::string>() == toBase64(wrapped->salt));
  auto back = wrappedKeyFromJson(j);
  REQUIRE(back);
  CHECK(*back == *wrapped);
  auto opened = unwrapKey(*back, "correct horse");
  REQUIRE(opened);
  CHECK(opened->view() == key.view());
}

TEST_CASE("a malformed WrappedKey JSON is refused and names what is wrong") {
  auto wrapped = wrapKey(newDataKey(), "p", kFast);
  REQUIRE(wrapped);
  const nlohmann::json good = wrappedKeyToJson(*wrapped);
  auto refused = [](const nlohmann::json& j) {
    auto r = wrappedKeyFromJson(j);
    REQUIRE_FALSE(r);
    CHECK(codeOf(r) == "invalid_argument");
    return r.error().message;
  };
  nlohmann::json j = good;
  j.erase("salt");
  CHECK(refused(j).find("salt") != std::string::npos);
  j = good;
  j["ciphertext"] = "not base64!";
  CHECK(refused(j).find("ciphertext is not base64") != std::string::npos);
  j = good;
  j["version"] = 2;
  CHECK(refused(j).find("version 2") != std::string::npos);
  j = good;
  j["kdf"]["mem_limit"] = 1;  // below Argon2id's minimum
  refused(j);
  CHECK_FALSE(wrappedKeyFromJson(nlohmann::json()));
  CHECK_FALSE(wrappedKeyFromJson(nlohmann::json::array()));
}

TEST_CASE("base64 is the standard padded alphabet and rejects anything else") {
  CHECK(toBase64("") == "");
  CHECK(toBase64("f") == "Zg==");
  CHECK(toBase64(std::string("\xff\xfe", 2)) == "//4=");
  CHECK(fromBase64("//4=") == std::string("\xff\xfe", 2));
  CHECK_FALSE(fromBase64("__4=").has_value());  // base64url is another variant
  CHECK_FALSE(fromBase64("Zg=").has_value());
}
