// Command-level transcripts for smtp::Session: greeting, EHLO/HELO, MAIL, RCPT, the simple
// commands, sequence and syntax errors, and command-line limits. Every transcript is replayed split
// at every byte boundary and one byte at a time (Check()).
#include "smtp/session.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "core/recipient_table.h"
#include "core/snapshot.h"
#include "core/strings.h"
#include "smtp/limits.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using testing::Check;
using testing::EhloReply;
using testing::Env;
using testing::Greeting;
using testing::kT0;
using testing::Lines;
using testing::Transcript;
using namespace std::string_literals;

constexpr char kEhlo[] = "EHLO client.example\r\n";

// Replies to kEhlo plus one accepted MAIL.
std::string AfterMail() { return Greeting() + EhloReply() + Lines({"250 2.1.0 Ok"}); }

std::string Replies(std::string_view input) {
  Env env;
  return Check(env, input).replies;
}

TEST(SessionTest, GreetsWithHostnameOnStart) {
  Env env;
  Transcript t = Check(env, "");
  EXPECT_EQ(t.replies, "220 mx.example.test ESMTP ringmx\r\n");
  EXPECT_FALSE(t.closed);
}

TEST(SessionTest, RejectsTalkBeforeGreetingAndCloses) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.OnInput("EHLO early.example\r\n", kT0, out);
  EXPECT_EQ(out.replies, "554 5.5.1 Error: talked before greeting\r\n");
  EXPECT_TRUE(out.close);
  EXPECT_TRUE(session.closed());
  EXPECT_EQ(session.end_reason(), "early-talk");
  out.Clear();
  session.Start(kT0, out);  // too late: nothing
  session.OnInput("NOOP\r\n", kT0, out);
  EXPECT_EQ(out.replies, "");
}

TEST(SessionTest, EhloListsExtensionsWithoutEnhancedCodes) {
  Env env;
  Transcript t = Check(env, kEhlo);
  EXPECT_EQ(t.replies, Greeting() +
                           "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
                           "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n"
                           "250 CHUNKING\r\n");
}

TEST(SessionTest, HeloRepliesWithHostname) {
  EXPECT_EQ(Replies("HELO client.example\r\n"), Greeting() + "250 mx.example.test\r\n");
}

TEST(SessionTest, HeloAndEhloNeedAName) {
  EXPECT_EQ(Replies("EHLO\r\nHELO \r\n"), Greeting() + Lines({"501 5.5.4 Syntax: EHLO hostname",
                                                              "501 5.5.4 Syntax: HELO hostname"}));
}

TEST(SessionTest, VerbsAreCaseInsensitive) {
  EXPECT_EQ(
      Replies("ehlo client.example\r\nmAiL fRoM:<a@remote.test>\r\n"
              "rcpt to:<u@example.test>\r\nrSeT\r\nnoop\r\nQuIt\r\n"),
      Greeting() + EhloReply() +
          Lines({"250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok", "221 2.0.0 Bye"}));
}

TEST(SessionTest, RecordsTheHeloName) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  session.OnInput("EHLO  client.example \r\n", kT0, out);
  EXPECT_EQ(session.helo(), "client.example");
}

TEST(SessionTest, SequenceErrorsAre503) {
  EXPECT_EQ(Replies("MAIL FROM:<a@remote.test>\r\n"),
            Greeting() + "503 5.5.1 Error: send HELO/EHLO first\r\n");
  EXPECT_EQ(Replies(absl::StrCat(kEhlo, "RCPT TO:<u@example.test>\r\n")),
            Greeting() + EhloReply() + "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(
      Replies(absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\nMAIL FROM:<b@remote.test>\r\n")),
      AfterMail() + "503 5.5.1 Error: nested MAIL command\r\n");
  EXPECT_EQ(Replies(absl::StrCat(kEhlo, "DATA\r\n")),
            Greeting() + EhloReply() + "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(Replies(absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\nDATA\r\n")),
            AfterMail() + "503 5.5.1 Error: need RCPT command\r\n");
  // A refused recipient is not a valid one.
  EXPECT_EQ(Replies(absl::StrCat(kEhlo,
                                 "MAIL FROM:<a@remote.test>\r\nRCPT TO:<u@remote.test>\r\n"
                                 "DATA\r\n")),
            AfterMail() + Lines({"554 5.7.1 <u@remote.test>: Relay access denied",
                                 "503 5.5.1 Error: need RCPT command"}));
}

