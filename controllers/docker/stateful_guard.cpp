#include "controllers/docker/stateful_guard.hpp"

#include <cctype>

namespace foundationd::docker {

std::map<std::string, std::string> statefulHosts(const config::Spec& spec) {
  std::map<std::string, std::string> out;
  for (const auto& [name, pg] : spec.postgres) out[pg.container] = "postgres." + name;
  if (spec.vault && !spec.vault->container.empty()) out[spec.vault->container] = "vault";
  if (spec.forgejo && !spec.forgejo->container.empty()) out[spec.forgejo->container] = "forgejo";
  for (const auto& [name, s3] : spec.s3) {
    if (!s3.container.empty()) out[s3.container] = "s3." + name;
  }
  return out;
}

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

bool versionLike(std::string_view v) {
  if (v.empty() || !std::isdigit(static_cast<unsigned char>(v.front()))) return false;
  for (char c : v) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> postgresMajorOfImage(const std::vector<std::string>& env) {
  for (const auto& e : env) {
    if (e.rfind("PG_MAJOR=", 0) == 0 && versionLike(e.substr(9))) return e.substr(9);
  }
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) != 0) continue;
    constexpr std::string_view kDir = "/usr/lib/postgresql/";
    const auto at = e.find(kDir);
    if (at == std::string::npos) continue;
    const auto start = at + kDir.size();
    const auto end = e.find('/', start);
    if (end == std::string::npos) continue;
    const std::string v = e.substr(start, end - start);
    if (versionLike(v)) return v;
  }
  return std::nullopt;
}

std::optional<std::string> parsePgVersion(std::string_view text) {
  std::string v = trim(text);
  if (!versionLike(v)) return std::nullopt;
  return v;
}

std::string majorUpgradeRefusal(const std::string& instance, const std::string& from,
                                const std::string& to) {
  return "not recreated: " + instance + "'s data directory was initialised by PostgreSQL " +
         from + " and the new image holds PostgreSQL " + to +
         ", which cannot start on it; foundationd never starts it there. A major upgrade is "
         "a migration: take a backup (`foundationd backup`), then either run pg_upgrade "
         "(from an image that has both versions) on a copy of the volume, or give the new "
         "image a new, empty volume, apply, and `foundationd restore --section " +
         (instance.rfind("postgres.", 0) == 0 ? "postgres/" + instance.substr(9) : instance) +
         "` into it (docs/postgres.md \"Major upgrades\"); or keep the " + from + " image";
}

namespace {

const FieldChange* imageChange(const Change& c) {
  for (const auto& f : c.fields) {
    if (f.field == "image") return &f;
  }
  return nullptr;
}

std::string text(const nlohmann::json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

// The major version of the data directory the running container `id` uses.
Task<std::optional<std::string>> dataDirMajor(DockerApi& api, const std::string& id) {
  ExecOptions eo;
  eo.timeout = std::chrono::seconds(30);
  eo.maxOutput = 4096;
  // Named: GCC 12 mishandles a braced list of literals inside co_await.
  const std::vector<std::string> cmd{"sh", "-c",
                                     "cat \"${PGDATA:-/var/lib/postgresql/data}/PG_VERSION\""};
  auto r = co_await api.exec(id, cmd, eo);
  if (!r || r->exitCode != 0) co_return std::nullopt;  // not running, or no data yet
  co_return parsePgVersion(r->stdoutText);
}

Task<std::optional<std::string>> imageMajor(DockerApi& api, const std::string& ref) {
  auto present = co_await api.imagePresent(ref);
  if (present && !*present) {
    if (auto st = co_await api.pullImage(ref); !st) co_return std::nullopt;  // apply reports it
  }
  auto env = co_await api.imageEnv(ref);
  if (!env) co_return std::nullopt;
  co_return postgresMajorOfImage(*env);
}

}  // namespace

Task<void> guardStatefulImages(DockerApi& api, const config::Spec& spec,
                               const ApplyOptions& options, ReconcileResult& result) {
  const auto hosts = statefulHosts(spec);
  std::vector<Change*> upgrades;
  for (auto& c : result.plan.changes) {
    if (c.key.kind != config::Kind::container || c.action != Action::recreate) continue;
    auto host = hosts.find(c.key.name);
    const FieldChange* image = imageChange(c);
    if (host == hosts.end() || image == nullptr) continue;
    if (host->second.rfind("postgres.", 0) == 0 && !c.id.empty()) {
      auto from = co_await dataDirMajor(api, c.id);
      auto to = co_await imageMajor(api, text(image->after));
      if (from && to && *from != *to) {
        c.action = Action::conflict;
        c.reason = majorUpgradeRefusal(host->second, *from, *to);
        continue;
      }
    }
    upgrades.push_back(&c);
  }
  if (upgrades.empty() || !options.beforeStatefulImageChange) co_return;
  std::string what;
  for (const Change* c : upgrades) {
    const FieldChange* image = imageChange(*c);
    what += (what.empty() ? "" : ", ") + hosts.at(c->key.name) + " (container " + c->key.name +
            ": " + text(image->before) + " -> " + text(image->after) + ")";
  }
  auto st = co_await options.beforeStatefulImageChange(what);
  if (st) co_return;
  for (Change* c : upgrades) {
    c->action = Action::conflict;
    c->reason = "not recreated with its new image: the backup taken before a stateful "
                "service's image changes failed: " + st.error().message +
                "; it is tried again at the next reconcile";
  }
}

}  // namespace foundationd::docker
