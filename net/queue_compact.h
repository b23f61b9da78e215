// Compaction of a shard's queue log (DESIGN.md section 6, docs/queue.md "On disk"): the rule that
// says when the oldest segment the index still needs is emptied, and QueueCompactor, which reads
// the records of the messages to relocate back from their segments with READ operations on the
// shard's ring. QueueLog (net/queue_log.h) owns one, picks the messages, re-encodes what was read
// as relocated records and writes them through its group commit.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/queue/index.h"
#include "net/reactor.h"

namespace ringmx::net {

// Whether the oldest segment the index needs (not the active one) is to be emptied by relocating
// the messages that pin it (those whose `first_segment` it is):
//  - `pinned_bytes` (Index::PinnedBytes()) is under a quarter of `segment_bytes`, its size: the
//    copy is cheap, at most a third of what it frees; or
//  - `behind_active_bytes`, every segment before the active one summed, exceeds twice
//    `live_bytes` (Index::live_bytes()): then at least half of those bytes are dead, and emptying
//    the oldest segments in order copies at most as much as it frees (a circular log's cleaner).
// So once compaction has nothing left to do, the segments before the active one take at most
// twice the live bytes: disk use <= 2 x live + the active segment.
bool ShouldCompact(uint64_t pinned_bytes, uint64_t segment_bytes, uint64_t behind_active_bytes,
                   uint64_t live_bytes);

// One message read back for relocation: its kMessage record whole (header included, checked
// against its segment's key) and its body (every fragment's bytes, then the record's tail).
struct RelocationRead {
  std::string id;
  core::queue::Location record;  // where the copy read lies: the index's when the read began
  std::string record_bytes;
  std::string body;
};

// Reads messages' records with io_uring READs on the shard's ring, one batch at a time.
// Shard-local; owned by its QueueLog, destroyed only when ops_in_flight() == 0. Segment files are
// opened read-only with openat(2) (a directory lookup, no data I/O) for the batch and closed when
// it ends, so an unlinked segment's space is never held for long.
class QueueCompactor {
 public:
  // Called once per batch (see Start()).
  using Done = std::function<void(std::vector<RelocationRead> reads, bool failed)>;

  // `dir_fd` is the shard directory (borrowed, outlives this), `directory` its path for messages,
  // `name` the log's name for log lines.
  QueueCompactor(Reactor& reactor, int dir_fd, std::string directory, std::string name);
  ~QueueCompactor();
  QueueCompactor(const QueueCompactor&) = delete;
  QueueCompactor& operator=(const QueueCompactor&) = delete;

  // Reads the records of `messages` (the index's entries; read during the call only): each
  // segment's header (for its key), each kMessage record and fragment. Returns at once; `done` is
  // called from a completion once every read is back, with the messages whose records were read
  // whole and checked (CRC against the segment's key, type, id, fragment order, body size), in
  // the order given. `failed` says that one could not be opened, read or checked (logged, with
  // the file and offset); that message is left out. Only one batch at a time (busy()).
  void Start(const std::vector<const core::queue::QueuedMessage*>& messages, Done done);
  // Whether a batch is being read: `done` not called yet.
  bool busy() const { return busy_; }
  size_t ops_in_flight() const { return ops_in_flight_; }

 private:
  struct ReadOp;
  // One message of the batch: the indexes of its reads in `ops_`.
  struct Planned {
    std::string id;
    core::queue::Location record;
    size_t record_op = 0;
    std::vector<size_t> fragment_ops;
  };

  // The read-only descriptor of segment `seq` for this batch (-1 and logged if it cannot be
  // opened), with a READ of its header queued the first time.
  int SegmentFd(uint64_t seq);
  size_t AddRead(uint64_t seq, uint64_t offset, uint64_t size);
  void Issue(ReadOp& op);
  void OnRead(ReadOp& op, int res);
  void Finish();
  // Checks and assembles `p` from its reads; false (logged) if anything is wrong.
  bool Assemble(const Planned& p, RelocationRead& out);
  void Fail(const std::string& what);

  Reactor& reactor_;
  const int dir_fd_;
  const std::string directory_;
  const std::string name_;
  bool busy_ = false;
  bool failed_ = false;
  Done done_;
  std::vector<Planned> planned_;
  std::vector<std::unique_ptr<ReadOp>> ops_;
  std::map<uint64_t, int> fds_;            // this batch's segments; -1: could not be opened
  std::map<uint64_t, size_t> header_ops_;  // segment -> the read of its header
  size_t ops_in_flight_ = 0;
  size_t reads_left_ = 0;  // reads of the batch not complete yet
};

}  // namespace ringmx::net
