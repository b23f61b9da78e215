#include <stdint.h>
#include <string.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

#include "core/queue/log_format.h"

namespace ringmx::core::queue {
namespace {

// Record magic "KEY!" as it lies on disk (little-endian), and a CRC mask.
constexpr SegmentKey kKey{0x2159454b, 0x9e3779b9};

// Little-endian field writers for hand-made payloads.
void U8(std::string& s, uint8_t v) { s.push_back(static_cast<char>(v)); }
void U32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void U64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void Str(std::string& s, std::string_view v) {
  U32(s, static_cast<uint32_t>(v.size()));
  s.append(v);
}

Frame MustDecode(std::string_view bytes) {
  Frame frame;
  EXPECT_EQ(DecodeFrame(bytes, kKey, frame), FrameResult::kOk);
  EXPECT_EQ(frame.size, bytes.size());
  return frame;
}

MessageHeader SampleHeader() {
  MessageHeader h;
  h.id = "0123456789ABCDEF";
  h.received_us = 1'700'000'000'123'456;
  h.sender = "alice@example.org";
  h.recipients = {"bob@example.net", "carol@example.net"};
  h.envelope_json = R"({"mail_from":"alice@example.org"})";
  h.trace_headers = "Received: from x by y; date\r\n";
  return h;
}

std::vector<RecipientStatus> SampleStates() {
  std::vector<RecipientStatus> states(2);
  states[0] = {RecipientState::kDeferred, 3, 1'700'000'100'000'000, 1'700'000'050'000'000,
               "451 4.3.0 try later"};
  states[1] = {RecipientState::kDelivered, 1, 0, 1'700'000'060'000'000, "250 2.0.0 ok"};
  return states;
}

TEST(QueueCrcTest, KnownAnswer) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  // RFC 3720 appendix B.4: 32 bytes of zeros.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62a8ab43u);
}

TEST(QueueCrcTest, ExtendEqualsCrcOfConcatenation) {
  const std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    EXPECT_EQ(Crc32cExtend(Crc32c(data.substr(0, cut)), data.substr(cut)), Crc32c(data)) << cut;
  }
}

TEST(QueueFormatTest, RecordHeaderLayout) {
  const std::string rec = EncodeAbort("ID1", kKey);
  ASSERT_EQ(rec.size(), kRecordHeaderSize + 4 + 3);
  EXPECT_EQ(rec.substr(0, 4), "KEY!");
  uint32_t crc, length;
  memcpy(&crc, rec.data() + 4, 4);
  memcpy(&length, rec.data() + 8, 4);
  EXPECT_EQ(length, 7u);
  EXPECT_EQ(static_cast<uint8_t>(rec[12]), static_cast<uint8_t>(RecordType::kAbort));
  EXPECT_EQ(crc, Crc32c(std::string_view(rec).substr(8)) ^ kKey.crc_mask);
  // Unkeyed: zero magic and the plain CRC.
  const std::string plain = EncodeAbort("ID1", kUnkeyed);
  EXPECT_EQ(plain.substr(0, 4), std::string(4, '\0'));
  memcpy(&crc, plain.data() + 4, 4);
  EXPECT_EQ(crc, Crc32c(std::string_view(plain).substr(8)));
  EXPECT_EQ(plain.substr(8), rec.substr(8));
}

TEST(QueueFormatTest, SegmentHeaderLayout) {
  EXPECT_EQ(kSegmentMagic, "RMXQLOG2");
  const std::string header = EncodeSegmentHeader(kKey);
  ASSERT_EQ(header.size(), kSegmentHeaderSize);
  EXPECT_EQ(header, std::string("RMXQLOG2KEY!") + "\xb9\x79\x37\x9e");
  EXPECT_EQ(ParseSegmentHeader(header), kKey);
  EXPECT_EQ(ParseSegmentHeader(header + "records follow"), kKey);
  for (size_t cut = 0; cut < kSegmentHeaderSize; ++cut) {
    EXPECT_EQ(ParseSegmentHeader(header.substr(0, cut)), std::nullopt) << cut;
  }
  std::string old = header;
  old[7] = '1';
  EXPECT_EQ(ParseSegmentHeader(old), std::nullopt);
}

TEST(QueueFormatTest, UsableKeysHaveNoZeroByteInTheirMagic) {
  EXPECT_TRUE(IsUsableSegmentKey(kKey));
  EXPECT_TRUE(IsUsableSegmentKey({0x01010101, 0}));
  EXPECT_FALSE(IsUsableSegmentKey(kUnkeyed));
  for (int shift = 0; shift < 32; shift += 8) {
    EXPECT_FALSE(IsUsableSegmentKey({0xffffffffu & ~(0xffu << shift), 7})) << shift;
  }
}

TEST(QueueFormatTest, ARecordDecodesOnlyWithItsSegmentsKey) {
  const std::string rec = EncodeMessageOp("ID", MessageOp::kDelete, 5, kKey);
  Frame frame;
  EXPECT_EQ(CheckFrame(rec, kKey, frame), FrameProblem::kNone);
  EXPECT_EQ(CheckFrame(rec, {kKey.record_magic, kKey.crc_mask ^ 0x80000000u}, frame),
            FrameProblem::kCrcMismatch);
  EXPECT_EQ(CheckFrame(rec, {kKey.record_magic ^ 1, kKey.crc_mask}, frame),
            FrameProblem::kBadMagic);
  EXPECT_EQ(CheckFrame(rec, kUnkeyed, frame), FrameProblem::kBadMagic);
}

TEST(QueueFormatTest, RekeyingChangesOnlyMagicAndStoredCrc) {
  MessageHeader h = SampleHeader();
  const std::string tail(100000, 'b');
  h.body_size = tail.size();
  const std::string unkeyed = EncodeMessagePrefix(h, tail, kUnkeyed);
  std::string prefix = unkeyed;
  RekeyRecord(prefix, kUnkeyed, kKey);
  EXPECT_EQ(prefix, EncodeMessagePrefix(h, tail, kKey));
  EXPECT_EQ(MustDecode(prefix + tail).type, RecordType::kMessage);
  // And on to another key, and back.
  const SegmentKey other{0x0a0b0c0d, 0x12345678};
  RekeyRecord(prefix, kKey, other);
  Frame frame;
  EXPECT_EQ(DecodeFrame(prefix + tail, other, frame), FrameResult::kOk);
  EXPECT_NE(DecodeFrame(prefix + tail, kKey, frame), FrameResult::kOk);
  RekeyRecord(prefix, other, kUnkeyed);
  EXPECT_EQ(prefix, unkeyed);
}

TEST(QueueFormatTest, MessageRoundTrip) {
  MessageHeader h = SampleHeader();
  const std::string tail = "Subject: hi\r\n\r\nbody\r\n";
  h.body_size = tail.size();
  const std::string prefix = EncodeMessagePrefix(h, tail, kKey);
  const std::string rec = prefix + tail;
  const Frame frame = MustDecode(rec);
  EXPECT_EQ(frame.type, RecordType::kMessage);
  auto m = ParseMessage(frame.payload);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.flags, 0);
  EXPECT_EQ(m->header.id, h.id);
  EXPECT_EQ(m->header.received_us, h.received_us);
  EXPECT_EQ(m->header.sender, h.sender);
  EXPECT_EQ(m->header.recipients, h.recipients);
  EXPECT_EQ(m->header.envelope_json, h.envelope_json);
  EXPECT_EQ(m->header.trace_headers, h.trace_headers);
  EXPECT_EQ(m->header.fragments, 0u);
  EXPECT_EQ(m->header.body_size, tail.size());
  EXPECT_FALSE(m->header.held);
  EXPECT_TRUE(m->header.states.empty());
  EXPECT_EQ(m->tail, tail);
  // Encoding the parsed header again gives the same bytes.
  EXPECT_EQ(EncodeMessagePrefix(m->header, m->tail, kKey) + std::string(m->tail), rec);
}

