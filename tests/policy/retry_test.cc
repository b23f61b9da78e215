#include "policy/retry.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringmx::policy {
namespace {

using ::testing::ElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

RetrySchedule Defaults() { return RetrySchedule(core::DeliveryConfig{}); }

TEST(RetryScheduleTest, DefaultsArePostfixLike) {
  std::vector<int64_t> waits;
  for (int n = 1; n <= 8; ++n) waits.push_back(absl::ToInt64Seconds(Defaults().Backoff(n)));
  EXPECT_THAT(waits, ElementsAre(300, 600, 1200, 2400, 4000, 4000, 4000, 4000));
}

TEST(RetryScheduleTest, NonPositiveAttemptsCountAsTheFirst) {
  EXPECT_EQ(Defaults().Backoff(0), absl::Seconds(300));
  EXPECT_EQ(Defaults().Backoff(-5), absl::Seconds(300));
}

TEST(RetryScheduleTest, HugeAttemptCountsStayAtTheCap) {
  EXPECT_EQ(Defaults().Backoff(1'000'000'000), absl::Seconds(4000));
}

TEST(RetryScheduleTest, FirstEqualToMaxNeverGrows) {
  const RetrySchedule s(absl::Seconds(60), absl::Seconds(60), absl::Hours(1));
  EXPECT_EQ(s.Backoff(1), absl::Seconds(60));
  EXPECT_EQ(s.Backoff(10), absl::Seconds(60));
}

TEST(RetryScheduleTest, NextAttemptIsNowPlusBackoff) {
  const absl::Time now = kT0 + absl::Minutes(7);
  const RetryDecision d = Defaults().AfterFailure(3, kT0, now);
  EXPECT_FALSE(d.expired);
  EXPECT_EQ(d.next_attempt, now + absl::Seconds(1200));
}

// Walks a message through a whole lifetime, failing at every attempt.
TEST(RetryScheduleTest, WholeLifetimeEndsInExactlyOneExpiry) {
  const RetrySchedule s = Defaults();
  absl::Time now = kT0;  // the first attempt right on arrival
  int attempts = 0;
  bool expired = false;
  absl::Time last_try;
  for (int guard = 0; guard < 1000 && !expired; ++guard) {
    ++attempts;
    const RetryDecision d = s.AfterFailure(attempts, kT0, now);
    expired = d.expired;
    if (!expired) {
      ASSERT_GT(d.next_attempt, now);
      ASSERT_LE(d.next_attempt, kT0 + absl::Hours(120));
      last_try = now;
      now = d.next_attempt;
    }
  }
  ASSERT_TRUE(expired);
  // The last try is at the deadline itself, not up to 4000 s past it.
  EXPECT_EQ(now, kT0 + absl::Hours(120));
  // Attempts at 0, 300, 900, 2100, 4500 s, then every 4000 s while before 432000 (106 more: up
  // to 428500), then the last one at the deadline: 5 + 106 + 1.
  EXPECT_EQ(attempts, 112);
  EXPECT_LT(last_try, now);
}

TEST(RetryScheduleTest, ExpiredAtTheDeadlineNotBefore) {
  const RetrySchedule s = Defaults();
  EXPECT_FALSE(s.AfterFailure(9, kT0, kT0 + absl::Hours(120) - absl::Seconds(1)).expired);
  EXPECT_TRUE(s.AfterFailure(9, kT0, kT0 + absl::Hours(120)).expired);
  EXPECT_TRUE(s.AfterFailure(9, kT0, kT0 + absl::Hours(200)).expired);
}

TEST(RetryScheduleTest, NextAttemptIsClampedToTheDeadline) {
  const RetrySchedule s = Defaults();
  const absl::Time now = kT0 + absl::Hours(120) - absl::Seconds(10);
  const RetryDecision d = s.AfterFailure(20, kT0, now);
  EXPECT_FALSE(d.expired);
  EXPECT_EQ(d.next_attempt, kT0 + absl::Hours(120));
}

TEST(RetryScheduleTest, ZeroLifetimeFailsAtTheFirstFailure) {
  const RetrySchedule s(absl::Seconds(300), absl::Seconds(4000), absl::ZeroDuration());
  EXPECT_TRUE(s.AfterFailure(1, kT0, kT0).expired);
}

TEST(RetryScheduleTest, ReadsTheDeliveryConfig) {
  core::DeliveryConfig c;
  c.retry_first = absl::Seconds(10);
  c.retry_max = absl::Seconds(25);
  c.max_lifetime = absl::Seconds(100);
  const RetrySchedule s(c);
  EXPECT_EQ(s.Backoff(1), absl::Seconds(10));
  EXPECT_EQ(s.Backoff(2), absl::Seconds(20));
  EXPECT_EQ(s.Backoff(3), absl::Seconds(25));
  EXPECT_TRUE(s.AfterFailure(1, kT0, kT0 + absl::Seconds(100)).expired);
}

TEST(HopDownTrackerTest, DownUntilTheTimeThenUp) {
  HopDownTracker t;
  const std::string hop = "lmtp:127.0.0.1:24";
  EXPECT_FALSE(t.IsDown(hop, kT0));
  t.MarkDown(hop, kT0, kT0 + absl::Seconds(60));
  EXPECT_TRUE(t.IsDown(hop, kT0));
  EXPECT_TRUE(t.IsDown(hop, kT0 + absl::Seconds(59)));
  EXPECT_FALSE(t.IsDown(hop, kT0 + absl::Seconds(60)));
  EXPECT_EQ(t.DownUntil(hop, kT0), kT0 + absl::Seconds(60));
  EXPECT_EQ(t.DownUntil(hop, kT0 + absl::Seconds(61)), std::nullopt);
  EXPECT_FALSE(t.IsDown("smtp:[192.0.2.5]:25", kT0));
}

TEST(HopDownTrackerTest, LaterMarkExtendsEarlierNeverShortens) {
  HopDownTracker t;
  t.MarkDown("a", kT0, kT0 + absl::Seconds(60));
  t.MarkDown("a", kT0 + absl::Seconds(30), kT0 + absl::Seconds(90));
  EXPECT_TRUE(t.IsDown("a", kT0 + absl::Seconds(80)));
  t.MarkDown("a", kT0 + absl::Seconds(31), kT0 + absl::Seconds(40));
  EXPECT_TRUE(t.IsDown("a", kT0 + absl::Seconds(80)));
  EXPECT_EQ(t.size(), 1u);
}

TEST(HopDownTrackerTest, ZeroHopDownMarksNothing) {
  HopDownTracker t;
  t.MarkDown("a", kT0, kT0);
  EXPECT_FALSE(t.IsDown("a", kT0));
  EXPECT_EQ(t.size(), 0u);
}

TEST(HopDownTrackerTest, MarkUpAndClear) {
  HopDownTracker t;
  t.MarkDown("a", kT0, kT0 + absl::Seconds(60));
  t.MarkDown("b", kT0, kT0 + absl::Seconds(60));
  t.MarkUp("a");
  EXPECT_FALSE(t.IsDown("a", kT0));
  EXPECT_TRUE(t.IsDown("b", kT0));
  t.MarkUp("never-marked");
  t.Clear();
  EXPECT_FALSE(t.IsDown("b", kT0));
  EXPECT_EQ(t.size(), 0u);
}

TEST(HopDownTrackerTest, MemoryIsBoundedExpiredEntriesGoFirst) {
  HopDownTracker t(3);
  t.MarkDown("old", kT0, kT0 + absl::Seconds(10));
  t.MarkDown("b", kT0, kT0 + absl::Seconds(100));
  t.MarkDown("c", kT0, kT0 + absl::Seconds(200));
  const absl::Time later = kT0 + absl::Seconds(50);  // "old" is up again
  t.MarkDown("d", later, later + absl::Seconds(60));
  EXPECT_EQ(t.size(), 3u);
  EXPECT_TRUE(t.IsDown("b", later));
  EXPECT_TRUE(t.IsDown("c", later));
  EXPECT_TRUE(t.IsDown("d", later));
}

TEST(HopDownTrackerTest, WhenFullTheSoonestUpIsDropped) {
  HopDownTracker t(2);
  t.MarkDown("b", kT0, kT0 + absl::Seconds(100));
  t.MarkDown("c", kT0, kT0 + absl::Seconds(200));
  t.MarkDown("d", kT0, kT0 + absl::Seconds(300));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.IsDown("b", kT0));
  EXPECT_TRUE(t.IsDown("c", kT0));
  EXPECT_TRUE(t.IsDown("d", kT0));
  for (int i = 0; i < 100; ++i) {
    t.MarkDown(absl::StrCat("hop", i), kT0, kT0 + absl::Seconds(400 + i));
  }
  EXPECT_EQ(t.size(), 2u);
}

}  // namespace
}  // namespace ringmx::policy
