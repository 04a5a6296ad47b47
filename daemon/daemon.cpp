#include "daemon/daemon.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/async.hpp"
#include "config/spec_loader.hpp"
#include "controllers/docker/container_config.hpp"
#include "controllers/docker/docker_plan.hpp"
#include "controllers/docker/plan_render.hpp"
#include "daemon/log.hpp"
#include "daemon/systemd.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

Daemon::Daemon(asio::io_context& io, config::DaemonConfig config, std::string configPath)
    : io_(io),
      config_(std::move(config)),
      configPath_(std::move(configPath)),
      docker_(io.get_executor(), config_.dockerSocket) {}

Daemon::~Daemon() {
  key_.lock();
  pool_.join();
}

std::chrono::seconds Daemon::unsealBackoff(std::int64_t failures) {
  if (failures <= 0) return std::chrono::seconds(0);
  // 1 s, 2 s, 4 s, ... capped at 15 minutes.
  std::int64_t s = 1;
  for (std::int64_t i = 1; i < failures && s < 900; ++i) s *= 2;
  return std::chrono::seconds(std::min<std::int64_t>(s, 900));
}

Status Daemon::start() {
  auto store = state::Store::openDir(config_.stateDir);
  if (!store) {
    return Error::make(store.error().code,
                       "cannot open the state in " + config_.stateDir + ": " + store.error().message);
  }
  store_ = std::move(store).value();
  auto init = store_->isInitialized();
  if (!init) return init.error();
  initialized_ = init.value();

  auto token = api::ApiToken::loadOrCreate(config_.apiTokenFile);
  if (!token) return token.error();
  if (token->generated()) {
    log::info("api.token_generated", {{"file", config_.apiTokenFile}});
  }
  token_.emplace(std::move(token).value());

  docker_.setRequestObserver([this](std::string_view endpoint, int status, std::chrono::nanoseconds took) {
    metrics_.observeDockerRequest(endpoint, status, took);
  });

  router_ = std::make_unique<api::Router>(*this, *token_, metrics_);
  api::ServerOptions options;
  options.listen = config_.apiListen;
  server_ = std::make_unique<api::Server>(io_.get_executor(), *router_, options);
  if (auto st = server_->start(); !st) return st;
  for (const auto& a : server_->addresses()) log::info("api.listening", {{"address", a}});

  SchedulerOptions sched;
  sched.resync = config_.resyncInterval;
  scheduler_ = std::make_unique<Scheduler>(io_.get_executor(), sched,
                                           [this](const Batch& b) { return reconcile(b); });
  loadSpec();
  startSource();
  scheduler_->triggerAll("start-up");
  systemd::ready(initialized_ ? "locked: waiting for passphrase"
                              : "locked: state not initialised (foundationd init)");
  log::info("serve.ready", {{"state_dir", config_.stateDir},
                            {"initialized", initialized_ ? "true" : "false"}});
  return Status::success();
}

asio::awaitable<int> Daemon::run() {
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, scheduler_->run(), [](std::exception_ptr e) {
    if (e) log::error("scheduler.crashed");
  });
  asio::co_spawn(ex, watchdogLoop(), [](std::exception_ptr e) {
    if (e) log::error("watchdog.crashed");
  });
  asio::co_spawn(ex, watchDockerEvents(),
                 asio::bind_cancellation_slot(eventsStop_.slot(), [](std::exception_ptr e) {
                   if (e) log::error("docker_events.crashed");
                 }));
  asio::co_spawn(ex, watchVault(), [](std::exception_ptr e) {
    if (e) log::error("vault_watch.crashed");
  });

  // Unattended unseal: systemd's LoadCredentialEncrypted=passphrase.
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
    const auto file = std::filesystem::path(dir) / "passphrase";
    std::ifstream in(file);
    if (in) {
      std::string line;
      std::getline(in, line);
      auto pass = state::SecretBytes::copyOf(line);
      std::fill(line.begin(), line.end(), '\0');
      auto r = co_await unseal(std::move(pass));
      log::info("unseal.credential", {{"result", api::outcomeName(r.outcome)}});
    }
  }

  asio::signal_set signals(ex, SIGTERM, SIGINT, SIGHUP);
  while (!stopping_) {
    boost::system::error_code ec;
    int sig = co_await signals.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    if (sig == SIGHUP) {
      reloadConfig();
      continue;
    }
    stopping_ = true;
  }
  systemd::stopping();
  log::info("serve.stopping");
  // End the events subscription (it would wait for the next Docker event).
  eventsStop_.emit(asio::cancellation_type::terminal);
  scheduler_->stop();
  server_->stop();
  // Let the reconcile in flight finish its step: nothing is cut mid-write.
  while (scheduler_->busy()) co_await sleepFor(std::chrono::milliseconds(50));
  key_.lock();
  log::info("serve.stopped");
  co_return 0;
}

