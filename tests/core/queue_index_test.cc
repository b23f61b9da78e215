#include <stdint.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "core/queue/index.h"
#include "core/queue/log_format.h"

namespace ringmx::core::queue {
namespace {

constexpr SegmentKey kKey{0x11223344, 0x55667788};

// Applies whole encoded records as a log would hold them: each record gets the next offset of
// the current segment.
class IndexFeeder {
 public:
  explicit IndexFeeder(Index& index) : index_(index) {}

  void Segment(uint64_t seq) {
    segment_ = seq;
    offset_ = kSegmentHeaderSize;
  }
  Location Apply(const std::string& record) {
    Frame frame;
    EXPECT_EQ(DecodeFrame(record, kKey, frame), FrameResult::kOk);
    const Location where{segment_, offset_, record.size()};
    index_.Apply(frame, where);
    offset_ += record.size();
    return where;
  }

 private:
  Index& index_;
  uint64_t segment_ = 1;
  uint64_t offset_ = kSegmentHeaderSize;
};

std::string Message(std::string_view id, std::vector<std::string_view> recipients,
                    uint32_t fragments = 0, std::string_view tail = "tail\r\n",
                    uint64_t fragment_bytes = 0) {
  MessageHeader h;
  h.id = id;
  h.received_us = 1000;
  h.sender = "s@example.org";
  h.recipients = std::move(recipients);
  h.envelope_json = "{}";
  h.trace_headers = "Received: x\r\n";
  h.fragments = fragments;
  h.body_size = fragment_bytes + tail.size();
  return EncodeMessagePrefix(h, tail, kKey) + std::string(tail);
}

std::string Relocated(std::string_view id, std::vector<std::string_view> recipients,
                      std::vector<RecipientStatus> states, bool held) {
  MessageHeader h;
  h.flags = kMessageFlagRelocated;
  h.id = id;
  h.received_us = 1000;
  h.sender = "s@example.org";
  h.recipients = std::move(recipients);
  h.states = std::move(states);
  h.held = held;
  h.body_size = 2;
  return EncodeMessagePrefix(h, "x\n", kKey) + "x\n";
}

std::string State(std::string_view id, uint32_t recipient, RecipientState state,
                  std::string reply = "") {
  return EncodeRecipientState(id, recipient, {state, 1, 0, 5, std::move(reply)}, kKey);
}

TEST(QueueIndexTest, MessageWithPendingRecipients) {
  Index index;
  IndexFeeder feed(index);
  const Location where = feed.Apply(Message("A", {"x@y", "z@y"}));
  ASSERT_EQ(index.size(), 1u);
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->id, "A");
  EXPECT_EQ(m->received_us, 1000);
  EXPECT_EQ(m->sender, "s@example.org");
  ASSERT_EQ(m->recipients.size(), 2u);
  EXPECT_EQ(m->recipients[0].address, "x@y");
  EXPECT_EQ(m->recipients[1].address, "z@y");
  EXPECT_EQ(m->recipients[0].status.state, RecipientState::kPending);
  EXPECT_FALSE(m->held);
  EXPECT_EQ(m->body_size, 6u);
  EXPECT_EQ(m->record, where);
  EXPECT_TRUE(m->fragments.empty());
  EXPECT_EQ(m->first_segment, 1u);
  EXPECT_FALSE(m->AllFinal());
  EXPECT_EQ(index.Find("B"), nullptr);
  EXPECT_EQ(index.stats().records, 1u);
  EXPECT_EQ(index.stats().messages, 1u);
}

// A message a milter quarantined comes up held on replay until an operator releases it.
TEST(QueueIndexTest, MessageStoredHeldComesUpHeld) {
  MessageHeader h;
  h.flags = kMessageFlagHeld;
  h.id = "Q";
  h.sender = "s@example.org";
  h.recipients = {"x@y"};
  h.envelope_json = "{}";
  h.trace_headers = "Received: x\r\n";
  h.body_size = 2;
  Index index;
  IndexFeeder feed(index);
  feed.Apply(EncodeMessagePrefix(h, "x\n", kKey) + "x\n");
  const QueuedMessage* m = index.Find("Q");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->held);
  feed.Apply(EncodeMessageOp("Q", MessageOp::kRelease, 5, kKey));
  EXPECT_FALSE(index.Find("Q")->held);
}

TEST(QueueIndexTest, ListIsInIdOrder) {
  Index index;
  IndexFeeder feed(index);
  for (std::string_view id : {"C", "A", "D", "B"}) feed.Apply(Message(id, {"x@y"}));
  std::vector<std::string> ids;
  for (const QueuedMessage* m : index.List()) ids.push_back(m->id);
  EXPECT_EQ(ids, (std::vector<std::string>{"A", "B", "C", "D"}));
}

