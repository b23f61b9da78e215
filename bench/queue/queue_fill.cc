// ringmx-queue-fill: writes a queue directory as ringmx's shards would have left it after taking
// N messages, without a server: `DIR/queue/<shard>/<seq>.seg`, each segment its header (magic and
// a random segment key) and then kMessage records made by core/queue's own encoder (the body as the
// record's tail, the CRC over both), a new segment once one has reached --segment-size (64 MiB,
// QueueLogOptions' default, and like the server the check is made before a record, so a segment
// ends a little past it). Messages go to the shards in turn; ids are QueueIdGenerator's with times
// one microsecond apart. For measuring restart (replay) time and the index's memory per queued
// message; a tool, never run under ctest.
//
// usage: ringmx-queue-fill DIR [--messages N] [--size BYTES] [--recipients R] [--shards S]
//                              [--segment-size BYTES]
//   defaults: 1000000 messages, 1024-byte bodies, 2 recipients, 2 shards, 64 MiB segments.
// DIR/queue must not exist yet. The files are written with plain write(2) and fdatasync'd once
// each, when complete; the directories are fsync'd at the end.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "core/queue/log_format.h"
#include "core/queue/store_files.h"
#include "core/queue_id.h"

namespace {

namespace q = ringmx::core::queue;

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "ringmx-queue-fill: %s\n", what.c_str());
  exit(1);
}
[[noreturn]] void DieErrno(const std::string& what) {
  Die(absl::StrCat(what, ": ", strerror(errno)));
}

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) DieErrno(absl::StrCat("mkdir ", path));
}

void SyncDir(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) DieErrno(absl::StrCat("fsync ", path));
  close(fd);
}

// One shard's directory being written: the open segment and a write buffer in front of it.
class ShardWriter {
 public:
  ShardWriter(std::string dir, uint64_t segment_size)
      : dir_(std::move(dir)), segment_size_(segment_size) {
    MakeDir(dir_);
    buffer_.reserve(kBufferBytes + (1 << 20));
  }

  // Appends the kMessage record of `header` with `tail`, framed with the segment's key.
  void Append(const q::MessageHeader& header, std::string_view tail) {
    if (fd_ < 0 || size_ >= segment_size_) Rotate();
    const std::string prefix = q::EncodeMessagePrefix(header, tail, key_);
    buffer_.append(prefix);
    buffer_.append(tail);
    size_ += prefix.size() + tail.size();
    bytes_ += prefix.size() + tail.size();
    if (buffer_.size() >= kBufferBytes) Drain();
  }

  void Close() {
    if (fd_ < 0) return;
    Drain();
    if (fdatasync(fd_) != 0) DieErrno(absl::StrCat("fdatasync ", path_));
    close(fd_);
    fd_ = -1;
  }

