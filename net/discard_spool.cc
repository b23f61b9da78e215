// Benchmark mode (`spool.mode = "discard"`): a Spool that stores nothing. It keeps the real
// spool's callback shape: records submitted between two Flush() calls form one group, answered OK
// from the completion of one NOP, so a connection sees the same ordering as with the queue log.

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "core/log.h"
#include "net/reactor.h"
#include "net/spool.h"

namespace ringmx::net {
namespace {

// Shard-local. Destroy only when pending() == 0: the NOP in flight points to it.
class DiscardSpool final : public Spool, public CompletionHandler {
 public:
  explicit DiscardSpool(Reactor& reactor) : reactor_(reactor) {}
  ~DiscardSpool() override {
    if (nop_in_flight_) {
      core::LogError(
          absl::StrCat("discard spool destroyed with ", pending_, " unanswered messages"));
    }
  }

  void Submit(core::SpoolRecord /*record*/, SpoolWaiter* waiter) override {
    queued_.push_back(waiter);  // the record is dropped here: nothing is written
    ++pending_;
  }

  void Flush() override {
    if (nop_in_flight_ || queued_.empty()) return;
    group_.assign(queued_.begin(), queued_.end());
    queued_.clear();
    io_uring_sqe* sqe = reactor_.Prepare(this);
    io_uring_prep_nop(sqe);
    nop_in_flight_ = true;
  }

  size_t pending() const override { return pending_; }

  void OnCompletion(const io_uring_cqe& /*cqe*/) override {
    nop_in_flight_ = false;
    // Moved out first: a waiter may Submit() and Flush() from OnStored().
    std::vector<SpoolWaiter*> done = std::move(group_);
    group_.clear();
    for (SpoolWaiter* waiter : done) {
      --pending_;
      waiter->OnStored(absl::OkStatus());
    }
  }

 private:
  Reactor& reactor_;
  std::deque<SpoolWaiter*> queued_;  // submitted since the last Flush() that sent a NOP
  std::vector<SpoolWaiter*> group_;  // answered by the NOP in flight
  bool nop_in_flight_ = false;
  size_t pending_ = 0;
};

}  // namespace

std::unique_ptr<Spool> CreateDiscardSpool(Reactor& reactor) {
  return std::make_unique<DiscardSpool>(reactor);
}

}  // namespace ringmx::net
