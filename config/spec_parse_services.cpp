// [vault], [s3.*], [buckets.*], [postgres.*] and [forgejo].
#include <algorithm>
#include <cctype>

#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

// The `container` key of a service table: required, a declared container.
std::string hostContainer(SpecReader& r, const toml::table& t, const Where& w) {
  auto name = r.text(t, "container", w, true);
  if (!name) return {};
  r.checkRef(r.declared.containers, *name, "container", r.loc(*t.get("container")),
             "in \"container\" " + w.of());
  return *name;
}

void checkUrl(SpecReader& r, const toml::table& t, std::string_view key, const Where& w,
              std::string& out, bool required = false) {
  auto url = r.text(t, key, w, required);
  if (!url) return;
  if (auto problem = httpUrlProblem(*url)) {
    r.error(r.loc(*t.get(key)),
            "invalid URL " + quote(*url) + " for " + quote(key) + " " + w.in() + ": " + *problem);
  }
  out = *url;
}

// A secret written as a literal is accepted, but it is then in the spec's git
// history: say so.
Value secretKey(SpecReader& r, const toml::table& t, std::string_view key, const Where& w) {
  auto v = r.secret(t, key, w, true);
  if (!v) return {};
  if (!v->sensitive()) {
    r.warning(v->loc, quote(key) + " " + w.of() +
                          " is a literal; generate it in [credentials] and reference it as "
                          "${credentials.NAME.FIELD}");
  }
  return *v;
}

void nameError(SpecReader& r, const SourceLoc& at, std::string_view kind, std::string_view name,
               const std::string& problem) {
  r.error(at, "invalid " + std::string(kind) + " name " + quote(name) + ": " + problem);
}

void parsePolicies(SpecReader& r, const toml::table& vault, const Where& w, VaultSpec& v) {
  r.forEachEntry(
      vault, "policies", "policy",
      [](std::string_view s) -> std::optional<std::string> {
        if (s == "root") return "\"root\" is Vault's built-in policy and cannot be changed";
        bool ok = !s.empty() && s.front() != '.' && s.front() != '-' && s.front() != '_';
        for (char c : s) {
          ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                      c == '.');
        }
        if (!ok) return "must match [a-z0-9][a-z0-9_.-]* (Vault lowercases policy names)";
        return std::nullopt;
      },
      [&](const std::string& name, const toml::table& t, const Where& pw, const SourceLoc&) {
        r.checkKeys(t, {"rules"}, pw);
        VaultPolicy p;
        p.name = name;
        p.loc = r.loc(t);
        if (auto rules = r.text(t, "rules", pw, true)) {
          if (rules->find_first_not_of(" \t\r\n") == std::string::npos) {
            r.error(r.loc(*t.get("rules")), "\"rules\" " + pw.in() + " must not be empty");
          }
          p.rules = *rules;
        }
        v.policies.emplace(name, std::move(p));
      },
      w);
}

bool isMountName(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

}  // namespace

void parseVault(SpecReader& r, const toml::table& root, Spec& spec) {
  const toml::table* t = r.table(root, "vault", Where{});
  if (!t) return;
  const Where w{"vault"};
  r.checkKeys(*t, {"container", "address", "key_shares", "key_threshold", "kv_mount", "policies"},
              w);
  VaultSpec v;
  v.loc = r.loc(*t);
  v.container = hostContainer(r, *t, w);
  checkUrl(r, *t, "address", w, v.address);
  if (auto shares = r.integer(*t, "key_shares", w, 1, 255)) {
    v.keyShares = static_cast<int>(*shares);
    v.keyThreshold = std::min(v.keyThreshold, v.keyShares);  // default follows the shares
  }
  if (auto threshold = r.integer(*t, "key_threshold", w, 1, 255)) {
    v.keyThreshold = static_cast<int>(*threshold);
    const SourceLoc at = r.loc(*t->get("key_threshold"));
    if (v.keyThreshold > v.keyShares) {
      r.error(at, "\"key_threshold\" " + w.in() + " (" + std::to_string(v.keyThreshold) +
                      ") must not exceed \"key_shares\" (" + std::to_string(v.keyShares) + ")");
    }
  }
  if (v.keyShares > 1 && v.keyThreshold < 2) {
    r.error(r.keyLoc(*t, t->contains("key_threshold") ? "key_threshold" : "key_shares"),
            "\"key_threshold\" " + w.in() +
                " must be at least 2 when \"key_shares\" is more than 1 (Vault's rule)");
  }
  if (auto mount = r.text(*t, "kv_mount", w)) {
    static const std::vector<std::string> reserved{"sys", "auth", "cubbyhole", "identity"};
    if (!isMountName(*mount)) {
      r.error(r.loc(*t->get("kv_mount")), "invalid \"kv_mount\" " + quote(*mount) + " " +
                                              w.in() + ": must match [A-Za-z0-9][A-Za-z0-9_-]*");
    } else if (std::find(reserved.begin(), reserved.end(), *mount) != reserved.end()) {
      r.error(r.loc(*t->get("kv_mount")),
              "\"kv_mount\" " + quote(*mount) + " " + w.in() + " is reserved by Vault");
    }
    v.kvMount = *mount;
  }
  parsePolicies(r, *t, w, v);
  spec.vault = std::move(v);
}

