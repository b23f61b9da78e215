// policy/policy.h: local domains, relay permission and the RCPT verdict, from plain values.
#include "policy/policy.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ringmx::policy {
namespace {

std::shared_ptr<const core::Snapshot> MakeSnapshot() {
  core::Config config;
  config.hostname = "MX.Example.TEST";
  config.policy.local_domains = {"example.test", "Example.ORG"};
  config.policy.relay_networks = {*core::Cidr::Parse("10.0.0.0/8"),
                                  *core::Cidr::Parse("192.0.2.128/25"),
                                  *core::Cidr::Parse("2001:db8:1::/48")};
  return core::Snapshot::Build(std::move(config), 1);
}

ConnectionFacts Client(std::string_view endpoint) {
  ConnectionFacts facts;
  facts.client = *core::Endpoint::Parse(endpoint);
  return facts;
}

TEST(PolicyTest, LocalDomainsMatchInAnyCaseWithOneFinalDot) {
  auto s = MakeSnapshot();
  EXPECT_TRUE(IsLocalDomain(*s, "example.test"));
  EXPECT_TRUE(IsLocalDomain(*s, "EXAMPLE.Test"));
  EXPECT_TRUE(IsLocalDomain(*s, "example.org"));  // configured in mixed case
  EXPECT_TRUE(IsLocalDomain(*s, "example.test."));
  EXPECT_FALSE(IsLocalDomain(*s, "example.test.."));
  EXPECT_FALSE(IsLocalDomain(*s, "sub.example.test"));
  EXPECT_FALSE(IsLocalDomain(*s, "xexample.test"));
  EXPECT_FALSE(IsLocalDomain(*s, ""));
  EXPECT_FALSE(IsLocalDomain(*s, "."));
  EXPECT_FALSE(IsLocalDomain(*s, std::string(300, 'a')));
}

TEST(PolicyTest, RelayAllowedForRelayNetworksAndAuthenticatedClients) {
  auto s = MakeSnapshot();
  EXPECT_TRUE(RelayAllowed(*s, Client("10.255.0.1:1")));
  EXPECT_TRUE(RelayAllowed(*s, Client("192.0.2.200:1")));
  EXPECT_FALSE(RelayAllowed(*s, Client("192.0.2.100:1")));
  EXPECT_TRUE(RelayAllowed(*s, Client("[2001:db8:1::9]:1")));
  EXPECT_FALSE(RelayAllowed(*s, Client("[2001:db8:2::9]:1")));
  EXPECT_TRUE(RelayAllowed(*s, Client("[::ffff:10.1.1.1]:1")));  // v4-mapped is IPv4
  EXPECT_FALSE(RelayAllowed(*s, Client("203.0.113.1:1")));
  ConnectionFacts authed = Client("203.0.113.1:1");
  authed.auth_identity = "alice";
  EXPECT_TRUE(RelayAllowed(*s, authed));
}

TEST(PolicyTest, RecipientVerdicts) {
  auto s = MakeSnapshot();
  const ConnectionFacts outsider = Client("203.0.113.1:1");
  EXPECT_EQ(CheckRecipient(*s, outsider, "user", "example.test"), RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "user", "EXAMPLE.ORG."), RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "user", "remote.test"), RecipientVerdict::kRelayDenied);
  EXPECT_EQ(CheckRecipient(*s, outsider, "user", "[192.0.2.1]"), RecipientVerdict::kRelayDenied);
  EXPECT_EQ(CheckRecipient(*s, outsider, "user", ""), RecipientVerdict::kRelayDenied);
  // Postmaster: bare or at our hostname, any case.
  EXPECT_EQ(CheckRecipient(*s, outsider, "postmaster", ""), RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "PostMaster", ""), RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "postmaster", "mx.example.test"),
            RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "POSTMASTER", "MX.EXAMPLE.TEST."),
            RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, outsider, "postmaster", "remote.test"),
            RecipientVerdict::kRelayDenied);
  // Sender-specified routing through a local domain is relaying.
  EXPECT_EQ(CheckRecipient(*s, outsider, "user%remote.test", "example.test"),
            RecipientVerdict::kRelayDenied);
  EXPECT_EQ(CheckRecipient(*s, outsider, "remote.test!user", "example.test"),
            RecipientVerdict::kRelayDenied);
  EXPECT_EQ(CheckRecipient(*s, outsider, "\"user@remote.test\"", "example.test"),
            RecipientVerdict::kRelayDenied);
  // Relay clients may send anywhere.
  EXPECT_EQ(CheckRecipient(*s, Client("10.0.0.1:1"), "user", "remote.test"),
            RecipientVerdict::kAccept);
  EXPECT_EQ(CheckRecipient(*s, Client("10.0.0.1:1"), "user%x", "example.test"),
            RecipientVerdict::kAccept);
}

