#include "net/queue_log.h"

#include <errno.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/clock.h"
#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/queue/store_files.h"
#include "core/spool_record.h"
#include "net/queue_adopt.h"
#include "net/queue_compact.h"
#include "net/reactor.h"
#include "tests/net/spool_test_util.h"
#include "tests/testing/in_blocks.h"

namespace ringmx::net {
namespace {

namespace q = core::queue;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::RecordingWaiter;
using testing::TempDir;

core::SpoolRecord MakeRecord(int n, size_t body_bytes = 100) {
  core::SpoolRecord record;
  record.id = absl::StrCat("ID", 100000 + n);
  record.trace_headers = absl::StrCat("Received: from test ", n, "\r\n");
  std::string body(body_bytes, static_cast<char>('a' + n % 26));
  if (body_bytes >= 2) body.replace(body_bytes - 2, 2, "\r\n");
  record.body = std::move(body);
  record.envelope_json = absl::StrCat("{\"n\":", n, "}");
  record.sender = absl::StrCat("sender", n, "@example.test");
  record.recipients = {absl::StrCat("a", n, "@example.test"), "b@example.test"};
  record.received_unix_us = 1700000000000000 + n;
  return record;
}

// Records what the spool tells it about one fragment.
class RecordingFragmentWaiter final : public FragmentWaiter {
 public:
  void OnFragmentStored(const absl::Status& result) override {
    ++calls;
    this->result = result;
  }
  int calls = 0;
  absl::Status result;
};

// A fragment's bytes: `n` bytes that differ from fragment to fragment and along the way.
std::string FragmentBytes(uint32_t index, size_t n) {
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>('A' + (i * 7 + index * 13) % 26);
  if (n >= 2) bytes.replace(n - 2, 2, "\r\n");
  return bytes;
}

// The parts of a queued message that a restart must reproduce.
std::string Describe(const q::Index& index) {
  std::string out;
  for (const q::QueuedMessage* m : index.List()) {
    absl::StrAppend(&out, m->id, " ", m->sender, " ", m->received_us, " ", m->body_size,
                    " held=", m->held, " at ", m->record.segment, ":", m->record.offset, "+",
                    m->record.size, " [");
    for (const q::QueuedRecipient& r : m->recipients) {
      absl::StrAppend(&out, r.address, "=", std::string(q::RecipientStateName(r.status.state)),
                      " ");
    }
    absl::StrAppend(&out, "]\n");
  }
  return out;
}

class QueueLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(256);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(reactor).value();
    dir_ = tmp_.path() + "/queue/0";
    ASSERT_EQ(mkdir((tmp_.path() + "/queue").c_str(), 0750), 0);
  }

  std::unique_ptr<QueueLog> Open(uint64_t segment_size = uint64_t{64} << 20,
                                 const std::string& dir = "") {
    absl::StatusOr<std::unique_ptr<QueueLog>> log =
        QueueLog::Open(dir.empty() ? dir_ : dir, *reactor_, core::RealClock::Get(),
                       {.segment_size = segment_size, .name = "test"});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(log).value() : nullptr;
  }

  bool DriveUntil(QueueLog& log, const std::function<bool()>& done) {
    return testing::Drive(*reactor_, log, done);
  }
  bool DriveIdle(QueueLog& log) {
    return DriveUntil(log, [&] { return log.pending() == 0; });
  }

  // Hands over one fragment, flushes and waits for its answer.
  absl::Status StoreFragment(QueueLog& log, const std::string& id, uint32_t index,
                             std::string bytes) {
    RecordingFragmentWaiter waiter;
    log.SubmitFragment(id, index, std::move(bytes), &waiter);
    EXPECT_EQ(waiter.calls, 0);  // never from inside the call
    log.Flush();
    EXPECT_TRUE(DriveUntil(log, [&] { return waiter.calls == 1; }));
    EXPECT_TRUE(DriveIdle(log));
    EXPECT_EQ(waiter.calls, 1);
    return waiter.result;
  }

  // Submits `record`, flushes and waits for its answer.
  absl::Status StoreRecord(QueueLog& log, core::SpoolRecord record) {
    RecordingWaiter waiter;
    log.Submit(std::move(record), &waiter);
    log.Flush();
    EXPECT_TRUE(DriveIdle(log));
    EXPECT_EQ(waiter.calls, 1);
    return waiter.result;
  }

  // Submits `n` records (ids from `first`), flushes once and waits for every waiter.
  void StoreBatch(QueueLog& log, int first, int n, size_t body_bytes = 100) {
    std::vector<RecordingWaiter> waiters(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) log.Submit(MakeRecord(first + i, body_bytes), &waiters[i]);
    log.Flush();
    ASSERT_TRUE(DriveIdle(log));
    for (const RecordingWaiter& w : waiters) {
      EXPECT_EQ(w.calls, 1);
      EXPECT_TRUE(w.result.ok()) << w.result;
    }
  }

  // Applies `op` to each of `ids` in one group and waits for every answer.
  void ApplyAll(QueueLog& log, const std::vector<std::string>& ids, q::MessageOp op) {
    int answered = 0;
    for (const std::string& id : ids) {
      log.Apply(id, op, [&](absl::Status s) {
        EXPECT_TRUE(s.ok()) << s;
        ++answered;
      });
    }
    log.Flush();
    ASSERT_TRUE(DriveIdle(log));
    EXPECT_EQ(answered, static_cast<int>(ids.size()));
  }

