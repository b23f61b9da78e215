#include "core/queue/log_format.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#include "core/check.h"

#include <isa-l/crc.h>

namespace ringmx::core::queue {

// The format is little-endian; memcpy of host integers is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "the queue format assumes little-endian");

namespace {

// crc32_iscsi takes an int length: feed it at most 1 GiB at a time.
constexpr size_t kCrcChunk = size_t{1} << 30;

// Payload sizes of the fixed-width parts, for reserving and for count sanity checks.
constexpr size_t kStrMin = 4;                                // u32 length, no bytes
constexpr size_t kStateFieldsMin = 1 + 4 + 8 + 8 + kStrMin;  // state, attempts, next, at, reply

// --- writing ------------------------------------------------------------------------------------

void PutU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void PutU32(std::string& out, uint32_t v) {
  char b[4];
  memcpy(b, &v, 4);
  out.append(b, 4);
}
void PutU64(std::string& out, uint64_t v) {
  char b[8];
  memcpy(b, &v, 8);
  out.append(b, 8);
}
void PutI64(std::string& out, int64_t v) { PutU64(out, static_cast<uint64_t>(v)); }
void PutStr(std::string& out, std::string_view s) {
  RINGMX_CHECK(s.size() <= std::numeric_limits<uint32_t>::max());
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}
void PutStateFields(std::string& out, const RecipientStatus& status) {
  PutU8(out, static_cast<uint8_t>(status.state));
  PutU32(out, status.attempts);
  PutI64(out, status.next_attempt_us);
  PutI64(out, status.at_us);
  PutStr(out, status.reply);
}

// Starts a record in `out`: magic, CRC and length placeholders, type. Fields follow.
void BeginRecord(std::string& out, RecordType type, size_t reserve, const SegmentKey& key) {
  out.reserve(kRecordHeaderSize + reserve);
  PutU32(out, key.record_magic);
  PutU32(out, 0);  // CRC, set by FinishRecord
  PutU32(out, 0);  // length, set by FinishRecord
  PutU8(out, static_cast<uint8_t>(type));
}

// Sets length and CRC of the record in `out` whose payload is out[13..] followed by the parts of
// `tail`, one after the other.
void FinishRecord(std::string& out, std::span<const std::string_view> tail, const SegmentKey& key) {
  size_t tail_size = 0;
  for (std::string_view part : tail) tail_size += part.size();
  const size_t length = out.size() - kRecordHeaderSize + tail_size;
  // Callers never build larger records: a larger message streams as fragments (header comment).
  RINGMX_CHECK(length <= kMaxRecordPayload);
  const uint32_t length32 = static_cast<uint32_t>(length);
  memcpy(out.data() + 8, &length32, 4);
  uint32_t crc = Crc32c(std::string_view(out).substr(8));
  for (std::string_view part : tail) crc = Crc32cExtend(crc, part);
  crc ^= key.crc_mask;
  memcpy(out.data() + 4, &crc, 4);
}
void FinishRecord(std::string& out, std::string_view tail, const SegmentKey& key) {
  FinishRecord(out, std::span<const std::string_view>(&tail, 1), key);
}

// --- reading ------------------------------------------------------------------------------------

// Reads fields from the front of a payload. The first failure sticks: later reads give zeros and
// the error names the first field that did not fit.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  bool ok() const { return error_ == nullptr; }
  size_t remaining() const { return rest_.size(); }
  std::string_view Rest() {
    std::string_view r = rest_;
    rest_ = {};
    return r;
  }

  uint8_t U8(const char* what) {
    uint8_t v = 0;
    Fixed(&v, 1, what);
    return v;
  }
  uint32_t U32(const char* what) {
    uint32_t v = 0;
    Fixed(&v, 4, what);
    return v;
  }
  uint64_t U64(const char* what) {
    uint64_t v = 0;
    Fixed(&v, 8, what);
    return v;
  }
  int64_t I64(const char* what) { return static_cast<int64_t>(U64(what)); }
  std::string_view Str(const char* what) {
    const uint32_t n = U32(what);
    if (!ok()) return {};
    if (n > rest_.size()) {
      Fail(what);
      return {};
    }
    std::string_view s = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return s;
  }

  // Marks the payload bad with `what` (unless it already is).
  void Fail(const char* what) {
    if (error_ == nullptr) error_ = what;
    rest_ = {};
  }
  absl::Status Error(const char* record) const {
    return absl::DataLossError(absl::StrCat(record, " record: ", error_));
  }

