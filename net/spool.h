// The spool interface (DESIGN.md section 6) and its embedded backends. A store takes a message
// record and calls back, on the submitting shard, once the record is durable (or has failed).
// "250 Ok" waits for that callback. The interface is deliberately narrow so that a replicated
// backend can slot in later without touching smtp/ or the connection driver.
#pragma once

#include <memory>
#include <string>

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

// One shard's handle on the store. Shard-local: created, used and destroyed on one shard's thread.
// Destroy it only once pending() == 0 (or with a reactor that will dispatch nothing more): its
// operations in flight point into it.
class Spool {
 public:
  virtual ~Spool() = default;
  // Takes the record. `waiter->OnStored()` is called later from a completion on this shard, never
  // from inside Submit().
  virtual void Submit(core::SpoolRecord record, SpoolWaiter* waiter) = 0;
  // Called by the shard after each batch of completions: starts a group commit of everything
  // submitted since the last one if none is in flight.
  virtual void Flush() = 0;
  // Messages submitted and not yet answered.
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
