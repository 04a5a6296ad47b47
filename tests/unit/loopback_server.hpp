// A Beast HTTP/1.1 server on 127.0.0.1 for unit tests of the peer clients:
// every request is answered by the test's handler (called from several
// threads when clients hold several connections at once, as a real server
// would serve them); a connection stays open while the request and the answer
// both keep it alive (the handler decides with res.keep_alive(false)). It
// records what it was asked and counts connections.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace foundationd::testing {

namespace bhttp = boost::beast::http;

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

// A JSON answer, kept alive.
inline Response jsonAnswer(int status, std::string body) {
  Response res{static_cast<bhttp::status>(status), 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

class LoopbackServer {
 public:
  using Handler = std::function<Response(const Request&)>;

  explicit LoopbackServer(Handler handler)
      : handler_(std::move(handler)),
        acceptor_(io_,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;
  ~LoopbackServer() {
    // A blocking accept() is not woken by close(): connect once to end it.
    stopping_ = true;
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket wake(io);
    boost::system::error_code ec;
    wake.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_),
                 ec);
    thread_.join();
    // Connections a client still holds: their reads end with the shutdown.
    {
      std::lock_guard lock(mutex_);
      for (auto& s : sockets_) s->shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
    for (auto& t : connectionThreads_) t.join();
  }

  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string url(const std::string& path) const { return address() + path; }

  // Every request so far, in order.
  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<std::string> targets() {
    std::vector<std::string> out;
    for (const auto& r : requests()) out.emplace_back(r.target());
    return out;
  }
  Request last() {
    std::lock_guard lock(mutex_);
    return requests_.empty() ? Request{} : requests_.back();
  }
  int connections() const { return connections_.load(); }

 private:
  void serve() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = std::make_shared<boost::asio::ip::tcp::socket>(io_);
      acceptor_.accept(*socket, ec);
      if (ec || stopping_) return;
      connections_.fetch_add(1);
      {
        std::lock_guard lock(mutex_);
        sockets_.push_back(socket);
      }
      connectionThreads_.emplace_back([this, socket] { answer(*socket); });
    }
  }

  void answer(boost::asio::ip::tcp::socket& socket) {
    boost::system::error_code ec;
    boost::beast::flat_buffer buffer;
    for (;;) {
      Request req;
      bhttp::read(socket, buffer, req, ec);
      if (ec) break;  // the client closed this one
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(req);
      }
      Response res = handler_(req);
      const bool keep = req.keep_alive() && res.keep_alive();
      res.keep_alive(keep);
      res.prepare_payload();
      bhttp::write(socket, res, ec);
      if (ec || !keep) break;
    }
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  }

  Handler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
  std::vector<std::thread> connectionThreads_;  // the accepting thread's alone until joined
  std::mutex mutex_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
  std::vector<Request> requests_;
};

// A handler answering each request with the next (status, JSON body) of a
// script, the last one repeated.
inline LoopbackServer::Handler script(std::deque<std::pair<int, std::string>> answers) {
  auto state = std::make_shared<std::pair<std::mutex, std::deque<std::pair<int, std::string>>>>();
  state->second = std::move(answers);
  return [state](const Request&) {
    std::lock_guard lock(state->first);
    auto answer = state->second.front();
    if (state->second.size() > 1) state->second.pop_front();
    return jsonAnswer(answer.first, answer.second);
  };
}

}  // namespace foundationd::testing
