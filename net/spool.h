// The spool interface (DESIGN.md section 6) and its embedded backends. A store takes a message
// record and calls back, on the submitting shard, once the record is durable (or has failed).
// "250 Ok" waits for that callback. The interface is deliberately narrow so that a replicated
// backend can slot in later without touching smtp/ or the connection driver.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "core/config.h"
#include "core/spool_record.h"

namespace ringmx::net {

class Reactor;

// Told when its message is stored. Must stay alive until OnStored() has been called.
// Shard-local.
class SpoolWaiter {
 public:
  // OK: the message and its envelope are durable (and in the store's index).
  // kResourceExhausted (disk full) or another error: the message does not count as stored.
  virtual void OnStored(const absl::Status& result) = 0;

 protected:
  ~SpoolWaiter() = default;
};

// Told when one fragment of a streamed message is stored (see Spool::SubmitFragment()).
// Shard-local.
class FragmentWaiter {
 public:
  // OK: the fragment is durable; the session may hand over the next one. An error (kInternal,
  // kResourceExhausted when the disk is full): the message cannot be stored; the session answers
  // it 452 and calls Spool::Abort().
  virtual void OnFragmentStored(const absl::Status& result) = 0;

 protected:
  ~FragmentWaiter() = default;
};

// The largest fragment a store takes (a session sends pieces of at most 256 KiB).
inline constexpr size_t kMaxFragmentBytes = size_t{32} << 20;

// One shard's handle on the store. Shard-local: created, used and destroyed on one shard's thread.
// Destroy it only once pending() == 0 (or with a reactor that will dispatch nothing more): its
// operations in flight point into it.
class Spool {
 public:
  virtual ~Spool() = default;
  // Takes the record. `waiter->OnStored()` is called later from a completion on this shard, never
  // from inside Submit(). With `record.fragments` > 0 the message was streamed: fragments 0 ..
  // fragments-1 of `record.id` were handed over by SubmitFragment() and each answered OK, and
  // `record.body` is only the rest. A store refuses (kInternal, from a completion) a record whose
  // fragment count is not what it stored for the id. From Submit() on, whatever its result, the
  // fragments are the store's: it drops them itself if the message is refused, and the session
  // does not call Abort() for this id.
  virtual void Submit(core::SpoolRecord record, SpoolWaiter* waiter) = 0;

  // ---- Streaming: a body handed over in pieces while DATA/BDAT runs ----
  //
  // Contract for the session driver, per transaction that calls SubmitFragment():
  //  - fragments are numbered 0, 1, ... in order, each at most kMaxFragmentBytes; hand over the
  //    next one only after the previous one's OnFragmentStored(OK) (that is the backpressure:
  //    at most one fragment per session is held by the store);
  //  - the transaction ends in exactly one of: Submit() with `fragments` = the number handed over
  //    (after the last one's OnFragmentStored(OK)), or Abort(id). Abort() covers everything
  //    else: the message refused after its data (too big, bad line, smuggling), a fragment that
  //    failed, RSET, the client gone mid-DATA, the connection torn down. Until one of the two,
  //    the store keeps the fragments and pins the segments that hold them, so a forgotten
  //    Abort() keeps disk space in use until the next restart (replay drops fragments whose
  //    message never came).
  //
  // Appends `bytes` (taken, not copied: kept alive until written) as fragment `index` of message
  // `id`, through the next group commit. `waiter->OnFragmentStored()` is called from a completion
  // once that group is synced, never from inside the call; with kInternal if `index` is not the
  // next one expected for `id` or `bytes` is larger than kMaxFragmentBytes.
  virtual void SubmitFragment(std::string_view id, uint32_t index, core::BodyBlocks bytes,
                              FragmentWaiter* waiter) = 0;
  // The transaction whose fragments of `id` were handed over ends without a message: the store
  // appends an abort record (no waiter; it rides with the next group) so that neither memory nor
  // recovery keeps the fragments. No-op if no fragment of `id` was handed over (or after
  // Submit()). Waiters of `id`'s fragments still in flight are not called after Abort(): the
  // session may be destroyed right after it.
  virtual void Abort(std::string_view id) = 0;

  // Called by the shard after each batch of completions: starts a group commit of everything
  // submitted since the last one if none is in flight.
  virtual void Flush() = 0;
  // Messages and fragments submitted and not yet answered (and store work in flight).
  virtual size_t pending() const = 0;
};

// Prepares `<path>/queue` at start: creates `path` and it if missing, and checks that a file can be
// created there (a read-only spool fails here, with one line naming the path, not at the first
// message). Call once, before any shard starts. The embedded store, one queue log per shard under
// `<path>/queue/<shard>`, is net/queue_log.h.
absl::Status PrepareSpoolDirectory(const std::string& path);

// Benchmark mode (`spool.mode = "discard"`): answers OK without writing anything.
std::unique_ptr<Spool> CreateDiscardSpool(Reactor& reactor);

}  // namespace ringmx::net