TEST(QueueIndexTest, FragmentsThenMessage) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(3);
  const Location f0 = feed.Apply(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa");
  feed.Apply(Message("B", {"x@y"}));  // another message in between
  feed.Segment(4);
  const Location f1 = feed.Apply(EncodeFragmentPrefix("A", 1, "bbbb", kKey) + "bbbb");
  // While A streams in, its first fragment pins segment 3.
  EXPECT_EQ(index.OldestNeededSegment(9), 3u);
  EXPECT_EQ(index.Find("A"), nullptr);
  const Location rec = feed.Apply(Message("A", {"x@y"}, 2, "cc", 8));
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->fragments, (std::vector<Location>{f0, f1}));
  EXPECT_EQ(m->record, rec);
  EXPECT_EQ(m->first_segment, 3u);
  EXPECT_EQ(m->body_size, 10u);
  EXPECT_EQ(index.OldestNeededSegment(9), 3u);
  index.FinishReplay();
  EXPECT_EQ(index.stats().incomplete, 0u);
}

TEST(QueueIndexTest, FragmentAfterAGapIsSkipped) {
  Index index;
  IndexFeeder feed(index);
  const Location f0 = feed.Apply(EncodeFragmentPrefix("A", 0, "a", kKey) + "a");
  feed.Apply(EncodeFragmentPrefix("A", 2, "c", kKey) + "c");  // 1 was lost
  feed.Apply(EncodeFragmentPrefix("A", 0xfffffff0, "d", kKey) + "d");
  EXPECT_EQ(index.stats().malformed, 2u);
  feed.Apply(Message("A", {"x@y"}, 3, "", 3));
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->fragments, std::vector<Location>{f0});  // fewer than the record's 3
}

TEST(QueueIndexTest, RewrittenFragmentReplacesTheOlderCopy) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(EncodeFragmentPrefix("A", 0, "a", kKey) + "a");
  const Location again = feed.Apply(EncodeFragmentPrefix("A", 0, "a", kKey) + "a");
  feed.Apply(Message("A", {"x@y"}, 1, "", 1));
  ASSERT_NE(index.Find("A"), nullptr);
  EXPECT_EQ(index.Find("A")->fragments, std::vector<Location>{again});
}

TEST(QueueIndexTest, AbortForgetsTheFragments) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(2);
  feed.Apply(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa");
  EXPECT_EQ(index.OldestNeededSegment(7), 2u);
  feed.Segment(5);
  feed.Apply(EncodeAbort("A", kKey));
  EXPECT_EQ(index.OldestNeededSegment(7), 7u);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.stats().orphans, 0u);
  index.FinishReplay();
  EXPECT_EQ(index.stats().incomplete, 0u);
}

TEST(QueueIndexTest, FragmentsWithoutMessageAreIncompleteAtTheEnd) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(2);
  feed.Apply(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa");
  feed.Apply(EncodeFragmentPrefix("B", 0, "bbbb", kKey) + "bbbb");
  feed.Apply(EncodeFragmentPrefix("B", 1, "bbbb", kKey) + "bbbb");
  index.FinishReplay();
  EXPECT_EQ(index.stats().incomplete, 2u);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.OldestNeededSegment(4), 4u);
}

TEST(QueueIndexTest, RecipientStates) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(Message("A", {"x@y", "z@y"}));
  feed.Apply(
      EncodeRecipientState("A", 1, {RecipientState::kDeferred, 2, 99, 50, "451 later"}, kKey));
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->recipients[1].status.state, RecipientState::kDeferred);
  EXPECT_EQ(m->recipients[1].status.attempts, 2u);
  EXPECT_EQ(m->recipients[1].status.next_attempt_us, 99);
  EXPECT_EQ(m->recipients[1].status.at_us, 50);
  EXPECT_EQ(m->recipients[1].status.reply, "451 later");
  feed.Apply(State("A", 0, RecipientState::kDelivered, "250 ok"));
  ASSERT_NE(index.Find("A"), nullptr);
  EXPECT_EQ(index.Find("A")->recipients[0].status.reply, "250 ok");
  EXPECT_FALSE(index.Find("A")->AllFinal());
  // The last one final: nothing left to do, the message is gone.
  feed.Apply(State("A", 1, RecipientState::kFailed, "550 no"));
  EXPECT_EQ(index.Find("A"), nullptr);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.OldestNeededSegment(3), 3u);
  // Later records of the removed message are orphans.
  feed.Apply(State("A", 1, RecipientState::kFailed));
  EXPECT_EQ(index.stats().orphans, 1u);
}

