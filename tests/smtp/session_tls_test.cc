// STARTTLS and implicit TLS through smtp::Session (RFC 3207, RFC 8314): the EHLO advertisement,
// the STARTTLS replies, the reset after the handshake, pipelined plaintext after STARTTLS
// (CVE-2011-0411), tls_required, handshake failure, and the TLS facts in the Received header and
// the envelope JSON. Transcripts go through CheckTls()/Check(), which replay them split at every
// byte boundary and one byte at a time.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "core/strings.h"
#include "core/tls_facts.h"
#include "smtp/session.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using testing::Check;
using testing::CheckTls;
using testing::EhloReply;
using testing::Env;
using testing::Greeting;
using testing::kT0;
using testing::kTlsHandshake;
using testing::Lines;
using testing::RunTls;
using testing::TlsPlan;
using testing::Transcript;

constexpr char kReady[] = "220 2.0.0 Ready to start TLS\r\n";
constexpr char kTlsRequired[] = "530 5.7.0 Must issue a STARTTLS command first\r\n";
constexpr char kBye[] = "221 2.0.0 Bye\r\n";
constexpr char kNeedMail[] = "503 5.5.1 Error: need MAIL command\r\n";
constexpr char kEhlo[] = "EHLO client.example\r\n";
constexpr char kUpgrade[] = "EHLO client.example\r\nSTARTTLS\r\n";
constexpr char kMessage[] =
    "EHLO client.example\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
    "DATA\r\nHi\r\n.\r\n";
constexpr char kDate[] = "Tue, 14 Nov 2023 22:13:20 +0000";
const std::string kFingerprint(64, 'a');

// The test listener (testing::TestConfig) as a STARTTLS listener; 198.51.100.0/24 is in its
// no_tls_hosts unless TLS is required (the loader refuses the two together).
core::Config StartTlsConfig(bool required = false) {
  core::Config config = testing::TestConfig();
  config.listeners[0].tls = core::TlsMode::kStartTls;
  config.listeners[0].tls_required = required;
  if (!required) config.listeners[0].no_tls_hosts = {*core::Cidr::Parse("198.51.100.0/24")};
  return config;
}

core::Config ImplicitConfig() {
  core::Config config = testing::TestConfig();
  config.listeners[0].tls = core::TlsMode::kImplicit;
  config.listeners[0].address = *core::Endpoint::Parse("192.0.2.10:465");
  return config;
}

std::string EhloWithStartTls() {
  return Lines({"250-mx.example.test", "250-PIPELINING", "250-SIZE 10000", "250-STARTTLS",
                "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-DSN", "250-SMTPUTF8",
                "250 CHUNKING"});
}

core::TlsFacts Tls13() {
  core::TlsFacts facts;
  facts.version = "TLSv1.3";
  facts.cipher = "TLS_AES_256_GCM_SHA384";
  facts.cipher_bits = 256;
  facts.cipher_alg_bits = 256;
  facts.sni = "mx.example.test";
  return facts;
}

core::TlsFacts WithClientCert(core::ClientCertResult result) {
  core::TlsFacts facts = Tls13();
  core::ClientCertFacts& cert = facts.client_cert;
  cert.result = result;
  cert.subject = "CN=client.example.test,O=Example";
  cert.issuer = "CN=Example Client CA,O=Example";
  cert.subject_cn = "client.example.test";
  cert.issuer_cn = "Example Client CA";
  cert.sha256_fingerprint = kFingerprint;
  if (result == core::ClientCertResult::kNotVerified) {
    cert.verify_error = "unable to get local issuer certificate";
  }
  return facts;
}

TlsPlan Plan(std::string over_tls, core::TlsFacts facts = Tls13()) {
  TlsPlan plan;
  plan.facts = std::move(facts);
  plan.over_tls = std::move(over_tls);
  return plan;
}

// The n-th (1-based) queue id minted at kT0 by shard 0.
std::string Id(int n) {
  core::QueueIdGenerator ids(0);
  std::string id;
  for (int i = 0; i < n; ++i) id = ids.Next(kT0);
  return id;
}

// What the client sees for kMessage.
std::string MessageReplies(int id) {
  return absl::StrCat(EhloReply(), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
                      "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as ", Id(id),
                      "\r\n");
}

