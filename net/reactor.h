// One io_uring ring and its completion dispatch. Each shard owns exactly one Reactor and runs it
// on its own thread (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN when the kernel
// has them). Every SQE's user_data points to the CompletionHandler that submitted it; a handler
// must stay alive until each of its operations has completed (count them), which is how a
// completion for a closed connection is never delivered to freed memory.
#pragma once

#include <stdint.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <liburing.h>

namespace ringmx::net {

// Receives the completions of the operations it submitted. Shard-local.
class CompletionHandler {
 public:
  virtual void OnCompletion(const io_uring_cqe& cqe) = 0;

 protected:
  ~CompletionHandler() = default;
};

// Shard-local; created and used on one thread.
class Reactor {
 public:
  // `entries`: SQ size (CQ is 4x, so multishot bursts do not overflow).
  static absl::StatusOr<std::unique_ptr<Reactor>> Create(unsigned entries);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Returns a cleared SQE with user_data = `handler` (nullptr: the completion is ignored). If the
  // SQ is full it is submitted first. Never returns null.
  io_uring_sqe* Prepare(CompletionHandler* handler);

  // Submits what is prepared, waits up to `max_wait` for at least one completion, then dispatches
  // every completion that is ready. Returns the number dispatched, or an error from the kernel
  // (never for EINTR/ETIME).
  absl::StatusOr<int> RunOnce(absl::Duration max_wait);

  // Submits what is prepared without waiting.
  absl::Status Submit();

  io_uring* ring() { return &ring_; }

 private:
  Reactor() = default;
  io_uring ring_{};
  bool initialized_ = false;
};

}  // namespace ringmx::net
