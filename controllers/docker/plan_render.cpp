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

bool hasCredentialChanges(const std::vector<CredentialChange>& credentials) {
  for (const auto& c : credentials) {
    if (c.isChange()) return true;
  }
  return false;
}

const char* credentialSymbol(const CredentialChange& c) {
  return c.action == "generate" ? "+" : c.action == "rotate" ? "~" : "!";
}

const char* credentialColor(const CredentialChange& c) {
  return c.action == "generate" ? "\033[32m" : c.action == "rotate" ? "\033[33m" : "\033[35m";
}

}  // namespace

bool hasChanges(const Plan& plan, const std::vector<CredentialChange>& credentials) {
  return plan.hasChanges() || hasCredentialChanges(credentials);
}

std::string renderValue(const nlohmann::json& value, bool sensitive) {
  if (value.is_null()) return "(none)";
  if (sensitive && value.is_string()) return value.get<std::string>();  // "(sensitive)"
  return value.dump();
}

std::string renderSummary(const Plan& plan, const std::vector<CredentialChange>& credentials) {
  std::map<Action, int> counts;
  for (const auto& c : plan.changes) counts[c.action]++;
  if (!plan.hasChanges() && !plan.hasConflicts() && !hasCredentialChanges(credentials)) {
    std::string s = "No changes. Project \"" + plan.project + "\" matches the spec.";
    if (counts[Action::orphan]) {
      s += " (" + std::to_string(counts[Action::orphan]) + " orphaned, kept)";
    }
    return s;
  }
  std::string s = "Plan: " + std::to_string(counts[Action::create]) + " to create, " +
                  std::to_string(counts[Action::recreate]) + " to recreate, " +
                  std::to_string(counts[Action::start]) + " to start, " +
                  std::to_string(counts[Action::remove]) + " to remove";
  if (!credentials.empty()) {
    int generate = 0;
    int rotate = 0;
    for (const auto& c : credentials) {
      generate += c.action == "generate" ? 1 : 0;
      rotate += c.action == "rotate" ? 1 : 0;
    }
    s += "; " + std::to_string(generate) + " credential(s) to generate, " +
         std::to_string(rotate) + " to rotate";
  }
  s += ".";
  if (counts[Action::orphan]) s += " " + std::to_string(counts[Action::orphan]) + " orphaned (kept).";
  if (counts[Action::conflict]) {
    s += " " + std::to_string(counts[Action::conflict]) + " conflict(s) need the operator.";
  }
  return s;
}

std::string renderPlanText(const Plan& plan, const RenderOptions& options,
                           const std::vector<CredentialChange>& credentials) {
  std::string out;
  const char* reset = options.color ? "\033[0m" : "";
  for (const auto& c : credentials) {
    out += "  ";
    if (options.color) out += credentialColor(c);
    out += std::string(credentialSymbol(c)) + " credential." + c.credential + "." + c.field;
    out += reset;
    out += ": " + c.action + " (" + c.reason + ")\n";
  }
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
      out += "      " + f.field + ": " + renderValue(f.before, f.sensitive) + " -> " +
             renderValue(f.after, f.sensitive) + "\n";
    }
  }
  if (!plan.changes.empty() || !credentials.empty()) out += "\n";
  out += renderSummary(plan, credentials) + "\n";
  return out;
}

nlohmann::json renderPlanJson(const Plan& plan, const std::vector<CredentialChange>& credentials) {
  nlohmann::json changes = nlohmann::json::array();
  std::map<std::string, int> summary{{"create", 0}, {"recreate", 0}, {"start", 0},
                                     {"remove", 0}, {"orphan", 0},   {"conflict", 0},
                                     {"generate", 0}, {"rotate", 0}};
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
  nlohmann::json creds = nlohmann::json::array();
  for (const auto& c : credentials) {
    creds.push_back({{"resource", "credential." + c.credential + "." + c.field},
                     {"credential", c.credential},
                     {"field", c.field},
                     {"action", c.action},
                     {"reason", c.reason}});
    if (c.isChange()) summary[c.action]++;
  }
  return {{"format_version", 1},
          {"project", plan.project},
          {"credentials", creds},
          {"changes", changes},
          {"summary", summary},
          {"has_changes", hasChanges(plan, credentials)},
          {"has_conflicts", plan.hasConflicts()},
          {"running_images", plan.runningImages}};
}

}  // namespace foundationd::docker
