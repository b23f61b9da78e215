#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "core/queue/log_format.h"
#include "core/queue/scan.h"

namespace ringmx::core::queue {
namespace {

constexpr SegmentKey kKey{0x1b2c3d4e, 0x9e3779b9};
const std::string kHeader = EncodeSegmentHeader(kKey);

struct Visited {
  RecordType type;
  uint64_t offset;
  uint64_t size;
};

struct Scanned {
  ScanResult result;
  std::vector<Visited> visited;
};

Scanned Scan(std::string_view bytes) {
  Scanned s;
  s.result = ScanSegment(bytes, [&](const Frame& frame, uint64_t offset) {
    s.visited.push_back({frame.type, offset, frame.size});
  });
  return s;
}

// Checks the accounting promised by scan.h.
void ExpectConsistent(const Scanned& s, size_t size) {
  const ScanResult& r = s.result;
  EXPECT_EQ(r.records, s.visited.size());
  if (r.bad_segment_magic) {
    EXPECT_TRUE(s.visited.empty());
    return;
  }
  EXPECT_EQ(r.good_end + r.torn_tail_bytes, size);
  if (size < kSegmentHeaderSize) return;
  uint64_t pos = kSegmentHeaderSize;
  size_t d = 0;
  for (const Visited& v : s.visited) {
    while (d < r.damage.size() && r.damage[d].offset == pos) pos += r.damage[d++].size;
    EXPECT_EQ(v.offset, pos);
    pos += v.size;
  }
  EXPECT_EQ(d, r.damage.size());
  EXPECT_EQ(pos, r.good_end);
}

// Three records of different types, and where each starts.
struct Sample {
  std::string bytes;
  std::vector<size_t> starts;
};
Sample ThreeRecords() {
  Sample s;
  s.bytes = kHeader;
  const std::string body = "Subject: x\r\n\r\nhello\r\n";
  MessageHeader h;
  h.id = "ID1";
  h.sender = "a@b";
  h.recipients = {"c@d"};
  h.body_size = body.size();
  const std::vector<std::string> records = {
      EncodeFragmentPrefix("ID1", 0, "", kKey), EncodeMessagePrefix(h, body, kKey) + body,
      EncodeRecipientState("ID1", 0, {RecipientState::kDeferred, 1, 2, 3, "451 later"}, kKey)};
  for (const std::string& r : records) {
    s.starts.push_back(s.bytes.size());
    s.bytes += r;
  }
  return s;
}

TEST(QueueScanTest, WholeSegment) {
  const Sample sample = ThreeRecords();
  const Scanned s = Scan(sample.bytes);
  EXPECT_FALSE(s.result.bad_segment_magic);
  ASSERT_EQ(s.result.records, 3u);
  EXPECT_EQ(s.visited[0].type, RecordType::kFragment);
  EXPECT_EQ(s.visited[1].type, RecordType::kMessage);
  EXPECT_EQ(s.visited[2].type, RecordType::kRecipientState);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(s.visited[i].offset, sample.starts[i]);
  EXPECT_EQ(s.result.good_end, sample.bytes.size());
  EXPECT_EQ(s.result.torn_tail_bytes, 0u);
  EXPECT_TRUE(s.result.damage.empty());
  EXPECT_TRUE(s.result.torn_tail_what.empty());
  ExpectConsistent(s, sample.bytes.size());
}

TEST(QueueScanTest, HeaderOnly) {
  const Scanned s = Scan(kHeader);
  EXPECT_FALSE(s.result.bad_segment_magic);
  EXPECT_EQ(s.result.key, kKey);
  EXPECT_EQ(s.result.records, 0u);
  EXPECT_EQ(s.result.good_end, kSegmentHeaderSize);
  EXPECT_EQ(s.result.torn_tail_bytes, 0u);
}

TEST(QueueScanTest, SegmentHeaderCutShortIsATornTail) {
  for (size_t cut = 0; cut < kSegmentHeaderSize; ++cut) {
    const Scanned s = Scan(std::string_view(kHeader).substr(0, cut));
    EXPECT_FALSE(s.result.bad_segment_magic) << cut;
    EXPECT_EQ(s.result.good_end, 0u);
    EXPECT_EQ(s.result.torn_tail_bytes, cut);
    EXPECT_EQ(s.result.torn_tail_what, cut == 0 ? "" : "segment header cut short");
    ExpectConsistent(s, cut);
  }
}

TEST(QueueScanTest, BadSegmentMagic) {
  std::string bytes = ThreeRecords().bytes;
  bytes[7] = '1';  // "RMXQLOG1", the format before segment keys
  const Scanned s = Scan(bytes);
  EXPECT_TRUE(s.result.bad_segment_magic);
  EXPECT_EQ(s.result.records, 0u);
  EXPECT_EQ(s.result.good_end, 0u);
  EXPECT_EQ(s.result.torn_tail_bytes, 0u);
  EXPECT_TRUE(Scan("RMY").result.bad_segment_magic);
  EXPECT_TRUE(Scan(std::string(4096, '\0')).result.bad_segment_magic);
}

// Cut the segment at every byte: the whole records before the cut are read, the rest is a torn
// tail, and nothing is reported as damage in the middle. This covers cuts inside the header and
// inside the payload of the last record.
TEST(QueueScanTest, TornTailAtEveryCutPoint) {
  const Sample sample = ThreeRecords();
  for (size_t cut = kSegmentHeaderSize; cut <= sample.bytes.size(); ++cut) {
    const Scanned s = Scan(std::string_view(sample.bytes).substr(0, cut));
    size_t whole = 0;
    size_t end = kSegmentHeaderSize;
    for (size_t i = 0; i < 3; ++i) {
      const size_t next = i + 1 < 3 ? sample.starts[i + 1] : sample.bytes.size();
      if (next <= cut) {
        whole = i + 1;
        end = next;
      }
    }
    EXPECT_EQ(s.result.records, whole) << cut;
    EXPECT_EQ(s.result.good_end, end) << cut;
    EXPECT_EQ(s.result.torn_tail_bytes, cut - end) << cut;
    EXPECT_TRUE(s.result.damage.empty()) << cut;
    if (cut > end) {
      EXPECT_EQ(s.result.torn_tail_what, "incomplete record") << cut;
    }
    ExpectConsistent(s, cut);
  }
}

TEST(QueueScanTest, ZerosAppendedArePreallocatedTail) {
  const Sample sample = ThreeRecords();
  const Scanned s = Scan(sample.bytes + std::string(65536, '\0'));
  EXPECT_EQ(s.result.records, 3u);
  EXPECT_EQ(s.result.good_end, sample.bytes.size());
  EXPECT_EQ(s.result.torn_tail_bytes, 65536u);
  EXPECT_EQ(s.result.torn_tail_what, "zeros");
  EXPECT_TRUE(s.result.damage.empty());
}

// A record written into a preallocated file and torn there: its length runs into zeros.
TEST(QueueScanTest, TornRecordFollowedByZeros) {
  const Sample sample = ThreeRecords();
  for (size_t cut = sample.starts[2] + 1; cut < sample.bytes.size(); ++cut) {
    std::string bytes = sample.bytes.substr(0, cut) + std::string(4096, '\0');
    const Scanned s = Scan(bytes);
    EXPECT_EQ(s.result.records, 2u) << cut;
    EXPECT_EQ(s.result.good_end, sample.starts[2]) << cut;
    EXPECT_EQ(s.result.torn_tail_bytes, bytes.size() - sample.starts[2]) << cut;
    EXPECT_TRUE(s.result.damage.empty()) << cut;
    ExpectConsistent(s, bytes.size());
  }
}

TEST(QueueScanTest, BrokenCrcInTheMiddleIsSkippedAndReported) {
  Sample sample = ThreeRecords();
  sample.bytes[sample.starts[1] + 20] ^= 0x40;  // inside the message's payload
  const Scanned s = Scan(sample.bytes);
  ASSERT_EQ(s.result.records, 2u);
  EXPECT_EQ(s.visited[0].type, RecordType::kFragment);
  EXPECT_EQ(s.visited[1].type, RecordType::kRecipientState);
  EXPECT_EQ(s.visited[1].offset, sample.starts[2]);
  ASSERT_EQ(s.result.damage.size(), 1u);
  EXPECT_EQ(s.result.damage[0].offset, sample.starts[1]);
  EXPECT_EQ(s.result.damage[0].size, sample.starts[2] - sample.starts[1]);
  EXPECT_EQ(s.result.damage[0].what, "crc mismatch");
  EXPECT_EQ(s.result.good_end, sample.bytes.size());
  EXPECT_EQ(s.result.torn_tail_bytes, 0u);
  ExpectConsistent(s, sample.bytes.size());
}

TEST(QueueScanTest, GarbageBetweenRecords) {
  const Sample sample = ThreeRecords();
  const std::string garbage = "this is not a record at all";
  std::string bytes =
      sample.bytes.substr(0, sample.starts[1]) + garbage + sample.bytes.substr(sample.starts[1]);
  const Scanned s = Scan(bytes);
  EXPECT_EQ(s.result.records, 3u);
  ASSERT_EQ(s.result.damage.size(), 1u);
  EXPECT_EQ(s.result.damage[0].offset, sample.starts[1]);
  EXPECT_EQ(s.result.damage[0].size, garbage.size());
  EXPECT_EQ(s.result.damage[0].what, "bad magic");
  ExpectConsistent(s, bytes.size());
}

TEST(QueueScanTest, DamagedLengthResynchronises) {
  for (uint32_t length : {kMaxRecordPayload + 1, uint32_t{1} << 20, uint32_t{0}}) {
    Sample sample = ThreeRecords();
    for (int i = 0; i < 4; ++i) {
      sample.bytes[sample.starts[0] + 8 + i] = static_cast<char>((length >> (8 * i)) & 0xff);
    }
    const Scanned s = Scan(sample.bytes);
    EXPECT_EQ(s.result.records, 2u) << length;
    ASSERT_EQ(s.result.damage.size(), 1u) << length;
    EXPECT_EQ(s.result.damage[0].offset, sample.starts[0]);
    EXPECT_EQ(s.result.damage[0].size, sample.starts[1] - sample.starts[0]);
    ExpectConsistent(s, sample.bytes.size());
  }
}

TEST(QueueScanTest, DamagedLastRecordIsATornTail) {
  Sample sample = ThreeRecords();
  sample.bytes.back() ^= 1;
  const Scanned s = Scan(sample.bytes);
  EXPECT_EQ(s.result.records, 2u);
  EXPECT_TRUE(s.result.damage.empty());
  EXPECT_EQ(s.result.good_end, sample.starts[2]);
  EXPECT_EQ(s.result.torn_tail_what, "crc mismatch");
}

TEST(QueueScanTest, EveryRecordDamagedLeavesOnlyATail) {
  Sample sample = ThreeRecords();
  for (size_t start : sample.starts) sample.bytes[start + 5] ^= 1;  // each CRC
  const Scanned s = Scan(sample.bytes);
  EXPECT_EQ(s.result.records, 0u);
  EXPECT_EQ(s.result.good_end, kSegmentHeaderSize);
  EXPECT_EQ(s.result.torn_tail_bytes, sample.bytes.size() - kSegmentHeaderSize);
}

TEST(QueueScanTest, RecordsInsideAGoodRecordAreNotVisited) {
  // A fragment whose bytes hold a whole record: a good scan steps over it.
  const std::string inner = EncodeMessageOp("OTHER", MessageOp::kDelete, 1, kKey);
  std::string bytes = kHeader + EncodeFragmentPrefix("ID", 0, inner, kKey) + inner;
  const Scanned s = Scan(bytes);
  ASSERT_EQ(s.result.records, 1u);
  EXPECT_EQ(s.visited[0].type, RecordType::kFragment);
}

TEST(QueueScanTest, RecordsAreCheckedAgainstTheKeyInTheSegmentHeader) {
  const Sample sample = ThreeRecords();
  // The same records under another key's header: none of them is a record of that segment.
  for (const SegmentKey other : {SegmentKey{kKey.record_magic, kKey.crc_mask ^ 1},
                                 SegmentKey{kKey.record_magic ^ 0x100, kKey.crc_mask}}) {
    const Scanned s = Scan(EncodeSegmentHeader(other) + sample.bytes.substr(kSegmentHeaderSize));
    EXPECT_EQ(s.result.key, other);
    EXPECT_EQ(s.result.records, 0u);
    EXPECT_EQ(s.result.good_end, kSegmentHeaderSize);
    ExpectConsistent(s, sample.bytes.size());
  }
}

// A sender embeds a well-framed record in a message body (here a delete of another message) and
// hopes for a crash that tears the record holding it: resynchronisation after the torn record
// looks through the body. Framed for any key but the segment's, the embedded record is never
// found; the control shows that the same body WOULD be found if the sender knew the key.
struct Forgery {
  std::string segment;  // header, a good message, then the holding message torn after `inner`
  size_t holder = 0;    // where the holding record starts
};
Forgery TornHolder(const SegmentKey& inner_key) {
  const std::string inner = EncodeMessageOp("VICTIM", MessageOp::kDelete, 1, inner_key);
  const std::string body = "Subject: hi\r\n\r\n" + inner + "more body after it\r\n";
  MessageHeader h;
  h.id = "HOLDER";
  h.sender = "mallory@example.org";
  h.recipients = {"victim@example.net"};
  h.body_size = body.size();
  MessageHeader good = h;
  good.id = "GOOD";
  Forgery f;
  f.segment = kHeader + EncodeMessagePrefix(good, body, kKey) + body;
  f.holder = f.segment.size();
  f.segment += EncodeMessagePrefix(h, body, kKey) + body;
  // Torn in the body, after the embedded record and before the end of the holder.
  f.segment.resize(f.segment.size() - 5);
  return f;
}

TEST(QueueScanTest, ARecordEmbeddedInABodyIsNotFoundAfterItsHolderIsTorn) {
  // What a sender could write: the old constant framing ("RMXQ", plain CRC), a guessed key, and
  // the unkeyed encoding.
  for (const SegmentKey guess :
       {SegmentKey{0x51584d52, 0}, SegmentKey{0x01020304, 0x05060708}, kUnkeyed}) {
    const Forgery f = TornHolder(guess);
    const Scanned s = Scan(f.segment);
    ASSERT_EQ(s.result.records, 1u);  // only GOOD
    EXPECT_EQ(s.visited[0].type, RecordType::kMessage);
    EXPECT_TRUE(s.result.damage.empty());
    EXPECT_EQ(s.result.good_end, f.holder);
    EXPECT_EQ(s.result.torn_tail_what, "incomplete record");
    ExpectConsistent(s, f.segment.size());
  }
}

TEST(QueueScanTest, ControlARecordEmbeddedWithTheSegmentKeyWouldBeFound) {
  const Forgery f = TornHolder(kKey);
  const Scanned s = Scan(f.segment);
  // The forged delete is "found" behind the torn holder: this is what the key prevents.
  ASSERT_EQ(s.result.records, 2u);
  EXPECT_EQ(s.visited[1].type, RecordType::kMessageOp);
  ASSERT_EQ(s.result.damage.size(), 1u);
  EXPECT_EQ(s.result.damage[0].offset, f.holder);
  ExpectConsistent(s, f.segment.size());
}

}  // namespace
}  // namespace ringmx::core::queue
