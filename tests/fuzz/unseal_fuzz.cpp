// libFuzzer target: request bodies of POST /v1/unseal and POST /v1/seal (the
// routes whose bodies carry, or may carry, the passphrase). Reaches the
// passphrase parser directly (parseUnsealBody) and both routes through the
// route table with a fake daemon, from every kind of peer and on the webhook
// listener. Must never crash, hang or leak, and:
// - a passphrase is accepted iff the body is a JSON object whose
//   "passphrase" is a non-empty string of at most 4096 bytes, and it arrives
//   intact (compared with nlohmann::json's own reading of the body);
// - an answer is a valid status, an error answer the JSON error document;
// - no answer quotes the passphrase (of 6 bytes or more: shorter ones occur
//   in the fixed message texts by chance).
// Built with -Dfuzz=true.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "api/handlers.hpp"
#include "api/router.hpp"
#include "tests/fakes/fake_daemon.hpp"

namespace {

namespace api = foundationd::api;

const std::string kToken = "0123456789abcdef0123456789abcdef";

// What the body's passphrase is, read independently; nullopt when the body
// must be refused.
std::optional<std::string> expected(const std::string& body) {
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto it = doc.find("passphrase");
  if (it == doc.end() || !it->is_string()) return std::nullopt;
  const std::string& p = it->get_ref<const std::string&>();
  if (p.empty() || p.size() > api::handlers::kMaxPassphraseBytes) return std::nullopt;
  return p;
}

void checkAnswer(const api::Response& r, const std::optional<std::string>& passphrase) {
  if (r.status < 100 || r.status > 599) __builtin_trap();
  if (passphrase && passphrase->size() >= 6 && r.body.find(*passphrase) != std::string::npos) {
    __builtin_trap();
  }
  if (r.status < 400) return;
  const auto doc = nlohmann::json::parse(r.body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("error") || !doc["error"].contains("code") ||
      !doc["error"]["code"].is_string()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static api::Metrics metrics;  // reads /proc: build once
  static const api::ApiToken token = api::ApiToken::fromString(kToken);
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);

  // The parser itself.
  const auto want = expected(body);
  auto parsed = api::handlers::parseUnsealBody(body);
  if (auto* secret = std::get_if<foundationd::state::SecretBytes>(&parsed)) {
    if (!want || secret->view() != *want) __builtin_trap();
  } else {
    const api::Response& r = std::get<api::Response>(parsed);
    if (want || r.status != 400) __builtin_trap();
    checkAnswer(r, std::nullopt);
  }

  // Both routes through the route table: peer kind, token, webhook listener.
  foundationd::testing::FakeDaemon daemon;
  daemon.passphrase = want.value_or("fuzz-passphrase");
  api::Router router(daemon, token, metrics, {});
  api::Request req;
  req.method = "POST";
  req.target = (mode & 1) ? "/v1/seal" : "/v1/unseal";
  req.peer = (mode >> 1) % 3 == 0   ? api::PeerKind::unix_socket
             : (mode >> 1) % 3 == 1 ? api::PeerKind::loopback
                                    : api::PeerKind::remote;
  req.webhookListener = (mode & 0x40) != 0;
  if (mode & 0x80) req.headers.emplace_back("Authorization", "Bearer " + kToken);
  req.body = body;
  boost::asio::io_context io;
  api::Response res;
  bool done = false;
  boost::asio::co_spawn(io, router.handle(req), [&](std::exception_ptr e, api::Response r) {
    if (e) __builtin_trap();  // handle() must never throw
    res = std::move(r);
    done = true;
  });
  io.run();
  if (!done) __builtin_trap();
  checkAnswer(res, want);
  // Remote peers and the webhook listener never reach the daemon.
  const bool reachable = !req.webhookListener && req.peer != api::PeerKind::remote;
  if (!reachable && (daemon.unsealCalls != 0 || daemon.sealCalls != 0)) __builtin_trap();
  if (req.target == "/v1/unseal" && reachable && want && daemon.unsealCalls != 1) __builtin_trap();
  if (daemon.unsealCalls == 1 && (!want || daemon.lastPassphrase != *want)) __builtin_trap();
  return 0;
}
