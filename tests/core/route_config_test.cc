// [[route]] and [delivery] in the config loader (core/config.h), and the next-hop syntax
// (core/next_hop.h): every key, its default, and every error with the key it names.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/config.h"
#include "core/next_hop.h"
#include "core/strings.h"
#include "tests/core/parse_test_util.h"

namespace ringmx::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Lines 1-8; `extra` starts on line 9.
constexpr std::string_view kBase =
    "hostname = \"mx.example.test\"\n"
    "[[listener]]\n"
    "name = \"mx\"\n"
    "address = \"127.0.0.1:2525\"\n"
    "[policy]\n"
    "local_domains = [\"example.test\"]\n"
    "[delivery]\n"
    "bounce_next_hop = \"smtp:[192.0.2.6]:25\"\n";

std::string With(std::string_view extra) { return absl::StrCat(Av(kBase), Av(extra)); }

// One route for example.test (line 9-11) plus `keys` from line 12 on.
std::string Route(std::string_view keys) {
  return With(
      absl::StrCat("[[route]]\n"
                   "domains = [\"example.test\"]\n"
                   "next_hop = [\"smtp:[192.0.2.5]:25\"]\n",
                   Av(keys)));
}

using test_util::ErrorOf;
using test_util::Parse;

std::string HopError(std::string_view text) {
  absl::StatusOr<NextHop> hop = NextHop::Parse(text);
  if (hop.ok()) {
    ADD_FAILURE() << "parsed: " << text;
    return "";
  }
  return std::string(Sv(hop.status().message()));
}