void parseS3(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "s3", "s3", dockerNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
                   r.checkKeys(t, {"container", "endpoint", "region", "access_key", "secret_key"},
                               w);
                   S3Spec s;
                   s.name = name;
                   s.loc = r.loc(t);
                   s.container = hostContainer(r, t, w);
                   checkUrl(r, t, "endpoint", w, s.endpoint, true);
                   if (auto region = r.text(t, "region", w)) {
                     const bool ok = !region->empty() &&
                                     std::all_of(region->begin(), region->end(), [](char c) {
                                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                              c == '-';
                                     });
                     if (!ok) {
                       r.error(r.loc(*t.get("region")), "invalid \"region\" " + quote(*region) +
                                                            " " + w.in() +
                                                            ": expected e.g. \"us-east-1\"");
                     }
                     s.region = *region;
                   }
                   if (auto key = r.secret(t, "access_key", w, true)) s.accessKey = *key;
                   s.secretKey = secretKey(r, t, "secret_key", w);
                   spec.s3.emplace(name, std::move(s));
                 });
}

void parseBuckets(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "buckets", "bucket", bucketNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
                   r.checkKeys(t, {"s3", "versioning", "expire_days"}, w);
                   BucketSpec b;
                   b.name = name;
                   b.loc = r.loc(t);
                   if (auto s3 = r.text(t, "s3", w, true)) {
                     r.checkRef(r.declared.s3, *s3, "s3 server", r.loc(*t.get("s3")),
                                "in \"s3\" " + w.of() + " (declare it as [s3." + *s3 + "])");
                     b.s3 = *s3;
                   }
                   if (auto v = r.boolean(t, "versioning", w)) b.versioning = *v;
                   if (auto days = r.integer(t, "expire_days", w, 0, 1'000'000)) {
                     b.expireDays = static_cast<int>(*days);
                   }
                   spec.buckets.emplace(name, std::move(b));
                 });
}

void parsePostgres(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "postgres", "postgres instance", dockerNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
    r.checkKeys(t, {"container", "superuser", "roles", "databases"}, w);
    PostgresSpec p;
    p.name = name;
    p.loc = r.loc(t);
    p.container = hostContainer(r, t, w);
    if (auto su = r.text(t, "superuser", w)) {
      if (auto problem = postgresNameProblem(*su)) {
        r.error(r.loc(*t.get("superuser")),
                "invalid \"superuser\" " + quote(*su) + " " + w.in() + ": " + *problem);
      }
      p.superuser = *su;
    }
    r.forEachEntry(t, "roles", "role", postgresNameProblem,
                   [&](const std::string& role, const toml::table& rt, const Where& rw,
                       const SourceLoc&) {
                     r.checkKeys(rt, {"password"}, rw);
                     PostgresRole pr;
                     pr.name = role;
                     pr.loc = r.loc(rt);
                     pr.password = secretKey(r, rt, "password", rw);
                     p.roles.emplace(role, std::move(pr));
                   },
                   w);
    r.forEachEntry(t, "databases", "database", postgresNameProblem,
                   [&](const std::string& db, const toml::table& dt, const Where& dw,
                       const SourceLoc&) {
                     r.checkKeys(dt, {"owner"}, dw);
                     PostgresDatabase d;
                     d.name = db;
                     d.loc = r.loc(dt);
                     d.owner = p.superuser;
                     if (auto owner = r.text(dt, "owner", dw)) {
                       std::set<std::string> known{p.superuser};
                       if (const toml::table* roles = t.get_as<toml::table>("roles")) {
                         for (auto&& [k, v] : *roles) known.emplace(k.str());
                       }
                       r.checkRef(known, *owner, "role", r.loc(*dt.get("owner")),
                                  "in \"owner\" " + dw.of() + " (declare it in [" + w.path +
                                      ".roles], or use the superuser)");
                       d.owner = *owner;
                     }
                     p.databases.emplace(db, std::move(d));
                   },
                   w);
    spec.postgres.emplace(name, std::move(p));
  });
}

