// [containers.*]: every key of docs/spec.md, with the defaults of spec.hpp.
#include <algorithm>
#include <cmath>

#include "config/container_syntax.hpp"
#include "config/names.hpp"
#include "config/spec_reader.hpp"

namespace foundationd::config::detail {

namespace {

constexpr std::int64_t kDockerMinMemory = 6 * 1024 * 1024;  // Docker refuses less

const std::vector<std::string>& containerKeys() {
  static const std::vector<std::string> keys{
      "image",      "command",     "entrypoint", "env",        "secret_files", "networks",
      "volumes",    "ports",       "restart",    "user",       "healthcheck",  "depends_on",
      "labels",     "memory",      "cpus",       "read_only",  "privileged",   "cap_add",
      "cap_drop",   "stop_timeout", "tmpfs",      "files",      "run",
      "depends_timeout"};
  return keys;
}

bool isBuiltinNetwork(std::string_view n) { return n == "bridge" || n == "host" || n == "none"; }

std::string indexed(std::string_view key, std::size_t i) {
  return std::string(key) + "[" + std::to_string(i) + "]";
}

// Mount targets of one container: a path may be mounted once.
class Targets {
 public:
  void add(SpecReader& r, const std::string& path, const SourceLoc& at, const Where& w) {
    std::string p = path;
    if (p.size() > 1 && p.back() == '/') p.pop_back();
    if (!seen_.insert(p).second) {
      r.error(at, "mount target " + quote(p) + " is used more than once " + w.in());
    }
  }

 private:
  std::set<std::string> seen_;
};

class ContainerParser {
 public:
  ContainerParser(SpecReader& r, const std::string& name, const toml::table& t, const Where& w)
      : r_(r), t_(t), w_(w) {
    c_.name = name;
    c_.loc = r.loc(t);
  }

  ContainerSpec run() {
    r_.checkKeys(t_, containerKeys(), w_);
    image();
    c_.command = r_.textArray(t_, "command", w_);
    c_.entrypoint = r_.textArray(t_, "entrypoint", w_);
    env();
    secretFiles();
    files();
    networks();
    volumes();
    ports();
    restart();
    user();
    healthcheck();
    dependsOn();
    c_.labels = r_.labels(t_, w_);
    memory();
    cpus();
    if (auto b = r_.boolean(t_, "read_only", w_)) c_.readOnly = *b;
    if (auto b = r_.boolean(t_, "privileged", w_)) c_.privileged = *b;
    c_.capAdd = capabilities("cap_add");
    c_.capDrop = capabilities("cap_drop");
    stopTimeout();
    tmpfs();
    runMode();
    dependsTimeout();
    return std::move(c_);
  }

 private:
  void image() {
    auto image = r_.text(t_, "image", w_, true);
    if (!image) return;
    c_.image = *image;
    c_.imageLoc = r_.loc(*t_.get("image"));
    const std::string subject = "image " + quote(*image) + " " + w_.of();
    if (auto problem = imageProblem(*image)) {
      r_.error(c_.imageLoc, subject + " " + *problem);
    } else if (!imagePinned(*image)) {
      if (r_.strictPinning) {
        r_.error(c_.imageLoc, subject + " is not pinned by digest (strict_pinning = true)");
      } else {
        r_.warning(c_.imageLoc, subject + " is not pinned by digest");
      }
    }
  }

  void env() {
    const toml::table* env = r_.table(t_, "env", w_);
    if (!env) return;
    for (auto&& [key, node] : *env) {
      const std::string name(key.str());
      if (!isIdentifier(name)) {
        r_.error(r_.loc(key), "invalid environment variable name " + quote(name) + " " +
                                  w_.in() + ": must match [A-Za-z_][A-Za-z0-9_]*");
      }
      if (!node.is_string()) {
        r_.typeError(node, "a string (quote numbers and booleans)", "env " + quote(name), w_);
        continue;
      }
      if (auto v = r_.secretOf(node, "env " + quote(name), w_)) c_.env.emplace(name, *v);
    }
  }

