// The in-memory index of one shard's queue (DESIGN.md section 6): every message that is not
// gone, with its recipients' states and where its records are. Built at start by replaying the
// log (core/queue/scan.h) and kept current by applying every record the shard appends, so that
// the index after a restart equals the index before it. Pure and shard-local.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

#include "core/queue/log_format.h"

namespace ringmx::core::queue {

// Where a whole record (header included) lies: segment sequence number, byte offset, size.
struct Location {
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  friend bool operator==(const Location&, const Location&) = default;
};

struct QueuedRecipient {
  std::string address;
  RecipientStatus status;
};

struct QueuedMessage {
  std::string id;
  int64_t received_us = 0;
  std::string sender;
  std::vector<QueuedRecipient> recipients;
  bool held = false;
  bool bounce = false;              // a DSN ringmx made (kMessageFlagBounce)
  uint64_t body_size = 0;           // client bytes, without our trace headers
  Location record;                  // the kMessage record (the latest copy)
  std::vector<Location> fragments;  // its kFragment records in index order
  // The oldest segment holding any record of this message (its message record, a fragment or a
  // state record) that the index relies on.
  uint64_t first_segment = 0;

  // Every recipient is delivered or failed: nothing is left to do.
  bool AllFinal() const;
};

// Counts of what replay found, for the start-up log line.
struct ReplayStats {
  uint64_t records = 0;
  uint64_t messages = 0;    // kMessage records applied
  uint64_t orphans = 0;     // state/op/abort records of unknown ids, ignored
  uint64_t incomplete = 0;  // messages with fragments but no kMessage at the end of replay
  uint64_t malformed = 0;   // frames whose payload did not parse (or did not fit), skipped
};

class Index {
 public:
  // Applies one record (already framed and CRC-checked) found at `where`. Order matters: records
  // are applied in log order (segments by sequence number, records by offset).
  //  kFragment: remembered under its id until its kMessage (or kAbort) comes.
  //  kMessage: adds the message (pending recipients, or the relocated copy's states) with the
  //    fragments remembered for it; a second kMessage for a known id (a relocated copy) replaces
  //    its locations and, if relocated, its states.
  //  kAbort: forgets the id's remembered fragments.
  //  kRecipientState: sets one recipient's status. kMessageOp: hold, release, delete (removes).
  // A message whose recipients are all final is removed (nothing is left to do with it).
  // A payload that does not parse, a state for a recipient the message does not have, and a
  // fragment whose index is past the next one expected (one before it was lost) are counted in
  // stats().malformed and ignored.
  void Apply(const Frame& frame, const Location& where);

  // The same, one entry point per record type, for a writer that has the record's fields already
  // (and must not put a message's header and body side by side to build a frame): each does what
  // Apply() does with a record of that type whose parsed fields are the arguments, and counts one
  // record in stats() as Apply() does. `record` is where the whole record lies. Views are read
  // during the call only.
  void ApplyMessage(const MessageHeader& header, const Location& record);
  void ApplyFragment(std::string_view id, uint32_t index, const Location& record);
  void ApplyAbort(std::string_view id);
  void ApplyRecipientState(std::string_view id, uint32_t recipient, RecipientStatus status);
  void ApplyMessageOp(std::string_view id, MessageOp op);

  // `flush`: every deferred recipient whose next attempt is later than `now_us` becomes due now
  // (`next_attempt_us = now_us`). In memory only: no record says so, and a restart keeps the
  // recorded times. Returns how many recipients changed.
  size_t MakeDeferredDue(int64_t now_us);

  // End of replay: fragments whose message never came are dropped (counted as incomplete).
  void FinishReplay();

  const QueuedMessage* Find(std::string_view id) const;
  // Every message, in id order (ids sort by arrival time).
  std::vector<const QueuedMessage*> List() const;
  size_t size() const { return messages_.size(); }

  // The oldest segment anything still needs: segments with a smaller sequence number than
  // min(this, `active`) can be deleted. Messages, and fragments of messages still streaming in,
  // pin their first segment.
  uint64_t OldestNeededSegment(uint64_t active) const;

  const ReplayStats& stats() const { return stats_; }

  // ---- For compaction (net/queue_log.cc) ----

  // The bytes of every record the index relies on for a message (its kMessage record and its
  // fragments, headers included: what relocating it writes again), summed over all messages.
  uint64_t live_bytes() const { return live_bytes_; }
  // The same, summed over the messages whose `first_segment` is `segment`.
  uint64_t PinnedBytes(uint64_t segment) const;
  // The messages whose `first_segment` is `segment`, in id order. O(size()).
  std::vector<const QueuedMessage*> MessagesFirstIn(uint64_t segment) const;
  // Whether a fragment of a message still streaming in lies in `segment` or earlier (such a
  // stream pins the segment and cannot be relocated).
  bool StreamPins(uint64_t segment) const;

 private:
  struct Pending {
    // By fragment index, without gaps.
    std::vector<Location> fragments;
    uint64_t first_segment = 0;  // pinned while the entry exists
  };
  void Pin(uint64_t segment);
  void Unpin(uint64_t segment);
  void Remove(std::string_view id);
  // Adds (`sign` +1) or takes back (-1) `m`'s bytes in live_bytes_ and pinned_bytes_.
  void Account(const QueuedMessage& m, int sign);

  absl::flat_hash_map<std::string, QueuedMessage> messages_;
  absl::flat_hash_map<std::string, Pending> streaming_;
  std::map<uint64_t, uint64_t> pins_;  // segment -> messages (and streams) whose first it is
  ReplayStats stats_;
  // Compaction's view (see live_bytes()): kept with the messages' locations.
  std::map<uint64_t, uint64_t> pinned_bytes_;  // first_segment -> bytes
  uint64_t live_bytes_ = 0;
};

}  // namespace ringmx::core::queue