TEST(SessionTest, UnknownAndUnimplementedCommands) {
  EXPECT_EQ(Replies("FROB\r\n\r\nEXPN staff\r\nTURN\r\nETRN example.test\r\nSTARTTLS\r\n"
                    "AUTH PLAIN AGFhAGI=\r\nMAILX FROM:<a@b>\r\n"),
            Greeting() + Lines({"500 5.5.2 Error: command not recognized",
                                "500 5.5.2 Error: command not recognized",
                                "502 5.5.1 Error: command not implemented",
                                "502 5.5.1 Error: command not implemented",
                                "502 5.5.1 Error: command not implemented",
                                "502 5.5.1 Error: command not implemented",
                                "503 5.5.1 Error: authentication not enabled",
                                "500 5.5.2 Error: command not recognized"}));
}

TEST(SessionTest, SimpleCommands) {
  EXPECT_EQ(Replies("VRFY someone\r\nVRFY\r\nHELP\r\nHELP MAIL\r\nNOOP\r\nNOOP with text\r\n"
                    "RSET\r\nRSET now\r\n"),
            Greeting() +
                Lines({"252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery",
                       "501 5.5.4 Syntax: VRFY address",
                       "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY "
                       "HELP QUIT",
                       "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY "
                       "HELP QUIT",
                       "250 2.0.0 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok", "501 5.5.4 Syntax: RSET"}));
}

TEST(SessionTest, QuitSays221AndIgnoresEverythingAfter) {
  Env env;
  Transcript t = Check(env, "QUIT now\r\nQUIT\r\nNOOP\r\nMAIL FROM:<a@b.test>\r\n");
  EXPECT_EQ(t.replies, Greeting() + Lines({"501 5.5.4 Syntax: QUIT", "221 2.0.0 Bye"}));
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "quit");
  EXPECT_EQ(t.stats.commands, 2u);
}

TEST(SessionTest, RsetEndsTheTransaction) {
  EXPECT_EQ(
      Replies(absl::StrCat(kEhlo,
                           "MAIL FROM:<a@remote.test>\r\nRSET\r\n"
                           "RCPT TO:<u@example.test>\r\nMAIL FROM:<a@remote.test>\r\n")),
      AfterMail() + Lines({"250 2.0.0 Ok", "503 5.5.1 Error: need MAIL command", "250 2.1.0 Ok"}));
}

TEST(SessionTest, EhloMidTransactionResetsIt) {
  EXPECT_EQ(
      Replies(absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\nRCPT TO:<u@example.test>\r\n",
                           kEhlo, "RCPT TO:<u@example.test>\r\nDATA\r\n",
                           "MAIL FROM:<a@remote.test>\r\nHELO again.example\r\nDATA\r\n")),
      AfterMail() + "250 2.1.5 Ok\r\n" + EhloReply() +
          Lines({"503 5.5.1 Error: need MAIL command", "503 5.5.1 Error: need MAIL command",
                 "250 2.1.0 Ok", "250 mx.example.test", "503 5.5.1 Error: need MAIL command"}));
}

// --- MAIL FROM -------------------------------------------------------------------------------

struct MailCase {
  std::string command;
  std::string reply;
};

void ExpectMailReplies(const std::vector<MailCase>& cases) {
  for (const MailCase& c : cases) {
    SCOPED_TRACE(c.command);
    EXPECT_EQ(Replies(absl::StrCat(kEhlo, c.command, "\r\n")),
              Greeting() + EhloReply() + c.reply + "\r\n");
  }
}

TEST(SessionTest, MailAcceptsValidReversePaths) {
  const std::string ok = "250 2.1.0 Ok";
  ExpectMailReplies({
      {"MAIL FROM:<a@remote.test>", ok},
      {"MAIL FROM:<>", ok},                                   // null reverse-path
      {"MAIL FROM: <a@remote.test>", ok},                     // Postfix-style space after the colon
      {"MAIL FROM:<@relay.test,@b.test:a@remote.test>", ok},  // source route, dropped
      {"MAIL FROM:<\"john doe\"@remote.test>", ok},           // quoted local part
      {"MAIL FROM:<\"a\\\"b\"@remote.test>", ok},             // quoted-pair
      {"MAIL FROM:<a@[192.0.2.1]>", ok},                      // address literal
      {"MAIL FROM:<a@[IPv6:2001:db8::1]>", ok},
      {"MAIL FROM:<first.last+tag@sub.remote.test>", ok},
      {"MAIL FROM:<a..b.@docomo.test>", ok},  // irregular dots, seen in the wild
      {"MAIL FROM:<a@remote.test> ", ok},     // trailing blank
      {"MAIL FROM:<a@remote.test.>", ok},     // one final dot
  });
}