// One message sent over STARTTLS with `facts`; returns its record.
core::SpoolRecord DeliverOverTls(const Env& env, const core::TlsFacts& facts) {
  Transcript t = CheckTls(env, kUpgrade, Plan(kMessage, facts));
  EXPECT_EQ(t.replies,
            Greeting() + EhloWithStartTls() + kReady + kTlsHandshake + MessageReplies(1));
  EXPECT_EQ(t.records.size(), 1u);
  return t.records.empty() ? core::SpoolRecord{} : t.records[0];
}

// The "tls" member of an envelope JSON, through the end of the object ("...,\"auth\":").
std::string TlsJson(const std::string& json) {
  const size_t begin = json.find("\"tls\":");
  const size_t end = json.find(",\"auth\":");
  if (begin == std::string::npos || end == std::string::npos) return "";
  return json.substr(begin, end - begin);
}

// A driver for tests that call the session directly.
class Driver {
 public:
  explicit Driver(const Env& env) : session_(env.snapshot, env.facts, ids_) {}
  Session& session() { return session_; }
  Output& out() { return out_; }
  std::string Take() {
    std::string r = std::move(out_.replies);
    out_.Clear();
    return r;
  }

 private:
  core::QueueIdGenerator ids_{0};
  Session session_;
  Output out_;
};

// --- The EHLO advertisement and the STARTTLS replies -------------------------------------------

TEST(SessionTlsTest, EhloAdvertisesStartTlsOnAStartTlsListener) {
  Env env(StartTlsConfig());
  EXPECT_EQ(Check(env, kEhlo).replies, Greeting() + EhloWithStartTls());
}