asio::awaitable<void> Daemon::watchdogLoop() {
  auto period = systemd::watchdogPeriod();
  if (!period) co_return;
  while (!stopping_) {
    systemd::watchdog();
    co_await sleepFor(*period);
  }
}

void Daemon::reloadConfig() {
  systemd::reloading();
  if (configPath_.empty()) {
    log::info("config.reload", {{"result", "no config file: defaults kept"}});
    systemd::reloaded();
    return;
  }
  auto loaded = config::loadDaemonConfigFile(configPath_);
  if (!loaded.config) {
    for (const auto& d : loaded.diagnostics.sorted()) log::error("config.invalid", {{"at", d.format()}});
    log::error("config.reload", {{"result", "rejected; the running config stays in force"}});
    systemd::reloaded();
    return;
  }
  auto next = std::move(*loaded.config);
  if (next.apiListen != config_.apiListen || next.stateDir != config_.stateDir ||
      next.dockerSocket != config_.dockerSocket || next.apiTokenFile != config_.apiTokenFile) {
    log::warn("config.reload", {{"note", "api.listen, state_dir, docker.socket and api.token_file "
                                          "take effect at the next restart"}});
    next.apiListen = config_.apiListen;
    next.stateDir = config_.stateDir;
    next.dockerSocket = config_.dockerSocket;
    next.apiTokenFile = config_.apiTokenFile;
  }
  config_ = std::move(next);
  specDigest_.clear();  // re-read the source
  log::info("config.reload", {{"result", "applied"}});
  systemd::reloaded();
  sourceReloaded();
  scheduler_->triggerAll("config reloaded");
}

void Daemon::loadSpec() {
  if (config_.source.kind != "file") return;  // git: daemon_source.cpp's fetch loop
  const std::string& path = config_.source.path;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    specError_ = "cannot read the spec " + path;
    return;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string digest = docker::sha256Hex(buf.str());
  if (digest == specDigest_) return;  // unchanged (a bad spec is not re-reported every resync)
  specDigest_ = digest;
  const std::string revision = "sha256:" + digest.substr(0, 12);
  specRevision_ = revision;
  auto loaded = config::loadSpecFileText(path, buf.str());
  if (!loaded.spec) {
    specError_ = loaded.diagnostics.formatAll();
    log::error("spec.rejected", {{"revision", revision}, {"errors", std::to_string(loaded.diagnostics.errorCount())}});
    for (const auto& d : loaded.diagnostics.sorted()) log::error("spec.diagnostic", {{"at", d.format()}});
    if (store_) (void)store_->recordSpecRevision(revision, "file:" + path, state::SpecRevisionStatus::rejected, specError_);
    return;
  }
  specError_.clear();
  spec_ = std::move(loaded.spec);
  specInForce_ = revision;
  if (store_) (void)store_->recordSpecRevision(revision, "file:" + path, state::SpecRevisionStatus::seen);
  log::info("spec.loaded", {{"revision", revision}, {"containers", std::to_string(spec_->containers.size())}});
}

void Daemon::setResource(const Key& key, api::ResourceStatus status, const std::string& reason) {
  auto& r = resources_[key];
  if (r.name.empty() || r.status != status) r.lastTransition = api::Clock::now();
  r.kind = config::toString(key.kind);
  r.name = key.name;
  r.status = status;
  r.reason = reason;
}

api::StatusSnapshot Daemon::status() {
  api::StatusSnapshot s;
  s.locked = key_.locked();
  s.vault.present = spec_ && spec_->vault.has_value();
  s.vault.initialized = vault_.initialized;
  s.vault.sealed = vault_.sealed;
  s.spec = specState();
  s.lastReconcile = lastReconcile_;
  s.lastReconcile.running = scheduler_ && scheduler_->busy();
  for (const auto& [_, r] : resources_) s.resources.push_back(r);
  return s;
}

