// QueueLog: one shard's append-only queue log, the embedded durable store (DESIGN.md section 6).
// The format and the in-memory index are core/queue's (pure); this file does the I/O on the
// shard's ring.
//
// Layout: `<spool.path>/queue/<shard index>/<16 hex digits>.seg`, segments numbered upwards. At
// start (blocking I/O is fine: the shard does not serve yet) the shard's directory is replayed
// into the index, and a NEW segment is always started (sequence = last + 1): a segment that was
// active when the process stopped may end in a torn record, so nothing is ever appended to it.
//
// Group commit: Submit() and Apply() only queue. Flush(), which the shard calls after each batch
// of completions, starts a group if none is in flight: everything queued gets its offset in the
// active segment, and one linked chain WRITEV.. -> FSYNC(DATASYNC) [-> FSYNC(directory)] goes to
// the ring. When the chain completes, the records are applied to the index and their waiters are
// called in submission order. What is submitted while a group is in flight waits for the next
// group, so the group size follows the load without a timer.
//
// A new segment counts only once it is durable: its first group writes the segment header
// (kSegmentMagic and the segment's random key, core/queue/log_format.h) before the records and
// its chain ends with an fsync of the shard's directory (the new name). Records are encoded when
// submitted, before their segment is known, and keyed for it when their group starts. Rotation
// (OPENAT of the next segment) goes through the ring when the active segment has passed
// `segment_size`, or after a failed group: a failed range is never written over or after.
// Segments older than `Index::OldestNeededSegment()` are unlinked through the ring. After a failed
// group, the next group starts with a kDelete for each of its messages: a failed sync does not
// prove the bytes never reach the disk, and a refused message must not come back at restart.
//
// Compaction (net/queue_compact.h): when the oldest segment the index needs is not the active one
// and ShouldCompact() says so, the messages that pin it are read back with READs on the ring (a
// batch of at most a few messages and MiB at a time), re-encoded as relocated kMessage records
// (fragments first for a large body) with their current held flag and recipients' states, and
// appended through the group commit. Once that group is durable the index points at the new
// copies, the old segment falls below OldestNeededSegment() and is unlinked as above. A crash in
// between leaves both copies; replay takes the later one.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "core/clock.h"
#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/spool_record.h"
#include "net/queue_adopt.h"
#include "net/queue_compact.h"
#include "net/reactor.h"
#include "net/spool.h"

struct iovec;

namespace ringmx::net {

// Told about queue changes that make work due (the delivery driver, net/delivery.h). Called on
// the shard's thread from inside a completion or a queue command: an observer only takes note
// (it must not call back into the log from there). Shard-local.
class QueueObserver {
 public:
  // A new message is in the index (durable), or a held one was released.
  virtual void OnMessageReady(std::string_view id) = 0;
  // `ringmx queue flush`: every deferred recipient is due now (see FlushDeferred()).
  virtual void OnFlush() = 0;

 protected:
  ~QueueObserver() = default;
};

struct QueueLogOptions {
  // A new segment is started before the first group that would begin at or past this offset.
  uint64_t segment_size = uint64_t{64} << 20;
  // Names the log in log lines and error messages ("shard=3").
  std::string name = "queue";
  // How long recipient state records (UpdateRecipient()) may wait for a group started by other
  // records before they get one of their own; 0: never wait. Delivery is at least once (a lost
  // "delivered" record means the message is sent again), so the shard lets them ride with the
  // next incoming message's group instead of paying a sync each.
  absl::Duration state_wait = absl::ZeroDuration();
};

// Running totals for `stats`. Only successful groups count.
struct QueueLogCounters {
  uint64_t groups = 0;              // group commits completed (one data sync each)
  uint64_t records = 0;             // records written by them
  uint64_t bytes = 0;               // bytes written by them (segment magic included)
  uint64_t last_group_records = 0;  // records of the latest group
  uint64_t failed_groups = 0;       // groups whose write or sync failed
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;
};

// Shard-local: created, used and destroyed on the thread that runs `reactor`. Destroy it only when
// pending() == 0 (the shard drains first) or when the reactor will dispatch nothing more: its
// operations in flight point into it.
class QueueLog final : public Spool {
 public:
  // Opens (creating it if missing) the shard directory `directory`, replays it into the index,
  // logs one line with what replay found, unlinks segments nothing needs and starts a new segment,
  // durable before this returns. Blocking I/O. Errors name the path. `reactor` and `clock` must
  // outlive the log.
  static absl::StatusOr<std::unique_ptr<QueueLog>> Open(const std::string& directory,
                                                        Reactor& reactor, const core::Clock& clock,
                                                        QueueLogOptions options = {});
  ~QueueLog() override;
  QueueLog(const QueueLog&) = delete;
  QueueLog& operator=(const QueueLog&) = delete;

