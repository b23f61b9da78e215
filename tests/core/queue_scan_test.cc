#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "core/queue/log_format.h"
#include "core/queue/scan.h"

namespace ringmx::core::queue {
namespace {

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
  if (size < kSegmentMagic.size()) return;
  uint64_t pos = kSegmentMagic.size();
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
  s.bytes = std::string(kSegmentMagic);
  const std::string body = "Subject: x\r\n\r\nhello\r\n";
  MessageHeader h;
  h.id = "ID1";
  h.sender = "a@b";
  h.recipients = {"c@d"};
  h.body_size = body.size();
  const std::vector<std::string> records = {
      EncodeFragmentPrefix("ID1", 0, ""), EncodeMessagePrefix(h, body) + body,
      EncodeRecipientState("ID1", 0, {RecipientState::kDeferred, 1, 2, 3, "451 later"})};
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

TEST(QueueScanTest, MagicOnly) {
  const Scanned s = Scan(kSegmentMagic);
  EXPECT_FALSE(s.result.bad_segment_magic);
  EXPECT_EQ(s.result.records, 0u);
  EXPECT_EQ(s.result.good_end, kSegmentMagic.size());
  EXPECT_EQ(s.result.torn_tail_bytes, 0u);
}

TEST(QueueScanTest, SegmentMagicCutShortIsATornTail) {
  for (size_t cut = 0; cut < kSegmentMagic.size(); ++cut) {
    const Scanned s = Scan(kSegmentMagic.substr(0, cut));
    EXPECT_FALSE(s.result.bad_segment_magic) << cut;
    EXPECT_EQ(s.result.good_end, 0u);
    EXPECT_EQ(s.result.torn_tail_bytes, cut);
    ExpectConsistent(s, cut);
  }
}

TEST(QueueScanTest, BadSegmentMagic) {
  std::string bytes = ThreeRecords().bytes;
  bytes[7] = '2';  // "RMXQLOG2"
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
  for (size_t cut = kSegmentMagic.size(); cut <= sample.bytes.size(); ++cut) {
    const Scanned s = Scan(std::string_view(sample.bytes).substr(0, cut));
    size_t whole = 0;
    size_t end = kSegmentMagic.size();
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
  EXPECT_EQ(s.result.good_end, kSegmentMagic.size());
  EXPECT_EQ(s.result.torn_tail_bytes, sample.bytes.size() - kSegmentMagic.size());
}

TEST(QueueScanTest, RecordsInsideAGoodRecordAreNotVisited) {
  // A fragment whose bytes hold a whole record: a good scan steps over it.
  const std::string inner = EncodeMessageOp("OTHER", MessageOp::kDelete, 1);
  std::string bytes = std::string(kSegmentMagic) + EncodeFragmentPrefix("ID", 0, inner) + inner;
  const Scanned s = Scan(bytes);
  ASSERT_EQ(s.result.records, 1u);
  EXPECT_EQ(s.visited[0].type, RecordType::kFragment);
}

}  // namespace
}  // namespace ringmx::core::queue
