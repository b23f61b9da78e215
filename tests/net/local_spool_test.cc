#include "net/internal/local_spool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "net/reactor.h"
#include "net/spool.h"
#include "tests/net/spool_test_util.h"

namespace ringmx::net {
namespace {

using internal::LocalSpool;
using internal::LocalSpoolOptions;
using testing::Drive;
using ::testing::ElementsAre;
using testing::FileMode;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ListDir;
using testing::ReadFile;
using testing::RecordingWaiter;
using testing::TempDir;
using testing::WriteFile;

core::SpoolRecord Record(const std::string& id, std::string body = "Subject: t\r\n\r\nhello\r\n") {
  core::SpoolRecord record;
  record.id = id;
  record.trace_headers = absl::StrCat("Received: from client by mx for <", id, ">\r\n");
  record.body = std::move(body);
  record.envelope_json = absl::StrCat("{\"id\":\"", id, "\",\"rcpt\":[\"a@example.test\"]}\n");
  return record;
}

std::string Id(int i) { return absl::StrFormat("Q%04d", i); }

class LocalSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    UseSpoolAt(dir_.path() + "/spool");
    absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(256);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(reactor).value();
  }

  void UseSpoolAt(const std::string& path) {
    path_ = path;
    absl::Status prepared = PrepareSpoolDirectory(path_);
    ASSERT_TRUE(prepared.ok()) << prepared;
  }

  std::unique_ptr<LocalSpool> MakeSpool(LocalSpoolOptions options = {}) {
    absl::StatusOr<std::unique_ptr<LocalSpool>> spool =
        LocalSpool::Create(path_, *reactor_, options);
    EXPECT_TRUE(spool.ok()) << spool.status();
    return spool.ok() ? std::move(spool).value() : nullptr;
  }

  // Submits one record per waiter (ids Q0000, Q0001, ...) in one batch and flushes.
  void SubmitBatch(LocalSpool& spool, std::vector<RecordingWaiter>& waiters, int first_id = 0) {
    for (size_t i = 0; i < waiters.size(); ++i) {
      spool.Submit(Record(Id(first_id + static_cast<int>(i))), &waiters[i]);
    }
    spool.Flush();
  }

  bool DriveUntilAnswered(LocalSpool& spool) {
    return Drive(*reactor_, spool, [&] { return spool.pending() == 0; });
  }

  std::string NewDir() const { return path_ + "/new"; }
  std::string TmpDir() const { return path_ + "/tmp"; }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Reactor> reactor_;
};

TEST_F(LocalSpoolTest, StoresOneRecordByteExact) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  const core::SpoolRecord record = Record("0123456789ABCDEFGHIJ");
  RecordingWaiter waiter;

  spool->Submit(record, &waiter);
  EXPECT_EQ(waiter.calls, 0);
  EXPECT_EQ(spool->pending(), 1u);
  spool->Flush();
  EXPECT_EQ(waiter.calls, 0) << "OnStored() must come from a completion, not from Flush()";
  EXPECT_TRUE(spool->commit_in_flight());

  ASSERT_TRUE(DriveUntilAnswered(*spool));
  EXPECT_EQ(waiter.calls, 1);
  EXPECT_TRUE(waiter.result.ok()) << waiter.result;
  EXPECT_EQ(spool->commits(), 1u);
  EXPECT_FALSE(spool->commit_in_flight());

  EXPECT_THAT(ListDir(NewDir()),
              ElementsAre("0123456789ABCDEFGHIJ.eml", "0123456789ABCDEFGHIJ.json"));
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
  EXPECT_EQ(ReadFile(NewDir() + "/0123456789ABCDEFGHIJ.eml"), record.trace_headers + record.body);
  EXPECT_EQ(ReadFile(NewDir() + "/0123456789ABCDEFGHIJ.json"), record.envelope_json);
  EXPECT_EQ(FileMode(NewDir() + "/0123456789ABCDEFGHIJ.eml"), 0640 & ~testing::CurrentUmask());
}

