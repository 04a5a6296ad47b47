// Runs a coroutine to completion on a fresh io_context (unit tests).
#pragma once

#include <exception>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace foundationd::testing {

template <typename T>
T run(boost::asio::awaitable<T> task) {
  boost::asio::io_context io;
  std::optional<T> out;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
    if (e) error = e;
    else out.emplace(std::move(v));
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

}  // namespace foundationd::testing