  void secretFiles() {
    const toml::table* files = r_.table(t_, "secret_files", w_);
    if (!files) return;
    for (auto&& [key, node] : *files) {
      const std::string path(key.str());
      if (auto problem = absolutePathProblem(path)) {
        r_.error(r_.loc(key),
                 "secret file path " + quote(path) + " " + w_.of() + " " + *problem);
      } else {
        targets_.add(r_, path, r_.loc(key), w_);
      }
      if (auto v = r_.secretOf(node, "secret_files " + quote(path), w_)) {
        c_.secretFiles.emplace(path, *v);
      }
    }
  }

  void files() {
    const toml::table* files = r_.table(t_, "files", w_);
    if (!files) return;
    for (auto&& [key, node] : *files) {
      const std::string path(key.str());
      if (auto problem = absolutePathProblem(path)) {
        r_.error(r_.loc(key), "file path " + quote(path) + " " + w_.of() + " " + *problem);
      } else {
        targets_.add(r_, path, r_.loc(key), w_);
      }
      if (auto m = parseFileMount(r_, node, path, w_)) c_.files.emplace(path, std::move(*m));
    }
  }

  void networks() {
    const toml::array* nets = r_.array(t_, "networks", w_);
    if (!nets) return;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < nets->size(); ++i) {
      const toml::node& node = *nets->get(i);
      const std::string what = indexed("networks", i);
      NetworkAttachment a;
      a.loc = r_.loc(node);
      if (node.is_string()) {
        auto n = r_.textOf(node, quote(what), w_);
        if (!n) continue;
        a.network = *n;
      } else if (const toml::table* t = node.as_table()) {
        const Where ew = w_.element("networks", i);
        r_.checkKeys(*t, {"name", "aliases"}, ew);
        auto n = r_.text(*t, "name", ew, true);
        if (!n) continue;
        a.network = *n;
        if (auto aliases = r_.textArray(*t, "aliases", ew)) {
          for (const auto& alias : *aliases) {
            if (!isDockerName(alias)) {
              r_.error(r_.loc(*t->get("aliases")),
                       "invalid alias " + quote(alias) + " " + ew.in() +
                           ": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
            }
          }
          a.aliases = *aliases;
          if (!a.aliases.empty() && isBuiltinNetwork(a.network)) {
            r_.error(r_.loc(*t->get("aliases")),
                     "aliases need a user-defined network; Docker ignores them on " +
                         quote(a.network));
          }
        }
      } else {
        r_.typeError(node, "a network name or { name, aliases }", quote(what), w_);
        continue;
      }
      if (!isBuiltinNetwork(a.network)) {
        r_.checkRef(r_.declared.networks, a.network, "network", a.loc,
                    "in \"networks\" " + w_.of() + " (declare it in [networks])");
      }
      if (!seen.insert(a.network).second) {
        r_.error(a.loc, "network " + quote(a.network) + " is listed twice " + w_.in());
      }
      c_.networks.push_back(std::move(a));
    }
    for (const auto& a : c_.networks) {
      if ((a.network == "host" || a.network == "none") && c_.networks.size() > 1) {
        r_.error(a.loc, "network " + quote(a.network) + " " + w_.of() +
                            " cannot be combined with other networks");
      }
    }
  }

  void volumes() {
    const toml::array* vols = r_.array(t_, "volumes", w_);
    if (!vols) return;
    for (std::size_t i = 0; i < vols->size(); ++i) {
      const toml::node& node = *vols->get(i);
      auto text = r_.textOf(node, quote(indexed("volumes", i)), w_);
      if (!text) continue;
      auto parsed = parseMount(*text);
      if (auto* problem = std::get_if<std::string>(&parsed)) {
        r_.error(r_.loc(node), "invalid volume " + quote(*text) + " " + w_.of() + ": " + *problem);
        continue;
      }
      Mount m = std::get<Mount>(std::move(parsed));
      m.loc = r_.loc(node);
      if (!m.bind) {
        r_.checkRef(r_.declared.volumes, m.source, "volume", m.loc,
                    "in \"volumes\" " + w_.of() + " (declare it in [volumes])");
      }
      targets_.add(r_, m.target, m.loc, w_);
      c_.volumes.push_back(std::move(m));
    }
  }