  // Spool. The record is kept (not copied: its body is written from where it is) until its group
  // completes. The waiter gets OK once the message is durable and in the index;
  // kResourceExhausted when the disk is full; kInternal for another write, sync or open error.
  void Submit(core::SpoolRecord record, SpoolWaiter* waiter) override;
  // Streaming (contract in net/spool.h). A fragment is a kFragment record written from `bytes`
  // itself (moved into the entry, never copied); its waiter gets OK once it is durable and in the
  // index, or the group's error. Submit() of a streamed message is refused (kInternal, logged)
  // unless `record.fragments` equals the fragments handed over and stored for its id; a refused
  // or failed streamed message gets a kAbort from the log itself. Abort() appends a kAbort
  // through the next group.
  void SubmitFragment(std::string_view id, uint32_t index, core::BodyBlocks bytes,
                      FragmentWaiter* waiter) override;
  void Abort(std::string_view id) override;
  void Flush() override;
  // Messages, fragments and operations not answered yet (and tombstones and aborts not written
  // yet), plus operations in flight.
  size_t pending() const override {
    return unanswered_ + ops_in_flight_ + compactor_->ops_in_flight();
  }

  // ---- For the control socket (`ringmx queue ...`); call on the shard's thread. ----

  // What is queued: every message not gone, with its recipients' states. Valid until the next
  // completion batch of the shard (the index changes when a group completes).
  const core::queue::Index& index() const { return index_; }
  // The shard's queue directory, `<spool.path>/queue/<shard>`.
  std::string directory() const { return directory_; }
  // Appends a kMessageOp (hold, release, delete) for `id` through the group commit; `done` is
  // called once, from a completion, when the record is durable and applied to the index (or
  // with the group's error). kNotFound, called at once from inside Apply(), if the index does not
  // hold `id` (a message whose group is still in flight is not in the index yet).
  void Apply(std::string_view id, core::queue::MessageOp op,
             std::function<void(absl::Status)> done);
  // Appends a kRecipientState (recipient number `recipient` of `id` gets `status`) through the
  // group commit; `done` is called once, from a completion, when the record is durable and
  // applied to the index (a message whose recipients are then all final leaves the index, and
  // its segments can go), or with the group's error. kNotFound, called at once from inside
  // UpdateRecipient(), if the index does not hold `id` or the message has no such recipient.
  void UpdateRecipient(std::string_view id, uint32_t recipient, core::queue::RecipientStatus status,
                       std::function<void(absl::Status)> done);
  // `flush`: every deferred recipient becomes due now (`next_attempt_us = now_us`), in memory
  // only (a restart keeps the recorded times). Returns how many recipients it changed.
  size_t FlushDeferred(int64_t now_us);

  const QueueLogCounters& counters() const { return counters_; }
  // Who hears of new, released and flushed work (nullptr: nobody); must outlive the log or be
  // reset first.
  void set_observer(QueueObserver* observer) { observer_ = observer; }
  // The shard directory (borrowed; valid while the log lives): readers of stored messages open
  // segments relative to it.
  int dir_fd() const { return dir_fd_; }
  // Messages streaming in: SubmitFragment() called, neither Submit() nor Abort() yet.
  size_t open_streams() const { return streams_.size(); }
  // The segment new groups go to.
  uint64_t active_segment() const { return active_seq_; }
  // True from the Flush() that starts a group until its waiters have been called.
  bool group_in_flight() const { return group_active_; }

  // Makes the next data sync report `err` (a positive errno) after it has really run: the fault
  // of the pipeline a test cannot produce on a real file system.
  void InjectSyncErrorForTest(int err) { inject_sync_errno_ = err; }
  // While set, segments nothing needs are not unlinked: the state a crash between a relocating
  // group and the unlinks leaves.
  void KeepSegmentsForTest(bool keep) { keep_segments_ = keep; }
  // Bytes of the segments before the active one (what compaction's rule compares).
  uint64_t behind_active_bytes() const { return behind_active_bytes_; }

 private:
  struct Op;
  struct Entry;
  // A message streaming in, from its first SubmitFragment() to its Submit() or Abort().
  struct Stream {
    uint32_t submitted = 0;     // fragments accepted (the next index expected)
    uint32_t stored = 0;        // of which durable and in the index
    uint64_t stored_bytes = 0;  // their bytes
    bool failed = false;        // one was refused or its group failed: Submit() is refused
  };

  QueueLog(std::string directory, int dir_fd, Reactor& reactor, const core::Clock& clock,
           QueueLogOptions options);

  void OnOp(Op& op, int res);
  void StartRotation();
  void OnRotated(int res);
  void StartGroup();
  // Issues WRITEV.. -> FSYNC(DATASYNC) [-> FSYNC(dir)] for the group's bytes from `written_` on.
  void IssueChain();
  void OnChainDone();
  void FinishGroup(absl::Status status);
  // Tells the index about the entry's records once they are durable, from the entry's fields and
  // the records' Locations (no frame is rebuilt, so no body byte is copied).
  void ApplyToIndex(const Entry& entry);
  void DeleteUnneededSegments();
  // Starts the next compaction batch if the rule says so and none is under way (see the file
  // comment); called from Flush().
  void MaybeCompact();
  // Queues relocated records for what a batch read (those still unchanged in the index).
  void OnRelocationsRead(std::vector<RelocationRead> reads, bool failed);
  void FailQueued(const absl::Status& status);
  // Queues a kAbort for `id` (no waiter).
  void QueueAbort(std::string_view id);
  // Stream bookkeeping for an entry whose group (or rotation) failed: a fragment marks its
  // stream failed; a streamed message's fragments get a kAbort.
  void AfterFailure(const Entry& entry);
  // Calls the entry's waiter or `done` (nothing for a tombstone) and counts it answered.
  void Answer(Entry& entry, const absl::Status& status);
  io_uring_sqe* PrepareOp(Op& op);
  void ReserveSqes(unsigned n);

