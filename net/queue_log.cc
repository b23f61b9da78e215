// The per-shard queue log; the pipeline is described in net/queue_log.h.

#include "net/queue_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "core/check.h"
#include "core/log.h"
#include "core/queue/store_files.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"

namespace ringmx::net {

namespace q = core::queue;

namespace {

constexpr mode_t kDirMode = 0750;
constexpr mode_t kFileMode = 0640;
// One WRITEV takes at most IOV_MAX iovecs; a group is split into several, linked.
constexpr size_t kIovMax = IOV_MAX;
// Upper bound on a group's pieces (two per message record): the chain (pieces / IOV_MAX WRITEVs
// plus two syncs) must fit into the submission queue at once. The rest waits for the next group.
constexpr size_t kMaxGroupPieces = 32 * kIovMax;
// Bodies above this are written as kFragment records of this size plus the kMessage with the
// last part: a record's payload may not exceed kMaxRecordPayload. Streamed fragments are at most
// as large.
constexpr size_t kFragmentBytes = kMaxFragmentBytes;
static_assert(kFragmentBytes + 1024 < q::kMaxRecordPayload);

// A write or sync failure as waiters see it: a full disk is kResourceExhausted (the session
// answers 452), anything else is kInternal (451).
absl::Status StoreError(int err, std::string_view operation) {
  absl::Status status = core::ErrnoStatus(err, operation);
  if (err == ENOSPC || err == EDQUOT) return status;
  return absl::InternalError(status.message());
}

// Owns one file descriptor (blocking start-up code only).
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

absl::Status WriteAllAt(int fd, std::string_view data, uint64_t offset, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return StoreError(errno, absl::StrCat("write ", what));
    }
    if (n == 0) return StoreError(EIO, absl::StrCat("write ", what, " (no progress)"));
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FsyncDirectory(int fd, const std::string& path) {
  if (fsync(fd) != 0) return StoreError(errno, absl::StrCat("fsync directory ", path));
  return absl::OkStatus();
}

absl::Status FsyncDirectoryPath(const std::string& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return core::ErrnoStatus(errno, absl::StrCat("open directory ", path));
  return FsyncDirectory(fd.get(), path);
}

std::string ParentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates directory `path` if missing (and makes its name durable); checks it is a directory.
absl::Status EnsureDirectory(const std::string& path) {
  if (mkdir(path.c_str(), kDirMode) == 0) return FsyncDirectoryPath(ParentOf(path));
  if (errno != EEXIST) return core::ErrnoStatus(errno, absl::StrCat("create directory ", path));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return core::ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

// A new segment's key, from the kernel's random pool (getrandom(2), which blocks only until the
// pool is first initialised, early in boot). Redrawn until usable (q::IsUsableSegmentKey()).
q::SegmentKey NewSegmentKey() {
  while (true) {
    uint32_t words[2];
    const ssize_t n = getrandom(words, sizeof(words), 0);
    if (n < 0 && errno == EINTR) continue;
    // Requests of up to 256 bytes are never short, and the only other failures are a bad
    // buffer or a kernel older than io_uring (ENOSYS): neither can happen here.
    RINGMX_CHECK(n == static_cast<ssize_t>(sizeof(words)));
    const q::SegmentKey key{words[0], words[1]};
    if (q::IsUsableSegmentKey(key)) return key;
  }
}

// Creates segment `seq` in the directory open as `dir_fd` and makes it durable: header (magic and
// `key`) written, fdatasync, directory fsync. Returns its descriptor (open for writing).
absl::StatusOr<int> CreateSegmentSync(int dir_fd, const std::string& dir, uint64_t seq,
                                      const q::SegmentKey& key) {
  const std::string name = q::SegmentFileName(seq);
  const std::string path = absl::StrCat(dir, "/", name);
  ScopedFd fd(openat(dir_fd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, kFileMode));
  if (fd.get() < 0) return StoreError(errno, absl::StrCat("create segment ", path));
  RINGMX_RETURN_IF_ERROR(WriteAllAt(fd.get(), q::EncodeSegmentHeader(key), 0, path));
  if (fdatasync(fd.get()) != 0) return StoreError(errno, absl::StrCat("fdatasync ", path));
  RINGMX_RETURN_IF_ERROR(FsyncDirectory(dir_fd, dir));
  return fd.release();
}

// One encoded record: the prefix (record header and fields) and the tail, which points into bytes
// the entry owns (a message's body, a fragment's bytes) and is written from there. `type` and
// `fragment_index` tell the index what the record was (see QueueLog::ApplyToIndex()).
struct EncodedRecord {
  std::string prefix;
  std::string_view tail;
  q::RecordType type{};
  uint32_t fragment_index = 0;  // kFragment
};
using EncodedRecords = std::vector<EncodedRecord>;

// Encodes `header` with `body` for a segment of `key`: kFragment records first when the body is
// larger than one record may hold, then the kMessage with the last part as its tail. `streamed`
// fragments holding `streamed_bytes` were written before (SubmitFragment()); the fragments made
// here are numbered after them. `header.fragments` and `body_size` are set here.
void EncodeMessage(q::MessageHeader& header, std::string_view body, EncodedRecords& out,
                   const q::SegmentKey& key, uint32_t streamed = 0, uint64_t streamed_bytes = 0) {
  header.body_size = streamed_bytes + body.size();
  header.fragments = streamed;
  // What the kMessage record holds besides its tail (an upper bound). An envelope near
  // kMaxRecordPayload itself cannot be stored (EncodeMessagePrefix checks); the limits on
  // recipients keep it far below.
  size_t fields = 256 + header.id.size() + header.sender.size() + header.envelope_json.size() +
                  header.trace_headers.size() + 64 * header.states.size();
  for (std::string_view recipient : header.recipients) fields += 4 + recipient.size();
  for (const q::RecipientStatus& state : header.states) fields += state.reply.size();
  const size_t max_tail = fields < q::kMaxRecordPayload ? q::kMaxRecordPayload - fields : 0;
  while (body.size() > std::min(kFragmentBytes, max_tail)) {
    const std::string_view part = body.substr(0, kFragmentBytes);
    out.push_back({q::EncodeFragmentPrefix(header.id, header.fragments, part, key), part,
                   q::RecordType::kFragment, header.fragments});
    ++header.fragments;
    body.remove_prefix(kFragmentBytes);
  }
  out.push_back({q::EncodeMessagePrefix(header, body, key), body, q::RecordType::kMessage});
}

// A whole small record (no tail) of `type`.
EncodedRecords SmallRecord(std::string prefix, q::RecordType type) {
  EncodedRecords out;
  out.push_back({std::move(prefix), {}, type});
  return out;
}

// Names in `dir` other than "." and "..".
absl::StatusOr<std::vector<std::string>> ListDirectoryNames(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return core::ErrnoStatus(errno, absl::StrCat("list directory ", dir));
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    const dirent* entry = readdir(d);
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int err = errno;
  closedir(d);
  if (err != 0) return core::ErrnoStatus(err, absl::StrCat("list directory ", dir));
  return names;
}

// The start-up log line's facts: "messages=12 segments=3 bytes=40960 problems=0", then the
// problems themselves (at most a few; the count says how many there were).
std::string DescribeReplay(const q::ReplayReport& report, const q::Index& index) {
  std::string text = absl::StrCat(
      "messages=", index.size(), " segments=", report.segments, " bytes=", report.bytes,
      " records=", report.index_stats.records, " orphans=", report.index_stats.orphans,
      " incomplete=", report.index_stats.incomplete, " malformed=", report.index_stats.malformed,
      " problems=", report.problems.size());
  constexpr size_t kShown = 5;
  for (size_t i = 0; i < report.problems.size() && i < kShown; ++i) {
    absl::StrAppend(&text, i == 0 ? ": " : "; ", report.problems[i]);
  }
  if (report.problems.size() > kShown) absl::StrAppend(&text, "; ...");
  return text;
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
// std::string is moved into `record.body` (a move of its heap buffer), the records' tails are
// views into it, the group's iovecs point at those views, and once the group is durable the index
// is told from `header` and the records' Locations (ApplyToIndex()), never from a frame rebuilt
// around the body. The only other reader of the body is the CRC (EncodeMessage()).
struct QueueLog::Entry {
  std::string id;            // the message the records are about
  core::SpoolRecord record;  // messages: the tails point into record.body
  q::MessageHeader header;   // messages: as encoded (views into `record`), for the index
  uint32_t streamed = 0;     // messages: fragments written before by SubmitFragment()
  std::string fragment;      // streamed fragments: the session's bytes (the tail points here)
  q::MessageOp op{};         // operations: what the kMessageOp record says
  EncodedRecords records;
  // The key `records` are framed with: kUnkeyed until their group starts, which re-keys them for
  // the active segment (q::RekeyRecord()).
  q::SegmentKey key = q::kUnkeyed;
  std::vector<q::Location> where;  // per record, assigned when the group starts
  SpoolWaiter* waiter = nullptr;   // messages
  // Streamed fragments; null once Abort() was called for the id (nobody is told then).
  FragmentWaiter* fragment_waiter = nullptr;
  std::function<void(absl::Status)> done;  // operations
  absl::Status error;  // refused before any write: no records, answered with this
};

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
      dir_sync_op_(std::make_unique<Op>(this, QueueOpKind::kDirSync)) {}

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
    EncodeMessage(header, r.body, entry->records, q::kUnkeyed, r.fragments, stream.stored_bytes);
  }
  const bool abort_stream = !entry->error.ok() && had_stream && stream.submitted > 0;
  queue_.push_back(std::move(entry));
  ++unanswered_;
  if (abort_stream) QueueAbort(r.id);
}

void QueueLog::SubmitFragment(std::string_view id, uint32_t index, std::string bytes,
                              FragmentWaiter* waiter) {
  RINGMX_DCHECK(waiter != nullptr);
  auto entry = std::make_unique<Entry>();
  entry->id = std::string(id);
  entry->fragment_waiter = waiter;
  // Moved, not copied: the record's tail points into the entry's string until the write is done.
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
    entry->records.push_back({q::EncodeFragmentPrefix(id, index, entry->fragment, q::kUnkeyed),
                              entry->fragment, q::RecordType::kFragment, index});
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
  queue_.push_back(std::move(entry));
  ++unanswered_;
}

size_t QueueLog::FlushDeferred(int64_t now_us) { return index_.MakeDeferredDue(now_us); }

void QueueLog::Flush() {
  if (group_active_ || rotation_op_->in_flight || queue_.empty()) return;
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
  const uint64_t oldest = index_.OldestNeededSegment(active_seq_);
  // In ascending order, so that a state record is never removed before the message it is about.
  while (!segments_.empty() && *segments_.begin() < oldest && *segments_.begin() != active_seq_) {
    const uint64_t seq = *segments_.begin();
    segments_.erase(segments_.begin());
    auto op = std::make_unique<Op>(this, QueueOpKind::kUnlink);
    op->seq = seq;
    op->name = q::SegmentFileName(seq);
    io_uring_sqe* sqe = PrepareOp(*op);
    io_uring_prep_unlinkat(sqe, dir_fd_, op->name.c_str(), 0);
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
    if (!group_.empty() && pieces_.size() + 2 * n > kMaxGroupPieces) break;
    entry.where.resize(n);
    for (size_t i = 0; i < n; ++i) {
      EncodedRecord& record = entry.records[i];
      // The segment is known only now: 8 bytes of each header change, the CRC is not recomputed.
      q::RekeyRecord(record.prefix, entry.key, active_key_);
      const uint64_t size = record.prefix.size() + record.tail.size();
      entry.where[i] = q::Location{active_seq_, offset, size};
      pieces_.push_back(record.prefix);
      if (!record.tail.empty()) pieces_.push_back(record.tail);
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
        index_.ApplyMessage(entry.header, where);
        break;
      case q::RecordType::kFragment:
        index_.ApplyFragment(entry.id, record.fragment_index, where);
        break;
      case q::RecordType::kAbort:
        index_.ApplyAbort(entry.id);
        break;
      case q::RecordType::kMessageOp:
        index_.ApplyMessageOp(entry.id, entry.op);
        break;
      case q::RecordType::kRecipientState:
        RINGMX_CHECK(false);  // not written by this log yet
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

// ---- Adoption of retired shard directories ----------------------------------------------------

namespace {

// Parses a shard directory name ("0", "17"); false for anything else.
bool ParseShardName(std::string_view name, uint64_t& shard) {
  if (name.empty() || name.size() > 9) return false;
  shard = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
    shard = shard * 10 + static_cast<uint64_t>(c - '0');
  }
  return std::to_string(shard) == name;  // no leading zeros: one name per shard
}

// Removes `dir` (a retired shard directory: segment files only) and its contents.
absl::Status RemoveRetiredDirectory(const std::string& dir) {
  RINGMX_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectoryNames(dir));
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return core::ErrnoStatus(errno, absl::StrCat("remove ", path));
    }
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return core::ErrnoStatus(errno, absl::StrCat("remove directory ", dir));
  }
  return absl::OkStatus();
}

// Copies every message of `from` (replayed) into a new segment of `to` as relocated records.
absl::Status Adopt(const std::string& from, const std::string& to, uint64_t& copied) {
  q::Index index;
  RINGMX_ASSIGN_OR_RETURN(q::ReplayReport report, q::ReplayDirectory(from, index));
  core::LogInfo(
      absl::StrCat("queue ", from, " replayed for adoption: ", DescribeReplay(report, index)));
  copied = 0;
  if (index.size() == 0) return absl::OkStatus();  // nothing to copy: no new segment
  RINGMX_RETURN_IF_ERROR(EnsureDirectory(to));
  ScopedFd to_fd(open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (to_fd.get() < 0) return core::ErrnoStatus(errno, absl::StrCat("open directory ", to));
  RINGMX_ASSIGN_OR_RETURN(std::vector<uint64_t> segments, q::ListSegments(to));
  const uint64_t seq =
      segments.empty() ? 1 : *std::max_element(segments.begin(), segments.end()) + 1;
  const std::string segment = absl::StrCat(to, "/", q::SegmentFileName(seq));
  const q::SegmentKey key = NewSegmentKey();
  RINGMX_ASSIGN_OR_RETURN(int fd_value, CreateSegmentSync(to_fd.get(), to, seq, key));
  ScopedFd fd(fd_value);
  uint64_t offset = q::kSegmentHeaderSize;
  std::string record;
  std::string body;
  for (const q::QueuedMessage* message : index.List()) {
    q::MessageView view;
    absl::Status read = q::ReadStoredMessage(from, *message, record, view, &body);
    if (!read.ok()) {
      return absl::Status(read.code(), absl::StrCat("message ", message->id, ": ", read.message()));
    }
    q::MessageHeader header = view.header;
    header.flags |= q::kMessageFlagRelocated;
    header.held = message->held;
    header.states.clear();
    for (const q::QueuedRecipient& recipient : message->recipients) {
      header.states.push_back(recipient.status);
    }
    EncodedRecords records;
    EncodeMessage(header, body, records, key);
    for (const EncodedRecord& r : records) {
      RINGMX_RETURN_IF_ERROR(WriteAllAt(fd.get(), r.prefix, offset, segment));
      offset += r.prefix.size();
      RINGMX_RETURN_IF_ERROR(WriteAllAt(fd.get(), r.tail, offset, segment));
      offset += r.tail.size();
    }
    ++copied;
  }
  if (fdatasync(fd.get()) != 0) return StoreError(errno, absl::StrCat("fdatasync ", segment));
  return absl::OkStatus();
}

}  // namespace

absl::Status AdoptRetiredShardQueues(const std::string& spool_path, int workers) {
  RINGMX_CHECK(workers > 0);
  const std::string queue = absl::StrCat(spool_path, "/queue");
  RINGMX_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectoryNames(queue));
  bool changed = false;
  for (const std::string& name : names) {
    const std::string dir = absl::StrCat(queue, "/", name);
    // A directory whose adoption finished (renamed) but whose removal did not.
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".adopted") == 0) {
      RINGMX_RETURN_IF_ERROR(RemoveRetiredDirectory(dir));
      changed = true;
      continue;
    }
    uint64_t shard = 0;
    if (!ParseShardName(name, shard)) continue;
    if (shard < static_cast<uint64_t>(workers)) continue;
    const uint64_t target = shard % static_cast<uint64_t>(workers);
    const std::string to = absl::StrCat(queue, "/", target);
    uint64_t copied = 0;
    absl::Status adopted = Adopt(dir, to, copied);
    if (!adopted.ok()) {
      return absl::Status(adopted.code(), absl::StrCat("adopt queue ", dir, " (workers = ", workers,
                                                       ") into ", to, ": ", adopted.message()));
    }
    // The copies are durable; from the rename on, the old directory no longer counts.
    const std::string retired = absl::StrCat(dir, ".adopted");
    if (rename(dir.c_str(), retired.c_str()) != 0) {
      return core::ErrnoStatus(errno, absl::StrCat("rename ", dir, " to ", retired));
    }
    RINGMX_RETURN_IF_ERROR(FsyncDirectoryPath(queue));
    core::LogInfo(absl::StrCat("queue ", dir, ": ", copied, " messages adopted by shard ", target,
                               " (workers = ", workers, ")"));
    RINGMX_RETURN_IF_ERROR(RemoveRetiredDirectory(retired));
    changed = true;
  }
  if (changed) RINGMX_RETURN_IF_ERROR(FsyncDirectoryPath(queue));
  return absl::OkStatus();
}

}  // namespace ringmx::net
