// Rendering a Docker plan and an apply report for people and for programs.
//
// Text reads like Terraform's plan: one line per change with a symbol
// (+ create, ~ recreate, > start, - remove, ! orphan/conflict), the reason,
// the changed fields, and a summary line. JSON is the same content as a stable
// document (format_version 1). Neither ever contains a secret value: secret
// fields render as "(sensitive)". Deterministic: same plan, same bytes.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "controllers/docker/docker_apply.hpp"
#include "controllers/docker/docker_plan.hpp"

namespace foundationd::docker {

struct RenderOptions {
  bool color = false;  // ANSI colours (only on a TTY)
};

std::string renderPlanText(const Plan& plan, const RenderOptions& options = {});
nlohmann::json renderPlanJson(const Plan& plan);
std::string renderSummary(const Plan& plan);  // "Plan: 2 to create, 1 to recreate, ..."

}  // namespace foundationd::docker
