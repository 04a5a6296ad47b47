// SecretJson: nlohmann::basic_json whose strings (string_t) and containers
// use state::WipingAllocator, for parsing request bodies that carry a secret
// (POST /v1/unseal). Everything it allocates is zeroed when freed: the value
// tree, each string, and the lexer's token buffer (string_t), through which
// every string value of the body passes and which grows by reallocation.
//
// Not covered, because no template parameter reaches them: nlohmann's lexer
// also keeps the raw bytes of the current token in a std::vector<char>
// (token_string, for error messages), and a parse_error's text may quote
// them. Both are freed unzeroed in a process that is not dumpable
// (docs/state.md "Threat model").
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "state/wiping_allocator.hpp"

namespace foundationd::api {

using SecretJson = nlohmann::basic_json<std::map, std::vector, state::WipingString, bool,
                                        std::int64_t, std::uint64_t, double,
                                        state::WipingAllocator>;

}  // namespace foundationd::api
