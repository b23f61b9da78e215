// The session's side of recipient verification at RCPT (docs/delivery.md): a RCPT for a route
// with verify_recipients waits for the driver's answer, pipelined commands wait behind it in
// order, and the answer becomes 250, 550 or 450. Once routes exist, a recipient no route covers is
// refused at RCPT.
#include <string>

#include "gtest/gtest.h"

#include "core/next_hop.h"
#include "smtp/session.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp::testing {
namespace {

core::Config VerifyingConfig() {
  core::Config config = TestConfig();
  core::RouteConfig route;
  route.domains = {"example.test"};
  route.next_hop = {*core::NextHop::Parse("lmtp:127.0.0.1:24")};
  route.tls = core::RouteTls::kNone;
  route.verify_recipients = true;
  config.routes.push_back(route);
  return config;
}

const std::string kStart = "EHLO c.example\r\nMAIL FROM:<s@remote.test>\r\n";

std::string Start() { return Greeting() + EhloReply() + "250 2.1.0 Ok\r\n"; }

TEST(SessionVerifyTest, KnownRecipientIsAcceptedAfterTheCheck) {
  Env env(VerifyingConfig());
  env.check_answers = {{CheckAnswer::Decision::kAccept, ""}};
  Transcript t = Check(env, kStart + "RCPT TO:<alice@example.test> NOTIFY=SUCCESS\r\nQUIT\r\n");
  EXPECT_EQ(t.replies, Start() + "250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n");
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.checks[0].kind, CheckRequest::Kind::kRecipient);
  EXPECT_EQ(t.checks[0].address, "alice@example.test");
  ASSERT_FALSE(t.log.empty());
  EXPECT_EQ(t.log.back().find("rcpt=<alice@example.test> verify=known"), 0u);
}

TEST(SessionVerifyTest, UnknownAndUnreachableRecipientsAreRefusedWithTheCheckReply) {
  Env env(VerifyingConfig());
  env.check_answers = {
      {CheckAnswer::Decision::kReject,
       "550 5.1.1 <ghost@example.test>: Recipient address rejected: the next hop said: 550"},
      {CheckAnswer::Decision::kTempFail, ""},
      {CheckAnswer::Decision::kAccept, ""}};
  // Pipelined: every RCPT waits for its own answer and the replies keep their order; DATA sees
  // the one recipient that was accepted.
  Transcript t = Check(env, kStart +
                                "RCPT TO:<ghost@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
                                "RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n."
                                "\r\nQUIT\r\n");
  EXPECT_EQ(t.replies,
            Start() +
                "550 5.1.1 <ghost@example.test>: Recipient address rejected: the next hop said: "
                "550\r\n"
                "450 4.4.1 <carol@example.test>: Recipient address verification failed, try "
                "later\r\n"
                "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n" +
                t.replies.substr(t.replies.find("250 2.0.0")));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].recipients, std::vector<std::string>{"alice@example.test"});
  EXPECT_EQ(t.checks.size(), 3u);
}

TEST(SessionVerifyTest, PostmasterIsNeverVerified) {
  Env env(VerifyingConfig());
  env.check_answers = {{CheckAnswer::Decision::kReject, ""}};
  Transcript t = Check(env, kStart + "RCPT TO:<postmaster@example.test>\r\n");
  EXPECT_EQ(t.replies, Start() + "250 2.1.5 Ok\r\n");
  EXPECT_TRUE(t.checks.empty());
}

TEST(SessionVerifyTest, WithRoutesARecipientNoRouteCoversIsRefused) {
  Env env(VerifyingConfig());
  // example.org is a local domain of the test config, but no route covers it.
  Transcript t = Check(env, kStart + "RCPT TO:<bob@example.org>\r\n");
  EXPECT_EQ(
      t.replies,
      Start() +
          "550 5.4.4 <bob@example.org>: Recipient address rejected: no route to its domain\r\n");
  EXPECT_TRUE(t.checks.empty());
}

TEST(SessionVerifyTest, WithoutVerificationNoCheckIsMade) {
  core::Config config = VerifyingConfig();
  config.routes[0].verify_recipients = false;
  Env env(std::move(config));
  Transcript t = Check(env, kStart + "RCPT TO:<anyone@example.test>\r\n");
  EXPECT_EQ(t.replies, Start() + "250 2.1.5 Ok\r\n");
  EXPECT_TRUE(t.checks.empty());
}

}  // namespace
}  // namespace ringmx::smtp::testing
