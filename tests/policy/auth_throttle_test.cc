#include "policy/auth_throttle.h"

#include <optional>
#include <string_view>

#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::policy {
namespace {

core::IpAddress Ip(std::string_view text) {
  std::optional<core::IpAddress> ip = core::IpAddress::Parse(text);
  EXPECT_TRUE(ip.has_value()) << text;
  return ip.value_or(core::IpAddress());
}

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// "allow", "delay 2s" or "refuse": one comparable string per decision.
std::string Show(const AuthThrottleDecision& d) {
  if (d.refuse) return "refuse";
  if (d.delay == absl::ZeroDuration()) return "allow";
  return "delay " + absl::FormatDuration(d.delay);
}

TEST(AuthThrottleTest, DefaultsFollowTheConfig) {
  const AuthThrottleOptions options = AuthThrottleOptions::FromConfig(core::AuthConfig{});
  EXPECT_EQ(options.slow_after, 3);
  EXPECT_EQ(options.refuse_after, 10);
  EXPECT_EQ(options.window, absl::Seconds(900));
  core::AuthConfig auth;
  auth.slow_after = 2;
  auth.refuse_after = 7;
  auth.failure_window = absl::Seconds(60);
  const AuthThrottleOptions custom = AuthThrottleOptions::FromConfig(auth);
  EXPECT_EQ(custom.slow_after, 2);
  EXPECT_EQ(custom.refuse_after, 7);
  EXPECT_EQ(custom.window, absl::Seconds(60));
}

TEST(AuthThrottleTest, AllowsThenSlowsThenRefuses) {
  AuthThrottle throttle;  // slow after 3, refuse after 10, 1 s steps up to 5 s
  const core::IpAddress client = Ip("192.0.2.1");
  const char* expected[] = {"allow",    "allow",    "allow",    "delay 1s", "delay 2s", "delay 3s",
                            "delay 4s", "delay 5s", "delay 5s", "delay 5s", "refuse"};
  absl::Time now = kT0;
  for (int failures = 0; failures <= 10; ++failures) {
    EXPECT_EQ(throttle.failures(client, now), failures);
    EXPECT_EQ(Show(throttle.Before(client, now)), expected[failures]) << failures;
    if (failures < 10) throttle.Failed(client, now);
    now += absl::Seconds(10);
  }
  // Refused on any connection until the window has passed since the last failure.
  const absl::Time last = now - absl::Seconds(20);
  EXPECT_EQ(Show(throttle.Before(client, last + absl::Seconds(899))), "refuse");
  EXPECT_EQ(Show(throttle.Before(client, last + absl::Seconds(900))), "allow");
  EXPECT_EQ(throttle.failures(client, last + absl::Seconds(900)), 0);
}

TEST(AuthThrottleTest, CountStartsAgainAfterTheWindow) {
  AuthThrottle throttle;
  const core::IpAddress client = Ip("192.0.2.1");
  for (int i = 0; i < 4; ++i) throttle.Failed(client, kT0 + absl::Seconds(i));
  EXPECT_EQ(Show(throttle.Before(client, kT0 + absl::Seconds(10))), "delay 2s");
  // Failures keep the record alive: the window runs from the last one.
  throttle.Failed(client, kT0 + absl::Seconds(800));
  EXPECT_EQ(throttle.failures(client, kT0 + absl::Seconds(1500)), 5);
  EXPECT_EQ(throttle.failures(client, kT0 + absl::Seconds(1700)), 0);
  throttle.Failed(client, kT0 + absl::Seconds(1700));
  EXPECT_EQ(throttle.failures(client, kT0 + absl::Seconds(1700)), 1);
  EXPECT_EQ(Show(throttle.Before(client, kT0 + absl::Seconds(1700))), "allow");
}

TEST(AuthThrottleTest, AddressesAreCountedApart) {
  AuthThrottleOptions options;
  options.slow_after = 1;
  options.refuse_after = 2;
  AuthThrottle throttle(options);
  throttle.Failed(Ip("192.0.2.1"), kT0);
  throttle.Failed(Ip("192.0.2.1"), kT0);
  EXPECT_EQ(Show(throttle.Before(Ip("192.0.2.1"), kT0)), "refuse");
  EXPECT_EQ(Show(throttle.Before(Ip("192.0.2.2"), kT0)), "allow");
  EXPECT_EQ(Show(throttle.Before(Ip("2001:db8::1"), kT0)), "allow");
  // An IPv4-mapped IPv6 address is the IPv4 client.
  EXPECT_EQ(Show(throttle.Before(Ip("::ffff:192.0.2.1"), kT0)), "refuse");
}

TEST(AuthThrottleTest, IpV6IsCountedPerSlash64) {
  AuthThrottleOptions options;
  options.slow_after = 1;
  options.refuse_after = 2;
  AuthThrottle throttle(options);
  throttle.Failed(Ip("2001:db8:1:2::1"), kT0);
  throttle.Failed(Ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), kT0);
  EXPECT_EQ(Show(throttle.Before(Ip("2001:db8:1:2::99"), kT0)), "refuse");
  EXPECT_EQ(Show(throttle.Before(Ip("2001:db8:1:3::1"), kT0)), "allow");
  EXPECT_EQ(throttle.size(), 1u);
}

