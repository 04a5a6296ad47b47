// The Forgejo controller against a real forge: the image tests/peers/
// forgejo-image builds (Gitea v1.26 from the Go module proxy: Forgejo's own
// module is refused by the proxy here, see that script), exported by
// scripts/test as FOUNDATIOND_FORGEJO_IMAGE, in a container this test starts
// (port 3000 published on a loopback port) and removes.
//
// Every outcome is checked against the forge itself (its API, basic auth
// with the spec's password, its hooks), not against the report alone.
// The test cases share one container and run in declaration order: the first
// bootstraps from scratch, the next ones converge and repair drift.
#include "controllers/forgejo/forgejo.hpp"
#include "controllers/forgejo/forgejo_plan.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <unistd.h>

#include "config/spec.hpp"
#include "controllers/docker/docker_client.hpp"
#include "controllers/transport/http_client.hpp"
#include "integration/docker_support.hpp"

using foundationd::Result;
using foundationd::Status;
using foundationd::StepOutcome;
using foundationd::config::CredentialRef;
using foundationd::docker::DockerApi;
using foundationd::docker::DockerClient;
using foundationd::docker::ExecOptions;
using foundationd::testing::runSync;
using foundationd::transport::PeerRequest;
using foundationd::transport::PeerResponse;
using json = nlohmann::json;
template <typename T>
using Task = foundationd::docker::Task<T>;
namespace fj = foundationd::forgejo;
namespace docker = foundationd::docker;
using namespace std::chrono_literals;

