// The embedded directory store with group commit; the pipeline is described in
// net/internal/local_spool.h.

#include "net/internal/local_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "core/check.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace ringmx::net {
namespace internal {
namespace {

enum class OpKind : uint8_t {
  kOpen,     // OPENAT tmp/<name>
  kWrite,    // WRITEV, linked to kSync
  kSync,     // FSYNC(DATASYNC), linked to kClose
  kClose,    // CLOSE, end of the write chain
  kRename,   // RENAMEAT tmp/<name> -> new/<name>
  kUnlink,   // UNLINKAT of a failed record's file (tmp/ or new/)
  kDirOpen,  // OPENAT new/ for the group
  kDirSync,  // FSYNC of the group's new/
};

constexpr int kFileFlags = O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC;
constexpr mode_t kFileMode = 0640;
// 255 (NAME_MAX) minus ".json".
constexpr size_t kMaxIdBytes = 250;

// Queue ids come from core::QueueIdGenerator, but the id names files: refuse anything that could
// leave the spool directory or is not a plain file name.
bool IsSafeId(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdBytes || id == "." || id == "..") return false;
  return std::none_of(id.begin(), id.end(), [](char c) { return c == '/' || c == '\0'; });
}

}  // namespace

// One operation of the pipeline; its address is the SQE's user_data. Per-file ops are in flight at
// most once at a time (`in_flight`), which is what lets one object serve each step.
struct LocalSpool::Op final : public CompletionHandler {
  Op(LocalSpool* spool_in, Entry* entry_in, File* file_in, OpKind kind_in)
      : spool(spool_in), entry(entry_in), file(file_in), kind(kind_in) {}
  void OnCompletion(const io_uring_cqe& cqe) override { spool->OnOp(*this, cqe.res); }

  LocalSpool* const spool;
  Entry* const entry;  // null for group-level ops
  File* const file;    // null for group-level ops
  const OpKind kind;
  bool in_flight = false;
};

// One of a record's two files. The paths are kept here because the kernel reads them when the SQE
// is submitted, which may be after the call that prepared it.
struct LocalSpool::File {
  File(LocalSpool* spool, Entry* entry, const std::string& id, std::string_view suffix)
      : tmp_path(absl::StrCat("tmp/", id, core::Av(suffix))),
        name(absl::StrCat(id, core::Av(suffix))),
        open_op(spool, entry, this, OpKind::kOpen),
        write_op(spool, entry, this, OpKind::kWrite),
        sync_op(spool, entry, this, OpKind::kSync),
        close_op(spool, entry, this, OpKind::kClose),
        rename_op(spool, entry, this, OpKind::kRename),
        unlink_op(spool, entry, this, OpKind::kUnlink) {}

  const std::string tmp_path;  // relative to the spool directory
  const std::string name;      // relative to the group's new/
  // The bytes of the file: up to two parts, written in order. They live in the entry's record.
  std::array<std::string_view, 2> parts;
  size_t size = 0;
  size_t written = 0;  // bytes the kernel has confirmed, from offset 0
  std::array<iovec, 2> iov{};

  int fd = -1;           // open from the kOpen completion until a CLOSE ran
  bool created = false;  // tmp/<name> exists and is ours to remove
  bool renamed = false;  // new/<name> exists and is ours to remove
  bool durable = false;  // fully written, fdatasynced and closed

  // Results of the write chain in flight; evaluated once all three have completed.
  int chain_left = 0;
  int write_res = 0;
  int sync_res = 0;
  int close_res = 0;

  Op open_op, write_op, sync_op, close_op, rename_op, unlink_op;
};

struct LocalSpool::Entry {
  enum class Phase { kQueued, kWriting, kDurable, kRenaming, kRenamed, kCleanup, kDone };

  Entry(LocalSpool* spool, core::SpoolRecord record_in, SpoolWaiter* waiter_in)
      : record(std::move(record_in)),
        waiter(waiter_in),
        eml(spool, this, record.id, ".eml"),
        json(spool, this, record.id, ".json") {
    eml.parts = {record.trace_headers, record.body};
    eml.size = record.trace_headers.size() + record.body.size();
    json.parts = {record.envelope_json, std::string_view()};
    json.size = record.envelope_json.size();
  }

  core::SpoolRecord record;
  SpoolWaiter* const waiter;
  absl::Status status;  // the first failure; OK until then
  Phase phase = Phase::kQueued;
  size_t ops_in_flight = 0;  // this entry's ops; each phase ends when it drops to 0
  File eml;
  File json;
};

