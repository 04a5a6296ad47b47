// `foundationd status` and `foundationd unseal`: clients of the running
// daemon's API over its Unix socket (the first unix: entry of api.listen).
#include <cctype>
#include <cstdio>

#include <boost/asio/io_context.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sodium.h>
#include <unistd.h>

#include "api/secret_json.hpp"
#include "controllers/transport/unix_http_client.hpp"
#include "daemon/cli_support.hpp"
#include "daemon/commands.hpp"
#include "daemon/passphrase.hpp"
#include "state/wipe.hpp"

namespace foundationd::daemon {
namespace {

namespace asio = boost::asio;

std::optional<std::string> unixSocketOf(const config::DaemonConfig& cfg) {
  for (const auto& l : cfg.apiListen) {
    if (l.rfind("unix:", 0) == 0) return l.substr(5);
  }
  return std::nullopt;
}

Result<transport::HttpResponse> call(const config::DaemonConfig& cfg, transport::HttpRequest req,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  auto socket = unixSocketOf(cfg);
  if (!socket) {
    return Error::make(ErrorCode::invalid_argument,
                       "api.listen has no unix: socket for the CLI to reach the daemon");
  }
  asio::io_context io;
  transport::UnixHttpClient client(io.get_executor(), *socket);
  req.timeout = timeout;
  auto r = runSync(io, client.request(std::move(req)));
  if (!r) {
    return Error::make(r.error().code, "cannot reach the daemon at " + *socket + ": " +
                                           r.error().message + " (is `foundationd serve` running?)");
  }
  return r;
}

std::string errorText(const transport::HttpResponse& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.contains("error")) return j["error"].value("message", r.body);
  return r.body;
}

using state::wipe;

// The bearer token (api.token_file), for the endpoints that need it, as the
// Authorization header of a sensitive request (the client zeroes it after).
// Read with read(2) into a buffer on the stack that is zeroed here (an
// ifstream would leave it in its own freed buffer).
Status authorize(const config::DaemonConfig& cfg, transport::HttpRequest& req) {
  const int fd = ::open(cfg.apiTokenFile.c_str(), O_RDONLY | O_CLOEXEC);
  char buf[512];
  ssize_t n = fd < 0 ? -1 : ::read(fd, buf, sizeof buf);
  if (fd >= 0) ::close(fd);
  std::size_t len = n > 0 ? static_cast<std::size_t>(n) : 0;
  for (std::size_t i = 0; i < len; ++i) {
    if (buf[i] == '\n') len = i;  // the first line
  }
  while (len > 0 && std::isspace(static_cast<unsigned char>(buf[len - 1]))) --len;
  if (len == 0) {
    sodium_memzero(buf, sizeof buf);
    return Error::make(ErrorCode::io, "cannot read the API token " + cfg.apiTokenFile +
                                          " (run as the daemon's user, or with sudo)");
  }
  std::string& header = req.headers["Authorization"];
  header.reserve(7 + len);
  header.append("Bearer ").append(buf, len);
  sodium_memzero(buf, sizeof buf);
  req.sensitive = true;
  return Status::success();
}

// A JSON body that carries a secret: built in memory zeroed when freed
// (api::SecretJson), copied once into the request, which the client zeroes.
void setSecretBody(transport::HttpRequest& req, const api::SecretJson& body) {
  const api::SecretJson::string_t text = body.dump();
  req.body.assign(text.data(), text.size());
  req.sensitive = true;
}

}  // namespace

int rotateThroughDaemon(const config::DaemonConfig& cfg, const std::string& credential) {
  transport::HttpRequest req;
  if (auto token = authorize(cfg, req); !token) {
    std::fprintf(stderr, "foundationd: %s\n", token.error().message.c_str());
    return 1;
  }
  req.method = "POST";
  req.target = "/v1/rotate";
  req.body = nlohmann::json{{"credential", credential}}.dump();
  std::printf("Rotating %s through the running daemon...\n", credential.c_str());
  std::fflush(stdout);
  // The answer comes when the consumers are updated: allow for slow recreations.
  auto r = call(cfg, std::move(req), std::chrono::minutes(30));
  if (!r) {
    std::fprintf(stderr, "foundationd: %s\n", r.error().message.c_str());
    return 1;
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || doc.is_discarded()) {
    std::fprintf(stderr, "foundationd: rotate refused by the daemon (HTTP %d): %s\n", r->status,
                 errorText(*r).c_str());
    return 1;
  }
  for (const auto& f : doc["rotated"]) {
    std::printf("credential.%s.%s: rotated (version %d)\n", credential.c_str(),
                f.value("field", "?").c_str(), f.value("version", 0));
  }
  if (doc.value("converged", false)) {
    std::printf("Converged: the daemon updated every consumer of %s.\n", credential.c_str());
    return 0;
  }
  std::printf("Not converged: the reconcile that followed ended \"%s\"; see `foundationd "
              "status`.\n",
              doc.value("result", std::string("?")).c_str());
  return 1;
}