TEST(NextHopTest, ParsesEveryFormToItsCanonicalText) {
  const struct {
    std::string_view in;
    std::string_view out;
  } kCases[] = {
      {"lmtp:127.0.0.1:24", "lmtp:127.0.0.1:24"},
      {"lmtp:[127.0.0.1]:24", "lmtp:127.0.0.1:24"},
      {"lmtp:[::1]:24", "lmtp:[::1]:24"},
      {"lmtp:unix:/run/dovecot/lmtp", "lmtp:unix:/run/dovecot/lmtp"},
      {"lmtp:unix:relative/lmtp", "lmtp:unix:relative/lmtp"},
      {"smtp:[10.0.0.5]:25", "smtp:[10.0.0.5]:25"},
      {"smtp:[10.0.0.5]", "smtp:[10.0.0.5]:25"},
      {"smtp:[2001:db8::5]:2525", "smtp:[2001:db8::5]:2525"},
      {"smtp:[2001:DB8:0::5]", "smtp:[2001:db8::5]:25"},
      {"smtp:[192.0.2.1]:65535", "smtp:[192.0.2.1]:65535"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<NextHop> hop = NextHop::Parse(c.in);
    ASSERT_TRUE(hop.ok()) << c.in << ": " << hop.status();
    EXPECT_EQ(hop->ToString(), c.out) << c.in;
    absl::StatusOr<NextHop> again = NextHop::Parse(hop->ToString());
    ASSERT_TRUE(again.ok()) << c.out;
    EXPECT_TRUE(*again == *hop) << c.out;
  }
}

TEST(NextHopTest, Fields) {
  absl::StatusOr<NextHop> unix_hop = NextHop::Parse("lmtp:unix:/run/dovecot/lmtp");
  ASSERT_TRUE(unix_hop.ok());
  EXPECT_EQ(unix_hop->protocol, HopProtocol::kLmtp);
  EXPECT_TRUE(unix_hop->is_unix);
  EXPECT_EQ(unix_hop->unix_path, "/run/dovecot/lmtp");
  absl::StatusOr<NextHop> smtp = NextHop::Parse("smtp:[2001:db8::5]:2525");
  ASSERT_TRUE(smtp.ok());
  EXPECT_EQ(smtp->protocol, HopProtocol::kSmtp);
  EXPECT_FALSE(smtp->is_unix);
  EXPECT_EQ(smtp->inet.port, 2525);
  EXPECT_FALSE(smtp->inet.address.is_v4());
}

TEST(NextHopTest, Errors) {
  EXPECT_THAT(HopError("esmtp:[10.0.0.5]"), HasSubstr("expected \"lmtp:ADDRESS:PORT\""));
  EXPECT_THAT(HopError("SMTP:[10.0.0.5]"), HasSubstr("expected \"lmtp:ADDRESS:PORT\""));
  EXPECT_THAT(HopError(""), HasSubstr("expected"));
  EXPECT_THAT(HopError("smtp:10.0.0.5:25"), HasSubstr("goes in brackets, as in Postfix"));
  EXPECT_THAT(HopError("smtp:2001:db8::5"), HasSubstr("goes in brackets"));
  EXPECT_THAT(HopError("smtp:mail.example.test"), HasSubstr("is a host name"));
  EXPECT_THAT(HopError("smtp:mail.example.test:25"), HasSubstr("no DNS or MX lookups"));
  EXPECT_THAT(HopError("smtp:[mail.example.test]"), HasSubstr("is a host name"));
  EXPECT_THAT(HopError("lmtp:mailbox.internal:24"), HasSubstr("is a host name"));
  EXPECT_THAT(HopError("lmtp:localhost"), HasSubstr("is a host name"));
  EXPECT_THAT(HopError("lmtp:127.0.0.1"), HasSubstr("an LMTP hop needs a port"));
  EXPECT_THAT(HopError("lmtp:[::1]"), HasSubstr("an LMTP hop needs a port"));
  EXPECT_THAT(HopError("lmtp:::1:24"), HasSubstr("IPv6 address goes in brackets"));
  EXPECT_THAT(HopError("lmtp:127.0.0.1:0"), HasSubstr("bad port \"0\""));
  EXPECT_THAT(HopError("lmtp:127.0.0.1:65536"), HasSubstr("bad port"));
  EXPECT_THAT(HopError("lmtp:127.0.0.1:+24"), HasSubstr("bad port"));
  EXPECT_THAT(HopError("smtp:[10.0.0.5]:"), HasSubstr("bad port \"\""));
  EXPECT_THAT(HopError("smtp:[10.0.0.5]25"), HasSubstr("expected"));
  EXPECT_THAT(HopError("smtp:[10.0.0.5"), HasSubstr("no closing ']'"));
  EXPECT_THAT(HopError("smtp:[10.0.0.999]"), HasSubstr("is not an IP address"));
  EXPECT_THAT(HopError("smtp:[0.0.0.0]"), HasSubstr("unspecified address"));
  EXPECT_THAT(HopError("lmtp:[::]:24"), HasSubstr("unspecified address"));
  EXPECT_THAT(HopError("smtp:unix:/run/x"), HasSubstr("Unix sockets are for LMTP hops"));
  EXPECT_THAT(HopError("lmtp:unix:"), HasSubstr("expected a socket path"));
  EXPECT_THAT(HopError("lmtp:unix:/run/a\nb"), HasSubstr("control character"));
}

TEST(RouteConfigTest, NoRoutesByDefault) {
  absl::StatusOr<Config> config = Parse(
      "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
      "\"127.0.0.1:2525\"\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->routes.empty());
  const DeliveryConfig& d = config->delivery;
  EXPECT_FALSE(d.bounce_next_hop.has_value());
  EXPECT_EQ(d.retry_first, absl::Seconds(300));
  EXPECT_EQ(d.retry_max, absl::Seconds(4000));
  EXPECT_EQ(d.max_lifetime, absl::Seconds(432000));
  EXPECT_EQ(d.hop_down, absl::Seconds(60));
  EXPECT_EQ(d.connect_timeout, absl::Seconds(30));
  EXPECT_EQ(d.command_timeout, absl::Seconds(300));
  EXPECT_EQ(d.data_timeout, absl::Seconds(600));
}

TEST(RouteConfigTest, RouteDefaults) {
  absl::StatusOr<Config> config = Parse(Route(""));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->routes.size(), 1u);
  const RouteConfig& r = config->routes[0];
  EXPECT_THAT(r.domains, ElementsAre("example.test"));
  ASSERT_EQ(r.next_hop.size(), 1u);
  EXPECT_EQ(r.next_hop[0].ToString(), "smtp:[192.0.2.5]:25");
  EXPECT_EQ(r.tls, RouteTls::kOpportunistic);
  EXPECT_EQ(r.tls_ca, "");
  EXPECT_EQ(r.tls_name, "");
  EXPECT_EQ(r.max_connections, 20);
  EXPECT_FALSE(r.verify_recipients);
  EXPECT_EQ(r.verify_positive_ttl, absl::Hours(31 * 24));
  EXPECT_EQ(r.verify_negative_ttl, absl::Hours(3));
  EXPECT_EQ(r.verify_unreachable, VerifyUnreachable::kTempfail);
  ASSERT_TRUE(config->delivery.bounce_next_hop.has_value());
  EXPECT_EQ(config->delivery.bounce_next_hop->ToString(), "smtp:[192.0.2.6]:25");
}

TEST(RouteConfigTest, ReadsEveryKey) {
  absl::StatusOr<Config> config = Parse(
      "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
      "\"127.0.0.1:2525\"\n"
      "[policy]\nlocal_domains = [\"example.test\", \"a.example.org\"]\n"
      "[[route]]\n"
      "domains = [\"Example.Test.\", \"*.Example.Test\"]\n"
      "next_hop = [\"lmtp:unix:run/lmtp\", \"smtp:[10.0.0.5]\", \"lmtp:[::1]:24\"]\n"
      "tls = \"verify\"\n"
      "tls_ca = \"certs/relay-ca.pem\"\n"
      "tls_name = \"Relay.Example.Test.\"\n"
      "max_connections = 5\n"
      "verify_recipients = true\n"
      "verify_positive_ttl_s = 86400\n"
      "verify_negative_ttl_s = 600\n"
      "verify_unreachable = \"accept\"\n"
      "[[route]]\n"
      "domains = [\"*\"]\n"
      "next_hop = [\"lmtp:127.0.0.1:24\"]\n"
      "[delivery]\n"
      "bounce_next_hop = \"lmtp:unix:/run/bounce\"\n"
      "retry_first_s = 60\n"
      "retry_max_s = 600\n"
      "max_lifetime_s = 86400\n"
      "hop_down_s = 0\n"
      "connect_timeout_s = 10\n"
      "command_timeout_s = 120\n"
      "data_timeout_s = 900\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->routes.size(), 2u);
  const RouteConfig& r = config->routes[0];
  EXPECT_THAT(r.domains, ElementsAre("example.test", "*.example.test"));
  ASSERT_EQ(r.next_hop.size(), 3u);
  EXPECT_EQ(r.next_hop[0].ToString(), "lmtp:unix:/etc/ringmx/run/lmtp");  // resolved
  EXPECT_EQ(r.next_hop[1].ToString(), "smtp:[10.0.0.5]:25");
  EXPECT_EQ(r.next_hop[2].ToString(), "lmtp:[::1]:24");
  EXPECT_EQ(r.tls, RouteTls::kVerify);
  EXPECT_EQ(r.tls_ca, "/etc/ringmx/certs/relay-ca.pem");
  EXPECT_EQ(r.tls_name, "relay.example.test");
  EXPECT_EQ(r.max_connections, 5);
  EXPECT_TRUE(r.verify_recipients);
  EXPECT_EQ(r.verify_positive_ttl, absl::Seconds(86400));
  EXPECT_EQ(r.verify_negative_ttl, absl::Seconds(600));
  EXPECT_EQ(r.verify_unreachable, VerifyUnreachable::kAccept);
  // A route of lmtp: hops only is plain.
  EXPECT_THAT(config->routes[1].domains, ElementsAre("*"));
  EXPECT_EQ(config->routes[1].tls, RouteTls::kNone);
  const DeliveryConfig& d = config->delivery;
  EXPECT_EQ(d.bounce_next_hop->ToString(), "lmtp:unix:/run/bounce");
  EXPECT_EQ(d.retry_first, absl::Seconds(60));
  EXPECT_EQ(d.retry_max, absl::Seconds(600));
  EXPECT_EQ(d.max_lifetime, absl::Seconds(86400));
  EXPECT_EQ(d.hop_down, absl::ZeroDuration());
  EXPECT_EQ(d.connect_timeout, absl::Seconds(10));
  EXPECT_EQ(d.command_timeout, absl::Seconds(120));
  EXPECT_EQ(d.data_timeout, absl::Seconds(900));
}

TEST(RouteConfigTest, RoutedDomainsNeedNotBeLocal) {
  // Relay clients' mail to other domains goes by route too.
  EXPECT_TRUE(Parse(With("[[route]]\ndomains = [\"example.test\", \"partner.example\"]\n"
                         "next_hop = [\"smtp:[192.0.2.5]\"]\n"))
                  .ok());
}

TEST(RouteConfigTest, LocalDomainCoveredByAWildcardOrTheDefault) {
  const std::string head =
      "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
      "\"127.0.0.1:2525\"\n[policy]\nlocal_domains = [\"a.b.example.test\"]\n"
      "[delivery]\nbounce_next_hop = \"smtp:[192.0.2.6]\"\n[[route]]\nnext_hop = "
      "[\"smtp:[192.0.2.5]\"]\n";
  EXPECT_TRUE(Parse(head + "domains = [\"*.example.test\"]\n").ok());
  EXPECT_TRUE(Parse(head + "domains = [\"*.b.example.test\"]\n").ok());
  EXPECT_TRUE(Parse(head + "domains = [\"*\"]\n").ok());
  EXPECT_EQ(ErrorOf(head + "domains = [\"*.a.b.example.test\"]\n"),
            "ringmx.toml:6: policy.local_domains[0]: \"a.b.example.test\" has no [[route]]: mail "
            "accepted for it could never be delivered; list it in a route's domains or add a "
            "default route (domains = [\"*\"])");
}

TEST(RouteConfigErrorTest, BounceNextHopIsRequiredWithRoutes) {
  const std::string routes_only =
      "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
      "\"127.0.0.1:2525\"\n[[route]]\ndomains = [\"*\"]\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n";
  EXPECT_EQ(ErrorOf(routes_only),
            "ringmx.toml:5: delivery: missing required key \"bounce_next_hop\": with [[route]] "
            "set, failed deliveries are reported to their senders (RFC 3464 DSNs) through this "
            "hop");
  EXPECT_THAT(ErrorOf(routes_only + "[delivery]\nretry_first_s = 60\n"),
              HasSubstr("ringmx.toml:8: delivery: missing required key \"bounce_next_hop\""));
  // [delivery] alone, without routes, is fine.
  EXPECT_TRUE(Parse("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
                    "\"127.0.0.1:2525\"\n[delivery]\nretry_first_s = 60\n")
                  .ok());
}

TEST(RouteConfigErrorTest, BadHopsNameTheKey) {
  EXPECT_EQ(ErrorOf(With("[[route]]\ndomains = [\"example.test\"]\n"
                         "next_hop = [\"lmtp:127.0.0.1:24\", \"smtp:relay.example.test\"]\n")),
            "ringmx.toml:11: route[0].next_hop[1]: \"relay.example.test\" is a host name; next "
            "hops are IP addresses or Unix sockets in this version (ringmx does no DNS or MX "
            "lookups): write e.g. \"smtp:[192.0.2.5]:25\"");
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"x.test\"]\nnext_hop = [\"smtp:1.2.3.4\"]\n")),
              HasSubstr("ringmx.toml:14: route[1].next_hop[0]: an SMTP hop's address goes in "
                        "brackets"));
  EXPECT_EQ(ErrorOf(With("[delivery]\n")),  // a second [delivery]: TOML syntax error
            ErrorOf(With("[delivery]\n")));
  EXPECT_THAT(ErrorOf(absl::StrCat(
                  "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
                  "\"127.0.0.1:2525\"\n[delivery]\nbounce_next_hop = \"lmtp:127.0.0.1\"\n")),
              HasSubstr("ringmx.toml:6: delivery.bounce_next_hop: an LMTP hop needs a port"));
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"x.test\"]\nnext_hop = []\n")),
              HasSubstr("ringmx.toml:14: route[1].next_hop: must list at least one hop"));
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"x.test\"]\nnext_hop = \"lmtp:[::1]:24\"\n")),
              HasSubstr("route[1].next_hop: expected an array of strings, got a string"));
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"x.test\"]\n"
                            "next_hop = [\"smtp:[192.0.2.5]\", \"smtp:[192.0.2.5]:25\"]\n")),
              HasSubstr("route[1].next_hop[1]: \"smtp:[192.0.2.5]:25\" is listed twice"));
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"x.test\"]\nnext_hop = [\"lmtp:unix:" +
                            std::string(120, 'p') + "\"]\n")),
              HasSubstr("route[1].next_hop[0]: a Unix socket path may have at most 107 bytes"));
}