  void ports() {
    const toml::array* ports = r_.array(t_, "ports", w_);
    if (!ports) return;
    for (std::size_t i = 0; i < ports->size(); ++i) {
      const toml::node& node = *ports->get(i);
      auto text = r_.textOf(node, quote(indexed("ports", i)), w_);
      if (!text) continue;
      auto parsed = parsePortMapping(*text);
      if (auto* problem = std::get_if<std::string>(&parsed)) {
        r_.error(r_.loc(node), "invalid port " + quote(*text) + " " + w_.of() + ": " + *problem);
        continue;
      }
      PortMapping p = std::get<PortMapping>(std::move(parsed));
      p.loc = r_.loc(node);
      c_.ports.push_back(std::move(p));
    }
    for (const auto& n : c_.networks) {
      if (n.network == "host" && !c_.ports.empty()) {
        r_.error(r_.keyLoc(t_, "ports"),
                 "\"ports\" " + w_.of() + " have no effect with network \"host\"; remove them");
      }
    }
  }

  void restart() {
    auto restart = r_.text(t_, "restart", w_);
    if (!restart) return;
    static const std::vector<std::string> policies{"no", "always", "unless-stopped",
                                                   "on-failure"};
    if (std::find(policies.begin(), policies.end(), *restart) == policies.end()) {
      std::string message = "invalid \"restart\" " + quote(*restart) + " " + w_.in() +
                            "; expected no, always, unless-stopped or on-failure";
      const std::string guess = closestMatch(*restart, policies);
      if (!guess.empty()) message += "; did you mean " + quote(guess) + "?";
      r_.error(r_.loc(*t_.get("restart")), std::move(message));
      return;
    }
    c_.restart = *restart;
  }

  void user() {
    auto user = r_.text(t_, "user", w_);
    if (!user) return;
    bool ok = !user->empty();
    for (char ch : *user) ok = ok && static_cast<unsigned char>(ch) > 0x20;
    if (!ok) {
      r_.error(r_.loc(*t_.get("user")), "invalid \"user\" " + quote(*user) + " " + w_.in() +
                                            "; expected \"uid[:gid]\" or \"name[:group]\"");
      return;
    }
    c_.user = *user;
  }

  // A broken healthcheck is still recorded: its errors are reported here, and
  // a "healthy" dependency on it must not add "has no healthcheck".
  void healthcheck() {
    const toml::table* h = r_.table(t_, "healthcheck", w_);
    if (!h) return;
    const Where hw = w_.child("healthcheck");
    r_.checkKeys(*h, {"test", "interval", "timeout", "start_period", "retries"}, hw);
    Healthcheck hc;
    hc.loc = r_.loc(*h);
    if (const toml::node* test = h->get("test")) {
      if (test->is_string()) {
        if (auto cmd = r_.textOf(*test, "\"test\"", hw)) hc.test = {"CMD-SHELL", *cmd};
      } else if (test->is_array()) {
        if (auto items = r_.textArray(*h, "test", hw)) {
          testShape(*items, *test, hw);
          hc.test = *items;
        }
      } else {
        r_.typeError(*test, "an array or a string", "\"test\"", hw);
      }
    } else {
      r_.missing(*h, "test", hw);
    }
    for (auto [key, field] : {std::pair{"interval", &hc.interval},
                              std::pair{"timeout", &hc.timeout},
                              std::pair{"start_period", &hc.startPeriod}}) {
      auto d = r_.duration(*h, key, hw);
      if (!d) continue;
      if (d->count() <= 0 && std::string_view(key) != "start_period") {
        r_.error(r_.loc(*h->get(key)), quote(key) + " " + hw.in() + " must be positive");
      }
      *field = d;
    }
    if (auto retries = r_.integer(*h, "retries", hw, 0, 1'000'000)) {
      hc.retries = static_cast<int>(*retries);
    }
    c_.healthcheck = std::move(hc);
  }

