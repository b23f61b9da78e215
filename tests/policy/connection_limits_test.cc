#include "policy/connection_limits.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ringmx::policy {
namespace {

core::IpAddress Ip(const std::string& text) { return *core::IpAddress::Parse(text); }

// A minute boundary, so that tests know where the rate windows start.
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'040);  // divisible by 60

core::LimitsConfig NoLimits() {
  core::LimitsConfig limits;
  limits.max_sessions = 0;
  limits.max_sessions_per_client = 0;
  limits.max_connection_rate_per_client = 0;
  return limits;
}

TEST(ShardShareTest, IsTheCeilingOfTheLimitOverTheShards) {
  EXPECT_EQ(ShardShare(0, 4), 0u);  // no limit stays no limit
  EXPECT_EQ(ShardShare(-1, 4), 0u);
  EXPECT_EQ(ShardShare(50, 1), 50u);
  EXPECT_EQ(ShardShare(50, 0), 50u);  // 0 shards is treated as 1
  EXPECT_EQ(ShardShare(50, 2), 25u);
  EXPECT_EQ(ShardShare(51, 2), 26u);
  EXPECT_EQ(ShardShare(1, 8), 1u);
  EXPECT_EQ(ShardShare(10'000'000, 1024), 9766u);
}

TEST(LimitKeyTest, NamesTheConfigKey) {
  EXPECT_EQ(LimitKey(LimitVerdict::kAdmit), "");
  EXPECT_EQ(LimitKey(LimitVerdict::kTooManySessions), "max_sessions");
  EXPECT_EQ(LimitKey(LimitVerdict::kTooManyFromClient), "max_sessions_per_client");
  EXPECT_EQ(LimitKey(LimitVerdict::kRateExceeded), "max_connection_rate_per_client");
}

TEST(ConnectionLimiterTest, NoLimitsAdmitsEverything) {
  ConnectionLimiter limiter;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(limiter.Admit(NoLimits(), 1, Ip("192.0.2.1"), kT0), LimitVerdict::kAdmit);
  }
  EXPECT_EQ(limiter.sessions(), 1000u);
  EXPECT_EQ(limiter.SessionsOf(Ip("192.0.2.1")), 1000u);
}

TEST(ConnectionLimiterTest, PerClientSessionsAreLimitedAndReleased) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions_per_client = 3;
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("192.0.2.1");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kTooManyFromClient);
  // Another client is not affected.
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("192.0.2.2"), kT0), LimitVerdict::kAdmit);
  // A refused connection counts no session.
  EXPECT_EQ(limiter.SessionsOf(a), 3u);
  limiter.Release(a);
  EXPECT_EQ(limiter.SessionsOf(a), 2u);
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kTooManyFromClient);
}

TEST(ConnectionLimiterTest, PerClientShareOfEachShard) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions_per_client = 5;  // 3 per shard of 2
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("2001:db8::1");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(limiter.Admit(limits, 2, a, kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 2, a, kT0), LimitVerdict::kTooManyFromClient);
}

TEST(ConnectionLimiterTest, TotalSessionsApplyToEveryClientEvenExemptOnes) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions = 4;  // 2 per shard of 2
  limits.exempt = {*core::Cidr::Parse("192.0.2.0/24")};
  ConnectionLimiter limiter;
  EXPECT_EQ(limiter.Admit(limits, 2, Ip("192.0.2.1"), kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 2, Ip("198.51.100.1"), kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 2, Ip("192.0.2.1"), kT0), LimitVerdict::kTooManySessions);
  EXPECT_EQ(limiter.Admit(limits, 2, Ip("203.0.113.1"), kT0), LimitVerdict::kTooManySessions);
  EXPECT_EQ(limiter.sessions(), 2u);
  limiter.Release(Ip("198.51.100.1"));
  EXPECT_EQ(limiter.sessions(), 1u);
  EXPECT_EQ(limiter.Admit(limits, 2, Ip("203.0.113.1"), kT0), LimitVerdict::kAdmit);
}

TEST(ConnectionLimiterTest, TotalIsCheckedBeforePerClient) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions = 1;
  limits.max_sessions_per_client = 1;
  ConnectionLimiter limiter;
  ASSERT_EQ(limiter.Admit(limits, 1, Ip("192.0.2.1"), kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("192.0.2.1"), kT0), LimitVerdict::kTooManySessions);
}