namespace {

constexpr const char* kAdmin = "platform-admin";
constexpr const char* kAdminPassword = "correct-horse-battery-staple-42";
constexpr const char* kHookUrl = "http://host.docker.internal:9420/v1/hooks/forgejo";

std::string forgejoImage() {
  const char* image = std::getenv("FOUNDATIOND_FORGEJO_IMAGE");
  if (image != nullptr && *image != '\0') return image;
  const char* skip = std::getenv("FOUNDATIOND_SKIP_INTEGRATION");
  const char* ci = std::getenv("CI");
  const bool inCi = ci != nullptr && std::string_view(ci) == "true";
  if (!inCi && skip != nullptr && std::string_view(skip) == "1") {
    MESSAGE("skipped: FOUNDATIOND_SKIP_INTEGRATION=1 and FOUNDATIOND_FORGEJO_IMAGE is unset");
    return {};
  }
  FAIL(
      "FOUNDATIOND_FORGEJO_IMAGE is not set: build it with tests/peers/forgejo-image (or run "
      "scripts/test) and export FOUNDATIOND_FORGEJO_IMAGE=<image>");
  return {};
}

class MapSecrets final : public docker::SecretResolver {
 public:
  std::map<CredentialRef, std::string> values;
  bool locked = false;
  std::optional<std::string> digest(const CredentialRef& ref) const override { return value(ref); }
  std::optional<std::string> value(const CredentialRef& ref) const override {
    if (locked) return std::nullopt;
    auto it = values.find(ref);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

// The state, in memory: keyed digests (BLAKE2b under a random key), memos and
// the sealed runner token.
class MemState final : public fj::StateAccess {
 public:
  MemState() { randombytes_buf(key_, sizeof key_); }
  Result<std::string> digestOf(std::string_view secret) override {
    unsigned char out[32];
    crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(secret.data()),
                       secret.size(), key_, sizeof key_);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, out, sizeof out);
    return std::string(hex);
  }
  Result<std::optional<std::string>> memo(const std::string& name) override {
    auto it = memos.find(name);
    if (it == memos.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status setMemo(const std::string& name, const std::string& value) override {
    memos[name] = value;
    return Status::success();
  }
  Status storeRunnerToken(std::string_view token) override {
    runnerTokens.emplace_back(token);
    return Status::success();
  }
  std::map<std::string, std::string> memos;
  std::vector<std::string> runnerTokens;
  // Vault's KV as the forge step sees it (path -> the "token" field): a
  // stand-in here; tests/e2e/test_stack.py has the real OpenBao.
  std::map<std::string, std::string> vault;

 private:
  unsigned char key_[crypto_generichash_KEYBYTES];
};

// The real Engine, with every exec's argv and env recorded (to show that no
// secret is ever passed there).
class RecordingDocker final : public DockerApi {
 public:
  explicit RecordingDocker(DockerApi& real) : real_(real) {}
  std::vector<std::vector<std::string>> argvs;
  std::vector<std::string> envs;
  Task<Result<std::vector<docker::ContainerSummary>>> listContainers(
      const docker::LabelFilter& f) override {
    return real_.listContainers(f);
  }
  Task<Result<docker::ContainerInspect>> inspectContainer(const std::string& id) override {
    return real_.inspectContainer(id);
  }
  Task<Result<std::string>> createContainer(const std::string& name, const json& body) override {
    return real_.createContainer(name, body);
  }
  Task<Status> startContainer(const std::string& id) override { return real_.startContainer(id); }
  Task<Status> stopContainer(const std::string& id, std::chrono::seconds t) override {
    return real_.stopContainer(id, t);
  }
  Task<Status> removeContainer(const std::string& id, bool force) override {
    return real_.removeContainer(id, force);
  }
  Task<Result<std::vector<docker::NetworkSummary>>> listNetworks(
      const docker::LabelFilter& f) override {
    return real_.listNetworks(f);
  }
  Task<Result<std::string>> createNetwork(const json& body) override {
    return real_.createNetwork(body);
  }
  Task<Status> removeNetwork(const std::string& id) override { return real_.removeNetwork(id); }
  Task<Status> connectNetwork(const std::string& n, const std::string& c,
                              const std::vector<std::string>& a) override {
    return real_.connectNetwork(n, c, a);
  }
  Task<Result<std::vector<docker::VolumeSummary>>> listVolumes(
      const docker::LabelFilter& f) override {
    return real_.listVolumes(f);
  }
  Task<Status> createVolume(const json& body) override { return real_.createVolume(body); }
  Task<Result<bool>> imagePresent(const std::string& ref) override {
    return real_.imagePresent(ref);
  }
  Task<Status> pullImage(const std::string& ref) override { return real_.pullImage(ref); }
  Task<Status> events(docker::LabelFilter labels,
                      std::function<bool(const docker::DockerEvent&)> onEvent) override {
    return real_.events(std::move(labels), std::move(onEvent));
  }
  Task<Result<docker::ExecResult>> exec(const std::string& container,
                                        const std::vector<std::string>& cmd,
                                        const ExecOptions& options) override {
    argvs.push_back(cmd);
    for (const auto& e : options.env) envs.push_back(e);
    return real_.exec(container, cmd, options);
  }
  std::uint64_t requestCount() const noexcept override { return real_.requestCount(); }

 private:
  DockerApi& real_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

foundationd::config::Value credential(const std::string& name, const std::string& field) {
  foundationd::config::Value v;
  v.segments.emplace_back(CredentialRef{name, field});
  return v;
}

// One forge for the whole file.
struct Forge {
  boost::asio::io_context io;
  DockerClient client{io.get_executor()};
  std::string image;
  std::string name = "fdtest-forgejo-it-" + std::to_string(::getpid());
  std::string id;
  std::string url;

  explicit Forge(std::string img) : image(std::move(img)) {
    (void)runSync(io, client.removeContainer(name, true));  // a leftover of a killed run
    const json body = {
        {"Image", image},
        {"Labels", {{"foundationd.test", "forgejo"}}},
        {"ExposedPorts", {{"3000/tcp", json::object()}}},
        {"Healthcheck",
         {{"Test", {"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/api/healthz"}},
          {"Interval", 500'000'000},
          {"Timeout", 3'000'000'000},
          {"Retries", 200}}},
        {"HostConfig",
         {{"PortBindings", {{"3000/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", ""}}}}}},
          {"ExtraHosts", {"host.docker.internal:host-gateway"}}}}};
    auto created = runSync(io, client.createContainer(name, body));
    REQUIRE_MESSAGE(created.ok(), (created.ok() ? "" : created.error().message));
    id = created.value();
    auto started = runSync(io, client.startContainer(id));
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.error().message));
    auto inspected = runSync(io, client.inspectContainer(id));
    REQUIRE(inspected.ok());
    const auto& ports = inspected->raw["NetworkSettings"]["Ports"]["3000/tcp"];
    REQUIRE_MESSAGE(ports.is_array(), inspected->raw["NetworkSettings"].dump());
    url = "http://127.0.0.1:" + ports[0]["HostPort"].get<std::string>();
  }
  ~Forge() {
    if (!id.empty()) (void)runSync(io, client.removeContainer(id, true));
  }

  docker::ExecResult exec(const std::vector<std::string>& cmd) {
    ExecOptions o;
    o.user = "git";
    auto r = runSync(io, client.exec(id, cmd, o));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return r.value();
  }

  // The API, as the test sees it (basic auth with the given password).
  PeerResponse api(const std::string& method, const std::string& path,
                   const std::string& password = kAdminPassword, const std::string& body = "") {
    PeerRequest req;
    req.method = method;
    req.url = url + "/api/v1" + path;
    req.basicAuth = foundationd::transport::BasicAuth{kAdmin, password};
    if (!body.empty()) {
      req.body = body;
      req.headers.emplace_back("Content-Type", "application/json");
    }
    auto r = foundationd::transport::peerRequest(req);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return r.value();
  }
};

Forge* forge() {
  static std::unique_ptr<Forge> f;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto image = forgejoImage();
    if (!image.empty()) f = std::make_unique<Forge>(image);
  }
  return f.get();
}