absl::StatusOr<std::unique_ptr<LocalSpool>> LocalSpool::Create(const std::string& path,
                                                               Reactor& reactor,
                                                               LocalSpoolOptions options) {
  if (options.max_group_records == 0) {
    return absl::InvalidArgumentError("spool: max_group_records must be at least 1");
  }
  // The longest linked chain is three SQEs; they must fit into the submission queue together.
  if (reactor.ring()->sq.ring_entries < 4) {
    return absl::InvalidArgumentError("spool: the ring needs at least 4 submission entries");
  }
  const int root_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return core::ErrnoStatus(errno, absl::StrCat("open spool directory ", path));
  for (const char* sub : {"tmp", "new"}) {
    struct stat st;
    if (fstatat(root_fd, sub, &st, 0) != 0) {
      const int err = errno;
      close(root_fd);
      return core::ErrnoStatus(err, absl::StrCat("stat spool directory ", path, "/", sub));
    }
    if (!S_ISDIR(st.st_mode)) {
      close(root_fd);
      return absl::FailedPreconditionError(
          absl::StrCat("spool directory ", path, "/", sub, " is not a directory"));
    }
  }
  return std::unique_ptr<LocalSpool>(new LocalSpool(path, root_fd, reactor, options));
}

LocalSpool::LocalSpool(std::string path, int root_fd, Reactor& reactor, LocalSpoolOptions options)
    : path_(std::move(path)),
      root_fd_(root_fd),
      reactor_(reactor),
      options_(options),
      dir_open_op_(std::make_unique<Op>(this, nullptr, nullptr, OpKind::kDirOpen)),
      dir_sync_op_(std::make_unique<Op>(this, nullptr, nullptr, OpKind::kDirSync)) {}

LocalSpool::~LocalSpool() {
  if (ops_in_flight_ > 0 || unanswered_ > 0) {
    // The shard drains the spool before it ends; if it could not (the ring failed), the reactor
    // is torn down next without dispatching anything, so the dangling user_data is never read.
    core::LogError(absl::StrCat("spool ", path_, ": destroyed with ", unanswered_,
                                " unanswered messages and ", ops_in_flight_,
                                " operations in flight"));
  }
  for (auto& entry : group_) {
    for (File* file : {&entry->eml, &entry->json}) {
      if (file->fd >= 0) close(file->fd);
    }
  }
  if (dir_fd_ >= 0) close(dir_fd_);
  close(root_fd_);
}

void LocalSpool::Submit(core::SpoolRecord record, SpoolWaiter* waiter) {
  RINGMX_DCHECK(waiter != nullptr);
  queue_.push_back(std::make_unique<Entry>(this, std::move(record), waiter));
  ++unanswered_;
}

void LocalSpool::Flush() {
  if (!group_active_ && !queue_.empty()) StartGroup();
}

std::string LocalSpool::FullPath(std::string_view relative) const {
  return absl::StrCat(path_, "/", core::Av(relative));
}

void LocalSpool::ReserveSqes(unsigned n) {
  io_uring* ring = reactor_.ring();
  while (io_uring_sq_space_left(ring) < n) {
    // Like Reactor::Prepare() on a full queue: hand what is prepared to the kernel and retry. An
    // error here is transient (the kernel could not take the SQEs yet) and the loop retries.
    reactor_.Submit().IgnoreError();
  }
}

io_uring_sqe* LocalSpool::PrepareOp(Op& op) {
  RINGMX_DCHECK(!op.in_flight);
  io_uring_sqe* sqe = reactor_.Prepare(&op);
  op.in_flight = true;
  ++ops_in_flight_;
  if (op.entry != nullptr) ++op.entry->ops_in_flight;
  return sqe;
}

void LocalSpool::StartGroup() {
  group_active_ = true;
  phase_ = GroupPhase::kWriting;
  dir_status_ = absl::OkStatus();
  dir_sync_issued_ = false;
  dir_sync_res_ = 0;
  entries_writing_ = 0;
  entries_renaming_ = 0;
  entries_not_done_ = 0;

  // new/ is opened per group, by path: the renames go into exactly the directory that is then
  // fsynced, and a new/ that was replaced (or broken and repaired) is picked up by the next group.
  io_uring_sqe* sqe = PrepareOp(*dir_open_op_);
  io_uring_prep_openat(sqe, root_fd_, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

  const size_t n = std::min(queue_.size(), options_.max_group_records);
  group_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    group_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    Entry& entry = *group_.back();
    if (!IsSafeId(entry.record.id)) {
      entry.status = absl::InvalidArgumentError(
          absl::StrCat("spool: unusable queue id \"", entry.record.id, "\""));
      entry.phase = Entry::Phase::kDone;
      continue;
    }
    ++entries_not_done_;
    ++entries_writing_;
    entry.phase = Entry::Phase::kWriting;
    IssueOpen(entry, entry.eml);
    IssueOpen(entry, entry.json);
  }
  // Nothing can complete inside this call: the group's first completion is at least the
  // directory open, so waiters are only ever called from a completion.
}