TEST(ConnectionLimiterTest, ExemptClientsAreNotLimitedPerClient) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions_per_client = 1;
  limits.max_connection_rate_per_client = 1;
  limits.exempt = {*core::Cidr::Parse("127.0.0.0/8"), *core::Cidr::Parse("2001:db8::/32")};
  ConnectionLimiter limiter;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(limiter.Admit(limits, 1, Ip("127.0.0.1"), kT0), LimitVerdict::kAdmit);
    ASSERT_EQ(limiter.Admit(limits, 1, Ip("2001:db8::7"), kT0), LimitVerdict::kAdmit);
  }
  // The exempt client's sessions are still counted (a reload may take the exemption away).
  EXPECT_EQ(limiter.SessionsOf(Ip("127.0.0.1")), 10u);
  limits.exempt.clear();
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("127.0.0.1"), kT0), LimitVerdict::kTooManyFromClient);
}

TEST(LimitsExemptTest, MatchesAnyListedNetwork) {
  core::LimitsConfig limits;
  EXPECT_FALSE(LimitsExempt(limits, Ip("127.0.0.1")));
  limits.exempt = {*core::Cidr::Parse("10.0.0.0/8"), *core::Cidr::Parse("::1")};
  EXPECT_TRUE(LimitsExempt(limits, Ip("10.1.2.3")));
  EXPECT_TRUE(LimitsExempt(limits, Ip("::1")));
  EXPECT_FALSE(LimitsExempt(limits, Ip("11.0.0.1")));
  EXPECT_FALSE(LimitsExempt(limits, Ip("::2")));
}

TEST(ConnectionLimiterTest, RateCountsAttemptsPerMinute) {
  core::LimitsConfig limits = NoLimits();
  limits.max_connection_rate_per_client = 4;
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("192.0.2.9");
  // Sessions end at once: only the rate limits.
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Seconds(i)), LimitVerdict::kAdmit) << i;
    limiter.Release(a);
  }
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Seconds(10)), LimitVerdict::kRateExceeded);
  // Another address has its own count.
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("192.0.2.10"), kT0 + absl::Seconds(10)),
            LimitVerdict::kAdmit);
  // Still within the minute (refused attempts count too).
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Seconds(59)), LimitVerdict::kRateExceeded);
  // Two minutes on, both buckets are empty.
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Minutes(2) + absl::Seconds(1)),
            LimitVerdict::kAdmit);
}

TEST(ConnectionLimiterTest, RateSlidesWithThePreviousMinuteWeighted) {
  core::LimitsConfig limits = NoLimits();
  limits.max_connection_rate_per_client = 4;
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("192.0.2.9");
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kAdmit);
    limiter.Release(a);
  }
  // 15 s into the next minute the previous minute's 4 count as 3: one more fits, then none.
  const absl::Time t = kT0 + absl::Seconds(75);
  EXPECT_EQ(limiter.Admit(limits, 1, a, t), LimitVerdict::kAdmit);
  limiter.Release(a);
  EXPECT_EQ(limiter.Admit(limits, 1, a, t), LimitVerdict::kRateExceeded);
  // At 45 s in, 4 * 0.25 + 2 = 3 < 4: one more.
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Seconds(105)), LimitVerdict::kAdmit);
}

TEST(ConnectionLimiterTest, RateShareOfEachShard) {
  core::LimitsConfig limits = NoLimits();
  limits.max_connection_rate_per_client = 6;  // 3 per shard of 2
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("192.0.2.9");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(limiter.Admit(limits, 2, a, kT0), LimitVerdict::kAdmit);
    limiter.Release(a);
  }
  EXPECT_EQ(limiter.Admit(limits, 2, a, kT0), LimitVerdict::kRateExceeded);
}

TEST(ConnectionLimiterTest, ClockSteppingBackKeepsCounting) {
  core::LimitsConfig limits = NoLimits();
  limits.max_connection_rate_per_client = 2;
  ConnectionLimiter limiter;
  const core::IpAddress a = Ip("192.0.2.9");
  ASSERT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Minutes(5)), LimitVerdict::kAdmit);
  ASSERT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 1, a, kT0), LimitVerdict::kRateExceeded);
}