TEST(SessionTlsTest, PlaintextListenerNeitherAdvertisesNorAcceptsStartTls) {
  Env env;
  Transcript t = Check(env, kUpgrade);
  EXPECT_EQ(t.replies, Greeting() + EhloReply() + "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_EQ(t.tls_starts, 0);
}

TEST(SessionTlsTest, NoTlsHostsAreNotOfferedStartTls) {
  Env env(StartTlsConfig());
  env.facts.client = *core::Endpoint::Parse("198.51.100.7:40000");
  Transcript t = Check(env, kUpgrade);
  EXPECT_EQ(t.replies, Greeting() + EhloReply() + "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_EQ(t.tls_starts, 0);
}

TEST(SessionTlsTest, StartTlsTakesNoArguments) {
  Env env(StartTlsConfig());
  Transcript t = Check(env, "EHLO client.example\r\nSTARTTLS now\r\nNOOP\r\n");
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + "501 5.5.4 Syntax: STARTTLS\r\n" +
                           "250 2.0.0 Ok\r\n");
  EXPECT_EQ(t.tls_starts, 0);
}

TEST(SessionTlsTest, StartTlsNeedsNoEhloFirst) {
  // RFC 3207 does not require EHLO before STARTTLS, and neither does Postfix.
  Env env(StartTlsConfig());
  Transcript t = CheckTls(env, "STARTTLS\r\n", Plan(kEhlo));
  EXPECT_EQ(t.replies, Greeting() + kReady + kTlsHandshake + EhloReply());
  EXPECT_TRUE(t.tls);
}

// --- The upgrade --------------------------------------------------------------------------------

TEST(SessionTlsTest, AfterTheUpgradeTheClientMustEhloAgainAndStartTlsIsGone) {
  Env env(StartTlsConfig());
  Transcript t = CheckTls(env, kUpgrade,
                          Plan("MAIL FROM:<a@remote.test>\r\nEHLO again.example\r\nSTARTTLS\r\n"
                               "MAIL FROM:<a@remote.test>\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + kReady + kTlsHandshake +
                           "503 5.5.1 Error: send HELO/EHLO first\r\n" + EhloReply() +
                           "554 5.5.1 Error: TLS already active\r\n" + "250 2.1.0 Ok\r\n" + kBye);
  EXPECT_EQ(t.tls_starts, 1);
  EXPECT_TRUE(t.tls);
  EXPECT_EQ(t.helo, "again.example");
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "quit");
}

TEST(SessionTlsTest, TheUpgradeForgetsTheHeloName) {
  Env env(StartTlsConfig());
  Transcript t = CheckTls(env, kUpgrade, Plan(""));
  EXPECT_EQ(t.helo, "");
  EXPECT_TRUE(t.tls);
  EXPECT_FALSE(t.closed);
}

TEST(SessionTlsTest, StartTlsInsideATransactionDropsIt) {
  // Accepted like Postfix does; the transaction cannot survive the reset of RFC 3207 section 4.2.
  Env env(StartTlsConfig());
  Transcript t =
      CheckTls(env,
               "EHLO client.example\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
               "STARTTLS\r\n",
               Plan("EHLO client.example\r\nRCPT TO:<user@example.test>\r\nDATA\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" +
                           kReady + kTlsHandshake + EhloReply() + kNeedMail + kNeedMail + kBye);
  EXPECT_TRUE(t.records.empty());
}

// --- CVE-2011-0411: plaintext pipelined after STARTTLS never runs -------------------------------

TEST(SessionTlsTest, CommandsPipelinedAfterStartTlsAreDiscarded) {
  Env env(StartTlsConfig());
  const std::string plaintext =
      "EHLO client.example\r\nSTARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n"
      "RCPT TO:<user@example.test>\r\nDATA\r\nInjected\r\n.\r\nQUIT\r\n";
  const TlsPlan plan =
      Plan("EHLO client.example\r\nRCPT TO:<user@example.test>\r\nDATA\r\nQUIT\r\n");
  const std::string expected = Greeting() + EhloWithStartTls() + kReady + kTlsHandshake +
                               EhloReply() + kNeedMail + kNeedMail + kBye;

  // In the same segment as STARTTLS (and, through CheckTls, split at every offset).
  Transcript t = CheckTls(env, plaintext, plan);
  EXPECT_EQ(t.replies, expected);
  EXPECT_TRUE(t.records.empty());
  EXPECT_EQ(t.stats.commands, 6u);  // EHLO STARTTLS, then EHLO RCPT DATA QUIT over TLS
  EXPECT_EQ(t.end_reason, "quit");

  // In a second segment that the driver hands over before the handshake ends.
  const size_t after_starttls = plaintext.find("MAIL");
  Transcript two = RunTls(env, plaintext, plan, {after_starttls});
  EXPECT_EQ(two.replies, expected);
  EXPECT_TRUE(two.records.empty());
  EXPECT_EQ(two.stats.commands, 6u);
}

TEST(SessionTlsTest, APartialLineBeforeTheUpgradeIsNotCompletedAfterIt) {
  // "MAIL FROM:<evil@remote.test>" without its CRLF in plaintext, the CRLF over TLS: the two
  // halves must not join into a command.
  Env env(StartTlsConfig());
  Transcript t = CheckTls(env, "EHLO client.example\r\nSTARTTLS\r\nMAIL FROM:<evil@remote.test>",
                          Plan("\r\nEHLO client.example\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + kReady + kTlsHandshake +
                           "500 5.5.2 Error: command not recognized\r\n" + EhloReply() + kBye);
}

TEST(SessionTlsTest, PlaintextDeliveredDuringTheHandshakeIsDropped) {
  Env env(StartTlsConfig());
  Driver d(env);
  d.session().Start(kT0, d.out());
  d.session().OnInput(kUpgrade, kT0, d.out());
  EXPECT_TRUE(d.out().start_tls);
  EXPECT_FALSE(d.out().close);
  EXPECT_EQ(d.Take(), Greeting() + EhloWithStartTls() + kReady);
  EXPECT_TRUE(d.session().tls_handshake_pending());
  EXPECT_FALSE(d.out().start_tls);  // Clear() resets it

  d.session().OnInput("MAIL FROM:<evil@remote.test>\r\nQUIT\r\n", kT0, d.out());
  d.session().OnInput(std::string(1 << 20, 'x'), kT0, d.out());  // no 421 for "too much"
  EXPECT_EQ(d.Take(), "");
  EXPECT_FALSE(d.out().close);
  EXPECT_FALSE(d.session().closed());
  EXPECT_EQ(d.session().MemoryUsageForTest(), 0u);
  EXPECT_EQ(d.session().stats().commands, 2u);

  const absl::Time later = kT0 + absl::Seconds(5);
  d.session().OnTlsEstablished(Tls13(), later, d.out());
  EXPECT_EQ(d.Take(), "");  // no greeting after STARTTLS
  EXPECT_FALSE(d.session().tls_handshake_pending());
  EXPECT_TRUE(d.session().facts().tls);
  ASSERT_TRUE(d.session().facts().tls_facts.has_value());
  EXPECT_EQ(d.session().facts().tls_facts->cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(d.session().deadline(), later + absl::Seconds(300));

  d.session().OnInput("QUIT\r\n", later, d.out());
  EXPECT_EQ(d.Take(), kBye);
  EXPECT_TRUE(d.session().closed());
}

TEST(SessionTlsTest, StartTlsPipelinedAfterAMessageRunsWhenTheDeliveryIsAnswered) {
  Env env(StartTlsConfig());
  Transcript t =
      CheckTls(env, absl::StrCat(kMessage, "STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n"),
               Plan("RCPT TO:<user@example.test>\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies,
            absl::StrCat(Greeting(), EhloWithStartTls(), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued as ",
                         Id(1), "\r\n", kReady, kTlsHandshake, kNeedMail, kBye));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.stats.messages_accepted, 1u);
}

// --- Handshake end cases ------------------------------------------------------------------------

TEST(SessionTlsTest, AFailedHandshakeClosesWithoutAReply) {
  Env env(StartTlsConfig());
  TlsPlan plan = Plan("QUIT\r\n");
  plan.fail = true;
  Transcript t = CheckTls(env, kUpgrade, plan);
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + kReady + kTlsHandshake);
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "tls-failed");
  EXPECT_FALSE(t.tls);
}

TEST(SessionTlsTest, ATimeoutDuringTheHandshakeClosesWithoutAReply) {
  Env env(StartTlsConfig());
  Driver d(env);
  d.session().Start(kT0, d.out());
  d.session().OnInput(kUpgrade, kT0, d.out());
  d.Take();
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(300));
  d.session().OnTimeout(kT0 + absl::Seconds(299), d.out());
  EXPECT_FALSE(d.session().closed());
  d.session().OnTimeout(kT0 + absl::Seconds(300), d.out());
  EXPECT_EQ(d.Take(), "");
  EXPECT_TRUE(d.session().closed());
  EXPECT_EQ(d.session().end_reason(), "timeout");
}

TEST(SessionTlsTest, AShutdownDuringTheHandshakeIsAnsweredOverTls) {
  Env env(StartTlsConfig());
  Driver d(env);
  d.session().Start(kT0, d.out());
  d.session().OnInput(kUpgrade, kT0, d.out());
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "");
  EXPECT_FALSE(d.session().closed());
  d.session().OnTlsEstablished(Tls13(), kT0, d.out());
  EXPECT_TRUE(d.out().close);
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_EQ(d.session().end_reason(), "shutdown");
}