void LocalSpool::IssueOpen(Entry& /*entry*/, File& file) {
  io_uring_sqe* sqe = PrepareOp(file.open_op);
  io_uring_prep_openat(sqe, root_fd_, file.tmp_path.c_str(), kFileFlags, kFileMode);
}

void LocalSpool::IssueWriteChain(Entry& /*entry*/, File& file) {
  // The iovecs cover what the kernel has not confirmed yet (all of it, except after a short write).
  size_t skip = file.written;
  unsigned count = 0;
  for (std::string_view part : file.parts) {
    if (skip >= part.size()) {
      skip -= part.size();
      continue;
    }
    file.iov[count].iov_base = const_cast<char*>(part.data() + skip);
    file.iov[count].iov_len = part.size() - skip;
    ++count;
    skip = 0;
  }
  if (count == 0) {  // an empty file: one empty write keeps the chain uniform
    file.iov[0].iov_base = nullptr;
    file.iov[0].iov_len = 0;
    count = 1;
  }

  // WRITEV -> FSYNC -> CLOSE, linked: a failed or short write cancels the fsync and the close
  // (the fd stays open and the chain is re-issued or the record cleaned up).
  ReserveSqes(3);
  io_uring_sqe* sqe = PrepareOp(file.write_op);
  io_uring_prep_writev(sqe, file.fd, file.iov.data(), count, file.written);
  sqe->flags |= IOSQE_IO_LINK;
  sqe = PrepareOp(file.sync_op);
  io_uring_prep_fsync(sqe, file.fd, IORING_FSYNC_DATASYNC);
  sqe->flags |= IOSQE_IO_LINK;
  sqe = PrepareOp(file.close_op);
  io_uring_prep_close(sqe, file.fd);
  file.chain_left = 3;
  file.write_res = file.sync_res = file.close_res = 0;
}

void LocalSpool::EvaluateWriteChain(Entry& entry, File& file) {
  // A CLOSE that was not cancelled released the fd, even when it reports an error.
  const bool closed = file.close_res != -ECANCELED;
  if (closed) file.fd = -1;
  if (file.write_res < 0) {
    if (entry.status.ok()) {
      entry.status = core::ErrnoStatus(-file.write_res,
                                       absl::StrCat("write spool file ", FullPath(file.tmp_path)));
    }
    return;
  }
  file.written += static_cast<size_t>(file.write_res);
  if (file.written < file.size) {
    if (!entry.status.ok()) return;  // the other file failed; the cleanup closes this one
    if (file.write_res == 0) {
      entry.status = core::ErrnoStatus(
          EIO, absl::StrCat("write spool file ", FullPath(file.tmp_path), " (no progress)"));
    } else if (closed) {
      // The kernel fails a link on a short write; if it ever does not, the file is closed short.
      entry.status = absl::InternalError(absl::StrCat("write spool file ", FullPath(file.tmp_path),
                                                      ": short write and the chain ran on"));
    } else {
      IssueWriteChain(entry, file);  // the rest, from where the kernel stopped
    }
    return;
  }
  if (file.sync_res < 0) {
    if (entry.status.ok()) {
      entry.status = core::ErrnoStatus(
          -file.sync_res, absl::StrCat("fdatasync spool file ", FullPath(file.tmp_path)));
    }
    return;
  }
  if (file.close_res < 0) {
    if (entry.status.ok()) {
      entry.status = core::ErrnoStatus(-file.close_res,
                                       absl::StrCat("close spool file ", FullPath(file.tmp_path)));
    }
    return;
  }
  file.durable = true;
}

void LocalSpool::IssueRenames(Entry& entry) {
  entry.phase = Entry::Phase::kRenaming;
  ++entries_renaming_;
  // The .eml first; the .json (the reader's commit mark) is renamed from the .eml's completion,
  // and only if it succeeded. Not a linked pair: a failed RENAMEAT does not cancel its link
  // (kernel 6.18; the fs ops in io_uring/fs.c never mark the request failed).
  IssueRename(entry.eml);
}