TEST(SessionTest, MailRejectsBadReversePaths) {
  const std::string bad = "501 5.1.7 Bad sender address syntax";
  ExpectMailReplies({
      {"MAIL TO:<a@remote.test>", "501 5.5.4 Syntax: MAIL FROM:<address>"},
      {"MAIL FROM", "501 5.5.4 Syntax: MAIL FROM:<address>"},
      {"MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"},
      {"MAIL FROM:a@remote.test", bad},  // brackets required
      {"MAIL FROM:<a@remote.test", bad},
      {"MAIL FROM:<a@@remote.test>", bad},
      {"MAIL FROM:<a b@remote.test>", bad},
      {"MAIL FROM:<@remote.test>", bad},
      {"MAIL FROM:<a@>", bad},
      {"MAIL FROM:<a>", bad},  // only postmaster may be bare, and only in RCPT
      {"MAIL FROM:<a@remote..test>", bad},
      {"MAIL FROM:<a@.remote.test>", bad},
      {"MAIL FROM:<a@[192.0.2]>", bad},
      {"MAIL FROM:<a@[IPv6:192.0.2.1]>", bad},
      {"MAIL FROM:<a@[tag:content]>", bad},
      {"MAIL FROM:<\"unterminated@remote.test>", bad},
      {"MAIL FROM:<a@remote.test>SIZE=10", bad},
      {"MAIL FROM:<@relay.test a@remote.test>", bad},
      {"MAIL FROM:<a@remote.test\xff>", bad},
  });
}

TEST(SessionTest, MailEnforcesAddressLengths) {
  const std::string local64(64, 'l');
  const std::string ok = "250 2.1.0 Ok";
  const std::string bad = "501 5.1.7 Bad sender address syntax";
  // Path of exactly 256 octets: "<" + 64 + "@" + 189 + ">".
  const std::string domain189 =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(61, 'c');
  ASSERT_EQ(domain189.size(), 189u);
  ExpectMailReplies({
      {absl::StrCat("MAIL FROM:<", local64, "@remote.test>"), ok},
      {absl::StrCat("MAIL FROM:<", local64, "l@remote.test>"), bad},
      {absl::StrCat("MAIL FROM:<", local64, "@", domain189, ">"), ok},
      {absl::StrCat("MAIL FROM:<", local64, "@", domain189, "c>"), bad},     // 257 octets
      {absl::StrCat("MAIL FROM:<a@", std::string(64, 'x'), ".test>"), bad},  // 64-octet label
  });
}

