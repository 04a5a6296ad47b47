// UnsealGate: the unseal backoff (429 with Retry-After) around the Argon2id
// of POST /v1/unseal and the systemd credential.
//
// Contract:
// - At most one passphrase is under test at a time, whatever its path: an
//   attempt while another one's KDF runs is refused `busy` (retry in 1 s).
//   N parallel connections therefore get one guess, not N.
// - Each UnsealPath has its own persisted counter (Store::unsealAttempts):
//   failures from TCP clients never delay the Unix socket or the credential.
// - admit() counts the attempt as a failure (committed and fsynced) BEFORE
//   the caller runs the KDF, so a crash or kill mid-KDF leaves it counted;
//   Ticket::unlocked() resets the counter, Ticket::wrong() restarts the
//   backoff from the end of the KDF. After `failures` failures the path
//   waits backoff(failures): 1 s, 2 s, 4 s, ... capped at 15 minutes.
// - Fails closed: when the counter cannot be read or written the attempt
//   is refused (`failed`, with the store's error) and no KDF runs.
// - Thread-safe (an internal mutex); the daemon calls it on its io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "common/result.hpp"
#include "state/store.hpp"

namespace foundationd::state {

class UnsealGate {
 public:
  enum class Verdict { admitted, busy, backoff, failed };

  // The right to run one KDF. Destroyed without a verdict (an error other
  // than a wrong passphrase, a coroutine torn down), the failure stays
  // counted and the gate opens for the next attempt.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

    explicit operator bool() const noexcept { return gate_ != nullptr; }
    UnsealPath path() const noexcept { return path_; }
    // The passphrase was wrong: the failure stays counted; the backoff
    // restarts now. Returns the path's failures (-1 when unreadable).
    std::int64_t wrong();
    // The passphrase opened the key: the path's counter is reset.
    Status unlocked();

   private:
    friend class UnsealGate;
    Ticket(UnsealGate* gate, UnsealPath path) : gate_(gate), path_(path) {}
    void release() noexcept;
    UnsealGate* gate_ = nullptr;
    UnsealPath path_ = UnsealPath::remote;
  };

  struct Admission {
    Verdict verdict = Verdict::failed;
    std::chrono::seconds retryAfter{0};  // busy, backoff: at least 1 s
    std::optional<Error> error;          // failed
    Ticket ticket;                       // admitted
  };

  explicit UnsealGate(Store& store, Clock clock = {});
  UnsealGate(const UnsealGate&) = delete;
  UnsealGate& operator=(const UnsealGate&) = delete;

  Admission admit(UnsealPath path);
  // True while an admitted attempt's Ticket is alive.
  bool busy();

  // Seconds to wait after `failures` consecutive failures.
  static std::chrono::seconds backoff(std::int64_t failures);

 private:
  Store& store_;
  Clock clock_;
  std::mutex mu_;
  bool inFlight_ = false;  // guarded by mu_
};

}  // namespace foundationd::state