TEST(RouteConfigErrorTest, MissingKeysNameTheRoute) {
  EXPECT_EQ(ErrorOf(With("[[route]]\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n")),
            "ringmx.toml:9: route[0]: missing required key \"domains\"");
  EXPECT_EQ(ErrorOf(With("[[route]]\ndomains = [\"example.test\"]\n")),
            "ringmx.toml:9: route[0]: missing required key \"next_hop\"");
}

TEST(RouteConfigErrorTest, BadDomains) {
  EXPECT_THAT(ErrorOf(With("[[route]]\ndomains = []\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n")),
              HasSubstr("ringmx.toml:10: route[0].domains: must list at least one domain"));
  for (std::string_view bad : {"*.", "**", "*.*.example.test", "a b.test", "example.test..",
                               "192.0.2.1", "[192.0.2.1]", "ex*ample.test", ""}) {
    EXPECT_THAT(ErrorOf(Route(absl::StrCat("[[route]]\ndomains = [\"", Av(bad),
                                           "\"]\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n"))),
                HasSubstr("route[1].domains[0]: expected a domain name, \"*.domain\" or \"*\""))
        << bad;
  }
}

TEST(RouteConfigErrorTest, DuplicateDomainsNameBothRoutes) {
  EXPECT_EQ(ErrorOf(Route("[[route]]\ndomains = [\"x.test\", \"Example.Test.\"]\n"
                          "next_hop = [\"lmtp:127.0.0.1:24\"]\n")),
            "ringmx.toml:13: route[1].domains[1]: \"example.test\" is already listed at "
            "route[0].domains[0], line 10");
  EXPECT_THAT(ErrorOf(Route("[[route]]\ndomains = [\"*\"]\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n"
                            "[[route]]\ndomains = [\"*\"]\nnext_hop = [\"lmtp:127.0.0.1:25\"]\n")),
              HasSubstr("ringmx.toml:16: route[2].domains[0]: only one default route (\"*\") is "
                        "allowed; \"*\" is already listed at route[1].domains[0], line 13"));
  EXPECT_THAT(
      ErrorOf(
          With("[[route]]\ndomains = [\"a.test\", \"a.test\"]\nnext_hop = [\"lmtp:[::1]:24\"]\n")),
      HasSubstr("route[0].domains[1]: \"a.test\" is already listed at route[0].domains[0]"));
  // A wildcard and the exact name are different entries.
  EXPECT_TRUE(Parse(Route("[[route]]\ndomains = [\"*.example.test\"]\n"
                          "next_hop = [\"lmtp:127.0.0.1:24\"]\n"))
                  .ok());
}