struct Fixture {
  Forge& forge;
  RecordingDocker docker{forge.client};
  MapSecrets secrets;
  foundationd::config::Spec spec;
  fj::Options options;
  std::vector<std::pair<std::string, json>> kvWrites;
  std::vector<std::string> kvReads;
  bool kvFails = false;
  std::vector<PeerRequest> requests;  // every API request the step made (test values only)
  // A request for which this answers true gets an HTTP 500 instead of the forge.
  std::function<bool(const PeerRequest&)> failIf;

  explicit Fixture(Forge& f, MemState& state) : forge(f), state_(state) {
    secrets.values[{"forgejo-admin", "password"}] = kAdminPassword;
    secrets.values[{"forgejo-webhook", "secret"}] = "hook-secret-one";
    foundationd::config::ForgejoSpec s;
    s.container = forge.name;
    s.url = forge.url;
    s.admin = foundationd::config::ForgejoAdmin{
        kAdmin, "platform@example.org", credential("forgejo-admin", "password"), {}};
    s.orgs["olsitec"] = {};
    s.repos["olsitec/foundation"] = {};
    s.repoOptions["olsitec/foundation"].name = "olsitec/foundation";
    s.repoOptions["olsitec/foundation"].description = "the foundation spec";
    s.repos[std::string(kAdmin) + "/notes"] = {};
    s.repoOptions[std::string(kAdmin) + "/notes"].isPrivate = true;
    s.runnerTokenVaultPath = "forgejo/runner-registration";
    s.webhooks["olsitec/foundation"] = foundationd::config::ForgejoWebhook{
        "olsitec/foundation", kHookUrl, credential("forgejo-webhook", "secret"), {}};
    spec.forgejo = s;
    options.waitReady = 120s;
  }

  fj::Report run() {
    fj::Deps deps;
    deps.docker = &docker;
    deps.state = &state_;
    deps.http = [this](const PeerRequest& req) {
      requests.push_back(req);
      if (failIf && failIf(req)) return Result<PeerResponse>(PeerResponse{500, {}, "{}"});
      return foundationd::transport::peerRequest(req);
    };
    deps.writeKv = [this](const std::string& path, const json& data) -> Status {
      if (kvFails) {
        return foundationd::Error::make(foundationd::ErrorCode::unavailable, "vault is down");
      }
      kvWrites.emplace_back(path, data);
      state_.vault[path] = data.value("token", "");
      return Status::success();
    };
    deps.readKv = [this](const std::string& path,
                         const std::string& field) -> Result<std::optional<std::string>> {
      if (kvFails) {
        return foundationd::Error::make(foundationd::ErrorCode::unavailable, "vault is down");
      }
      kvReads.push_back(path + "#" + field);
      auto it = state_.vault.find(path);
      if (it == state_.vault.end() || field != "token") return std::optional<std::string>();
      return std::optional<std::string>(it->second);
    };
    return runSync(forge.io, fj::reconcile(spec, secrets, deps, options));
  }

  // What `plan` would show: the forge's plan observe (reads only, every
  // request recorded) against the live forge, and the pure plan of it.
  std::vector<foundationd::PlanChange> plan() {
    fj::PlanDeps deps;
    deps.state = &state_;
    deps.http = [this](const PeerRequest& req) {
      requests.push_back(req);
      return foundationd::transport::peerRequest(req);
    };
    deps.runnerTokenVaultDigest = [this]() -> Result<std::optional<std::string>> {
      auto it = state_.vault.find(*spec.forgejo->runnerTokenVaultPath);
      if (it == state_.vault.end()) return std::optional<std::string>();
      auto d = state_.digestOf(it->second);
      if (!d) return d.error();
      return std::optional<std::string>(d.value());
    };
    return fj::plan(spec, fj::observeForPlan(spec, secrets, deps, /*hostAbsent=*/false));
  }

 private:
  MemState& state_;
};

MemState& sharedState() {
  static MemState s;
  return s;
}

const StepOutcome* find(const fj::Report& r, const std::string& name) {
  for (const auto& o : r.step.outcomes) {
    if (o.key.name == name) return &o;
  }
  return nullptr;
}

std::string describe(const fj::Report& r) {
  std::string out;
  for (const auto& o : r.step.outcomes) {
    out += o.key.name + ": ok=" + (o.ok ? "1" : "0") + " changed=" + (o.changed ? "1" : "0") +
           " drift=" + (o.drift ? "1" : "0") + " blocked=" + (o.blocked ? "1" : "0") + " " +
           o.message + "\n";
  }
  return out;
}

// The events a hook is sent, as a set (the forge lists them in any order,
// "pull_request" as its parts).
std::set<std::string> eventsOf(const json& hook) {
  std::set<std::string> out;
  for (const auto& e : hook["events"]) out.insert(e.get<std::string>());
  return out;
}

