// The next-hop harness of the delivery tests (tests/testing/next_hops.h) with real traffic and
// without ringmx: Dovecot LMTP stores a message byte-exact, refuses an unknown user at RCPT, and
// refuses connections while stopped and serves again after a restart on the same port and socket;
// Postfix delivers into its maildir and answers the replies the test sets (450 then 250, 550); the
// capture server keeps envelope and data. Runs as root (Dovecot and Postfix private instances).
#include "tests/testing/next_hops.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"
#include "tests/testing/temp_dir.h"

namespace ringmx::testing {
namespace {

// A message with what a byte-exact store could get wrong: 8-bit header and body bytes, a line
// that starts with a dot, an empty line, trailing spaces, a long line.
std::string TestMessage(const std::string& tag) {
  return absl::StrCat("Received: from client.example.test by mx.example.test; tag ", tag,
                      "\r\nFrom: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
                      "Subject: caf\xc3\xa9 ",
                      tag,
                      "\r\n\r\nfirst line\r\n.starts with a dot\r\n..two dots\r\n\r\n"
                      "trailing spaces   \r\n",
                      std::string(900, 'x'), "\r\nlast line\r\n");
}

// SMTP/LMTP dot-stuffing of `data` (which ends in CRLF).
std::string DotStuff(const std::string& data) {
  std::string out;
  bool line_start = true;
  for (char c : data) {
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = c == '\n';
  }
  return out;
}

// One LMTP transaction on `client` (greeting already read): LHLO, MAIL, RCPT each, DATA, the
// data, then one reply per accepted recipient. Returns the RCPT replies followed by the replies
// after the data.
std::vector<SmtpReply> LmtpTransaction(SmtpClient& client, const std::string& from,
                                       const std::vector<std::string>& rcpts,
                                       const std::string& data) {
  std::vector<SmtpReply> replies;
  EXPECT_EQ(client.Command("LHLO client.example.test").code, 250);
  EXPECT_EQ(client.Command(absl::StrCat("MAIL FROM:<", from, ">")).code, 250);
  int accepted = 0;
  for (const std::string& rcpt : rcpts) {
    replies.push_back(client.Command(absl::StrCat("RCPT TO:<", rcpt, ">")));
    if (replies.back().code == 250) ++accepted;
  }
  if (accepted == 0) return replies;
  EXPECT_EQ(client.Command("DATA").code, 354);
  EXPECT_TRUE(client.Send(DotStuff(data)));
  EXPECT_TRUE(client.Send(".\r\n"));
  for (int i = 0; i < accepted; ++i) replies.push_back(client.ReadReply());
  return replies;
}

// Whether a unix stream socket at `path` accepts a connection.
bool UnixSocketAccepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    close(fd);
    return false;
  }
  path.copy(addr.sun_path, path.size());
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Python's smtplib.LMTP over the unix socket: one message to `rcpt`; prints "OK" when every
// recipient was accepted (an independent LMTP client, and the socket path of a next hop).
CommandResult PythonLmtpOverSocket(const std::string& socket_path, const std::string& rcpt,
                                   const std::string& data_file) {
  const std::string script =
      "import smtplib, sys\n"
      "c = smtplib.LMTP(sys.argv[1])\n"
      "refused = c.sendmail('sender@remote.test', [sys.argv[2]], open(sys.argv[3], 'rb').read())\n"
      "c.quit()\n"
      "print('OK' if not refused else refused)\n";
  return RunCommand({"/usr/bin/python3", "-c", script, socket_path, rcpt, data_file},
                    absl::Seconds(60));
}

class NextHopsTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(NextHopsTest, DovecotStoresLmtpMessagesByteExactOverTcpAndUnixSocket) {
  std::string error;
  auto dovecot = DovecotLmtp::Start(dir_ / "dovecot", {"alice", "bob"}, &error);
  ASSERT_NE(dovecot, nullptr) << error;
  ASSERT_NE(dovecot->port(), 0);