  void testShape(const std::vector<std::string>& items, const toml::node& node, const Where& hw) {
    const std::string kind = items.empty() ? "" : items.front();
    std::string problem;
    if (kind == "CMD") {
      if (items.size() < 2) problem = "[\"CMD\", ...] needs a command after \"CMD\"";
    } else if (kind == "CMD-SHELL") {
      if (items.size() != 2) problem = "[\"CMD-SHELL\", \"...\"] takes exactly one command string";
    } else if (kind == "NONE") {
      if (items.size() != 1) problem = "[\"NONE\"] takes no arguments";
    } else {
      problem = "the first item must be \"CMD\", \"CMD-SHELL\" or \"NONE\"";
    }
    if (!problem.empty()) r_.error(r_.loc(node), "invalid \"test\" " + hw.in() + ": " + problem);
  }

  void dependsOn() {
    const toml::node* node = t_.get("depends_on");
    if (!node) return;
    const std::string context = "in \"depends_on\" " + w_.of();
    auto add = [&](const std::string& target, DependCondition cond, const SourceLoc& at) {
      if (target == c_.name) {
        r_.error(at, "container " + quote(c_.name) + " cannot depend on itself");
        return;
      }
      r_.checkRef(r_.declared.containers, target, "container", at, context);
      for (const auto& d : c_.dependsOn) {
        if (d.container == target) {
          r_.error(at, "container " + quote(target) + " is listed twice " + context);
          return;
        }
      }
      c_.dependsOn.push_back(Dependency{target, cond, at});
    };
    if (const toml::array* a = node->as_array()) {
      for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::node& item = *a->get(i);
        if (auto target = r_.textOf(item, quote(indexed("depends_on", i)), w_)) {
          add(*target, DependCondition::started, r_.loc(item));
        }
      }
    } else if (const toml::table* t = node->as_table()) {
      const Where dw = w_.child("depends_on");
      for (auto&& [key, value] : *t) {
        const std::string target(key.str());
        auto cond = r_.textOf(value, quote(target), dw);
        if (!cond) continue;
        if (*cond != "started" && *cond != "healthy" && *cond != "completed") {
          r_.error(r_.loc(value), "invalid condition " + quote(*cond) + " for " +
                                      quote(target) + " " + context +
                                      "; expected \"started\", \"healthy\" or \"completed\"");
          continue;
        }
        add(target,
            *cond == "healthy"     ? DependCondition::healthy
            : *cond == "completed" ? DependCondition::completed
                                   : DependCondition::started,
            r_.loc(key));
      }
    } else {
      r_.typeError(*node, "an array of names or a table of conditions", "\"depends_on\"", w_);
    }
  }

  void memory() {
    const toml::node* node = t_.get("memory");
    if (!node) return;
    std::optional<std::int64_t> bytes;
    std::string shown;
    if (node->is_integer()) {
      bytes = node->as_integer()->get();
      shown = std::to_string(*bytes);
    } else if (node->is_string()) {
      shown = node->as_string()->get();
      bytes = parseSize(shown);
      if (!bytes) {
        r_.error(r_.loc(*node), "invalid size " + quote(shown) + " for \"memory\" " + w_.in() +
                                    "; use e.g. \"512MiB\", \"1GiB\" or \"1GB\"");
        return;
      }
    } else {
      r_.typeError(*node, "a size string (\"512MiB\")", "\"memory\"", w_);
      return;
    }
    if (*bytes < kDockerMinMemory) {
      r_.error(r_.loc(*node), "\"memory\" " + w_.in() +
                                  " must be at least 6MiB (Docker's minimum), got " + shown);
      return;
    }
    c_.memoryBytes = bytes;
  }

