#include "state/unseal_gate.hpp"

#include <algorithm>

namespace foundationd::state {

UnsealGate::Ticket::Ticket(Ticket&& other) noexcept : gate_(other.gate_), path_(other.path_) {
  other.gate_ = nullptr;
}

UnsealGate::Ticket& UnsealGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = other.gate_;
    path_ = other.path_;
    other.gate_ = nullptr;
  }
  return *this;
}

UnsealGate::Ticket::~Ticket() {
  release();
}

void UnsealGate::Ticket::release() noexcept {
  if (gate_ == nullptr) return;
  std::lock_guard lock(gate_->mu_);
  gate_->inFlight_ = false;
  gate_ = nullptr;
}

std::int64_t UnsealGate::Ticket::wrong() {
  if (gate_ == nullptr) return -1;
  (void)gate_->store_.restartUnsealBackoff(path_);
  auto a = gate_->store_.unsealAttempts(path_);
  release();
  return a ? a->failures : -1;
}

Status UnsealGate::Ticket::unlocked() {
  if (gate_ == nullptr) return Status::success();
  Status st = gate_->store_.resetUnsealFailures(path_);
  release();
  return st;
}

UnsealGate::UnsealGate(Store& store, Clock clock) : store_(store), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

std::chrono::seconds UnsealGate::backoff(std::int64_t failures) {
  if (failures <= 0) return std::chrono::seconds(0);
  // 1 s, 2 s, 4 s, ... capped at 15 minutes.
  std::int64_t s = 1;
  for (std::int64_t i = 1; i < failures && s < 900; ++i) s *= 2;
  return std::chrono::seconds(std::min<std::int64_t>(s, 900));
}

bool UnsealGate::busy() {
  std::lock_guard lock(mu_);
  return inFlight_;
}

UnsealGate::Admission UnsealGate::admit(UnsealPath path) {
  Admission out;
  std::lock_guard lock(mu_);
  if (inFlight_) {
    out.verdict = Verdict::busy;
    out.retryAfter = std::chrono::seconds(1);
    return out;
  }
  auto attempts = store_.unsealAttempts(path);
  if (!attempts) {
    out.error = Error::make(attempts.error().code, "the unseal-attempt counter cannot be read (" +
                                                       attempts.error().message +
                                                       "); refusing to test a passphrase");
    return out;
  }
  if (attempts->failures > 0 && attempts->lastFailureAt) {
    const auto wait = backoff(attempts->failures);
    const auto elapsed = clock_() - *attempts->lastFailureAt;
    if (elapsed < wait) {
      out.verdict = Verdict::backoff;
      out.retryAfter = std::max(std::chrono::ceil<std::chrono::seconds>(wait - elapsed),
                                std::chrono::seconds(1));
      return out;
    }
  }
  // Counted before the KDF runs: a crash mid-KDF leaves it counted.
  auto counted = store_.recordUnsealFailure(path);
  if (!counted) {
    out.error = Error::make(counted.error().code, "the unseal-attempt counter cannot be written (" +
                                                      counted.error().message +
                                                      "); refusing to test a passphrase");
    return out;
  }
  inFlight_ = true;
  out.verdict = Verdict::admitted;
  out.ticket = Ticket(this, path);
  return out;
}

}  // namespace foundationd::state
