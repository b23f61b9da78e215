// The per-shard queue log; the pipeline is described in net/queue_log.h.

#include "net/queue_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "core/check.h"
#include "core/log.h"
#include "core/queue/store_files.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"
#include "net/queue_adopt.h"

namespace ringmx::net {

namespace q = core::queue;
using queue_files::CreateSegmentSync;
using queue_files::DescribeReplay;
using queue_files::EncodedRecord;
using queue_files::EncodedRecords;
using queue_files::EncodeMessage;
using queue_files::EnsureDirectory;
using queue_files::FsyncDirectory;
using queue_files::kFileMode;
using queue_files::kFragmentBytes;
using queue_files::NewSegmentKey;
using queue_files::StoreError;

namespace {

// One WRITEV takes at most IOV_MAX iovecs; a group is split into several, linked.
constexpr size_t kIovMax = IOV_MAX;
// Upper bound on a group's pieces (two per message record): the chain (pieces / IOV_MAX WRITEVs
// plus two syncs) must fit into the submission queue at once. The rest waits for the next group.
constexpr size_t kMaxGroupPieces = 32 * kIovMax;
// A whole small record (no tail) of `type`.
EncodedRecords SmallRecord(std::string prefix, q::RecordType type) {
  EncodedRecords out;
  out.push_back({std::move(prefix), {}, type});
  return out;
}

}  // namespace

enum class QueueOpKind : uint8_t {
  kWrite,    // WRITEV of a group, linked to the next
  kSync,     // FSYNC(DATASYNC) of the active segment, the end of the chain or linked to kDirSync
  kDirSync,  // FSYNC of the shard directory: the first group of a new segment
  kRotate,   // OPENAT of the next segment
  kUnlink,   // UNLINKAT of a segment nothing needs
};

// One operation in flight; its address is the SQE's user_data.
struct QueueLog::Op final : public CompletionHandler {
  Op(QueueLog* log_in, QueueOpKind kind_in) : log(log_in), kind(kind_in) {}
  void OnCompletion(const io_uring_cqe& cqe) override { log->OnOp(*this, cqe.res); }