namespace {

void parseForgejoAdmin(SpecReader& r, const toml::table& t, const Where& w, ForgejoSpec& f) {
  const toml::table* a = r.table(t, "admin", w);
  if (!a) return;
  const Where aw = w.child("admin");
  r.checkKeys(*a, {"username", "email", "password"}, aw);
  ForgejoAdmin admin;
  admin.loc = r.loc(*a);
  if (auto user = r.text(*a, "username", aw, true)) {
    if (auto problem = forgejoNameProblem(*user)) {
      nameError(r, r.loc(*a->get("username")), "user", *user, *problem);
    }
    admin.username = *user;
  }
  if (auto email = r.text(*a, "email", aw, true)) {
    const auto at = email->find('@');
    if (at == 0 || at == std::string::npos || at + 1 >= email->size() ||
        email->find('@', at + 1) != std::string::npos ||
        email->find_first_of(" \t<>") != std::string::npos) {
      r.error(r.loc(*a->get("email")),
              "invalid \"email\" " + quote(*email) + " " + aw.in() + ": expected user@domain");
    }
    admin.email = *email;
  }
  admin.password = secretKey(r, *a, "password", aw);
  f.admin = std::move(admin);
}

// `actions_secrets` and `actions_variables` of a repository or organisation
// table `t` (at `w`): NAME = "value". Secrets may reference credentials
// (a literal is warned about, as elsewhere); variables may not: the forge
// shows them to anyone who can read the settings.
void parseActions(SpecReader& r, const toml::table& t, const Where& w, ForgejoActions& out) {
  auto each = [&](std::string_view section, std::string_view kind, auto&& fn) {
    const toml::table* st = r.table(t, section, w);
    if (!st) return;
    const Where sw = w.child(section);
    for (auto&& [k, node] : *st) {
      const std::string name(k.str());
      if (auto problem = forgejoActionsNameProblem(name)) {
        nameError(r, r.loc(k), kind, name, *problem);
        continue;
      }
      fn(name, node, sw);
    }
  };
  each("actions_secrets", "Actions secret",
       [&](const std::string& name, const toml::node& node, const Where& sw) {
         auto v = r.secretOf(node, quote(name), sw);
         if (!v) return;
         if (v->segments.empty()) {
           r.error(v->loc, quote(name) + " " + sw.of() + " is empty; the forge refuses an "
                                                         "empty value");
           return;
         }
         if (!v->sensitive()) {
           r.warning(v->loc, quote(name) + " " + sw.of() +
                                 " is a literal; generate it in [credentials] and reference "
                                 "it as ${credentials.NAME.FIELD}");
         }
         out.secrets.emplace(name, std::move(*v));
       });
  each("actions_variables", "Actions variable",
       [&](const std::string& name, const toml::node& node, const Where& sw) {
         auto v = r.textOf(node, quote(name), sw);
         if (!v) return;
         if (v->empty()) {
           r.error(r.loc(node), quote(name) + " " + sw.of() + " is empty; the forge refuses an "
                                                               "empty value");
           return;
         }
         out.variables.emplace(name, std::move(*v));
       });
}

void parseRepos(SpecReader& r, const toml::table& t, const Where& w, ForgejoSpec& f) {
  std::set<std::string> owners;
  if (const toml::table* orgs = t.get_as<toml::table>("orgs")) {
    for (auto&& [k, v] : *orgs) owners.emplace(k.str());
  }
  if (f.admin && !f.admin->username.empty()) owners.insert(f.admin->username);
  r.forEachEntry(
      t, "repos", "repository",
      [](std::string_view s) -> std::optional<std::string> {
        const auto slash = s.find('/');
        if (slash == s.npos || s.find('/', slash + 1) != s.npos) return "expected \"owner/name\"";
        if (auto p = forgejoNameProblem(s.substr(0, slash))) return "owner " + *p;
        if (auto p = forgejoRepoNameProblem(s.substr(slash + 1))) return "name " + *p;
        return std::nullopt;
      },
      [&](const std::string& repo, const toml::table& rt, const Where& rw, const SourceLoc& at) {
        r.checkKeys(rt, {"private", "description", "actions_secrets", "actions_variables"}, rw);
        const std::string owner = repo.substr(0, repo.find('/'));
        if (repo.find('/') != std::string::npos) {
          r.checkRef(owners, owner, "owner", at,
                     "of repository " + quote(repo) +
                         " (declare it in [forgejo.orgs], or use the admin's username)");
        }
        ForgejoRepo options;
        options.name = repo;
        options.loc = r.loc(rt);
        if (auto priv = r.boolean(rt, "private", rw)) options.isPrivate = *priv;
        if (auto desc = r.text(rt, "description", rw)) options.description = *desc;
        parseActions(r, rt, rw, options.actions);
        f.repos.emplace(repo, options.loc);
        f.repoOptions.emplace(repo, std::move(options));
      },
      w);
}

}  // namespace

