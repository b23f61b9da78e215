// Blocking segment-file helpers and the adoption of retired shard directories (net/queue_adopt.h).

#include "net/queue_adopt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/log.h"
#include "core/status.h"
#include "core/status_macros.h"

namespace ringmx::net {

namespace q = core::queue;

namespace queue_files {

absl::Status StoreError(int err, std::string_view operation) {
  absl::Status status = core::ErrnoStatus(err, operation);
  if (err == ENOSPC || err == EDQUOT) return status;
  return absl::InternalError(status.message());
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) close(fd_);
}

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

namespace {

std::string ParentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

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

void EncodeMessage(q::MessageHeader& header, std::span<const std::string_view> body,
                   EncodedRecords& out, const q::SegmentKey& key, uint32_t streamed,
                   uint64_t streamed_bytes) {
  size_t left = 0;  // body octets not in a record yet
  for (std::string_view part : body) left += part.size();
  header.body_size = streamed_bytes + left;
  header.fragments = streamed;
  // What the kMessage record holds besides its tail (an upper bound). An envelope near
  // kMaxRecordPayload itself cannot be stored (EncodeMessagePrefix checks); the limits on
  // recipients keep it far below.
  size_t fields = 256 + header.id.size() + header.sender.size() + header.envelope_json.size() +
                  header.trace_headers.size() + 64 * header.states.size();
  for (std::string_view recipient : header.recipients) fields += 4 + recipient.size();
  for (const q::RecipientStatus& state : header.states) fields += state.reply.size();
  const size_t max_tail = fields < q::kMaxRecordPayload ? q::kMaxRecordPayload - fields : 0;
  // The next `n` body octets as views, which may span parts.
  size_t part = 0;
  size_t offset = 0;
  const auto take = [&](size_t n) {
    core::BodyBlocks::Views views;
    while (n > 0 && part < body.size()) {
      const std::string_view piece = body[part].substr(offset, n);
      if (!piece.empty()) views.push_back(piece);
      n -= piece.size();
      offset += piece.size();
      if (offset == body[part].size()) {
        ++part;
        offset = 0;
      }
    }
    return views;
  };
  while (left > std::min(kFragmentBytes, max_tail)) {
    core::BodyBlocks::Views views = take(kFragmentBytes);
    std::string prefix = q::EncodeFragmentPrefix(header.id, header.fragments, views, key);
    out.push_back(
        {std::move(prefix), std::move(views), q::RecordType::kFragment, header.fragments});
    ++header.fragments;
    left -= kFragmentBytes;
  }
  core::BodyBlocks::Views views = take(left);
  std::string prefix = q::EncodeMessagePrefix(header, views, key);
  out.push_back({std::move(prefix), std::move(views), q::RecordType::kMessage});
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
}  // namespace queue_files

using queue_files::CreateSegmentSync;
using queue_files::DescribeReplay;
using queue_files::EncodedRecord;
using queue_files::EncodedRecords;
using queue_files::EncodeMessage;
using queue_files::EnsureDirectory;
using queue_files::FsyncDirectoryPath;
using queue_files::ListDirectoryNames;
using queue_files::NewSegmentKey;
using queue_files::ScopedFd;
using queue_files::StoreError;
using queue_files::WriteAllAt;

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
    const std::string_view whole = body;
    EncodeMessage(header, std::span<const std::string_view>(&whole, 1), records, key);
    for (const EncodedRecord& r : records) {
      RINGMX_RETURN_IF_ERROR(WriteAllAt(fd.get(), r.prefix, offset, segment));
      offset += r.prefix.size();
      for (std::string_view part : r.tail) {
        RINGMX_RETURN_IF_ERROR(WriteAllAt(fd.get(), part, offset, segment));
        offset += part.size();
      }
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
