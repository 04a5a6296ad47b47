#include "config/interpolation.hpp"

#include <vector>

namespace foundationd::config {

namespace {

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(sep, start);
    parts.emplace_back(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

template <typename Map>
std::vector<std::string> keysOf(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string guess = closestMatch(word, candidates);
  return guess.empty() ? std::string() : "; did you mean " + q(guess) + "?";
}

class Interpolator {
 public:
  Interpolator(const SourceLoc& loc, const InterpolationScope& scope, SecretPolicy policy,
               std::string_view what, Diagnostics& diags)
      : loc_(loc), scope_(scope), policy_(policy), what_(what), diags_(diags) {}

  std::optional<Value> run(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
      const char c = text[i];
      if (c != '$' || i + 1 >= text.size()) {
        literal_ += c;
        ++i;
      } else if (text[i + 1] == '$') {
        literal_ += '$';
        i += 2;
      } else if (text[i + 1] == '{') {
        const std::size_t close = text.find('}', i + 2);
        if (close == std::string_view::npos) {
          fail("unterminated \"${\" in " + std::string(what_) +
               "; write \"$$\" for a literal \"$\"");
          break;
        }
        reference(text.substr(i + 2, close - i - 2));
        i = close + 1;
      } else {
        literal_ += c;  // a lone "$" is literal: "$HOME" in a shell command stays as is
        ++i;
      }
    }
    flush();
    if (failed_) return std::nullopt;
    value_.loc = loc_;
    return std::move(value_);
  }

 private:
  void fail(std::string message) {
    diags_.error(loc_, std::move(message));
    failed_ = true;
  }

  void flush() {
    if (!literal_.empty()) value_.segments.emplace_back(std::move(literal_));
    literal_.clear();
  }

  void reference(std::string_view body) {
    const std::string shown = "\"${" + std::string(body) + "}\"";
    const auto parts = split(body, '.');
    if (parts[0] == "versions") {
      if (parts.size() != 2 || parts[1].empty()) {
        fail("malformed reference " + shown + " in " + std::string(what_) +
             "; expected ${versions.KEY}");
        return;
      }
      version(parts[1]);
    } else if (parts[0] == "credentials") {
      if (parts.size() != 3 || parts[1].empty() || parts[2].empty()) {
        fail("malformed reference " + shown + " in " + std::string(what_) +
             "; expected ${credentials.NAME.FIELD}");
        return;
      }
      credential(parts[1], parts[2]);
    } else if (parts[0] == "forgejo" && parts.size() == 2 && parts[1] == "runner_token") {
      runnerToken();
    } else {
      fail("unknown reference " + shown + " in " + std::string(what_) +
           "; only ${versions.KEY}, ${credentials.NAME.FIELD} and ${forgejo.runner_token} are "
           "supported"
           " (write \"$$\" for a literal \"$\")");
    }
  }

  void version(const std::string& key) {
    if (!scope_.versions) {
      if (scope_.versionsUnavailable) {
        failed_ = true;  // the versions file's own error explains it
        return;
      }
      fail("unknown version " + q(key) + " in " + std::string(what_) +
           ": the spec declares no versions file (add versions = \"VERSIONS\" at the top level)");
      return;
    }
    auto it = scope_.versions->find(key);
    if (it == scope_.versions->end()) {
      if (scope_.versionsUnavailable) {
        failed_ = true;
        return;
      }
      fail("unknown version " + q(key) + " in " + std::string(what_) +
           suggestion(key, keysOf(*scope_.versions)));
      return;
    }
    literal_ += it->second;
  }

  void credential(const std::string& name, const std::string& field) {
    if (policy_ == SecretPolicy::forbidden) {
      fail("secrets may not be used in " + std::string(what_) + ": ${credentials." + name + "." +
           field + "} would leak into argv, labels or output; use secrets only in " +
           std::string(kSecretPlaces));
      return;
    }
    static const std::map<std::string, std::set<std::string>> none;
    const auto& creds = scope_.credentials ? *scope_.credentials : none;
    auto it = creds.find(name);
    if (it == creds.end()) {
      fail("unknown credential " + q(name) + " in " + std::string(what_) +
           suggestion(name, keysOf(creds)));
      return;
    }
    if (!it->second.contains(field)) {
      std::vector<std::string> fields(it->second.begin(), it->second.end());
      fail("unknown field " + q(field) + " of credential " + q(name) + " in " +
           std::string(what_) + suggestion(field, fields));
      return;
    }
    flush();
    value_.segments.emplace_back(CredentialRef{name, field});
  }

  void runnerToken() {
    if (policy_ == SecretPolicy::forbidden) {
      fail("secrets may not be used in " + std::string(what_) +
           ": ${forgejo.runner_token} would leak into argv, labels or output; use secrets only "
           "in " + std::string(kSecretPlaces));
      return;
    }
    if (!scope_.runnerToken) {
      fail("${forgejo.runner_token} in " + std::string(what_) +
           " needs [forgejo.runner_token] in the spec (with its vault_path): the forge step "
           "obtains the token only then");
      return;
    }
    flush();
    value_.segments.emplace_back(CredentialRef::forgejoRunnerToken());
  }

  const SourceLoc& loc_;
  const InterpolationScope& scope_;
  SecretPolicy policy_;
  std::string_view what_;
  Diagnostics& diags_;
  Value value_;
  std::string literal_;
  bool failed_ = false;
};

}  // namespace

std::optional<Value> interpolate(std::string_view text, const SourceLoc& loc,
                                 const InterpolationScope& scope, SecretPolicy policy,
                                 std::string_view what, Diagnostics& diags) {
  return Interpolator(loc, scope, policy, what, diags).run(text);
}

}  // namespace foundationd::config