TEST(AuthThrottleTest, SlowAfterEqualToRefuseAfterNeverDelays) {
  AuthThrottleOptions options;
  options.slow_after = 2;
  options.refuse_after = 2;
  AuthThrottle throttle(options);
  const core::IpAddress client = Ip("192.0.2.1");
  EXPECT_EQ(Show(throttle.Before(client, kT0)), "allow");
  throttle.Failed(client, kT0);
  EXPECT_EQ(Show(throttle.Before(client, kT0)), "allow");
  throttle.Failed(client, kT0);
  EXPECT_EQ(Show(throttle.Before(client, kT0)), "refuse");
}

TEST(AuthThrottleTest, MemoryIsBoundedAndTheOldestGoesFirst) {
  AuthThrottleOptions options;
  options.max_entries = 3;
  options.slow_after = 1;
  AuthThrottle throttle(options);
  throttle.Failed(Ip("192.0.2.1"), kT0);
  throttle.Failed(Ip("192.0.2.2"), kT0 + absl::Seconds(1));
  throttle.Failed(Ip("192.0.2.3"), kT0 + absl::Seconds(2));
  // .1 fails again: now .2 is the oldest.
  throttle.Failed(Ip("192.0.2.1"), kT0 + absl::Seconds(3));
  throttle.Failed(Ip("192.0.2.4"), kT0 + absl::Seconds(4));
  EXPECT_EQ(throttle.size(), 3u);
  const absl::Time now = kT0 + absl::Seconds(5);
  EXPECT_EQ(throttle.failures(Ip("192.0.2.1"), now), 2);
  EXPECT_EQ(throttle.failures(Ip("192.0.2.2"), now), 0);
  EXPECT_EQ(throttle.failures(Ip("192.0.2.3"), now), 1);
  EXPECT_EQ(throttle.failures(Ip("192.0.2.4"), now), 1);
  // Many addresses: never more than the bound.
  for (int i = 0; i < 1000; ++i) {
    const uint8_t bytes[4] = {10, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 1};
    throttle.Failed(core::IpAddress::V4(bytes), now);
    ASSERT_LE(throttle.size(), 3u);
  }
}

TEST(AuthThrottleTest, ExpiredRecordsAreDropped) {
  AuthThrottle throttle;
  for (int i = 0; i < 50; ++i) {
    const uint8_t bytes[4] = {10, 0, 0, static_cast<uint8_t>(i)};
    throttle.Failed(core::IpAddress::V4(bytes), kT0);
  }
  EXPECT_EQ(throttle.size(), 50u);
  throttle.Failed(Ip("192.0.2.1"), kT0 + absl::Seconds(900));
  EXPECT_EQ(throttle.size(), 1u);
}

TEST(AuthThrottleTest, NewOptionsKeepTheCounts) {
  AuthThrottle throttle;
  const core::IpAddress client = Ip("192.0.2.1");
  for (int i = 0; i < 4; ++i) throttle.Failed(client, kT0);
  EXPECT_EQ(Show(throttle.Before(client, kT0)), "delay 2s");
  AuthThrottleOptions stricter;
  stricter.slow_after = 1;
  stricter.refuse_after = 4;
  throttle.set_options(stricter);
  EXPECT_EQ(Show(throttle.Before(client, kT0)), "refuse");
  AuthThrottleOptions tiny;
  tiny.max_entries = 0;
  throttle.set_options(tiny);
  EXPECT_EQ(throttle.size(), 0u);
  throttle.Failed(client, kT0);
  EXPECT_EQ(throttle.size(), 0u);
}

}  // namespace
}  // namespace ringmx::policy
