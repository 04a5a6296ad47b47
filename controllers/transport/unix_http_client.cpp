// UnixHttpClient: Boost.Beast HTTP/1.1 over AF_UNIX, C++20 coroutines.
// Contract in unix_http_client.hpp.
#include "controllers/transport/unix_http_client.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <sodium.h>

#include "state/wipe.hpp"
#include "state/wiping_allocator.hpp"

namespace foundationd::transport {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using local = asio::local::stream_protocol;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kStreamBufferBytes = 16 * 1024;
constexpr std::size_t kHeaderLimitBytes = 64 * 1024;

using Clock = std::chrono::steady_clock;
using ChunkFn = std::function<bool(std::string_view)>;
using HeadFn = std::function<bool(const HttpResponse&)>;

struct Connection {
  explicit Connection(const asio::any_io_executor& ex) : stream(ex) {}
  beast::basic_stream<local> stream;
  beast::flat_buffer buffer;  // bytes read past the last message stay here
  Clock::time_point idleSince{};
};

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool isDisconnect(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
         ec == asio::error::operation_aborted || ec == asio::error::not_connected ||
         ec == asio::error::bad_descriptor;
}

// The server closed an idle connection (or sent something unsolicited) if a
// non-blocking peek does not report "would block".
bool stillUsable(Connection& c) {
  auto& sock = c.stream.socket();
  if (!sock.is_open() || c.buffer.size() != 0) return false;
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  if (ec) return false;
  char byte = 0;
  sock.receive(asio::buffer(&byte, 1), local::socket::message_peek, ec);
  const bool open = ec == asio::error::would_block || ec == asio::error::try_again;
  sock.non_blocking(false, ec);
  return open && !ec;
}

// `timeout` from now, saturating; time_point::max() stands for no deadline.
Clock::time_point deadlineAfter(std::chrono::milliseconds timeout) {
  const auto now = Clock::now();
  if (timeout == HttpRequest::kNoTimeout ||
      timeout >=
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now)) {
    return Clock::time_point::max();
  }
  return now + timeout;
}

template <class Stream>
void arm(Stream& stream, Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) {
    stream.expires_never();
  } else {
    stream.expires_at(deadline);
  }
}

using state::wipe;

// For HttpRequest::sensitive: Beast's body, header fields and read buffer
// in memory that is zeroed when freed.
using WipingAlloc = state::WipingAllocator<char>;
using WipingBody = http::basic_string_body<char, std::char_traits<char>, WipingAlloc>;
using WipingFields = http::basic_fields<WipingAlloc>;
using WipingRequest = http::request<WipingBody, WipingFields>;
using WipingBuffer = beast::basic_flat_buffer<WipingAlloc>;

template <class Message>
void fillMessage(Message& msg, const HttpRequest& req) {
  if (auto verb = http::string_to_verb(req.method); verb != http::verb::unknown) {
    msg.method(verb);
  } else {
    msg.method_string(req.method);
  }
  msg.target(req.target);
  msg.version(11);
  msg.set(http::field::host, "docker");  // the Engine requires a Host header
  msg.set(http::field::user_agent, "foundationd");
  for (const auto& [name, value] : req.headers) msg.set(name, value);
  if (!req.body.empty()) {
    msg.set(http::field::content_type, req.contentType);
    msg.body().assign(req.body.data(), req.body.size());
  }
  msg.prepare_payload();
}

http::request<http::string_body> makeMessage(const HttpRequest& req) {
  http::request<http::string_body> msg;
  fillMessage(msg, req);
  return msg;
}

template <class Parser>
void copyHeaders(const Parser& parser, HttpResponse& out) {
  const auto& msg = parser.get();
  out.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    auto name = lower(field.name_string());
    auto [it, inserted] = out.headers.emplace(name, std::string(field.value()));
    if (!inserted) {
      it->second += ", ";
      it->second += field.value();
    }
  }
}

}  // namespace

