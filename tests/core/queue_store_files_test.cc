#include <stdint.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/queue/store_files.h"

namespace ringmx::core::queue {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ringmx-queue-test.XXXXXX").string();
    const char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Two segment keys: each segment has its own, and a reader must use the right one for each.
constexpr SegmentKey kKey{0x4b455931, 0x01234567};   // "1YEK"
constexpr SegmentKey kKey2{0x4b455932, 0x89abcdef};  // "2YEK"

// A segment being built: records are appended and their offsets kept.
struct SegmentBuilder {
  explicit SegmentBuilder(const SegmentKey& key_in = kKey)
      : key(key_in), bytes(EncodeSegmentHeader(key_in)) {}
  SegmentKey key;
  std::string bytes;
  uint64_t Add(const std::string& record) {
    const uint64_t at = bytes.size();
    bytes += record;
    return at;
  }
};

const std::string kTrace = "Received: from client by ringmx; Mon, 1 Jan 2024 00:00:00 +0000\r\n";
const std::string kEnvelope = R"({"mail_from":"a@example.org","rcpt":["b@example.net"]})";

std::string MessageRecord(std::string_view id, uint32_t fragments, std::string_view tail,
                          uint64_t fragment_bytes, const SegmentKey& key = kKey) {
  MessageHeader h;
  h.id = id;
  h.received_us = 42;
  h.sender = "a@example.org";
  h.recipients = {"b@example.net", "c@example.net"};
  h.envelope_json = kEnvelope;
  h.trace_headers = kTrace;
  h.fragments = fragments;
  h.body_size = fragment_bytes + tail.size();
  return EncodeMessagePrefix(h, tail, key) + std::string(tail);
}

// Segment 1: two fragments of M1 and the whole of M2. Segment 2: the rest of M1 and a state.
struct TwoSegments {
  std::string f0 = std::string(100000, 'a') + "\r\n";
  std::string f1 = "second fragment\r\n.leading dot kept\r\n";
  std::string tail = "the end\r\n";
  std::string m2_body = "Subject: small\r\n\r\nsmall body\r\n";
  SegmentBuilder s1{kKey}, s2{kKey2};
  uint64_t m1_record_offset = 0;
  uint64_t m1_record_size = 0;

