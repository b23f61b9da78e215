// LocalSpool: the embedded directory store behind `CreateLocalSpool()` (DESIGN.md section 6).
// Private to net/; tests include it for the group-commit counters and the fault hook.
//
// Commit pipeline of one group (every step goes through the shard's ring, nothing blocks):
//   1. OPENAT `new/` (O_DIRECTORY) for the group, and for each record OPENAT tmp/<id>.eml and
//      tmp/<id>.json (O_CREAT|O_EXCL), all in parallel.
//   2. Per file, as soon as its open completes, one linked chain WRITEV -> FSYNC(DATASYNC) ->
//   CLOSE;
//      the fsyncs of the whole group are in flight together.
//   3. When every record of the group is durable (or has failed), per record RENAMEAT .eml from
//      tmp/ into the group's `new/` fd (RENAME_NOREPLACE), and from its completion, if it worked,
//      RENAMEAT .json the same way. (Not linked: a failed RENAMEAT does not cancel its link.)
//   4. One FSYNC of that `new/` fd covers the whole group; then every record's waiter is called,
//      in submission order, and the `new/` fd is closed (nothing waits for that CLOSE).
// A failed record has its files removed (tmp/ and new/; in new/ the .json before the .eml) before
// its waiter is called; the rest of the group is unaffected, except that a failed directory fsync
// fails every record that had been renamed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "core/spool_record.h"
#include "net/reactor.h"
#include "net/spool.h"

namespace ringmx::net::internal {

struct LocalSpoolOptions {
  // Upper bound on the records of one commit; the rest waits for the next one. A group holds two
  // open file descriptors per record while its files are written.
  size_t max_group_records = 256;
};

// Shard-local: created, used and destroyed on the thread that runs `reactor`. Destroy it only when
// pending() == 0 (the shard drains first); in-flight operations point into it.
class LocalSpool final : public Spool {
 public:
  // Opens `path` (prepared by PrepareSpoolDirectory()) and checks that tmp/ and new/ are
  // directories. Errors name the path. `reactor` must outlive the spool.
  static absl::StatusOr<std::unique_ptr<LocalSpool>> Create(const std::string& path,
                                                            Reactor& reactor,
                                                            LocalSpoolOptions options = {});
  ~LocalSpool() override;
  LocalSpool(const LocalSpool&) = delete;
  LocalSpool& operator=(const LocalSpool&) = delete;

  void Submit(core::SpoolRecord record, SpoolWaiter* waiter) override;
  void Flush() override;
  size_t pending() const override { return unanswered_; }

  // Groups committed so far (a group counts once all its waiters have been called).
  uint64_t commits() const { return commits_; }
  // True from the Flush() that starts a group until its waiters are called.
  bool commit_in_flight() const { return group_active_; }

  // Makes the next directory fsync report `err` (a positive errno) after it has really run: the
  // only fault of the pipeline that tests cannot produce with a real file system.
  void InjectDirSyncErrorForTest(int err) { inject_dir_sync_errno_ = err; }

 private:
  struct Op;
  struct File;
  struct Entry;

  LocalSpool(std::string path, int root_fd, Reactor& reactor, LocalSpoolOptions options);

  void OnOp(Op& op, int res);
  void StartGroup();
  void IssueOpen(Entry& entry, File& file);
  void IssueWriteChain(Entry& entry, File& file);
  void EvaluateWriteChain(Entry& entry, File& file);
  void IssueRenames(Entry& entry);
  void IssueRename(File& file);
  void IssueUnlinkFromNew(File& file);
  void StartCleanup(Entry& entry);
  void Settle(Entry& entry);
  void Step();
  void FinishGroup();
  // Prepares an SQE for `op`; counts it in flight.
  io_uring_sqe* PrepareOp(Op& op);
  // Makes room for `n` SQEs in the submission queue, so that a linked chain is never split across
  // two submissions (the kernel would run the tail unlinked).
  void ReserveSqes(unsigned n);
  std::string FullPath(std::string_view relative) const;

  const std::string path_;
  const int root_fd_;  // the spool directory, opened once; tmp/ and new/ are resolved under it
  Reactor& reactor_;
  const LocalSpoolOptions options_;

  // Submitted and not yet part of a group.
  std::deque<std::unique_ptr<Entry>> queue_;
  // The group being committed; empty when !group_active_.
  std::vector<std::unique_ptr<Entry>> group_;
  bool group_active_ = false;

  // Group-level state, reset by StartGroup().
  enum class GroupPhase { kWriting, kRenaming, kSyncingDir, kFinishing };
  GroupPhase phase_ = GroupPhase::kWriting;
  std::unique_ptr<Op> dir_open_op_;
  std::unique_ptr<Op> dir_sync_op_;
  int dir_fd_ = -1;          // the group's `new/`, open from its OPENAT completion to its CLOSE
  absl::Status dir_status_;  // why `new/` could not be opened
  bool dir_sync_issued_ = false;
  int dir_sync_res_ = 0;
  size_t entries_writing_ = 0;   // entries of the group still in their write phase
  size_t entries_renaming_ = 0;  // entries with renames in flight
  size_t entries_not_done_ = 0;  // entries whose waiter cannot be called yet

  // Every operation in flight, the spool's and its group's: the spool must outlive them.
  size_t ops_in_flight_ = 0;
  size_t unanswered_ = 0;  // submitted, waiter not yet called
  uint64_t commits_ = 0;
  int inject_dir_sync_errno_ = 0;
};

}  // namespace ringmx::net::internal