struct UnixHttpClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, std::string path)
      : executor(std::move(ex)), socketPath(std::move(path)) {}

  asio::any_io_executor executor;
  std::string socketPath;
  std::vector<std::unique_ptr<Connection>> idle;  // most recently used last

  // onChunk == nullptr: read the whole body into the response.
  asio::awaitable<Result<HttpResponse>> run(HttpRequest req, const HeadFn* onHead,
                                            const ChunkFn* onChunk);

  std::unique_ptr<Connection> takeIdle() {
    const auto now = Clock::now();
    while (!idle.empty()) {
      auto conn = std::move(idle.back());
      idle.pop_back();
      if (now - conn->idleSince <= kMaxIdleAge && stillUsable(*conn)) return conn;
    }
    return nullptr;
  }

  void giveBack(std::unique_ptr<Connection> conn) {
    conn->stream.expires_never();
    if (idle.size() >= kMaxIdleConnections) {
      idle.erase(idle.begin());  // drop the oldest
    }
    conn->idleSince = Clock::now();
    idle.push_back(std::move(conn));
  }

  Error fail(const boost::system::error_code& ec, const HttpRequest& req,
             std::string_view stage) const {
    const std::string what = "unix socket " + socketPath + ": " + req.method + " " + req.target +
                             ": " + std::string(stage) + ": ";
    if (ec == beast::error::timeout) {
      return Error::make(ErrorCode::timeout, what + "no complete response within " +
                                                 std::to_string(req.timeout.count()) + " ms");
    }
    if (ec == http::error::body_limit) {
      return Error::make(ErrorCode::protocol, what + "response body larger than " +
                                                  std::to_string(kMaxBodyBytes >> 20) + " MiB");
    }
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
        !isDisconnect(ec)) {
      return Error::make(ErrorCode::protocol, what + "malformed HTTP response: " + ec.message());
    }
    return Error::make(ErrorCode::unavailable, what + ec.message());
  }

  // Connects a fresh connection; an Error if that failed.
  asio::awaitable<std::optional<Error>> connect(Connection& conn, const HttpRequest& req) const {
    auto [ec] = co_await conn.stream.async_connect(local::endpoint(socketPath), kTuple);
    if (!ec) co_return std::nullopt;
    if (ec == beast::error::timeout) co_return fail(ec, req, "connect");
    co_return Error::make(ErrorCode::unavailable, "cannot connect to unix socket " + socketPath +
                                                      " (" + req.method + " " + req.target +
                                                      "): " + ec.message());
  }

  asio::awaitable<Result<HijackedResponse>> hijack(HttpRequest req);
  // request() for HttpRequest::sensitive (see the header).
  asio::awaitable<Result<HttpResponse>> runSensitive(HttpRequest req);
};

asio::awaitable<Result<HttpResponse>> UnixHttpClient::Impl::runSensitive(HttpRequest req) {
  auto self = shared_from_this();
  // The caller's copies in `req` are zeroed however this ends.
  struct WipeRequest {
    HttpRequest& r;
    ~WipeRequest() {
      wipe(r.body);
      for (auto& [name, value] : r.headers) wipe(value);
    }
  } wipeRequest{req};
  const auto deadline = deadlineAfter(req.timeout);
  Connection conn(executor);
  arm(conn.stream, deadline);
  if (auto failed = co_await connect(conn, req)) co_return std::move(*failed);
  auto closeConn = [&conn] {
    boost::system::error_code ignored;
    conn.stream.socket().shutdown(local::socket::shutdown_both, ignored);
    conn.stream.close();
  };
  {
    WipingRequest msg;
    fillMessage(msg, req);
    auto [wec, written] = co_await http::async_write(conn.stream, msg, kTuple);
    if (wec) {
      closeConn();
      co_return fail(wec, req, "sending request");
    }
  }
  WipingBuffer buffer;
  http::response_parser<WipingBody, WipingAlloc> parser;
  parser.header_limit(kHeaderLimitBytes);
  parser.body_limit(kMaxBodyBytes);
  if (req.method == "HEAD") parser.skip(true);
  auto [rec, rn] = co_await http::async_read(conn.stream, buffer, parser, kTuple);
  closeConn();
  if (rec) co_return fail(rec, req, "reading response");
  HttpResponse out;
  copyHeaders(parser, out);
  const auto& body = parser.get().body();
  out.body.assign(body.data(), body.size());
  co_return out;
}