TEST(QueueFormatTest, MessageWithFragmentsAndEmptyTail) {
  MessageHeader h = SampleHeader();
  h.fragments = 3;
  h.body_size = 3 * 1000;
  const std::string rec = EncodeMessagePrefix(h, "", kKey);
  auto m = ParseMessage(MustDecode(rec).payload);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.fragments, 3u);
  EXPECT_EQ(m->header.body_size, 3000u);
  EXPECT_TRUE(m->tail.empty());
}

TEST(QueueFormatTest, RelocatedMessageRoundTrip) {
  MessageHeader h = SampleHeader();
  h.flags = kMessageFlagRelocated;
  h.held = true;
  h.states = SampleStates();
  const std::string tail = "x\r\n";
  h.body_size = tail.size();
  const std::string rec = EncodeMessagePrefix(h, tail, kKey) + tail;
  auto m = ParseMessage(MustDecode(rec).payload);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.flags, kMessageFlagRelocated);
  EXPECT_TRUE(m->header.held);
  ASSERT_EQ(m->header.states.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(m->header.states[i].state, h.states[i].state);
    EXPECT_EQ(m->header.states[i].attempts, h.states[i].attempts);
    EXPECT_EQ(m->header.states[i].next_attempt_us, h.states[i].next_attempt_us);
    EXPECT_EQ(m->header.states[i].at_us, h.states[i].at_us);
    EXPECT_EQ(m->header.states[i].reply, h.states[i].reply);
  }
  EXPECT_EQ(EncodeMessagePrefix(m->header, m->tail, kKey) + std::string(m->tail), rec);
}

