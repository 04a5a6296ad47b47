// Pure parsers for the Engine's two streaming formats, apart from any I/O so
// that tests can feed them every way the bytes may be split:
// - the events stream (GET /events): JSON objects one after another, each
//   ended by a newline, cut into HTTP chunks anywhere;
// - the multiplexed exec/attach stream (Tty=false): frames of an 8-byte
//   header and a payload, cut into socket reads anywhere.
// Used by DockerClient (docker_events.cpp, docker_exec.cpp). No state beyond
// the object; not thread-safe (one stream, one owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/docker/docker_api.hpp"

namespace foundationd::docker {

// Splits a byte stream of concatenated JSON values into one text per complete
// top-level object or array. It follows brackets and strings rather than
// lines, so it neither needs the newline after a value nor is fooled by
// brackets inside strings. Whitespace between values is dropped; any other
// text outside a value is returned as a value of its own (up to a newline or
// the next '{' or '['), so that the caller's JSON parser rejects it.
class JsonStreamSplitter {
 public:
  static constexpr std::size_t kDefaultMaxValueBytes = std::size_t{1} << 20;
  explicit JsonStreamSplitter(std::size_t maxValueBytes = kDefaultMaxValueBytes)
      : maxValueBytes_(maxValueBytes) {}

  // Appends `bytes` and returns the values they complete, in order. After an
  // overflow it returns nothing more.
  std::vector<std::string> feed(std::string_view bytes);
  // A single value grew past maxValueBytes: not the stream we expect.
  bool overflowed() const noexcept { return overflowed_; }
  // Bytes of an incomplete value held back.
  std::size_t pendingBytes() const noexcept { return current_.size(); }

 private:
  std::size_t maxValueBytes_;
  std::string current_;
  int depth_ = 0;  // > 0 inside an object or array
  bool inString_ = false;
  bool escaped_ = false;
  bool stray_ = false;  // collecting text outside any value
  bool overflowed_ = false;
};

// One event document of API 1.41 ({"Type", "Action", "Actor": {"ID",
// "Attributes"}, "timeNano", ...}) as a DockerEvent; nullopt when it is not a
// JSON object with a Type and an Action.
std::optional<DockerEvent> parseEvent(std::string_view json);

// Whether an event passes the label filter (ANDed): a container event must
// carry every label (they are its Actor.Attributes); network and volume
// events carry no labels and always pass (see DockerApi::events).
bool eventMatches(const DockerEvent& event, const LabelFilter& labels);

// Demultiplexes the exec/attach stream: frames of [stream, 0, 0, 0, size as
// a big-endian uint32] followed by `size` payload bytes. Payload is handed on
// as it arrives, so a large frame comes out in several pieces and a frame of
// 0 bytes produces nothing. Stream 0 (stdin) is reported as stdout, as the
// Engine's own stdcopy does.
class ExecStreamDemuxer {
 public:
  enum class Stream : std::uint8_t { out = 1, err = 2, system = 3 };  // system: an Engine error
  using Sink = std::function<void(Stream, std::string_view payload)>;

  // Consumes `bytes`; false when a header names an unknown stream (> 3): the
  // stream is not multiplexed (a Tty exec?) or corrupt; stop reading then.
  bool feed(std::string_view bytes, const Sink& sink);
  // True between frames: the stream may end here without losing a byte.
  bool atFrameBoundary() const noexcept { return headerHave_ == 0 && remaining_ == 0; }

  static constexpr std::size_t kHeaderBytes = 8;

 private:
  unsigned char header_[kHeaderBytes] = {};
  std::size_t headerHave_ = 0;
  std::uint32_t remaining_ = 0;  // payload bytes of the current frame still to come
  Stream current_ = Stream::out;
};

}  // namespace foundationd::docker