json hooksOf(Forge& f, const std::string& repo) {
  auto r = f.api("GET", "/repos/" + repo + "/hooks");
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

}  // namespace

TEST_CASE("forgejo: bootstrap from scratch") {
  Forge* f = forge();
  if (f == nullptr) return;  // explicit local opt-out
  Fixture fx(*f, sharedState());
  auto report = fx.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  REQUIRE(report.step.outcomes.size() == 6);
  for (const auto& o : report.step.outcomes) {
    CHECK(o.changed);
    CHECK_FALSE(o.drift);
  }
  CHECK(find(report, "admin/platform-admin")->message == "created");

  // The admin logs in with the spec's password and is an admin.
  auto me = f->api("GET", "/user");
  REQUIRE(me.status == 200);
  auto user = json::parse(me.body);
  CHECK(user["login"] == kAdmin);
  CHECK(user["is_admin"] == true);
  CHECK(user["email"] == "platform@example.org");
  // No bootstrap token was left behind.
  auto tokens = json::parse(f->api("GET", std::string("/users/") + kAdmin + "/tokens").body);
  CHECK(tokens.empty());

  auto org = f->api("GET", "/orgs/olsitec");
  CHECK(org.status == 200);
  auto repo = json::parse(f->api("GET", "/repos/olsitec/foundation").body);
  CHECK(repo["private"] == false);
  CHECK(repo["description"] == "the foundation spec");
  auto notes = json::parse(f->api("GET", std::string("/repos/") + kAdmin + "/notes").body);
  CHECK(notes["private"] == true);

  auto hooks = hooksOf(*f, "olsitec/foundation");
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0]["config"]["url"] == kHookUrl);
  CHECK(hooks[0]["config"]["content_type"] == "json");
  CHECK(eventsOf(hooks[0]).count("push") == 1);
  CHECK(eventsOf(hooks[0]).count("pull_request") == 1);  // plans on pull requests
  CHECK(eventsOf(hooks[0]).count("pull_request_sync") == 1);
  CHECK(eventsOf(hooks[0]).count("issues") == 0);
  CHECK(hooks[0]["active"] == true);

  // The runner token: made by the forge, handed to the KV writer and sealed.
  REQUIRE(fx.kvWrites.size() == 1);
  CHECK(fx.kvWrites[0].first == "forgejo/runner-registration");
  const auto token = fx.kvWrites[0].second["token"].get<std::string>();
  CHECK(token.size() >= 16);
  REQUIRE(sharedState().runnerTokens.size() == 1);
  CHECK(sharedState().runnerTokens[0] == token);
  // The forge answers the same token when asked again (it is the live one).
  auto again = f->exec({"forgejo", "actions", "generate-runner-token"});
  CHECK(again.exitCode == 0);
  CHECK(contains(again.stdoutText, token));

  // No secret went into an exec's argv or environment.
  REQUIRE_FALSE(fx.docker.argvs.empty());
  for (const auto& argv : fx.docker.argvs) {
    for (const auto& a : argv) {
      CHECK_FALSE(contains(a, kAdminPassword));
      CHECK_FALSE(contains(a, "hook-secret-one"));
    }
  }
  CHECK(fx.docker.envs.empty());
}

TEST_CASE("forgejo: a second run changes nothing") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());
  const auto started = std::chrono::steady_clock::now();
  auto report = fx.run();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  REQUIRE(report.step.outcomes.size() == 6);
  for (const auto& o : report.step.outcomes) CHECK_FALSE(o.changed);
  CHECK(fx.kvWrites.empty());
  CHECK(report.execs == 1);  // the runner token only
  CHECK(hooksOf(*f, "olsitec/foundation").size() == 1);
  // A figure, not an assertion (TESTING.md: no timed tests).
  MESSAGE("no-op reconcile: " << ms << " ms, " << report.execs << " exec(s), "
                              << report.httpRequests << " API request(s)");
}

