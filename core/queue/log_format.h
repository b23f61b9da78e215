// The queue's on-disk format (DESIGN.md section 6): per shard, append-only segment files of
// records framed with a length and a CRC32C. Pure code: it encodes and decodes bytes, and never
// opens a file. net/ writes and syncs what it encodes; recovery (core/queue/scan.h) decodes.
//
// A segment file starts with a 16-byte header, then records:
//
//   offset 0   8 bytes  kSegmentMagic ("RMXQLOG2")
//   offset 8   u32      the segment's record magic   } the segment key: random, chosen when the
//   offset 12  u32      the segment's CRC mask       } segment is created (net/queue_log.cc)
//
// Every record of the segment:
//
//   offset 0   u32  the segment's record magic    resynchronisation point after a damaged record
//   offset 4   u32  CRC32C of bytes [8, 13 + length) XOR the segment's CRC mask
//   offset 8   u32  length of the payload
//   offset 12  u8   RecordType
//   offset 13  payload
//
// Why a key per segment: after a damaged or torn record, recovery resynchronises on the next
// record magic whose CRC checks, and the bytes it looks through may be a client's message body.
// With a constant magic and a plain CRC a sender could embed a well-framed record (a fake message,
// a delete of another message) in a body, and a crash that tears the record holding it would let
// replay apply it. A sender never learns the key of the segment its body lands in, so an embedded
// record validates only by chance (2^-64), and a record copied from one segment into another (a
// body quoting a segment file) does not validate either. The writer may encode a record before it
// knows its segment: RekeyRecord() moves an encoded record to another key in constant time (the
// CRC over length, type and payload does not change; only the magic and the mask do).
//
// Integers are little-endian; a string is a u32 length and its bytes. Payloads by type:
//
//   kMessage         u8 flags (kMessageFlag*), str id, i64 received (unix us), str sender,
//                    u32 n + n x str recipient, str envelope_json, str trace_headers,
//                    u32 fragments, u64 body_size,
//                    [relocated only: u8 held, then per recipient in order: u8 RecipientState,
//                     u32 attempts, i64 next_attempt, i64 at, str reply (kRecipientState's
//                     fields without the id and the recipient index)],
//                    then the tail: the last body bytes, to the end of the payload.
//                    The message is trace_headers + every fragment's bytes in index order + tail;
//                    body_size counts the fragments and the tail (not trace_headers).
//   kFragment        str id, u32 index (0, 1, ...), then body bytes to the end of the payload.
//                    Written while the message streams in; useless without its kMessage.
//   kAbort           str id: the message whose fragments were written was refused; skip them.
//   kRecipientState  str id, u32 recipient index, u8 RecipientState, u32 attempts,
//                    i64 next_attempt (unix us), i64 at (unix us), str reply.
//   kMessageOp       str id, u8 MessageOp, i64 at (unix us).
//
// A relocated kMessage (compaction, or a shard adopting another's log) repeats the message with
// its current states so that the older copy and its state records can be deleted.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ringmx::core::queue {

inline constexpr std::string_view kSegmentMagic{"RMXQLOG2", 8};
inline constexpr size_t kSegmentHeaderSize = 16;  // kSegmentMagic and the segment key
inline constexpr size_t kRecordHeaderSize = 13;
// Larger lengths are damage, not records. A message bigger than this streams as fragments.
inline constexpr uint32_t kMaxRecordPayload = 64u << 20;

enum class RecordType : uint8_t {
  kMessage = 1,
  kFragment = 2,
  kAbort = 3,
  kRecipientState = 4,
  kMessageOp = 5,
};

enum class RecipientState : uint8_t {
  kPending = 0,
  kDelivered = 1,  // final; reply is the next hop's
  kDeferred = 2,   // attempts, next_attempt and the last reply
  kFailed = 3,     // final; reply says why
};
// True for kDelivered and kFailed.
bool IsFinal(RecipientState state);
std::string_view RecipientStateName(RecipientState state);  // "pending", "delivered", ...

enum class MessageOp : uint8_t {
  kHold = 1,     // not delivered until released
  kRelease = 2,  // undoes kHold
  kDelete = 3,   // gone: the operator deleted it
};

inline constexpr uint8_t kMessageFlagRelocated = 1;
// A delivery status notification ringmx made itself (issue 12): it goes to [delivery]
// bounce_next_hop whatever its recipient's domain, and its own failure is never reported.
inline constexpr uint8_t kMessageFlagBounce = 2;
// Stored on hold: a milter quarantined it (docs/milter.md). Replay indexes it held, so it is not
// delivered until `ringmx queue release`. (A relocated record carries `held` in its own byte.)
inline constexpr uint8_t kMessageFlagHeld = 4;

// A segment's key (see the header comment). Every record of the segment starts with
// `record_magic` and stores its CRC32C XOR `crc_mask`.
struct SegmentKey {
  uint32_t record_magic = 0;
  uint32_t crc_mask = 0;
  friend bool operator==(const SegmentKey&, const SegmentKey&) = default;
};
// The key of records not yet given their segment's: zero magic, the plain CRC. No segment the
// writer creates has it (see IsUsableSegmentKey()).
inline constexpr SegmentKey kUnkeyed{};
// Whether the writer may give a new segment `key`: no byte of its record magic is zero, so that a
// zero-filled tail (preallocation, an unwritten page) never starts like a record, not even in its
// first byte. Readers accept any key a segment header holds.
bool IsUsableSegmentKey(const SegmentKey& key);
// kSegmentMagic followed by the key: the first kSegmentHeaderSize bytes of a segment.
std::string EncodeSegmentHeader(const SegmentKey& key);
// The key of the segment whose first bytes are `bytes`; nullopt if `bytes` is shorter than
// kSegmentHeaderSize or does not start with kSegmentMagic.
std::optional<SegmentKey> ParseSegmentHeader(std::string_view bytes);