TEST_F(LocalSpoolTest, StoresLargeAndEmptyPartsByteExact) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  core::SpoolRecord big;
  big.id = "BIG";
  big.trace_headers = "Received: x\r\n";
  big.body.resize(6 * 1024 * 1024 + 7);
  for (size_t i = 0; i < big.body.size(); ++i) big.body[i] = static_cast<char>('a' + i % 23);
  big.envelope_json = "{}";
  core::SpoolRecord empty;
  empty.id = "EMPTY";  // no headers, no body, no envelope: two empty files
  RecordingWaiter big_waiter, empty_waiter;

  spool->Submit(big, &big_waiter);
  spool->Submit(empty, &empty_waiter);
  spool->Flush();
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_TRUE(big_waiter.result.ok()) << big_waiter.result;
  EXPECT_TRUE(empty_waiter.result.ok()) << empty_waiter.result;
  EXPECT_EQ(ReadFile(NewDir() + "/BIG.eml"), big.trace_headers + big.body);
  EXPECT_EQ(ReadFile(NewDir() + "/BIG.json"), "{}");
  EXPECT_EQ(ReadFile(NewDir() + "/EMPTY.eml"), "");
  EXPECT_EQ(ReadFile(NewDir() + "/EMPTY.json"), "");
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
}

TEST_F(LocalSpoolTest, CommitsOneBatchAsOneGroup) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  std::vector<RecordingWaiter> waiters(100);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  for (size_t i = 0; i < waiters.size(); ++i) {
    EXPECT_EQ(waiters[i].calls, 1) << i;
    EXPECT_TRUE(waiters[i].result.ok()) << i << ": " << waiters[i].result;
  }
  EXPECT_EQ(spool->commits(), 1u) << "100 records submitted in one batch share one commit";
  EXPECT_EQ(ListDir(NewDir()).size(), 200u);
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
  EXPECT_EQ(ReadFile(NewDir() + "/Q0042.json"), Record("Q0042").envelope_json);
}

TEST_F(LocalSpoolTest, RecordsSubmittedDuringACommitGoToTheNextGroup) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  std::vector<RecordingWaiter> first(1), later(2);
  std::vector<uint64_t> commit_seen(3, 0);
  first[0].on_stored = [&](const absl::Status&) { commit_seen[0] = spool->commits(); };
  later[0].on_stored = [&](const absl::Status&) { commit_seen[1] = spool->commits(); };
  later[1].on_stored = [&](const absl::Status&) { commit_seen[2] = spool->commits(); };

  SubmitBatch(*spool, first);
  ASSERT_TRUE(spool->commit_in_flight());
  SubmitBatch(*spool, later, /*first_id=*/1);  // its Flush() cannot start a second commit
  EXPECT_EQ(spool->pending(), 3u);

  ASSERT_TRUE(DriveUntilAnswered(*spool));
  EXPECT_TRUE(first[0].result.ok()) << first[0].result;
  EXPECT_TRUE(later[0].result.ok()) << later[0].result;
  EXPECT_TRUE(later[1].result.ok()) << later[1].result;
  EXPECT_THAT(commit_seen, ElementsAre(1u, 2u, 2u));
  EXPECT_EQ(spool->commits(), 2u);
  EXPECT_EQ(ListDir(NewDir()).size(), 6u);
}

TEST_F(LocalSpoolTest, BoundsTheGroupSizeAndAnswersInOrder) {
  std::unique_ptr<LocalSpool> spool = MakeSpool({.max_group_records = 8});
  ASSERT_NE(spool, nullptr);
  std::vector<RecordingWaiter> waiters(20);
  std::vector<int> order;
  for (size_t i = 0; i < waiters.size(); ++i) {
    waiters[i].on_stored = [&order, i](const absl::Status&) {
      order.push_back(static_cast<int>(i));
    };
  }
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_EQ(spool->commits(), 3u);  // 8 + 8 + 4
  ASSERT_EQ(order.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(ListDir(NewDir()).size(), 40u);
}

TEST_F(LocalSpoolTest, WorksWithATinySubmissionQueue) {
  // Four SQ entries: the linked chains must still never be split across two submissions.
  absl::StatusOr<std::unique_ptr<Reactor>> tiny = Reactor::Create(4);
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  reactor_ = std::move(tiny).value();
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  std::vector<RecordingWaiter> waiters(40);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  for (size_t i = 0; i < waiters.size(); ++i) {
    EXPECT_TRUE(waiters[i].result.ok()) << i << ": " << waiters[i].result;
  }
  EXPECT_EQ(ListDir(NewDir()).size(), 80u);
  EXPECT_EQ(ReadFile(NewDir() + "/Q0039.eml"),
            Record("Q0039").trace_headers + Record("Q0039").body);
}

TEST_F(LocalSpoolTest, RefusesUnsafeIdsWithoutTouchingOtherRecords) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  RecordingWaiter good, dots, slash, empty;
  spool->Submit(Record("GOOD"), &good);
  spool->Submit(Record(".."), &dots);
  spool->Submit(Record("../../escape"), &slash);
  spool->Submit(Record(""), &empty);
  spool->Flush();
  EXPECT_EQ(dots.calls, 0);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_TRUE(good.result.ok()) << good.result;
  EXPECT_EQ(dots.result.code(), absl::StatusCode::kInvalidArgument) << dots.result;
  EXPECT_EQ(slash.result.code(), absl::StatusCode::kInvalidArgument) << slash.result;
  EXPECT_EQ(empty.result.code(), absl::StatusCode::kInvalidArgument) << empty.result;
  EXPECT_THAT(ListDir(NewDir()), ElementsAre("GOOD.eml", "GOOD.json"));
  EXPECT_THAT(ListDir(dir_.path()), ElementsAre("spool"));
}

