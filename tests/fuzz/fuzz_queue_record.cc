// Fuzz target: the queue's record decoder (core/queue/log_format.h). DecodeFrame must classify any
// bytes without reading past them; every parser must accept or refuse any payload with kDataLoss;
// a payload that parses must encode back to the same record bytes (the format has one encoding per
// value); an Index fed the record must keep its own promises.
//
// A record decodes only under its segment's key: one that decodes must not decode under a key
// differing in the magic or the CRC mask, and re-keying it must move it from one key to the other.
//
// Input: [mode][u32 record magic][u32 CRC mask] (the segment key, little-endian) then bytes.
//   mode bit 0 clear: the bytes are decoded as they are (a record, a torn one, or garbage);
//   mode bit 0 set:   the bytes are [type][payload...] and are framed with a correct CRC first, so
//                     that the parsers see payloads the CRC would otherwise almost always stop.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "core/check.h"
#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using namespace core::queue;  // NOLINT: a fuzz target's own file

// A record around `payload` with a correct CRC for `key` (the type byte may be any value).
std::string Framed(uint8_t type, std::string_view payload, const SegmentKey& key) {
  std::string out(kRecordHeaderSize, '\0');
  const uint32_t length = static_cast<uint32_t>(payload.size());
  memcpy(out.data(), &key.record_magic, 4);
  memcpy(out.data() + 8, &length, 4);
  out[12] = static_cast<char>(type);
  out.append(payload);
  const uint32_t crc = Crc32c(std::string_view(out).substr(8)) ^ key.crc_mask;
  memcpy(out.data() + 4, &crc, 4);
  return out;
}

