// Benchmark mode (`spool.mode = "discard"`): a Spool that stores nothing. It keeps the real
// spool's callback shape: records (and fragments) submitted between two Flush() calls form one
// group, answered OK from the completion of one NOP, so a connection sees the same ordering as
// with the queue log. Abort() only forgets the id's waiters, as the interface promises.

#include <deque>
#include <memory>
#include <string>
#include <string_view>
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
    queued_.push_back({waiter, nullptr, {}});  // the record is dropped here: nothing is written
    ++pending_;
  }

  void SubmitFragment(std::string_view id, uint32_t /*index*/, core::BodyBlocks /*bytes*/,
                      FragmentWaiter* waiter) override {
    queued_.push_back({nullptr, waiter, std::string(id)});  // the bytes are dropped here
    ++pending_;
  }

  void Abort(std::string_view id) override {
    // Nothing was written; the id's fragment waiters must not be called any more.
    for (Waiter& w : queued_) {
      if (w.fragment != nullptr && w.id == id) w.fragment = nullptr;
    }
    for (Waiter& w : group_) {
      if (w.fragment != nullptr && w.id == id) w.fragment = nullptr;
    }
    for (Waiter& w : done_) {
      if (w.fragment != nullptr && w.id == id) w.fragment = nullptr;
    }
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
    // Moved out first: a waiter may Submit() and Flush() from OnStored(). Answered one at a time
    // from `group_` itself so that an Abort() called from a waiter reaches the rest.
    done_ = std::move(group_);
    group_.clear();
    for (size_t i = 0; i < done_.size(); ++i) {
      --pending_;
      if (done_[i].message != nullptr) {
        done_[i].message->OnStored(absl::OkStatus());
      } else if (done_[i].fragment != nullptr) {
        done_[i].fragment->OnFragmentStored(absl::OkStatus());
      }
    }
    done_.clear();
  }

 private:
  // One of `message` or `fragment` (nulled by Abort()); `id` for fragments.
  struct Waiter {
    SpoolWaiter* message;
    FragmentWaiter* fragment;
    std::string id;
  };

  Reactor& reactor_;
  std::deque<Waiter> queued_;  // submitted since the last Flush() that sent a NOP
  std::vector<Waiter> group_;  // answered by the NOP in flight
  std::vector<Waiter> done_;   // being answered (OnCompletion())
  bool nop_in_flight_ = false;
  size_t pending_ = 0;
};

}  // namespace

std::unique_ptr<Spool> CreateDiscardSpool(Reactor& reactor) {
  return std::make_unique<DiscardSpool>(reactor);
}

}  // namespace ringmx::net