TEST_F(LocalSpoolTest, FileAlreadyInTmpFailsOnlyThatRecordAndIsNotRemoved) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  WriteFile(TmpDir() + "/Q0001.eml", "not ours");
  std::vector<RecordingWaiter> waiters(3);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_TRUE(waiters[0].result.ok()) << waiters[0].result;
  EXPECT_EQ(waiters[1].result.code(), absl::StatusCode::kAlreadyExists) << waiters[1].result;
  EXPECT_THAT(waiters[1].result.message(), HasSubstr(TmpDir() + "/Q0001.eml"));
  EXPECT_TRUE(waiters[2].result.ok()) << waiters[2].result;
  EXPECT_THAT(ListDir(NewDir()), ElementsAre("Q0000.eml", "Q0000.json", "Q0002.eml", "Q0002.json"));
  // Its own .json was created and removed; the foreign .eml is untouched.
  EXPECT_THAT(ListDir(TmpDir()), ElementsAre("Q0001.eml"));
  EXPECT_EQ(ReadFile(TmpDir() + "/Q0001.eml"), "not ours");
}

TEST_F(LocalSpoolTest, JsonRenameFailureTakesTheRenamedEmlBackOutOfNew) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  // RENAME_NOREPLACE: the .eml lands in new/, the .json rename fails with EEXIST.
  WriteFile(NewDir() + "/Q0001.json", "someone else's envelope");
  std::vector<RecordingWaiter> waiters(3);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_TRUE(waiters[0].result.ok()) << waiters[0].result;
  EXPECT_EQ(waiters[1].result.code(), absl::StatusCode::kAlreadyExists) << waiters[1].result;
  EXPECT_THAT(waiters[1].result.message(), HasSubstr("rename spool file"));
  EXPECT_TRUE(waiters[2].result.ok()) << waiters[2].result;
  EXPECT_THAT(ListDir(NewDir()),
              ElementsAre("Q0000.eml", "Q0000.json", "Q0001.json", "Q0002.eml", "Q0002.json"));
  EXPECT_EQ(ReadFile(NewDir() + "/Q0001.json"), "someone else's envelope");
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
}

TEST_F(LocalSpoolTest, EmlRenameFailureLeavesNothingOfTheRecord) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  WriteFile(NewDir() + "/Q0000.eml", "older message");
  std::vector<RecordingWaiter> waiters(2);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));

  EXPECT_EQ(waiters[0].result.code(), absl::StatusCode::kAlreadyExists) << waiters[0].result;
  EXPECT_THAT(waiters[0].result.message(), HasSubstr(".eml"));
  EXPECT_TRUE(waiters[1].result.ok()) << waiters[1].result;
  EXPECT_THAT(ListDir(NewDir()), ElementsAre("Q0000.eml", "Q0001.eml", "Q0001.json"));
  EXPECT_EQ(ReadFile(NewDir() + "/Q0000.eml"), "older message");
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
}