// CRC32C (Castagnoli), the standard one: Crc32c("123456789") == 0xe3069283. Extend() continues a
// CRC over more bytes: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32c(std::string_view data);
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);

struct RecipientStatus {
  RecipientState state = RecipientState::kPending;
  uint32_t attempts = 0;
  int64_t next_attempt_us = 0;
  int64_t at_us = 0;
  std::string reply;
};

// The fields of a kMessage record before its tail. Views must outlive the encode call.
struct MessageHeader {
  uint8_t flags = 0;
  std::string_view id;
  int64_t received_us = 0;
  std::string_view sender;
  std::vector<std::string_view> recipients;
  std::string_view envelope_json;
  std::string_view trace_headers;
  uint32_t fragments = 0;
  uint64_t body_size = 0;
  // Relocated records only: `held` and one status per recipient.
  bool held = false;
  std::vector<RecipientStatus> states;
};

// Encoding without copying the body: the record is Prefix + tail, where Prefix is returned (record
// header and fields) with the CRC already covering `tail`. The writer sends both with one writev.
// Every encoder frames the record for a segment of `key` (kUnkeyed: to be keyed by RekeyRecord()).
// The caller keeps every payload within kMaxRecordPayload (a RINGMX_CHECK aborts otherwise), and
// a relocated header carries exactly one state per recipient (likewise checked).
std::string EncodeMessagePrefix(const MessageHeader& header, std::string_view tail,
                                const SegmentKey& key);
std::string EncodeFragmentPrefix(std::string_view id, uint32_t index, std::string_view bytes,
                                 const SegmentKey& key);
// The same with a tail in several parts (a body held in blocks, core/body_blocks.h), written one
// after the other: the record is byte for byte the one the contiguous tail would give (the CRC is
// continued across the parts).
std::string EncodeMessagePrefix(const MessageHeader& header, std::span<const std::string_view> tail,
                                const SegmentKey& key);
std::string EncodeFragmentPrefix(std::string_view id, uint32_t index,
                                 std::span<const std::string_view> bytes, const SegmentKey& key);
// Whole small records.
std::string EncodeAbort(std::string_view id, const SegmentKey& key);
std::string EncodeRecipientState(std::string_view id, uint32_t recipient,
                                 const RecipientStatus& status, const SegmentKey& key);
std::string EncodeMessageOp(std::string_view id, MessageOp op, int64_t at_us,
                            const SegmentKey& key);
// Re-frames the encoded record whose header starts `prefix` (a prefix from an encoder above, or a
// whole record) from a segment of key `from` to one of key `to`: rewrites its magic and its
// stored CRC, O(1) whatever the payload. `from` must be the key it was encoded (or last re-keyed)
// with; `prefix` holds at least kRecordHeaderSize bytes (RINGMX_CHECK).
void RekeyRecord(std::string& prefix, const SegmentKey& from, const SegmentKey& to);

// One framed record found in a byte range. Views point into the range given to DecodeFrame().
struct Frame {
  RecordType type{};
  std::string_view payload;
  size_t size = 0;  // header + payload: where the next record starts
};

enum class FrameResult : uint8_t {
  kOk,
  kIncomplete,  // the range ends inside the record (a torn tail, or read more)
  kCorrupt,     // wrong magic, length over kMaxRecordPayload, unknown type or CRC mismatch
};
// Decodes the record at the start of `bytes`, a range of a segment whose key is `key`. Fills
// `frame` only on kOk. Bytes that cannot start a record (the first up-to-4 bytes are not the key's
// record magic) are kCorrupt even when fewer than a header; an empty range is kIncomplete. A
// record framed for another key is kCorrupt (bad magic, or a CRC mismatch if only the mask
// differs).
FrameResult DecodeFrame(std::string_view bytes, const SegmentKey& key, Frame& frame);

// The same check saying what is wrong, for reports (DecodeFrame maps kIncomplete to kIncomplete
// and every other problem to kCorrupt).
enum class FrameProblem : uint8_t {
  kNone,
  kIncomplete,
  kBadMagic,
  kLengthTooLarge,
  kUnknownType,
  kCrcMismatch,
};
FrameProblem CheckFrame(std::string_view bytes, const SegmentKey& key, Frame& frame);
// "ok", "incomplete record", "bad magic", "length too large", "unknown type", "crc mismatch".
std::string_view FrameProblemName(FrameProblem problem);

// Decoded payloads; views point into the payload.
struct MessageView {
  MessageHeader header;
  std::string_view tail;
};
struct FragmentView {
  std::string_view id;
  uint32_t index = 0;
  std::string_view bytes;
};
struct RecipientStateView {
  std::string_view id;
  uint32_t recipient = 0;
  RecipientStatus status;
};
struct MessageOpView {
  std::string_view id;
  MessageOp op{};
  int64_t at_us = 0;
};
// Each fails with kDataLoss naming what is wrong (a field runs past the payload, a count or enum
// out of range, bytes left over where none may be, an empty id, unknown message flags, a held
// byte other than 0 or 1, a tail longer than body_size, or body_size != tail with no fragments).
absl::StatusOr<MessageView> ParseMessage(std::string_view payload);
absl::StatusOr<FragmentView> ParseFragment(std::string_view payload);
absl::StatusOr<std::string_view> ParseAbort(std::string_view payload);
absl::StatusOr<RecipientStateView> ParseRecipientState(std::string_view payload);
absl::StatusOr<MessageOpView> ParseMessageOp(std::string_view payload);

}  // namespace ringmx::core::queue