int setSecretThroughDaemon(const config::DaemonConfig& cfg, const std::string& credential,
                           const std::string& field, const std::string& by) {
  transport::HttpRequest req;
  if (auto token = authorize(cfg, req); !token) {
    std::fprintf(stderr, "foundationd: %s\n", token.error().message.c_str());
    return 1;
  }
  auto value = readSecretValue("Value for " + credential + "." + field + " (not echoed): ");
  if (!value) {
    wipe(req.headers["Authorization"]);
    std::fprintf(stderr, "foundationd: %s\n", value.error().message.c_str());
    return 1;
  }
  req.method = "POST";
  req.target = "/v1/secrets";
  {
    api::SecretJson body = api::SecretJson::object();
    body["credential"] = credential;
    body["field"] = field;
    body["value"] = api::SecretJson::string_t(value->view());
    body["by"] = by;
    setSecretBody(req, body);
  }
  std::printf("Storing %s.%s through the running daemon...\n", credential.c_str(), field.c_str());
  std::fflush(stdout);
  // The answer comes when the consumers are updated: allow for slow recreations.
  auto r = call(cfg, std::move(req), std::chrono::minutes(30));
  if (!r) {
    std::fprintf(stderr, "foundationd: %s\n", r.error().message.c_str());
    return 1;
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || doc.is_discarded()) {
    std::fprintf(stderr, "foundationd: secret set refused by the daemon (HTTP %d): %s\n",
                 r->status, errorText(*r).c_str());
    return 1;
  }
  for (const auto& f : doc["rotated"]) {
    std::printf("credential.%s.%s: set (version %d)\n", credential.c_str(),
                f.value("field", "?").c_str(), f.value("version", 0));
  }
  if (doc.value("converged", false)) {
    std::printf("Converged: the daemon updated every consumer of %s.%s.\n", credential.c_str(),
                field.c_str());
    return 0;
  }
  std::printf("Stored, but not converged: the reconcile that followed ended \"%s\"; see "
              "`foundationd status`.\n",
              doc.value("result", std::string("?")).c_str());
  return 1;
}

