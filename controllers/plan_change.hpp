// What a service controller's plan (Vault, PostgreSQL, the forge) says would
// change: one entry per resource that differs from the spec, with why and
// what differs field by field. Built by each controller's pure plan function
// from what it observed; never holds a secret (values that are secret are
// compared by keyed digest or Vault version, and shown only as such).
// Kept free of any controller so every one can return it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/graph.hpp"

namespace foundationd {

enum class PlanAction {
  create,   // does not exist
  update,   // exists, differs (a field below)
  unknown,  // cannot be compared now (locked, the peer does not answer): said, never guessed
};

inline const char* planActionName(PlanAction a) noexcept {
  switch (a) {
    case PlanAction::create: return "create";
    case PlanAction::update: return "update";
    case PlanAction::unknown: return "unknown";
  }
  return "?";
}

struct PlanField {
  std::string field;
  std::string before;    // as observed ("" = none); never a secret
  std::string after;     // as the spec wants it; never a secret
  bool unknown = false;  // not compared: `after` says why ("cannot compare while locked")
};

struct PlanChange {
  config::ResourceKey key;
  PlanAction action = PlanAction::create;
  std::string reason;
  std::vector<PlanField> fields;
};

// Whether applying would change something (unknowns are not changes).
inline bool planHasChanges(const std::vector<PlanChange>& changes) {
  for (const auto& c : changes) {
    if (c.action != PlanAction::unknown) return true;
  }
  return false;
}

inline nlohmann::json planChangesJson(const std::vector<PlanChange>& changes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : changes) {
    nlohmann::json fields = nlohmann::json::array();
    for (const auto& f : c.fields) {
      nlohmann::json j = {{"field", f.field}, {"before", f.before}, {"after", f.after}};
      if (f.unknown) j = {{"field", f.field}, {"unknown", true}, {"reason", f.after}};
      fields.push_back(std::move(j));
    }
    out.push_back({{"resource", c.key.str()},
                   {"action", planActionName(c.action)},
                   {"reason", c.reason},
                   {"fields", std::move(fields)}});
  }
  return out;
}

}  // namespace foundationd