void LocalSpool::IssueRename(File& file) {
  io_uring_sqe* sqe = PrepareOp(file.rename_op);
  io_uring_prep_renameat(sqe, root_fd_, file.tmp_path.c_str(), dir_fd_, file.name.c_str(),
                         RENAME_NOREPLACE);
}

void LocalSpool::IssueUnlinkFromNew(File& file) {
  io_uring_sqe* sqe = PrepareOp(file.unlink_op);
  io_uring_prep_unlinkat(sqe, dir_fd_, file.name.c_str(), 0);
}

void LocalSpool::StartCleanup(Entry& entry) {
  RINGMX_DCHECK(entry.ops_in_flight == 0);
  RINGMX_DCHECK(!entry.status.ok());
  entry.phase = Entry::Phase::kCleanup;
  for (File* file : {&entry.eml, &entry.json}) {
    if (file->fd < 0) continue;
    // Nothing waits for this close and its result says nothing we could act on.
    io_uring_sqe* sqe = reactor_.Prepare(nullptr);
    io_uring_prep_close(sqe, file->fd);
    file->fd = -1;
  }
  // From new/: the .json before the .eml (the .eml from the .json's completion), so a reader never
  // sees a .json without its .eml; if the .json cannot be removed, the .eml stays as well.
  if (entry.json.renamed) {
    RINGMX_CHECK(entry.eml.renamed);
    IssueUnlinkFromNew(entry.json);
  } else if (entry.eml.renamed) {
    IssueUnlinkFromNew(entry.eml);
  }
  // From tmp/: only files this spool created (an O_EXCL failure means the file is someone else's).
  for (File* file : {&entry.eml, &entry.json}) {
    if (!file->created || file->renamed) continue;
    io_uring_sqe* sqe = PrepareOp(file->unlink_op);
    io_uring_prep_unlinkat(sqe, root_fd_, file->tmp_path.c_str(), 0);
  }
  if (entry.ops_in_flight == 0) {
    entry.phase = Entry::Phase::kDone;
    --entries_not_done_;
  }
}

// Called when the last op of an entry's current phase has completed.
void LocalSpool::Settle(Entry& entry) {
  switch (entry.phase) {
    case Entry::Phase::kWriting:
      --entries_writing_;
      if (entry.status.ok()) {
        RINGMX_DCHECK(entry.eml.durable && entry.json.durable);
        entry.phase = Entry::Phase::kDurable;
      } else {
        StartCleanup(entry);
      }
      return;
    case Entry::Phase::kRenaming:
      --entries_renaming_;
      if (entry.status.ok()) {
        RINGMX_DCHECK(entry.eml.renamed && entry.json.renamed);
        entry.phase = Entry::Phase::kRenamed;
      } else {
        StartCleanup(entry);
      }
      return;
    case Entry::Phase::kCleanup:
      entry.phase = Entry::Phase::kDone;
      --entries_not_done_;
      return;
    case Entry::Phase::kQueued:
    case Entry::Phase::kDurable:
    case Entry::Phase::kRenamed:
    case Entry::Phase::kDone:
      break;
  }
  RINGMX_CHECK(false && "LocalSpool: completion for an entry with nothing in flight");
}