TEST(RouteConfigErrorTest, TlsRules) {
  EXPECT_EQ(ErrorOf(Route("tls = \"verify\"\ntls_name = \"relay.example.test\"\n")),
            "ringmx.toml:12: route[0].tls: tls = \"verify\" needs tls_ca, the CA bundle the hop's "
            "certificate is verified against");
  EXPECT_THAT(ErrorOf(Route("tls = \"verify\"\ntls_ca = \"ca.pem\"\n")),
              HasSubstr("route[0].tls: tls = \"verify\" needs tls_name"));
  EXPECT_THAT(ErrorOf(Route("tls = \"verify\"\ntls_ca = \"\"\ntls_name = \"r.example.test\"\n")),
              HasSubstr("ringmx.toml:13: route[0].tls_ca: must not be empty"));
  EXPECT_THAT(ErrorOf(Route("tls = \"verify\"\ntls_ca = \"ca.pem\"\ntls_name = \"\"\n")),
              HasSubstr("ringmx.toml:14: route[0].tls_name: must not be empty"));
  EXPECT_THAT(ErrorOf(Route("tls = \"verify\"\ntls_ca = \"ca.pem\"\ntls_name = \"not a name\"\n")),
              HasSubstr("route[0].tls_name: expected the domain name the hop's certificate holds"));
  EXPECT_THAT(ErrorOf(Route("tls_ca = \"ca.pem\"\n")),
              HasSubstr("route[0].tls_ca: tls_ca is used only with tls = \"verify\""));
  EXPECT_THAT(ErrorOf(Route("tls = \"opportunistic\"\ntls_name = \"r.example.test\"\n")),
              HasSubstr("route[0].tls_name: tls_name is used only with tls = \"verify\""));
  EXPECT_THAT(ErrorOf(Route("tls = \"required\"\n")),
              HasSubstr("route[0].tls: expected one of \"none\", \"opportunistic\", \"verify\""));
  EXPECT_EQ(ErrorOf(With("[[route]]\ndomains = [\"example.test\"]\n"
                         "next_hop = [\"lmtp:127.0.0.1:24\"]\ntls = \"opportunistic\"\n")),
            "ringmx.toml:12: route[0].tls: tls applies to smtp: hops and this route has only "
            "lmtp: hops; leave tls out or set \"none\"");
  EXPECT_TRUE(Parse(With("[[route]]\ndomains = [\"example.test\"]\n"
                         "next_hop = [\"lmtp:127.0.0.1:24\"]\ntls = \"none\"\n"))
                  .ok());
  absl::StatusOr<Config> verify =
      Parse(Route("tls = \"verify\"\ntls_ca = \"/ca.pem\"\ntls_name = \"r.example.test\"\n"));
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_EQ(verify->routes[0].tls_ca, "/ca.pem");
}