  uint64_t segments() const { return seq_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& dir() const { return dir_; }

 private:
  static constexpr size_t kBufferBytes = size_t{4} << 20;

  void Rotate() {
    Close();
    path_ = absl::StrCat(dir_, "/", q::SegmentFileName(++seq_));
    fd_ = open(path_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
    if (fd_ < 0) DieErrno(absl::StrCat("create ", path_));
    // A random key per segment, as the server picks one (net/queue_log.cc).
    do {
      key_.record_magic = static_cast<uint32_t>(random_());
      key_.crc_mask = static_cast<uint32_t>(random_());
    } while (!q::IsUsableSegmentKey(key_));
    const std::string header = q::EncodeSegmentHeader(key_);
    buffer_.append(header);
    size_ = header.size();
    bytes_ += header.size();
  }

  void Drain() {
    std::string_view data = buffer_;
    while (!data.empty()) {
      const ssize_t n = write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        DieErrno(absl::StrCat("write ", path_));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    buffer_.clear();
  }

  const std::string dir_;
  const uint64_t segment_size_;
  std::string path_;
  int fd_ = -1;
  uint64_t seq_ = 0;
  uint64_t size_ = 0;
  uint64_t bytes_ = 0;
  std::string buffer_;
  q::SegmentKey key_;
  std::mt19937_64 random_{std::random_device{}()};
};

// A body of exactly `size` bytes that looks like mail: a few headers, then 72-column lines, CRLF.
std::string MakeBody(size_t size) {
  std::string body =
      "From: Sender <sender@bench.test>\r\nTo: User <user0@example.test>\r\n"
      "Subject: queue fill\r\nMessage-ID: <fill@bench.test>\r\n"
      "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n";
  static constexpr std::string_view kLine =
      "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
  while (body.size() < size) body.append(kLine);
  body.resize(size);
  if (size >= 2) {
    body[size - 2] = '\r';
    body[size - 1] = '\n';
  }
  return body;
}

uint64_t ParseCount(const char* flag, const char* value) {
  uint64_t n = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &n)) Die(absl::StrCat(flag, " needs a number"));
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  uint64_t messages = 1000000, size = 1024, recipients = 2, shards = 2;
  uint64_t segment_size = uint64_t{64} << 20;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--messages") {
      messages = ParseCount(argv[i], value);
      ++i;
    } else if (arg == "--size") {
      size = ParseCount(argv[i], value);
      ++i;
    } else if (arg == "--recipients") {
      recipients = ParseCount(argv[i], value);
      ++i;
    } else if (arg == "--shards") {
      shards = ParseCount(argv[i], value);
      ++i;
    } else if (arg == "--segment-size") {
      segment_size = ParseCount(argv[i], value);
      ++i;
    } else if (arg == "-h" || arg == "--help" || arg.starts_with("-") || !dir.empty()) {
      fprintf(stderr,
              "usage: ringmx-queue-fill DIR [--messages N] [--size BYTES] [--recipients R] "
              "[--shards S] [--segment-size BYTES]\n");
      return arg == "-h" || arg == "--help" ? 0 : 2;
    } else {
      dir = std::string(arg);
    }
  }
  if (dir.empty()) Die("no DIR given");
  if (shards == 0 || shards > 1024 || recipients == 0 || recipients > 1000 || segment_size == 0 ||
      size > q::kMaxRecordPayload / 2) {
    Die("--shards 1..1024, --recipients 1..1000, --segment-size >= 1, --size <= 32 MiB");
  }
  const std::string queue_dir = absl::StrCat(dir, "/queue");
  MakeDir(dir);
  if (mkdir(queue_dir.c_str(), 0750) != 0) DieErrno(absl::StrCat("mkdir ", queue_dir));

  const auto started = std::chrono::steady_clock::now();
  std::vector<ShardWriter> writers;
  std::vector<ringmx::core::QueueIdGenerator> ids;
  writers.reserve(shards);
  for (uint64_t s = 0; s < shards; ++s) {
    writers.emplace_back(absl::StrCat(queue_dir, "/", s), segment_size);
    ids.emplace_back(static_cast<uint32_t>(s));
  }

  const std::string body = MakeBody(size);
  std::vector<std::string> rcpt_store;
  for (uint64_t r = 0; r < recipients; ++r)
    rcpt_store.push_back(absl::StrCat("user", r, "@example.test"));
  const std::string sender = "sender@bench.test";
  // A start time in the past, so that the ids (and arrival times) look like a queue that built up.
  absl::Time t = absl::Now() - absl::Seconds(static_cast<int64_t>(messages / 1000 + 1));

  std::string trace, envelope;
  for (uint64_t i = 0; i < messages; ++i) {
    const uint64_t shard = i % shards;
    t += absl::Microseconds(1);
    const std::string id = ids[shard].Next(t);
    const std::string when =
        absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", t, absl::UTCTimeZone());
    const std::string rfc3339 = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
    // The shapes of smtp/'s Received header and envelope JSON (smtp/envelope.cc), one client.
    trace = absl::StrCat("Received: from client.bench.test (localhost [127.0.0.1])\r\n",
                         "\tby mx.bench.test (ringmx) with ESMTP id ", id, "\r\n", "\tfor <",
                         rcpt_store[0], ">; ", when, "\r\n");
    envelope = absl::StrCat("{\"id\":\"", id, "\",\"received_at\":\"", rfc3339,
                            "\",\"mail_from\":\"", sender, "\",\"mail_params\":{},\"rcpt_to\":[");
    for (uint64_t r = 0; r < recipients; ++r) {
      absl::StrAppend(&envelope, r == 0 ? "" : ",", "\"", rcpt_store[r], "\"");
    }
    absl::StrAppend(&envelope,
                    "],\"client\":{\"address\":\"127.0.0.1\",\"port\":40000},"
                    "\"local\":{\"address\":\"127.0.0.1\",\"port\":25},\"listener\":\"mx\","
                    "\"helo\":\"client.bench.test\",\"protocol\":\"ESMTP\",\"smtputf8\":false,"
                    "\"body_type\":\"7BIT\",\"size\":",
                    body.size(), ",\"tls\":null,\"auth\":null}");
    q::MessageHeader header;
    header.id = id;
    header.received_us = absl::ToUnixMicros(t);
    header.sender = sender;
    for (const std::string& r : rcpt_store) header.recipients.push_back(r);
    header.envelope_json = envelope;
    header.trace_headers = trace;
    header.fragments = 0;
    header.body_size = body.size();
    writers[shard].Append(header, body);
  }
  uint64_t bytes = 0, segments = 0;
  for (ShardWriter& w : writers) {
    w.Close();
    SyncDir(w.dir());
    bytes += w.bytes();
    segments += w.segments();
  }
  SyncDir(queue_dir);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  printf("{\"messages\":%llu,\"shards\":%llu,\"segments\":%llu,\"bytes\":%llu,\"seconds\":%.2f}\n",
         static_cast<unsigned long long>(messages), static_cast<unsigned long long>(shards),
         static_cast<unsigned long long>(segments), static_cast<unsigned long long>(bytes), secs);
  return 0;
}