TEST(QueueIndexTest, HoldReleaseDelete) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(Message("A", {"x@y"}));
  feed.Apply(EncodeMessageOp("A", MessageOp::kHold, 1, kKey));
  EXPECT_TRUE(index.Find("A")->held);
  feed.Apply(EncodeMessageOp("A", MessageOp::kRelease, 2, kKey));
  EXPECT_FALSE(index.Find("A")->held);
  feed.Apply(EncodeMessageOp("A", MessageOp::kHold, 3, kKey));
  EXPECT_TRUE(index.Find("A")->held);
  feed.Apply(EncodeMessageOp("A", MessageOp::kDelete, 4, kKey));
  EXPECT_EQ(index.Find("A"), nullptr);
  EXPECT_EQ(index.OldestNeededSegment(5), 5u);
}

TEST(QueueIndexTest, RelocatedCopyReplacesLocationsAndStates) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(1);
  feed.Apply(Message("A", {"x@y", "z@y"}));
  feed.Apply(State("A", 0, RecipientState::kDeferred, "451"));
  feed.Segment(2);
  feed.Apply(Message("B", {"x@y"}));
  EXPECT_EQ(index.OldestNeededSegment(9), 1u);
  feed.Segment(3);
  std::vector<RecipientStatus> states(2);
  states[0] = {RecipientState::kDelivered, 1, 0, 7, "250 ok"};
  states[1] = {RecipientState::kDeferred, 4, 70, 8, "452 full"};
  const Location copy = feed.Apply(Relocated("A", {"x@y", "z@y"}, states, true));
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->record, copy);
  EXPECT_EQ(m->first_segment, 3u);
  EXPECT_TRUE(m->held);
  EXPECT_EQ(m->recipients[0].status.state, RecipientState::kDelivered);
  EXPECT_EQ(m->recipients[1].status.state, RecipientState::kDeferred);
  EXPECT_EQ(m->recipients[1].status.attempts, 4u);
  EXPECT_EQ(m->recipients[1].status.reply, "452 full");
  // Segment 1 no longer holds anything needed; B pins 2.
  EXPECT_EQ(index.OldestNeededSegment(9), 2u);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.stats().messages, 3u);
}

TEST(QueueIndexTest, RelocatedCopyWithItsFragments) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(1);
  feed.Apply(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa");
  feed.Apply(Message("A", {"x@y"}, 1, "t", 4));
  feed.Segment(6);
  const Location f0 = feed.Apply(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa");
  MessageHeader h;
  h.flags = kMessageFlagRelocated;
  h.id = "A";
  h.recipients = {"x@y"};
  h.states = {RecipientStatus{}};
  h.fragments = 1;
  h.body_size = 5;
  const Location copy = feed.Apply(EncodeMessagePrefix(h, "t", kKey) + "t");
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->record, copy);
  EXPECT_EQ(m->fragments, std::vector<Location>{f0});
  EXPECT_EQ(index.OldestNeededSegment(9), 6u);
}

TEST(QueueIndexTest, RelocatedCopyAloneAddsTheMessage) {
  // The original's segment was deleted after compaction: replay starts at the copy.
  Index index;
  IndexFeeder feed(index);
  feed.Segment(8);
  feed.Apply(
      Relocated("A", {"x@y"}, {RecipientStatus{RecipientState::kDeferred, 2, 3, 4, "r"}}, false));
  const QueuedMessage* m = index.Find("A");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->recipients[0].address, "x@y");
  EXPECT_EQ(m->recipients[0].status.state, RecipientState::kDeferred);
  EXPECT_EQ(m->first_segment, 8u);
}

TEST(QueueIndexTest, RelocatedCopyAllFinalIsRemoved) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(Message("A", {"x@y"}));
  feed.Apply(
      Relocated("A", {"x@y"}, {RecipientStatus{RecipientState::kFailed, 1, 0, 0, "5xx"}}, false));
  EXPECT_EQ(index.Find("A"), nullptr);
  EXPECT_EQ(index.OldestNeededSegment(4), 4u);
}

TEST(QueueIndexTest, Orphans) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(State("NOPE", 0, RecipientState::kDelivered));
  feed.Apply(EncodeMessageOp("NOPE", MessageOp::kHold, 1, kKey));
  feed.Apply(EncodeAbort("NOPE", kKey));
  EXPECT_EQ(index.stats().orphans, 3u);
  EXPECT_EQ(index.stats().records, 3u);
  EXPECT_EQ(index.size(), 0u);
}

