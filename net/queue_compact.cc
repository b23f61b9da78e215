// Compaction's rule and reads (net/queue_compact.h).

#include "net/queue_compact.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "core/check.h"
#include "core/log.h"
#include "core/queue/log_format.h"
#include "core/queue/store_files.h"
#include "core/status.h"

namespace ringmx::net {

namespace q = core::queue;

bool ShouldCompact(uint64_t pinned_bytes, uint64_t segment_bytes, uint64_t behind_active_bytes,
                   uint64_t live_bytes) {
  if (pinned_bytes < segment_bytes / 4) return true;
  return behind_active_bytes / 2 > live_bytes;
}

// One READ in flight (or done): `buffer` receives [offset, offset + buffer.size()) of a segment.
struct QueueCompactor::ReadOp final : public CompletionHandler {
  ReadOp(QueueCompactor* owner_in, uint64_t seq_in, uint64_t offset_in, uint64_t size)
      : owner(owner_in), seq(seq_in), offset(offset_in), buffer(size, '\0') {}
  void OnCompletion(const io_uring_cqe& cqe) override { owner->OnRead(*this, cqe.res); }

  QueueCompactor* const owner;
  const uint64_t seq;
  const uint64_t offset;
  std::string buffer;
  size_t got = 0;  // bytes read so far (a short read is continued)
  int err = 0;     // a positive errno, or EIO for an early end of file
};

QueueCompactor::QueueCompactor(Reactor& reactor, int dir_fd, std::string directory,
                               std::string name)
    : reactor_(reactor),
      dir_fd_(dir_fd),
      directory_(std::move(directory)),
      name_(std::move(name)) {}

QueueCompactor::~QueueCompactor() {
  for (const auto& [seq, fd] : fds_) {
    if (fd >= 0) close(fd);
  }
}

void QueueCompactor::Start(const std::vector<const q::QueuedMessage*>& messages, Done done) {
  RINGMX_CHECK(!busy_);
  busy_ = true;
  failed_ = false;
  done_ = std::move(done);
  planned_.clear();
  ops_.clear();
  header_ops_.clear();
  for (const q::QueuedMessage* m : messages) {
    Planned p;
    p.id = m->id;
    p.record = m->record;
    bool ok = SegmentFd(m->record.segment) >= 0;
    for (const q::Location& f : m->fragments) ok = ok && SegmentFd(f.segment) >= 0;
    if (!ok) continue;  // logged
    p.record_op = AddRead(m->record.segment, m->record.offset, m->record.size);
    for (const q::Location& f : m->fragments) {
      p.fragment_ops.push_back(AddRead(f.segment, f.offset, f.size));
    }
    planned_.push_back(std::move(p));
  }
  reads_left_ = ops_.size();
  if (reads_left_ == 0) {
    // Nothing could be opened: answer from a completion all the same.
    auto op = std::make_unique<ReadOp>(this, 0, 0, 0);
    ops_.push_back(std::move(op));
    reads_left_ = 1;
    ++ops_in_flight_;
    io_uring_prep_nop(reactor_.Prepare(ops_.back().get()));
    return;
  }
  for (auto& op : ops_) Issue(*op);
}

int QueueCompactor::SegmentFd(uint64_t seq) {
  if (auto it = fds_.find(seq); it != fds_.end()) return it->second;
  const std::string name = q::SegmentFileName(seq);
  const int fd = openat(dir_fd_, name.c_str(), O_RDONLY | O_CLOEXEC);
  fds_[seq] = fd;
  if (fd < 0) {
    Fail(core::ErrnoStatus(errno, absl::StrCat("open ", directory_, "/", name, " to compact"))
             .ToString());
    return -1;
  }
  header_ops_[seq] = AddRead(seq, 0, q::kSegmentHeaderSize);
  return fd;
}

size_t QueueCompactor::AddRead(uint64_t seq, uint64_t offset, uint64_t size) {
  ops_.push_back(std::make_unique<ReadOp>(this, seq, offset, size));
  return ops_.size() - 1;
}

void QueueCompactor::Issue(ReadOp& op) {
  io_uring_sqe* sqe = reactor_.Prepare(&op);
  ++ops_in_flight_;
  io_uring_prep_read(sqe, fds_.at(op.seq), op.buffer.data() + op.got,
                     static_cast<unsigned>(op.buffer.size() - op.got), op.offset + op.got);
}

void QueueCompactor::OnRead(ReadOp& op, int res) {
  --ops_in_flight_;
  if (op.buffer.empty() && op.seq == 0) {
    // The NOP of a batch with nothing to read.
  } else if (res < 0) {
    op.err = -res;
  } else if (res == 0) {
    op.err = EIO;  // the file ends before the record does
  } else {
    op.got += static_cast<size_t>(res);
    if (op.got < op.buffer.size()) {
      Issue(op);  // short read: the rest
      return;
    }
  }
  if (op.err != 0) {
    Fail(
        core::ErrnoStatus(op.err, absl::StrCat("read ", directory_, "/", q::SegmentFileName(op.seq),
                                               " offset ", op.offset, " to compact"))
            .ToString());
  }
  RINGMX_DCHECK(reads_left_ > 0);
  if (--reads_left_ == 0) Finish();
}

void QueueCompactor::Fail(const std::string& what) {
  failed_ = true;
  core::LogError(absl::StrCat(name_, " queue compaction: ", what));
}

bool QueueCompactor::Assemble(const Planned& p, RelocationRead& out) {
  const auto key_of = [&](uint64_t seq) -> std::optional<q::SegmentKey> {
    const ReadOp& header = *ops_[header_ops_.at(seq)];
    if (header.err != 0) return std::nullopt;
    return q::ParseSegmentHeader(header.buffer);
  };
  const auto where = [&](const ReadOp& op) {
    return absl::StrCat(directory_, "/", q::SegmentFileName(op.seq), " offset ", op.offset);
  };
  ReadOp& record = *ops_[p.record_op];
  if (record.err != 0) return false;  // logged
  std::optional<q::SegmentKey> key = key_of(record.seq);
  q::Frame frame;
  if (!key.has_value() || q::DecodeFrame(record.buffer, *key, frame) != q::FrameResult::kOk ||
      frame.size != record.buffer.size() || frame.type != q::RecordType::kMessage) {
    Fail(absl::StrCat(where(record), ": not the message record of ", p.id));
    return false;
  }
  absl::StatusOr<q::MessageView> view = q::ParseMessage(frame.payload);
  if (!view.ok() || view->header.id != p.id || view->header.fragments != p.fragment_ops.size()) {
    Fail(absl::StrCat(where(record), ": message record of ", p.id, " does not match"));
    return false;
  }
  out.body.clear();
  for (size_t i = 0; i < p.fragment_ops.size(); ++i) {
    const ReadOp& op = *ops_[p.fragment_ops[i]];
    if (op.err != 0) return false;
    key = key_of(op.seq);
    absl::StatusOr<q::FragmentView> fragment = absl::DataLossError("bad frame");
    if (key.has_value() && q::DecodeFrame(op.buffer, *key, frame) == q::FrameResult::kOk &&
        frame.size == op.buffer.size() && frame.type == q::RecordType::kFragment) {
      fragment = q::ParseFragment(frame.payload);
    }
    if (!fragment.ok() || fragment->id != p.id || fragment->index != i) {
      Fail(absl::StrCat(where(op), ": not fragment ", i, " of ", p.id));
      return false;
    }
    out.body.append(fragment->bytes);
  }
  out.body.append(view->tail);
  if (out.body.size() != view->header.body_size) {
    Fail(absl::StrCat(where(record), ": the body of ", p.id, " has ", out.body.size(),
                      " bytes, its record says ", view->header.body_size));
    return false;
  }
  out.id = p.id;
  out.record = p.record;
  out.record_bytes = std::move(record.buffer);
  return true;
}

void QueueCompactor::Finish() {
  std::vector<RelocationRead> reads;
  for (const Planned& p : planned_) {
    RelocationRead read;
    if (Assemble(p, read)) reads.push_back(std::move(read));
  }
  for (const auto& [seq, fd] : fds_) {
    if (fd >= 0) close(fd);
  }
  fds_.clear();
  planned_.clear();
  header_ops_.clear();
  // The ops go only after the caller's callback: the one completing now is still on the stack.
  std::vector<std::unique_ptr<ReadOp>> ops = std::move(ops_);
  ops_.clear();
  Done done = std::move(done_);
  done_ = nullptr;
  busy_ = false;
  done(std::move(reads), failed_);
}

}  // namespace ringmx::net