int cmdStatus(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  transport::HttpRequest req;
  req.target = "/v1/status";
  auto r = call(*cfg, req);
  if (!r) {
    std::fprintf(stderr, "foundationd: %s\n", r.error().message.c_str());
    return 1;
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || doc.is_discarded()) {
    std::fprintf(stderr, "foundationd: status: HTTP %d: %s\n", r->status, errorText(*r).c_str());
    return 1;
  }
  // Converged (exit 0) only when unlocked, the last reconcile converged and
  // the newest spec revision was not rejected (else an older one is in force).
  const bool specRejected = doc["spec"].contains("last_error") && doc["spec"]["last_error"].is_string();
  const bool converged = doc["last_reconcile"].value("converged", false) &&
                         !doc.value("locked", true) && !specRejected;
  if (args.json) {
    std::printf("%s\n", doc.dump(2).c_str());
    return converged ? 0 : 2;
  }
  std::printf("locked:     %s\n", doc.value("locked", true) ? "yes (POST /v1/unseal, or `foundationd unseal`)" : "no");
  const auto& spec = doc["spec"];
  auto str = [](const nlohmann::json& j, const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("-");
  };
  std::printf("spec:       %s\n", str(spec, "source").c_str());
  std::printf("revision:   %s (latest)  %s (applied)\n", str(spec, "revision").c_str(),
              str(spec, "applied_revision").c_str());
  if (spec.contains("in_force") && spec["in_force"].is_string()) {
    std::printf("in force:   %s%s\n", spec["in_force"].get<std::string>().c_str(),
                spec.contains("signed_by") && spec["signed_by"].is_string()
                    ? (" (signed by " + spec["signed_by"].get<std::string>() + ")").c_str()
                    : "");
  }
  if (spec.contains("rolled_back") && spec["rolled_back"].is_string()) {
    std::printf("rollback:   %s\n", spec["rolled_back"].get<std::string>().c_str());
  }
  if (spec.contains("fetch_error") && spec["fetch_error"].is_string()) {
    std::printf("fetch:      FAILED (last attempt %s): %s\n", str(spec, "last_fetch").c_str(),
                spec["fetch_error"].get<std::string>().c_str());
  }
  if (specRejected) {
    std::printf("spec error: %s\n", spec["last_error"].get<std::string>().c_str());
  }
  if (spec.contains("warnings") && spec["warnings"].is_string()) {
    std::printf("spec warnings:\n%s", spec["warnings"].get<std::string>().c_str());
  }
  const auto& last = doc["last_reconcile"];
  std::printf("reconcile:  %s (ended %s)", str(last, "result").c_str(), str(last, "end").c_str());
  if (last.value("running", false)) {
    std::printf("; another running since %s", str(last, "running_since").c_str());
  }
  std::printf("\n");
  if (doc.contains("backup") && doc["backup"].is_object()) {  // [backup]: a condition, not a log line
    const auto& b = doc["backup"];
    std::string condition = str(b, "condition");
    if (condition != "ok" && condition != "never") {
      for (auto& c : condition) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    std::printf("backup:     %s: %s\n", condition.c_str(), str(b, "message").c_str());
    if (b.value("running", false)) std::printf("            a backup is running\n");
    if (b.contains("waiting") && b["waiting"].is_string()) {
      std::printf("            %s\n", b["waiting"].get<std::string>().c_str());
    }
    if (b.contains("last_complete") && b["last_complete"].is_object()) {
      const auto& c = b["last_complete"];
      std::printf("            last complete: %s, finished %s, offsite %s\n", str(c, "id").c_str(),
                  str(c, "finished").c_str(), str(c, "offsite").c_str());
    }
    if (b.contains("verification") && b["verification"].is_object()) {
      const auto& v = b["verification"];
      std::printf("            verified: %s", str(v, "last_complete").c_str());
      if (v.contains("last") && v["last"].is_object()) {
        const auto& l = v["last"];
        std::printf(" (last verify: %s of %s, finished %s%s)",
                    l.value("ok", false) ? "passed" : "FAILED", str(l, "id").c_str(),
                    str(l, "finished").c_str(),
                    l.value("ok", false) ? "" : (": " + str(l, "error")).c_str());
      }
      std::printf("\n");
    }
    std::printf("            next due: %s\n", str(b, "next_due").c_str());
  }
  for (const auto& res : doc["resources"]) {
    std::printf("  %-10s %-28s %-10s %s\n", str(res, "kind").c_str(), str(res, "name").c_str(),
                str(res, "status").c_str(), str(res, "reason").c_str());
  }
  return converged ? 0 : 2;
}

int cmdUnseal(const CliArgs& args) {
  auto cfg = loadConfig(args);
  if (!cfg) return 1;
  auto pass = readPassphrase(args.passphraseFile, "Master passphrase: ");
  if (!pass) {
    std::fprintf(stderr, "foundationd: %s\n", pass.error().message.c_str());
    return 1;
  }
  transport::HttpRequest req;
  req.method = "POST";
  req.target = "/v1/unseal";
  {
    api::SecretJson body = api::SecretJson::object();
    body["passphrase"] = api::SecretJson::string_t(pass->view());
    setSecretBody(req, body);
  }
  auto r = call(*cfg, std::move(req));
  if (!r) {
    std::fprintf(stderr, "foundationd: %s\n", r.error().message.c_str());
    return 1;
  }
  if (r->status == 200) {
    std::printf("Unlocked.\n");
    return 0;
  }
  if (r->status == 429) {
    auto it = r->headers.find("retry-after");
    std::fprintf(stderr, "foundationd: too many failed attempts; retry in %s s\n",
                 it == r->headers.end() ? "?" : it->second.c_str());
    return 3;
  }
  std::fprintf(stderr, "foundationd: unseal refused (HTTP %d): %s\n", r->status, errorText(*r).c_str());
  return 1;
}

}  // namespace foundationd::daemon
