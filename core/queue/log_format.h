// The queue's on-disk format (DESIGN.md section 6): per shard, append-only segment files of
// records framed with a length and a CRC32C. Pure code: it encodes and decodes bytes, and never
// opens a file. net/ writes and syncs what it encodes; recovery (core/queue/scan.h) decodes.
//
// A segment file is kSegmentMagic (8 bytes) followed by records. Every record:
//
//   offset 0   u32  kRecordMagic             resynchronisation point after a damaged record
//   offset 4   u32  CRC32C of bytes [8, 13 + length)   (length, type and payload)
//   offset 8   u32  length of the payload
//   offset 12  u8   RecordType
//   offset 13  payload
//
// Integers are little-endian; a string is a u32 length and its bytes. Payloads by type:
//
//   kMessage         u8 flags (kMessageFlagRelocated), str id, i64 received (unix us), str sender,
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

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ringmx::core::queue {

inline constexpr std::string_view kSegmentMagic{"RMXQLOG1", 8};
inline constexpr uint32_t kRecordMagic = 0x51584d52;  // "RMXQ" little-endian
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
// The caller keeps every payload within kMaxRecordPayload (a RINGMX_CHECK aborts otherwise), and
// a relocated header carries exactly one state per recipient (likewise checked).
std::string EncodeMessagePrefix(const MessageHeader& header, std::string_view tail);
std::string EncodeFragmentPrefix(std::string_view id, uint32_t index, std::string_view bytes);
// Whole small records.
std::string EncodeAbort(std::string_view id);
std::string EncodeRecipientState(std::string_view id, uint32_t recipient,
                                 const RecipientStatus& status);
std::string EncodeMessageOp(std::string_view id, MessageOp op, int64_t at_us);

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
// Decodes the record at the start of `bytes`. Fills `frame` only on kOk. Bytes that cannot start
// a record (the first up-to-4 bytes are not kRecordMagic, zeros included) are kCorrupt even when
// fewer than a header; an empty range is kIncomplete.
FrameResult DecodeFrame(std::string_view bytes, Frame& frame);

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
FrameProblem CheckFrame(std::string_view bytes, Frame& frame);
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
