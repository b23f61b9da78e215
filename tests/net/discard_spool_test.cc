#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "net/reactor.h"
#include "net/spool.h"
#include "tests/net/spool_test_util.h"

namespace ringmx::net {
namespace {

using testing::Drive;
using ::testing::ElementsAre;
using testing::RecordingWaiter;

TEST(DiscardSpoolTest, AnswersOkFromACompletionInSubmissionOrder) {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(64);
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  std::unique_ptr<Spool> spool = CreateDiscardSpool(**reactor);
  std::vector<RecordingWaiter> waiters(3);
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) {
    waiters[i].on_stored = [&order, i](const absl::Status&) { order.push_back(i); };
    core::SpoolRecord record;
    record.id = "ID";
    record.body = "dropped";
    spool->Submit(std::move(record), &waiters[i]);
  }
  EXPECT_EQ(spool->pending(), 3u);
  spool->Flush();
  EXPECT_THAT(order, ::testing::IsEmpty()) << "never from Submit() or Flush()";

  ASSERT_TRUE(Drive(**reactor, *spool, [&] { return spool->pending() == 0; }));
  EXPECT_THAT(order, ElementsAre(0, 1, 2));
  for (const RecordingWaiter& waiter : waiters) {
    EXPECT_EQ(waiter.calls, 1);
    EXPECT_TRUE(waiter.result.ok()) << waiter.result;
  }
}

TEST(DiscardSpoolTest, RecordsSubmittedWhileABatchIsInFlightGoIntoTheNext) {
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(64);
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  std::unique_ptr<Spool> spool = CreateDiscardSpool(**reactor);
  RecordingWaiter first, second;
  spool->Submit(core::SpoolRecord{}, &first);
  spool->Flush();
  spool->Submit(core::SpoolRecord{}, &second);
  spool->Flush();  // a NOP is in flight: `second` waits for the next one
  ASSERT_TRUE(Drive(**reactor, *spool, [&] { return first.calls > 0; }));
  EXPECT_EQ(second.calls, 0);
  ASSERT_TRUE(Drive(**reactor, *spool, [&] { return second.calls > 0; }));
  EXPECT_TRUE(second.result.ok());
  EXPECT_EQ(spool->pending(), 0u);
}

}  // namespace
}  // namespace ringmx::net