  // Stores `n` messages from `first` in batches of 50 and deletes them again.
  void StoreAndDelete(QueueLog& log, int first, int n, size_t body_bytes = 500) {
    for (int b = first; b < first + n; b += 50) {
      StoreBatch(log, b, 50, body_bytes);
      std::vector<std::string> ids;
      for (int i = b; i < b + 50; ++i) ids.push_back(MakeRecord(i).id);
      ApplyAll(log, ids, q::MessageOp::kDelete);
    }
  }

  std::vector<uint64_t> Segments() {
    absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
    EXPECT_TRUE(segments.ok()) << segments.status();
    return segments.ok() ? *segments : std::vector<uint64_t>{};
  }

  TempDir tmp_;
  std::unique_ptr<Reactor> reactor_;
  std::string dir_;
};

TEST_F(QueueLogTest, StoresOneMessageThatReplayFindsByteExact) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  const core::SpoolRecord record = MakeRecord(1, 5000);
  RecordingWaiter waiter;
  log->Submit(record, &waiter);
  EXPECT_EQ(waiter.calls, 0);
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  ASSERT_EQ(waiter.calls, 1);
  ASSERT_TRUE(waiter.result.ok()) << waiter.result;
  ASSERT_NE(log->index().Find(record.id), nullptr);
  EXPECT_EQ(log->counters().groups, 1u);
  EXPECT_EQ(log->counters().records, 1u);

  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->problems.empty());
  const q::QueuedMessage* m = fresh.Find(record.id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->sender, record.sender);
  EXPECT_EQ(m->received_us, record.received_unix_us);
  EXPECT_EQ(m->body_size, record.body.size());
  ASSERT_EQ(m->recipients.size(), 2u);
  EXPECT_EQ(m->recipients[0].address, record.recipients[0]);
  EXPECT_EQ(m->recipients[1].status.state, q::RecipientState::kPending);
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, record.trace_headers + record.body.Flatten());
  absl::StatusOr<std::string> json = q::ReadEnvelopeJson(dir_, *m);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, record.envelope_json);
  EXPECT_EQ(Describe(fresh), Describe(log->index()));
}

TEST_F(QueueLogTest, ABurstIsCommittedInFewGroups) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  constexpr int kMessages = 200;
  std::vector<RecordingWaiter> waiters(kMessages);
  // One message starts a group; the rest arrive while it is in flight and share the next one.
  log->Submit(MakeRecord(0), &waiters[0]);
  log->Flush();
  EXPECT_TRUE(log->group_in_flight());
  for (int i = 1; i < kMessages; ++i) {
    log->Submit(MakeRecord(i), &waiters[i]);
    log->Flush();  // a group is in flight: nothing starts
  }
  ASSERT_TRUE(DriveIdle(*log));
  for (const RecordingWaiter& w : waiters) EXPECT_TRUE(w.calls == 1 && w.result.ok()) << w.result;
  EXPECT_EQ(log->counters().groups, 2u);
  EXPECT_EQ(log->counters().records, uint64_t{kMessages});
  EXPECT_EQ(log->counters().last_group_records, uint64_t{kMessages - 1});
  EXPECT_EQ(log->index().size(), size_t{kMessages});
}

TEST_F(QueueLogTest, AnswersWaitersInSubmissionOrder) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  std::vector<int> order;
  std::vector<RecordingWaiter> waiters(20);
  for (int i = 0; i < 20; ++i) {
    waiters[i].on_stored = [&order, i](const absl::Status&) { order.push_back(i); };
    log->Submit(MakeRecord(i, 10 + 997 * i), &waiters[i]);
    if (i % 7 == 0) log->Flush();
  }
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[i], i);
}

TEST_F(QueueLogTest, RestartRebuildsTheSameIndexAndStartsANewSegment) {
  std::string before;
  uint64_t active = 0;
  {
    std::unique_ptr<QueueLog> log = Open();
    ASSERT_NE(log, nullptr);
    StoreBatch(*log, 0, 10);
    StoreBatch(*log, 10, 5, 70000);
    bool held = false;
    log->Apply("ID100003", q::MessageOp::kHold, [&](absl::Status s) { held = s.ok(); });
    ASSERT_TRUE(DriveIdle(*log));
    EXPECT_TRUE(held);
    ASSERT_TRUE(log->index().Find("ID100003")->held);
    before = Describe(log->index());
    active = log->active_segment();
  }
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(Describe(log->index()), before);
  EXPECT_EQ(log->index().size(), 15u);
  EXPECT_EQ(log->active_segment(), active + 1);
  absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_THAT(*segments, ElementsAre(active, active + 1));
  // The new segment takes new messages.
  StoreBatch(*log, 100, 1);
  EXPECT_EQ(log->index().Find("ID100100")->record.segment, active + 1);
}

TEST_F(QueueLogTest, RotatesAndDeletesSegmentsOnceEverythingInThemIsGone) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/2048);
  ASSERT_NE(log, nullptr);
  const uint64_t first = log->active_segment();
  for (int i = 0; i < 6; ++i) StoreBatch(*log, i * 3, 3, 1024);
  EXPECT_GE(log->active_segment(), first + 5);  // every group passes 2048 bytes
  absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_GT(segments->size(), 3u);
  EXPECT_EQ(log->index().size(), 18u);

  std::vector<std::string> ids;
  for (const q::QueuedMessage* m : log->index().List()) ids.push_back(m->id);
  int answered = 0;
  for (const std::string& id : ids) {
    log->Apply(id, q::MessageOp::kDelete, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      ++answered;
    });
  }
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  EXPECT_EQ(answered, 18);
  EXPECT_EQ(log->index().size(), 0u);
  segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_THAT(*segments, ElementsAre(log->active_segment()));
  EXPECT_GT(log->counters().segments_deleted, 0u);

  // Nothing comes back at restart.
  log.reset();
  log = Open(2048);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().size(), 0u);
}