  QueueLog* const log;
  const QueueOpKind kind;
  bool in_flight = false;
  int res = 0;
  uint64_t seq = 0;  // kUnlink
  std::string name;  // kUnlink: the file name, read by the kernel at submission
};

// One submitted message or operation: its records, and who is told. Heap-allocated and never
// moved, so that views into its members stay valid until it is answered.
//
// No body byte is copied in userspace between the session's buffer and the write: the session's
// blocks (core::BodyBlocks) are moved into `record.body` (a move of their heap buffers), the
// records' tails are views into them, the group's iovecs point at those views (one per block), and
// once the group is durable the index is told from `header` and the records' Locations
// (ApplyToIndex()), never from a frame rebuilt around the body. The only other reader of the body
// is the CRC (EncodeMessage()).
struct QueueLog::Entry {
  std::string id;             // the message the records are about
  core::SpoolRecord record;   // messages: the tails point into record.body
  q::MessageHeader header;    // messages: as encoded (views into `record`), for the index
  uint32_t streamed = 0;      // messages: fragments written before by SubmitFragment()
  core::BodyBlocks fragment;  // streamed fragments: the session's bytes (the tail points here)
  q::MessageOp op{};          // operations: what the kMessageOp record says
  EncodedRecords records;
  // The key `records` are framed with: kUnkeyed until their group starts, which re-keys them for
  // the active segment (q::RekeyRecord()).
  q::SegmentKey key = q::kUnkeyed;
  std::vector<q::Location> where;  // per record, assigned when the group starts
  SpoolWaiter* waiter = nullptr;   // messages
  // Streamed fragments; null once Abort() was called for the id (nobody is told then).
  FragmentWaiter* fragment_waiter = nullptr;
  std::function<void(absl::Status)> done;  // operations and recipient states
  uint32_t recipient = 0;                  // kRecipientState: which one
  q::RecipientStatus status;               // kRecipientState: its new status
  // A kMessageOp or kRecipientState counted in `unapplied_updates_` until answered.
  bool counts_update = false;
  // A recipient state record that may wait up to QueueLogOptions::state_wait for a group that
  // other records start (see Flush()); when it was queued.
  bool lazy = false;
  absl::Time queued_at = absl::InfinitePast();
  // A relocated message (compaction): `header` views `relocated_record` (the old kMessage record
  // read back), the records' tails view `relocated_body`. Counted in `relocations_unapplied_`.
  bool relocation = false;
  std::string relocated_record;
  std::string relocated_body;
  absl::Status error;  // refused before any write: no records, answered with this
};

namespace {

// Compaction reads at most this many messages, or about this many bytes (at least one message),
// per batch: what one batch holds in memory and adds to a group.
constexpr size_t kCompactBatchMessages = 16;
constexpr uint64_t kCompactBatchBytes = uint64_t{4} << 20;
// Segments removed by one linked chain of unlinks (DeleteUnneededSegments).
constexpr size_t kMaxUnlinkChain = 64;

uint64_t StoredBytes(const q::QueuedMessage& m) {
  uint64_t bytes = m.record.size;
  for (const q::Location& f : m.fragments) bytes += f.size;
  return bytes;
}

}  // namespace

// ---- Opening ----------------------------------------------------------------------------------

std::string ShardQueueDirectory(const std::string& spool_path, uint32_t shard) {
  return absl::StrCat(spool_path, "/queue/", shard);
}

absl::StatusOr<std::unique_ptr<QueueLog>> QueueLog::Open(const std::string& directory,
                                                         Reactor& reactor, const core::Clock& clock,
                                                         QueueLogOptions options) {
  if (options.segment_size == 0) {
    return absl::InvalidArgumentError("queue: segment_size must be at least 1");
  }
  if (reactor.ring()->sq.ring_entries < 4 * kMaxGroupPieces / kIovMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue: the ring needs at least ", 4 * kMaxGroupPieces / kIovMax, " submission entries"));
  }
  RINGMX_RETURN_IF_ERROR(EnsureDirectory(directory));
  const int dir_fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return core::ErrnoStatus(errno, absl::StrCat("open queue directory ", directory));
  std::unique_ptr<QueueLog> log(new QueueLog(directory, dir_fd, reactor, clock, options));

  RINGMX_ASSIGN_OR_RETURN(q::ReplayReport report, q::ReplayDirectory(directory, log->index_));
  RINGMX_ASSIGN_OR_RETURN(std::vector<uint64_t> segments, q::ListSegments(directory));
  log->segments_.insert(segments.begin(), segments.end());
  for (uint64_t seq : segments) {
    struct stat st;
    const std::string name = q::SegmentFileName(seq);
    if (fstatat(dir_fd, name.c_str(), &st, 0) != 0) {
      return core::ErrnoStatus(errno, absl::StrCat("stat ", directory, "/", name));
    }
    log->segment_bytes_[seq] = static_cast<uint64_t>(st.st_size);
    log->behind_active_bytes_ += static_cast<uint64_t>(st.st_size);
  }
  log->next_seq_ = log->segments_.empty() ? 1 : *log->segments_.rbegin() + 1;
  core::LogInfo(absl::StrCat(log->options_.name, " queue ", directory,
                             " replayed: ", DescribeReplay(report, log->index_)));

  // Always a new segment: the last one may end in a torn record and is never appended to.
  const uint64_t seq = log->next_seq_++;
  const q::SegmentKey key = NewSegmentKey();
  RINGMX_ASSIGN_OR_RETURN(log->active_fd_, CreateSegmentSync(dir_fd, directory, seq, key));
  log->active_seq_ = seq;
  log->active_key_ = key;
  log->active_header_ = q::EncodeSegmentHeader(key);
  log->active_size_ = q::kSegmentHeaderSize;
  log->segments_.insert(seq);
  ++log->counters_.segments_created;

  // Segments nothing needs any more go now, before the shard serves.
  const uint64_t oldest = log->index_.OldestNeededSegment(seq);
  bool removed = false;
  while (!log->segments_.empty() && *log->segments_.begin() < oldest) {
    const uint64_t old = *log->segments_.begin();
    log->segments_.erase(log->segments_.begin());
    log->behind_active_bytes_ -= log->segment_bytes_[old];
    log->segment_bytes_.erase(old);
    const std::string name = q::SegmentFileName(old);
    if (unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return core::ErrnoStatus(errno, absl::StrCat("remove segment ", directory, "/", name));
    }
    ++log->counters_.segments_deleted;
    removed = true;
  }
  if (removed) RINGMX_RETURN_IF_ERROR(FsyncDirectory(dir_fd, directory));
  return log;
}

QueueLog::QueueLog(std::string directory, int dir_fd, Reactor& reactor, const core::Clock& clock,
                   QueueLogOptions options)
    : directory_(std::move(directory)),
      dir_fd_(dir_fd),
      reactor_(reactor),
      clock_(clock),
      options_(std::move(options)),
      rotation_op_(std::make_unique<Op>(this, QueueOpKind::kRotate)),
      sync_op_(std::make_unique<Op>(this, QueueOpKind::kSync)),
      dir_sync_op_(std::make_unique<Op>(this, QueueOpKind::kDirSync)),
      compactor_(std::make_unique<QueueCompactor>(reactor, dir_fd, directory_, options_.name)) {}

QueueLog::~QueueLog() {
  if (ops_in_flight_ > 0 || unanswered_ > 0) {
    // The shard drains the log before it ends; if it could not (the ring failed), the reactor is
    // torn down next without dispatching anything, so the dangling user_data is never read.
    core::LogError(absl::StrCat(options_.name, " queue ", directory_, ": destroyed with ",
                                unanswered_, " unanswered records and ", ops_in_flight_,
                                " operations in flight"));
  }
  if (active_fd_ >= 0) close(active_fd_);
  close(dir_fd_);
}

// ---- Submitting -------------------------------------------------------------------------------

void QueueLog::Submit(core::SpoolRecord record, SpoolWaiter* waiter) {
  RINGMX_DCHECK(waiter != nullptr);
  auto entry = std::make_unique<Entry>();
  entry->record = std::move(record);  // the views below point into the entry's copy
  entry->waiter = waiter;
  entry->id = entry->record.id;
  const core::SpoolRecord& r = entry->record;
  q::MessageHeader& header = entry->header;
  header.id = r.id;
  header.received_us = r.received_unix_us;
  header.sender = r.sender;
  header.recipients.assign(r.recipients.begin(), r.recipients.end());
  header.envelope_json = r.envelope_json;
  header.trace_headers = r.trace_headers;
  if (r.bounce) header.flags |= q::kMessageFlagBounce;
  if (r.held) header.flags |= q::kMessageFlagHeld;

  // A streamed message: its fragments must be exactly those stored for the id. From here on they
  // are ours (net/spool.h): the stream ends whatever the outcome.
  bool had_stream = false;
  Stream stream;
  if (auto it = streams_.find(r.id); it != streams_.end()) {
    had_stream = true;
    stream = it->second;
    streams_.erase(it);
  }
  if (r.fragments > 0 || had_stream) {
    if (stream.failed || stream.submitted != r.fragments || stream.stored != r.fragments) {
      entry->error = absl::InternalError(absl::StrCat(
          "queue: message ", r.id, " says it has ", r.fragments, " streamed fragments, but ",
          stream.submitted, " were handed over and ", stream.stored, " stored",
          stream.failed ? " (one failed)" : "", "; not stored"));
    }
  }
  if (entry->error.ok() && r.recipients.empty()) {
    // The index drops a message whose recipients are all final, which with none is at once: the
    // message would get 250 and then vanish. Refused (from the group's completion) instead.
    entry->error = absl::InternalError(absl::StrCat(
        "queue: message ", r.id,
        " has no recipients; not stored (the session must fill SpoolRecord::recipients)"));
  }
  if (!entry->error.ok()) {
    core::LogError(absl::StrCat(options_.name, " ", entry->error.message()));
  } else {
    entry->streamed = r.fragments;
    const core::BodyBlocks::Views body = r.body.views();
    EncodeMessage(header, body, entry->records, q::kUnkeyed, r.fragments, stream.stored_bytes);
  }
  const bool abort_stream = !entry->error.ok() && had_stream && stream.submitted > 0;
  queue_.push_back(std::move(entry));
  ++unanswered_;
  if (abort_stream) QueueAbort(r.id);
}

void QueueLog::SubmitFragment(std::string_view id, uint32_t index, core::BodyBlocks bytes,
                              FragmentWaiter* waiter) {
  RINGMX_DCHECK(waiter != nullptr);
  auto entry = std::make_unique<Entry>();
  entry->id = std::string(id);
  entry->fragment_waiter = waiter;
  // Moved, not copied: the record's tail points into the entry's blocks until the write is done.
  entry->fragment = std::move(bytes);
  Stream& stream = streams_[entry->id];
  if (id.empty() || index != stream.submitted || entry->fragment.size() > kMaxFragmentBytes) {
    entry->error = absl::InternalError(
        absl::StrCat("queue: fragment ", index, " of message ", core::Av(id), " (",
                     entry->fragment.size(), " bytes) refused: expected fragment ",
                     stream.submitted, " of at most ", kMaxFragmentBytes, " bytes"));
    core::LogError(absl::StrCat(options_.name, " ", entry->error.message()));
    stream.failed = true;
  } else if (stream.failed) {
    entry->error =
        absl::InternalError(absl::StrCat("queue: fragment ", index, " of message ", core::Av(id),
                                         " refused: an earlier one failed"));
  } else {
    ++stream.submitted;
    core::BodyBlocks::Views views = entry->fragment.views();
    std::string prefix = q::EncodeFragmentPrefix(id, index, views, q::kUnkeyed);
    entry->records.push_back(
        {std::move(prefix), std::move(views), q::RecordType::kFragment, index});
  }
  queue_.push_back(std::move(entry));
  ++unanswered_;
}

void QueueLog::Abort(std::string_view id) {
  auto it = streams_.find(core::Av(id));
  if (it == streams_.end()) return;  // nothing handed over, or Submit() took the stream
  const bool any = it->second.submitted > 0;
  streams_.erase(it);
  // The session may go away now: its fragments still queued or in flight tell nobody.
  const auto detach = [id](Entry& entry) {
    if (entry.fragment_waiter != nullptr && entry.id == id) entry.fragment_waiter = nullptr;
  };
  for (auto& entry : queue_) detach(*entry);
  for (auto& entry : group_) detach(*entry);
  for (auto& entry : answering_) detach(*entry);
  if (any) QueueAbort(id);
}

void QueueLog::QueueAbort(std::string_view id) {
  auto entry = std::make_unique<Entry>();
  entry->id = std::string(id);
  entry->records = SmallRecord(q::EncodeAbort(id, q::kUnkeyed), q::RecordType::kAbort);
  queue_.push_back(std::move(entry));
  ++unanswered_;
}

void QueueLog::AfterFailure(const Entry& entry) {
  if (!entry.error.ok()) return;  // refused before any write: dealt with then
  if (entry.relocation && entry.records.size() > 1) {
    // Its fragments may have reached the disk: the abort keeps replay from holding them.
    QueueAbort(entry.id);
    return;
  }
  if (!entry.records.empty() && entry.records.front().type == q::RecordType::kFragment &&
      entry.fragment_waiter != nullptr) {
    // Its session answers the message 452 and calls Abort().
    if (auto it = streams_.find(entry.id); it != streams_.end()) it->second.failed = true;
  }
  if (entry.waiter != nullptr && entry.streamed > 0) {
    // The message's streamed fragments are in the index (pinning their segments) and on disk:
    // nobody else ends the stream (the session does not call Abort() after Submit()).
    QueueAbort(entry.id);
  }
}

void QueueLog::Apply(std::string_view id, q::MessageOp op, std::function<void(absl::Status)> done) {
  if (index_.Find(id) == nullptr) {
    done(absl::NotFoundError(absl::StrCat("queue: no message ", core::Av(id))));
    return;
  }
  auto entry = std::make_unique<Entry>();
  entry->done = std::move(done);
  entry->id = std::string(id);
  entry->op = op;
  entry->records =
      SmallRecord(q::EncodeMessageOp(id, op, absl::ToUnixMicros(clock_.Now()), q::kUnkeyed),
                  q::RecordType::kMessageOp);
  entry->counts_update = true;
  ++unapplied_updates_[entry->id];
  queue_.push_back(std::move(entry));
  ++unanswered_;
}

void QueueLog::UpdateRecipient(std::string_view id, uint32_t recipient, q::RecipientStatus status,
                               std::function<void(absl::Status)> done) {
  const q::QueuedMessage* m = index_.Find(id);
  if (m == nullptr) {
    done(absl::NotFoundError(absl::StrCat("queue: no message ", core::Av(id))));
    return;
  }
  if (recipient >= m->recipients.size()) {
    done(absl::NotFoundError(absl::StrCat("queue: message ", core::Av(id), " has no recipient ",
                                          recipient, " (it has ", m->recipients.size(), ")")));
    return;
  }
  auto entry = std::make_unique<Entry>();
  entry->done = std::move(done);
  entry->id = std::string(id);
  entry->recipient = recipient;
  entry->records = SmallRecord(q::EncodeRecipientState(id, recipient, status, q::kUnkeyed),
                               q::RecordType::kRecipientState);
  entry->status = std::move(status);
  entry->counts_update = true;
  if (options_.state_wait > absl::ZeroDuration()) {
    entry->lazy = true;
    entry->queued_at = clock_.Now();
  }
  ++unapplied_updates_[entry->id];
  queue_.push_back(std::move(entry));
  ++unanswered_;
}

size_t QueueLog::FlushDeferred(int64_t now_us) {
  const size_t n = index_.MakeDeferredDue(now_us);
  if (observer_ != nullptr) observer_->OnFlush();
  return n;
}

void QueueLog::Flush() {
  MaybeCompact();
  if (group_active_ || rotation_op_->in_flight || queue_.empty()) return;
  if (options_.state_wait > absl::ZeroDuration()) {
    // Only state records waiting, the oldest for less than state_wait: they wait for a group
    // that other records (a message) start, rather than cost a sync of their own.
    absl::Time oldest = absl::InfiniteFuture();
    for (const auto& entry : queue_) {
      if (!entry->lazy) {
        oldest = absl::InfinitePast();
        break;
      }
      oldest = std::min(oldest, entry->queued_at);
    }
    if (clock_.Now() < oldest + options_.state_wait) return;
  }
  if (active_fd_ < 0 || active_broken_ || active_size_ >= options_.segment_size) {
    StartRotation();
    return;
  }
  StartGroup();
}

void QueueLog::FailQueued(const absl::Status& status) {
  RINGMX_DCHECK(answering_.empty());
  // Moved out first: aborts queued below and what waiters submit go to the next group.
  answering_.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  for (auto& entry : answering_) AfterFailure(*entry);
  for (size_t i = 0; i < answering_.size(); ++i) {
    Entry& entry = *answering_[i];
    Answer(entry, entry.error.ok() ? status : entry.error);
  }
  answering_.clear();
}

// ---- The ring ---------------------------------------------------------------------------------

void QueueLog::ReserveSqes(unsigned n) {
  io_uring* ring = reactor_.ring();
  while (io_uring_sq_space_left(ring) < n) {
    // Like Reactor::Prepare() on a full queue: hand what is prepared to the kernel and retry. An
    // error here is transient (the kernel could not take the SQEs yet) and the loop retries.
    reactor_.Submit().IgnoreError();
  }
}

io_uring_sqe* QueueLog::PrepareOp(Op& op) {
  RINGMX_DCHECK(!op.in_flight);
  io_uring_sqe* sqe = reactor_.Prepare(&op);
  op.in_flight = true;
  op.res = 0;
  ++ops_in_flight_;
  return sqe;
}

void QueueLog::OnOp(Op& op, int res) {
  RINGMX_DCHECK(op.in_flight);
  op.in_flight = false;
  op.res = res;
  --ops_in_flight_;
  switch (op.kind) {
    case QueueOpKind::kSync:
      if (inject_sync_errno_ != 0 && res >= 0) {
        op.res = -inject_sync_errno_;
        inject_sync_errno_ = 0;
      }
      [[fallthrough]];
    case QueueOpKind::kWrite:
    case QueueOpKind::kDirSync:
      RINGMX_DCHECK(chain_left_ > 0);
      if (--chain_left_ == 0) OnChainDone();
      return;
    case QueueOpKind::kRotate:
      OnRotated(res);
      return;
    case QueueOpKind::kUnlink: {
      if (res < 0 && res != -ENOENT) {
        core::LogError(absl::StrCat(
            options_.name, " queue: ",
            core::ErrnoStatus(-res, absl::StrCat("remove segment ", directory_, "/", op.name))
                .message()));
      } else {
        ++counters_.segments_deleted;
      }
      // Last use of `op`: it is destroyed here.
      auto it = std::find_if(unlink_ops_.begin(), unlink_ops_.end(),
                             [&op](const std::unique_ptr<Op>& p) { return p.get() == &op; });
      RINGMX_CHECK(it != unlink_ops_.end());
      unlink_ops_.erase(it);
      // (A failed unlink cancels the rest of its chain: those segments are left to the next
      // start, whose replay removes what nothing needs.)
      if (unlink_ops_.empty()) DeleteUnneededSegments();
      return;
    }
  }
}

// ---- Rotation ---------------------------------------------------------------------------------

void QueueLog::StartRotation() {
  rotation_name_ = q::SegmentFileName(next_seq_);
  rotation_op_->seq = next_seq_;
  io_uring_sqe* sqe = PrepareOp(*rotation_op_);
  io_uring_prep_openat(sqe, dir_fd_, rotation_name_.c_str(),
                       O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, kFileMode);
}

void QueueLog::OnRotated(int res) {
  const uint64_t seq = rotation_op_->seq;
  if (res < 0) {
    if (res == -EEXIST) {
      // Not ours (we listed the directory at start): skip the number; the next Flush() retries.
      core::LogWarning(absl::StrCat(options_.name, " queue: ", directory_, "/", rotation_name_,
                                    " exists already; skipping that segment number"));
      next_seq_ = std::max(next_seq_, seq + 1);
      return;
    }
    const absl::Status status =
        StoreError(-res, absl::StrCat("create segment ", directory_, "/", rotation_name_));
    core::LogError(absl::StrCat(options_.name, " queue: ", status.message()));
    FailQueued(status);  // nothing to write them to; the next Flush() tries again
    return;
  }
  if (active_fd_ >= 0) {
    io_uring_sqe* sqe = reactor_.Prepare(nullptr);  // nothing waits for it
    io_uring_prep_close(sqe, active_fd_);
  }
  if (segments_.contains(active_seq_)) {
    segment_bytes_[active_seq_] = active_size_;
    behind_active_bytes_ += active_size_;
  }
  active_seq_ = seq;
  active_fd_ = res;
  active_key_ = NewSegmentKey();
  active_header_ = q::EncodeSegmentHeader(active_key_);
  active_size_ = 0;
  active_fresh_ = true;  // header and name not durable yet: the first group does both
  active_broken_ = false;
  next_seq_ = std::max(next_seq_, seq + 1);
  segments_.insert(seq);
  ++counters_.segments_created;
  DeleteUnneededSegments();
  Flush();
}

void QueueLog::DeleteUnneededSegments() {
  if (keep_segments_) return;
  // One chain of unlinks at a time, in ascending order and linked (each runs after the one
  // before; the journal makes them durable in that order): a segment holding a delete must never
  // be gone while an older one holding its message is still there after a crash. What becomes
  // deletable meanwhile goes with the next chain (OnOp starts it).
  if (!unlink_ops_.empty()) return;
  const uint64_t oldest = index_.OldestNeededSegment(active_seq_);
  std::vector<uint64_t> doomed;
  while (!segments_.empty() && *segments_.begin() < oldest && *segments_.begin() != active_seq_ &&
         doomed.size() < kMaxUnlinkChain) {
    const uint64_t seq = *segments_.begin();
    segments_.erase(segments_.begin());
    if (auto it = segment_bytes_.find(seq); it != segment_bytes_.end()) {
      behind_active_bytes_ -= it->second;
      segment_bytes_.erase(it);
    }
    doomed.push_back(seq);
  }
  if (doomed.empty()) return;
  ReserveSqes(static_cast<unsigned>(doomed.size()));  // the chain goes in one submission
  io_uring_sqe* previous = nullptr;
  for (const uint64_t seq : doomed) {
    auto op = std::make_unique<Op>(this, QueueOpKind::kUnlink);
    op->seq = seq;
    op->name = q::SegmentFileName(seq);
    io_uring_sqe* sqe = PrepareOp(*op);
    io_uring_prep_unlinkat(sqe, dir_fd_, op->name.c_str(), 0);
    if (previous != nullptr) previous->flags |= IOSQE_IO_LINK;
    previous = sqe;
    unlink_ops_.push_back(std::move(op));
  }
}

// ---- Group commit -----------------------------------------------------------------------------

void QueueLog::StartGroup() {
  group_active_ = true;
  group_fresh_ = active_fresh_;
  group_offset_ = active_size_;
  written_ = 0;
  pieces_.clear();
  uint64_t offset = group_offset_;
  if (group_fresh_) {
    RINGMX_DCHECK(offset == 0);
    pieces_.push_back(active_header_);
    offset += active_header_.size();
  }
  while (!queue_.empty()) {
    Entry& entry = *queue_.front();
    const size_t n = entry.records.size();
    size_t entry_pieces = n;  // a prefix per record, and a piece per part of each tail
    for (const EncodedRecord& record : entry.records) entry_pieces += record.tail.size();
    if (!group_.empty() && pieces_.size() + entry_pieces > kMaxGroupPieces) break;
    entry.where.resize(n);
    for (size_t i = 0; i < n; ++i) {
      EncodedRecord& record = entry.records[i];
      // The segment is known only now: 8 bytes of each header change, the CRC is not recomputed.
      q::RekeyRecord(record.prefix, entry.key, active_key_);
      uint64_t size = record.prefix.size();
      pieces_.push_back(record.prefix);
      for (std::string_view part : record.tail) {
        size += part.size();
        pieces_.push_back(part);
      }
      entry.where[i] = q::Location{active_seq_, offset, size};
      offset += size;
    }
    entry.key = active_key_;
    group_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  group_bytes_ = offset - group_offset_;
  IssueChain();
}

void QueueLog::IssueChain() {
  iov_.clear();
  uint64_t skip = written_;
  for (std::string_view piece : pieces_) {
    if (skip >= piece.size()) {
      skip -= piece.size();
      continue;
    }
    iov_.push_back(iovec{const_cast<char*>(piece.data() + skip), piece.size() - skip});
    skip = 0;
  }
  if (iov_.empty()) {
    // Only refused entries: one NOP answers them from a completion, as the contract says.
    chain_writes_ = 0;
    io_uring_sqe* sqe = PrepareOp(*sync_op_);
    io_uring_prep_nop(sqe);
    chain_left_ = 1;
    return;
  }
  chain_writes_ = (iov_.size() + kIovMax - 1) / kIovMax;
  while (write_ops_.size() < chain_writes_) {
    write_ops_.push_back(std::make_unique<Op>(this, QueueOpKind::kWrite));
  }
  write_sizes_.assign(chain_writes_, 0);
  const unsigned sqes = static_cast<unsigned>(chain_writes_ + 1 + (group_fresh_ ? 1 : 0));
  // The whole chain goes into one submission: a chain split across two runs unlinked.
  ReserveSqes(sqes);
  uint64_t offset = group_offset_ + written_;
  for (size_t c = 0; c < chain_writes_; ++c) {
    const size_t first = c * kIovMax;
    const size_t count = std::min(kIovMax, iov_.size() - first);
    uint64_t bytes = 0;
    for (size_t i = first; i < first + count; ++i) bytes += iov_[i].iov_len;
    write_sizes_[c] = bytes;
    io_uring_sqe* sqe = PrepareOp(*write_ops_[c]);
    io_uring_prep_writev(sqe, active_fd_, &iov_[first], static_cast<unsigned>(count), offset);
    sqe->flags |= IOSQE_IO_LINK;  // a failed or short write cancels the rest and the sync
    offset += bytes;
  }
  io_uring_sqe* sqe = PrepareOp(*sync_op_);
  io_uring_prep_fsync(sqe, active_fd_, IORING_FSYNC_DATASYNC);
  if (group_fresh_) {
    // The segment's name becomes durable with the directory; its records count only then.
    sqe->flags |= IOSQE_IO_LINK;
    sqe = PrepareOp(*dir_sync_op_);
    io_uring_prep_fsync(sqe, dir_fd_, 0);
  }
  chain_left_ = sqes;
}

void QueueLog::OnChainDone() {
  const std::string segment = absl::StrCat(directory_, "/", q::SegmentFileName(active_seq_));
  absl::Status error;
  bool progress = false;
  for (size_t c = 0; c < chain_writes_; ++c) {
    const int res = write_ops_[c]->res;
    if (res == -ECANCELED) break;  // after a short or failed write
    if (res < 0) {
      error = StoreError(-res, absl::StrCat("write ", segment));
      break;
    }
    written_ += static_cast<uint64_t>(res);
    if (res > 0) progress = true;
    if (static_cast<uint64_t>(res) < write_sizes_[c]) break;  // short: the rest was cancelled
  }
  if (error.ok() && written_ < group_bytes_) {
    if (progress) {
      IssueChain();  // the rest, from where the kernel stopped
      return;
    }
    error = StoreError(EIO, absl::StrCat("write ", segment, " (no progress)"));
  }
  if (error.ok() && sync_op_->res < 0) {
    error = StoreError(-sync_op_->res, absl::StrCat("fdatasync ", segment));
  }
  if (error.ok() && group_fresh_ && chain_writes_ > 0 && dir_sync_op_->res < 0) {
    error = StoreError(-dir_sync_op_->res, absl::StrCat("fsync directory ", directory_));
  }
  FinishGroup(std::move(error));
}

void QueueLog::ApplyToIndex(const Entry& entry) {
  // From what the entry already holds: no frame is rebuilt (see Entry).
  for (size_t i = 0; i < entry.records.size(); ++i) {
    const EncodedRecord& record = entry.records[i];
    const q::Location& where = entry.where[i];
    switch (record.type) {
      case q::RecordType::kMessage:
        // A relocated copy is made only of a message in the index with no update pending, and
        // anything that removes it comes later in the log (see OnRelocationsRead()).
        RINGMX_DCHECK(!entry.relocation || index_.Find(entry.id) != nullptr);
        index_.ApplyMessage(entry.header, where);
        if (!entry.relocation && observer_ != nullptr) observer_->OnMessageReady(entry.id);
        break;
      case q::RecordType::kFragment:
        index_.ApplyFragment(entry.id, record.fragment_index, where);
        break;
      case q::RecordType::kAbort:
        index_.ApplyAbort(entry.id);
        break;
      case q::RecordType::kMessageOp:
        index_.ApplyMessageOp(entry.id, entry.op);
        if (entry.op == q::MessageOp::kRelease && observer_ != nullptr) {
          observer_->OnMessageReady(entry.id);
        }
        break;
      case q::RecordType::kRecipientState:
        index_.ApplyRecipientState(entry.id, entry.recipient, entry.status);
        break;
    }
  }
}

void QueueLog::FinishGroup(absl::Status status) {
  // Reset before calling out: a waiter may Submit() and even Flush() from OnStored(), or Abort()
  // (which must reach the entries still to be answered: they are in `answering_`).
  RINGMX_DCHECK(answering_.empty());
  answering_ = std::move(group_);
  group_.clear();
  group_active_ = false;
  std::vector<std::unique_ptr<Entry>>& done = answering_;
  if (status.ok() && group_bytes_ == 0) {
    // Nothing was written (only refused entries).
  } else if (status.ok()) {
    active_size_ = group_offset_ + group_bytes_;
    active_fresh_ = false;
    ++counters_.groups;
    counters_.bytes += group_bytes_;
    counters_.last_group_records = 0;
    for (const auto& entry : done) {
      ApplyToIndex(*entry);
      counters_.last_group_records += entry->records.size();
      if (entry->fragment_waiter != nullptr && !entry->records.empty()) {
        // Counted before the waiter hears of it: it may Submit() the message from there.
        if (auto it = streams_.find(entry->id); it != streams_.end()) {
          ++it->second.stored;
          it->second.stored_bytes += entry->fragment.size();
        }
      }
    }
    counters_.records += counters_.last_group_records;
    DeleteUnneededSegments();
  } else {
    // The range may hold part of the group: nothing is written after it, the next group starts
    // a new segment.
    active_broken_ = true;
    ++counters_.failed_groups;
    // Give back the space the failed range took (a write that ran out of space may have filled
    // the disk with the part it did write, and the mail that still fits must find that room).
    // Synchronous, on a failure path only; the tombstones below cover a truncation that does not
    // reach the disk before a crash.
    if (active_fd_ >= 0 && ftruncate(active_fd_, static_cast<off_t>(active_size_)) != 0) {
      core::LogWarning(absl::StrCat(options_.name, " queue: cannot cut the failed range off ",
                                    directory_, "/", q::SegmentFileName(active_seq_), ": ",
                                    strerror(errno)));
    }
    core::LogError(absl::StrCat(options_.name, " queue: group of ", done.size(),
                                " records failed: ", status.message()));
    // A failed sync does not mean the bytes never reach the disk: a message refused here could
    // come back at the next start while its client retries it elsewhere. The next group carries
    // a delete for each (an orphan, ignored, if the message never got there). Best effort: a
    // tombstone whose own group fails is dropped.
    const int64_t now_us = absl::ToUnixMicros(clock_.Now());
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      if ((*it)->waiter == nullptr || !(*it)->error.ok()) continue;
      auto tombstone = std::make_unique<Entry>();
      tombstone->id = (*it)->id;
      tombstone->op = q::MessageOp::kDelete;
      tombstone->records =
          SmallRecord(q::EncodeMessageOp(tombstone->id, q::MessageOp::kDelete, now_us, q::kUnkeyed),
                      q::RecordType::kMessageOp);
      queue_.push_front(std::move(tombstone));
      ++unanswered_;
    }
    for (const auto& entry : done) AfterFailure(*entry);
  }
  // By index: Abort() from a waiter may detach later entries, nothing adds or removes any.
  for (size_t i = 0; i < done.size(); ++i) {
    Entry& entry = *done[i];
    Answer(entry, entry.error.ok() ? status : entry.error);
  }
  answering_.clear();
}

void QueueLog::Answer(Entry& entry, const absl::Status& status) {
  --unanswered_;
  if (entry.relocation) --relocations_unapplied_;
  if (entry.counts_update) {
    auto it = unapplied_updates_.find(entry.id);
    RINGMX_DCHECK(it != unapplied_updates_.end());
    if (it != unapplied_updates_.end() && --it->second == 0) unapplied_updates_.erase(it);
  }
  if (entry.waiter != nullptr) {
    entry.waiter->OnStored(status);
  } else if (entry.fragment_waiter != nullptr) {
    entry.fragment_waiter->OnFragmentStored(status);
  } else if (entry.done) {
    entry.done(status);
  }
  // Else a tombstone (see FinishGroup()), an abort, or a fragment whose stream was aborted: nobody
  // waits for it.
}

// ---- Compaction -------------------------------------------------------------------------------

void QueueLog::MaybeCompact() {
  if (compactor_->busy() || relocations_unapplied_ > 0) return;
  if (compact_todo_.empty()) {
    // A new job: is the oldest segment anything needs worth emptying?
    const uint64_t oldest = index_.OldestNeededSegment(active_seq_);
    if (oldest >= active_seq_ || counters_.groups < compact_after_groups_) return;
    if (oldest == compact_failed_segment_ && active_seq_ == compact_failed_active_) return;
    // A message streaming in cannot be relocated; its end (Submit() or Abort()) comes soon.
    if (index_.StreamPins(oldest)) return;
    auto size = segment_bytes_.find(oldest);
    const uint64_t segment_bytes =
        size == segment_bytes_.end() ? options_.segment_size : size->second;
    if (!ShouldCompact(index_.PinnedBytes(oldest), segment_bytes, behind_active_bytes_,
                       index_.live_bytes())) {
      return;
    }
    compact_segment_ = oldest;
    compact_after_groups_ = counters_.groups + 1;
    for (const q::QueuedMessage* m : index_.MessagesFirstIn(oldest)) compact_todo_.push_back(m->id);
  }
  std::vector<const q::QueuedMessage*> batch;
  uint64_t bytes = 0;
  while (!compact_todo_.empty() && batch.size() < kCompactBatchMessages &&
         bytes < kCompactBatchBytes) {
    const std::string id = std::move(compact_todo_.front());
    compact_todo_.pop_front();
    const q::QueuedMessage* m = index_.Find(id);
    // Gone or moved meanwhile; or an update is pending (a later job takes it once applied).
    if (m == nullptr || m->first_segment != compact_segment_) continue;
    if (unapplied_updates_.contains(id)) continue;
    batch.push_back(m);
    bytes += StoredBytes(*m);
  }
  if (batch.empty()) return;
  compactor_->Start(batch, [this](std::vector<RelocationRead> reads, bool failed) {
    OnRelocationsRead(std::move(reads), failed);
  });
}

void QueueLog::OnRelocationsRead(std::vector<RelocationRead> reads, bool failed) {
  if (failed) {
    // Logged by the compactor. The messages read whole still move; the segment is not tried
    // again before the next rotation.
    compact_failed_segment_ = compact_segment_;
    compact_failed_active_ = active_seq_;
    compact_todo_.clear();
  }
  for (RelocationRead& read : reads) {
    const q::QueuedMessage* m = index_.Find(read.id);
    // What was read must still be the index's copy, with nothing pending that the relocated
    // copy would have to include: otherwise a later job reads it again.
    if (m == nullptr || !(m->record == read.record) || unapplied_updates_.contains(read.id)) {
      continue;
    }
    auto entry = std::make_unique<Entry>();
    entry->id = read.id;
    entry->relocation = true;
    entry->relocated_record = std::move(read.record_bytes);
    entry->relocated_body = std::move(read.body);
    // Checked by the compactor; the views point into the entry's own copy.
    absl::StatusOr<q::MessageView> view =
        q::ParseMessage(std::string_view(entry->relocated_record).substr(q::kRecordHeaderSize));
    RINGMX_CHECK(view.ok());
    q::MessageHeader& header = entry->header;
    header = std::move(view->header);
    header.flags |= q::kMessageFlagRelocated;
    header.held = m->held;
    header.states.clear();
    for (const q::QueuedRecipient& recipient : m->recipients) {
      header.states.push_back(recipient.status);
    }
    const std::string_view body = entry->relocated_body;
    EncodeMessage(header, std::span<const std::string_view>(&body, 1), entry->records, q::kUnkeyed);
    queue_.push_back(std::move(entry));
    ++unanswered_;
    ++relocations_unapplied_;
  }
}

}  // namespace ringmx::net
