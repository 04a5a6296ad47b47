// Rendering a plan and an apply report for people and for programs.
//
// Text reads like Terraform's plan: one line per change with a symbol
// (+ create/generate, ~ recreate/rotate, > start, - remove, ! orphan/conflict),
// the action and one reason, then the changed fields in the spec's own keys and
// units (`stop_timeout: "2s" -> "3s"`, `memory: (none) -> "64MiB"`), and a
// summary line. JSON is the same content as a stable document
// (format_version 1) with typed values: `before`/`after` are the spec's values
// as JSON (null when not set). Neither ever contains a secret value: secret
// fields render as "(sensitive)". Deterministic: same plan, same bytes.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_plan.hpp"

namespace foundationd::docker {

struct RenderOptions {
  bool color = false;  // ANSI colours (only on a TTY)
};

// A credential field in a whole-spec plan: the credentials controller's plan,
// handed over by the daemon (which wires both controllers). Credentials come
// first in a plan: they are generated before anything uses them.
struct CredentialChange {
  std::string credential;
  std::string field;
  std::string action;  // "generate" | "rotate" | "params_changed" (informational)
  std::string reason;
  bool isChange() const { return action == "generate" || action == "rotate"; }
};

// True when applying would change something (Docker or credentials).
bool hasChanges(const Plan& plan, const std::vector<CredentialChange>& credentials);

std::string renderPlanText(const Plan& plan, const RenderOptions& options = {},
                           const std::vector<CredentialChange>& credentials = {});
nlohmann::json renderPlanJson(const Plan& plan,
                              const std::vector<CredentialChange>& credentials = {});
// "Plan: 2 to create, 1 to recreate, 0 to start, 0 to remove; 1 credential(s)
// to generate, 0 to rotate." (the credential part when the plan has any), or
// "No changes. Project "p" matches the spec."
std::string renderSummary(const Plan& plan,
                          const std::vector<CredentialChange>& credentials = {});
// A single value as the text plan shows it: JSON, "(none)" for null,
// (sensitive) bare.
std::string renderValue(const nlohmann::json& value, bool sensitive);

}  // namespace foundationd::docker