  explicit TwoSegments(const std::string& dir) {
    s1.Add(EncodeFragmentPrefix("M1", 0, f0, kKey) + f0);
    s1.Add(MessageRecord("M2", 0, m2_body, 0));
    s1.Add(EncodeFragmentPrefix("M1", 1, f1, kKey) + f1);
    const std::string m1 = MessageRecord("M1", 2, tail, f0.size() + f1.size(), kKey2);
    m1_record_size = m1.size();
    m1_record_offset = s2.Add(m1);
    s2.Add(EncodeRecipientState("M2", 0, {RecipientState::kDelivered, 1, 0, 7, "250 ok"}, kKey2));
    WriteFile(dir + "/" + SegmentFileName(1), s1.bytes);
    WriteFile(dir + "/" + SegmentFileName(2), s2.bytes);
  }
  std::string M1Eml() const { return kTrace + f0 + f1 + tail; }
};

TEST(QueueStoreFilesTest, SegmentFileNames) {
  EXPECT_EQ(SegmentFileName(1), "0000000000000001.seg");
  EXPECT_EQ(SegmentFileName(0xabcdef), "0000000000abcdef.seg");
  EXPECT_EQ(SegmentFileName(UINT64_MAX), "ffffffffffffffff.seg");
  for (uint64_t seq : {uint64_t{0}, uint64_t{1}, uint64_t{0x1234567890abcdef}, UINT64_MAX}) {
    EXPECT_EQ(ParseSegmentFileName(SegmentFileName(seq)), seq);
  }
  for (std::string_view bad :
       {"1.seg", "0000000000000001.seg.tmp", "000000000000000G.seg", "000000000000000A.seg",
        "0000000000000001.SEG", "", ".seg", "00000000000000001.seg", "0000000000000001"}) {
    EXPECT_EQ(ParseSegmentFileName(bad), std::nullopt) << bad;
  }
}

TEST(QueueStoreFilesTest, ListSegmentsSortedIgnoringOtherNames) {
  TempDir dir;
  for (uint64_t seq : {uint64_t{10}, uint64_t{2}, uint64_t{0x100}}) {
    WriteFile(dir.path() + "/" + SegmentFileName(seq), EncodeSegmentHeader(kKey));
  }
  WriteFile(dir.path() + "/notes.txt", "x");
  WriteFile(dir.path() + "/0000000000000003.seg.tmp", "x");
  auto list = ListSegments(dir.path());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, (std::vector<uint64_t>{2, 10, 0x100}));
  EXPECT_EQ(ListSegments(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(QueueStoreFilesTest, ReplayAndReadBack) {
  TempDir dir;
  TwoSegments segments(dir.path());
  Index index;
  auto report = ReplayDirectory(dir.path(), index);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->segments, 2u);
  EXPECT_EQ(report->bytes, segments.s1.bytes.size() + segments.s2.bytes.size());
  EXPECT_TRUE(report->problems.empty());
  EXPECT_EQ(report->last_segment, 2u);
  EXPECT_EQ(report->last_segment_good_end, segments.s2.bytes.size());
  EXPECT_EQ(report->index_stats.records, 5u);
  EXPECT_EQ(report->index_stats.messages, 2u);
  EXPECT_EQ(report->index_stats.incomplete, 0u);

  const QueuedMessage* m1 = index.Find("M1");
  ASSERT_NE(m1, nullptr);
  EXPECT_EQ(m1->record, (Location{2, segments.m1_record_offset, segments.m1_record_size}));
  ASSERT_EQ(m1->fragments.size(), 2u);
  EXPECT_EQ(m1->first_segment, 1u);
  auto eml = ReadMessageBytes(dir.path(), *m1);
  ASSERT_TRUE(eml.ok()) << eml.status();
  EXPECT_EQ(*eml, segments.M1Eml());
  auto json = ReadEnvelopeJson(dir.path(), *m1);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, kEnvelope);

  const QueuedMessage* m2 = index.Find("M2");
  ASSERT_NE(m2, nullptr);
  EXPECT_EQ(m2->recipients[0].status.state, RecipientState::kDelivered);
  auto eml2 = ReadMessageBytes(dir.path(), *m2);
  ASSERT_TRUE(eml2.ok()) << eml2.status();
  EXPECT_EQ(*eml2, kTrace + segments.m2_body);
  EXPECT_EQ(index.OldestNeededSegment(2), 1u);
}

TEST(QueueStoreFilesTest, EmptyDirectory) {
  TempDir dir;
  Index index;
  auto report = ReplayDirectory(dir.path(), index);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->segments, 0u);
  EXPECT_EQ(report->last_segment, 0u);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(ReplayDirectory(dir.path() + "/missing", index).status().code(),
            absl::StatusCode::kNotFound);
}

// A running server reclaims segments while a reader walks the directory: one listed and gone
// before it is opened (here a dangling link stands for it) is skipped, the rest is read.
TEST(QueueStoreFilesTest, SegmentGoneBetweenListingAndOpeningIsSkipped) {
  TempDir dir;
  TwoSegments segments(dir.path());
  fs::create_symlink(dir.path() + "/nowhere", dir.path() + "/" + SegmentFileName(3));
  Index index;
  auto report = ReplayDirectory(dir.path(), index);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->segments, 2u);
  EXPECT_EQ(report->last_segment, 2u);
  EXPECT_NE(index.Find("M1"), nullptr);
  EXPECT_NE(index.Find("M2"), nullptr);
}

TEST(QueueStoreFilesTest, DeletedSegmentIsNotFound) {
  TempDir dir;
  TwoSegments segments(dir.path());
  Index index;
  ASSERT_TRUE(ReplayDirectory(dir.path(), index).ok());
  const QueuedMessage* m1 = index.Find("M1");
  ASSERT_NE(m1, nullptr);
  fs::remove(dir.path() + "/" + SegmentFileName(1));
  auto eml = ReadMessageBytes(dir.path(), *m1);
  EXPECT_EQ(eml.status().code(), absl::StatusCode::kNotFound) << eml.status();
  EXPECT_NE(std::string(eml.status().message()).find(SegmentFileName(1)), std::string::npos);
  // The envelope lies in segment 2, still there.
  EXPECT_TRUE(ReadEnvelopeJson(dir.path(), *m1).ok());
  fs::remove(dir.path() + "/" + SegmentFileName(2));
  EXPECT_EQ(ReadEnvelopeJson(dir.path(), *m1).status().code(), absl::StatusCode::kNotFound);
}

