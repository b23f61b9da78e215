// The queue's segment files on disk (DESIGN.md section 6): names, the start-up replay of a
// shard's directory into its Index, and reading one message back for the queue tools. Blocking
// POSIX I/O: used at start-up, by the control thread's tools and by tests, never on a shard's
// ring (net/ does its own reads and writes there).
#pragma once

#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "core/queue/index.h"

namespace ringmx::core::queue {

// "0000000000000001.seg": the sequence number in 16 lower-case hex digits. Segments of a directory
// are replayed in sequence order.
std::string SegmentFileName(uint64_t seq);
// The sequence number of a name SegmentFileName() made, or nullopt for any other name.
std::optional<uint64_t> ParseSegmentFileName(std::string_view name);

// The segment sequence numbers in `dir`, ascending. Other names are ignored. Fails (with the
// errno's code, naming `dir`) if the directory cannot be read.
absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir);

// What replay found, for the start-up log line.
struct ReplayReport {
  ReplayStats index_stats;
  uint64_t segments = 0;
  uint64_t bytes = 0;
  // One line per damaged stretch, torn tail, bad segment magic or record that did not parse:
  // "<file> offset <n>: <what>".
  std::vector<std::string> problems;
  uint64_t last_segment = 0;  // the highest sequence number found, 0 if none
  // The segment's size up to its last good record (ScanResult::good_end), for the writer, which
  // continues the last segment after truncating a torn tail there.
  uint64_t last_segment_good_end = 0;
};

// Replays every segment of `dir` in sequence order into `index` (Index::Apply with
// Location{seq, offset, size} for every good record, then Index::FinishReplay()). Damage is
// reported in `problems`, never an error. Fails only if the directory or a segment cannot be
// listed, opened or read (the errno's code, naming the file); `index` then holds what was
// applied so far.
absl::StatusOr<ReplayReport> ReplayDirectory(const std::string& dir, Index& index);

// The message `m` of `dir` as an .eml: trace_headers + every fragment's bytes + tail. Reads and
// checks the kMessage record and every fragment (CRC against the key in the header of each
// segment it reads, type, id, index, count, body size). kNotFound if a segment is gone, kDataLoss
// if a segment header or a record is damaged or does not match; both name the file and offset.
absl::StatusOr<std::string> ReadMessageBytes(const std::string& dir, const QueuedMessage& m);
// The envelope_json field of `m`'s kMessage record; errors as ReadMessageBytes().
absl::StatusOr<std::string> ReadEnvelopeJson(const std::string& dir, const QueuedMessage& m);
// `m`'s kMessage record, parsed: `record` receives its bytes and `view` points into them (valid
// while `record` is unchanged). If `body` is not null it receives the body (every fragment's
// bytes + tail, without trace_headers). Checks and errors as ReadMessageBytes(). For adoption,
// which re-encodes a message for another directory.
absl::Status ReadStoredMessage(const std::string& dir, const QueuedMessage& m, std::string& record,
                               MessageView& view, std::string* body);

}  // namespace ringmx::core::queue