TEST_CASE("forgejo: drift is repaired") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());

  SUBCASE("the admin's password changed by hand") {
    auto r = f->exec({"forgejo", "admin", "user", "change-password", "--username", kAdmin,
                      "--password", "someone-else-s-password-1", "--must-change-password=false"});
    REQUIRE_MESSAGE(r.exitCode == 0, r.stderrText);
    CHECK(f->api("GET", "/user").status == 401);
    auto report = fx.run();
    INFO(describe(report));
    REQUIRE(report.step.ok());
    const auto* o = find(report, "admin/platform-admin");
    CHECK(o->changed);
    CHECK(o->drift);
    CHECK(f->api("GET", "/user").status == 200);
    CHECK(f->api("GET", "/user", "someone-else-s-password-1").status == 401);
    auto tokens = json::parse(f->api("GET", std::string("/users/") + kAdmin + "/tokens").body);
    CHECK(tokens.empty());
  }

  SUBCASE("the admin's email and the repository's visibility") {
    auto e = f->api(
        "PATCH", std::string("/admin/users/") + kAdmin, kAdminPassword,
        json{{"login_name", kAdmin}, {"source_id", 0}, {"email", "other@example.org"}}.dump());
    REQUIRE(e.status == 200);
    auto p = f->api("PATCH", "/repos/olsitec/foundation", kAdminPassword,
                    json{{"private", true}, {"description", "changed"}}.dump());
    REQUIRE(p.status == 200);
    auto report = fx.run();
    INFO(describe(report));
    REQUIRE(report.step.ok());
    CHECK(find(report, "admin/platform-admin")->drift);
    CHECK(find(report, "repo/olsitec/foundation")->drift);
    CHECK(json::parse(f->api("GET", "/user").body)["email"] == "platform@example.org");
    auto repo = json::parse(f->api("GET", "/repos/olsitec/foundation").body);
    CHECK(repo["private"] == false);
    CHECK(repo["description"] == "the foundation spec");
  }

  SUBCASE("the webhook's url, events and active flag") {
    auto hooks = hooksOf(*f, "olsitec/foundation");
    REQUIRE(hooks.size() == 1);
    const auto id = hooks[0]["id"].get<std::int64_t>();
    auto p = f->api(
        "PATCH", "/repos/olsitec/foundation/hooks/" + std::to_string(id), kAdminPassword,
        json{{"config", {{"url", "http://elsewhere.invalid/hook"}, {"content_type", "form"}}},
             {"events", {"push", "issues"}},
             {"active", false}}
            .dump());
    REQUIRE_MESSAGE(p.status == 200, p.body);
    auto report = fx.run();
    INFO(describe(report));
    REQUIRE(report.step.ok());
    const auto* o = find(report, "webhook/olsitec/foundation");
    CHECK(o->changed);
    CHECK(o->drift);
    hooks = hooksOf(*f, "olsitec/foundation");
    REQUIRE(hooks.size() == 1);
    CHECK(hooks[0]["id"].get<std::int64_t>() == id);  // repaired in place
    CHECK(hooks[0]["config"]["url"] == kHookUrl);
    CHECK(hooks[0]["config"]["content_type"] == "json");
    CHECK(eventsOf(hooks[0]).count("push") == 1);
  CHECK(eventsOf(hooks[0]).count("pull_request") == 1);  // plans on pull requests
  CHECK(eventsOf(hooks[0]).count("pull_request_sync") == 1);
  CHECK(eventsOf(hooks[0]).count("issues") == 0);
    CHECK(hooks[0]["active"] == true);
  }

  SUBCASE("the webhook deleted") {
    auto hooks = hooksOf(*f, "olsitec/foundation");
    REQUIRE(hooks.size() == 1);
    auto d = f->api("DELETE", "/repos/olsitec/foundation/hooks/" +
                                  std::to_string(hooks[0]["id"].get<std::int64_t>()));
    REQUIRE(d.status == 204);
    auto report = fx.run();
    INFO(describe(report));
    REQUIRE(report.step.ok());
    const auto* o = find(report, "webhook/olsitec/foundation");
    CHECK(o->changed);
    CHECK(o->drift);
    CHECK(hooksOf(*f, "olsitec/foundation").size() == 1);
  }

  SUBCASE("a repository deleted") {
    REQUIRE(f->api("DELETE", std::string("/repos/") + kAdmin + "/notes").status == 204);
    auto report = fx.run();
    INFO(describe(report));
    REQUIRE(report.step.ok());
    CHECK(find(report, "repo/platform-admin/notes")->changed);
    CHECK(f->api("GET", std::string("/repos/") + kAdmin + "/notes").status == 200);
  }

  // Whatever was repaired, the next run is a no-op again.
  auto report = fx.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  for (const auto& o : report.step.outcomes) CHECK_FALSE(o.changed);
}