TEST_F(QueueLogTest, EverySegmentHasItsOwnRandomKey) {
  {
    std::unique_ptr<QueueLog> log = Open(/*segment_size=*/2048);
    ASSERT_NE(log, nullptr);
    for (int i = 0; i < 4; ++i) StoreBatch(*log, i * 3, 3, 1024);
  }
  std::unique_ptr<QueueLog> log = Open(2048);  // and one more at restart
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().size(), 12u);
  absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  ASSERT_GE(segments->size(), 5u);
  std::vector<q::SegmentKey> keys;
  for (uint64_t seq : *segments) {
    const std::optional<q::SegmentKey> key =
        q::ParseSegmentHeader(testing::ReadFile(dir_ + "/" + q::SegmentFileName(seq)));
    ASSERT_TRUE(key.has_value()) << seq;
    EXPECT_TRUE(q::IsUsableSegmentKey(*key));
    for (const q::SegmentKey& other : keys) EXPECT_FALSE(other == *key) << seq;
    keys.push_back(*key);
  }
}

TEST_F(QueueLogTest, ApplyToAnUnknownIdIsNotFoundAtOnce) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  absl::Status result = absl::UnknownError("not called");
  log->Apply("NOSUCHID", q::MessageOp::kDelete, [&](absl::Status s) { result = s; });
  EXPECT_EQ(result.code(), absl::StatusCode::kNotFound) << result;
  EXPECT_EQ(log->pending(), 0u);
}

TEST_F(QueueLogTest, RefusesAMessageWithoutRecipientsFromACompletion) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  core::SpoolRecord record = MakeRecord(1);
  record.recipients.clear();
  RecordingWaiter waiter;
  log->Submit(record, &waiter);
  EXPECT_EQ(waiter.calls, 0);
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  ASSERT_EQ(waiter.calls, 1);
  EXPECT_EQ(waiter.result.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(waiter.result.message(), HasSubstr("no recipients"));
  StoreBatch(*log, 2, 1);  // the log goes on
  EXPECT_EQ(log->index().size(), 1u);
}

TEST_F(QueueLogTest, FlushDeferredCountsOnlyDeferredRecipients) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  StoreBatch(*log, 0, 3);
  EXPECT_EQ(log->FlushDeferred(1), 0u);  // everything is pending, nothing deferred
}

TEST_F(QueueLogTest, AFailedSyncFailsTheGroupAndTheNextGroupUsesANewSegment) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  StoreBatch(*log, 0, 2);
  const uint64_t before = log->active_segment();

  for (int err : {EIO, ENOSPC}) {
    log->InjectSyncErrorForTest(err);
    std::vector<RecordingWaiter> waiters(3);
    for (int i = 0; i < 3; ++i) log->Submit(MakeRecord(10 * err + i), &waiters[i]);
    log->Flush();
    ASSERT_TRUE(DriveIdle(*log));
    for (const RecordingWaiter& w : waiters) {
      ASSERT_EQ(w.calls, 1);
      EXPECT_EQ(w.result.code(),
                err == ENOSPC ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kInternal)
          << w.result;
      EXPECT_THAT(w.result.message(), HasSubstr("fdatasync"));
    }
    EXPECT_EQ(log->index().Find(MakeRecord(10 * err).id), nullptr);
  }
  EXPECT_EQ(log->counters().failed_groups, 2u);

  StoreBatch(*log, 500, 1);
  const uint64_t after = log->index().Find("ID100500")->record.segment;
  EXPECT_GT(after, before);
  EXPECT_EQ(after, log->active_segment());

  // The refused messages reached the disk (the sync really ran), but their tombstones keep them
  // from coming back.
  q::Index fresh;
  ASSERT_TRUE(q::ReplayDirectory(dir_, fresh).ok());
  EXPECT_EQ(fresh.size(), 3u);
  EXPECT_EQ(Describe(fresh), Describe(log->index()));
}

TEST_F(QueueLogTest, LargeBodiesAreStoredAcrossManyIovecs) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  // More pieces than one WRITEV takes (IOV_MAX): the group is split into a linked chain.
  StoreBatch(*log, 0, 1500, 300);
  StoreBatch(*log, 2000, 2, 3 << 20);
  q::Index fresh;
  ASSERT_TRUE(q::ReplayDirectory(dir_, fresh).ok());
  EXPECT_EQ(fresh.size(), 1502u);
  const q::QueuedMessage* m = fresh.Find("ID102001");
  ASSERT_NE(m, nullptr);
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const core::SpoolRecord record = MakeRecord(2001, 3 << 20);
  EXPECT_TRUE(*bytes == record.trace_headers + record.body.Flatten());
}

TEST_F(QueueLogTest, AdoptsTheQueueOfARetiredShard) {
  std::string expected;
  {
    std::unique_ptr<QueueLog> zero = Open();
    ASSERT_NE(zero, nullptr);
    StoreBatch(*zero, 0, 3);
    std::unique_ptr<QueueLog> one = Open(64 << 20, tmp_.path() + "/queue/1");
    ASSERT_NE(one, nullptr);
    StoreBatch(*one, 10, 4, 2000);
    bool held = false;
    one->Apply("ID100011", q::MessageOp::kHold, [&](absl::Status s) { held = s.ok(); });
    ASSERT_TRUE(DriveIdle(*one));
    ASSERT_TRUE(held);
    expected = Describe(zero->index()) + Describe(one->index());
  }
  absl::Status adopted = AdoptRetiredShardQueues(tmp_.path(), 1);
  ASSERT_TRUE(adopted.ok()) << adopted;
  EXPECT_THAT(testing::ListDir(tmp_.path() + "/queue"), ElementsAre("0"));

  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().size(), 7u);
  const q::QueuedMessage* m = log->index().Find("ID100011");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->held);
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const core::SpoolRecord record = MakeRecord(11, 2000);
  EXPECT_EQ(*bytes, record.trace_headers + record.body.Flatten());
  // Adoption again is a no-op.
  log.reset();
  ASSERT_TRUE(AdoptRetiredShardQueues(tmp_.path(), 1).ok());
}

