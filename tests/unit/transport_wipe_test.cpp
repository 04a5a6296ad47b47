// Secrets sent through the transports leave no copy in freed memory:
// UnixHttpClient with HttpRequest::sensitive (the CLI's unseal, secret set,
// rotate: a passphrase, a secret value, the API token) and peerRequest
// (libcurl: Vault's unseal keys, root token, init answer).
//
// The seam: this test binary replaces the global operator new/delete. New
// blocks start zeroed; while the probe is armed, every block freed is
// searched for the marker strings before it goes back to malloc. A hit is a
// copy of a secret that was freed unzeroed. Each case also runs the same
// exchange the unprotected way (a plain request) and checks that the probe
// does see the marker there: the probe cannot pass by looking nowhere.
//
// The servers run in a forked child, so their own copies of what they
// receive are not in this process's heap.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <optional>
#include <string>

#include <arpa/inet.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "controllers/source/process.hpp"
#include "controllers/transport/http_client.hpp"
#include "controllers/transport/unix_http_client.hpp"

// --- the probe: replaced global operator new/delete ------------------------

namespace {

std::atomic<bool> probeArmed{false};
std::atomic<int> probeHits[4];
// The markers (in read-only data: never freed). The first three are long
// enough not to be in any short-string buffer; the fourth is short enough to
// be in one (a std::string keeps up to 15 bytes inside itself).
constexpr const char* kMarkers[4] = {
    "PASSPHRASE-7f3a9c2e41d8b6a05e9f1c3d2b7a8e6f",
    "APITOKEN-c0ffee5eed1234567890abcdefabcdef",
    "ANSWER-ROOT-TOKEN-9d8c7b6a5f4e3d2c1b0a99887766",
    "PW-5e1a9c7d3b",
};

void probe(void* p) noexcept {
  if (p == nullptr || !probeArmed.load(std::memory_order_relaxed)) return;
  const std::size_t n = malloc_usable_size(p);
  for (int i = 0; i < 4; ++i) {
    // A short string moved from keeps all but its first byte: the short
    // marker is looked for without its first three.
    const char* m = i == 3 ? kMarkers[3] + 3 : kMarkers[i];
    if (memmem(p, n, m, std::strlen(m)) != nullptr) {
      probeHits[i].fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void* zeroedNew(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, malloc_usable_size(p));
  return p;
}

void* zeroedAlignedNew(std::size_t n, std::align_val_t al) {
  const auto a = static_cast<std::size_t>(al);
  void* p = std::aligned_alloc(a, ((n == 0 ? 1 : n) + a - 1) / a * a);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, malloc_usable_size(p));
  return p;
}

}  // namespace

void* operator new(std::size_t n) {
  return zeroedNew(n);
}
void* operator new[](std::size_t n) {
  return zeroedNew(n);
}
void* operator new(std::size_t n, std::align_val_t al) {
  return zeroedAlignedNew(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al) {
  return zeroedAlignedNew(n, al);
}
void operator delete(void* p) noexcept {
  probe(p);
  std::free(p);
}
void operator delete[](void* p) noexcept {
  probe(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  probe(p);
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  probe(p);
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  probe(p);
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  probe(p);
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  probe(p);
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  probe(p);
  std::free(p);
}

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using foundationd::transport::HttpRequest;
using foundationd::transport::HttpResponse;
using foundationd::transport::UnixHttpClient;

struct Hits {
  int passphrase = 0, token = 0, answer = 0, shortSecret = 0;
};

void arm() {
  for (auto& h : probeHits) h.store(0);
  probeArmed.store(true);
}
Hits disarm() {
  probeArmed.store(false);
  return Hits{probeHits[0].load(), probeHits[1].load(), probeHits[2].load(), probeHits[3].load()};
}

// The child: answers one request on `listenFd` with 200 and a body holding
// the answer marker; exits 0 only if the request carried both markers.
template <class Acceptor, class Socket>
[[noreturn]] void serveOnce(int listenFd, typename Acceptor::protocol_type proto,
                            std::size_t answerPadding) {
  asio::io_context io;
  Acceptor acceptor(io, proto, listenFd);
  Socket socket(io);
  acceptor.accept(socket);
  boost::beast::flat_buffer buffer;
  bhttp::request<bhttp::string_body> req;
  boost::system::error_code ec;
  bhttp::read(socket, buffer, req, ec);
  const bool gotSecrets =
      !ec && req.body().find(kMarkers[0]) != std::string::npos &&
      std::string(req[bhttp::field::authorization]).find(kMarkers[1]) != std::string::npos;
  bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  // The marker first and last, padding between: a body that arrives in
  // several pieces, the marker in the first and in the last.
  res.body() = std::string("{\"root_token\":\"") + kMarkers[2] + "\",\"pad\":\"" +
               std::string(answerPadding, 'x') + "\",\"again\":\"" + kMarkers[2] + "\"}";
  res.keep_alive(true);
  res.prepare_payload();
  bhttp::write(socket, res, ec);
  // Keep the connection open until the client closed it.
  char byte;
  while (::read(socket.native_handle(), &byte, 1) > 0) {
  }
  std::_Exit(gotSecrets ? 0 : 1);
}

int exitStatusOf(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The request as the CLI builds it: both markers, built in place so that
// no unzeroed temporary copy is freed while the probe is armed.
template <class Request>
void fillSecrets(Request& body, std::string& authorization) {
  body.reserve(64);
  body.append("{\"passphrase\":\"").append(kMarkers[0]).append("\"}");
  authorization.reserve(64);
  authorization.append("Bearer ").append(kMarkers[1]);
}

// One exchange over a Unix socket with a forked server; the probe's hits.
Hits unixExchange(bool sensitive) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "fd-wipe-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const std::string path = tmpl + "/api.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    serveOnce<asio::local::stream_protocol::acceptor, asio::local::stream_protocol::socket>(
        fd, asio::local::stream_protocol(), 40000);
  }
  ::close(fd);

  Hits hits;
  {
    HttpRequest req;
    req.method = "POST";
    req.target = "/v1/unseal";
    req.sensitive = sensitive;
    fillSecrets(req.body, req.headers["Authorization"]);
    arm();
    {
      asio::io_context io;
      UnixHttpClient client(io.get_executor(), path);
      std::optional<foundationd::Result<HttpResponse>> out;
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> { out.emplace(co_await client.request(std::move(req))); },
          [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
          });
      io.run();
      REQUIRE(out.has_value());
      REQUIRE(out->ok());
      CHECK((*out)->status == 200);
      // The answer's body is the caller's own copy: the caller wipes it.
      CHECK((*out)->body.find(kMarkers[2]) != std::string::npos);
      sodium_memzero((*out)->body.data(), (*out)->body.size());
    }  // the client, its pool and the io_context are freed here
    hits = disarm();
  }
  CHECK(exitStatusOf(child) == 0);  // the server did receive both secrets
  std::filesystem::remove_all(tmpl);
  return hits;
}

}  // namespace