TEST(RouteConfigErrorTest, RouteValuesOutOfRange) {
  EXPECT_EQ(ErrorOf(Route("max_connections = 0\n")),
            "ringmx.toml:12: route[0].max_connections: must be between 1 and 1000 per shard and "
            "hop, got 0");
  EXPECT_THAT(ErrorOf(Route("max_connections = 1001\n")), HasSubstr("got 1001"));
  EXPECT_THAT(ErrorOf(Route("verify_recipients = 1\n")),
              HasSubstr("route[0].verify_recipients: expected a boolean, got an integer"));
  EXPECT_THAT(ErrorOf(Route("verify_positive_ttl_s = 0\n")),
              HasSubstr("route[0].verify_positive_ttl_s: must be between 1 and 31536000"));
  EXPECT_THAT(ErrorOf(Route("verify_negative_ttl_s = 31536001\n")),
              HasSubstr("route[0].verify_negative_ttl_s: must be between 1 and 31536000"));
  EXPECT_THAT(ErrorOf(Route("verify_unreachable = \"reject\"\n")),
              HasSubstr("route[0].verify_unreachable: expected one of \"tempfail\", \"accept\""));
  EXPECT_THAT(ErrorOf(Route("verify_recipient = true\n")),
              HasSubstr("route[0]: unknown key \"verify_recipient\" (did you mean "
                        "\"verify_recipients\"?)"));
  EXPECT_THAT(ErrorOf(With("route = 1\n")), HasSubstr("ringmx.toml:9: delivery: unknown key"));
  EXPECT_THAT(ErrorOf("hostname = \"mx.example.test\"\nroute = 1\n[[listener]]\nname = \"mx\"\n"
                      "address = \"127.0.0.1:2525\"\n"),
              HasSubstr("ringmx.toml:2: route: expected an array of tables ([[route]])"));
}