// ---- Streaming ----------------------------------------------------------------------------------

TEST_F(QueueLogTest, StreamedFragmentsAndTheFinalSubmitGiveTheExactBytes) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  core::SpoolRecord record = MakeRecord(1, 777);  // the tail
  std::string body;
  const size_t sizes[3] = {256 << 10, 1, 100000};
  for (uint32_t i = 0; i < 3; ++i) {
    std::string bytes = FragmentBytes(i, sizes[i]);
    body += bytes;
    ASSERT_TRUE(StoreFragment(*log, record.id, i, std::move(bytes)).ok());
    EXPECT_EQ(log->open_streams(), 1u);
    EXPECT_EQ(log->index().Find(record.id), nullptr);  // not a message before its kMessage
  }
  body += record.body.Flatten();
  record.fragments = 3;
  const std::string eml = record.trace_headers + body;
  ASSERT_TRUE(StoreRecord(*log, record).ok());
  EXPECT_EQ(log->open_streams(), 0u);
  const q::QueuedMessage* m = log->index().Find(record.id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->fragments.size(), 3u);
  EXPECT_EQ(m->body_size, body.size());
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == eml);
  const std::string before = Describe(log->index());

  log.reset();
  log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(Describe(log->index()), before);
  m = log->index().Find(record.id);
  ASSERT_NE(m, nullptr);
  bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == eml);
}

using ::ringmx::testing::InBlocks;

// The records EncodeMessage() makes, written out: prefix, then the tail's parts.
std::string Written(const queue_files::EncodedRecords& records) {
  std::string out;
  for (const queue_files::EncodedRecord& r : records) {
    out += r.prefix;
    for (std::string_view part : r.tail) out += part;
  }
  return out;
}

TEST(EncodeMessageTest, ABodyInBlocksIsEncodedByteForByteAsInOnePiece) {
  std::mt19937 rng(7);
  // Small bodies, and one larger than a record (a fragment record then spans blocks).
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{5000}, size_t{300000}, queue_files::kFragmentBytes + 12345}) {
    std::string body = FragmentBytes(3, size);
    const core::BodyBlocks blocks = InBlocks(body, rng, size > 1000000 ? 3000000 : 20000);
    const core::BodyBlocks::Views views = blocks.views();
    q::MessageHeader header;
    header.id = "ID1";
    header.sender = "s@example.test";
    header.recipients = {"r@example.test"};
    header.envelope_json = "{}";
    header.trace_headers = "Received: x\r\n";
    q::MessageHeader contiguous_header = header;
    queue_files::EncodedRecords contiguous, chained;
    const std::string_view whole = body;
    queue_files::EncodeMessage(contiguous_header, std::span<const std::string_view>(&whole, 1),
                               contiguous, q::kUnkeyed, 2, 777);
    queue_files::EncodeMessage(header, views, chained, q::kUnkeyed, 2, 777);
    ASSERT_EQ(chained.size(), contiguous.size()) << size;
    for (size_t i = 0; i < chained.size(); ++i) {
      EXPECT_EQ(chained[i].prefix, contiguous[i].prefix) << size << " record " << i;
      EXPECT_EQ(chained[i].type, contiguous[i].type);
      EXPECT_EQ(chained[i].fragment_index, contiguous[i].fragment_index);
    }
    EXPECT_TRUE(Written(chained) == Written(contiguous)) << size;
    EXPECT_EQ(header.fragments, contiguous_header.fragments);
    EXPECT_EQ(header.body_size, size + 777);
  }
}

TEST_F(QueueLogTest, FragmentsAndBodiesInBlocksAreStoredByteExactAndReplay) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  std::mt19937 rng(11);
  core::SpoolRecord record = MakeRecord(5);
  const std::string tail = FragmentBytes(9, 40000);
  record.body = InBlocks(tail, rng, 5000);
  std::string body;
  for (uint32_t i = 0; i < 3; ++i) {
    const std::string bytes = FragmentBytes(i, 262144 - i);
    body += bytes;
    RecordingFragmentWaiter waiter;
    log->SubmitFragment(record.id, i, InBlocks(bytes, rng, 70000), &waiter);
    log->Flush();
    ASSERT_TRUE(DriveUntil(*log, [&] { return waiter.calls == 1; }));
    ASSERT_TRUE(waiter.result.ok()) << waiter.result;
  }
  body += tail;
  record.fragments = 3;
  const std::string eml = record.trace_headers + body;
  // A second message, not streamed, whose body in blocks is larger than one record.
  core::SpoolRecord big = MakeRecord(6);
  const std::string big_body = FragmentBytes(4, queue_files::kFragmentBytes + 4097);
  big.body = InBlocks(big_body, rng, 3 << 20);
  const std::string big_id = big.id;
  ASSERT_TRUE(StoreRecord(*log, std::move(record)).ok());
  ASSERT_TRUE(StoreRecord(*log, std::move(big)).ok());
  for (int pass = 0; pass < 2; ++pass) {  // as written, then after a restart (replay)
    const q::QueuedMessage* m = log->index().Find(MakeRecord(5).id);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->body_size, body.size());
    absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_TRUE(*bytes == eml);
    m = log->index().Find(big_id);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->fragments.size(), 1u);
    bytes = q::ReadMessageBytes(dir_, *m);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_TRUE(*bytes == MakeRecord(6).trace_headers + big_body);
    log.reset();
    log = Open();
    ASSERT_NE(log, nullptr);
  }
}