TEST(QueueFormatTest, FragmentRoundTrip) {
  const std::string bytes(5000, 'q');
  const std::string rec = EncodeFragmentPrefix("ID7", 42, bytes, kKey) + bytes;
  const Frame frame = MustDecode(rec);
  EXPECT_EQ(frame.type, RecordType::kFragment);
  auto f = ParseFragment(frame.payload);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->id, "ID7");
  EXPECT_EQ(f->index, 42u);
  EXPECT_EQ(f->bytes, bytes);
  EXPECT_EQ(EncodeFragmentPrefix(f->id, f->index, f->bytes, kKey) + std::string(f->bytes), rec);
}

TEST(QueueFormatTest, AbortRoundTrip) {
  const std::string rec = EncodeAbort("ID9", kKey);
  const Frame frame = MustDecode(rec);
  EXPECT_EQ(frame.type, RecordType::kAbort);
  auto id = ParseAbort(frame.payload);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "ID9");
}

TEST(QueueFormatTest, RecipientStateRoundTripEveryState) {
  for (RecipientState state : {RecipientState::kPending, RecipientState::kDelivered,
                               RecipientState::kDeferred, RecipientState::kFailed}) {
    RecipientStatus status{state, 7, -5, 1234567, "550 5.1.1 no such user"};
    const std::string rec = EncodeRecipientState("ID3", 5, status, kKey);
    const Frame frame = MustDecode(rec);
    EXPECT_EQ(frame.type, RecordType::kRecipientState);
    auto v = ParseRecipientState(frame.payload);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->id, "ID3");
    EXPECT_EQ(v->recipient, 5u);
    EXPECT_EQ(v->status.state, state);
    EXPECT_EQ(v->status.attempts, 7u);
    EXPECT_EQ(v->status.next_attempt_us, -5);
    EXPECT_EQ(v->status.at_us, 1234567);
    EXPECT_EQ(v->status.reply, status.reply);
    EXPECT_EQ(EncodeRecipientState(v->id, v->recipient, v->status, kKey), rec);
  }
}

TEST(QueueFormatTest, MessageOpRoundTripEveryOp) {
  for (MessageOp op : {MessageOp::kHold, MessageOp::kRelease, MessageOp::kDelete}) {
    const std::string rec = EncodeMessageOp("ID4", op, -77, kKey);
    const Frame frame = MustDecode(rec);
    EXPECT_EQ(frame.type, RecordType::kMessageOp);
    auto v = ParseMessageOp(frame.payload);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->id, "ID4");
    EXPECT_EQ(v->op, op);
    EXPECT_EQ(v->at_us, -77);
    EXPECT_EQ(EncodeMessageOp(v->id, v->op, v->at_us, kKey), rec);
  }
}