// "NAME ACTION field:before->after ..." per change, sorted by name.
std::vector<std::string> linesOf(const std::vector<foundationd::PlanChange>& changes) {
  std::vector<std::string> out;
  for (const auto& c : changes) {
    std::string line = c.key.name + " " + foundationd::planActionName(c.action);
    for (const auto& f : c.fields) line += " " + f.field + ":" + f.before + "->" + f.after;
    out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("forgejo: the plan shows each change made on the live forge, and nothing else") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());
  REQUIRE(fx.run().step.ok());
  CHECK(linesOf(fx.plan()).empty());  // converged: nothing to show

  // Three changes by hand: the repository's visibility and description, the
  // webhook's URL, the admin's second repository deleted.
  REQUIRE(f->api("PATCH", "/repos/olsitec/foundation", kAdminPassword,
                 json{{"private", true}, {"description", "changed"}}.dump())
              .status == 200);
  auto hooks = hooksOf(*f, "olsitec/foundation");
  REQUIRE(hooks.size() == 1);
  const auto id = std::to_string(hooks[0]["id"].get<std::int64_t>());
  REQUIRE(f->api("PATCH", "/repos/olsitec/foundation/hooks/" + id, kAdminPassword,
                 json{{"config", {{"url", "http://elsewhere.invalid/hook"},
                                  {"content_type", "json"}}},
                      {"events", hooks[0]["events"]}}  // the forge resets them when absent
                     .dump())
              .status == 200);
  REQUIRE(f->api("DELETE", std::string("/repos/") + kAdmin + "/notes").status == 204);

  fx.requests.clear();
  const auto lines = linesOf(fx.plan());
  std::string shown;
  for (const auto& l : lines) shown += l + "\n";
  INFO("the plan:\n" << shown);
  CHECK(lines == std::vector<std::string>{
                     "repo/olsitec/foundation update private:true->false "
                     "description:changed->the foundation spec",
                     "repo/platform-admin/notes create private:->true",
                     "webhook/olsitec/foundation update "
                     "url:http://elsewhere.invalid/hook->" + std::string(kHookUrl),
                 });
  // The plan read and changed nothing: every request a GET, the forge as left.
  REQUIRE_FALSE(fx.requests.empty());
  for (const auto& r : fx.requests) CHECK_MESSAGE(r.method == "GET", r.method << " " << r.url);
  CHECK(json::parse(f->api("GET", "/repos/olsitec/foundation").body)["private"] == true);
  CHECK(f->api("GET", std::string("/repos/") + kAdmin + "/notes").status == 404);

  // One apply makes the plan empty again.
  auto report = fx.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  CHECK(linesOf(fx.plan()).empty());
}

TEST_CASE("forgejo: a rotated webhook secret is pushed, not counted as drift") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());
  fx.secrets.values[{"forgejo-webhook", "secret"}] = "hook-secret-two";
  auto report = fx.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  const auto* o = find(report, "webhook/olsitec/foundation");
  CHECK(o->changed);
  CHECK_FALSE(o->drift);
  CHECK(o->message == "secret updated");
  auto second = fx.run();
  CHECK_FALSE(find(second, "webhook/olsitec/foundation")->changed);
}

TEST_CASE("forgejo: a runner token lost by Vault is written again, the state untouched") {
  Forge* f = forge();
  if (f == nullptr) return;
  MemState& st = sharedState();
  REQUIRE(st.vault.count("forgejo/runner-registration") == 1);
  const std::string token = st.vault["forgejo/runner-registration"];
  const auto versions = st.runnerTokens.size();

  // Deleted from Vault by hand: the next run writes the same token again.
  st.vault.erase("forgejo/runner-registration");
  Fixture fx(*f, st);
  auto report = fx.run();
  INFO(describe(report));
  const auto* o = find(report, "runner-token");
  REQUIRE(o != nullptr);
  CHECK(o->ok);
  CHECK(o->changed);
  CHECK(o->drift);
  CHECK(o->message == "written again to Vault at forgejo/runner-registration");
  REQUIRE(fx.kvWrites.size() == 1);
  CHECK(fx.kvWrites[0].second["token"] == token);
  CHECK(fx.kvReads == std::vector<std::string>{"forgejo/runner-registration#token"});
  CHECK(st.runnerTokens.size() == versions);  // the state already held it

  // Changed in Vault by hand: set back too.
  st.vault["forgejo/runner-registration"] = "not-the-token";
  Fixture fx2(*f, st);
  report = fx2.run();
  o = find(report, "runner-token");
  CHECK(o->changed);
  CHECK(o->drift);
  CHECK(st.vault["forgejo/runner-registration"] == token);

  // And Vault unreachable while reading it back: a failure, nothing written.
  Fixture fx3(*f, st);
  fx3.kvFails = true;
  report = fx3.run();
  o = find(report, "runner-token");
  CHECK_FALSE(o->ok);
  CHECK(contains(o->message, "reading the runner token back from Vault"));
  CHECK(fx3.kvWrites.empty());
}

TEST_CASE("forgejo: the runner token waits for Vault and is stored once it can be") {
  Forge* f = forge();
  if (f == nullptr) return;
  MemState fresh;  // a state that never stored it
  Fixture fx(*f, fresh);
  fx.kvFails = true;
  auto report = fx.run();
  INFO(describe(report));
  const auto* o = find(report, "runner-token");
  REQUIRE(o != nullptr);
  CHECK_FALSE(o->ok);
  CHECK(contains(o->message, "vault is down"));
  CHECK(fresh.runnerTokens.empty());
  CHECK(fresh.memos.count(fj::kRunnerTokenMemo) == 0);

  fx.kvFails = false;
  report = fx.run();
  o = find(report, "runner-token");
  CHECK(o->ok);
  CHECK(o->changed);
  REQUIRE(fx.kvWrites.size() == 1);
  REQUIRE(fresh.runnerTokens.size() == 1);
  CHECK(fx.kvWrites[0].second["token"] == fresh.runnerTokens[0]);
}