TEST_F(QueueLogTest, AbortedFragmentsLeaveNothingAndTheirSegmentIsDeleted) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/1024);
  ASSERT_NE(log, nullptr);
  const uint64_t first = log->active_segment();
  const std::string id = "STREAMED1";
  ASSERT_TRUE(StoreFragment(*log, id, 0, FragmentBytes(0, 3000)).ok());
  ASSERT_TRUE(StoreFragment(*log, id, 1, FragmentBytes(1, 3000)).ok());
  // Other traffic moves on to new segments; the stream keeps its first one.
  StoreBatch(*log, 0, 1, 2000);
  StoreBatch(*log, 1, 1, 2000);
  EXPECT_GT(log->active_segment(), first + 2);
  absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_EQ(segments->front(), first);
  EXPECT_EQ(log->index().OldestNeededSegment(log->active_segment()), first);

  log->Abort(id);
  EXPECT_EQ(log->open_streams(), 0u);
  log->Abort(id);  // a second time: nothing more
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  // Only the two messages are left; the segments that held the fragments alone are gone.
  EXPECT_EQ(log->index().size(), 2u);
  segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_GT(segments->front(), first + 1);
  // Delete the two messages too: everything but the active segment can go.
  for (const std::string& m : {MakeRecord(0).id, MakeRecord(1).id}) {
    log->Apply(m, q::MessageOp::kDelete, [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
  }
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_THAT(*segments, ElementsAre(log->active_segment()));

  // Replay finds nothing, and nothing incomplete.
  log.reset();
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(report->index_stats.incomplete, 0u);
}

TEST_F(QueueLogTest, AbortBeforeTheWriteDetachesTheWaiter) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  RecordingFragmentWaiter waiter;
  log->SubmitFragment("GONE1", 0, FragmentBytes(0, 5000), &waiter);
  log->Flush();  // the fragment is in flight
  log->Abort("GONE1");
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  EXPECT_EQ(waiter.calls, 0);  // the session may be gone: nobody is told
  EXPECT_EQ(log->open_streams(), 0u);
  log.reset();
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->index_stats.incomplete, 0u);
  EXPECT_EQ(report->index_stats.orphans, 0u);  // the kAbort found its fragment
}

TEST_F(QueueLogTest, AbortOfAnIdWithoutFragmentsWritesNothing) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  log->Abort("NEVERSTREAMED");
  EXPECT_EQ(log->pending(), 0u);
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  EXPECT_EQ(log->counters().records, 0u);
}

TEST_F(QueueLogTest, AFragmentCountMismatchIsRefused) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  core::SpoolRecord record = MakeRecord(5);
  ASSERT_TRUE(StoreFragment(*log, record.id, 0, FragmentBytes(0, 1000)).ok());
  ASSERT_TRUE(StoreFragment(*log, record.id, 1, FragmentBytes(1, 1000)).ok());
  record.fragments = 3;
  absl::Status status = StoreRecord(*log, record);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
  EXPECT_THAT(status.message(), HasSubstr("3 streamed fragments"));
  EXPECT_EQ(log->index().Find(record.id), nullptr);
  EXPECT_EQ(log->open_streams(), 0u);  // the store ended the stream (and wrote a kAbort)

  // Fragments claimed but none handed over; a message with fragments handed over but claiming
  // none; a fragment out of order.
  core::SpoolRecord claims = MakeRecord(6);
  claims.fragments = 1;
  EXPECT_EQ(StoreRecord(*log, claims).code(), absl::StatusCode::kInternal);
  core::SpoolRecord hides = MakeRecord(7);
  ASSERT_TRUE(StoreFragment(*log, hides.id, 0, FragmentBytes(0, 10)).ok());
  EXPECT_EQ(StoreRecord(*log, hides).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(StoreFragment(*log, "SKIPS", 1, "x").code(), absl::StatusCode::kInternal);
  log->Abort("SKIPS");

  StoreBatch(*log, 8, 1);  // the log goes on
  EXPECT_EQ(log->index().size(), 1u);
  log.reset();
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(fresh.size(), 1u);
  EXPECT_EQ(report->index_stats.incomplete, 0u);
}

TEST_F(QueueLogTest, AFailedFragmentFailsTheMessageAndAbortCleansUp) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  core::SpoolRecord record = MakeRecord(9);
  ASSERT_TRUE(StoreFragment(*log, record.id, 0, FragmentBytes(0, 1000)).ok());
  log->InjectSyncErrorForTest(ENOSPC);
  absl::Status status = StoreFragment(*log, record.id, 1, FragmentBytes(1, 1000));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  // The session answers 452 and aborts; had it submitted instead, the message is refused.
  record.fragments = 2;
  EXPECT_EQ(StoreRecord(*log, record).code(), absl::StatusCode::kInternal);
  log->Abort(record.id);  // after Submit(): nothing more (the store aborted it itself)
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  EXPECT_EQ(log->open_streams(), 0u);
  EXPECT_EQ(log->index().OldestNeededSegment(log->active_segment()), log->active_segment());
  log.reset();
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(report->index_stats.incomplete, 0u);
}

