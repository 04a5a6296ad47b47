// POST /v1/rotate: `foundationd rotate NAME` through the running daemon. The
// rotation runs inside a reconcile (the scheduler runs one at a time), so it
// never races the daemon's own converge: new versions (durable first), then
// PostgreSQL and Vault, then the Docker part recreates every consumer in
// dependency order. The request is answered when that reconcile ends.
#include "common/async.hpp"
#include "daemon/daemon.hpp"
#include "daemon/log.hpp"

namespace foundationd::daemon {

namespace asio = boost::asio;

struct Daemon::RotationRequest {
  explicit RotationRequest(std::string name) : credential(std::move(name)) {}
  std::string credential;
  // POST /v1/secrets (`secret set`): the new value of one provided field,
  // stored instead of generating new values; then the same path as a rotation.
  std::optional<std::string> providedField;
  std::optional<state::SecretBytes> providedValue;
  std::string by;
  bool taken = false;  // a reconcile ran it; its end answers
  bool done = false;
  std::optional<Error> error;
  api::RotateResult result;
};

api::Task<Result<api::RotateResult>> Daemon::rotate(std::string credential) {
  if (key_.locked()) {
    co_return Error::make(ErrorCode::unavailable,
                          "locked: rotating needs the unlocked state; unseal first "
                          "(`foundationd unseal` or POST /v1/unseal)");
  }
  loadSpec();
  if (!spec_) co_return Error::make(ErrorCode::invalid_argument, "no valid spec: " + specError_);
  if (!spec_->credentials.count(credential)) {
    co_return Error::make(ErrorCode::not_found, "no credential \"" + credential +
                                                    "\" in the spec in force");
  }
  auto request = std::make_shared<RotationRequest>(credential);
  rotations_.push_back(request);
  log::info("rotate.requested", {{"credential", credential}});
  scheduler_->triggerAll("rotate " + credential);
  // Polled, not an event: a daemon told to stop answers instead of waiting
  // for a reconcile that will not come.
  while (!request->done && !stopping_) co_await sleepFor(std::chrono::milliseconds(100));
  if (!request->done) {
    co_return Error::make(ErrorCode::unavailable,
                          "the daemon is stopping; see `foundationd status` after its restart "
                          "for whether the rotation ran");
  }
  if (request->error) co_return *request->error;
  co_return request->result;
}

api::Task<Result<api::RotateResult>> Daemon::setSecret(std::string credential, std::string field,
                                                      state::SecretBytes value, std::string by) {
  if (key_.locked()) {
    co_return Error::make(ErrorCode::unavailable,
                          "locked: storing a value needs the unlocked state; unseal first "
                          "(`foundationd unseal` or POST /v1/unseal)");
  }
  loadSpec();
  if (!spec_) co_return Error::make(ErrorCode::invalid_argument, "no valid spec: " + specError_);
  auto c = spec_->credentials.find(credential);
  if (c == spec_->credentials.end() || !c->second.fields.count(field)) {
    co_return Error::make(ErrorCode::not_found, "no field " + credential + "." + field +
                                                    " in the spec in force");
  }
  if (!c->second.fields.at(field).provided()) {
    co_return Error::make(ErrorCode::invalid_argument,
                          "field " + credential + "." + field +
                              " is not { provided = true } in the spec in force");
  }
  auto request = std::make_shared<RotationRequest>(credential);
  request->providedField = field;
  request->providedValue.emplace(std::move(value));
  request->by = by.empty() ? "the API" : by + " (through the API)";
  rotations_.push_back(request);
  log::info("secret_set.requested", {{"credential", credential}, {"field", field}});
  scheduler_->triggerAll("secret set " + credential + "." + field);
  while (!request->done && !stopping_) co_await sleepFor(std::chrono::milliseconds(100));
  if (!request->done) {
    co_return Error::make(ErrorCode::unavailable,
                          "the daemon is stopping; see `foundationd status` after its restart "
                          "for whether the value was stored");
  }
  if (request->error) co_return *request->error;
  co_return request->result;
}

asio::awaitable<void> Daemon::runRotations(const config::Spec& spec, bool locked, bool all) {
  // Only a reconcile of everything updates every consumer; the one rotate()
  // triggered follows when this batch covers fewer keys.
  if (!all) co_return;
  std::vector<std::shared_ptr<RotationRequest>> todo;
  for (const auto& r : rotations_) {
    if (!r->taken) todo.push_back(r);
  }
  for (const auto& r : todo) {
    r->taken = true;
    if (locked) {
      r->error = Error::make(ErrorCode::unavailable,
                             "locked again before the rotation ran; unseal and retry");
      continue;
    }
    if (!spec.credentials.count(r->credential)) {
      r->error = Error::make(ErrorCode::not_found,
                             "no credential \"" + r->credential + "\" in the spec in force");
      continue;
    }
    state::Store* store = store_.get();
    const state::UnlockedKey* key = &key_;
    const config::Spec* specp = &spec;
    const std::string* name = &r->credential;
    const RotationRequest* req = r.get();
    auto rotateIt = [store, key, specp, name, req]() -> Result<std::vector<credentials::Generated>> {
      if (!req->providedField) return credentials::rotateCredential(*specp, *store, *key, *name);
      auto set = credentials::setProvided(*specp, *store, *key, *name, *req->providedField,
                                          req->providedValue->view(), req->by);
      if (!set) return set.error();
      return std::vector<credentials::Generated>{set.value()};
    };
    auto rotated = co_await onPool(rotateIt);
    if (!rotated) {
      log::error("rotate.failed", {{"credential", r->credential}, {"error", rotated.error().message}});
      r->error = rotated.error();
      continue;
    }
    r->result.credential = r->credential;
    r->providedValue.reset();  // wiped: it is sealed in the state now
    for (const auto& g : rotated.value()) {
      log::info(r->providedField ? "credential.provided" : "credential.rotated",
                {{"credential", g.credential},
                                       {"field", g.field},
                                       {"version", std::to_string(g.version)}});
      r->result.fields.emplace_back(g.field, g.version);
    }
    if (!r->providedField) {
      (void)store_->appendAudit("credential.rotate_requested",
                                nlohmann::json{{"credential", r->credential}}.dump());
    }
    co_await alterRotatedRoles(spec, rotated.value());  // PostgreSQL before the consumers
    co_await mirrorRotated(spec, rotated.value());      // Vault before the consumers
  }
}

void Daemon::finishRotations(const std::string& result) {
  std::vector<std::shared_ptr<RotationRequest>> keep;
  for (auto& r : rotations_) {
    if (!r->taken) {
      keep.push_back(r);  // asked for during this reconcile: the next one runs it
      continue;
    }
    r->result.result = result;
    r->result.converged = result == "converged";
    r->done = true;
  }
  rotations_ = std::move(keep);
}

}  // namespace foundationd::daemon