namespace {

// The names in an Actions secrets list (the forge returns no values).
std::set<std::string> secretNames(Forge& f, const std::string& owner) {
  auto r = f.api("GET", owner + "/actions/secrets");
  REQUIRE(r.status == 200);
  std::set<std::string> out;
  for (const auto& s : json::parse(r.body)) out.insert(s["name"].get<std::string>());
  return out;
}

std::string variableOf(Forge& f, const std::string& owner, const std::string& name) {
  auto r = f.api("GET", owner + "/actions/variables/" + name);
  if (r.status == 404) return "(none)";
  REQUIRE(r.status == 200);
  return json::parse(r.body)["data"].get<std::string>();
}

// The writes (not GETs) the step made to Actions secrets and variables.
std::vector<std::string> actionsWrites(const Fixture& fx) {
  std::vector<std::string> out;
  for (const auto& r : fx.requests) {
    if (r.method != "GET" && contains(r.url, "/actions/")) {
      out.push_back(r.method + " " + r.url.substr(r.url.find("/api/v1") + 7));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("forgejo: Actions secrets and variables are set, restored and rewritten") {
  Forge* f = forge();
  if (f == nullptr) return;
  const std::string repoPath = "/repos/olsitec/foundation";
  const std::string orgPath = "/orgs/olsitec";
  auto declare = [](Fixture& fx, const std::string& value) {
    fx.spec.forgejo->runnerTokenVaultPath.reset();  // not under test: spare its exec
    fx.secrets.values[{"ci-s3", "key"}] = value;
    auto& repo = fx.spec.forgejo->repoOptions["olsitec/foundation"].actions;
    repo.secrets["S3_SECRET_KEY"] = credential("ci-s3", "key");
    repo.variables["S3_ENDPOINT"] = "http://rustfs:9000";
    auto& org = fx.spec.forgejo->orgActions["olsitec"];
    org.secrets["ORG_S3_KEY"] = credential("ci-s3", "key");
    org.variables["REGISTRY"] = "forge.example.org";
  };

  // Created from the credential, through the API, the value in the body only.
  Fixture first(*f, sharedState());
  declare(first, "s3-secret-one");
  auto report = first.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  const auto* repo = find(report, "actions/repo/olsitec/foundation");
  REQUIRE(repo != nullptr);
  CHECK(repo->changed);
  CHECK_FALSE(repo->drift);
  CHECK(repo->message == "secret S3_SECRET_KEY created, variable S3_ENDPOINT created");
  CHECK(find(report, "actions/org/olsitec")->message ==
        "secret ORG_S3_KEY created, variable REGISTRY created");
  CHECK(secretNames(*f, repoPath).count("S3_SECRET_KEY") == 1);
  CHECK(secretNames(*f, orgPath).count("ORG_S3_KEY") == 1);
  CHECK(variableOf(*f, repoPath, "S3_ENDPOINT") == "http://rustfs:9000");
  CHECK(variableOf(*f, orgPath, "REGISTRY") == "forge.example.org");
  int carried = 0;
  for (const auto& r : first.requests) {
    CHECK_FALSE(contains(r.url, "s3-secret-one"));
    if (r.method == "PUT" && contains(r.url, "/actions/secrets/")) {
      CHECK(json::parse(r.body)["data"] == "s3-secret-one");
      ++carried;
    }
  }
  CHECK(carried == 2);
  // A secret the spec does not declare is left alone.
  REQUIRE(f->api("PUT", repoPath + "/actions/secrets/HAND_MADE", kAdminPassword,
                 R"({"data":"by hand"})")
              .ok());

  // A full page (50) of the organisation's secrets, set by hand, sorted
  // before ORG_S3_KEY: it is on the second page of the forge's list.
  for (int i = 0; i < 50; ++i) {
    const std::string name = "HAND_" + std::to_string(100 + i);
    REQUIRE(f->api("PUT", orgPath + "/actions/secrets/" + name, kAdminPassword,
                   R"({"data":"by hand"})")
                .ok());
  }

  // Converged: nothing written.
  Fixture second(*f, sharedState());
  declare(second, "s3-secret-one");
  report = second.run();
  REQUIRE(report.step.ok());
  CHECK_FALSE(find(report, "actions/repo/olsitec/foundation")->changed);
  CHECK_FALSE(find(report, "actions/org/olsitec")->changed);
  CHECK(actionsWrites(second).empty());

  // Deleted and changed by hand: restored, as drift.
  REQUIRE(f->api("DELETE", repoPath + "/actions/secrets/S3_SECRET_KEY").ok());
  REQUIRE(f->api("PUT", repoPath + "/actions/variables/S3_ENDPOINT", kAdminPassword,
                 R"({"name":"S3_ENDPOINT","value":"http://elsewhere"})")
              .ok());
  REQUIRE(secretNames(*f, repoPath).count("S3_SECRET_KEY") == 0);
  REQUIRE(variableOf(*f, repoPath, "S3_ENDPOINT") == "http://elsewhere");
  Fixture third(*f, sharedState());
  declare(third, "s3-secret-one");
  report = third.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  repo = find(report, "actions/repo/olsitec/foundation");
  CHECK(repo->drift);
  CHECK(repo->message ==
        "secret S3_SECRET_KEY restored (it had been deleted), variable S3_ENDPOINT set back "
        "to the spec's");
  CHECK_FALSE(find(report, "actions/org/olsitec")->changed);
  CHECK(secretNames(*f, repoPath).count("S3_SECRET_KEY") == 1);
  CHECK(variableOf(*f, repoPath, "S3_ENDPOINT") == "http://rustfs:9000");

  // Rotated: both secrets written again with the new value (a spec change,
  // not drift); a new variable value is an update. HAND_MADE is untouched.
  Fixture fourth(*f, sharedState());
  declare(fourth, "s3-secret-two");
  fourth.spec.forgejo->repoOptions["olsitec/foundation"].actions.variables["S3_ENDPOINT"] =
      "http://rustfs:9001";
  report = fourth.run();
  INFO(describe(report));
  REQUIRE(report.step.ok());
  repo = find(report, "actions/repo/olsitec/foundation");
  CHECK_FALSE(repo->drift);
  CHECK(repo->message == "secret S3_SECRET_KEY updated, variable S3_ENDPOINT updated");
  CHECK(find(report, "actions/org/olsitec")->message == "secret ORG_S3_KEY updated");
  CHECK(actionsWrites(fourth) ==
        std::vector<std::string>{"PUT /orgs/olsitec/actions/secrets/ORG_S3_KEY",
                                 "PUT /repos/olsitec/foundation/actions/secrets/S3_SECRET_KEY",
                                 "PUT /repos/olsitec/foundation/actions/variables/S3_ENDPOINT"});
  for (const auto& r : fourth.requests) {
    if (r.method == "PUT" && contains(r.url, "/actions/secrets/")) {
      CHECK(json::parse(r.body)["data"] == "s3-secret-two");
    }
  }
  CHECK(variableOf(*f, repoPath, "S3_ENDPOINT") == "http://rustfs:9001");
  CHECK(secretNames(*f, repoPath) ==
        std::set<std::string>{"HAND_MADE", "S3_SECRET_KEY"});

  // A write the forge refuses is not recorded: the next converge writes again.
  Fixture refused(*f, sharedState());
  declare(refused, "s3-secret-three");
  refused.failIf = [](const PeerRequest& r) {
    return r.method == "PUT" && contains(r.url, "/actions/secrets/S3_SECRET_KEY");
  };
  report = refused.run();
  INFO(describe(report));
  repo = find(report, "actions/repo/olsitec/foundation");
  CHECK_FALSE(repo->ok);
  CHECK(contains(repo->message, "setting secret S3_SECRET_KEY: HTTP 500"));
  Fixture retried(*f, sharedState());
  declare(retried, "s3-secret-three");
  report = retried.run();
  CHECK(find(report, "actions/repo/olsitec/foundation")->message ==
        "secret S3_SECRET_KEY updated");

  // Locked: blocked, nothing written.
  Fixture locked(*f, sharedState());
  declare(locked, "s3-secret-two");
  locked.secrets.locked = true;
  report = locked.run();
  CHECK(find(report, "actions/repo/olsitec/foundation")->blocked);
  CHECK(actionsWrites(locked).empty());
}

TEST_CASE("forgejo: locked, what needs a secret is blocked") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());
  fx.secrets.locked = true;
  auto report = fx.run();
  INFO(describe(report));
  CHECK_FALSE(report.step.ok());
  for (const auto& o : report.step.outcomes) {
    if (o.key.name == "runner-token") {
      CHECK(o.ok);  // needs no secret
    } else {
      CHECK(o.blocked);
      CHECK(contains(o.message, "locked"));
    }
  }
}

TEST_CASE("forgejo: a missing container blocks every resource, bounded") {
  Forge* f = forge();
  if (f == nullptr) return;
  Fixture fx(*f, sharedState());
  fx.spec.forgejo->container = "fdtest-forgejo-it-absent";
  fx.options.waitReady = 1s;
  auto report = fx.run();
  INFO(describe(report));
  REQUIRE(report.step.outcomes.size() == 6);
  for (const auto& o : report.step.outcomes) {
    CHECK(o.blocked);
    CHECK(contains(o.message, "does not exist"));
  }
}
