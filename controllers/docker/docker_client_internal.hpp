// Helpers shared by DockerClient's source files (docker_client.cpp,
// docker_events.cpp, docker_exec.cpp): URL encoding, JSON field access and
// the Engine error mapping described in docker_client.hpp. Not part of any
// interface; include it from those files only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "controllers/docker/docker_api.hpp"
#include "controllers/transport/unix_http_client.hpp"

namespace foundationd::docker::internal {

inline constexpr std::size_t kMaxErrorText = 2048;

// A query value: everything but unreserved characters is escaped.
std::string queryValue(std::string_view s);
// One path segment (a container, network, volume or exec name or id).
std::string segment(std::string_view s);

std::string dumpBody(const nlohmann::json& body);
// obj[key] if it is a string, else "".
std::string stringField(const nlohmann::json& obj, const char* key);
// The string members of obj[key] (null or absent: none).
Labels labelsFrom(const nlohmann::json& obj, const char* key = "Labels");

// A non-success answer as an Error: code by status, "what: <Engine message>".
Error engineError(const transport::HttpResponse& r, std::string_view what);
// A transport failure with what was being done (and a hint when unavailable).
Error withContext(Error e, std::string_view what);
// The body as JSON, or a protocol error saying what we were doing.
Result<nlohmann::json> parseJson(const transport::HttpResponse& r, std::string_view what);
Error protocolError(std::string_view what, std::string_view detail, int status);

}  // namespace foundationd::docker::internal
