#include "controllers/postgres/postgres.hpp"

#include <set>
#include <utility>

#include <sodium.h>

#include "common/async.hpp"
#include "controllers/postgres/scram.hpp"
#include "controllers/postgres/sql.hpp"
#include "state/wipe.hpp"

namespace foundationd::postgres {
namespace {

using config::Kind;
using Clock = std::chrono::steady_clock;
template <typename T>
using Task = boost::asio::awaitable<T>;

config::ResourceKey roleKey(const std::string& instance, const std::string& role) {
  return {Kind::postgres, instance + "/role/" + role};
}
config::ResourceKey databaseKey(const std::string& instance, const std::string& db) {
  return {Kind::postgres, instance + "/database/" + db};
}


bool roleUses(const config::PostgresRole& role, const std::string& credential) {
  for (const auto& ref : role.password.references()) {
    if (ref.name == credential) return true;
  }
  return false;
}

class Instance {
 public:
  Instance(docker::DockerApi& api, const config::PostgresSpec& p,
           const docker::SecretResolver& secrets, const Options& options, Report& report)
      : api_(api), p_(p), secrets_(secrets), options_(options), report_(report) {}

  Task<void> run() {
    std::vector<std::string> roles;
    std::vector<std::string> dbs;
    for (const auto& [name, r] : p_.roles) {
      if (!options_.onlyCredential || roleUses(r, *options_.onlyCredential)) roles.push_back(name);
    }
    if (!options_.onlyCredential) {
      for (const auto& [name, _] : p_.databases) dbs.push_back(name);
    } else if (roles.empty()) {
      co_return;  // rotation of a credential this instance does not use
    }
    std::vector<config::ResourceKey> keys;
    for (const auto& r : roles) keys.push_back(roleKey(p_.name, r));
    for (const auto& d : dbs) keys.push_back(databaseKey(p_.name, d));
    if (keys.empty()) keys.push_back({Kind::postgres, p_.name});

    auto live = co_await waitAndObserve(roles, dbs);
    if (!live) {
      const bool waiting = live.error().code == ErrorCode::unavailable;
      for (const auto& k : keys) {
        StepOutcome o;
        o.key = k;
        o.ok = false;
        o.blocked = waiting;
        o.message = live.error().message;
        report_.step.outcomes.push_back(std::move(o));
      }
      co_return;
    }
    if (roles.empty() && dbs.empty() && !options_.onlyCredential) {
      report_.step.outcomes.push_back({keys.front(), true, false, false, false, ""});
    }

    std::set<std::string> rolesReady;  // exist with LOGIN after this pass
    rolesReady.insert(p_.superuser);
    for (const auto& name : roles) {
      auto o = co_await reconcileRole(p_.roles.at(name), *live);
      if (o.ok) rolesReady.insert(name);
      report_.step.outcomes.push_back(std::move(o));
    }
    for (const auto& name : dbs) {
      report_.step.outcomes.push_back(
          co_await reconcileDatabase(p_.databases.at(name), *live, rolesReady));
    }
    if (options_.onlyCredential) co_return;
    for (const auto& [name, r] : live->roles) {
      if (name != p_.superuser && !p_.roles.count(name)) {
        report_.orphans.push_back(p_.name + "/role/" + name);
      }
    }
    for (const auto& [name, d] : live->databases) {
      if (!p_.databases.count(name)) report_.orphans.push_back(p_.name + "/database/" + name);
    }
  }

 private:
  Task<Result<docker::ExecResult>> psql(std::string script) {
    state::WipeOnExit wipe{script};
    docker::ExecOptions eo;
    eo.stdinData = script;
    eo.user = options_.execUser;
    eo.timeout = options_.execTimeout;
    eo.maxOutput = std::size_t{4} << 20;
    ++report_.execs;
    co_return co_await api_.exec(p_.container, psqlArgv(p_.superuser), eo);
  }

  // Waits for the container and PostgreSQL, then observes. An `unavailable`
  // error means "not ready yet" (blocked); anything else failed.
  Task<Result<Live>> waitAndObserve(const std::vector<std::string>& roles,
                                    const std::vector<std::string>& dbs) {
    const auto deadline = Clock::now() + options_.waitReady;
    const std::string query = observeQuery(roles, dbs);
    std::string why;
    for (;;) {
      auto notReady = docker::hostNotReady(p_.container, co_await api_.inspectContainer(p_.container));
      if (notReady) {
        why = std::move(*notReady);
      } else {
        auto r = co_await psql(query);
        if (!r) {
          if (r.error().code != ErrorCode::conflict && r.error().code != ErrorCode::not_found &&
              r.error().code != ErrorCode::timeout && r.error().code != ErrorCode::unavailable) {
            co_return Error::make(r.error().code, "observing roles and databases in container " +
                                                      p_.container + ": " + r.error().message);
          }
          why = r.error().message;
        } else if (r->exitCode == 0) {
          auto live = parseObservation(r->stdoutText);
          sodium_memzero(r->stdoutText.data(), r->stdoutText.size());  // holds verifiers
          if (!live) {
            co_return Error::make(live.error().code, "observing roles and databases in container " +
                                                         p_.container + ": " +
                                                         live.error().message);
          }
          co_return live;
        } else if (r->exitCode == 2) {  // psql: the connection failed (starting up?)
          why = "PostgreSQL in container " + p_.container +
                " does not answer yet: " + psqlErrorText(r->stderrText);
        } else if (r->exitCode == 126 || r->exitCode == 127) {
          co_return Error::make(ErrorCode::invalid_argument,
                                "container " + p_.container + " has no runnable psql (exit " +
                                    std::to_string(r->exitCode) +
                                    "): " + psqlErrorText(r->stdoutText + r->stderrText));
        } else {
          co_return Error::make(ErrorCode::peer, "observing roles and databases in container " +
                                                     p_.container + " failed (psql exit " +
                                                     std::to_string(r->exitCode) +
                                                     "): " + psqlErrorText(r->stderrText));
        }
      }
      if (Clock::now() + options_.pollInterval >= deadline) {
        co_return Error::make(ErrorCode::unavailable, "waiting: " + why);
      }
      co_await sleepFor(options_.pollInterval);
    }
  }