TEST(SessionTlsTest, OnTlsEstablishedIsIgnoredWhenNoHandshakeIsDue) {
  Env env(StartTlsConfig());
  Transcript t = CheckTls(env, kEhlo, Plan("MAIL FROM:<a@remote.test>\r\n"));
  EXPECT_EQ(t.replies, Greeting() + EhloWithStartTls() + "250 2.1.0 Ok\r\n");
  EXPECT_FALSE(t.tls);
  EXPECT_EQ(t.helo, "client.example");
}

// --- Implicit TLS -------------------------------------------------------------------------------

TEST(SessionTlsTest, ImplicitTlsGreetsOverTlsAndNeverOffersStartTls) {
  Env env(ImplicitConfig());
  core::TlsFacts facts = Tls13();
  facts.implicit = true;
  env.implicit_tls = facts;
  Transcript t = Check(env, absl::StrCat("EHLO client.example\r\nSTARTTLS\r\n", kMessage));
  EXPECT_EQ(t.replies, Greeting() + EhloReply() + "554 5.5.1 Error: TLS already active\r\n" +
                           MessageReplies(1));
  EXPECT_TRUE(t.tls);
  EXPECT_EQ(t.tls_starts, 0);
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_NE(t.records[0].trace_headers.find("with ESMTPS id"), std::string::npos);
  EXPECT_NE(t.records[0].envelope_json.find(R"("implicit":true)"), std::string::npos);
}