TEST(SessionTest, MailParameters) {
  ExpectMailReplies({
      {"MAIL FROM:<a@remote.test> SIZE=10000", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> size=0", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> SIZE=10001",
       "552 5.3.4 Message size exceeds fixed maximum message size"},
      {"MAIL FROM:<a@remote.test> SIZE=99999999999999999999999",
       "552 5.3.4 Message size exceeds fixed maximum message size"},
      {"MAIL FROM:<a@remote.test> SIZE=12k", "501 5.5.4 Bad message size syntax"},
      {"MAIL FROM:<a@remote.test> SIZE", "501 5.5.4 Bad message size syntax"},
      {"MAIL FROM:<a@remote.test> SIZE=1 SIZE=2", "501 5.5.4 Bad message size syntax"},
      {"MAIL FROM:<a@remote.test> BODY=8BITMIME", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> body=7bit", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> BODY=BINARYMIME",
       "555 5.5.4 Unsupported option: BODY=BINARYMIME"},
      {"MAIL FROM:<a@remote.test> BODY=9BIT", "501 5.5.4 Bad BODY keyword syntax"},
      {"MAIL FROM:<a@remote.test> SMTPUTF8", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter syntax"},
      {"MAIL FROM:<a@remote.test> RET=FULL", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@remote.test> MT-PRIORITY=3", "555 5.5.4 Unsupported option: MT-PRIORITY"},
      {"MAIL FROM:<a@remote.test> AUTH=<>", "555 5.5.4 Unsupported option: AUTH"},
      {"MAIL FROM:<a@remote.test>  SIZE=10   BODY=8BITMIME  SMTPUTF8", "250 2.1.0 Ok"},
  });
}

TEST(SessionTest, NonAsciiAddressesNeedSmtputf8) {
  ExpectMailReplies({
      {"MAIL FROM:<j\xc3\xb6rg@remote.test>",
       "553 5.6.7 Error: non-ASCII address requires SMTPUTF8"},
      {"MAIL FROM:<j\xc3\xb6rg@remote.test> SMTPUTF8", "250 2.1.0 Ok"},
      {"MAIL FROM:<a@b\xc3\xbc\x63her.test> SMTPUTF8", "250 2.1.0 Ok"},
      {"MAIL FROM:<j\xc3@remote.test> SMTPUTF8", "501 5.1.7 Bad sender address syntax"},
  });
  EXPECT_EQ(Replies(absl::StrCat(kEhlo,
                                 "MAIL FROM:<a@remote.test>\r\n"
                                 "RCPT TO:<j\xc3\xb6rg@example.test>\r\n")),
            AfterMail() + "553 5.6.7 Error: non-ASCII address requires SMTPUTF8\r\n");
  EXPECT_EQ(Replies(absl::StrCat(kEhlo,
                                 "MAIL FROM:<a@remote.test> SMTPUTF8\r\n"
                                 "RCPT TO:<j\xc3\xb6rg@example.test>\r\n")),
            AfterMail() + "250 2.1.5 Ok\r\n");
}

// --- RCPT TO ---------------------------------------------------------------------------------

struct RcptCase {
  std::string rcpt;  // the RCPT command line without CRLF
  std::string reply;
};

void ExpectRcptReplies(const Env& env, const std::vector<RcptCase>& cases) {
  for (const RcptCase& c : cases) {
    SCOPED_TRACE(c.rcpt);
    Transcript t = Check(env, absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\n", c.rcpt, "\r\n"));
    EXPECT_EQ(t.replies, AfterMail() + c.reply + "\r\n");
  }
}

TEST(SessionTest, RecipientsInLocalDomainsAndPostmasterAreAccepted) {
  Env env;
  const std::string ok = "250 2.1.5 Ok";
  ExpectRcptReplies(env, {
                             {"RCPT TO:<user@example.test>", ok},
                             {"RCPT TO:<User@EXAMPLE.Test>", ok},
                             {"RCPT TO:<user@example.org>", ok},  // configured as Example.ORG
                             {"RCPT TO:<user@example.test.>", ok},
                             {"RCPT TO: <user@example.test>", ok},
                             {"RCPT TO:<@relay.test:user@example.test>", ok},
                             {"RCPT TO:<\"quoted user\"@example.test>", ok},
                             {"RCPT TO:<postmaster>", ok},
                             {"RCPT TO:<PostMaster>", ok},
                             {"RCPT TO:<postmaster@mx.example.test>", ok},
                             {"RCPT TO:<POSTMASTER@MX.EXAMPLE.TEST>", ok},
                         });
}

TEST(SessionTest, OtherDomainsAreRelayDenied) {
  Env env;
  ExpectRcptReplies(
      env,
      {
          {"RCPT TO:<user@remote.test>", "554 5.7.1 <user@remote.test>: Relay access denied"},
          {"RCPT TO:<postmaster@remote.test>",
           "554 5.7.1 <postmaster@remote.test>: Relay access denied"},
          {"RCPT TO:<user@sub.example.test>",
           "554 5.7.1 <user@sub.example.test>: Relay access denied"},
          {"RCPT TO:<user@[192.0.2.10]>", "554 5.7.1 <user@[192.0.2.10]>: Relay access denied"},
          // Sender-specified routing through a local domain.
          {"RCPT TO:<user%remote.test@example.test>",
           "554 5.7.1 <user%remote.test@example.test>: Relay access denied"},
          {"RCPT TO:<@example.test:user@remote.test>",
           "554 5.7.1 <user@remote.test>: Relay access denied"},
      });
}

TEST(SessionTest, RelayNetworksAndAuthenticatedClientsMayRelay) {
  Env relay_env;
  relay_env.facts.client = *core::Endpoint::Parse("10.1.2.3:5000");
  ExpectRcptReplies(relay_env, {{"RCPT TO:<user@remote.test>", "250 2.1.5 Ok"}});
  Env auth_env;
  auth_env.facts.auth_identity = "alice";
  ExpectRcptReplies(auth_env, {{"RCPT TO:<user@remote.test>", "250 2.1.5 Ok"}});
}

// example.org lists alice only (policy.recipients); example.test has no lines: anyone.
core::Config WithRecipients(core::Config config) {
  config.policy.recipients = "recipients";
  return config;
}
std::shared_ptr<const core::RecipientTable> Recipients() {
  absl::StatusOr<core::RecipientTable> table =
      core::RecipientTable::Parse("alice@example.org\n", "recipients");
  EXPECT_TRUE(table.ok()) << table.status();
  return std::make_shared<const core::RecipientTable>(*std::move(table));
}

// Gives `env` a Snapshot with the recipients table of Recipients().
void UseRecipients(Env& env) {
  env.snapshot = core::Snapshot::Build(WithRecipients(testing::TestConfig()), 1, Recipients());
  env.facts.listener = &env.snapshot->config.listeners[0];
}

TEST(SessionTest, UnknownLocalUserIs550) {
  Env env;
  UseRecipients(env);
  ExpectRcptReplies(env, {
                             {"RCPT TO:<alice@example.org>", "250 2.1.5 Ok"},
                             {"RCPT TO:<ALICE@Example.Org>", "250 2.1.5 Ok"},
                             {"RCPT TO:<bob@example.org>",
                              "550 5.1.1 <bob@example.org>: Recipient address rejected: User "
                              "unknown"},
                             {"RCPT TO:<bob@example.test>", "250 2.1.5 Ok"},
                             {"RCPT TO:<postmaster@example.org>", "250 2.1.5 Ok"},
                         });
  // A client that may relay gets the same answer: the local rule comes first.
  env.facts.client = *core::Endpoint::Parse("10.1.2.3:5000");
  ExpectRcptReplies(env, {{"RCPT TO:<bob@example.org>",
                           "550 5.1.1 <bob@example.org>: Recipient address rejected: User "
                           "unknown"}});
}

TEST(SessionTest, VerifiedClientCertificateInRelayClientCertsMayRelay) {
  const std::string fingerprint(64, 'c');
  core::Config config = testing::TestConfig();
  config.policy.relay_client_certs = {fingerprint};
  Env env(std::move(config));
  env.facts.tls = true;
  core::TlsFacts tls;
  tls.version = "TLSv1.3";
  tls.client_cert.result = core::ClientCertResult::kVerified;
  tls.client_cert.sha256_fingerprint = fingerprint;
  env.facts.tls_facts = tls;
  ExpectRcptReplies(env, {{"RCPT TO:<user@remote.test>", "250 2.1.5 Ok"}});
  env.facts.tls_facts->client_cert.result = core::ClientCertResult::kNotVerified;
  ExpectRcptReplies(
      env, {{"RCPT TO:<user@remote.test>", "554 5.7.1 <user@remote.test>: Relay access denied"}});
}

// Each relay and each refusal is one line of Output::log with the rule that made it; local mail
// (a local domain, postmaster) is not logged per recipient.
TEST(SessionTest, RelayAndRefusalDecisionsAreLoggedWithTheirReason) {
  Env env;
  UseRecipients(env);
  const auto log_of = [&](const policy::ConnectionFacts& facts, std::string_view rcpts) {
    core::QueueIdGenerator ids(0);
    Session session(env.snapshot, facts, ids);
    Output out;
    session.Start(kT0, out);
    session.OnInput(absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\n", core::Av(rcpts)), kT0,
                    out);
    return out.log;
  };
  EXPECT_THAT(log_of(env.facts,
                     "RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
                     "RCPT TO:<x@remote.test>\r\nRCPT TO:<postmaster>\r\n"
                     "RCPT TO:<u%x@example.test>\r\nRCPT TO:<\"a b\"@remote.test>\r\n"
                     "RCPT TO:<bad\r\n"),
              ::testing::ElementsAre(
                  "rcpt=<bob@example.org> decision=reject reason=unknown-user",
                  "rcpt=<x@remote.test> decision=reject reason=relay-denied",
                  "rcpt=<u%x@example.test> decision=reject reason=relay-denied:sender-routing",
                  "rcpt=<\"a\\x20b\"@remote.test> decision=reject reason=relay-denied"));
  policy::ConnectionFacts relay = env.facts;
  relay.client = *core::Endpoint::Parse("10.1.2.3:5000");
  EXPECT_THAT(log_of(relay, "RCPT TO:<x@remote.test>\r\n"),
              ::testing::ElementsAre(
                  "rcpt=<x@remote.test> decision=relay reason=relay_networks:10.0.0.0/8"));
  policy::ConnectionFacts authed = env.facts;
  authed.auth_identity = "alice";
  EXPECT_THAT(log_of(authed, "RCPT TO:<x@remote.test>\r\n"),
              ::testing::ElementsAre("rcpt=<x@remote.test> decision=relay reason=auth:alice"));
}

TEST(SessionTest, RecipientSyntaxErrors) {
  Env env;
  const std::string bad = "501 5.1.3 Bad recipient address syntax";
  ExpectRcptReplies(env,
                    {
                        {"RCPT FROM:<user@example.test>", "501 5.5.4 Syntax: RCPT TO:<address>"},
                        {"RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"},
                        {"RCPT TO:<>", bad},
                        {"RCPT TO:user@example.test", bad},
                        {"RCPT TO:<user>", bad},
                        {"RCPT TO:<not an address>", bad},
                        {"RCPT TO:<user@example.test", bad},
                        {"RCPT TO:<user@example.test> RRVS=2030-01-01T00:00:00Z",
                         "555 5.5.4 Unsupported option: RRVS"},
                    });
}

TEST(SessionTest, TooManyRecipientsIs452) {
  EXPECT_EQ(
      Replies(absl::StrCat(kEhlo,
                           "MAIL FROM:<a@remote.test>\r\n"
                           "RCPT TO:<u1@example.test>\r\nRCPT TO:<u2@remote.test>\r\n"
                           "RCPT TO:<u3@example.test>\r\nRCPT TO:<u4@example.test>\r\n"
                           "RCPT TO:<u5@example.test>\r\nRCPT TO:<postmaster>\r\n")),
      AfterMail() + Lines({"250 2.1.5 Ok", "554 5.7.1 <u2@remote.test>: Relay access denied",
                           "250 2.1.5 Ok", "250 2.1.5 Ok", "452 4.5.3 Error: too many recipients",
                           "452 4.5.3 Error: too many recipients"}));
}

// A flood of RCPT far past max_recipients (3 here): kMaxRecipientOvershoot plain 452s, then each
// 452 also counts as a protocol error, so the flood ends in 421 (Postfix's overshoot limit).
TEST(SessionTest, RecipientFloodPastTheOvershootLimitEndsIn421) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  std::string input = absl::StrCat(kEhlo, "MAIL FROM:<a@remote.test>\r\n");
  for (int i = 0; i < 3 + kMaxRecipientOvershoot + kMaxProtocolErrors + 5; ++i) {
    input += "RCPT TO:<u@example.test>\r\n";
  }
  session.OnInput(input, kT0, out);
  std::string expected = AfterMail() + Lines({"250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"});
  for (int i = 0; i < kMaxRecipientOvershoot + kMaxProtocolErrors; ++i) {
    expected += "452 4.5.3 Error: too many recipients\r\n";
  }
  expected += "421 4.7.0 mx.example.test Error: too many errors\r\n";
  EXPECT_EQ(out.replies, expected);
  EXPECT_TRUE(session.closed());
  EXPECT_EQ(session.end_reason(), "too-many-errors");
}

// The overshoot count is per transaction: a client that retries the rest of its recipients in a
// new transaction, as RFC 5321 section 4.5.3.1.10 intends, is never disconnected for it.
TEST(SessionTest, RecipientOvershootStartsAgainWithEachTransaction) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  session.OnInput(kEhlo, kT0, out);
  for (int t = 0; t < 3; ++t) {
    std::string input = "MAIL FROM:<a@remote.test>\r\n";
    for (int i = 0; i < 3 + kMaxRecipientOvershoot; ++i) input += "RCPT TO:<u@example.test>\r\n";
    input += "RSET\r\n";
    session.OnInput(input, kT0, out);
  }
  EXPECT_FALSE(session.closed());
  EXPECT_EQ(out.replies.find("421"), std::string::npos);
}

// --- Command-line limits ---------------------------------------------------------------------

TEST(SessionTest, CommandLineOf512OctetsIsAcceptedAnd513Rejected) {
  const std::string line512 = "NOOP " + std::string(505, 'x') + "\r\n";
  const std::string line513 = "NOOP " + std::string(506, 'x') + "\r\n";
  ASSERT_EQ(line512.size(), kMaxCommandLineOctets);
  EXPECT_EQ(Replies(line512 + line513 + "NOOP\r\n"),
            Greeting() + Lines({"250 2.0.0 Ok", "500 5.5.2 Error: line too long", "250 2.0.0 Ok"}));
}

TEST(SessionTest, HugeCommandLineIsRejectedWithBoundedMemoryAndStaysInSync) {
  Env env;
  // The tail of the long line looks like a command: it must not run.
  const std::string input =
      "NOOP " + std::string(100 * 1024, 'x') + "QUIT\r\nMAIL FROM:<a@b.test>\r\nNOOP\r\n";
  Transcript t = Check(env, input);
  EXPECT_EQ(t.replies,
            Greeting() + Lines({"500 5.5.2 Error: line too long",
                                "503 5.5.1 Error: send HELO/EHLO first", "250 2.0.0 Ok"}));
  EXPECT_FALSE(t.closed);
  EXPECT_LE(t.max_memory, kMaxCommandLineOctets);
}

TEST(SessionTest, CommandLineMemoryStaysBoundedWhileTheLineArrives) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  session.OnInput("MAIL FROM:<", kT0, out);
  const std::string piece(1000, 'a');
  for (int i = 0; i < 100; ++i) {  // 100 KB: below kMaxOverlongCommandOctets
    session.OnInput(piece, kT0, out);
    ASSERT_LE(session.MemoryUsageForTest(), kMaxMailRcptLineOctets);  // MAIL's limit (RFC 3461)
  }
  EXPECT_EQ(out.replies, Greeting());  // nothing until the line ends
  session.OnInput("@b.test>\r\n", kT0, out);
  EXPECT_EQ(out.replies, Greeting() + "500 5.5.2 Error: line too long\r\n");
}