TEST_F(QueueLogTest, AFailedStreamedMessageAbortsItsFragments) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  core::SpoolRecord record = MakeRecord(10);
  ASSERT_TRUE(StoreFragment(*log, record.id, 0, FragmentBytes(0, 1000)).ok());
  record.fragments = 1;
  log->InjectSyncErrorForTest(EIO);
  EXPECT_EQ(StoreRecord(*log, record).code(), absl::StatusCode::kInternal);
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));  // the tombstone and the kAbort
  EXPECT_EQ(log->index().size(), 0u);
  EXPECT_EQ(log->index().OldestNeededSegment(log->active_segment()), log->active_segment());
  log.reset();
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(report->index_stats.incomplete, 0u);
}

// The process dies while a client is in the middle of DATA: fragments are on disk, no kMessage
// and no kAbort. Replay drops them (counted as incomplete) and their segment is deleted.
TEST_F(QueueLogTest, FragmentsWithoutTheirMessageAreDroppedAtRestart) {
  uint64_t first = 0;
  {
    std::unique_ptr<QueueLog> log = Open();
    ASSERT_NE(log, nullptr);
    first = log->active_segment();
    ASSERT_TRUE(StoreFragment(*log, "CRASHED1", 0, FragmentBytes(0, 4000)).ok());
    ASSERT_TRUE(StoreFragment(*log, "CRASHED1", 1, FragmentBytes(1, 4000)).ok());
    EXPECT_EQ(log->open_streams(), 1u);
    // Destroyed with the stream open, as a crash leaves it (nothing is in flight).
  }
  q::Index fresh;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, fresh);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_EQ(report->index_stats.incomplete, 1u);
  EXPECT_EQ(fresh.OldestNeededSegment(first + 1), first + 1);

  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().size(), 0u);
  absl::StatusOr<std::vector<uint64_t>> segments = q::ListSegments(dir_);
  ASSERT_TRUE(segments.ok());
  EXPECT_THAT(*segments, ElementsAre(log->active_segment()));
}

// ---- Compaction ----

TEST_F(QueueLogTest, CompactionMovesALongLivedMessageSoOnlyTheActiveSegmentRemains) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/4096);
  ASSERT_NE(log, nullptr);
  const core::SpoolRecord held = MakeRecord(0, 300);
  ASSERT_TRUE(StoreRecord(*log, held).ok());
  const uint64_t first = log->index().Find(held.id)->record.segment;
  ApplyAll(*log, {held.id}, q::MessageOp::kHold);
  StoreAndDelete(*log, 100, 2000);
  EXPECT_GT(log->active_segment(), first + 30);  // many segments were written

  // Only the active segment is left, and the held message lives there, intact.
  EXPECT_THAT(Segments(), ElementsAre(log->active_segment()));
  EXPECT_EQ(log->index().size(), 1u);
  const q::QueuedMessage* m = log->index().Find(held.id);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->held);
  EXPECT_EQ(m->record.segment, log->active_segment());
  EXPECT_EQ(m->first_segment, log->active_segment());
  EXPECT_EQ(m->recipients[0].status.state, q::RecipientState::kPending);
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, held.trace_headers + held.body.Flatten());
  EXPECT_LT(log->behind_active_bytes(), 1u);
  const std::string before = Describe(log->index());

  // The same after a restart.
  log.reset();
  log = Open(4096);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(Describe(log->index()), before);
  m = log->index().Find(held.id);
  ASSERT_NE(m, nullptr);
  bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, held.trace_headers + held.body.Flatten());
  absl::StatusOr<std::string> json = q::ReadEnvelopeJson(dir_, *m);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, held.envelope_json);
}

TEST_F(QueueLogTest, CompactionRelocatesABodyLargerThanOneRecordByteExact) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/1 << 20);
  ASSERT_NE(log, nullptr);
  // One group: a large message that goes away and one larger than a record that stays. The
  // segment then holds more than twice what is live.
  core::SpoolRecord dead = MakeRecord(1, size_t{50} << 20);
  core::SpoolRecord big = MakeRecord(2, queue_files::kFragmentBytes + (size_t{1} << 20) + 7);
  std::string big_body = big.body.Flatten();
  for (size_t i = 0; i < big_body.size(); i += 4093) big_body[i] = static_cast<char>('0' + i % 10);
  big.body = std::move(big_body);
  const std::string dead_id = dead.id;
  RecordingWaiter w1, w2;
  log->Submit(std::move(dead), &w1);
  log->Submit(big, &w2);
  log->Flush();
  ASSERT_TRUE(DriveIdle(*log));
  ASSERT_TRUE(w1.result.ok() && w2.result.ok());
  const uint64_t first = log->index().Find(big.id)->record.segment;
  EXPECT_EQ(log->index().Find(big.id)->fragments.size(), 1u);

  ApplyAll(*log, {dead_id}, q::MessageOp::kDelete);
  ASSERT_TRUE(DriveIdle(*log));
  const q::QueuedMessage* m = log->index().Find(big.id);
  ASSERT_NE(m, nullptr);
  EXPECT_GT(m->first_segment, first);
  EXPECT_EQ(m->fragments.size(), 1u);  // relocated as a fragment and the message record
  EXPECT_THAT(Segments(), ElementsAre(log->active_segment()));
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == big.trace_headers + big.body.Flatten());

  log.reset();
  log = Open(1 << 20);
  ASSERT_NE(log, nullptr);
  m = log->index().Find(big.id);
  ASSERT_NE(m, nullptr);
  bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == big.trace_headers + big.body.Flatten());
}