// A frame with a good CRC whose payload does not parse.
Frame BadPayloadFrame(RecordType type, const std::string& payload) {
  Frame frame;
  frame.type = type;
  frame.payload = payload;
  frame.size = kRecordHeaderSize + payload.size();
  return frame;
}

TEST(QueueIndexTest, MalformedPayloadsAreCounted) {
  Index index;
  const std::string junk = "\x01\x00";
  for (RecordType type : {RecordType::kMessage, RecordType::kFragment, RecordType::kAbort,
                          RecordType::kRecipientState, RecordType::kMessageOp}) {
    index.Apply(BadPayloadFrame(type, junk), Location{1, 8, 15});
  }
  EXPECT_EQ(index.stats().malformed, 5u);
  EXPECT_EQ(index.stats().records, 5u);
  EXPECT_EQ(index.size(), 0u);

  // Well framed and parsed, but for a recipient the message does not have.
  IndexFeeder feed(index);
  feed.Apply(Message("A", {"x@y"}));
  feed.Apply(State("A", 1, RecipientState::kDelivered));
  EXPECT_EQ(index.stats().malformed, 6u);
  ASSERT_NE(index.Find("A"), nullptr);
  EXPECT_EQ(index.Find("A")->recipients[0].status.state, RecipientState::kPending);
}

TEST(QueueIndexTest, OldestNeededSegmentAcrossSegments) {
  Index index;
  IndexFeeder feed(index);
  EXPECT_EQ(index.OldestNeededSegment(1), 1u);
  feed.Segment(1);
  feed.Apply(Message("A", {"x@y"}));
  feed.Segment(2);
  feed.Apply(Message("B", {"x@y"}));
  feed.Apply(Message("C", {"x@y"}));
  feed.Segment(3);
  feed.Apply(Message("D", {"x@y"}));
  EXPECT_EQ(index.OldestNeededSegment(3), 1u);
  EXPECT_EQ(index.OldestNeededSegment(0), 0u);  // the active segment bounds it too
  feed.Apply(State("A", 0, RecipientState::kDelivered));
  EXPECT_EQ(index.OldestNeededSegment(3), 2u);
  feed.Apply(State("B", 0, RecipientState::kDelivered));
  EXPECT_EQ(index.OldestNeededSegment(3), 2u);  // C still needs segment 2
  feed.Apply(EncodeMessageOp("C", MessageOp::kDelete, 1, kKey));
  EXPECT_EQ(index.OldestNeededSegment(3), 3u);
  EXPECT_EQ(index.OldestNeededSegment(4), 3u);
  feed.Apply(State("D", 0, RecipientState::kFailed));
  EXPECT_EQ(index.OldestNeededSegment(4), 4u);
}

TEST(QueueIndexTest, StreamPinsItsFirstSegmentUntilTheMessageComes) {
  Index index;
  IndexFeeder feed(index);
  feed.Segment(1);
  feed.Apply(EncodeFragmentPrefix("A", 0, "a", kKey) + "a");
  feed.Segment(2);
  feed.Apply(EncodeFragmentPrefix("A", 1, "b", kKey) + "b");
  feed.Apply(Message("A", {"x@y"}, 2, "", 2));
  EXPECT_EQ(index.OldestNeededSegment(5), 1u);  // the message needs its first fragment
  feed.Apply(State("A", 0, RecipientState::kDelivered));
  EXPECT_EQ(index.OldestNeededSegment(5), 5u);
}

// Everything a restart must reproduce, and the counts.
std::string Describe(const Index& index) {
  std::string out;
  for (const QueuedMessage* m : index.List()) {
    out += m->id + " " + m->sender + " " + std::to_string(m->body_size) +
           " held=" + std::to_string(m->held) + " at " + std::to_string(m->record.segment) + ":" +
           std::to_string(m->record.offset) + " first=" + std::to_string(m->first_segment) +
           " fragments=";
    for (const Location& f : m->fragments) out += std::to_string(f.offset) + ",";
    for (const QueuedRecipient& r : m->recipients) {
      out += " " + r.address + "=" + std::string(RecipientStateName(r.status.state)) + "/" +
             std::to_string(r.status.next_attempt_us) + "/" + r.status.reply;
    }
    out += "\n";
  }
  const ReplayStats& st = index.stats();
  out += "records=" + std::to_string(st.records) + " messages=" + std::to_string(st.messages) +
         " orphans=" + std::to_string(st.orphans) + " malformed=" + std::to_string(st.malformed) +
         " oldest=" + std::to_string(index.OldestNeededSegment(99));
  return out;
}