TEST(QueueStoreFilesTest, DamageAfterReplayIsDataLossNamingFileAndOffset) {
  TempDir dir;
  TwoSegments segments(dir.path());
  Index index;
  ASSERT_TRUE(ReplayDirectory(dir.path(), index).ok());
  const QueuedMessage* m1 = index.Find("M1");
  ASSERT_NE(m1, nullptr);
  std::string s1 = segments.s1.bytes;
  s1[m1->fragments[1].offset + 30] ^= 1;
  WriteFile(dir.path() + "/" + SegmentFileName(1), s1);
  auto eml = ReadMessageBytes(dir.path(), *m1);
  EXPECT_EQ(eml.status().code(), absl::StatusCode::kDataLoss) << eml.status();
  EXPECT_NE(std::string(eml.status().message()).find(SegmentFileName(1)), std::string::npos);
  EXPECT_NE(
      std::string(eml.status().message()).find("offset " + std::to_string(m1->fragments[1].offset)),
      std::string::npos)
      << eml.status();
  // A segment cut short under a record.
  WriteFile(dir.path() + "/" + SegmentFileName(1), s1.substr(0, m1->fragments[1].offset + 5));
  EXPECT_EQ(ReadMessageBytes(dir.path(), *m1).status().code(), absl::StatusCode::kDataLoss);
}

TEST(QueueStoreFilesTest, RecordsAreReadWithTheKeyOfTheirOwnSegment) {
  TempDir dir;
  TwoSegments segments(dir.path());
  Index index;
  ASSERT_TRUE(ReplayDirectory(dir.path(), index).ok());
  const QueuedMessage* m1 = index.Find("M1");
  ASSERT_NE(m1, nullptr);
  // ReadStoredMessage: the record (segment 2, kKey2) parsed, the body from segment 1 (kKey).
  std::string record;
  MessageView view;
  std::string body;
  ASSERT_TRUE(ReadStoredMessage(dir.path(), *m1, record, view, &body).ok());
  EXPECT_EQ(view.header.id, "M1");
  EXPECT_EQ(view.header.trace_headers, kTrace);
  EXPECT_EQ(body, segments.f0 + segments.f1 + segments.tail);
  ASSERT_TRUE(ReadStoredMessage(dir.path(), *m1, record, view, nullptr).ok());
  // Segment 1's header with another CRC mask: its records no longer check.
  WriteFile(dir.path() + "/" + SegmentFileName(1),
            EncodeSegmentHeader({kKey.record_magic, kKey2.crc_mask}) +
                segments.s1.bytes.substr(kSegmentHeaderSize));
  auto eml = ReadMessageBytes(dir.path(), *m1);
  EXPECT_EQ(eml.status().code(), absl::StatusCode::kDataLoss) << eml.status();
  EXPECT_NE(std::string(eml.status().message()).find("crc mismatch"), std::string::npos)
      << eml.status();
  // A segment header cut short.
  WriteFile(dir.path() + "/" + SegmentFileName(1), segments.s1.bytes.substr(0, 12));
  eml = ReadMessageBytes(dir.path(), *m1);
  EXPECT_EQ(eml.status().code(), absl::StatusCode::kDataLoss) << eml.status();
  EXPECT_NE(std::string(eml.status().message()).find("segment header"), std::string::npos)
      << eml.status();
}