  const std::string message = TestMessage("tcp");
  auto client = SmtpClient::Connect("127.0.0.1", dovecot->port());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ReadReply().code, 220);
  std::vector<SmtpReply> replies = LmtpTransaction(
      *client, "sender@remote.test", {"alice@example.test", "bob@example.test"}, message);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0].code, 250);
  EXPECT_EQ(replies[1].code, 250);
  // LMTP: one reply per recipient after the data.
  EXPECT_EQ(replies[2].code, 250) << replies[2].text;
  EXPECT_TRUE(absl::StrContains(replies[2].text, "<alice@example.test>")) << replies[2].text;
  EXPECT_EQ(replies[3].code, 250) << replies[3].text;
  EXPECT_TRUE(absl::StrContains(replies[3].text, "<bob@example.test>")) << replies[3].text;
  client->Command("QUIT");

  for (const std::string user : {"alice", "bob"}) {
    std::vector<std::string> stored = dovecot->Messages(user);
    ASSERT_EQ(stored.size(), 1u) << user << "\n" << dovecot->Log();
    EXPECT_TRUE(absl::StartsWith(stored[0], "Return-Path: <sender@remote.test>\r\n"));
    EXPECT_EQ(WithoutReturnPath(stored[0]), message) << user;
  }

  // The unix socket, with another client (Python's smtplib).
  const std::string second = TestMessage("unix");
  const std::string data_file = dir_ / "second.eml";
  {
    FILE* f = fopen(data_file.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    fwrite(second.data(), 1, second.size(), f);
    fclose(f);
  }
  CommandResult py = PythonLmtpOverSocket(dovecot->socket_path(), "alice", data_file);
  ASSERT_EQ(py.exit_code, 0) << py.output;
  EXPECT_TRUE(absl::StrContains(py.output, "OK")) << py.output;
  ASSERT_TRUE(dovecot->WaitForMessages("alice", 2));
  std::vector<std::string> stored = dovecot->Messages("alice");
  ASSERT_EQ(stored.size(), 2u);
  int found = 0;
  for (const std::string& m : stored) found += WithoutReturnPath(m) == second ? 1 : 0;
  EXPECT_EQ(found, 1) << "the second message is not stored byte-exact";
  EXPECT_EQ(dovecot->Messages("bob").size(), 1u);
}

TEST_F(NextHopsTest, DovecotRefusesAnUnknownUserAtRcpt) {
  std::string error;
  auto dovecot = DovecotLmtp::Start(dir_ / "dovecot", {"alice"}, &error);
  ASSERT_NE(dovecot, nullptr) << error;
  auto client = SmtpClient::Connect("127.0.0.1", dovecot->port());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ReadReply().code, 220);
  std::vector<SmtpReply> replies =
      LmtpTransaction(*client, "sender@remote.test", {"nobody@example.test", "alice@example.test"},
                      TestMessage("unknown"));
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].code, 550) << replies[0].text;
  EXPECT_EQ(replies[0].Enhanced(), "5.1.1") << replies[0].text;
  EXPECT_EQ(replies[1].code, 250);
  EXPECT_EQ(replies[2].code, 250) << replies[2].text;
  EXPECT_EQ(dovecot->Messages("alice").size(), 1u);
  EXPECT_TRUE(dovecot->Messages("nobody").empty());
}

TEST_F(NextHopsTest, DovecotStoppedRefusesConnectionsAndServesAgainAfterRestart) {
  std::string error;
  auto dovecot = DovecotLmtp::Start(dir_ / "dovecot", {"alice"}, &error);
  ASSERT_NE(dovecot, nullptr) << error;
  const uint16_t port = dovecot->port();
  const std::string socket_path = dovecot->socket_path();
  const pid_t first_pid = dovecot->pid();
  ASSERT_TRUE(UnixSocketAccepts(socket_path));

  const std::string before = TestMessage("before");
  {
    auto client = SmtpClient::Connect("127.0.0.1", port);
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->ReadReply().code, 220);
    std::vector<SmtpReply> r =
        LmtpTransaction(*client, "sender@remote.test", {"alice@example.test"}, before);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].code, 250);
  }

  ASSERT_TRUE(dovecot->Stop());
  EXPECT_FALSE(dovecot->running());
  EXPECT_EQ(kill(first_pid, 0), -1) << "Dovecot's master still exists";
  EXPECT_EQ(SmtpClient::Connect("127.0.0.1", port), nullptr) << "the port still accepts";
  EXPECT_FALSE(UnixSocketAccepts(socket_path)) << "the socket still accepts";

  ASSERT_TRUE(dovecot->Restart(&error)) << error;
  EXPECT_EQ(dovecot->port(), port);
  EXPECT_EQ(dovecot->socket_path(), socket_path);
  EXPECT_TRUE(UnixSocketAccepts(socket_path));
  const std::string after = TestMessage("after");
  {
    auto client = SmtpClient::Connect("127.0.0.1", port);
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->ReadReply().code, 220);
    std::vector<SmtpReply> r =
        LmtpTransaction(*client, "sender@remote.test", {"alice@example.test"}, after);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].code, 250);
  }
  std::vector<std::string> stored = dovecot->Messages("alice");
  ASSERT_EQ(stored.size(), 2u) << dovecot->Log();
  int before_found = 0, after_found = 0;
  for (const std::string& m : stored) {
    before_found += WithoutReturnPath(m) == before ? 1 : 0;
    after_found += WithoutReturnPath(m) == after ? 1 : 0;
  }
  EXPECT_EQ(before_found, 1);
  EXPECT_EQ(after_found, 1);

  // Stop, restart and stop again: each time by the PID started.
  ASSERT_TRUE(dovecot->Stop());
  ASSERT_TRUE(dovecot->Restart(&error)) << error;
  EXPECT_TRUE(WaitForGreeting(port, absl::Seconds(10)));
}

