#include "config/spec.hpp"

namespace foundationd::config {

Value Value::literal(std::string text, SourceLoc loc) {
  Value v;
  if (!text.empty()) v.segments.emplace_back(std::move(text));
  v.loc = std::move(loc);
  return v;
}

bool Value::sensitive() const noexcept {
  for (const auto& s : segments) {
    if (std::holds_alternative<CredentialRef>(s)) return true;
  }
  return false;
}

std::string Value::display() const {
  if (sensitive()) return "(sensitive)";
  std::string out;
  for (const auto& s : segments) out += std::get<std::string>(s);
  return out;
}

std::vector<CredentialRef> Value::references() const {
  std::vector<CredentialRef> out;
  for (const auto& s : segments) {
    if (const auto* ref = std::get_if<CredentialRef>(&s)) out.push_back(*ref);
  }
  return out;
}

const char* toString(Generator::Kind kind) noexcept {
  switch (kind) {
    case Generator::Kind::password: return "password";
    case Generator::Kind::hex: return "hex";
    case Generator::Kind::base64url: return "base64url";
    case Generator::Kind::uuid: return "uuid";
  }
  return "password";
}

const char* toString(DependCondition c) noexcept {
  switch (c) {
    case DependCondition::started: return "started";
    case DependCondition::healthy: return "healthy";
    case DependCondition::completed: return "completed";
  }
  return "started";
}

std::string toString(const OnChange& o) {
  switch (o.kind) {
    case OnChange::Kind::recreate: return "recreate";
    case OnChange::Kind::restart: return "restart";
    case OnChange::Kind::signal: return "signal:" + o.signal;
    case OnChange::Kind::exec: {
      std::string out = "exec:";
      for (std::size_t i = 0; i < o.command.size(); ++i) out += (i ? " " : "") + o.command[i];
      return out;
    }
  }
  return "recreate";
}

}  // namespace foundationd::config