 private:
  void Fixed(void* v, size_t n, const char* what) {
    if (!ok()) return;
    if (rest_.size() < n) {
      Fail(what);
      return;
    }
    memcpy(v, rest_.data(), n);
    rest_.remove_prefix(n);
  }

  std::string_view rest_;
  const char* error_ = nullptr;
};

std::string_view ReadId(Reader& r) {
  std::string_view id = r.Str("id runs past the payload");
  if (r.ok() && id.empty()) r.Fail("empty id");
  return id;
}

bool ValidRecipientState(uint8_t v) { return v <= static_cast<uint8_t>(RecipientState::kFailed); }

void ReadStateFields(Reader& r, RecipientStatus& status) {
  const uint8_t state = r.U8("recipient state runs past the payload");
  if (r.ok() && !ValidRecipientState(state)) r.Fail("unknown recipient state");
  status.state = static_cast<RecipientState>(state);
  status.attempts = r.U32("attempts run past the payload");
  status.next_attempt_us = r.I64("next attempt runs past the payload");
  status.at_us = r.I64("time runs past the payload");
  status.reply = std::string(r.Str("reply runs past the payload"));
}

uint32_t LoadU32(const char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

bool KnownType(uint8_t type) {
  return type >= static_cast<uint8_t>(RecordType::kMessage) &&
         type <= static_cast<uint8_t>(RecordType::kMessageOp);
}

}  // namespace

bool IsFinal(RecipientState state) {
  return state == RecipientState::kDelivered || state == RecipientState::kFailed;
}

std::string_view RecipientStateName(RecipientState state) {
  switch (state) {
    case RecipientState::kPending:
      return "pending";
    case RecipientState::kDelivered:
      return "delivered";
    case RecipientState::kDeferred:
      return "deferred";
    case RecipientState::kFailed:
      return "failed";
  }
  return "unknown";
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  // crc32_iscsi() is the reflected CRC32C without the final inversion: standard CRC32C of `data`
  // is ~crc32_iscsi(data, ~0), and a standard CRC is continued by starting from its inversion.
  uint32_t state = ~crc;
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kCrcChunk);
    // ISA-L's prototype takes a non-const pointer but does not write through it.
    state = crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(data.data())),
                        static_cast<int>(n), state);
    data.remove_prefix(n);
  }
  return ~state;
}

std::string EncodeMessagePrefix(const MessageHeader& header, std::string_view tail,
                                const SegmentKey& key) {
  return EncodeMessagePrefix(header, std::span<const std::string_view>(&tail, 1), key);
}

std::string EncodeMessagePrefix(const MessageHeader& header, std::span<const std::string_view> tail,
                                const SegmentKey& key) {
  const bool relocated = (header.flags & kMessageFlagRelocated) != 0;
  if (relocated) RINGMX_CHECK(header.states.size() == header.recipients.size());
  RINGMX_CHECK(header.recipients.size() <= std::numeric_limits<uint32_t>::max());
  size_t fields = 1 + kStrMin + header.id.size() + 8 + kStrMin + header.sender.size() + 4 +
                  kStrMin + header.envelope_json.size() + kStrMin + header.trace_headers.size() +
                  4 + 8;
  for (std::string_view r : header.recipients) fields += kStrMin + r.size();
  if (relocated) {
    fields += 1;
    for (const RecipientStatus& s : header.states) fields += kStateFieldsMin + s.reply.size();
  }
  std::string out;
  BeginRecord(out, RecordType::kMessage, fields, key);
  PutU8(out, header.flags);
  PutStr(out, header.id);
  PutI64(out, header.received_us);
  PutStr(out, header.sender);
  PutU32(out, static_cast<uint32_t>(header.recipients.size()));
  for (std::string_view r : header.recipients) PutStr(out, r);
  PutStr(out, header.envelope_json);
  PutStr(out, header.trace_headers);
  PutU32(out, header.fragments);
  PutU64(out, header.body_size);
  if (relocated) {
    PutU8(out, header.held ? 1 : 0);
    for (const RecipientStatus& s : header.states) PutStateFields(out, s);
  }
  FinishRecord(out, tail, key);
  return out;
}

std::string EncodeFragmentPrefix(std::string_view id, uint32_t index, std::string_view bytes,
                                 const SegmentKey& key) {
  return EncodeFragmentPrefix(id, index, std::span<const std::string_view>(&bytes, 1), key);
}