// --- tls_required -------------------------------------------------------------------------------

TEST(SessionTlsTest, TlsRequiredRefusesMailUntilStartTls) {
  Env env(StartTlsConfig(/*required=*/true));
  // BDAT's 6 octets ("QUIT\r\n") are read as its chunk and refused, never run as a command.
  const std::string plaintext =
      "EHLO client.example\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
      "DATA\r\nVRFY user\r\nHELP\r\nBDAT 6\r\nQUIT\r\nNOOP\r\nRSET\r\nHELO client.example\r\n"
      "FOO\r\nEXPN list\r\nSTARTTLS\r\n";
  Transcript t = CheckTls(env, plaintext, Plan(absl::StrCat(kMessage, "HELP\r\nQUIT\r\n")));
  EXPECT_EQ(t.replies,
            absl::StrCat(Greeting(), EhloWithStartTls(), kTlsRequired, kTlsRequired, kTlsRequired,
                         kTlsRequired, kTlsRequired, kTlsRequired, "250 2.0.0 Ok\r\n", kTlsRequired,
                         kTlsRequired, kTlsRequired, kTlsRequired, kReady, kTlsHandshake,
                         MessageReplies(1),
                         "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP "
                         "QUIT\r\n",
                         kBye));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_NE(t.records[0].trace_headers.find("with ESMTPS id"), std::string::npos);
}

// RFC 3207 section 4: before STARTTLS only NOOP, EHLO, STARTTLS and QUIT work; HELO, RSET,
// unknown and unimplemented verbs are refused like MAIL. Each command alone, after EHLO.
TEST(SessionTlsTest, TlsRequiredLeavesOnlyNoopEhloStartTlsAndQuit) {
  Env env(StartTlsConfig(/*required=*/true));
  const std::string refused[] = {"HELO client.example",
                                 "RSET",
                                 "RSET x",
                                 "EXPN list",
                                 "TURN",
                                 "ETRN example.test",
                                 "FOO",
                                 "FOO bar",
                                 "AUTH PLAIN",
                                 "VRFY user",
                                 "HELP",
                                 "MAIL FROM:<>",
                                 "RCPT TO:<user@example.test>",
                                 "DATA",
                                 "VERB"};
  for (const std::string& command : refused) {
    SCOPED_TRACE(command);
    EXPECT_EQ(Check(env, absl::StrCat(kEhlo, command, "\r\nQUIT\r\n")).replies,
              absl::StrCat(Greeting(), EhloWithStartTls(), kTlsRequired, kBye));
    // Before EHLO too.
    EXPECT_EQ(Check(env, absl::StrCat(command, "\r\nQUIT\r\n")).replies,
              absl::StrCat(Greeting(), kTlsRequired, kBye));
  }
  EXPECT_EQ(Check(env, "NOOP\r\nNOOP anything\r\nQUIT\r\n").replies,
            absl::StrCat(Greeting(), "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n", kBye));
  // A malformed line is not a command: it keeps its 500.
  EXPECT_EQ(Check(env, "NOOP\nQUIT\r\n").replies,
            absl::StrCat(Greeting(), "500 5.5.2 Error: bare CR or LF in command line\r\n", kBye));
}

TEST(SessionTlsTest, TlsRequiredHasNoExemptionForNoTlsHosts) {
  // The loader refuses no_tls_hosts on a tls_required listener; a Snapshot that has both anyway
  // still requires TLS of everyone (the listed client is not even offered STARTTLS).
  core::Config config = StartTlsConfig(/*required=*/true);
  config.listeners[0].no_tls_hosts = {*core::Cidr::Parse("198.51.100.0/24")};
  Env env(std::move(config));
  env.facts.client = *core::Endpoint::Parse("198.51.100.7:40000");
  EXPECT_EQ(Check(env, "EHLO client.example\r\nMAIL FROM:<a@remote.test>\r\n").replies,
            Greeting() + EhloReply() + kTlsRequired);
}

