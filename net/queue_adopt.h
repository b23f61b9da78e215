// The blocking side of the queue's segment files (DESIGN.md section 6): what the per-shard log
// (net/queue_log.cc) does before its shard serves, and the adoption of the directories of shards
// that no longer exist, which runs before any shard starts. Nothing here runs on a ring.
//
// The helpers in `queue_files` are shared by net/queue_log.cc, net/queue_adopt.cc and the spool
// directory's preparation (net/spool_dir.cc); other code uses QueueLog and
// AdoptRetiredShardQueues().
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "core/body_blocks.h"
#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/queue/store_files.h"
#include "net/spool.h"

namespace ringmx::net {

// At start, before any shard runs: each `<spool_path>/queue/<k>` with k >= `workers` (the server
// now runs fewer shards) is adopted by shard k % workers. Its live messages are copied, with
// their current states, as relocated kMessage records into a new segment of the adopting shard's
// directory (synced, and the directory too), then the old directory is renamed to `<k>.adopted`
// (atomically, directory synced) and removed. A crash before the rename repeats the adoption
// (relocated copies replace each other); leftover `*.adopted` directories are removed. Blocking.
absl::Status AdoptRetiredShardQueues(const std::string& spool_path, int workers);

namespace queue_files {

inline constexpr mode_t kDirMode = 0750;
inline constexpr mode_t kFileMode = 0640;
// Bodies above this are written as kFragment records of this size plus the kMessage with the
// last part: a record's payload may not exceed kMaxRecordPayload. Streamed fragments are at most
// as large.
inline constexpr size_t kFragmentBytes = kMaxFragmentBytes;
static_assert(kFragmentBytes + 1024 < core::queue::kMaxRecordPayload);

// A write or sync failure as waiters see it: a full disk (ENOSPC, EDQUOT) is kResourceExhausted
// (the session answers 452), anything else is kInternal (451). Names `operation`.
absl::Status StoreError(int err, std::string_view operation);

// Owns one file descriptor (blocking code only).
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// pwrite() of all of `data` at `offset`; errors as StoreError(), naming `what`.
absl::Status WriteAllAt(int fd, std::string_view data, uint64_t offset, const std::string& what);
// fsync() of the directory open as `fd` (named `path` in errors), or of the one at `path`.
absl::Status FsyncDirectory(int fd, const std::string& path);
absl::Status FsyncDirectoryPath(const std::string& path);
// Creates directory `path` if missing (and makes its name durable); checks it is a directory.
absl::Status EnsureDirectory(const std::string& path);
// A new segment's key, from the kernel's random pool (getrandom(2)), redrawn until usable
// (core::queue::IsUsableSegmentKey()).
core::queue::SegmentKey NewSegmentKey();
// Creates segment `seq` in the directory open as `dir_fd` (named `dir`) and makes it durable:
// header (magic and `key`) written, fdatasync, directory fsync. Returns its descriptor (open for
// writing), which the caller owns.
absl::StatusOr<int> CreateSegmentSync(int dir_fd, const std::string& dir, uint64_t seq,
                                      const core::queue::SegmentKey& key);
// Names in `dir` other than "." and "..".
absl::StatusOr<std::vector<std::string>> ListDirectoryNames(const std::string& dir);
// The start-up log line's facts: "messages=12 segments=3 bytes=40960 problems=0", then the
// problems themselves (at most a few; the count says how many there were).
std::string DescribeReplay(const core::queue::ReplayReport& report,
                           const core::queue::Index& index);

// One encoded record: the prefix (record header and fields) and the tail, which points into bytes
// its owner keeps (a message's body, a fragment's bytes) and is written from there. `type` and
// `fragment_index` tell the index what the record was (see QueueLog::ApplyToIndex()).
struct EncodedRecord {
  std::string prefix;
  // In parts when the body is held in blocks (core/body_blocks.h): written one iovec each.
  core::BodyBlocks::Views tail;
  core::queue::RecordType type{};
  uint32_t fragment_index = 0;  // kFragment
};
using EncodedRecords = std::vector<EncodedRecord>;

// Encodes `header` with `body` (its parts one after the other, e.g. a chain's blocks) for a
// segment of `key`: kFragment records first when the body is larger than one record may hold
// (a record's tail may span parts), then the kMessage with the last part as its tail (views into
// the bytes `body` views, which must outlive `out`). `streamed` fragments holding `streamed_bytes`
// were written before (QueueLog::SubmitFragment()); the fragments made here are numbered after
// them. `header.fragments` and `body_size` are set here.
void EncodeMessage(core::queue::MessageHeader& header, std::span<const std::string_view> body,
                   EncodedRecords& out, const core::queue::SegmentKey& key, uint32_t streamed = 0,
                   uint64_t streamed_bytes = 0);

}  // namespace queue_files
}  // namespace ringmx::net