void LocalSpool::OnOp(Op& op, int res) {
  RINGMX_DCHECK(op.in_flight);
  op.in_flight = false;
  --ops_in_flight_;
  if (op.kind == OpKind::kDirOpen) {
    if (res >= 0) {
      dir_fd_ = res;
    } else {
      dir_status_ = core::ErrnoStatus(-res, absl::StrCat("open spool directory ", FullPath("new")));
    }
  } else if (op.kind == OpKind::kDirSync) {
    dir_sync_res_ = res;
    if (inject_dir_sync_errno_ != 0) {
      dir_sync_res_ = -inject_dir_sync_errno_;
      inject_dir_sync_errno_ = 0;
    }
  } else {
    Entry& entry = *op.entry;
    File& file = *op.file;
    --entry.ops_in_flight;
    switch (op.kind) {
      case OpKind::kOpen:
        if (res >= 0) {
          file.fd = res;
          file.created = true;
          if (entry.status.ok()) IssueWriteChain(entry, file);
        } else if (entry.status.ok()) {
          entry.status =
              core::ErrnoStatus(-res, absl::StrCat("create spool file ", FullPath(file.tmp_path)));
        }
        break;
      case OpKind::kWrite:
      case OpKind::kSync:
      case OpKind::kClose:
        if (op.kind == OpKind::kWrite) {
          file.write_res = res;
        } else if (op.kind == OpKind::kSync) {
          file.sync_res = res;
        } else {
          file.close_res = res;
        }
        if (--file.chain_left == 0) EvaluateWriteChain(entry, file);
        break;
      case OpKind::kRename:
        if (res == 0) {
          file.renamed = true;
          file.created = false;
          if (&file == &entry.eml) IssueRename(entry.json);
        } else if (entry.status.ok()) {
          entry.status = core::ErrnoStatus(
              -res, absl::StrCat("rename spool file ", FullPath(file.tmp_path), " to ",
                                 FullPath(absl::StrCat("new/", file.name))));
        }
        break;
      case OpKind::kUnlink: {
        const bool from_new = file.renamed;
        if (res == 0) {
          file.renamed = false;
          file.created = false;
          // The .json is gone from new/: now its .eml may go.
          if (from_new && &file == &entry.json && entry.eml.renamed) {
            IssueUnlinkFromNew(entry.eml);
          }
        } else {
          core::LogError(absl::StrCat(
              "spool: could not remove ",
              from_new ? FullPath(absl::StrCat("new/", file.name)) : FullPath(file.tmp_path),
              " of failed message ", entry.record.id, ": ",
              core::ErrnoStatus(-res, "unlink").message(),
              from_new && &file == &entry.json ? " (its .eml is left in place too)" : ""));
        }
        break;
      }
      case OpKind::kDirOpen:
      case OpKind::kDirSync:
        break;
    }
    if (entry.ops_in_flight == 0) Settle(entry);
  }
  Step();
}

// Moves the group through its phases once the counters allow it. Each phase ends when nothing of
// the previous one is in flight.
void LocalSpool::Step() {
  if (!group_active_) return;
  if (phase_ == GroupPhase::kWriting) {
    if (entries_writing_ > 0 || dir_open_op_->in_flight) return;
    phase_ = GroupPhase::kRenaming;
    for (auto& entry : group_) {
      if (entry->phase != Entry::Phase::kDurable) continue;
      if (dir_fd_ < 0) {
        entry->status = dir_status_;
        StartCleanup(*entry);
      } else {
        IssueRenames(*entry);
      }
    }
  }
  if (phase_ == GroupPhase::kRenaming) {
    if (entries_renaming_ > 0) return;
    phase_ = GroupPhase::kSyncingDir;
    const bool any_renamed = std::any_of(group_.begin(), group_.end(), [](const auto& entry) {
      return entry->phase == Entry::Phase::kRenamed;
    });
    if (any_renamed) {
      // One fsync of new/ makes every rename of the group durable.
      io_uring_sqe* sqe = PrepareOp(*dir_sync_op_);
      io_uring_prep_fsync(sqe, dir_fd_, 0);
      dir_sync_issued_ = true;
      return;
    }
  }
  if (phase_ == GroupPhase::kSyncingDir) {
    if (dir_sync_op_->in_flight) return;
    phase_ = GroupPhase::kFinishing;
    if (dir_sync_issued_) {
      const absl::Status sync_status = core::ErrnoStatus(
          -std::min(dir_sync_res_, 0), absl::StrCat("fsync spool directory ", FullPath("new")));
      for (auto& entry : group_) {
        if (entry->phase != Entry::Phase::kRenamed) continue;
        if (sync_status.ok()) {
          entry->phase = Entry::Phase::kDone;
          --entries_not_done_;
        } else {
          // Not known to be durable: the whole group is refused and removed from new/.
          entry->status = sync_status;
          StartCleanup(*entry);
        }
      }
    }
  }
  if (phase_ == GroupPhase::kFinishing && entries_not_done_ == 0) FinishGroup();
}

void LocalSpool::FinishGroup() {
  if (dir_fd_ >= 0) {
    io_uring_sqe* sqe = reactor_.Prepare(nullptr);  // nothing waits for it
    io_uring_prep_close(sqe, dir_fd_);
    dir_fd_ = -1;
  }
  // Reset before calling out: a waiter may Submit() and even Flush() from OnStored().
  std::vector<std::unique_ptr<Entry>> done = std::move(group_);
  group_.clear();
  group_active_ = false;
  ++commits_;
  for (auto& entry : done) {
    --unanswered_;
    entry->waiter->OnStored(entry->status);
  }
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Spool>> CreateLocalSpool(const std::string& path, Reactor& reactor) {
  auto spool = internal::LocalSpool::Create(path, reactor);
  if (!spool.ok()) return spool.status();
  return std::unique_ptr<Spool>(std::move(spool).value());
}

}  // namespace ringmx::net