TEST(SessionTlsTest, TlsRequiredRefusalsCountAsProtocolErrors) {
  Env env(StartTlsConfig(/*required=*/true));
  std::string input = kEhlo;
  std::string expected = Greeting() + EhloWithStartTls();
  for (int i = 0; i < 20; ++i) {
    input += "MAIL FROM:<a@remote.test>\r\n";
    expected += kTlsRequired;
  }
  expected += "421 4.7.0 mx.example.test Error: too many errors\r\n";
  Transcript t = Check(env, input);
  EXPECT_EQ(t.replies, expected);
  EXPECT_EQ(t.end_reason, "too-many-errors");
}

// --- The Received header ------------------------------------------------------------------------

std::string Received(std::string_view protocol, std::string_view tls_lines) {
  return absl::StrCat("Received: from client.example ([203.0.113.5])\r\n", core::Av(tls_lines),
                      "\tby mx.example.test (ringmx) with ", core::Av(protocol), " id ", Id(1),
                      "\r\n\tfor <user@example.test>; ", kDate, "\r\n");
}

constexpr char kUsingTls13[] =
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n";

TEST(SessionTlsReceivedTest, TlsWithoutAClientCertificateRequest) {
  Env env(StartTlsConfig());
  EXPECT_EQ(
      DeliverOverTls(env, Tls13()).trace_headers,
      Received("ESMTPS", absl::StrCat(kUsingTls13, "\t(No client certificate requested)\r\n")));
}

TEST(SessionTlsReceivedTest, TlsWhenTheClientPresentedNoCertificate) {
  core::Config config = StartTlsConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kOptional;
  Env env(config);
  EXPECT_EQ(DeliverOverTls(env, Tls13()).trace_headers,
            Received("ESMTPS",
                     absl::StrCat(kUsingTls13, "\t(Client did not present a certificate)\r\n")));
}

TEST(SessionTlsReceivedTest, VerifiedClientCertificate) {
  core::Config config = StartTlsConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kOptional;
  Env env(config);
  EXPECT_EQ(
      DeliverOverTls(env, WithClientCert(core::ClientCertResult::kVerified)).trace_headers,
      Received("ESMTPS", absl::StrCat(kUsingTls13,
                                      "\t(Client CN \"client.example.test\", Issuer \"Example "
                                      "Client CA\" (verified OK))\r\n")));
}

TEST(SessionTlsReceivedTest, UnverifiedClientCertificate) {
  core::Config config = StartTlsConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kOptional;
  Env env(config);
  EXPECT_EQ(
      DeliverOverTls(env, WithClientCert(core::ClientCertResult::kNotVerified)).trace_headers,
      Received("ESMTPS", absl::StrCat(kUsingTls13,
                                      "\t(Client CN \"client.example.test\", Issuer \"Example "
                                      "Client CA\" (not verified))\r\n")));
}

TEST(SessionTlsReceivedTest, Tls12CipherAndSmtputf8) {
  Env env(StartTlsConfig());
  core::TlsFacts facts;
  facts.version = "TLSv1.2";
  facts.cipher = "ECDHE-RSA-AES128-GCM-SHA256";
  facts.cipher_bits = 128;
  facts.cipher_alg_bits = 128;
  Transcript t = CheckTls(env, kUpgrade,
                          Plan("EHLO client.example\r\nMAIL FROM:<sender@remote.test> SMTPUTF8\r\n"
                               "RCPT TO:<user@example.test>\r\nDATA\r\nHi\r\n.\r\n",
                               facts));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].trace_headers,
            Received("UTF8SMTPS",
                     "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
                     "\t(No client certificate requested)\r\n"));
}

TEST(SessionTlsReceivedTest, CertificateNamesCannotBreakOutOfTheirQuotes) {
  Env env(StartTlsConfig());
  core::TlsFacts facts = WithClientCert(core::ClientCertResult::kNotVerified);
  facts.client_cert.subject_cn = "evil\" (verified OK))\r\nX-Injected: yes\\";
  facts.client_cert.issuer_cn = "CA\xc3\xa9";
  EXPECT_EQ(DeliverOverTls(env, facts).trace_headers,
            Received("ESMTPS", absl::StrCat(kUsingTls13,
                                            "\t(Client CN \"evil\\\" (verified OK))??X-Injected: "
                                            "yes\\\\\", Issuer \"CA??\" (not verified))\r\n")));
}