// The typed entry points (what the writer calls, without a frame) build the same index as
// Apply() with the encoded records, malformed and orphan counts included.
TEST(QueueIndexTest, TypedEntryPointsMatchApply) {
  Index framed;
  Index typed;
  uint64_t offset = kSegmentHeaderSize;
  const auto next = [&](size_t size) {
    const Location where{2, offset, size};
    offset += size;
    return where;
  };
  const auto message = [&](const MessageHeader& h, std::string_view tail) {
    const std::string rec = EncodeMessagePrefix(h, tail, kKey) + std::string(tail);
    const Location where = next(rec.size());
    Frame frame;
    ASSERT_EQ(DecodeFrame(rec, kKey, frame), FrameResult::kOk);
    framed.Apply(frame, where);
    typed.ApplyMessage(h, where);
  };
  const auto small = [&](const std::string& rec, const std::function<void(const Location&)>& f) {
    const Location where = next(rec.size());
    Frame frame;
    ASSERT_EQ(DecodeFrame(rec, kKey, frame), FrameResult::kOk);
    framed.Apply(frame, where);
    f(where);
  };
  MessageHeader a;
  a.id = "A";
  a.sender = "s@x";
  a.recipients = {"r1@x", "r2@x"};
  a.fragments = 2;
  a.body_size = 9;
  small(EncodeFragmentPrefix("A", 0, "aaaa", kKey) + "aaaa",
        [&](const Location& w) { typed.ApplyFragment("A", 0, w); });
  small(EncodeFragmentPrefix("A", 2, "past a gap", kKey) + "past a gap",
        [&](const Location& w) { typed.ApplyFragment("A", 2, w); });
  small(EncodeFragmentPrefix("A", 1, "bbbb", kKey) + "bbbb",
        [&](const Location& w) { typed.ApplyFragment("A", 1, w); });
  message(a, "t");
  small(EncodeFragmentPrefix("C", 0, "cc", kKey) + "cc",
        [&](const Location& w) { typed.ApplyFragment("C", 0, w); });
  small(EncodeAbort("C", kKey), [&](const Location&) { typed.ApplyAbort("C"); });
  small(EncodeAbort("C", kKey), [&](const Location&) { typed.ApplyAbort("C"); });  // orphan
  const RecipientStatus deferred{RecipientState::kDeferred, 2, 500, 7, "451 later"};
  small(EncodeRecipientState("A", 1, deferred, kKey),
        [&](const Location&) { typed.ApplyRecipientState("A", 1, deferred); });
  small(EncodeRecipientState("A", 5, deferred, kKey),  // no such recipient: malformed
        [&](const Location&) { typed.ApplyRecipientState("A", 5, deferred); });
  small(EncodeMessageOp("A", MessageOp::kHold, 1, kKey),
        [&](const Location&) { typed.ApplyMessageOp("A", MessageOp::kHold); });
  MessageHeader b = a;
  b.id = "B";
  b.fragments = 0;
  b.body_size = 2;
  message(b, "xy");
  small(EncodeMessageOp("B", MessageOp::kDelete, 1, kKey),
        [&](const Location&) { typed.ApplyMessageOp("B", MessageOp::kDelete); });
  MessageHeader relocated = a;
  relocated.flags = kMessageFlagRelocated;
  relocated.fragments = 0;
  relocated.body_size = 1;
  relocated.held = false;
  relocated.states = {deferred, {RecipientState::kDelivered, 1, 0, 8, "250 ok"}};
  message(relocated, "t");
  EXPECT_EQ(Describe(typed), Describe(framed));
  EXPECT_EQ(typed.stats().malformed, 2u);
  EXPECT_EQ(typed.stats().orphans, 1u);
  EXPECT_EQ(typed.size(), 1u);
}

TEST(QueueIndexTest, MakeDeferredDueChangesOnlyLaterDeferredRecipients) {
  Index index;
  IndexFeeder feed(index);
  feed.Apply(Message("A", {"a@x", "b@x", "c@x"}));
  feed.Apply(EncodeRecipientState("A", 0, {RecipientState::kDeferred, 1, 900, 1, "451"}, kKey));
  feed.Apply(EncodeRecipientState("A", 1, {RecipientState::kDeferred, 1, 100, 1, "451"}, kKey));
  EXPECT_EQ(index.MakeDeferredDue(500), 1u);  // b is due already, c is pending
  const QueuedMessage* m = index.Find("A");
  EXPECT_EQ(m->recipients[0].status.next_attempt_us, 500);
  EXPECT_EQ(m->recipients[1].status.next_attempt_us, 100);
  EXPECT_EQ(m->recipients[2].status.state, RecipientState::kPending);
  EXPECT_EQ(index.MakeDeferredDue(500), 0u);
}

}  // namespace
}  // namespace ringmx::core::queue
