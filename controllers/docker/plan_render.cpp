#include "controllers/docker/plan_render.hpp"

#include <map>

namespace foundationd::docker {
namespace {

const char* symbol(Action a) {
  switch (a) {
    case Action::create: return "+";
    case Action::recreate: return "~";
    case Action::start: return ">";
    case Action::remove: return "-";
    case Action::orphan: return "!";
    case Action::conflict: return "!";
  }
  return "?";
}

const char* colorOf(Action a) {
  switch (a) {
    case Action::create: return "\033[32m";
    case Action::recreate: return "\033[33m";
    case Action::start: return "\033[36m";
    case Action::remove: return "\033[31m";
    case Action::orphan: return "\033[35m";
    case Action::conflict: return "\033[1;31m";
  }
  return "";
}

}  // namespace

std::string renderSummary(const Plan& plan) {
  std::map<Action, int> counts;
  for (const auto& c : plan.changes) counts[c.action]++;
  if (!plan.hasChanges() && !plan.hasConflicts()) {
    std::string s = "No changes. Project \"" + plan.project + "\" matches the spec.";
    if (counts[Action::orphan]) {
      s += " (" + std::to_string(counts[Action::orphan]) + " orphaned, kept)";
    }
    return s;
  }
  std::string s = "Plan: " + std::to_string(counts[Action::create]) + " to create, " +
                  std::to_string(counts[Action::recreate]) + " to recreate, " +
                  std::to_string(counts[Action::start]) + " to start, " +
                  std::to_string(counts[Action::remove]) + " to remove.";
  if (counts[Action::orphan]) s += " " + std::to_string(counts[Action::orphan]) + " orphaned (kept).";
  if (counts[Action::conflict]) {
    s += " " + std::to_string(counts[Action::conflict]) + " conflict(s) need the operator.";
  }
  return s;
}

std::string renderPlanText(const Plan& plan, const RenderOptions& options) {
  std::string out;
  const char* reset = options.color ? "\033[0m" : "";
  for (const auto& c : plan.changes) {
    out += "  ";
    if (options.color) out += colorOf(c.action);
    out += symbol(c.action);
    out += " ";
    out += c.key.str();
    out += reset;
    out += ": ";
    out += toString(c.action);
    out += " (" + c.reason + ")\n";
    for (const auto& f : c.fields) {
      out += "      " + f.field + ": " + f.before + " -> " + f.after + "\n";
    }
  }
  if (!plan.changes.empty()) out += "\n";
  out += renderSummary(plan) + "\n";
  return out;
}

nlohmann::json renderPlanJson(const Plan& plan) {
  nlohmann::json changes = nlohmann::json::array();
  std::map<std::string, int> summary{{"create", 0}, {"recreate", 0}, {"start", 0},
                                     {"remove", 0}, {"orphan", 0},   {"conflict", 0}};
  for (const auto& c : plan.changes) {
    nlohmann::json fields = nlohmann::json::array();
    for (const auto& f : c.fields) {
      fields.push_back({{"field", f.field}, {"before", f.before}, {"after", f.after},
                        {"sensitive", f.sensitive}});
    }
    changes.push_back({{"resource", c.key.str()},
                       {"kind", config::toString(c.key.kind)},
                       {"name", c.key.name},
                       {"action", toString(c.action)},
                       {"reason", c.reason},
                       {"fields", fields}});
    summary[toString(c.action)]++;
  }
  return {{"format_version", 1},
          {"project", plan.project},
          {"changes", changes},
          {"summary", summary},
          {"has_changes", plan.hasChanges()},
          {"has_conflicts", plan.hasConflicts()},
          {"running_images", plan.runningImages}};
}

}  // namespace foundationd::docker
