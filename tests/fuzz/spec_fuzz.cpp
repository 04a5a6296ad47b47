// libFuzzer target: the spec loader must never crash, hang or leak on any
// input; bad input only ever produces diagnostics. Built with -Dfuzz=true.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "config/daemon_config.hpp"
#include "config/graph.hpp"
#include "config/spec_loader.hpp"

namespace {

const std::string kVersions =
    "[images]\n"
    "web = \"docker.io/library/nginx:1.27@sha256:"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
    "loose = \"nginx:latest\"\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const foundationd::config::FileReader reader =
      [](const std::string& path) -> std::optional<std::string> {
    if (path == "VERSIONS") return kVersions;
    return std::nullopt;
  };
  auto result = foundationd::config::loadSpecText(text, "fuzz.toml", reader);
  (void)result.diagnostics.formatAll();
  if (result.spec) {
    // A valid spec must give an acyclic graph (cycles are load errors).
    const auto graph = foundationd::config::Graph::build(*result.spec);
    if (!graph.topologicalOrder()) __builtin_trap();
  } else if (!result.diagnostics.hasErrors()) {
    __builtin_trap();  // no spec must mean at least one error
  }
  // The daemon config shares the reader: exercise it on the same bytes.
  auto daemon = foundationd::config::loadDaemonConfigText(text, "fuzz.toml");
  (void)daemon.diagnostics.formatAll();
  return 0;
}