bool Within(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

void CheckParsers(std::string_view payload) {
  // Any payload, any parser: a value or kDataLoss, never anything else.
  const auto expect = [](const absl::Status& s) {
    RINGMX_CHECK(s.ok() || s.code() == absl::StatusCode::kDataLoss);
  };
  expect(ParseMessage(payload).status());
  expect(ParseFragment(payload).status());
  expect(ParseAbort(payload).status());
  expect(ParseRecipientState(payload).status());
  expect(ParseMessageOp(payload).status());
}

void CheckRecord(std::string_view record, const SegmentKey& key, const Frame& frame) {
  const std::string_view p = frame.payload;
  RINGMX_CHECK(frame.size == kRecordHeaderSize + p.size());
  RINGMX_CHECK(Within(p, record));
  const std::string_view whole = record.substr(0, frame.size);
  // The index through its typed entry points (what the writer calls) must end as Apply() does.
  const Location where{1, 16, frame.size};
  Index typed;
  bool parsed = false;
  switch (frame.type) {
    case RecordType::kMessage: {
      auto m = ParseMessage(p);
      if (!m.ok()) break;
      const MessageHeader& h = m->header;
      RINGMX_CHECK(Within(m->tail, p) && m->tail.size() <= h.body_size);
      RINGMX_CHECK(h.fragments > 0 || h.body_size == m->tail.size());
      const bool relocated = (h.flags & kMessageFlagRelocated) != 0;
      RINGMX_CHECK(relocated ? h.states.size() == h.recipients.size() : h.states.empty());
      RINGMX_CHECK(!h.id.empty());
      RINGMX_CHECK(EncodeMessagePrefix(h, m->tail, key) + std::string(m->tail) == whole);
      typed.ApplyMessage(h, where);
      parsed = true;
      break;
    }
    case RecordType::kFragment: {
      auto f = ParseFragment(p);
      if (!f.ok()) break;
      RINGMX_CHECK(EncodeFragmentPrefix(f->id, f->index, f->bytes, key) + std::string(f->bytes) ==
                   whole);
      typed.ApplyFragment(f->id, f->index, where);
      parsed = true;
      break;
    }
    case RecordType::kAbort: {
      auto id = ParseAbort(p);
      if (!id.ok()) break;
      RINGMX_CHECK(EncodeAbort(*id, key) == whole);
      typed.ApplyAbort(*id);
      parsed = true;
      break;
    }
    case RecordType::kRecipientState: {
      auto s = ParseRecipientState(p);
      if (!s.ok()) break;
      RINGMX_CHECK(EncodeRecipientState(s->id, s->recipient, s->status, key) == whole);
      typed.ApplyRecipientState(s->id, s->recipient, s->status);
      parsed = true;
      break;
    }
    case RecordType::kMessageOp: {
      auto op = ParseMessageOp(p);
      if (!op.ok()) break;
      RINGMX_CHECK(EncodeMessageOp(op->id, op->op, op->at_us, key) == whole);
      typed.ApplyMessageOp(op->id, op->op);
      parsed = true;
      break;
    }
  }
  CheckParsers(p);

  // The index takes any good frame: it is a message, counted, or ignored.
  Index index;
  index.Apply(frame, where);
  RINGMX_CHECK(index.stats().records == 1);
  if (parsed) {
    const ReplayStats& a = index.stats();
    const ReplayStats& b = typed.stats();
    RINGMX_CHECK(a.records == b.records && a.messages == b.messages && a.orphans == b.orphans &&
                 a.malformed == b.malformed);
    RINGMX_CHECK(index.size() == typed.size());
    RINGMX_CHECK(index.OldestNeededSegment(5) == typed.OldestNeededSegment(5));
  } else {
    RINGMX_CHECK(index.stats().malformed == 1);
  }
  RINGMX_CHECK(index.size() <= 1);
  for (const QueuedMessage* m : index.List()) {
    RINGMX_CHECK(!m->AllFinal());
    RINGMX_CHECK(index.OldestNeededSegment(5) == 1);
  }
  index.FinishReplay();
  RINGMX_CHECK(index.stats().incomplete <= 1);
  if (index.size() == 0) RINGMX_CHECK(index.OldestNeededSegment(5) == 5);

  // Under any other key the record is not one; re-keyed, it is one there and no longer here.
  Frame other_frame;
  const SegmentKey other_mask{key.record_magic, key.crc_mask ^ 0x00010000u};
  const SegmentKey other_magic{key.record_magic ^ 0x00000100u, key.crc_mask};
  RINGMX_CHECK(CheckFrame(whole, other_mask, other_frame) == FrameProblem::kCrcMismatch);
  RINGMX_CHECK(CheckFrame(whole, other_magic, other_frame) == FrameProblem::kBadMagic);
  std::string moved(whole);
  RekeyRecord(moved, key, other_mask);
  RINGMX_CHECK(DecodeFrame(moved, other_mask, other_frame) == FrameResult::kOk);
  RINGMX_CHECK(other_frame.size == frame.size && other_frame.type == frame.type);
  RekeyRecord(moved, other_mask, key);
  RINGMX_CHECK(moved == whole);

  // Every proper prefix of a good record is incomplete, never corrupt and never a record.
  for (size_t cut : {size_t{0}, size_t{3}, kRecordHeaderSize - 1, kRecordHeaderSize, frame.size / 2,
                     frame.size - 1}) {
    if (cut >= frame.size) continue;
    ringmx::core::queue::Frame partial;
    RINGMX_CHECK(DecodeFrame(whole.substr(0, cut), key, partial) == FrameResult::kIncomplete);
  }
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx::fuzz;
  using namespace ringmx::core::queue;
  FuzzInput in(data, size);
  const uint8_t mode = in.Byte();
  SegmentKey key;
  const std::string_view key_bytes = in.Bytes(8);
  char raw_key[8] = {};
  memcpy(raw_key, key_bytes.data(), key_bytes.size());
  memcpy(&key.record_magic, raw_key, 4);
  memcpy(&key.crc_mask, raw_key + 4, 4);
  std::string record;
  if ((mode & 1) != 0) {
    const uint8_t type = in.Byte();
    record = Framed(type, in.Rest(), key);
  } else {
    record = std::string(in.Rest());
  }
  ringmx::core::queue::Frame frame;
  const FrameProblem problem = CheckFrame(record, key, frame);
  ringmx::core::queue::Frame frame2;
  const FrameResult result = DecodeFrame(record, key, frame2);
  RINGMX_CHECK((problem == FrameProblem::kNone) == (result == FrameResult::kOk));
  RINGMX_CHECK((problem == FrameProblem::kIncomplete) == (result == FrameResult::kIncomplete));
  RINGMX_CHECK(!FrameProblemName(problem).empty());
  if (result == FrameResult::kOk) {
    RINGMX_CHECK(frame.size == frame2.size && frame.type == frame2.type &&
                 frame.payload.data() == frame2.payload.data());
    RINGMX_CHECK(frame.size <= record.size());
    CheckRecord(record, key, frame);
  } else {
    // Whatever the frame, the parsers must survive the bytes after the header.
    CheckParsers(std::string_view(record).substr(std::min(record.size(), kRecordHeaderSize)));
  }
  return 0;
}
