// The PROXY protocol keys of the config loader (core/config.h, docs/proxy.md): per listener
// `proxy_protocol` and `proxy_trusted`, and `[timeouts] proxy_s`; every default and every error
// with the key and line it names.
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

// Lines 1-4 are the listener; `listener_keys` start on line 5, then `rest`.
std::string WithListener(std::string_view listener_keys, std::string_view rest = "") {
  return absl::StrCat(
      "hostname = \"mx.example.test\"\n"
      "[[listener]]\n"
      "name = \"mx\"\n"
      "address = \"127.0.0.1:2525\"\n",
      Av(listener_keys), Av(rest));
}

using test_util::ErrorOf;
using test_util::Parse;

TEST(ProxyConfigTest, DefaultsToNoHeaderAndFiveSeconds) {
  absl::StatusOr<Config> config = Parse(WithListener(""));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listeners[0].proxy_protocol, ProxyProtocol::kNone);
  EXPECT_TRUE(config->listeners[0].proxy_trusted.empty());
  EXPECT_EQ(config->timeouts.proxy, absl::Seconds(5));
}

TEST(ProxyConfigTest, ReadsEveryVersionAndTheTrustedNetworks) {
  const struct {
    std::string_view text;
    ProxyProtocol mode;
  } cases[] = {{"v1", ProxyProtocol::kV1},
               {"v2", ProxyProtocol::kV2},
               {"any", ProxyProtocol::kAny},
               {"none", ProxyProtocol::kNone}};
  for (const auto& c : cases) {
    const std::string trusted =
        c.mode == ProxyProtocol::kNone ? "" : "proxy_trusted = [\"10.0.0.0/8\", \"2001:db8::5\"]\n";
    absl::StatusOr<Config> config =
        Parse(WithListener(absl::StrCat("proxy_protocol = \"", Av(c.text), "\"\n", trusted),
                           "[timeouts]\nproxy_s = 3\n"));
    ASSERT_TRUE(config.ok()) << config.status();
    const ListenerConfig& l = config->listeners[0];
    EXPECT_EQ(l.proxy_protocol, c.mode) << c.text;
    if (c.mode != ProxyProtocol::kNone) {
      ASSERT_EQ(l.proxy_trusted.size(), 2u);
      EXPECT_EQ(l.proxy_trusted[0].ToString(), "10.0.0.0/8");
      EXPECT_TRUE(l.proxy_trusted[1].Contains(*IpAddress::Parse("2001:db8::5")));
      EXPECT_FALSE(l.proxy_trusted[1].Contains(*IpAddress::Parse("2001:db8::6")));
    }
    EXPECT_EQ(config->timeouts.proxy, absl::Seconds(3));
  }
}

TEST(ProxyConfigTest, EachListenerHasItsOwnSetting) {
  absl::StatusOr<Config> config =
      Parse(WithListener("proxy_protocol = \"v2\"\nproxy_trusted = [\"192.0.2.10/32\"]\n",
                         "[[listener]]\nname = \"direct\"\naddress = \"127.0.0.1:2526\"\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listeners[0].proxy_protocol, ProxyProtocol::kV2);
  EXPECT_EQ(config->listeners[1].proxy_protocol, ProxyProtocol::kNone);
  EXPECT_TRUE(config->listeners[1].proxy_trusted.empty());
}

TEST(ProxyConfigTest, RefusesAnUnknownVersion) {
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocol = \"v3\"\nproxy_trusted = [\"10.0.0.1\"]\n")),
              HasSubstr("ringmx.toml:5: listener[0].proxy_protocol:"));
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocol = true\nproxy_trusted = [\"10.0.0.1\"]\n")),
              HasSubstr("ringmx.toml:5: listener[0].proxy_protocol:"));
}

TEST(ProxyConfigTest, NeedsTrustedBalancersWhenOn) {
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocol = \"any\"\n")),
              HasSubstr("ringmx.toml:2: listener[0]: missing required key \"proxy_trusted\""));
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocol = \"v1\"\nproxy_trusted = []\n")),
              HasSubstr("ringmx.toml:6: listener[0].proxy_trusted: must list at least one"));
}

TEST(ProxyConfigTest, RefusesABadTrustedNetwork) {
  EXPECT_THAT(
      ErrorOf(WithListener("proxy_protocol = \"v2\"\nproxy_trusted = [\"10.0.0.1/8\"]\n")),
      HasSubstr("ringmx.toml:6: listener[0].proxy_trusted[0]: host bits set below the prefix"));
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocol = \"v2\"\nproxy_trusted = \"10.0.0.0/8\"\n")),
              HasSubstr("ringmx.toml:6: listener[0].proxy_trusted:"));
}

TEST(ProxyConfigTest, RefusesTrustedNetworksWithoutTheProtocol) {
  EXPECT_THAT(ErrorOf(WithListener("proxy_trusted = [\"10.0.0.0/8\"]\n")),
              HasSubstr("ringmx.toml:5: listener[0].proxy_trusted: proxy_trusted needs "
                        "proxy_protocol"));
  EXPECT_THAT(
      ErrorOf(WithListener("proxy_protocol = \"none\"\nproxy_trusted = [\"10.0.0.0/8\"]\n")),
      HasSubstr("ringmx.toml:6: listener[0].proxy_trusted: proxy_trusted needs proxy_protocol = "
                "\"v1\", \"v2\" or \"any\" on this listener (it has \"none\")"));
}

TEST(ProxyConfigTest, RefusesAProxyTimeoutOutOfRange) {
  EXPECT_THAT(ErrorOf(WithListener("", "[timeouts]\nproxy_s = 0\n")),
              HasSubstr("ringmx.toml:6: timeouts.proxy_s: must be between 1 and 3600, got 0"));
  EXPECT_THAT(ErrorOf(WithListener("", "[timeouts]\nproxy_s = \"5\"\n")),
              HasSubstr("ringmx.toml:6: timeouts.proxy_s:"));
}

TEST(ProxyConfigTest, SuggestsTheKeyForATypo) {
  EXPECT_THAT(ErrorOf(WithListener("proxy_protocl = \"v2\"\n")),
              HasSubstr("ringmx.toml:5: listener[0]: unknown key \"proxy_protocl\" (did you mean "
                        "\"proxy_protocol\"?)"));
}

}  // namespace
}  // namespace ringmx::core
