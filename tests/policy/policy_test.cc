// policy/policy.h: local domains, relay permission and the RCPT verdict, from plain values.
#include "policy/policy.h"

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "core/recipient_table.h"
#include "core/strings.h"

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

TEST(PolicyTlsTest, NoTlsHostsAreNotExemptFromTlsRequired) {
  // RFC 3207 section 4: the loader refuses no_tls_hosts on a tls_required listener; a Snapshot
  // built by hand with both still requires TLS of everyone.
  auto s = TlsSnapshot();
  EXPECT_TRUE(TlsRequiredViolated(*s, On(*s, 2, "198.51.100.7:1")));
  EXPECT_TRUE(TlsRequiredViolated(*s, On(*s, 2, "198.51.101.7:1")));
  EXPECT_FALSE(TlsRequiredViolated(*s, On(*s, 2, "198.51.100.7:1", /*tls=*/true)));
}

// ---------------------------------------------------------------------------------------------
// The RCPT rules and their order (docs/policy.md), from tables of facts.

const std::string kListedCert = std::string(32, 'a') + std::string(32, '0');
const std::string kUnlistedCert = std::string(64, 'b');

// Local domains: example.test (no recipients lines: any user), example.org (alice and Bob listed),
// example.net (a catch-all); relay networks 10.0.0.0/8 and 2001:db8:1::/48; kListedCert may
// relay. remote.test is in the recipients file but not local: its lines mean nothing.
std::shared_ptr<const core::Snapshot> RulesSnapshot() {
  core::Config config;
  config.hostname = "mx.example.test";
  config.policy.local_domains = {"example.test", "example.org", "example.net"};
  config.policy.relay_networks = {*core::Cidr::Parse("10.0.0.0/8"),
                                  *core::Cidr::Parse("2001:db8:1::/48")};
  config.policy.relay_client_certs = {kListedCert};
  config.policy.recipients = "recipients";
  absl::StatusOr<core::RecipientTable> table = core::RecipientTable::Parse(
      "# valid users\n"
      "alice@example.org\n"
      "Bob@Example.ORG.\n"
      "@example.net\n"
      "carol@example.net\n"
      "dave@remote.test\n",
      "recipients");
  EXPECT_TRUE(table.ok()) << table.status();
  return core::Snapshot::Build(std::move(config), 1,
                               std::make_shared<const core::RecipientTable>(*std::move(table)));
}

enum Who : uint8_t {
  kOutsider,    // 203.0.113.1, nothing else
  kNetwork,     // 10.1.2.3
  kNetwork6,    // [2001:db8:1::7]
  kAuthed,      // outsider, AUTH as "alice"
  kNetAuthed,   // 10.1.2.3 and AUTH as "alice"
  kCert,        // outsider with a verified kListedCert
  kAuthedCert,  // outsider, AUTH as "alice", verified kListedCert
  kOtherCert,   // outsider with a verified kOtherCert
  kUnverified,  // outsider with kListedCert that did not verify
  kCertNoTls,   // kCert's certificate facts but facts.tls false (cannot happen; must not relay)
};

ConnectionFacts FactsOf(Who who) {
  const bool from_network = who == kNetwork || who == kNetAuthed;
  ConnectionFacts facts = Client(who == kNetwork6 ? "[2001:db8:1::7]:1"
                                 : from_network   ? "10.1.2.3:1"
                                                  : "203.0.113.1:1");
  if (who == kAuthed || who == kNetAuthed || who == kAuthedCert) facts.auth_identity = "alice";
  if (who == kCert || who == kAuthedCert || who == kOtherCert || who == kUnverified ||
      who == kCertNoTls) {
    facts.tls = who != kCertNoTls;
    core::TlsFacts tls;
    tls.version = "TLSv1.3";
    tls.client_cert.result = who == kUnverified ? core::ClientCertResult::kNotVerified
                                                : core::ClientCertResult::kVerified;
    tls.client_cert.sha256_fingerprint = who == kOtherCert ? kUnlistedCert : kListedCert;
    facts.tls_facts = tls;
  }
  return facts;
}

