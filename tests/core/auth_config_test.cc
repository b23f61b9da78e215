// The [auth] keys of the config loader (core/config.h): defaults, ranges, the cross-key rule.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/config.h"
#include "core/strings.h"
#include "tests/core/parse_test_util.h"

namespace ringmx::core {
namespace {

using ::testing::HasSubstr;

// A valid file whose [auth] section (from line 6 on) is `auth`.
std::string WithAuth(std::string_view auth) {
  return absl::StrCat(
      "hostname = \"mx.example.test\"\n"
      "[[listener]]\n"
      "name = \"mx\"\n"
      "address = \"127.0.0.1:2525\"\n"
      "[auth]\n",
      Av(auth));
}

using test_util::ErrorOf;

TEST(AuthConfigTest, Defaults) {
  absl::StatusOr<Config> config = ParseConfig(WithAuth(""), "ringmx.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->auth.passwd, "");
  EXPECT_EQ(config->auth.slow_after, 3);
  EXPECT_EQ(config->auth.refuse_after, 10);
  EXPECT_EQ(config->auth.failure_window, absl::Seconds(900));
}

TEST(AuthConfigTest, ReadsEveryKey) {
  absl::StatusOr<Config> config = ParseConfig(
      WithAuth("passwd = \"passwd\"\nslow_after = 5\nrefuse_after = 5\nfailure_window_s = 60\n"),
      "ringmx.toml", "/etc/ringmx");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->auth.passwd, "/etc/ringmx/passwd");
  EXPECT_EQ(config->auth.slow_after, 5);
  EXPECT_EQ(config->auth.refuse_after, 5);
  EXPECT_EQ(config->auth.failure_window, absl::Seconds(60));
}

TEST(AuthConfigTest, RejectsValuesOutOfRange) {
  EXPECT_EQ(ErrorOf(WithAuth("slow_after = 0\n")),
            "ringmx.toml:6: auth.slow_after: must be between 1 and 1000000, got 0");
  EXPECT_EQ(ErrorOf(WithAuth("refuse_after = -1\n")),
            "ringmx.toml:6: auth.refuse_after: must be between 1 and 1000000, got -1");
  EXPECT_EQ(ErrorOf(WithAuth("failure_window_s = 0\n")),
            "ringmx.toml:6: auth.failure_window_s: must be between 1 and 604800, got 0");
  EXPECT_EQ(ErrorOf(WithAuth("\nfailure_window_s = 604801\n")),
            "ringmx.toml:7: auth.failure_window_s: must be between 1 and 604800, got 604801");
  EXPECT_EQ(ErrorOf(WithAuth("slow_after = \"3\"\n")),
            "ringmx.toml:6: auth.slow_after: expected an integer, got a string");
  EXPECT_THAT(ErrorOf(WithAuth("refuse_afer = 3\n")), HasSubstr("did you mean \"refuse_after\""));
}

TEST(AuthConfigTest, SlowAfterMayNotExceedRefuseAfter) {
  EXPECT_EQ(ErrorOf(WithAuth("refuse_after = 4\nslow_after = 5\n")),
            "ringmx.toml:7: auth.slow_after: auth.slow_after (5) must not be more than "
            "auth.refuse_after (4): failures are slowed down before AUTH is refused");
  // Against the other key's default.
  EXPECT_THAT(ErrorOf(WithAuth("refuse_after = 2\n")),
              HasSubstr("ringmx.toml:6: auth.refuse_after: auth.slow_after (3) must not be more"));
  // A bad key is reported alone, without a comparison against the other one.
  EXPECT_EQ(ErrorOf(WithAuth("refuse_after = 2\nslow_after = 0\n")),
            "ringmx.toml:7: auth.slow_after: must be between 1 and 1000000, got 0");
  EXPECT_THAT(ErrorOf(WithAuth("slow_after = 11\n")),
              HasSubstr("ringmx.toml:6: auth.slow_after: auth.slow_after (11) must not be more"));
}

}  // namespace
}  // namespace ringmx::core