TEST_F(LocalSpoolTest, NewReplacedByAFileFailsTheGroupThenRecovers) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  ASSERT_EQ(rmdir(NewDir().c_str()), 0) << strerror(errno);
  WriteFile(NewDir(), "a file where new/ belongs");

  std::vector<RecordingWaiter> broken(3);
  SubmitBatch(*spool, broken);
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  for (const RecordingWaiter& waiter : broken) {
    EXPECT_EQ(waiter.calls, 1);
    EXPECT_FALSE(waiter.result.ok());
    EXPECT_THAT(waiter.result.message(), HasSubstr(NewDir()));
    EXPECT_THAT(waiter.result.message(), HasSubstr("Not a directory"));
  }
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
  EXPECT_EQ(ReadFile(NewDir()), "a file where new/ belongs");

  // The operator repairs the directory; the same spool object picks it up.
  ASSERT_EQ(unlink(NewDir().c_str()), 0);
  ASSERT_EQ(mkdir(NewDir().c_str(), 0750), 0);
  std::vector<RecordingWaiter> repaired(2);
  SubmitBatch(*spool, repaired, /*first_id=*/10);
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  for (const RecordingWaiter& waiter : repaired) EXPECT_TRUE(waiter.result.ok()) << waiter.result;
  EXPECT_THAT(ListDir(NewDir()), ElementsAre("Q0010.eml", "Q0010.json", "Q0011.eml", "Q0011.json"));
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());
}

TEST_F(LocalSpoolTest, FailedDirectorySyncFailsAndRemovesTheWholeGroup) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  spool->InjectDirSyncErrorForTest(EIO);
  std::vector<RecordingWaiter> waiters(5);
  SubmitBatch(*spool, waiters);
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  for (const RecordingWaiter& waiter : waiters) {
    EXPECT_FALSE(waiter.result.ok());
    EXPECT_THAT(waiter.result.message(), HasSubstr("fsync spool directory"));
  }
  EXPECT_THAT(ListDir(NewDir()), IsEmpty());
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());

  std::vector<RecordingWaiter> next(2);
  SubmitBatch(*spool, next, /*first_id=*/5);
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  for (const RecordingWaiter& waiter : next) EXPECT_TRUE(waiter.result.ok()) << waiter.result;
  EXPECT_EQ(ListDir(NewDir()).size(), 4u);
}

// Unmounts on scope exit (before the TempDir that holds the mount point is removed).
class ScopedTmpfs {
 public:
  ScopedTmpfs(const std::string& mount_point, const std::string& options) : path_(mount_point) {
    if (mkdir(path_.c_str(), 0750) != 0) {
      error_ = errno;
      return;
    }
    if (mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = errno;
      return;
    }
    mounted_ = true;
  }
  ~ScopedTmpfs() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  int error() const { return error_; }

 private:
  std::string path_;
  bool mounted_ = false;
  int error_ = 0;
};

TEST_F(LocalSpoolTest, DiskFullIsResourceExhaustedAndLeavesNothing) {
  ScopedTmpfs fs(dir_.path() + "/fs", "size=512k,mode=0755");
  if (!fs.mounted()) {
    GTEST_SKIP() << "cannot mount a small tmpfs for a real ENOSPC here: " << strerror(fs.error());
  }
  UseSpoolAt(dir_.path() + "/fs/spool");
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);

  RecordingWaiter too_big;
  spool->Submit(Record("BIG", std::string(2 * 1024 * 1024, 'x')), &too_big);
  spool->Flush();
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  EXPECT_EQ(too_big.result.code(), absl::StatusCode::kResourceExhausted) << too_big.result;
  EXPECT_THAT(too_big.result.message(), HasSubstr("write spool file"));
  EXPECT_THAT(ListDir(NewDir()), IsEmpty());
  EXPECT_THAT(ListDir(TmpDir()), IsEmpty());

  // The space came back with the failed record's files: the next message is stored.
  RecordingWaiter small;
  spool->Submit(Record("SMALL"), &small);
  spool->Flush();
  ASSERT_TRUE(DriveUntilAnswered(*spool));
  EXPECT_TRUE(small.result.ok()) << small.result;
  EXPECT_THAT(ListDir(NewDir()), ElementsAre("SMALL.eml", "SMALL.json"));
}

