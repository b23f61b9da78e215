// [[milter]] and the listeners' `milters` / `milters_skip` in the config loader (core/config.h):
// every key, its default, and every error with the key and line it names.
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

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Lines 1-4; `extra` starts on line 5 (inside the listener table).
constexpr std::string_view kBase =
    "hostname = \"mx.example.test\"\n"
    "[[listener]]\n"
    "name = \"mx\"\n"
    "address = \"127.0.0.1:2525\"\n";

std::string With(std::string_view extra) { return absl::StrCat(Av(kBase), Av(extra)); }

using test_util::ErrorOf;
using test_util::Parse;

TEST(MilterConfigTest, DefaultsAndEveryKey) {
  absl::StatusOr<Config> config =
      Parse(With("milters = [\"rspamd\", \"dkim\"]\n"
                 "milters_skip = \"authenticated\"\n"
                 "[[milter]]\n"
                 "name = \"rspamd\"\n"
                 "address = \"inet:127.0.0.1:11332\"\n"
                 "[[milter]]\n"
                 "name = \"dkim\"\n"
                 "address = \"unix:run/opendkim.sock\"\n"
                 "connect_timeout_s = 5\n"
                 "command_timeout_s = 10\n"
                 "content_timeout_s = 60\n"
                 "default_action = \"accept\"\n"
                 "[[milter]]\n"
                 "name = \"v6\"\n"
                 "address = \"inet:[::1]:8891\"\n"
                 "default_action = \"reject\"\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->listeners[0].milters, ElementsAre("rspamd", "dkim"));
  EXPECT_EQ(config->listeners[0].milters_skip, MiltersSkip::kAuthenticated);
  ASSERT_EQ(config->milters.size(), 3u);
  const MilterConfig& rspamd = config->milters[0];
  EXPECT_EQ(rspamd.name, "rspamd");
  EXPECT_FALSE(rspamd.is_unix);
  EXPECT_EQ(rspamd.AddressString(), "inet:127.0.0.1:11332");
  EXPECT_EQ(rspamd.connect_timeout, absl::Seconds(30));
  EXPECT_EQ(rspamd.command_timeout, absl::Seconds(30));
  EXPECT_EQ(rspamd.content_timeout, absl::Seconds(300));
  EXPECT_EQ(rspamd.default_action, MilterDefaultAction::kTempfail);
  const MilterConfig& dkim = config->milters[1];
  EXPECT_TRUE(dkim.is_unix);
  EXPECT_EQ(dkim.unix_path, "/etc/ringmx/run/opendkim.sock");
  EXPECT_EQ(dkim.AddressString(), "unix:/etc/ringmx/run/opendkim.sock");
  EXPECT_EQ(dkim.connect_timeout, absl::Seconds(5));
  EXPECT_EQ(dkim.command_timeout, absl::Seconds(10));
  EXPECT_EQ(dkim.content_timeout, absl::Seconds(60));
  EXPECT_EQ(dkim.default_action, MilterDefaultAction::kAccept);
  EXPECT_EQ(config->milters[2].AddressString(), "inet:[::1]:8891");
  EXPECT_EQ(config->milters[2].default_action, MilterDefaultAction::kReject);
}

TEST(MilterConfigTest, NoMiltersByDefault) {
  absl::StatusOr<Config> config = Parse(kBase);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->milters.empty());
  EXPECT_TRUE(config->listeners[0].milters.empty());
  EXPECT_EQ(config->listeners[0].milters_skip, MiltersSkip::kNone);
}

TEST(MilterConfigTest, MiltersSkipValues) {
  const std::pair<std::string_view, MiltersSkip> cases[] = {
      {"none", MiltersSkip::kNone},
      {"authenticated", MiltersSkip::kAuthenticated},
      {"relay", MiltersSkip::kRelay},
      {"both", MiltersSkip::kBoth}};
  for (const auto& [text, want] : cases) {
    absl::StatusOr<Config> config =
        Parse(With(absl::StrCat("milters_skip = \"", Av(text), "\"\n")));
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->listeners[0].milters_skip, want);
  }
  EXPECT_EQ(ErrorOf(With("milters_skip = \"auth\"\n")),
            "ringmx.toml:5: listener[0].milters_skip: expected one of \"none\", "
            "\"authenticated\", \"relay\", \"both\", got \"auth\"");
}