  // Runs a changing script; "" on success, else why it failed (no secret).
  Task<std::string> change(std::string script) {
    auto r = co_await psql(std::move(script));
    if (!r) co_return r.error().message;
    if (r->exitCode != 0) {
      co_return "psql exit " + std::to_string(r->exitCode) + ": " + psqlErrorText(r->stderrText);
    }
    co_return std::string();
  }

  Task<StepOutcome> reconcileRole(const config::PostgresRole& role, const Live& live) {
    StepOutcome o;
    o.key = roleKey(p_.name, role.name);
    auto password = docker::resolveSecrets(role.password, secrets_);
    if (!password) {
      o.ok = false;
      o.blocked = true;
      o.message =
          "blocked: the password's credential is not available (the state is locked, or it "
          "is not generated yet)";
      co_return o;
    }
    state::WipeOnExit wipePassword{*password};
    // ASCII: a verifier made here (the password itself never leaves). Other
    // text: the password, so that the server applies SASLprep itself.
    std::string secret = scramApplicable(*password) ? newScramVerifier(*password) : *password;
    state::WipeOnExit wipeSecret{secret};

    const auto it = live.roles.find(role.name);
    if (it == live.roles.end()) {
      const auto err = co_await change(scriptPreamble() + createRoleSql(role.name, secret));
      o.ok = err.empty();
      o.changed = o.ok;
      o.message = o.ok ? "created with LOGIN and its password" : "creating the role: " + err;
      co_return o;
    }
    const bool passwordOk =
        it->second.verifier && scramMatches(*password, *it->second.verifier).value_or(false);
    if (passwordOk && it->second.login) co_return o;  // converged
    std::string what = !passwordOk && !it->second.login ? "password and LOGIN"
                       : !passwordOk                    ? "password"
                                                        : "LOGIN";
    const auto err = co_await change(scriptPreamble() + alterRoleSql(role.name, secret));
    o.ok = err.empty();
    o.changed = o.ok;
    o.drift = o.ok && !(options_.onlyCredential && what == "password");
    o.message = o.ok ? (options_.onlyCredential ? "set the rotated " + what : what + " restored")
                     : "altering the role: " + err;
    co_return o;
  }

  Task<StepOutcome> reconcileDatabase(const config::PostgresDatabase& db, const Live& live,
                                      const std::set<std::string>& rolesReady) {
    StepOutcome o;
    o.key = databaseKey(p_.name, db.name);
    const bool ownerThere = rolesReady.count(db.owner) || live.roles.count(db.owner);
    if (!ownerThere) {
      o.ok = false;
      o.blocked = true;
      o.message = "blocked: waits for its owner role " + db.owner;
      co_return o;
    }
    const auto it = live.databases.find(db.name);
    if (it == live.databases.end()) {
      const auto err = co_await change(scriptPreamble() + createDatabaseSql(db.name, db.owner));
      o.ok = err.empty();
      o.changed = o.ok;
      o.message = o.ok ? "created, owned by " + db.owner : "creating the database: " + err;
      co_return o;
    }
    if (it->second.owner == db.owner) co_return o;
    const auto err = co_await change(scriptPreamble() + alterDatabaseOwnerSql(db.name, db.owner));
    o.ok = err.empty();
    o.changed = o.ok;
    o.drift = o.ok;
    o.message = o.ok ? "owner set back to " + db.owner + " (was " + it->second.owner + ")"
                     : "changing the owner: " + err;
    co_return o;
  }

  docker::DockerApi& api_;
  const config::PostgresSpec& p_;
  const docker::SecretResolver& secrets_;
  const Options& options_;
  Report& report_;
};

}  // namespace

bool usesCredential(const config::Spec& spec, const std::string& name) {
  for (const auto& [_, p] : spec.postgres) {
    for (const auto& [__, r] : p.roles) {
      if (roleUses(r, name)) return true;
    }
  }
  return false;
}

Task<Report> reconcile(docker::DockerApi& api, const config::Spec& spec,
                       const docker::SecretResolver& secrets, const Options& options) {
  Report report;
  for (const auto& [name, p] : spec.postgres) {
    Instance instance(api, p, secrets, options, report);
    co_await instance.run();
  }
  co_return report;
}

}  // namespace foundationd::postgres
