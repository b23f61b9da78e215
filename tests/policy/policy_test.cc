// policy/policy.h: local domains, relay permission and the RCPT verdict, from plain values.
#include "policy/policy.h"

#include <memory>

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

}  // namespace
}  // namespace ringmx::policy
