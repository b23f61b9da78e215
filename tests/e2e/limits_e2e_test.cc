// End-to-end: limits, sequence errors, relay policy and the SMTP smuggling family, against the
// real server. Each refusal is checked on the wire and in the spool (nothing stored).
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

class LimitsTest : public ServerTest {
 protected:
  std::unique_ptr<SmtpClient> ConnectInTransaction() {
    auto client = Connect();
    if (!client) return client;
    EXPECT_EQ(client->Command("EHLO limits.test").code, 250);
    EXPECT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
    EXPECT_EQ(client->Command("RCPT TO:<u@example.test>").code, 250);
    return client;
  }
};

TEST_F(LimitsTest, OverlongCommandLinesAre500AndTheSessionStaysInSync) {
  StartServer(BasicConfig(dir_));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply r = client->Command("NOOP " + std::string(600, 'x'));
  EXPECT_EQ(r.code, 500) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.5.2");
  EXPECT_EQ(client->Command("NOOP").code, 250);
  // 100 KB without a line end, then a line end: one 500, then in sync.
  ASSERT_TRUE(client->Send(std::string(100 * 1024, 'A')));
  r = client->Command("");
  EXPECT_EQ(r.code, 500) << r.text;
  EXPECT_EQ(client->Command("NOOP").code, 250);
  EXPECT_EQ(client->pending(), "") << "unexpected extra replies";
}

TEST_F(LimitsTest, SequenceAndSyntaxErrors) {
  StartServer(BasicConfig(dir_));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply r = client->Command("MAIL FROM:<a@remote.test>");
  EXPECT_EQ(r.code, 503) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.5.1");
  EXPECT_EQ(client->Command("FROB").code, 500);
  EXPECT_EQ(client->Command("EHLO").code, 501);
  EXPECT_EQ(client->Command("EHLO seq.test").code, 250);
  EXPECT_EQ(client->Command("RCPT TO:<u@example.test>").code, 503);
  EXPECT_EQ(client->Command("DATA").code, 503);
  EXPECT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 503);  // nested
  EXPECT_EQ(client->Command("DATA").code, 503);                       // no valid RCPT
  EXPECT_EQ(client->Command("RCPT TO:<not an address>").code, 501);
  EXPECT_EQ(client->Command("VRFY someone").code, 252);
  EXPECT_EQ(client->Command("HELP").code, 214);
  EXPECT_EQ(client->Command("RSET").code, 250);
  EXPECT_EQ(client->Command("MAIL FROM:<>").code, 250);  // null reverse-path
}

TEST_F(LimitsTest, SizeParameterAndActualSizeOverTheLimit) {
  StartServer(BasicConfig(dir_, "max_message_size = 10000\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply ehlo = client->Command("EHLO size.test");
  EXPECT_NE(ehlo.text.find("SIZE 10000"), std::string::npos) << ehlo.text;
  SmtpReply r = client->Command("MAIL FROM:<a@remote.test> SIZE=20000");
  EXPECT_EQ(r.code, 552) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.3.4");
  ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test> SIZE=5000").code, 250);
  ASSERT_EQ(client->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(client->Command("DATA").code, 354);
  std::string big;
  for (int i = 0; i < 400; ++i) big += std::string(70, 'b') + "\r\n";  // ~28 KB
  ASSERT_TRUE(client->Send(big + ".\r\n"));
  r = client->ReadReply();
  EXPECT_EQ(r.code, 552) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.3.4");
  EXPECT_EQ(client->Command("NOOP").code, 250);
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(LimitsTest, DataLineOver1000OctetsIsRejectedAfterTheEndOfData) {
  StartServer(BasicConfig(dir_));
  auto client = ConnectInTransaction();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("DATA").code, 354);
  ASSERT_TRUE(client->Send("Subject: long\r\n\r\n" + std::string(999, 'y') + "\r\nafter\r\n.\r\n"));
  SmtpReply r = client->ReadReply();
  EXPECT_GE(r.code, 550) << r.text;
  EXPECT_LE(r.code, 554) << r.text;
  EXPECT_EQ(client->Command("NOOP").code, 250);
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(LimitsTest, TooManyRecipientsIs452) {
  StartServer(BasicConfig(dir_, "max_recipients = 3\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO rcpt.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(client->Command(absl::StrCat("RCPT TO:<u", i, "@example.test>")).code, 250);
  }
  SmtpReply r = client->Command("RCPT TO:<u3@example.test>");
  EXPECT_EQ(r.code, 452) << r.text;
  EXPECT_EQ(r.Enhanced(), "4.5.3");
  // The three accepted recipients still get the message.
  ASSERT_EQ(client->Command("DATA").code, 354);
  ASSERT_TRUE(client->Send("Subject: x\r\n\r\nx\r\n.\r\n"));
  EXPECT_EQ(client->ReadReply().code, 250);
}

TEST_F(LimitsTest, RelayIsDeniedOutsideRelayNetworks) {
  StartServer(BasicConfig(dir_, "", "", /*relay=*/false));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO relay.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
  SmtpReply r = client->Command("RCPT TO:<victim@elsewhere.test>");
  EXPECT_EQ(r.code, 554) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.7.1");
  EXPECT_NE(r.text.find("elay access denied"), std::string::npos) << r.text;
  EXPECT_EQ(client->Command("RCPT TO:<PostMaster>").code, 250);
  EXPECT_EQ(client->Command("RCPT TO:<User@EXAMPLE.test>").code, 250);
}

// Each variant hides a second transaction behind a line end that is not CRLF.CRLF. Only the real
// end of data may end it; the message is refused and nothing in it is run as a command.
TEST_F(LimitsTest, SmugglingVariantsAreRejectedAndNeverRunAsCommands) {
  StartServer(BasicConfig(dir_));
  const std::string smuggled =
      "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
      "Subject: smuggled\r\n\r\nsmuggled\r\n";
  const std::vector<std::string> fake_ends = {"\n.\n",   "\n.\r\n", "\r\n.\n",  "\r.\r\n",
                                              "\r\n.\r", "\r.\r",   "\n.\r\n\n"};
  for (const std::string& fake_end : fake_ends) {
    SCOPED_TRACE(absl::CHexEscape(fake_end));
    auto client = ConnectInTransaction();
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->Command("DATA").code, 354);
    ASSERT_TRUE(client->Send("Subject: legit\r\n\r\nhello" + fake_end + smuggled + "\r\n.\r\n"));
    SmtpReply r = client->ReadReply();
    EXPECT_GE(r.code, 500) << r.text;
    EXPECT_LT(r.code, 600) << r.text;
    // Exactly one reply: NOOP's 250 must be next, with nothing in between.
    SmtpReply noop = client->Command("NOOP");
    EXPECT_EQ(noop.code, 250) << noop.text;
    EXPECT_EQ(client->pending(), "");
  }
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(LimitsTest, BareLineFeedInsideDataIsRejected) {
  StartServer(BasicConfig(dir_));
  auto client = ConnectInTransaction();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("DATA").code, 354);
  ASSERT_TRUE(client->Send("Subject: lf\r\n\r\nbare\nfeed\r\n.\r\n"));
  SmtpReply r = client->ReadReply();
  EXPECT_GE(r.code, 500) << r.text;
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

}  // namespace
}  // namespace ringmx::testing