TEST(SessionTest, OverLongCommandLinesEndTheSessionOnce128KiBOfThemHaveCome) {
  // Octets before the LF (the CR included) of over-long lines add up; normal lines do not count.
  auto line = [](size_t before_lf) { return "NOOP " + std::string(before_lf - 6, 'x') + "\r\n"; };
  ASSERT_EQ(line(600).size(), 601u);
  const std::string below = line(65536) + "NOOP\r\n" + line(65535);  // 131,071 in all
  Env env;
  Transcript t = Check(env, below + "NOOP\r\n");
  EXPECT_EQ(t.replies, Greeting() + Lines({"500 5.5.2 Error: line too long", "250 2.0.0 Ok",
                                           "500 5.5.2 Error: line too long", "250 2.0.0 Ok"}));
  EXPECT_FALSE(t.closed);

  // One more over-long line, even the shortest (512 octets with its CR LF), reaches the bound:
  // 500, 421 and close; nothing after it runs, however the input is split into reads.
  Transcript c = Check(env, below + line(512) + "NOOP\r\n");
  EXPECT_EQ(c.replies,
            Greeting() + Lines({"500 5.5.2 Error: line too long", "250 2.0.0 Ok",
                                "500 5.5.2 Error: line too long", "500 5.5.2 Error: line too long",
                                "421 4.7.0 mx.example.test Error: line too long"}));
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.end_reason, "too-long-line");
  EXPECT_LE(c.max_memory, kMaxCommandLineOctets);
  // A line of exactly 511 octets before its LF is not over-long and does not count.
  Transcript ok = Check(env, below + line(511) + "NOOP\r\n");
  EXPECT_FALSE(ok.closed);

  // One endless line is cut once 128 KiB of it have come, without waiting for its LF.
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  const std::string piece(1024, 'a');
  int pieces = 0;
  while (!session.closed() && pieces < 1000) {
    session.OnInput(piece, kT0, out);
    ++pieces;
  }
  EXPECT_EQ(pieces, 128);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(session.end_reason(), "too-long-line");
}