  const std::string directory_;
  const int dir_fd_;  // the shard directory; segments are opened and unlinked relative to it
  Reactor& reactor_;
  const core::Clock& clock_;
  const QueueLogOptions options_;
  core::queue::Index index_;

  // Segment files that exist (sequence numbers), the active one included; erased when their
  // unlink is issued.
  std::set<uint64_t> segments_;
  uint64_t active_seq_ = 0;
  int active_fd_ = -1;
  // The active segment's key, chosen when it was created, and its header (magic and key), which
  // the segment's first group writes at offset 0.
  core::queue::SegmentKey active_key_;
  std::string active_header_;
  uint64_t active_size_ = 0;  // next write offset: bytes of groups that succeeded
  // The active segment's magic and its directory entry are not durable yet: the next group
  // writes the magic at offset 0 and syncs the directory.
  bool active_fresh_ = false;
  // A group failed in the active segment: the next group goes to a new segment.
  bool active_broken_ = false;
  uint64_t next_seq_ = 1;      // what the next rotation creates
  std::string rotation_name_;  // the file name the OPENAT in flight creates (read at submit)
  std::unique_ptr<Op> rotation_op_;

  // Submitted and not yet part of a group.
  std::deque<std::unique_ptr<Entry>> queue_;
  // The group in flight; empty when !group_active_.
  std::vector<std::unique_ptr<Entry>> group_;
  // Entries being answered (FinishGroup(), FailQueued()); Abort() detaches waiters here too.
  std::vector<std::unique_ptr<Entry>> answering_;
  // Streams by message id (see Stream).
  absl::flat_hash_map<std::string, Stream> streams_;
  bool group_active_ = false;
  bool group_fresh_ = false;              // the group starts the segment (magic + directory sync)
  uint64_t group_offset_ = 0;             // file offset of the group's first byte
  uint64_t group_bytes_ = 0;              // bytes of the group (magic included)
  uint64_t written_ = 0;                  // bytes of the group the kernel confirmed, from the start
  std::vector<std::string_view> pieces_;  // the group's bytes, in file order
  std::vector<iovec> iov_;                // the chain in flight's iovecs (read by the kernel)
  std::vector<std::unique_ptr<Op>> write_ops_;  // the chain in flight's WRITEVs, in order
  std::vector<uint64_t> write_sizes_;           // bytes each WRITEV of the chain asked for
  size_t chain_writes_ = 0;                     // WRITEVs in the chain in flight
  std::unique_ptr<Op> sync_op_;
  std::unique_ptr<Op> dir_sync_op_;
  size_t chain_left_ = 0;  // ops of the chain in flight that have not completed

  // Size on disk of each segment in `segments_` other than the active one, and their sum.
  absl::flat_hash_map<uint64_t, uint64_t> segment_bytes_;
  uint64_t behind_active_bytes_ = 0;

  // Compaction. Entries of relocated messages queued or in a group: a new batch waits for them to
  // be applied, so that what it reads is the index's current copy.
  std::unique_ptr<QueueCompactor> compactor_;
  size_t relocations_unapplied_ = 0;
  // The segment being emptied, and the ids pinning it still to be read (checked again when read).
  uint64_t compact_segment_ = 0;
  std::deque<std::string> compact_todo_;
  // A new compaction job starts only once counters_.groups reaches this: at most one per group,
  // so that a job that cannot finish (a message with an update in flight) does not spin.
  uint64_t compact_after_groups_ = 0;
  // A segment whose records could not be read back: not retried before the active segment
  // changes (the error is logged once per try).
  uint64_t compact_failed_segment_ = 0;
  uint64_t compact_failed_active_ = 0;
  // Per id, kMessageOp and kRecipientState entries queued or in a group: a relocated copy made
  // while one is pending would carry states older than it and come after it in the log.
  absl::flat_hash_map<std::string, uint32_t> unapplied_updates_;
  bool keep_segments_ = false;
  QueueObserver* observer_ = nullptr;

  // Unlinks in flight, by sequence number (each op keeps its file name).
  std::vector<std::unique_ptr<Op>> unlink_ops_;

  // Every operation in flight: the log must outlive them.
  size_t ops_in_flight_ = 0;
  size_t unanswered_ = 0;  // waiters and `done`s not called yet
  QueueLogCounters counters_;
  int inject_sync_errno_ = 0;
};

// `<spool_path>/queue/<shard>`.
std::string ShardQueueDirectory(const std::string& spool_path, uint32_t shard);

// AdoptRetiredShardQueues(): net/queue_adopt.h.

}  // namespace ringmx::net