TEST(RouteConfigErrorTest, DeliveryValuesOutOfRange) {
  const auto delivery = [](std::string_view keys) {
    return absl::StrCat(
        "hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\naddress = "
        "\"127.0.0.1:2525\"\n[delivery]\n",
        Av(keys));
  };
  EXPECT_EQ(ErrorOf(delivery("retry_first_s = 0\n")),
            "ringmx.toml:6: delivery.retry_first_s: must be between 1 and 86400, got 0");
  EXPECT_THAT(ErrorOf(delivery("retry_max_s = 86401\n")),
              HasSubstr("delivery.retry_max_s: must be between 1 and 86400"));
  EXPECT_EQ(ErrorOf(delivery("retry_first_s = 600\nretry_max_s = 300\n")),
            "ringmx.toml:6: delivery.retry_first_s: delivery.retry_first_s (600) must not be more "
            "than delivery.retry_max_s (300): retries start at the first and double up to the "
            "second");
  EXPECT_THAT(ErrorOf(delivery("retry_first_s = 5000\n")),
              HasSubstr("delivery.retry_first_s (5000) must not be more than delivery.retry_max_s "
                        "(4000)"));
  EXPECT_THAT(ErrorOf(delivery("retry_max_s = 100\n")),
              HasSubstr("ringmx.toml:6: delivery.retry_max_s: delivery.retry_first_s (300)"));
  EXPECT_THAT(ErrorOf(delivery("max_lifetime_s = -1\n")),
              HasSubstr("delivery.max_lifetime_s: must be between 0 and 8640000"));
  EXPECT_THAT(ErrorOf(delivery("hop_down_s = 3601\n")),
              HasSubstr("delivery.hop_down_s: must be between 0 and 3600 (0: never mark a hop "
                        "down), got 3601"));
  EXPECT_THAT(ErrorOf(delivery("connect_timeout_s = 0\n")),
              HasSubstr("delivery.connect_timeout_s: must be between 1 and 600"));
  EXPECT_THAT(ErrorOf(delivery("command_timeout_s = 3601\n")),
              HasSubstr("delivery.command_timeout_s: must be between 1 and 3600"));
  EXPECT_THAT(ErrorOf(delivery("data_timeout_s = 0\n")),
              HasSubstr("delivery.data_timeout_s: must be between 1 and 86400"));
  EXPECT_THAT(ErrorOf(delivery("bounce_next_hop = [\"smtp:[192.0.2.6]\"]\n")),
              HasSubstr("delivery.bounce_next_hop: expected a string, got an array"));
  EXPECT_THAT(ErrorOf(delivery("retry_max = 100\n")),
              HasSubstr("delivery: unknown key \"retry_max\" (did you mean \"retry_max_s\"?)"));
  EXPECT_TRUE(Parse(delivery("max_lifetime_s = 0\nhop_down_s = 0\nretry_first_s = 4000\n")).ok());
}

}  // namespace
}  // namespace ringmx::core
