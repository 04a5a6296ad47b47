// docker exec over the Engine API: the multiplexed-stream demultiplexer and
// DockerClient::exec. Contracts in docker_stream.hpp and docker_client.hpp.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <tuple>
#include <utility>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <sodium.h>

#include "common/async.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/docker_client_internal.hpp"
#include "controllers/docker/docker_stream.hpp"

namespace foundationd::docker {

using transport::HijackedConnection;
using transport::HttpRequest;
using transport::HttpResponse;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace internal;

bool ExecStreamDemuxer::feed(std::string_view bytes, const Sink& sink) {
  while (!bytes.empty()) {
    if (remaining_ == 0) {  // (the rest of) a header
      const std::size_t take = std::min(kHeaderBytes - headerHave_, bytes.size());
      std::memcpy(header_ + headerHave_, bytes.data(), take);
      headerHave_ += take;
      bytes.remove_prefix(take);
      if (headerHave_ < kHeaderBytes) break;
      headerHave_ = 0;
      switch (header_[0]) {
        case 0:  // stdin: the Engine's stdcopy writes it to stdout too
        case 1:
          current_ = Stream::out;
          break;
        case 2:
          current_ = Stream::err;
          break;
        case 3:
          current_ = Stream::system;
          break;
        default:
          return false;
      }
      remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                   (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
      continue;
    }
    const std::size_t take = std::min<std::size_t>(remaining_, bytes.size());
    sink(current_, bytes.substr(0, take));
    remaining_ -= static_cast<std::uint32_t>(take);
    bytes.remove_prefix(take);
  }
  return true;
}

namespace {

constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr std::chrono::milliseconds kExitPollInterval{20};

// Wipes the call's copy of stdin (it may be a password) however the call ends.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::optional<std::string>& s) : s_(s) {}
  ~WipeOnExit() {
    if (s_ && !s_->empty()) sodium_memzero(s_->data(), s_->size());
  }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::optional<std::string>& s_;
};

// What came back on the multiplexed stream.
struct Drained {
  ExecResult output;
  std::string systemText;  // stream 3: an error the Engine reported in-band
  std::optional<Error> error;
  bool overLimit = false;
};

std::chrono::milliseconds remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

// Writes stdin and half-closes. Failures are left to the reading side: a
// process that exits without reading its stdin makes the Engine close the
// connection, and a deadline closes it for both directions.
Task<Status> feedStdin(HijackedConnection& conn, const std::optional<std::string>& data,
                       const ExecOptions& options, std::optional<Error>& sourceError) {
  if (options.stdinSource) {
    for (;;) {
      auto chunk = co_await options.stdinSource();
      if (!chunk) {
        sourceError = chunk.error();
        conn.close();  // the process must not take a partial input for a whole one
        co_return std::move(chunk).error();
      }
      if (chunk->empty()) co_return conn.closeWrite();
      auto written = co_await conn.writeAll(*chunk);
      if (!written) co_return written;
    }
  }
  if (!data) co_return Status::success();
  auto written = co_await conn.writeAll(*data);
  if (!written) co_return written;
  co_return conn.closeWrite();
}

Task<Drained> drain(HijackedConnection& conn, std::size_t maxOutput,
                    const std::function<Task<Status>(std::string_view)>& stdoutSink) {
  Drained d;
  ExecStreamDemuxer demux;
  std::size_t total = 0;
  std::string streamed;  // stdout of one read, for stdoutSink
  const auto sink = [&](ExecStreamDemuxer::Stream stream, std::string_view piece) {
    if (stream == ExecStreamDemuxer::Stream::system) {
      if (d.systemText.size() < kMaxErrorText) d.systemText += piece;
      return;
    }
    if (stdoutSink && stream == ExecStreamDemuxer::Stream::out) {
      streamed += piece;
      return;
    }
    if (piece.size() > maxOutput - total) {
      d.overLimit = true;
      return;
    }
    total += piece.size();
    (stream == ExecStreamDemuxer::Stream::out ? d.output.stdoutText : d.output.stderrText) += piece;
  };
  std::vector<char> buf(kReadBufferBytes);
  for (;;) {
    auto n = co_await conn.readSome(buf);
    if (!n) {
      d.error = std::move(n).error();
      break;
    }
    if (*n == 0) {
      if (!demux.atFrameBoundary()) {
        d.error =
            Error::make(ErrorCode::unavailable, "the Engine closed the stream inside a frame");
      }
      break;
    }
    if (!demux.feed(std::string_view(buf.data(), *n), sink)) {
      d.error = Error::make(ErrorCode::protocol, "the output is not a multiplexed stream");
      break;
    }
    if (d.overLimit) break;
    if (!streamed.empty()) {
      auto st = co_await stdoutSink(streamed);
      streamed.clear();
      if (!st) {
        d.error = st.error();
        break;
      }
    }
  }
  conn.close();  // also ends a stdin write still in flight
  co_return d;
}

}  // namespace

Task<Result<ExecResult>> DockerClient::exec(const std::string& container,
                                            const std::vector<std::string>& cmd,
                                            const ExecOptions& options) {
  using namespace boost::asio::experimental::awaitable_operators;
  // Only argv[0]: the rest of argv is the caller's and may say too much.
  const std::string what = "exec " + (cmd.empty() ? std::string("(nothing)") : cmd.front()) +
                           " in container " + container;
  if (cmd.empty()) co_return Error::make(ErrorCode::invalid_argument, what + ": empty command");
  const auto timeout = options.timeout;
  const auto deadline = timeout >= std::chrono::hours(24 * 365)  // "forever": no overflow
                            ? Clock::time_point::max()
                            : Clock::now() + timeout;
  const std::size_t maxOutput = options.maxOutput;
  std::optional<std::string> stdinData = options.stdinData;  // wiped when the call ends
  WipeOnExit wipe(stdinData);
  const auto timedOut = [&](std::string_view during) {
    return Error::make(ErrorCode::timeout,
                       what + ": no result within " + std::to_string(timeout.count()) + " ms (" +
                           std::string(during) +
                           "); the process, if it started, is left running: the Engine cannot "
                           "stop an exec, it ends when it exits or the container stops");
  };

  json create = {{"AttachStdin", stdinData.has_value() || bool(options.stdinSource)},
                 {"AttachStdout", true},
                 {"AttachStderr", true},
                 {"Tty", false},
                 {"Cmd", cmd}};
  if (!options.user.empty()) create["User"] = options.user;
  if (!options.env.empty()) create["Env"] = options.env;
  HttpRequest createReq;
  createReq.method = "POST";
  createReq.target = path("/containers/" + segment(container) + "/exec");
  createReq.body = dumpBody(create);
  createReq.timeout = remaining(deadline);
  auto created = co_await call("POST /containers/{id}/exec", std::move(createReq));
  if (!created) {
    if (created.error().code == ErrorCode::timeout) co_return timedOut("creating the exec");
    co_return withContext(std::move(created).error(), what);
  }
  if (created->status != 201 && created->status != 200) co_return engineError(*created, what);
  auto createdDoc = parseJson(*created, what);
  if (!createdDoc) co_return std::move(createdDoc).error();
  const std::string execId = createdDoc->is_object() ? stringField(*createdDoc, "Id") : "";
  if (execId.empty()) co_return protocolError(what, "the Engine's answer has no Id", 201);

  HttpRequest startReq;
  startReq.method = "POST";
  startReq.target = path("/exec/" + segment(execId) + "/start");
  startReq.body = R"({"Detach":false,"Tty":false})";
  startReq.headers["Connection"] = "Upgrade";
  startReq.headers["Upgrade"] = "tcp";
  startReq.timeout = remaining(deadline);  // the hijacked stream keeps this deadline
  requests_.fetch_add(1, std::memory_order_relaxed);
  const auto startedAt = Clock::now();
  auto hijacked = co_await http_.hijack(std::move(startReq));
  if (!hijacked) {
    record("POST /exec/{id}/start", 0, Clock::now() - startedAt);
    if (hijacked.error().code == ErrorCode::timeout) co_return timedOut("starting the exec");
    co_return withContext(std::move(hijacked).error(), what);
  }
  if (!hijacked->connection) {
    record("POST /exec/{id}/start", hijacked->head.status, Clock::now() - startedAt);
    co_return engineError(hijacked->head, what);
  }
  auto& conn = *hijacked->connection;
  std::optional<Error> sourceError;
  auto [fed, drained] = co_await (feedStdin(conn, stdinData, options, sourceError) &&
                                  drain(conn, maxOutput, options.stdoutSink));
  (void)fed;  // write failures are left to the reading side (see feedStdin)
  // A failed stdinSource is the caller's own error: it wins.
  if (sourceError) co_return withContext(std::move(*sourceError), what);
  record("POST /exec/{id}/start", hijacked->head.status, Clock::now() - startedAt);
  if (drained.overLimit) {
    co_return Error::make(ErrorCode::protocol,
                          what + ": the output exceeded " + std::to_string(maxOutput) +
                              " bytes (ExecOptions::maxOutput); the rest was not read");
  }
  if (drained.error) {
    if (drained.error->code == ErrorCode::timeout) co_return timedOut("reading its output");
    co_return withContext(std::move(*drained.error), what);
  }
  if (!drained.systemText.empty()) {
    co_return Error::make(ErrorCode::peer, what + ": the Engine reported: " + drained.systemText);
  }

  // The Engine records the exit code before it closes the stream; ask again
  // briefly in case a version does it the other way round.
  for (;;) {
    HttpRequest inspect;
    inspect.target = path("/exec/" + segment(execId) + "/json");
    inspect.timeout = remaining(deadline);
    auto r = co_await call("GET /exec/{id}/json", std::move(inspect));
    if (!r) {
      if (r.error().code == ErrorCode::timeout) co_return timedOut("reading its exit code");
      co_return withContext(std::move(r).error(), what);
    }
    if (r->status != 200) co_return engineError(*r, what);
    auto doc = parseJson(*r, what);
    if (!doc) co_return std::move(doc).error();
    if (!doc->is_object()) co_return protocolError(what, "expected a JSON object", r->status);
    const auto code = doc->find("ExitCode");
    if (!doc->value("Running", false) && code != doc->end() && code->is_number_integer()) {
      drained.output.exitCode = code->get<int>();
      co_return std::move(drained.output);
    }
    if (Clock::now() + kExitPollInterval >= deadline) co_return timedOut("waiting for its exit");
    co_await sleepFor(kExitPollInterval);
  }
}

}  // namespace foundationd::docker
