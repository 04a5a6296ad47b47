#include "controllers/postgres/postgres_plan.hpp"

#include <sodium.h>

#include "controllers/postgres/scram.hpp"
#include "controllers/postgres/sql.hpp"

namespace foundationd::postgres {
namespace {

using config::Kind;

config::ResourceKey roleKey(const std::string& instance, const std::string& role) {
  return {Kind::postgres, instance + "/role/" + role};
}
config::ResourceKey databaseKey(const std::string& instance, const std::string& db) {
  return {Kind::postgres, instance + "/database/" + db};
}

std::string credentialOf(const config::Value& v) {
  for (const auto& ref : v.references()) return "credential " + ref.name;
  return "the spec's value";
}

}  // namespace

std::vector<PlanChange> plan(const config::Spec& spec, const Observed& observed) {
  std::vector<PlanChange> out;
  for (const auto& [name, p] : spec.postgres) {
    auto it = observed.find(name);
    const ObservedInstance fallback{ObservedInstance::State::unknown, "not observed", {}, {}};
    const ObservedInstance& o = it == observed.end() ? fallback : it->second;
    for (const auto& [roleName, role] : p.roles) {
      PlanChange c;
      c.key = roleKey(name, roleName);
      if (o.state == ObservedInstance::State::unknown) {
        c.action = PlanAction::unknown;
        c.reason = o.why;
        out.push_back(std::move(c));
        continue;
      }
      auto r = o.roles.find(roleName);
      if (o.state == ObservedInstance::State::absent || r == o.roles.end()) {
        c.action = PlanAction::create;
        c.reason = o.state == ObservedInstance::State::absent ? o.why : "the role does not exist";
        c.fields.push_back({"login", "", "true", false});
        c.fields.push_back({"password", "", "(" + credentialOf(role.password) + ")", false});
        out.push_back(std::move(c));
        continue;
      }
      if (!r->second.login) c.fields.push_back({"login", "false", "true", false});
      if (!r->second.passwordMatches) {
        c.fields.push_back({"password", "", r->second.passwordWhy, true});
      } else if (!*r->second.passwordMatches) {
        c.fields.push_back({"password", "(differs)", "(" + credentialOf(role.password) + ")", false});
      }
      if (c.fields.empty()) continue;
      bool known = false;
      for (const auto& f : c.fields) known = known || !f.unknown;
      c.action = known ? PlanAction::update : PlanAction::unknown;
      std::string what;
      for (const auto& f : c.fields) {
        if (!f.unknown) what += (what.empty() ? "" : " and ") + f.field;
      }
      c.reason = known ? what + " differ" + (what.find(" and ") == std::string::npos ? "s" : "")
                       : "password: " + r->second.passwordWhy;
      out.push_back(std::move(c));
    }
    for (const auto& [dbName, db] : p.databases) {
      PlanChange c;
      c.key = databaseKey(name, dbName);
      if (o.state == ObservedInstance::State::unknown) {
        c.action = PlanAction::unknown;
        c.reason = o.why;
        out.push_back(std::move(c));
        continue;
      }
      auto d = o.databaseOwners.find(dbName);
      if (o.state == ObservedInstance::State::absent || d == o.databaseOwners.end()) {
        c.action = PlanAction::create;
        c.reason =
            o.state == ObservedInstance::State::absent ? o.why : "the database does not exist";
        c.fields.push_back({"owner", "", db.owner, false});
        out.push_back(std::move(c));
        continue;
      }
      if (d->second == db.owner) continue;
      c.action = PlanAction::update;
      c.reason = "owner differs";
      c.fields.push_back({"owner", d->second, db.owner, false});
      out.push_back(std::move(c));
    }
  }
  return out;
}

boost::asio::awaitable<Observed> observe(docker::DockerApi& api, const config::Spec& spec,
                                         const docker::SecretResolver& secrets) {
  Observed out;
  for (const auto& [name, p] : spec.postgres) {
    ObservedInstance& o = out[name];
    auto inspected = co_await api.inspectContainer(p.container);
    if (!inspected && inspected.error().code == ErrorCode::not_found) {
      o.state = ObservedInstance::State::absent;
      o.why = "container " + p.container + " does not exist yet: created with it";
      continue;
    }
    if (auto notReady = docker::hostNotReady(p.container, inspected)) {
      o.why = "cannot observe: " + *notReady;
      continue;
    }
    std::vector<std::string> roles;
    std::vector<std::string> dbs;
    for (const auto& [r, _] : p.roles) roles.push_back(r);
    for (const auto& [d, _] : p.databases) dbs.push_back(d);
    docker::ExecOptions eo;
    eo.stdinData = observeQuery(roles, dbs);
    eo.user = "postgres";
    eo.timeout = std::chrono::seconds(30);
    eo.maxOutput = std::size_t{4} << 20;
    auto r = co_await api.exec(p.container, psqlArgv(p.superuser), eo);
    if (!r) {
      o.why = "cannot observe: " + r.error().message;
      continue;
    }
    if (r->exitCode != 0) {
      o.why = "cannot observe: psql exit " + std::to_string(r->exitCode) + ": " +
              psqlErrorText(r->stderrText);
      continue;
    }
    auto live = parseObservation(r->stdoutText);
    sodium_memzero(r->stdoutText.data(), r->stdoutText.size());  // holds verifiers
    if (!live) {
      o.why = "cannot observe: " + live.error().message;
      continue;
    }
    o.state = ObservedInstance::State::live;
    for (auto& [roleName, lr] : live->roles) {
      auto spec_it = p.roles.find(roleName);
      if (spec_it == p.roles.end()) continue;
      ObservedRole role;
      role.login = lr.login;
      auto password = docker::resolveSecrets(spec_it->second.password, secrets);
      bool generated = true;  // every credential it uses has a value in the state
      for (const auto& ref : spec_it->second.password.references()) {
        generated = generated && secrets.digest(ref).has_value();
      }
      if (!password && generated) {
        role.passwordWhy = "cannot compare while locked";
      } else if (!password) {
        role.passwordMatches = false;  // its credential is generated by this apply
      } else {
        role.passwordMatches =
            lr.verifier && scramMatches(*password, *lr.verifier).value_or(false);
        sodium_memzero(password->data(), password->size());
      }
      if (lr.verifier) sodium_memzero(lr.verifier->data(), lr.verifier->size());
      o.roles[roleName] = std::move(role);
    }
    for (const auto& [dbName, ld] : live->databases) {
      if (p.databases.count(dbName)) o.databaseOwners[dbName] = ld.owner;
    }
  }
  co_return out;
}

}  // namespace foundationd::postgres