asio::awaitable<Result<HttpResponse>> UnixHttpClient::Impl::run(HttpRequest req,
                                                                const HeadFn* onHead,
                                                                const ChunkFn* onChunk) {
  auto self = shared_from_this();  // keeps the pool alive if the client goes away
  const auto deadline = deadlineAfter(req.timeout);
  auto msg = makeMessage(req);
  const bool idempotent = isIdempotent(req.method);

  for (int attempt = 0;; ++attempt) {
    auto conn = takeIdle();
    const bool pooled = conn != nullptr;
    if (!conn) conn = std::make_unique<Connection>(executor);
    arm(conn->stream, deadline);
    // Retry only a pooled connection, once, and only when the server cannot
    // have acted on the request (see the header).
    const bool mayRetry = pooled && attempt == 0;

    if (!pooled) {
      if (auto failed = co_await connect(*conn, req)) co_return std::move(*failed);
    }

    auto [wec, written] = co_await http::async_write(conn->stream, msg, kTuple);
    if (wec) {
      if (mayRetry && written == 0 && wec != beast::error::timeout) continue;
      co_return fail(wec, req, "sending request");
    }

    http::response_parser<http::empty_body> head;
    head.header_limit(kHeaderLimitBytes);
    if (onChunk) {
      head.body_limit(boost::none);
    } else {
      head.body_limit(kMaxBodyBytes);
    }
    if (msg.method() == http::verb::head) head.skip(true);

    auto [hec, hn] = co_await http::async_read_header(conn->stream, conn->buffer, head, kTuple);
    if (hec) {
      if (mayRetry && idempotent && !head.got_some() && conn->buffer.size() == 0 &&
          isDisconnect(hec)) {
        continue;
      }
      co_return fail(hec, req, "reading response");
    }

    HttpResponse out;
    copyHeaders(head, out);
    bool reusable = head.keep_alive();

    if (onHead && *onHead && !(*onHead)(out)) {
      reusable = reusable && head.is_done();  // else the body is left unread
    } else if (!onChunk) {
      http::response_parser<http::string_body> full{std::move(head)};
      full.body_limit(kMaxBodyBytes);
      if (!full.is_done()) {
        auto [bec, bn] = co_await http::async_read(conn->stream, conn->buffer, full, kTuple);
        if (bec) co_return fail(bec, req, "reading response body");
      }
      reusable = reusable && full.is_done();
      out.body = std::move(full.get().body());
    } else {
      http::response_parser<http::buffer_body> parts{std::move(head)};
      parts.body_limit(boost::none);
      std::array<char, kStreamBufferBytes> chunk{};
      while (!parts.is_done()) {
        parts.get().body().data = chunk.data();
        parts.get().body().size = chunk.size();
        auto [sec, sn] = co_await http::async_read_some(conn->stream, conn->buffer, parts, kTuple);
        if (sec == http::error::need_buffer) sec = {};
        const std::size_t got = chunk.size() - parts.get().body().size;
        if (got > 0 && *onChunk && !(*onChunk)(std::string_view(chunk.data(), got))) {
          reusable = false;  // the rest of the body is still on the wire
          break;
        }
        if (sec) co_return fail(sec, req, "reading response stream");
      }
      reusable = reusable && parts.is_done();
    }

    if (reusable) {
      giveBack(std::move(conn));
    } else {
      boost::system::error_code ignored;
      conn->stream.socket().shutdown(local::socket::shutdown_both, ignored);
      conn->stream.close();
    }
    co_return out;
  }
}

// --- hijack ---------------------------------------------------------------

struct HijackedConnection::State {
  State(beast::basic_stream<local> s, std::string early, std::string desc)
      : stream(std::move(s)), leftover(std::move(early)), what(std::move(desc)) {}
  beast::basic_stream<local> stream;
  std::string leftover;  // read past the response header, not yet handed out
  std::size_t leftoverPos = 0;
  std::string what;  // "unix socket PATH: METHOD TARGET: hijacked stream"

  Error error(const boost::system::error_code& ec, std::string_view stage) const {
    const std::string where = what + ": " + std::string(stage) + ": ";
    if (ec == beast::error::timeout) {
      return Error::make(ErrorCode::timeout, where + "the deadline passed");
    }
    return Error::make(ErrorCode::unavailable, where + ec.message());
  }
};

HijackedConnection::HijackedConnection(std::unique_ptr<State> state) : state_(std::move(state)) {}

HijackedConnection::~HijackedConnection() {
  close();
}

asio::awaitable<Result<std::size_t>> HijackedConnection::readSome(std::span<char> out) {
  State& st = *state_;
  if (out.empty()) co_return std::size_t{0};
  if (st.leftoverPos < st.leftover.size()) {
    const std::size_t n = std::min(out.size(), st.leftover.size() - st.leftoverPos);
    std::copy_n(st.leftover.data() + st.leftoverPos, n, out.data());
    st.leftoverPos += n;
    if (st.leftoverPos == st.leftover.size()) {
      st.leftover.clear();
      st.leftoverPos = 0;
    }
    co_return n;
  }
  auto [ec, n] = co_await st.stream.async_read_some(asio::buffer(out.data(), out.size()), kTuple);
  if (n > 0) co_return n;  // an error with data: report it on the next read
  if (ec == asio::error::eof) co_return std::size_t{0};
  if (!ec) co_return std::size_t{0};
  co_return st.error(ec, "reading");
}