TEST(QueueStoreFilesTest, LocationOfAnotherRecordIsDataLoss) {
  TempDir dir;
  TwoSegments segments(dir.path());
  Index index;
  ASSERT_TRUE(ReplayDirectory(dir.path(), index).ok());
  QueuedMessage m1 = *index.Find("M1");
  QueuedMessage wrong = m1;
  wrong.record = index.Find("M2")->record;  // a message record with another id
  EXPECT_EQ(ReadMessageBytes(dir.path(), wrong).status().code(), absl::StatusCode::kDataLoss);
  wrong = m1;
  std::swap(wrong.fragments[0], wrong.fragments[1]);  // fragments out of order
  EXPECT_EQ(ReadMessageBytes(dir.path(), wrong).status().code(), absl::StatusCode::kDataLoss);
  wrong = m1;
  wrong.fragments.pop_back();  // the index lost one
  EXPECT_EQ(ReadMessageBytes(dir.path(), wrong).status().code(), absl::StatusCode::kDataLoss);
  wrong = m1;
  wrong.fragments[0] = wrong.record;  // a message record where a fragment should be
  EXPECT_EQ(ReadMessageBytes(dir.path(), wrong).status().code(), absl::StatusCode::kDataLoss);
}

TEST(QueueStoreFilesTest, ProblemsAreReportedAndTheRestIsKept) {
  TempDir dir;
  TwoSegments segments(dir.path());
  // Segment 1: M2's record damaged in the middle. Segment 2: a torn tail. Segment 3: bad magic.
  std::string s1 = segments.s1.bytes;
  const uint64_t m2_offset = kSegmentHeaderSize + kRecordHeaderSize + 4 + 2 + 4 + 100002;
  s1[m2_offset + 40] ^= 1;
  WriteFile(dir.path() + "/" + SegmentFileName(1), s1);
  const std::string torn = EncodeMessageOp("M1", MessageOp::kHold, 1, kKey2);
  WriteFile(dir.path() + "/" + SegmentFileName(2), segments.s2.bytes + torn.substr(0, 10));
  WriteFile(dir.path() + "/" + SegmentFileName(3), "NOTASEGMENT");
  Index index;
  auto report = ReplayDirectory(dir.path(), index);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->problems.size(), 3u);
  EXPECT_NE(report->problems[0].find(SegmentFileName(1) + " offset " + std::to_string(m2_offset) +
                                     ": crc mismatch"),
            std::string::npos)
      << report->problems[0];
  EXPECT_NE(
      report->problems[1].find(SegmentFileName(2) + " offset " +
                               std::to_string(segments.s2.bytes.size()) + ": torn tail of 10"),
      std::string::npos)
      << report->problems[1];
  EXPECT_NE(report->problems[2].find(SegmentFileName(3) + " offset 0: bad segment magic"),
            std::string::npos)
      << report->problems[2];
  EXPECT_EQ(report->last_segment, 3u);
  EXPECT_EQ(report->last_segment_good_end, 0u);
  // M1 is whole; M2's record is lost, so its later state record is an orphan.
  ASSERT_NE(index.Find("M1"), nullptr);
  EXPECT_EQ(index.Find("M2"), nullptr);
  EXPECT_EQ(report->index_stats.orphans, 1u);
  auto eml = ReadMessageBytes(dir.path(), *index.Find("M1"));
  ASSERT_TRUE(eml.ok()) << eml.status();
  EXPECT_EQ(*eml, segments.M1Eml());
}

TEST(QueueStoreFilesTest, ManyMessagesReplay) {
  TempDir dir;
  SegmentBuilder seg;
  const std::string body = "Subject: m\r\n\r\nbody\r\n";
  for (int i = 0; i < 5000; ++i) {
    const std::string id = "ID" + std::to_string(100000 + i);
    seg.Add(MessageRecord(id, 0, body, 0));
    if (i % 2 == 0) {
      seg.Add(EncodeRecipientState(id, 0, {RecipientState::kDelivered, 1, 0, 1, "250"}, kKey));
      seg.Add(EncodeRecipientState(id, 1, {RecipientState::kFailed, 1, 0, 1, "550"}, kKey));
    }
  }
  WriteFile(dir.path() + "/" + SegmentFileName(7), seg.bytes);
  Index index;
  auto report = ReplayDirectory(dir.path(), index);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(index.size(), 2500u);
  EXPECT_EQ(report->index_stats.records, 10000u);
  EXPECT_TRUE(report->problems.empty());
}

}  // namespace
}  // namespace ringmx::core::queue
