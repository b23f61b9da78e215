#include "net/reactor.h"

#include <errno.h>
#include <string.h>

#include "core/status.h"

namespace ringmx::net {

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create(unsigned entries) {
  std::unique_ptr<Reactor> reactor(new Reactor());
  io_uring_params params;
  memset(&params, 0, sizeof(params));
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &reactor->ring_, &params);
  if (rc == -EINVAL) {
    // Older kernel: no DEFER_TASKRUN / SINGLE_ISSUER. Fall back to the plain ring.
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &reactor->ring_, &params);
  }
  if (rc < 0) return core::ErrnoStatus(-rc, "io_uring_queue_init");
  reactor->initialized_ = true;
  return reactor;
}

Reactor::~Reactor() {
  if (initialized_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Reactor::Prepare(CompletionHandler* handler) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_prep_nop(sqe);  // clears every field
  io_uring_sqe_set_data(sqe, handler);
  return sqe;
}

absl::Status Reactor::Submit() {
  int rc = io_uring_submit(&ring_);
  if (rc < 0 && rc != -EINTR && rc != -EBUSY) return core::ErrnoStatus(-rc, "io_uring_submit");
  return absl::OkStatus();
}

absl::StatusOr<int> Reactor::RunOnce(absl::Duration max_wait) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts;
  const int64_t ns = absl::ToInt64Nanoseconds(max_wait);
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
    return core::ErrnoStatus(-rc, "io_uring_submit_and_wait_timeout");
  }
  int dispatched = 0;
  // Dispatch in batches; a handler may prepare new SQEs while we iterate (they are submitted on
  // the next RunOnce).
  while (true) {
    io_uring_cqe* cqes[64];
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      const io_uring_cqe copy = *cqes[i];
      io_uring_cqe_seen(&ring_, cqes[i]);
      auto* handler = static_cast<CompletionHandler*>(io_uring_cqe_get_data(&copy));
      if (handler != nullptr) handler->OnCompletion(copy);
      ++dispatched;
    }
  }
  return dispatched;
}

}  // namespace ringmx::net