void parseForgejo(SpecReader& r, const toml::table& root, Spec& spec) {
  const toml::table* t = r.table(root, "forgejo", Where{});
  if (!t) return;
  const Where w{"forgejo"};
  r.checkKeys(*t, {"container", "url", "admin", "orgs", "repos", "runner_token", "webhooks"}, w);
  ForgejoSpec f;
  f.loc = r.loc(*t);
  f.container = hostContainer(r, *t, w);
  checkUrl(r, *t, "url", w, f.url);
  parseForgejoAdmin(r, *t, w, f);
  r.forEachEntry(*t, "orgs", "organisation", forgejoNameProblem,
                 [&](const std::string& org, const toml::table& ot, const Where& ow,
                     const SourceLoc& at) {
                   r.checkKeys(ot, {"actions_secrets", "actions_variables"}, ow);
                   if (f.admin && f.admin->username == org) {
                     r.error(at, "organisation " + quote(org) +
                                     " has the admin's username; Forgejo users and "
                                     "organisations share one namespace");
                   }
                   f.orgs.emplace(org, r.loc(ot));
                   ForgejoActions actions;
                   parseActions(r, ot, ow, actions);
                   if (!actions.empty()) f.orgActions.emplace(org, std::move(actions));
                 },
                 w);
  parseRepos(r, *t, w, f);
  if (const toml::table* rt = r.table(*t, "runner_token", w)) {
    const Where rw = w.child("runner_token");
    r.checkKeys(*rt, {"vault_path"}, rw);
    if (auto path = r.text(*rt, "vault_path", rw, true)) {
      if (auto problem = vaultPathProblem(*path)) {
        r.error(r.loc(*rt->get("vault_path")),
                "invalid \"vault_path\" " + quote(*path) + " " + rw.in() + ": " + *problem);
      }
      f.runnerTokenVaultPath = *path;
    }
  }
  r.forEachEntry(*t, "webhooks", "webhook", [](std::string_view) { return std::nullopt; },
                 [&](const std::string& repo, const toml::table& ht, const Where& hw,
                     const SourceLoc& at) {
                   r.checkKeys(ht, {"url", "secret"}, hw);
                   std::set<std::string> repos;
                   for (const auto& [name, loc] : f.repos) repos.insert(name);
                   r.checkRef(repos, repo, "repository", at,
                              "for a webhook (declare it in [forgejo.repos])");
                   ForgejoWebhook hook;
                   hook.repo = repo;
                   hook.loc = r.loc(ht);
                   checkUrl(r, ht, "url", hw, hook.url, true);
                   hook.secret = secretKey(r, ht, "secret", hw);
                   f.webhooks.emplace(repo, std::move(hook));
                 },
                 w);
  spec.forgejo = std::move(f);
}

}  // namespace foundationd::config::detail