// Listeners: 0 plaintext, 1 STARTTLS, 2 STARTTLS with tls_required, 3 implicit TLS; the STARTTLS
// ones exempt 198.51.100.0/24 and 2001:db8:9::/48 (no_tls_hosts).
std::shared_ptr<const core::Snapshot> TlsSnapshot() {
  core::Config config;
  config.hostname = "mx.example.test";
  const auto add = [&](core::TlsMode mode, bool required) {
    core::ListenerConfig& l = config.listeners.emplace_back();
    l.name = absl::StrCat("l", config.listeners.size() - 1);
    l.tls = mode;
    l.tls_required = required;
    if (mode == core::TlsMode::kStartTls) {
      l.no_tls_hosts = {*core::Cidr::Parse("198.51.100.0/24"),
                        *core::Cidr::Parse("2001:db8:9::/48")};
    }
  };
  add(core::TlsMode::kNone, false);
  add(core::TlsMode::kStartTls, false);
  add(core::TlsMode::kStartTls, true);
  add(core::TlsMode::kImplicit, true);
  return core::Snapshot::Build(std::move(config), 1);
}

ConnectionFacts On(const core::Snapshot& s, size_t listener, std::string_view client,
                   bool tls = false) {
  ConnectionFacts facts = Client(client);
  facts.listener = &s.config.listeners[listener];
  facts.tls = tls;
  if (tls) facts.tls_facts = core::TlsFacts{};
  return facts;
}

TEST(PolicyTlsTest, StartTlsIsOfferedOnStartTlsListenersUntilTlsIsUp) {
  auto s = TlsSnapshot();
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 0, "203.0.113.1:1")));
  EXPECT_TRUE(OfferStartTls(*s, On(*s, 1, "203.0.113.1:1")));
  EXPECT_TRUE(OfferStartTls(*s, On(*s, 2, "203.0.113.1:1")));
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 3, "203.0.113.1:1")));  // implicit: TLS from the start
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 1, "203.0.113.1:1", /*tls=*/true)));
  EXPECT_FALSE(OfferStartTls(*s, Client("203.0.113.1:1")));  // no listener
}

TEST(PolicyTlsTest, NoTlsHostsAreNotOfferedStartTls) {
  auto s = TlsSnapshot();
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 1, "198.51.100.7:1")));
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 1, "[2001:db8:9::1]:1")));
  EXPECT_FALSE(OfferStartTls(*s, On(*s, 1, "[::ffff:198.51.100.7]:1")));
  EXPECT_TRUE(OfferStartTls(*s, On(*s, 1, "198.51.101.7:1")));
  EXPECT_TRUE(OfferStartTls(*s, On(*s, 1, "[2001:db8:a::1]:1")));
}

TEST(PolicyTlsTest, TlsRequiredIsViolatedOnlyWithoutTls) {
  auto s = TlsSnapshot();
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 0, "203.0.113.1:1")));
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 1, "203.0.113.1:1")));
  EXPECT_TRUE(TlsRequiredViolated(*s, On(*s, 2, "203.0.113.1:1")));
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 2, "203.0.113.1:1", /*tls=*/true)));
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 3, "203.0.113.1:1", /*tls=*/true)));
  EXPECT_FALSE(TlsRequiredViolated(*s, Client("203.0.113.1:1")));
}

TEST(PolicyTlsTest, NoTlsHostsAreExemptFromTlsRequired) {
  // They are never offered STARTTLS, so requiring it would lock them out.
  auto s = TlsSnapshot();
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 2, "198.51.100.7:1")));
  EXPECT_TRUE(TlsRequiredViolated(*s, On(*s, 2, "198.51.101.7:1")));
}

}  // namespace
}  // namespace ringmx::policy