TEST(SessionTest, CommandsMustEndInCrlfAndHoldNoNulOrBareCr) {
  Env env;
  Transcript t = Check(env, "NOOP\nQUIT\r\nNO\0OP\r\nNOOP\rQUIT\r\nNOOP\r\r\nNOOP\r\n"s);
  EXPECT_EQ(t.replies, Greeting() + Lines({"500 5.5.2 Error: bare CR or LF in command line",
                                           "221 2.0.0 Bye"}));
  // The bare LF ended the first line, so "QUIT\r\n" was a command of its own.
  Transcript t2 = Check(env, "NO\0OP\r\nNOOP\rQUIT\r\nNOOP\r\r\nNOOP\n\r\nNOOP\r\n"s);
  EXPECT_EQ(t2.replies,
            Greeting() + Lines({"500 5.5.2 Error: NUL character in command line",
                                "500 5.5.2 Error: bare CR or LF in command line",
                                "500 5.5.2 Error: bare CR or LF in command line",
                                "500 5.5.2 Error: bare CR or LF in command line",
                                "500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"}));
  EXPECT_FALSE(t2.closed);
}

TEST(SessionTest, TooManyProtocolErrorsDisconnect) {
  Env env;
  std::string input;
  for (int i = 0; i < kMaxProtocolErrors + 2; ++i) input += "FROB\r\n";
  Transcript t = Check(env, input);
  std::string expected = Greeting();
  for (int i = 0; i < kMaxProtocolErrors; ++i) {
    expected += "500 5.5.2 Error: command not recognized\r\n";
  }
  expected += "421 4.7.0 mx.example.test Error: too many errors\r\n";
  EXPECT_EQ(t.replies, expected);
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "too-many-errors");
}

