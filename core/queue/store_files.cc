#include "core/queue/store_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/queue/scan.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"

namespace ringmx::core::queue {
namespace {

constexpr std::string_view kSegmentSuffix = ".seg";
constexpr size_t kHexDigits = 16;
// Replay reads a segment in blocks of this size (one pread each).
constexpr size_t kReadBlock = size_t{16} << 20;

// Owns one file descriptor. Scope-local.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string JoinPath(const std::string& dir, std::string_view name) {
  if (!dir.empty() && dir.back() == '/') return absl::StrCat(dir, Av(name));
  return absl::StrCat(dir, "/", Av(name));
}

absl::StatusOr<Fd> OpenForReading(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open queue segment ", path));
  return Fd(fd);
}

// Reads up to `n` bytes at `offset`, fewer only at the end of the file. Returns the count.
absl::StatusOr<size_t> ReadAt(int fd, char* buf, size_t n, uint64_t offset,
                              const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got =
        ::pread(fd, buf + done, std::min(n - done, kReadBlock), static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno,
                         absl::StrCat("read queue segment ", path, " at offset ", offset + done));
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

std::string Problem(const std::string& path, uint64_t offset, std::string_view what) {
  return absl::StrCat(path, " offset ", offset, ": ", Av(what));
}

absl::Status DataLoss(const std::string& path, uint64_t offset, std::string_view what) {
  return absl::DataLossError(Problem(path, offset, what));
}

// Reads whole records by Location for one message, keeping the last segment open. Each segment's
// header is read when the segment is opened, and its records are checked against its key.
class RecordReader {
 public:
  explicit RecordReader(const std::string& dir) : dir_(dir) {}

  const std::string& path() const { return path_; }

  // Reads the record at `where` into `buf` and checks its frame and type; `frame` views `buf`.
  absl::Status Read(const Location& where, RecordType type, std::string& buf, Frame& frame) {
    if (!fd_.has_value() || segment_ != where.segment) {
      fd_.reset();
      path_ = JoinPath(dir_, SegmentFileName(where.segment));
      auto fd = OpenForReading(path_);
      if (!fd.ok()) {
        if (absl::IsNotFound(fd.status())) {
          return absl::NotFoundError(absl::StrCat(
              "queue segment ", path_, " is gone (record at offset ", where.offset, ")"));
        }
        return fd.status();
      }
      fd_ = std::move(*fd);
      segment_ = where.segment;
      // The segment's key: its records are checked against it.
      char header[kSegmentHeaderSize];
      auto got = ReadAt(fd_->get(), header, sizeof(header), 0, path_);
      if (!got.ok()) {
        fd_.reset();
        return got.status();
      }
      const std::optional<SegmentKey> key = ParseSegmentHeader(std::string_view(header, *got));
      if (!key.has_value()) {
        fd_.reset();
        return DataLoss(path_, 0, "bad or short segment header");
      }
      key_ = *key;
    }
    if (where.size < kRecordHeaderSize || where.size > kRecordHeaderSize + kMaxRecordPayload) {
      return DataLoss(path_, where.offset, absl::StrCat("bad record size ", where.size));
    }
    buf.resize(where.size);
    RINGMX_ASSIGN_OR_RETURN(const size_t got,
                            ReadAt(fd_->get(), buf.data(), buf.size(), where.offset, path_));
    if (got != buf.size()) {
      return DataLoss(
          path_, where.offset,
          absl::StrCat("record of ", where.size, " bytes runs past the end of the file"));
    }
    const FrameProblem problem = CheckFrame(buf, key_, frame);
    if (problem != FrameProblem::kNone)
      return DataLoss(path_, where.offset, FrameProblemName(problem));
    if (frame.size != buf.size()) {
      return DataLoss(path_, where.offset, "record size differs from the index's");
    }
    if (frame.type != type) {
      return DataLoss(path_, where.offset,
                      absl::StrCat("record type ", static_cast<int>(frame.type), ", expected ",
                                   static_cast<int>(type)));
    }
    return absl::OkStatus();
  }

 private:
  const std::string& dir_;
  std::optional<Fd> fd_;
  uint64_t segment_ = 0;
  SegmentKey key_;  // segment_'s, read when it was opened
  std::string path_;
};

// Reads and parses `m`'s kMessage record into `buf` / `view`.
absl::Status ReadMessageRecord(RecordReader& reader, const QueuedMessage& m, std::string& buf,
                               MessageView& view) {
  Frame frame;
  RINGMX_RETURN_IF_ERROR(reader.Read(m.record, RecordType::kMessage, buf, frame));
  auto parsed = ParseMessage(frame.payload);
  if (!parsed.ok()) return DataLoss(reader.path(), m.record.offset, Sv(parsed.status().message()));
  if (parsed->header.id != m.id) {
    return DataLoss(reader.path(), m.record.offset,
                    absl::StrCat("message record of ", Av(parsed->header.id), ", expected ", m.id));
  }
  view = *std::move(parsed);
  return absl::OkStatus();
}

}  // namespace

std::string SegmentFileName(uint64_t seq) { return absl::StrFormat("%016x.seg", seq); }

std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  if (name.size() != kHexDigits + kSegmentSuffix.size()) return std::nullopt;
  if (name.substr(kHexDigits) != kSegmentSuffix) return std::nullopt;
  uint64_t seq = 0;
  for (size_t i = 0; i < kHexDigits; ++i) {
    const char c = name[i];
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;  // upper case too: only what SegmentFileName() writes
    }
    seq = (seq << 4) | digit;
  }
  return seq;
}

absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, absl::StrCat("open queue directory ", dir));
  std::vector<uint64_t> out;
  errno = 0;
  while (const dirent* entry = ::readdir(d)) {
    if (auto seq = ParseSegmentFileName(entry->d_name)) out.push_back(*seq);
    errno = 0;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("read queue directory ", dir));
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<ReplayReport> ReplayDirectory(const std::string& dir, Index& index) {
  RINGMX_ASSIGN_OR_RETURN(const std::vector<uint64_t> segments, ListSegments(dir));
  ReplayReport report;
  // One buffer for every segment, as large as the largest; not zero-filled.
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;
  for (const uint64_t seq : segments) {
    const std::string path = JoinPath(dir, SegmentFileName(seq));
    absl::StatusOr<Fd> opened = OpenForReading(path);
    // A segment that went between the listing and here was reclaimed by a running server (its
    // messages all final, or moved on to a later segment): nothing in it is live. At start no
    // server runs, and this cannot happen.
    if (absl::IsNotFound(opened.status())) continue;
    RINGMX_ASSIGN_OR_RETURN(Fd fd, std::move(opened));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      return ErrnoStatus(errno, absl::StrCat("stat queue segment ", path));
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size > capacity) {
      buffer = std::make_unique_for_overwrite<char[]>(size);
      capacity = size;
    }
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint; failure is harmless
    RINGMX_ASSIGN_OR_RETURN(const size_t got, ReadAt(fd.get(), buffer.get(), size, 0, path));
    const std::string_view bytes(buffer.get(), got);

    const ScanResult scan = ScanSegment(bytes, [&](const Frame& frame, uint64_t offset) {
      const uint64_t malformed = index.stats().malformed;
      index.Apply(frame, Location{seq, offset, frame.size});
      if (index.stats().malformed != malformed) {
        report.problems.push_back(
            Problem(path, offset, "record malformed or inconsistent, skipped"));
      }
    });
    if (scan.bad_segment_magic) {
      report.problems.push_back(Problem(path, 0, "bad segment magic, segment not read"));
    }
    for (const Damage& d : scan.damage) {
      report.problems.push_back(
          Problem(path, d.offset, absl::StrCat(d.what, ", ", d.size, " bytes skipped")));
    }
    if (scan.torn_tail_bytes > 0) {
      report.problems.push_back(Problem(path, scan.good_end,
                                        absl::StrCat("torn tail of ", scan.torn_tail_bytes,
                                                     " bytes (", scan.torn_tail_what, ")")));
    }
    ++report.segments;
    report.bytes += got;
    report.last_segment = seq;
    report.last_segment_good_end = scan.good_end;
  }
  index.FinishReplay();
  report.index_stats = index.stats();
  return report;
}

namespace {

// Appends `m`'s body (every fragment's bytes, then the tail of `message`, its kMessage record
// read through `reader` from `message_path`) to `out`, checking each fragment and the total.
absl::Status AppendBody(RecordReader& reader, const QueuedMessage& m, const MessageView& message,
                        const std::string& message_path, std::string& out) {
  const MessageHeader& h = message.header;
  if (h.fragments != m.fragments.size()) {
    return DataLoss(message_path, m.record.offset,
                    absl::StrCat("message has ", h.fragments, " fragments, the index knows ",
                                 m.fragments.size()));
  }
  // Reserve what the records can hold (not body_size itself, which only has to be checked).
  size_t expected = message.tail.size();
  for (const Location& f : m.fragments) expected += f.size;
  const size_t start = out.size();
  out.reserve(start + expected);

  std::string fragment_buf;
  for (uint32_t i = 0; i < m.fragments.size(); ++i) {
    const Location& where = m.fragments[i];
    if (where.size == 0) {
      return DataLoss(message_path, m.record.offset, absl::StrCat("fragment ", i, " is missing"));
    }
    Frame frame;
    RINGMX_RETURN_IF_ERROR(reader.Read(where, RecordType::kFragment, fragment_buf, frame));
    auto fragment = ParseFragment(frame.payload);
    if (!fragment.ok()) {
      return DataLoss(reader.path(), where.offset, Sv(fragment.status().message()));
    }
    if (fragment->id != m.id || fragment->index != i) {
      return DataLoss(reader.path(), where.offset,
                      absl::StrCat("fragment ", fragment->index, " of ", Av(fragment->id),
                                   ", expected ", i, " of ", m.id));
    }
    out.append(fragment->bytes);
  }
  out.append(message.tail);
  if (out.size() - start != h.body_size) {
    return DataLoss(
        message_path, m.record.offset,
        absl::StrCat("body of ", out.size() - start, " bytes, the record says ", h.body_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadMessageBytes(const std::string& dir, const QueuedMessage& m) {
  RecordReader reader(dir);
  std::string message_buf;
  MessageView message;
  RINGMX_RETURN_IF_ERROR(ReadMessageRecord(reader, m, message_buf, message));
  const std::string message_path = reader.path();
  std::string out(message.header.trace_headers);
  RINGMX_RETURN_IF_ERROR(AppendBody(reader, m, message, message_path, out));
  return out;
}

absl::Status ReadStoredMessage(const std::string& dir, const QueuedMessage& m, std::string& record,
                               MessageView& view, std::string* body) {
  RecordReader reader(dir);
  RINGMX_RETURN_IF_ERROR(ReadMessageRecord(reader, m, record, view));
  if (body == nullptr) return absl::OkStatus();
  const std::string message_path = reader.path();
  body->clear();
  return AppendBody(reader, m, view, message_path, *body);
}

absl::StatusOr<std::string> ReadEnvelopeJson(const std::string& dir, const QueuedMessage& m) {
  RecordReader reader(dir);
  std::string buf;
  MessageView message;
  RINGMX_RETURN_IF_ERROR(ReadMessageRecord(reader, m, buf, message));
  return std::string(message.header.envelope_json);
}

}  // namespace ringmx::core::queue