std::string EncodeFragmentPrefix(std::string_view id, uint32_t index,
                                 std::span<const std::string_view> bytes, const SegmentKey& key) {
  std::string out;
  BeginRecord(out, RecordType::kFragment, kStrMin + id.size() + 4, key);
  PutStr(out, id);
  PutU32(out, index);
  FinishRecord(out, bytes, key);
  return out;
}

std::string EncodeAbort(std::string_view id, const SegmentKey& key) {
  std::string out;
  BeginRecord(out, RecordType::kAbort, kStrMin + id.size(), key);
  PutStr(out, id);
  FinishRecord(out, std::string_view(), key);
  return out;
}

std::string EncodeRecipientState(std::string_view id, uint32_t recipient,
                                 const RecipientStatus& status, const SegmentKey& key) {
  std::string out;
  BeginRecord(out, RecordType::kRecipientState,
              kStrMin + id.size() + 4 + kStateFieldsMin + status.reply.size(), key);
  PutStr(out, id);
  PutU32(out, recipient);
  PutStateFields(out, status);
  FinishRecord(out, std::string_view(), key);
  return out;
}

std::string EncodeMessageOp(std::string_view id, MessageOp op, int64_t at_us,
                            const SegmentKey& key) {
  std::string out;
  BeginRecord(out, RecordType::kMessageOp, kStrMin + id.size() + 1 + 8, key);
  PutStr(out, id);
  PutU8(out, static_cast<uint8_t>(op));
  PutI64(out, at_us);
  FinishRecord(out, std::string_view(), key);
  return out;
}

void RekeyRecord(std::string& prefix, const SegmentKey& from, const SegmentKey& to) {
  RINGMX_CHECK(prefix.size() >= kRecordHeaderSize);
  const uint32_t crc = LoadU32(prefix.data() + 4) ^ from.crc_mask ^ to.crc_mask;
  memcpy(prefix.data(), &to.record_magic, 4);
  memcpy(prefix.data() + 4, &crc, 4);
}

bool IsUsableSegmentKey(const SegmentKey& key) {
  for (int shift = 0; shift < 32; shift += 8) {
    if (((key.record_magic >> shift) & 0xff) == 0) return false;
  }
  return true;
}

std::string EncodeSegmentHeader(const SegmentKey& key) {
  std::string out(kSegmentMagic);
  PutU32(out, key.record_magic);
  PutU32(out, key.crc_mask);
  return out;
}

std::optional<SegmentKey> ParseSegmentHeader(std::string_view bytes) {
  if (bytes.size() < kSegmentHeaderSize) return std::nullopt;
  if (bytes.substr(0, kSegmentMagic.size()) != kSegmentMagic) return std::nullopt;
  return SegmentKey{LoadU32(bytes.data() + 8), LoadU32(bytes.data() + 12)};
}

FrameProblem CheckFrame(std::string_view bytes, const SegmentKey& key, Frame& frame) {
  // Compare as much of the magic as there is, so that a short tail of garbage (zeros from
  // preallocation, say) is corrupt rather than incomplete.
  if (bytes.empty()) return FrameProblem::kIncomplete;
  char magic[4];
  memcpy(magic, &key.record_magic, 4);
  const size_t have = std::min<size_t>(bytes.size(), 4);
  if (memcmp(bytes.data(), magic, have) != 0) return FrameProblem::kBadMagic;
  if (bytes.size() < kRecordHeaderSize) return FrameProblem::kIncomplete;
  const uint32_t crc = LoadU32(bytes.data() + 4);
  const uint32_t length = LoadU32(bytes.data() + 8);
  const uint8_t type = static_cast<uint8_t>(bytes[12]);
  if (length > kMaxRecordPayload) return FrameProblem::kLengthTooLarge;
  if (!KnownType(type)) return FrameProblem::kUnknownType;
  if (bytes.size() - kRecordHeaderSize < length) return FrameProblem::kIncomplete;
  if ((Crc32c(bytes.substr(8, 5 + size_t{length})) ^ key.crc_mask) != crc) {
    return FrameProblem::kCrcMismatch;
  }
  frame.type = static_cast<RecordType>(type);
  frame.payload = bytes.substr(kRecordHeaderSize, length);
  frame.size = kRecordHeaderSize + size_t{length};
  return FrameProblem::kNone;
}