TEST_F(QueueLogTest, ACrashBetweenTheRelocationAndTheUnlinksReplaysToOneCopy) {
  std::string before;
  std::vector<uint64_t> segments;
  const core::SpoolRecord held = MakeRecord(0, 300);
  {
    std::unique_ptr<QueueLog> log = Open(/*segment_size=*/4096);
    ASSERT_NE(log, nullptr);
    log->KeepSegmentsForTest(true);  // the crash comes before any unlink
    ASSERT_TRUE(StoreRecord(*log, held).ok());
    ApplyAll(*log, {held.id}, q::MessageOp::kHold);
    StoreAndDelete(*log, 100, 200);
    const q::QueuedMessage* m = log->index().Find(held.id);
    ASSERT_NE(m, nullptr);
    EXPECT_GT(m->record.segment, 1u);  // relocated, maybe more than once
    before = Describe(log->index());
    segments = Segments();
    EXPECT_GE(segments.size(), 4u);
    EXPECT_EQ(segments.front(), 1u);  // the first copy is still there
  }
  // Replay sees every copy and keeps the latest.
  q::Index replayed;
  absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(dir_, replayed);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->problems.empty());
  EXPECT_EQ(replayed.size(), 1u);
  EXPECT_EQ(Describe(replayed), before);

  std::unique_ptr<QueueLog> log = Open(4096);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(Describe(log->index()), before);
  const q::QueuedMessage* m = log->index().Find(held.id);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->held);
  absl::StatusOr<std::string> bytes = q::ReadMessageBytes(dir_, *m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, held.trace_headers + held.body.Flatten());
  // Start-up removed what nothing needs: the segment of the latest copy and the new one remain.
  EXPECT_THAT(Segments(), ElementsAre(m->first_segment, log->active_segment()));
}

TEST(QueueCompactRuleTest, CompactsWhenTheCopyIsSmallOrMostOfTheLogIsDead) {
  EXPECT_TRUE(ShouldCompact(/*pinned=*/100, /*segment=*/4096, /*behind=*/4096, /*live=*/10000));
  EXPECT_FALSE(ShouldCompact(2000, 4096, 8192, 10000));
  EXPECT_TRUE(ShouldCompact(2000, 4096, 30000, 10000));
  EXPECT_FALSE(ShouldCompact(4096, 4096, 20000, 10000));
}

// ---- Recipient states ----

class QueueLogStateTest : public QueueLogTest {
 protected:
  // Writes one recipient state and waits for its answer.
  absl::Status Update(QueueLog& log, const std::string& id, uint32_t recipient,
                      q::RecipientStatus status) {
    std::optional<absl::Status> result;
    log.UpdateRecipient(id, recipient, std::move(status), [&](absl::Status s) { result = s; });
    log.Flush();
    EXPECT_TRUE(DriveIdle(log));
    EXPECT_TRUE(result.has_value());
    return result.value_or(absl::UnknownError("not answered"));
  }
};

constexpr int64_t kLater = 1800000000000000;

q::RecipientStatus Deferred(uint32_t attempts) {
  return {.state = q::RecipientState::kDeferred,
          .attempts = attempts,
          .next_attempt_us = kLater,
          .at_us = 1700000000000001,
          .reply = "451 4.7.1 try again later"};
}

TEST_F(QueueLogStateTest, UnknownIdsAndRecipientsAreNotFoundAtOnce) {
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  StoreBatch(*log, 0, 1);
  std::vector<absl::Status> results;
  const auto record = [&](absl::Status s) { results.push_back(s); };
  log->UpdateRecipient("NOSUCHID", 0, Deferred(1), record);
  log->UpdateRecipient(MakeRecord(0).id, 2, Deferred(1), record);  // it has two
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].code(), absl::StatusCode::kNotFound) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kNotFound) << results[1];
  EXPECT_EQ(log->pending(), 0u);
}

TEST_F(QueueLogStateTest, StatesGoFromPendingToDeferredToDeliveredAndSurviveARestart) {
  const std::string id = MakeRecord(0).id;
  {
    std::unique_ptr<QueueLog> log = Open();
    ASSERT_NE(log, nullptr);
    StoreBatch(*log, 0, 2);
    ASSERT_TRUE(Update(*log, id, 0, Deferred(1)).ok());
    ASSERT_TRUE(Update(*log, id, 0, Deferred(2)).ok());
    const q::QueuedMessage* m = log->index().Find(id);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->recipients[0].status.state, q::RecipientState::kDeferred);
    EXPECT_EQ(m->recipients[0].status.attempts, 2u);
    EXPECT_EQ(m->recipients[0].status.next_attempt_us, kLater);
    EXPECT_EQ(m->recipients[1].status.state, q::RecipientState::kPending);
    // `flush` makes it due now, in memory only.
    EXPECT_EQ(log->FlushDeferred(1000), 1u);
    EXPECT_EQ(log->index().Find(id)->recipients[0].status.next_attempt_us, 1000);
    EXPECT_EQ(log->FlushDeferred(1000), 0u);
  }
  std::unique_ptr<QueueLog> log = Open();
  ASSERT_NE(log, nullptr);
  const q::QueuedMessage* m = log->index().Find(id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->recipients[0].status.state, q::RecipientState::kDeferred);
  EXPECT_EQ(m->recipients[0].status.attempts, 2u);
  EXPECT_EQ(m->recipients[0].status.next_attempt_us, kLater);  // as recorded
  EXPECT_EQ(m->recipients[0].status.reply, "451 4.7.1 try again later");

  q::RecipientStatus delivered{.state = q::RecipientState::kDelivered,
                               .attempts = 3,
                               .at_us = 1700000000000002,
                               .reply = "250 2.0.0 ok"};
  ASSERT_TRUE(Update(*log, id, 0, delivered).ok());
  m = log->index().Find(id);
  ASSERT_NE(m, nullptr);  // recipient 1 is still pending
  EXPECT_EQ(m->recipients[0].status.state, q::RecipientState::kDelivered);
  EXPECT_EQ(m->recipients[0].status.reply, "250 2.0.0 ok");
  q::RecipientStatus failed{.state = q::RecipientState::kFailed, .reply = "550 5.1.1 no"};
  ASSERT_TRUE(Update(*log, id, 1, failed).ok());
  EXPECT_EQ(log->index().Find(id), nullptr);  // all final: gone
  EXPECT_EQ(log->index().size(), 1u);

  log.reset();
  log = Open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().Find(id), nullptr);
  EXPECT_NE(log->index().Find(MakeRecord(1).id), nullptr);
}