struct RuleCase {
  Who who;
  std::string_view local_part;
  std::string_view domain;
  RecipientVerdict verdict;
  RecipientRule rule;
  std::string_view decision;  // DecisionName
  std::string reason;         // DecisionReason
};

const RuleCase kRuleCases[] = {
    // 1. Postmaster, before everything, even where the recipients file does not list it.
    {kOutsider, "postmaster", "", RecipientVerdict::kAccept, RecipientRule::kPostmaster, "accept",
     "postmaster"},
    {kOutsider, "PostMaster", "MX.EXAMPLE.TEST.", RecipientVerdict::kAccept,
     RecipientRule::kPostmaster, "accept", "postmaster"},
    {kOutsider, "postmaster", "example.org", RecipientVerdict::kAccept, RecipientRule::kPostmaster,
     "accept", "postmaster"},
    {kOutsider, "postmaster", "remote.test", RecipientVerdict::kRelayDenied,
     RecipientRule::kRelayDenied, "reject", "relay-denied"},
    // 2. Local domains and their recipients lists.
    {kOutsider, "anyone", "example.test", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "anyone", "EXAMPLE.test.", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "alice", "example.org", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "ALICE", "Example.Org.", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "bob", "example.org", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "mallory", "example.org", RecipientVerdict::kUnknownUser,
     RecipientRule::kUnknownUser, "reject", "unknown-user"},
    {kOutsider, "alice.x", "example.org", RecipientVerdict::kUnknownUser,
     RecipientRule::kUnknownUser, "reject", "unknown-user"},
    {kOutsider, "anyone", "example.net", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kOutsider, "carol", "example.net", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    // Rule 2 comes before the relay rights: they do not make an unknown local user valid.
    {kNetwork, "mallory", "example.org", RecipientVerdict::kUnknownUser,
     RecipientRule::kUnknownUser, "reject", "unknown-user"},
    {kAuthed, "mallory", "example.org", RecipientVerdict::kUnknownUser, RecipientRule::kUnknownUser,
     "reject", "unknown-user"},
    {kCert, "mallory", "example.org", RecipientVerdict::kUnknownUser, RecipientRule::kUnknownUser,
     "reject", "unknown-user"},
    {kNetwork, "anyone", "example.test", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    {kCert, "alice", "example.org", RecipientVerdict::kAccept, RecipientRule::kLocalDomain,
     "accept", "local-domain"},
    // A listed address of a domain that is not local is not local mail.
    {kOutsider, "dave", "remote.test", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied,
     "reject", "relay-denied"},
    // Sender-specified routing through a local domain is relaying.
    {kOutsider, "user%remote.test", "example.test", RecipientVerdict::kRelayDenied,
     RecipientRule::kSenderRouting, "reject", "relay-denied:sender-routing"},
    {kOutsider, "remote.test!user", "example.test", RecipientVerdict::kRelayDenied,
     RecipientRule::kSenderRouting, "reject", "relay-denied:sender-routing"},
    {kOutsider, "\"user@remote.test\"", "example.org", RecipientVerdict::kRelayDenied,
     RecipientRule::kSenderRouting, "reject", "relay-denied:sender-routing"},
    {kNetwork, "user%remote.test", "example.org", RecipientVerdict::kAccept,
     RecipientRule::kRelayNetwork, "relay", "relay_networks:10.0.0.0/8"},
    {kAuthed, "user%remote.test", "example.test", RecipientVerdict::kAccept,
     RecipientRule::kAuthenticated, "relay", "auth:alice"},
    // 3. Relay networks, IPv4 and IPv6; before AUTH.
    {kNetwork, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kRelayNetwork,
     "relay", "relay_networks:10.0.0.0/8"},
    {kNetwork6, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kRelayNetwork,
     "relay", "relay_networks:2001:db8:1::/48"},
    {kNetAuthed, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kRelayNetwork,
     "relay", "relay_networks:10.0.0.0/8"},
    // 4. Authenticated; before the certificate.
    {kAuthed, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kAuthenticated,
     "relay", "auth:alice"},
    {kAuthedCert, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kAuthenticated,
     "relay", "auth:alice"},
    // 5. A verified client certificate whose fingerprint is listed, and nothing less.
    {kCert, "user", "remote.test", RecipientVerdict::kAccept, RecipientRule::kClientCert, "relay",
     "client_cert:" + kListedCert},
    {kOtherCert, "user", "remote.test", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied,
     "reject", "relay-denied"},
    {kUnverified, "user", "remote.test", RecipientVerdict::kRelayDenied,
     RecipientRule::kRelayDenied, "reject", "relay-denied"},
    {kCertNoTls, "user", "remote.test", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied,
     "reject", "relay-denied"},
    // 6. Everything else.
    {kOutsider, "user", "remote.test", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied,
     "reject", "relay-denied"},
    {kOutsider, "user", "[192.0.2.1]", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied,
     "reject", "relay-denied"},
    {kOutsider, "user", "", RecipientVerdict::kRelayDenied, RecipientRule::kRelayDenied, "reject",
     "relay-denied"},
    {kOutsider, "user", "sub.example.test", RecipientVerdict::kRelayDenied,
     RecipientRule::kRelayDenied, "reject", "relay-denied"},
};

TEST(PolicyRulesTest, EveryRuleInOrder) {
  auto s = RulesSnapshot();
  for (const RuleCase& c : kRuleCases) {
    SCOPED_TRACE(absl::StrCat("who=", static_cast<int>(c.who), " rcpt=", core::Av(c.local_part),
                              "@", core::Av(c.domain)));
    const ConnectionFacts facts = FactsOf(c.who);
    const RecipientDecision d = DecideRecipient(*s, facts, c.local_part, c.domain);
    EXPECT_EQ(d.verdict, c.verdict);
    EXPECT_EQ(d.rule, c.rule);
    EXPECT_EQ(DecisionName(d), c.decision);
    EXPECT_EQ(DecisionReason(d), c.reason);
    EXPECT_EQ(CheckRecipient(*s, facts, c.local_part, c.domain), c.verdict);
  }
}

TEST(PolicyRulesTest, RelayAllowedFollowsRulesThreeToFive) {
  auto s = RulesSnapshot();
  EXPECT_FALSE(RelayAllowed(*s, FactsOf(kOutsider)));
  EXPECT_TRUE(RelayAllowed(*s, FactsOf(kNetwork)));
  EXPECT_TRUE(RelayAllowed(*s, FactsOf(kNetwork6)));
  EXPECT_TRUE(RelayAllowed(*s, FactsOf(kAuthed)));
  EXPECT_TRUE(RelayAllowed(*s, FactsOf(kCert)));
  EXPECT_FALSE(RelayAllowed(*s, FactsOf(kOtherCert)));
  EXPECT_FALSE(RelayAllowed(*s, FactsOf(kUnverified)));
  EXPECT_FALSE(RelayAllowed(*s, FactsOf(kCertNoTls)));
}

TEST(PolicyRulesTest, WithoutARecipientsFileEveryLocalUserIsValid) {
  core::Config config;
  config.hostname = "mx.example.test";
  config.policy.local_domains = {"example.org"};
  auto s = core::Snapshot::Build(std::move(config), 1);
  const RecipientDecision d = DecideRecipient(*s, FactsOf(kOutsider), "mallory", "example.org");
  EXPECT_EQ(d.verdict, RecipientVerdict::kAccept);
  EXPECT_EQ(DecisionReason(d), "local-domain");
}

TEST(PolicyRulesTest, ReasonsStayOneTokenWhateverTheIdentity) {
  auto s = RulesSnapshot();
  ConnectionFacts facts = FactsOf(kOutsider);
  facts.auth_identity = "al ice\\\x01\xc3\xa9";
  const RecipientDecision d = DecideRecipient(*s, facts, "user", "remote.test");
  EXPECT_EQ(d.rule, RecipientRule::kAuthenticated);
  EXPECT_EQ(DecisionReason(d), "auth:al\\x20ice\\x5c\\x01\\xc3\\xa9");
  std::string line;
  AppendLogSafe(line, "a b@x");
  EXPECT_EQ(line, "a\\x20b@x");
}

}  // namespace
}  // namespace ringmx::policy