TEST_F(NextHopsTest, PostfixDeliversIntoItsMaildir) {
  std::string error;
  auto postfix = PostfixHop::Start(dir_ / "postfix", "example.test", {"alice", "bob"}, &error);
  ASSERT_NE(postfix, nullptr) << error;
  const std::string message = TestMessage("postfix");
  auto client = SmtpClient::Connect("127.0.0.1", postfix->port());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ReadReply().code, 220);
  SmtpReply ehlo = client->Command("EHLO client.example.test");
  ASSERT_EQ(ehlo.code, 250);
  EXPECT_TRUE(absl::StrContains(ehlo.text, "PIPELINING"));
  EXPECT_TRUE(absl::StrContains(ehlo.text, "8BITMIME"));
  EXPECT_TRUE(absl::StrContains(ehlo.text, "DSN"));
  EXPECT_EQ(client->Command("MAIL FROM:<sender@remote.test> BODY=8BITMIME").code, 250);
  EXPECT_EQ(client->Command("RCPT TO:<alice@example.test>").code, 250);
  // Not its domain: it relays nothing.
  SmtpReply relay = client->Command("RCPT TO:<someone@elsewhere.test>");
  EXPECT_EQ(relay.code, 554) << relay.text;
  // Not one of its users.
  SmtpReply unknown = client->Command("RCPT TO:<nobody@example.test>");
  EXPECT_EQ(unknown.code, 550) << unknown.text;
  EXPECT_EQ(unknown.Enhanced(), "5.1.1");
  EXPECT_EQ(client->Command("DATA").code, 354);
  ASSERT_TRUE(client->Send(DotStuff(message)));
  ASSERT_TRUE(client->Send(".\r\n"));
  EXPECT_EQ(client->ReadReply().code, 250);
  client->Command("QUIT");

  ASSERT_TRUE(postfix->WaitForMessages("alice", 1)) << postfix->Log();
  std::vector<std::string> stored = postfix->Messages("alice");
  ASSERT_EQ(stored.size(), 1u);
  // Postfix's own headers first, then the message as sent (stored with LF line ends).
  EXPECT_TRUE(absl::StrContains(stored[0], "Delivered-To: alice@example.test\n"));
  EXPECT_TRUE(absl::EndsWith(LfToCrlf(stored[0]), message)) << stored[0];
  EXPECT_TRUE(postfix->Messages("bob").empty());
}

TEST_F(NextHopsTest, PostfixAnswersTheRepliesTheTestSets) {
  std::string error;
  auto postfix = PostfixHop::Start(dir_ / "postfix", "example.test", {"alice", "bob"}, &error);
  ASSERT_NE(postfix, nullptr) << error;
  auto rcpt_reply = [&](const std::string& rcpt) {
    auto client = SmtpClient::Connect("127.0.0.1", postfix->port());
    if (client == nullptr || client->ReadReply().code != 220) return SmtpReply{};
    EXPECT_EQ(client->Command("EHLO client.example.test").code, 250);
    EXPECT_EQ(client->Command("MAIL FROM:<sender@remote.test>").code, 250);
    SmtpReply reply = client->Command(absl::StrCat("RCPT TO:<", rcpt, ">"));
    client->Command("QUIT");
    return reply;
  };

  ASSERT_TRUE(postfix->SetRecipientReply("bob@example.test", "450 4.2.1 mailbox busy"))
      << postfix->Log();
  ASSERT_TRUE(postfix->SetRecipientReply("alice@example.test", "550 5.1.1 no such user"));
  SmtpReply busy = rcpt_reply("bob@example.test");
  EXPECT_EQ(busy.code, 450) << busy.text;
  EXPECT_EQ(busy.Enhanced(), "4.2.1");
  EXPECT_TRUE(absl::StrContains(busy.text, "mailbox busy")) << busy.text;
  SmtpReply gone = rcpt_reply("alice@example.test");
  EXPECT_EQ(gone.code, 550) << gone.text;
  EXPECT_EQ(gone.Enhanced(), "5.1.1");

  // Cleared: bob is accepted and delivered; alice still gets her 550.
  ASSERT_TRUE(postfix->ClearRecipientReply("bob@example.test")) << postfix->Log();
  EXPECT_EQ(rcpt_reply("alice@example.test").code, 550);
  auto client = SmtpClient::Connect("127.0.0.1", postfix->port());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ReadReply().code, 220);
  SmtpReply sent = client->SendMail("sender@remote.test", {"bob@example.test"},
                                    DotStuff(TestMessage("after 450")));
  EXPECT_EQ(sent.code, 250) << sent.text;
  client->Command("QUIT");
  ASSERT_TRUE(postfix->WaitForMessages("bob", 1)) << postfix->Log();
  EXPECT_TRUE(absl::EndsWith(LfToCrlf(postfix->Messages("bob")[0]), TestMessage("after 450")));
  EXPECT_TRUE(postfix->Messages("alice").empty());

  // A reply that is not 4xx or 5xx is refused by the harness.
  EXPECT_FALSE(postfix->SetRecipientReply("bob@example.test", "OK"));

  // Stop() returns true only once the master's PID is gone.
  ASSERT_GT(postfix->pid(), 0);
  EXPECT_TRUE(postfix->Stop());
  EXPECT_EQ(SmtpClient::Connect("127.0.0.1", postfix->port()), nullptr);
}