TEST_F(QueueLogStateTest, AMessageWhoseRecipientsAreAllFinalFreesItsSegmentAfterRotation) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/4096);
  ASSERT_NE(log, nullptr);
  StoreBatch(*log, 0, 1, 5000);
  const std::string id = MakeRecord(0).id;
  const uint64_t segment = log->index().Find(id)->record.segment;
  const q::RecipientStatus delivered{.state = q::RecipientState::kDelivered, .reply = "250 ok"};
  ASSERT_TRUE(Update(*log, id, 0, delivered).ok());
  ASSERT_TRUE(Update(*log, id, 1, delivered).ok());
  EXPECT_EQ(log->index().size(), 0u);
  StoreBatch(*log, 1, 1, 100);  // goes to a new segment: the old one passed 4096 bytes
  EXPECT_GT(log->active_segment(), segment);
  EXPECT_THAT(Segments(), ElementsAre(log->active_segment()));
}

TEST_F(QueueLogStateTest, CompactionCarriesTheRecipientsStates) {
  std::unique_ptr<QueueLog> log = Open(/*segment_size=*/4096);
  ASSERT_NE(log, nullptr);
  StoreBatch(*log, 0, 1, 300);
  const std::string id = MakeRecord(0).id;
  ASSERT_TRUE(Update(*log, id, 1, Deferred(4)).ok());
  ApplyAll(*log, {id}, q::MessageOp::kHold);
  StoreAndDelete(*log, 100, 500);
  EXPECT_THAT(Segments(), ElementsAre(log->active_segment()));
  const auto check = [&](const QueueLog& l) {
    const q::QueuedMessage* m = l.index().Find(id);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->record.segment, l.active_segment());
    EXPECT_TRUE(m->held);
    EXPECT_EQ(m->recipients[0].status.state, q::RecipientState::kPending);
    EXPECT_EQ(m->recipients[1].status.state, q::RecipientState::kDeferred);
    EXPECT_EQ(m->recipients[1].status.attempts, 4u);
    EXPECT_EQ(m->recipients[1].status.next_attempt_us, kLater);
    EXPECT_EQ(m->recipients[1].status.reply, "451 4.7.1 try again later");
  };
  check(*log);
  log.reset();
  log = Open(4096);
  ASSERT_NE(log, nullptr);
  const q::QueuedMessage* m = log->index().Find(id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->recipients[1].status.attempts, 4u);
  EXPECT_TRUE(m->held);
  // A state written after the relocation applies on top of it.
  ASSERT_TRUE(Update(*log, id, 1, Deferred(5)).ok());
  log.reset();
  log = Open(4096);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->index().Find(id)->recipients[1].status.attempts, 5u);
}

// QueueLogOptions::state_wait: state records alone wait for a group that a message starts; past
// the wait they get their own.
TEST_F(QueueLogStateTest, StateRecordsWaitForAMessageGroupUpToStateWait) {
  core::OffsetClock clock;
  absl::StatusOr<std::unique_ptr<QueueLog>> opened =
      QueueLog::Open(dir_, *reactor_, clock,
                     {.name = "test", .state_wait = absl::Hours(1)});  // never by time here
  ASSERT_TRUE(opened.ok()) << opened.status();
  QueueLog& log = **opened;
  StoreBatch(log, 0, 2);
  const uint64_t groups = log.counters().groups;
  std::optional<absl::Status> first;
  log.UpdateRecipient(MakeRecord(0).id, 0, Deferred(1), [&](absl::Status s) { first = s; });
  log.Flush();
  EXPECT_FALSE(log.group_in_flight()) << "a state record alone waits";
  EXPECT_EQ(log.counters().groups, groups);
  // A message arrives: one group carries both.
  StoreBatch(log, 2, 1);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->ok()) << *first;
  EXPECT_EQ(log.counters().groups, groups + 1);
  EXPECT_EQ(log.counters().last_group_records, 2u);
  // Alone again, and the wait passes: it gets its own group.
  std::optional<absl::Status> second;
  log.UpdateRecipient(MakeRecord(1).id, 0, Deferred(1), [&](absl::Status s) { second = s; });
  log.Flush();
  EXPECT_FALSE(log.group_in_flight());
  clock.AdvanceForTest(absl::Hours(2));
  log.Flush();
  EXPECT_TRUE(log.group_in_flight());
  ASSERT_TRUE(DriveIdle(log));
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->ok()) << *second;
  EXPECT_EQ(log.index().Find(MakeRecord(1).id)->recipients[0].status.attempts, 1u);
}

}  // namespace
}  // namespace ringmx::net