  void cpus() {
    const toml::node* node = t_.get("cpus");
    if (!node) return;
    double v = 0;
    if (node->is_integer()) {
      v = static_cast<double>(node->as_integer()->get());
    } else if (node->is_floating_point()) {
      v = node->as_floating_point()->get();
    } else {
      r_.typeError(*node, "a number", "\"cpus\"", w_);
      return;
    }
    if (!std::isfinite(v) || v <= 0 || v > 1e6) {
      r_.error(r_.loc(*node), "\"cpus\" " + w_.in() + " must be a positive number");
      return;
    }
    c_.cpus = v;
  }

  std::vector<std::string> capabilities(std::string_view key) {
    auto caps = r_.textArray(t_, key, w_);
    if (!caps) return {};
    for (const auto& cap : *caps) {
      bool ok = !cap.empty();
      for (char ch : cap) ok = ok && ((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_');
      if (!ok) {
        r_.error(r_.loc(*t_.get(key)), "invalid capability " + quote(cap) + " in " +
                                           quote(key) + " " + w_.of() +
                                           "; expected e.g. \"NET_ADMIN\" or \"ALL\"");
      }
    }
    return *caps;
  }

  void stopTimeout() {
    auto d = r_.duration(t_, "stop_timeout", w_);
    if (!d) return;
    if (d->count() % 1000 != 0) {
      r_.error(r_.loc(*t_.get("stop_timeout")),
               "\"stop_timeout\" " + w_.in() + " must be whole seconds (Docker counts seconds)");
      return;
    }
    c_.stopTimeout = d;
  }

  void tmpfs() {
    const toml::array* a = r_.array(t_, "tmpfs", w_);
    if (!a) return;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& node = *a->get(i);
      auto text = r_.textOf(node, quote(indexed("tmpfs", i)), w_);
      if (!text) continue;
      if (auto problem = tmpfsProblem(*text)) {
        r_.error(r_.loc(node), "invalid tmpfs " + quote(*text) + " " + w_.of() + ": " + *problem);
        continue;
      }
      targets_.add(r_, text->substr(0, text->find(':')), r_.loc(node), w_);
      c_.tmpfs.push_back(*text);
    }
  }

  // run = "service" (default) | "once" (a job). A job's restart policy may
  // only be "no" or "on-failure": Docker would start it again after it
  // completes.
  void runMode() {
    auto run = r_.text(t_, "run", w_);
    if (!run) return;
    const SourceLoc at = r_.loc(*t_.get("run"));
    if (*run != "service" && *run != "once") {
      r_.error(at, "invalid \"run\" " + quote(*run) + " " + w_.in() +
                       "; expected \"service\" (kept running) or \"once\" (a job, run to "
                       "completion once per config)");
      return;
    }
    c_.runOnce = *run == "once";
    c_.runLoc = at;
    if (c_.runOnce && (c_.restart == "always" || c_.restart == "unless-stopped")) {
      r_.error(r_.keyLoc(t_, "restart"),
               "restart = " + quote(c_.restart) + " " + w_.in() +
                   " contradicts run = \"once\": Docker would start the job again after it "
                   "completes; use \"no\" or \"on-failure\"");
    }
  }

  void dependsTimeout() {
    auto d = r_.duration(t_, "depends_timeout", w_);
    if (!d) return;
    if (d->count() <= 0) {
      r_.error(r_.loc(*t_.get("depends_timeout")),
               "\"depends_timeout\" " + w_.in() + " must be positive");
      return;
    }
    c_.dependsTimeout = d;
  }

  SpecReader& r_;
  const toml::table& t_;
  const Where& w_;
  ContainerSpec c_;
  Targets targets_;
};

}  // namespace

void parseContainers(SpecReader& r, const toml::table& root, Spec& spec) {
  r.forEachEntry(root, "containers", "container", dockerNameProblem,
                 [&](const std::string& name, const toml::table& t, const Where& w,
                     const SourceLoc&) {
                   spec.containers.emplace(name, ContainerParser(r, name, t, w).run());
                 });
}

}  // namespace foundationd::config::detail