TEST_F(NextHopsTest, CaptureServerStoresEnvelopeAndData) {
  std::string error;
  auto capture = CaptureSmtp::Start(dir_ / "capture", &error);
  ASSERT_NE(capture, nullptr) << error;
  capture->SetRecipientReply("gone@remote.test", "550 5.1.1 no such user");

  auto client = SmtpClient::Connect("127.0.0.1", capture->port());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->ReadReply().code, 220);
  SmtpReply ehlo = client->Command("EHLO mx.example.test");
  ASSERT_EQ(ehlo.code, 250);
  EXPECT_TRUE(absl::StrContains(ehlo.text, "PIPELINING"));
  EXPECT_TRUE(absl::StrContains(ehlo.text, "8BITMIME"));
  // Pipelined: MAIL, two RCPTs and DATA in one write.
  const std::string message = TestMessage("dsn");
  ASSERT_TRUE(client->Send(
      "MAIL FROM:<> RET=HDRS ENVID=abc\r\nRCPT TO:<sender@remote.test> NOTIFY=NEVER\r\n"
      "RCPT TO:<gone@remote.test>\r\nDATA\r\n"));
  EXPECT_EQ(client->ReadReply().code, 250);
  EXPECT_EQ(client->ReadReply().code, 250);
  SmtpReply refused = client->ReadReply();
  EXPECT_EQ(refused.code, 550);
  EXPECT_EQ(refused.Enhanced(), "5.1.1");
  EXPECT_EQ(client->ReadReply().code, 354);
  ASSERT_TRUE(client->Send(DotStuff(message) + ".\r\n"));
  EXPECT_EQ(client->ReadReply().code, 250);
  // The canned reply is gone once cleared.
  capture->ClearRecipientReply("gone@remote.test");
  SmtpReply second = client->SendMail("a@remote.test", {"gone@remote.test"}, "Subject: 2\r\n\r\n");
  EXPECT_EQ(second.code, 250) << second.text;
  client->Command("QUIT");

  ASSERT_TRUE(capture->WaitForMessages(2)) << capture->Log();
  std::vector<CapturedMessage> messages = capture->Messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].mail_command, "MAIL FROM:<> RET=HDRS ENVID=abc");
  EXPECT_EQ(messages[0].sender, "");
  ASSERT_EQ(messages[0].recipients.size(), 1u);
  EXPECT_EQ(messages[0].recipients[0], "sender@remote.test");
  EXPECT_EQ(messages[0].rcpt_commands[0], "RCPT TO:<sender@remote.test> NOTIFY=NEVER");
  EXPECT_EQ(messages[0].data, message);
  EXPECT_EQ(messages[1].sender, "a@remote.test");
  ASSERT_EQ(messages[1].recipients.size(), 1u);
  EXPECT_EQ(messages[1].recipients[0], "gone@remote.test");
  EXPECT_EQ(messages[1].data, "Subject: 2\r\n\r\n");

  const pid_t pid = capture->pid();
  EXPECT_TRUE(capture->Stop());
  EXPECT_NE(kill(pid, 0), 0);
  EXPECT_EQ(SmtpClient::Connect("127.0.0.1", capture->port()), nullptr);
}

}  // namespace
}  // namespace ringmx::testing
