// The small string syntaxes of [containers.*] (docs/spec.md): mounts
// "source:target[:ro|rw]", ports "[host-ip:][host-port:]container-port[/proto]",
// tmpfs "path[:options]" and image references. Pure functions; a problem is
// returned as the end of a sentence ("must be an absolute path").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "config/spec.hpp"

namespace foundationd::config {

// A Mount (loc unset), or the problem.
std::variant<Mount, std::string> parseMount(std::string_view text);

// A PortMapping (loc unset), or the problem.
std::variant<PortMapping, std::string> parsePortMapping(std::string_view text);

// nullopt when "path[:options]" is valid.
std::optional<std::string> tmpfsProblem(std::string_view text);

// nullopt when `image` is a well-formed reference ("name[:tag][@sha256:<64 hex>]").
std::optional<std::string> imageProblem(std::string_view image);

// True when the reference carries a digest (check imageProblem first).
bool imagePinned(std::string_view image);

}  // namespace foundationd::config