TEST_F(LocalSpoolTest, WaiterMaySubmitAndFlushFromOnStored) {
  std::unique_ptr<LocalSpool> spool = MakeSpool();
  ASSERT_NE(spool, nullptr);
  RecordingWaiter first, second;
  first.on_stored = [&](const absl::Status&) {
    spool->Submit(Record("SECOND"), &second);
    spool->Flush();
  };
  spool->Submit(Record("FIRST"), &first);
  spool->Flush();
  ASSERT_TRUE(Drive(*reactor_, *spool, [&] { return second.calls > 0; }));
  EXPECT_TRUE(first.result.ok()) << first.result;
  EXPECT_TRUE(second.result.ok()) << second.result;
  EXPECT_EQ(spool->commits(), 2u);
  EXPECT_EQ(spool->pending(), 0u);
}

TEST(CreateLocalSpoolTest, NamesAnUnpreparedDirectory) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(64);
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  const std::string path = dir.path() + "/never-prepared";
  absl::StatusOr<std::unique_ptr<Spool>> spool = CreateLocalSpool(path, **reactor);
  ASSERT_FALSE(spool.ok());
  EXPECT_EQ(spool.status().code(), absl::StatusCode::kNotFound) << spool.status();
  EXPECT_THAT(spool.status().message(), HasSubstr(path));

  ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
  ASSERT_EQ(mkdir((path + "/new").c_str(), 0750), 0);
  spool = CreateLocalSpool(path, **reactor);
  ASSERT_FALSE(spool.ok());
  EXPECT_THAT(spool.status().message(), HasSubstr(path + "/tmp"));
}

// User + system CPU of the whole process, io-wq workers included.
double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Not a test: a measurement run by hand (--gtest_also_run_disabled_tests
// --gtest_filter='*Throughput*'). Commits back-to-back groups of 1, 32 and 256 records of about
// 4 KiB on the file system holding $RINGMX_SPOOL_BENCH_DIR (default /tmp) and prints records/s.
TEST(LocalSpoolThroughput, DISABLED_GroupSizes) {
  const char* base = getenv("RINGMX_SPOOL_BENCH_DIR");
  TempDir dir(base != nullptr ? base : "/tmp");
  const std::string& root = dir.path();
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(4096);
  ASSERT_TRUE(reactor.ok());
  // $RINGMX_SPOOL_BENCH_WORKERS: cap on the ring's bound io-wq workers (where file I/O runs);
  // the kernel default is min(SQ entries, 4 * CPUs).
  if (const char* workers = getenv("RINGMX_SPOOL_BENCH_WORKERS")) {
    unsigned values[2] = {static_cast<unsigned>(atoi(workers)), 0};
    ASSERT_EQ(io_uring_register_iowq_max_workers((*reactor)->ring(), values), 0);
    printf("bound io-wq workers: %s (was %u)\n", workers, values[0]);
  }
  const std::string body = std::string(4000, 'b') + "\r\n";
  for (size_t group : {1, 32, 256}) {
    const std::string path = absl::StrCat(root, "/g", group);
    ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
    absl::StatusOr<std::unique_ptr<LocalSpool>> spool = LocalSpool::Create(path, **reactor);
    ASSERT_TRUE(spool.ok());
    std::vector<RecordingWaiter> waiters(group);
    size_t stored = 0;
    int next_id = 0;
    const double cpu_start = ProcessCpuSeconds();
    const absl::Time start = absl::Now();
    absl::Duration elapsed;
    while ((elapsed = absl::Now() - start) < absl::Seconds(3)) {
      for (RecordingWaiter& waiter : waiters) {
        (*spool)->Submit(Record(absl::StrCat("B", next_id++), body), &waiter);
      }
      (*spool)->Flush();
      ASSERT_TRUE(Drive(**reactor, **spool, [&] { return (*spool)->pending() == 0; }));
      for (const RecordingWaiter& waiter : waiters) ASSERT_TRUE(waiter.result.ok());
      stored += group;
    }
    const double cpu = ProcessCpuSeconds() - cpu_start;
    printf(
        "group=%3zu records=%7zu commits=%6llu  %8.0f records/s  %6.2f ms/commit  "
        "%5.1f us CPU/record (process incl. io-wq)\n",
        group, stored, static_cast<unsigned long long>((*spool)->commits()),
        stored / absl::ToDoubleSeconds(elapsed),
        absl::ToDoubleMilliseconds(elapsed) / static_cast<double>((*spool)->commits()),
        cpu * 1e6 / static_cast<double>(stored));
  }
}

}  // namespace
}  // namespace ringmx::net