TEST(QueueFormatTest, StateNamesAndFinality) {
  EXPECT_EQ(RecipientStateName(RecipientState::kPending), "pending");
  EXPECT_EQ(RecipientStateName(RecipientState::kDelivered), "delivered");
  EXPECT_EQ(RecipientStateName(RecipientState::kDeferred), "deferred");
  EXPECT_EQ(RecipientStateName(RecipientState::kFailed), "failed");
  EXPECT_FALSE(IsFinal(RecipientState::kPending));
  EXPECT_TRUE(IsFinal(RecipientState::kDelivered));
  EXPECT_FALSE(IsFinal(RecipientState::kDeferred));
  EXPECT_TRUE(IsFinal(RecipientState::kFailed));
}

// --- framing errors
// -------------------------------------------------------------------------------

TEST(QueueFrameTest, EveryProperPrefixIsIncomplete) {
  const std::string rec =
      EncodeRecipientState("ID", 0, {RecipientState::kDeferred, 1, 2, 3, "r"}, kKey);
  for (size_t cut = 0; cut < rec.size(); ++cut) {
    Frame frame;
    EXPECT_EQ(DecodeFrame(std::string_view(rec).substr(0, cut), kKey, frame),
              FrameResult::kIncomplete)
        << cut;
  }
}

TEST(QueueFrameTest, TrailingBytesAreNotPartOfTheFrame) {
  const std::string rec = EncodeAbort("ID", kKey);
  Frame frame;
  ASSERT_EQ(DecodeFrame(rec + "RMXQ and more", kKey, frame), FrameResult::kOk);
  EXPECT_EQ(frame.size, rec.size());
}

TEST(QueueFrameTest, BadMagicIsCorruptEvenWhenShort) {
  Frame frame;
  EXPECT_EQ(DecodeFrame(std::string(1, '\0'), kKey, frame), FrameResult::kCorrupt);
  EXPECT_EQ(DecodeFrame(std::string(3, '\0'), kKey, frame), FrameResult::kCorrupt);
  EXPECT_EQ(DecodeFrame("RMXX", kKey, frame), FrameResult::kCorrupt);
  EXPECT_EQ(CheckFrame(std::string(100, '\0'), kKey, frame), FrameProblem::kBadMagic);
}

TEST(QueueFrameTest, LengthOverTheLimitIsCorrupt) {
  std::string rec = EncodeAbort("ID", kKey);
  const uint32_t length = kMaxRecordPayload + 1;
  memcpy(rec.data() + 8, &length, 4);
  Frame frame;
  EXPECT_EQ(CheckFrame(rec, kKey, frame), FrameProblem::kLengthTooLarge);
  EXPECT_EQ(DecodeFrame(rec, kKey, frame), FrameResult::kCorrupt);
  // Even when cut short: a length that large is never a record being written.
  EXPECT_EQ(DecodeFrame(std::string_view(rec).substr(0, kRecordHeaderSize), kKey, frame),
            FrameResult::kCorrupt);
}

TEST(QueueFrameTest, UnknownTypeIsCorrupt) {
  for (uint8_t type : {0, 6, 255}) {
    std::string rec = EncodeAbort("ID", kKey);
    rec[12] = static_cast<char>(type);
    // With a matching CRC, so that only the type is wrong.
    const uint32_t crc = Crc32c(std::string_view(rec).substr(8));
    memcpy(rec.data() + 4, &crc, 4);
    Frame frame;
    EXPECT_EQ(CheckFrame(rec, kKey, frame), FrameProblem::kUnknownType) << int{type};
  }
}

TEST(QueueFrameTest, AnyFlippedBitAfterTheMagicIsCaught) {
  const std::string tail = "hello\r\n";
  MessageHeader h = SampleHeader();
  h.body_size = tail.size();
  const std::string rec = EncodeMessagePrefix(h, tail, kKey) + tail;
  for (size_t i = 4; i < rec.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = rec;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      Frame frame;
      EXPECT_NE(DecodeFrame(bad, kKey, frame), FrameResult::kOk) << i << " " << bit;
    }
  }
  std::string bad = rec;
  bad[20] ^= 1;
  Frame frame;
  EXPECT_EQ(CheckFrame(bad, kKey, frame), FrameProblem::kCrcMismatch);
}