TEST(MilterConfigTest, ListenerMustNameAMilter) {
  EXPECT_EQ(ErrorOf(With("milters = [\"rspamd\"]\n")),
            "ringmx.toml:5: listener[0].milters[0]: no [[milter]] named \"rspamd\" (there is no "
            "[[milter]] table)");
  EXPECT_EQ(ErrorOf(With("milters = [\"a\", \"b\"]\n"
                         "[[milter]]\n"
                         "name = \"a\"\n"
                         "address = \"inet:127.0.0.1:1\"\n")),
            "ringmx.toml:5: listener[0].milters[1]: no [[milter]] named \"b\"");
  EXPECT_EQ(ErrorOf(With("milters = [\"a\", \"a\"]\n"
                         "[[milter]]\n"
                         "name = \"a\"\n"
                         "address = \"inet:127.0.0.1:1\"\n")),
            "ringmx.toml:5: listener[0].milters[1]: \"a\" is listed twice: a milter is called "
            "once");
  EXPECT_THAT(ErrorOf(With("milters = \"a\"\n")),
              HasSubstr("ringmx.toml:5: listener[0].milters: expected an array of strings"));
}

TEST(MilterConfigTest, MilterErrorsNameTheKeyAndLine) {
  const std::string head = "[[milter]]\n";  // line 5
  EXPECT_EQ(ErrorOf(With(head + "address = \"inet:127.0.0.1:1\"\n")),
            "ringmx.toml:5: milter[0]: missing required key \"name\"");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\n")),
            "ringmx.toml:5: milter[0]: missing required key \"address\"");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m m\"\naddress = \"inet:127.0.0.1:1\"\n")),
            "ringmx.toml:6: milter[0].name: expected 1-64 characters of letters, digits, '-', "
            "'_' or '.', got \"m m\"");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"127.0.0.1:11332\"\n")),
            "ringmx.toml:7: milter[0].address: expected \"inet:ADDRESS:PORT\" or \"unix:PATH\" "
            "(IP addresses only, no host names), got \"127.0.0.1:11332\"");
  EXPECT_THAT(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:localhost:11332\"\n")),
              HasSubstr("ringmx.toml:7: milter[0].address: expected \"inet:ADDRESS:PORT\""));
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:127.0.0.1:0\"\n")),
            "ringmx.toml:7: milter[0].address: port 0 in \"inet:127.0.0.1:0\": give the milter's "
            "port");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"unix:\"\n")),
            "ringmx.toml:7: milter[0].address: expected \"inet:ADDRESS:PORT\" or \"unix:PATH\" "
            "(IP addresses only, no host names), got \"unix:\"");
  EXPECT_THAT(
      ErrorOf(With(head + "name = \"m\"\naddress = \"unix:/" + std::string(120, 'x') + "\"\n")),
      HasSubstr("ringmx.toml:7: milter[0].address: a Unix socket path may have at most "
                "107 bytes"));
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:127.0.0.1:1\"\n"
                                "command_timeout_s = 0\n")),
            "ringmx.toml:8: milter[0].command_timeout_s: must be between 1 and 3600, got 0");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:127.0.0.1:1\"\n"
                                "default_action = \"discard\"\n")),
            "ringmx.toml:8: milter[0].default_action: expected one of \"tempfail\", \"accept\", "
            "\"reject\", got \"discard\"");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:127.0.0.1:1\"\n"
                                "timeout = 3\n")),
            "ringmx.toml:8: milter[0]: unknown key \"timeout\"");
  EXPECT_EQ(ErrorOf(With(head + "name = \"m\"\naddress = \"inet:127.0.0.1:1\"\n" + head +
                         "name = \"m\"\naddress = \"inet:127.0.0.1:2\"\n")),
            "ringmx.toml:9: milter[1].name: duplicate milter name \"m\" (also milter[0], line 6)");
}

}  // namespace
}  // namespace ringmx::core