TEST(SessionTest, PolicyRefusalsAreNotProtocolErrors) {
  Env env;
  std::string input(kEhlo);
  for (int i = 0; i < kMaxProtocolErrors + 5; ++i) {
    input += "MAIL FROM:<a@remote.test>\r\nRCPT TO:<u@remote.test>\r\nRSET\r\n";
  }
  Transcript t = Check(env, input);
  EXPECT_FALSE(t.closed);
}

TEST(SessionTest, PipelinedCommandsAreAnsweredInOrderInOneCall) {
  Env env;
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Output out;
  session.Start(kT0, out);
  out.Clear();
  session.OnInput(
      "EHLO client.example\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<u@example.test>\r\n"
      "RCPT TO:<x@remote.test>\r\nRSET\r\nNOOP\r\n",
      kT0, out);
  EXPECT_EQ(out.replies, EhloReply() + Lines({"250 2.1.0 Ok", "250 2.1.5 Ok",
                                              "554 5.7.1 <x@remote.test>: Relay access denied",
                                              "250 2.0.0 Ok", "250 2.0.0 Ok"}));
  EXPECT_EQ(session.stats().commands, 6u);
}

// The PROXY header's client replaces the socket's before Start(): policy (relay_networks) and
// the stored message see it, and the balancer is recorded. After Start() it changes nothing.
TEST(SessionTest, ProxiedClientIsTheClient) {
  Env env;  // the socket's peer 203.0.113.5 is outside relay_networks (10.0.0.0/8)
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  const core::Endpoint balancer = env.facts.client;
  session.SetProxiedClient(*core::Endpoint::Parse("10.1.2.3:5000"),
                           *core::Endpoint::Parse("198.51.100.25:25"), balancer);
  EXPECT_EQ(session.facts().client.ToString(), "10.1.2.3:5000");
  EXPECT_EQ(session.facts().local.ToString(), "198.51.100.25:25");
  ASSERT_TRUE(session.facts().proxied_by.has_value());
  EXPECT_EQ(session.facts().proxied_by->ToString(), balancer.ToString());
  Output out;
  session.Start(kT0, out);
  session.OnInput("EHLO c.example\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<x@remote.test>\r\n", kT0,
                  out);
  EXPECT_THAT(out.replies, ::testing::EndsWith("250 2.1.5 Ok\r\n"));
  EXPECT_THAT(out.log, ::testing::Contains("rcpt=<x@remote.test> decision=relay "
                                           "reason=relay_networks:10.0.0.0/8"));
  // Too late: the session has started with its client.
  session.SetProxiedClient(*core::Endpoint::Parse("192.0.2.77:1"),
                           *core::Endpoint::Parse("198.51.100.25:25"), balancer);
  EXPECT_EQ(session.facts().client.ToString(), "10.1.2.3:5000");

  // Without the header the same peer may not relay.
  Session direct(env.snapshot, env.facts, ids);
  Output direct_out;
  direct.Start(kT0, direct_out);
  direct.OnInput("EHLO c.example\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<x@remote.test>\r\n", kT0,
                 direct_out);
  EXPECT_THAT(direct_out.replies, ::testing::HasSubstr("554 5.7.1"));
  EXPECT_FALSE(direct.facts().proxied_by.has_value());
}

}  // namespace
}  // namespace ringmx::smtp