TEST(QueueFrameTest, ProblemNames) {
  EXPECT_EQ(FrameProblemName(FrameProblem::kNone), "ok");
  EXPECT_EQ(FrameProblemName(FrameProblem::kIncomplete), "incomplete record");
  EXPECT_EQ(FrameProblemName(FrameProblem::kBadMagic), "bad magic");
  EXPECT_EQ(FrameProblemName(FrameProblem::kLengthTooLarge), "length too large");
  EXPECT_EQ(FrameProblemName(FrameProblem::kUnknownType), "unknown type");
  EXPECT_EQ(FrameProblemName(FrameProblem::kCrcMismatch), "crc mismatch");
}

// --- malformed payloads
// ---------------------------------------------------------------------------

void ExpectDataLoss(const absl::Status& status, std::string_view what) {
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(std::string(status.message()).find(what), std::string::npos) << status << " / " << what;
}

TEST(QueuePayloadTest, EveryTruncationOfEveryFixedPayloadFails) {
  MessageHeader relocated = SampleHeader();
  relocated.flags = kMessageFlagRelocated;
  relocated.states = SampleStates();
  relocated.body_size = 4;
  MessageHeader plain = SampleHeader();
  plain.body_size = 4;
  const std::vector<std::string> records = {
      EncodeMessagePrefix(plain, "abcd", kKey) + "abcd",
      EncodeMessagePrefix(relocated, "abcd", kKey) + "abcd",
      EncodeAbort("ID", kKey),
      EncodeRecipientState("ID", 1, {RecipientState::kFailed, 2, 3, 4, "550 no"}, kKey),
      EncodeMessageOp("ID", MessageOp::kHold, 9, kKey),
  };
  for (const std::string& rec : records) {
    const Frame frame = MustDecode(rec);
    for (size_t cut = 0; cut < frame.payload.size(); ++cut) {
      const std::string_view p = frame.payload.substr(0, cut);
      absl::Status status;
      switch (frame.type) {
        case RecordType::kMessage:
          status = ParseMessage(p).status();
          break;
        case RecordType::kAbort:
          status = ParseAbort(p).status();
          break;
        case RecordType::kRecipientState:
          status = ParseRecipientState(p).status();
          break;
        case RecordType::kMessageOp:
          status = ParseMessageOp(p).status();
          break;
        case RecordType::kFragment:
          break;
      }
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss)
          << static_cast<int>(frame.type) << " cut at " << cut;
    }
  }
}

TEST(QueuePayloadTest, FragmentTruncatedInItsFieldsFails) {
  const std::string rec = EncodeFragmentPrefix("ID", 3, "body", kKey) + "body";
  const Frame frame = MustDecode(rec);
  // id length (4) + id (2) + index (4): any cut before the body is an error.
  for (size_t cut = 0; cut < 10; ++cut) {
    EXPECT_EQ(ParseFragment(frame.payload.substr(0, cut)).status().code(),
              absl::StatusCode::kDataLoss)
        << cut;
  }
  auto f = ParseFragment(frame.payload.substr(0, 10));
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->bytes.empty());
}

TEST(QueuePayloadTest, BytesLeftOverAreRejected) {
  ExpectDataLoss(
      ParseAbort(std::string(MustDecode(EncodeAbort("ID", kKey)).payload) + "x").status(),
      "bytes after the id");
  const std::string state = EncodeRecipientState("ID", 0, {}, kKey);
  ExpectDataLoss(ParseRecipientState(std::string(MustDecode(state).payload) + "x").status(),
                 "bytes after the reply");
  const std::string op = EncodeMessageOp("ID", MessageOp::kDelete, 1, kKey);
  ExpectDataLoss(ParseMessageOp(std::string(MustDecode(op).payload) + "x").status(),
                 "bytes after the time");
}

TEST(QueuePayloadTest, EmptyIdsAreRejected) {
  std::string p;
  Str(p, "");
  ExpectDataLoss(ParseAbort(p).status(), "empty id");
  U32(p, 0);
  ExpectDataLoss(ParseFragment(p).status(), "empty id");
  U8(p, 1);
  U64(p, 0);
  ExpectDataLoss(ParseMessageOp(p).status(), "empty id");
}

TEST(QueuePayloadTest, IdLongerThanThePayload) {
  std::string p;
  U32(p, 100);
  p += "short";
  ExpectDataLoss(ParseAbort(p).status(), "id runs past the payload");
  ExpectDataLoss(ParseFragment(p).status(), "id runs past the payload");
  ExpectDataLoss(ParseMessage(std::string(1, '\0') + p).status(), "id runs past the payload");
}