void Daemon::publishStatus() {
  auto s = status();
  metrics_.updateFromStatus(s);
  std::size_t converged = 0;
  for (const auto& r : s.resources) converged += r.status == api::ResourceStatus::converged;
  if (s.locked && !initialized_) {
    systemd::status("locked: state not initialised (foundationd init)");
  } else if (s.locked) {
    systemd::status("locked: waiting for passphrase (" + std::to_string(converged) + "/" +
                    std::to_string(s.resources.size()) + " converged)");
  } else {
    systemd::status((converged == s.resources.size() ? "converged " : "not converged ") +
                    std::to_string(converged) + "/" + std::to_string(s.resources.size()));
  }
}

api::Task<api::UnsealResult> Daemon::unseal(state::SecretBytes passphrase) {
  api::UnsealResult result;
  if (!initialized_) {
    auto init = store_->isInitialized();
    initialized_ = init && init.value();
  }
  if (!initialized_) {
    result.outcome = api::UnsealOutcome::not_initialized;
    result.error = Error::make(ErrorCode::not_found,
                               "the state is not initialised: run `foundationd init` first");
    metrics_.recordUnseal(result.outcome);
    co_return result;
  }
  // The backoff is decided before the KDF runs, from the persisted counter.
  auto attempts = store_->unsealAttempts();
  if (!attempts) {
    result.error = attempts.error();
    metrics_.recordUnseal(result.outcome);
    co_return result;
  }
  if (attempts->failures > 0 && attempts->lastFailureAt) {
    const auto wait = unsealBackoff(attempts->failures);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now() - *attempts->lastFailureAt);
    if (elapsed < wait) {
      result.outcome = api::UnsealOutcome::rate_limited;
      result.retryAfter =
          std::max(std::chrono::ceil<std::chrono::seconds>(wait - elapsed), std::chrono::seconds(1));
      metrics_.recordUnseal(result.outcome);
      co_return result;
    }
  }
  state::Store* store = store_.get();
  const state::SecretBytes* pass = &passphrase;
  auto unlock = [store, pass] { return store->unlock(pass->view()); };
  auto key = co_await onPool(unlock);
  passphrase.wipe();
  if (!key) {
    if (key.error().code == ErrorCode::wrong_passphrase) {
      auto failed = store_->recordUnsealFailure();
      (void)store_->appendAudit("unseal.failed",
                                nlohmann::json{{"failures", failed ? failed->failures : -1}}.dump());
      result.outcome = api::UnsealOutcome::wrong_passphrase;
      log::warn("unseal.failed", {{"failures", failed ? std::to_string(failed->failures) : "?"}});
    } else {
      result.error = key.error();
      log::error("unseal.error", {{"error", key.error().message}});
    }
    metrics_.recordUnseal(result.outcome);
    co_return result;
  }
  (void)store_->resetUnsealFailures();
  (void)store_->appendAudit("unseal.succeeded", "{}");
  const bool wasLocked = key_.locked();
  key_ = std::move(key).value();
  result.outcome = api::UnsealOutcome::unlocked;
  result.vaultUnsealed = co_await unsealVault();
  metrics_.recordUnseal(result.outcome);
  log::info("unseal.succeeded");
  if (wasLocked) scheduler_->triggerAll("unlocked");
  publishStatus();
  co_return result;
}

api::Task<Status> Daemon::seal() {
  co_await sealVault();  // with the root token from the state, before the key goes
  key_.lock();
  (void)store_->appendAudit("sealed", "{}");
  log::info("sealed");
  publishStatus();
  co_return Status::success();
}

Status Daemon::requestReconcile() {
  if (stopping_) return Error::make(ErrorCode::unavailable, "the daemon is stopping");
  scheduler_->triggerAll("api");
  (void)store_->appendAudit("reconcile.requested", "{}");
  return Status::success();
}

api::Task<Result<std::vector<api::AuditEvent>>> Daemon::events(std::int64_t since,
                                                               std::size_t limit) {
  auto entries = store_->auditSince(since, static_cast<int>(std::min<std::size_t>(limit, 10000)));
  if (!entries) co_return entries.error();
  std::vector<api::AuditEvent> out;
  for (const auto& e : entries.value()) {
    api::AuditEvent a;
    a.id = e.id;
    a.at = e.at;
    a.event = e.event;
    a.fields = nlohmann::json::parse(e.fieldsJson, nullptr, false);
    if (a.fields.is_discarded()) a.fields = nlohmann::json::object();
    out.push_back(std::move(a));
  }
  co_return out;
}

}  // namespace foundationd::daemon
