// The Engine's event stream: splitting it into documents, parsing and
// filtering events, and DockerClient::events. Contracts in docker_stream.hpp
// and docker_client.hpp.
#include <cctype>
#include <chrono>
#include <optional>
#include <utility>

#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include "controllers/docker/docker_client.hpp"
#include "controllers/docker/docker_client_internal.hpp"
#include "controllers/docker/docker_stream.hpp"

namespace foundationd::docker {

using transport::HttpRequest;
using transport::HttpResponse;
using json = nlohmann::json;
using namespace internal;

namespace {

bool isJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Only the kinds DockerApi::events promises; the label filter is ours.
constexpr const char* kEventTypesFilter = R"({"type":["container","network","volume"]})";

}  // namespace

std::vector<std::string> JsonStreamSplitter::feed(std::string_view bytes) {
  std::vector<std::string> out;
  if (overflowed_) return out;
  for (const char c : bytes) {
    if (depth_ == 0) {
      const bool opens = c == '{' || c == '[';
      if (stray_ && (c == '\n' || opens)) {
        out.push_back(std::move(current_));
        current_.clear();
        stray_ = false;
      }
      if (opens) {
        depth_ = 1;
        current_ += c;
      } else if (stray_ || !isJsonSpace(c)) {
        stray_ = true;
        current_ += c;
      }
    } else {
      current_ += c;
      if (inString_) {
        if (escaped_) {
          escaped_ = false;
        } else if (c == '\\') {
          escaped_ = true;
        } else if (c == '"') {
          inString_ = false;
        }
      } else if (c == '"') {
        inString_ = true;
      } else if (c == '{' || c == '[') {
        ++depth_;
      } else if ((c == '}' || c == ']') && --depth_ == 0) {
        out.push_back(std::move(current_));
        current_.clear();
      }
    }
    if (current_.size() > maxValueBytes_) {
      overflowed_ = true;
      current_.clear();
      return out;
    }
  }
  return out;
}

std::optional<DockerEvent> parseEvent(std::string_view text) {
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  DockerEvent e;
  e.type = stringField(doc, "Type");
  e.action = stringField(doc, "Action");
  if (e.action.empty()) e.action = stringField(doc, "status");  // pre-1.22 field
  if (e.type.empty() || e.action.empty()) return std::nullopt;
  if (auto actor = doc.find("Actor"); actor != doc.end() && actor->is_object()) {
    e.id = stringField(*actor, "ID");
    e.attributes = labelsFrom(*actor, "Attributes");
  }
  if (e.id.empty()) e.id = stringField(doc, "id");
  if (auto name = e.attributes.find("name"); name != e.attributes.end()) {
    e.name = name->second;
  } else if (e.type == "volume") {
    e.name = e.id;  // a volume's Actor.ID is its name
  }
  if (auto t = doc.find("timeNano"); t != doc.end() && t->is_number_integer()) {
    e.timeNano = t->get<std::int64_t>();
  } else if (auto s = doc.find("time"); s != doc.end() && s->is_number_integer()) {
    e.timeNano = s->get<std::int64_t>() * 1'000'000'000;
  }
  return e;
}

bool eventMatches(const DockerEvent& event, const LabelFilter& labels) {
  if (event.type != "container") return true;
  for (const auto& [key, value] : labels) {
    auto it = event.attributes.find(key);
    if (it == event.attributes.end() || it->second != value) return false;
  }
  return true;
}

Task<Status> DockerClient::events(LabelFilter labels,
                                  std::function<bool(const DockerEvent&)> onEvent) {
  const std::string what = "watch Engine events";
  HttpRequest req;
  req.target = path("/events?filters=" + queryValue(kEventTypesFilter));
  req.timeout = HttpRequest::kNoTimeout;

  JsonStreamSplitter splitter;
  std::optional<Error> failure;
  bool stopped = false;
  int status = 0;
  std::string errorBody;
  const auto onChunk = [&](std::string_view chunk) {
    if (status != 200) {
      if (errorBody.size() < kMaxErrorText) errorBody += chunk;
      return true;
    }
    for (const auto& text : splitter.feed(chunk)) {
      auto event = parseEvent(text);
      if (!event) {
        failure =
            protocolError(what, "the Engine sent an event that is not a JSON event object", status);
        return false;
      }
      if (!eventMatches(*event, labels)) continue;
      if (!onEvent(*event)) {
        stopped = true;
        return false;
      }
    }
    if (splitter.overflowed()) {
      failure = protocolError(what, "an event larger than 1 MiB: not an event stream", status);
      return false;
    }
    return true;
  };

  requests_.fetch_add(1, std::memory_order_relaxed);
  const auto start = std::chrono::steady_clock::now();
  const auto onHead = [&status](const HttpResponse& head) {
    status = head.status;
    return true;
  };
  // Cancelled between two of the stream's operations (before the read that
  // would have seen it), the coroutine's next co_await throws
  // operation_aborted (asio's throw_if_cancelled): the same end as a
  // cancelled read.
  std::optional<Result<HttpResponse>> answer;
  bool aborted = false;
  try {
    answer.emplace(co_await http_.stream(std::move(req), onHead, onChunk));
  } catch (const boost::system::system_error& e) {
    if (e.code() != boost::asio::error::operation_aborted) throw;
    aborted = true;
  }
  if (aborted) co_return Error::make(ErrorCode::unavailable, what + ": cancelled");
  auto& r = *answer;
  record("GET /events", r.ok() ? r->status : 0, std::chrono::steady_clock::now() - start);

  if (failure) co_return std::move(*failure);
  if (stopped) co_return Status::success();
  if (!r) {
    const auto cancelled = (co_await boost::asio::this_coro::cancellation_state).cancelled();
    if (cancelled != boost::asio::cancellation_type::none) {
      co_return Error::make(ErrorCode::unavailable, what + ": cancelled");
    }
    co_return withContext(std::move(r).error(), what);
  }
  if (r->status != 200) {
    HttpResponse refused = *r;
    refused.body = std::move(errorBody);
    co_return engineError(refused, what);
  }
  co_return withContext(
      Error::make(ErrorCode::unavailable, "the Engine ended the event stream", r->status), what);
}

}  // namespace foundationd::docker