TEST(QueuePayloadTest, EnumsOutOfRange) {
  std::string state;
  Str(state, "ID");
  U32(state, 0);
  U8(state, 4);  // one past kFailed
  U32(state, 0);
  U64(state, 0);
  U64(state, 0);
  Str(state, "");
  ExpectDataLoss(ParseRecipientState(state).status(), "unknown recipient state");

  for (uint8_t op : {0, 4, 200}) {
    std::string p;
    Str(p, "ID");
    U8(p, op);
    U64(p, 0);
    ExpectDataLoss(ParseMessageOp(p).status(), "unknown operation");
  }
}

// A plain message payload built by hand, with hooks for the shapes under test.
struct MessageFields {
  uint8_t flags = 0;
  uint32_t recipient_count = 1;
  uint32_t fragments = 0;
  uint64_t body_size = 4;
  uint8_t held = 0;
  uint8_t state = 0;
  std::string tail = "abcd";
};
std::string MessagePayload(const MessageFields& f) {
  std::string p;
  U8(p, f.flags);
  Str(p, "ID");
  U64(p, 1);
  Str(p, "a@b");
  U32(p, f.recipient_count);
  Str(p, "c@d");
  Str(p, "{}");
  Str(p, "Received: x\r\n");
  U32(p, f.fragments);
  U64(p, f.body_size);
  if (f.flags & kMessageFlagRelocated) {
    U8(p, f.held);
    U8(p, f.state);
    U32(p, 0);
    U64(p, 0);
    U64(p, 0);
    Str(p, "");
  }
  return p + f.tail;
}

TEST(QueuePayloadTest, MessageShapes) {
  ASSERT_TRUE(ParseMessage(MessagePayload({})).ok());
  MessageFields relocated;
  relocated.flags = kMessageFlagRelocated;
  ASSERT_TRUE(ParseMessage(MessagePayload(relocated)).ok());

  MessageFields bounce;  // a DSN ringmx made
  bounce.flags = kMessageFlagBounce;
  ASSERT_TRUE(ParseMessage(MessagePayload(bounce)).ok());
  bounce.flags = kMessageFlagBounce | kMessageFlagRelocated;
  ASSERT_TRUE(ParseMessage(MessagePayload(bounce)).ok());

  MessageFields held;  // quarantined by a milter
  held.flags = kMessageFlagHeld;
  ASSERT_TRUE(ParseMessage(MessagePayload(held)).ok());

  MessageFields f;
  f.flags = 8;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "unknown flags");
  f = {};
  f.recipient_count = 0xffffffff;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "recipient count larger");
  f = {};
  f.recipient_count = 3;  // only one is there: the next fields are read as recipients
  EXPECT_EQ(ParseMessage(MessagePayload(f)).status().code(), absl::StatusCode::kDataLoss);
  f = {};
  f.body_size = 3;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "tail over body size");
  f = {};
  f.body_size = 5;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "no fragments");
  f = {};
  f.fragments = 1;
  f.body_size = 1000;  // fragments may hold the rest
  EXPECT_TRUE(ParseMessage(MessagePayload(f)).ok());
  f = relocated;
  f.held = 2;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "held");
  f = relocated;
  f.state = 9;
  ExpectDataLoss(ParseMessage(MessagePayload(f)).status(), "unknown recipient state");
  f = relocated;
  f.recipient_count = 0x10000;  // cannot hold that many states (nor recipients)
  EXPECT_EQ(ParseMessage(MessagePayload(f)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(QueuePayloadTest, RelocatedStatesCountedAgainstThePayload) {
  // Two recipients, the states of only one: the second state runs past the payload.
  std::string p;
  U8(p, kMessageFlagRelocated);
  Str(p, "ID");
  U64(p, 1);
  Str(p, "a@b");
  U32(p, 2);
  Str(p, "c@d");
  Str(p, "e@f");
  Str(p, "{}");
  Str(p, "");
  U32(p, 0);
  U64(p, 0);
  U8(p, 0);
  U8(p, 0);
  U32(p, 0);
  U64(p, 0);
  U64(p, 0);
  Str(p, "");
  EXPECT_EQ(ParseMessage(p).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ringmx::core::queue