TEST(ConnectionLimiterTest, ReleaseOfAnUnknownAddressChangesNothing) {
  ConnectionLimiter limiter;
  limiter.Release(Ip("192.0.2.1"));
  EXPECT_EQ(limiter.sessions(), 0u);
  ASSERT_EQ(limiter.Admit(NoLimits(), 1, Ip("192.0.2.1"), kT0), LimitVerdict::kAdmit);
  limiter.Release(Ip("192.0.2.1"));
  limiter.Release(Ip("192.0.2.1"));  // once too often: ignored
  EXPECT_EQ(limiter.sessions(), 0u);
}

TEST(ConnectionLimiterTest, ExpireDropsIdleEntriesAfterTwoMinutes) {
  ConnectionLimiter limiter;
  const core::IpAddress idle = Ip("192.0.2.1");
  const core::IpAddress busy = Ip("192.0.2.2");
  ASSERT_EQ(limiter.Admit(NoLimits(), 1, idle, kT0), LimitVerdict::kAdmit);
  ASSERT_EQ(limiter.Admit(NoLimits(), 1, busy, kT0), LimitVerdict::kAdmit);
  limiter.Release(idle);
  EXPECT_EQ(limiter.entries(), 2u);
  // The next minute still counts the connection for the rate.
  limiter.Expire(kT0 + absl::Seconds(61));
  EXPECT_EQ(limiter.entries(), 2u);
  limiter.Expire(kT0 + absl::Seconds(121));
  EXPECT_EQ(limiter.entries(), 1u);  // `busy` has a session: kept however old
  EXPECT_EQ(limiter.SessionsOf(busy), 1u);
  limiter.Release(busy);
  limiter.Expire(kT0 + absl::Seconds(125));  // same minute: no work
  EXPECT_EQ(limiter.entries(), 1u);
  limiter.Expire(kT0 + absl::Seconds(185));
  EXPECT_EQ(limiter.entries(), 0u);
}

TEST(ConnectionLimiterTest, IdleEntriesAreBoundedUnderAFloodOfAddresses) {
  constexpr size_t kBound = 100;
  ConnectionLimiter limiter(kBound);
  core::LimitsConfig limits = NoLimits();
  limits.max_connection_rate_per_client = 1000;
  // 10,000 distinct addresses in one minute, each with a session that ends at once: the table
  // never holds more than the bound of idle entries plus the one being added.
  for (int i = 0; i < 10000; ++i) {
    const core::IpAddress a =
        Ip(absl::StrCat("10.", i / 65536, ".", (i / 256) % 256, ".", i % 256));
    ASSERT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Milliseconds(i)), LimitVerdict::kAdmit);
    limiter.Release(a);
    ASSERT_LE(limiter.entries(), kBound + 1) << i;
  }
  // Entries with a session are never dropped, whatever their number.
  for (int i = 0; i < 300; ++i) {
    const core::IpAddress a = Ip(absl::StrCat("172.16.", i / 256, ".", i % 256));
    ASSERT_EQ(limiter.Admit(limits, 1, a, kT0 + absl::Seconds(30)), LimitVerdict::kAdmit);
  }
  EXPECT_EQ(limiter.sessions(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(limiter.SessionsOf(Ip(absl::StrCat("172.16.", i / 256, ".", i % 256))), 1u);
  }
  EXPECT_LE(limiter.entries(), 300 + kBound + 1);
}

TEST(ConnectionLimiterTest, Ipv4AndIpv6WithTheSameBytesAreDifferentClients) {
  core::LimitsConfig limits = NoLimits();
  limits.max_sessions_per_client = 1;
  ConnectionLimiter limiter;
  ASSERT_EQ(limiter.Admit(limits, 1, Ip("1.2.3.4"), kT0), LimitVerdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("102:304::"), kT0), LimitVerdict::kAdmit);
  // An IPv4-mapped IPv6 address is the IPv4 client.
  EXPECT_EQ(limiter.Admit(limits, 1, Ip("::ffff:1.2.3.4"), kT0), LimitVerdict::kTooManyFromClient);
}

}  // namespace
}  // namespace ringmx::policy