TEST_CASE("sensitive Unix socket requests leave no passphrase, token or answer in freed memory") {
  SUBCASE("the probe sees the copies of a plain request") {
    const Hits plain = unixExchange(false);
    CHECK(plain.passphrase > 0);
    CHECK(plain.token > 0);
    CHECK(plain.answer > 0);
  }
  SUBCASE("sensitive: every copy zeroed before it is freed") {
    const Hits sensitive = unixExchange(true);
    CHECK(sensitive.passphrase == 0);
    CHECK(sensitive.token == 0);
    CHECK(sensitive.answer == 0);
  }
}

TEST_CASE("peerRequest: the answer's growing buffers and libcurl's own copies are zeroed") {
  // A TCP server in a child process, like Vault answering sys/init.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A large answer: it reaches libcurl in several pieces, so the body grows.
    serveOnce<asio::ip::tcp::acceptor, asio::ip::tcp::socket>(fd, asio::ip::tcp::v4(), 300000);
  }
  ::close(fd);

  foundationd::transport::PeerRequest req;
  req.method = "PUT";
  req.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1/sys/init";
  std::string authorization;
  fillSecrets(req.body, authorization);
  req.headers.emplace_back("Authorization", std::move(authorization));
  const std::size_t wipedBefore = foundationd::transport::curlWipedBytes();
  arm();
  {
    auto resp = foundationd::transport::peerRequest(req);
    REQUIRE(resp.ok());
    CHECK(resp->status == 200);
    CHECK(resp->body.find(kMarkers[2]) != std::string::npos);
    sodium_memzero(resp->body.data(), resp->body.size());
  }
  const Hits hits = disarm();
  CHECK(exitStatusOf(child) == 0);
  // No growing copy of the answer was freed unzeroed...
  CHECK(hits.answer == 0);
  // ...nor a copy of the header line (peerRequest's own, before libcurl's).
  CHECK(hits.token == 0);
  // libcurl's blocks (its copy of the header, the request it wrote, its
  // receive buffer: 16 KiB by default) went through the zeroing free.
  CHECK(foundationd::transport::curlWipedBytes() - wipedBefore >= 16384);
  sodium_memzero(req.body.data(), req.body.size());
  sodium_memzero(req.headers[0].second.data(), req.headers[0].second.size());
}

// A child's environment (controllers/source/process.hpp): restic's repository
// password and keys, git's token. The same probe, no peer needed.
namespace {

// Everything a caller does with one: build it, let it grow (the vector moves
// its elements), copy it, assign over it (copy and move), clear it, destroy it.
// A short value lives inside its std::string, so inside the vector's own
// block: growing the vector moves it to a new block and frees the old one.
template <class Env>
Hits envChurn() {
  arm();
  {
    Env env;
    env.emplace_back("RESTIC_PASSWORD", kMarkers[0]);
    env.emplace_back("PGPASSWORD", kMarkers[3]);
    for (int i = 0; i < 20; ++i) env.emplace_back("V" + std::to_string(i), "x");
    Env copy = env;
    Env assigned;
    assigned.emplace_back("RESTIC_PASSWORD", kMarkers[0]);
    assigned = Env{{"K", "a value that is not a secret, long enough for the heap"}};
    Env copyAssigned;
    copyAssigned.emplace_back("AWS_SECRET_ACCESS_KEY", kMarkers[0]);
    copyAssigned = copy;
    Env moved = std::move(copy);
    env = std::move(moved);
    Env cleared;
    cleared.emplace_back("RESTIC_PASSWORD", kMarkers[0]);
    cleared.clear();
  }
  return disarm();
}

}  // namespace

TEST_CASE("a SecretEnv leaves no copy of its values in freed memory") {
  using Plain = std::vector<std::pair<std::string, std::string>>;
  const Hits plain = envChurn<Plain>();
  CHECK(plain.passphrase > 0);   // the probe sees a plain vector's copies
  CHECK(plain.shortSecret > 0);  // and the short value moved when it grew
  const Hits secret = envChurn<foundationd::source::SecretEnv>();
  CHECK(secret.passphrase == 0);
  CHECK(secret.shortSecret == 0);
}