asio::awaitable<Status> HijackedConnection::writeAll(std::string_view data) {
  State& st = *state_;
  auto [ec, n] =
      co_await asio::async_write(st.stream, asio::buffer(data.data(), data.size()), kTuple);
  if (ec) co_return st.error(ec, "writing");
  co_return Status::success();
}

Status HijackedConnection::closeWrite() {
  boost::system::error_code ec;
  state_->stream.socket().shutdown(local::socket::shutdown_send, ec);
  if (ec) return state_->error(ec, "half-closing");
  return Status::success();
}

void HijackedConnection::close() {
  if (!state_ || !state_->stream.socket().is_open()) return;
  boost::system::error_code ignored;
  state_->stream.socket().shutdown(local::socket::shutdown_both, ignored);
  state_->stream.close();
}

bool HijackedConnection::isOpen() const noexcept {
  return state_->stream.socket().is_open();
}

void HijackedConnection::expiresAt(Clock::time_point deadline) {
  arm(state_->stream, deadline);
}

asio::awaitable<Result<HijackedResponse>> UnixHttpClient::Impl::hijack(HttpRequest req) {
  auto self = shared_from_this();
  const auto deadline = deadlineAfter(req.timeout);
  auto msg = makeMessage(req);
  auto conn = std::make_unique<Connection>(executor);
  arm(conn->stream, deadline);
  if (auto failed = co_await connect(*conn, req)) co_return std::move(*failed);

  auto [wec, written] = co_await http::async_write(conn->stream, msg, kTuple);
  if (wec) co_return fail(wec, req, "sending request");

  http::response_parser<http::empty_body> head;
  head.header_limit(kHeaderLimitBytes);
  head.body_limit(kMaxBodyBytes);
  auto [hec, hn] = co_await http::async_read_header(conn->stream, conn->buffer, head, kTuple);
  if (hec) co_return fail(hec, req, "reading response");

  HijackedResponse out;
  copyHeaders(head, out.head);
  if (out.head.status == 101 || out.head.status == 200) {
    // The parser stopped at the end of the header (it is not eager), so the
    // buffer holds exactly the first bytes of the new protocol.
    const auto early = conn->buffer.data();
    std::string leftover(static_cast<const char*>(early.data()), early.size());
    out.connection =
        std::make_unique<HijackedConnection>(std::make_unique<HijackedConnection::State>(
            std::move(conn->stream), std::move(leftover),
            "unix socket " + socketPath + ": " + req.method + " " + req.target +
                ": hijacked stream"));
    co_return out;
  }

  http::response_parser<http::string_body> full{std::move(head)};
  full.body_limit(kMaxBodyBytes);
  if (!full.is_done()) {
    auto [bec, bn] = co_await http::async_read(conn->stream, conn->buffer, full, kTuple);
    if (bec) co_return fail(bec, req, "reading response body");
  }
  out.head.body = std::move(full.get().body());
  boost::system::error_code ignored;
  conn->stream.socket().shutdown(local::socket::shutdown_both, ignored);
  conn->stream.close();
  co_return out;
}

UnixHttpClient::UnixHttpClient(asio::any_io_executor executor, std::string socketPath)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(socketPath))) {}

UnixHttpClient::~UnixHttpClient() {
  impl_->idle.clear();
}

asio::awaitable<Result<HttpResponse>> UnixHttpClient::request(HttpRequest req) {
  auto impl = impl_;
  if (req.sensitive) co_return co_await impl->runSensitive(std::move(req));
  co_return co_await impl->run(std::move(req), nullptr, nullptr);
}

asio::awaitable<Result<HttpResponse>> UnixHttpClient::stream(HttpRequest req, ChunkFn onChunk) {
  auto impl = impl_;
  co_return co_await impl->run(std::move(req), nullptr, &onChunk);
}

asio::awaitable<Result<HttpResponse>> UnixHttpClient::stream(HttpRequest req, HeadFn onHead,
                                                             ChunkFn onChunk) {
  auto impl = impl_;
  co_return co_await impl->run(std::move(req), &onHead, &onChunk);
}

asio::awaitable<Result<HijackedResponse>> UnixHttpClient::hijack(HttpRequest req) {
  auto impl = impl_;
  co_return co_await impl->hijack(std::move(req));
}

const std::string& UnixHttpClient::socketPath() const noexcept {
  return impl_->socketPath;
}

std::size_t UnixHttpClient::idleConnections() const noexcept {
  return impl_->idle.size();
}

}  // namespace foundationd::transport