std::string_view FrameProblemName(FrameProblem problem) {
  switch (problem) {
    case FrameProblem::kNone:
      return "ok";
    case FrameProblem::kIncomplete:
      return "incomplete record";
    case FrameProblem::kBadMagic:
      return "bad magic";
    case FrameProblem::kLengthTooLarge:
      return "length too large";
    case FrameProblem::kUnknownType:
      return "unknown type";
    case FrameProblem::kCrcMismatch:
      return "crc mismatch";
  }
  return "unknown problem";
}

FrameResult DecodeFrame(std::string_view bytes, const SegmentKey& key, Frame& frame) {
  switch (CheckFrame(bytes, key, frame)) {
    case FrameProblem::kNone:
      return FrameResult::kOk;
    case FrameProblem::kIncomplete:
      return FrameResult::kIncomplete;
    default:
      return FrameResult::kCorrupt;
  }
}

absl::StatusOr<MessageView> ParseMessage(std::string_view payload) {
  Reader r(payload);
  MessageView m;
  MessageHeader& h = m.header;
  h.flags = r.U8("flags run past the payload");
  if (r.ok() && (h.flags & ~(kMessageFlagRelocated | kMessageFlagBounce | kMessageFlagHeld)) != 0)
    r.Fail("unknown flags");
  h.id = ReadId(r);
  h.received_us = r.I64("received time runs past the payload");
  h.sender = r.Str("sender runs past the payload");
  const uint32_t n = r.U32("recipient count runs past the payload");
  // Each recipient takes at least its length field: a count the payload cannot hold is damage,
  // found before reserving memory for it.
  if (r.ok() && n > r.remaining() / kStrMin) r.Fail("recipient count larger than the payload");
  if (r.ok()) h.recipients.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    h.recipients.push_back(r.Str("recipient runs past the payload"));
  }
  h.envelope_json = r.Str("envelope runs past the payload");
  h.trace_headers = r.Str("trace headers run past the payload");
  h.fragments = r.U32("fragment count runs past the payload");
  h.body_size = r.U64("body size runs past the payload");
  if ((h.flags & kMessageFlagRelocated) != 0) {
    const uint8_t held = r.U8("held runs past the payload");
    if (r.ok() && held > 1) r.Fail("held is neither 0 nor 1");
    h.held = held == 1;
    if (r.ok() && n > r.remaining() / kStateFieldsMin) {
      r.Fail("recipient states larger than the payload");
    }
    if (r.ok()) h.states.resize(n);
    for (uint32_t i = 0; i < n && r.ok(); ++i) ReadStateFields(r, h.states[i]);
  }
  if (!r.ok()) return r.Error("message");
  m.tail = r.Rest();
  if (h.body_size < m.tail.size())
    return absl::DataLossError("message record: tail over body size");
  if (h.fragments == 0 && h.body_size != m.tail.size()) {
    return absl::DataLossError("message record: no fragments but body size is not the tail's");
  }
  return m;
}

absl::StatusOr<FragmentView> ParseFragment(std::string_view payload) {
  Reader r(payload);
  FragmentView f;
  f.id = ReadId(r);
  f.index = r.U32("index runs past the payload");
  if (!r.ok()) return r.Error("fragment");
  f.bytes = r.Rest();
  return f;
}

absl::StatusOr<std::string_view> ParseAbort(std::string_view payload) {
  Reader r(payload);
  std::string_view id = ReadId(r);
  if (r.ok() && r.remaining() != 0) r.Fail("bytes after the id");
  if (!r.ok()) return r.Error("abort");
  return id;
}

absl::StatusOr<RecipientStateView> ParseRecipientState(std::string_view payload) {
  Reader r(payload);
  RecipientStateView v;
  v.id = ReadId(r);
  v.recipient = r.U32("recipient index runs past the payload");
  ReadStateFields(r, v.status);
  if (r.ok() && r.remaining() != 0) r.Fail("bytes after the reply");
  if (!r.ok()) return r.Error("recipient state");
  return v;
}

absl::StatusOr<MessageOpView> ParseMessageOp(std::string_view payload) {
  Reader r(payload);
  MessageOpView v;
  v.id = ReadId(r);
  const uint8_t op = r.U8("operation runs past the payload");
  if (r.ok() && (op < static_cast<uint8_t>(MessageOp::kHold) ||
                 op > static_cast<uint8_t>(MessageOp::kDelete))) {
    r.Fail("unknown operation");
  }
  v.op = static_cast<MessageOp>(op);
  v.at_us = r.I64("time runs past the payload");
  if (r.ok() && r.remaining() != 0) r.Fail("bytes after the time");
  if (!r.ok()) return r.Error("message op");
  return v;
}

}  // namespace ringmx::core::queue
