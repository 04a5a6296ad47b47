#include "daemon/daemon.hpp"

#include "controllers/docker/docker_apply.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sodium.h>

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
  pool_.join();  // work in flight may still read the key: wipe it after
  key_.lock();
}

std::chrono::seconds Daemon::unsealBackoff(std::int64_t failures) {
  return state::UnsealGate::backoff(failures);
}

asio::awaitable<void> Daemon::quiescePool() {
  co_await beginKeyChange();
  endKeyChange();
}

asio::awaitable<void> Daemon::beginKeyChange() {
  ++keyWriters_;
  while (poolInFlight_ > 0) co_await sleepFor(std::chrono::milliseconds(2));
}

Status Daemon::start() {
  state::protectProcess();  // no core dumps or ptrace of a process that will hold the key
  auto store = state::Store::openDir(config_.stateDir);
  if (!store) {
    return Error::make(store.error().code,
                       "cannot open the state in " + config_.stateDir + ": " + store.error().message);
  }
  store_ = std::move(store).value();
  unsealGate_ = std::make_unique<state::UnsealGate>(*store_);
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

  // api/ logs through daemon/log (the journal's fields, timestamps); the
  // server itself logs api.listening once per address.
  const api::LogSink sink = [](api::LogLevel level, const std::string& event,
                               const std::vector<api::LogField>& fields) {
    log::write(static_cast<log::Level>(level), event, fields);
  };
  router_ = std::make_unique<api::Router>(*this, *token_, metrics_, sink);
  api::ServerOptions options;
  options.listen = config_.apiListen;
  options.webhookListen = config_.apiWebhookListen;
  options.log = sink;
  server_ = std::make_unique<api::Server>(io_.get_executor(), *router_, options);
  if (auto st = server_->start(); !st) return st;

  SchedulerOptions sched;
  sched.resync = config_.resyncInterval;
  scheduler_ = std::make_unique<Scheduler>(io_.get_executor(), sched,
                                           [this](const Batch& b) { return reconcile(b); });
  loadSpec();
  if (auto warning = docker::secretsDirNotTmpfs(docker::ApplyOptions{}.secretsDir)) {
    log::warn("secret_files.not_tmpfs", {{"message", *warning}});
  }
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

  asio::co_spawn(ex, unsealFromCredential(), [](std::exception_ptr e) {
    if (e) log::error("unseal.credential_crashed");
  });
  refreshBackupHistory();
  asio::co_spawn(ex, backupLoop(), [](std::exception_ptr e) {
    if (e) log::error("backup.crashed");
  });

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
  co_await quiescePool();  // a webhook delivery or plan may still read the key
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
    for (const auto& d : loaded.diagnostics.sorted()) {
      log::write(d.severity == config::Severity::warning ? log::Level::warning : log::Level::error, "config.invalid", {{"at", d.format()}});
    }
    log::error("config.reload", {{"result", "rejected; the running config stays in force"}});
    systemd::reloaded();
    return;
  }
  auto next = std::move(*loaded.config);
  if (next.apiListen != config_.apiListen || next.apiWebhookListen != config_.apiWebhookListen ||
      next.stateDir != config_.stateDir ||
      next.dockerSocket != config_.dockerSocket || next.apiTokenFile != config_.apiTokenFile) {
    log::warn("config.reload", {{"note", "api.listen, api.webhook_listen, state_dir, docker.socket "
                                          "and api.token_file take effect at the next restart"}});
    next.apiListen = config_.apiListen;
    next.apiWebhookListen = config_.apiWebhookListen;
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
  // The files a spec reads beside it (VERSIONS, [files] sources) count too:
  // a changed Caddyfile is a new revision.
  auto digestWith = [&](const config::Spec* s) {
    std::string material = buf.str();
    if (!s) return docker::sha256Hex(material);
    std::vector<std::string> extra;
    if (s->versionsFile) extra.push_back(*s->versionsFile);
    for (const auto& [_, f] : s->files) {
      if (f.source) extra.push_back(path.substr(0, path.rfind('/') + 1) + *f.source);
    }
    for (const auto& file : extra) {
      std::ifstream x(file, std::ios::binary);
      std::stringstream content;
      content << x.rdbuf();
      material += "\n--- " + file + "\n" + docker::sha256Hex(content.str());
    }
    return docker::sha256Hex(material);
  };
  std::string digest = digestWith(spec_ ? &*spec_ : nullptr);
  if (digest == specDigest_) return;  // unchanged (a bad spec is not re-reported every resync)
  auto loaded = config::loadSpecFileText(path, buf.str());
  if (loaded.spec) digest = digestWith(&*loaded.spec);  // with what this revision reads
  specDigest_ = digest;
  const std::string revision = "sha256:" + digest.substr(0, 12);
  specRevision_ = revision;
  specWarnings_ = loaded.diagnostics.formatAll(config::Severity::warning);
  if (!loaded.spec) {
    const std::string errors = loaded.diagnostics.formatAll(config::Severity::error);
    specError_ = "revision " + revision + " rejected (" +
                 std::to_string(loaded.diagnostics.errorCount()) + " error(s)); " +
                 (specInForce_.empty() ? std::string("no revision is in force")
                                       : "revision " + specInForce_ + " stays in force") +
                 ":\n" + errors;
    log::error("spec.rejected", {{"revision", revision}, {"errors", std::to_string(loaded.diagnostics.errorCount())}});
    for (const auto& d : loaded.diagnostics.sorted()) {
      log::write(d.severity == config::Severity::warning ? log::Level::warning : log::Level::error, "spec.diagnostic", {{"at", d.format()}});
    }
    if (store_) {
      (void)store_->recordSpecRevision(revision, "file:" + path, state::SpecRevisionStatus::rejected, errors);
      // The same event as a rejected git revision (GET /v1/events).
      (void)store_->appendAudit("spec.rejected", nlohmann::json{{"revision", revision},
                                                                {"source", "file:" + path},
                                                                {"errors", errors}}.dump());
    }
    return;
  }
  specError_.clear();
  spec_ = std::move(loaded.spec);
  specInForce_ = revision;
  if (store_) {
    (void)store_->recordSpecRevision(revision, "file:" + path, state::SpecRevisionStatus::seen);
    (void)store_->appendAudit("spec.seen", nlohmann::json{{"revision", revision},
                                                          {"source", "file:" + path}}.dump());
  }
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
  s.spec.warnings = specWarnings_;
  s.lastReconcile = lastReconcile_;
  s.lastReconcile.running = scheduler_ && scheduler_->busy();
  if (s.lastReconcile.running) s.lastReconcile.runningSince = reconcileSince_;
  for (const auto& [_, r] : resources_) s.resources.push_back(r);
  s.backup = backupState();
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

api::Task<api::UnsealResult> Daemon::unseal(state::SecretBytes passphrase, api::PeerKind from) {
  // The Unix socket's permissions decide who reaches it: a trusted path,
  // with a counter of its own that TCP clients cannot drive up.
  const auto path = from == api::PeerKind::unix_socket ? state::UnsealPath::trusted
                                                       : state::UnsealPath::remote;
  co_return co_await unsealFrom(std::move(passphrase), path);
}

asio::awaitable<api::UnsealResult> Daemon::unsealFrom(state::SecretBytes passphrase,
                                                      state::UnsealPath path) {
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
  // One passphrase under test at a time; the attempt is counted as a failure
  // (fsynced) before the KDF runs; a counter that cannot be written refuses.
  auto admission = unsealGate_->admit(path);
  switch (admission.verdict) {
    case state::UnsealGate::Verdict::admitted:
      break;
    case state::UnsealGate::Verdict::busy:
    case state::UnsealGate::Verdict::backoff:
      result.outcome = api::UnsealOutcome::rate_limited;
      result.retryAfter = admission.retryAfter;
      metrics_.recordUnseal(result.outcome);
      co_return result;
    case state::UnsealGate::Verdict::failed:
      result.error = admission.error;
      log::error("unseal.error", {{"error", admission.error->message}});
      metrics_.recordUnseal(result.outcome);
      co_return result;
  }
  state::UnsealGate::Ticket ticket = std::move(admission.ticket);
  state::Store* store = store_.get();
  const state::SecretBytes* pass = &passphrase;
  auto unlock = [store, pass] { return store->unlock(pass->view()); };
  auto key = co_await onPool(unlock);
  passphrase.wipe();
  if (!key) {
    if (key.error().code == ErrorCode::wrong_passphrase) {
      const std::int64_t failures = ticket.wrong();
      (void)store_->appendAudit(
          "unseal.failed",
          nlohmann::json{{"failures", failures}, {"path", state::toString(path)}}.dump());
      result.outcome = api::UnsealOutcome::wrong_passphrase;
      log::warn("unseal.failed",
                {{"failures", std::to_string(failures)}, {"path", state::toString(path)}});
    } else {
      result.error = key.error();  // the ticket dies: the attempt stays counted
      log::error("unseal.error", {{"error", key.error().message}});
    }
    metrics_.recordUnseal(result.outcome);
    co_return result;
  }
  (void)ticket.unlocked();
  (void)store_->appendAudit("unseal.succeeded",
                            nlohmann::json{{"path", state::toString(path)}}.dump());
  co_await quiescePool();
  const bool wasLocked = key_.locked();
  const auto unsealedAt = api::Clock::now();
  if (wasLocked) {
    key_ = std::move(key).value();
    ++keyGeneration_;
  } else {
    key->lock();  // the same data key: the one pool work may be using stays
  }
  result.outcome = api::UnsealOutcome::unlocked;
  result.vaultUnsealed = co_await unsealVault();
  metrics_.recordUnseal(result.outcome);
  log::info("unseal.succeeded", {{"path", state::toString(path)}});
  if (wasLocked) scheduler_->triggerAll("unlocked");
  if (wasLocked && !config_.keepKeyInMemory) {
    asio::co_spawn(io_, dropKeyAfterConverge(keyGeneration_, unsealedAt),
                   [](std::exception_ptr e) {
                     if (e) log::error("unseal.drop_key_crashed");
                   });
  }
  publishStatus();
  co_return result;
}

asio::awaitable<void> Daemon::dropKeyAfterConverge(std::uint64_t generation,
                                                   api::TimePoint unsealedAt) {
  // The converge the unseal triggered: started after it, and finished.
  while (!stopping_ && keyGeneration_ == generation) {
    const auto& r = lastReconcile_;
    if (r.start && *r.start >= unsealedAt && r.end && *r.end >= *r.start &&
        !scheduler_->busy()) {
      break;
    }
    co_await sleepFor(std::chrono::milliseconds(100));
  }
  co_await quiescePool();
  if (keyGeneration_ != generation || key_.locked()) co_return;
  key_.lock();
  ++keyGeneration_;
  (void)store_->appendAudit("key.dropped", R"({"reason":"keep_key_in_memory = false"})");
  log::info("unseal.key_dropped", {{"reason", "keep_key_in_memory = false: the converge after "
                                              "the unseal has finished"}});
  publishStatus();
}

asio::awaitable<void> Daemon::unsealFromCredential() {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr) co_return;
  std::ifstream in(std::filesystem::path(dir) / "passphrase");
  if (!in) co_return;
  std::string line;
  std::getline(in, line);
  auto secret = state::SecretBytes::copyOf(line);
  sodium_memzero(line.data(), line.size());
  while (!stopping_ && key_.locked()) {
    auto r = co_await unsealFrom(state::SecretBytes::copyOf(secret.view()),
                                 state::UnsealPath::trusted);
    log::info("unseal.credential", {{"result", api::outcomeName(r.outcome)}});
    std::chrono::seconds wait{0};
    if (r.outcome == api::UnsealOutcome::rate_limited) {
      wait = std::max(r.retryAfter, std::chrono::seconds(1));
    } else if (r.outcome == api::UnsealOutcome::failed) {
      wait = std::chrono::seconds(5);  // e.g. the counter could not be written
    } else {
      break;  // unlocked; or a wrong credential, which retrying cannot fix
    }
    log::info("unseal.credential_retry", {{"in_seconds", std::to_string(wait.count())}});
    co_await sleepFor(wait);
  }
}

api::Task<Status> Daemon::seal() {
  // Work in flight ends first: a reconcile's Vault step that is unsealing
  // Vault now would otherwise unseal it again right after it was sealed.
  co_await beginKeyChange();
  co_await sealVault();  // with the root token from the state, before the key goes
  key_.lock();
  ++keyGeneration_;
  endKeyChange();
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