TEST(SessionTlsReceivedTest, LongCertificateNamesKeepLinesWithin998Octets) {
  Env env(StartTlsConfig());
  core::TlsFacts facts = WithClientCert(core::ClientCertResult::kVerified);
  facts.client_cert.subject_cn = std::string(5000, '"');
  facts.client_cert.issuer_cn = std::string(5000, '\\');
  facts.cipher = std::string(3000, 'C');
  const std::string header = DeliverOverTls(env, facts).trace_headers;
  ASSERT_TRUE(header.ends_with("\r\n"));
  const std::vector<std::string> lines =
      absl::StrSplit(header.substr(0, header.size() - 2), "\r\n");
  ASSERT_EQ(lines.size(), 5u);
  for (const std::string& line : lines) {
    EXPECT_LE(line.size(), 998u);
    EXPECT_EQ(line.find_first_of("\r\n"), std::string::npos);
    if (!line.starts_with("Received:")) {
      EXPECT_TRUE(line.starts_with("\t")) << line;
    }
  }
}

// --- The envelope JSON --------------------------------------------------------------------------

TEST(SessionTlsJsonTest, VerifiedClientCertificate) {
  Env env(StartTlsConfig());
  const core::SpoolRecord r =
      DeliverOverTls(env, WithClientCert(core::ClientCertResult::kVerified));
  EXPECT_NE(r.envelope_json.find(R"("protocol":"ESMTPS")"), std::string::npos);
  EXPECT_EQ(TlsJson(r.envelope_json),
            absl::StrCat(R"("tls":{"version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384",)",
                         R"("cipher_bits":256,"sni":"mx.example.test","sni_fallback":false,)",
                         R"("ktls":false,"implicit":false,"client_cert":{"result":"verified",)",
                         R"("subject":"CN=client.example.test,O=Example",)",
                         R"("issuer":"CN=Example Client CA,O=Example","sha256":")", kFingerprint,
                         R"(","verify_error":null}})"));
}

TEST(SessionTlsJsonTest, UnverifiedClientCertificate) {
  Env env(StartTlsConfig());
  const core::SpoolRecord r =
      DeliverOverTls(env, WithClientCert(core::ClientCertResult::kNotVerified));
  EXPECT_EQ(TlsJson(r.envelope_json),
            absl::StrCat(R"("tls":{"version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384",)",
                         R"("cipher_bits":256,"sni":"mx.example.test","sni_fallback":false,)",
                         R"("ktls":false,"implicit":false,"client_cert":{"result":"not-verified",)",
                         R"("subject":"CN=client.example.test,O=Example",)",
                         R"("issuer":"CN=Example Client CA,O=Example","sha256":")", kFingerprint,
                         R"(","verify_error":"unable to get local issuer certificate"}})"));
}

TEST(SessionTlsJsonTest, NoClientCertificateNoSniAndKernelTls) {
  Env env(StartTlsConfig());
  core::TlsFacts facts;
  facts.version = "TLSv1.2";
  facts.cipher = "ECDHE-ECDSA-CHACHA20-POLY1305";
  facts.cipher_bits = 256;
  facts.cipher_alg_bits = 256;
  facts.sni_fallback = true;
  facts.ktls = true;
  EXPECT_EQ(TlsJson(DeliverOverTls(env, facts).envelope_json),
            R"("tls":{"version":"TLSv1.2","cipher":"ECDHE-ECDSA-CHACHA20-POLY1305",)"
            R"("cipher_bits":256,"sni":null,"sni_fallback":true,"ktls":true,"implicit":false,)"
            R"("client_cert":{"result":"none","subject":null,"issuer":null,"sha256":null,)"
            R"("verify_error":null}})");
}

TEST(SessionTlsJsonTest, WithoutTlsItIsNull) {
  Env env(StartTlsConfig());
  Transcript t = Check(env, kMessage);
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(TlsJson(t.records[0].envelope_json), R"("tls":null)");
  EXPECT_NE(t.records[0].envelope_json.find(R"("protocol":"ESMTP")"), std::string::npos);
}

}  // namespace
}  // namespace ringmx::smtp
