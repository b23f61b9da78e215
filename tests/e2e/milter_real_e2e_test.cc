// Milters through the real server (issue 13, "What it must show"): ringmx with `[[milter]]`
// tables and a listener's `milters`, against a test milter written with Debian's python3-milter
// (tests/milter/test_milter.py: one marker per action, in the Subject, the sender's or a
// recipient's local part) and against a private rspamd 3.4 in milter mode. Each test asserts the
// SMTP replies the client gets, what the queue holds afterwards (read straight from the segment
// files), and where it matters what the milter saw.
#include <stdint.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/milter_peers.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

struct MilterEntry {
  std::string name;
  std::string address;
  std::string extra;  // more keys of the [[milter]] table
};

class MilterRealTest : public ServerTest {
 protected:
  std::string Config(const std::vector<MilterEntry>& milters,
                     const std::string& listener_extra = "",
                     const std::string& relay_networks = "[]") {
    std::string names;
    std::string tables;
    for (const MilterEntry& m : milters) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", "\"", m.name, "\"");
      absl::StrAppend(&tables, "\n[[milter]]\nname = \"", m.name, "\"\naddress = \"", m.address,
                      "\"\n", m.extra);
    }
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 1\n\n"
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n"
        "milters = [",
        names, "]\n", listener_extra,
        "\n[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = ", relay_networks,
        "\n\n[spool]\npath = \"", dir_.path(), "/spool\"\n\n[control]\nsocket = \"", dir_.path(),
        "/control.sock\"\n", tables);
  }

  void StartPython(const PythonMilter::Options& options = {}) {
    std::string error;
    python_ = PythonMilter::Start(dir_ / "python-milter", &error, options);
    ASSERT_NE(python_, nullptr) << error;
  }

  // One message with `subject`; the final reply (the first refusal, or the reply to the data).
  SmtpReply Send(const std::string& subject, const std::string& from = "sender@remote.test",
                 const std::vector<std::string>& rcpts = {"user@example.test"},
                 const std::string& body = "Hello from the milter test.\r\n") {
    auto client = Connect();
    if (!client) return SmtpReply{};
    const SmtpReply reply = client->SendMail(
        from, rcpts,
        absl::StrCat("From: <", from, ">\r\nSubject: ", subject,
                     "\r\nX-Test-Change: original\r\nX-Test-Delete: doomed\r\n\r\n", body));
    client->Command("QUIT");
    return reply;
  }

  std::optional<StoredMessage> Stored(const SmtpReply& reply) {
    const QueueContents queue = ReadQueue(server_->spool());
    auto it = queue.messages.find(QueuedId(reply.text));
    if (it == queue.messages.end()) return std::nullopt;
    return it->second;
  }

  // The header lines of a stored message, up to the blank line.
  static std::vector<std::string> HeaderNames(const std::string& eml) {
    std::vector<std::string> names;
    size_t pos = 0;
    while (pos < eml.size()) {
      const size_t end = eml.find("\r\n", pos);
      if (end == std::string::npos || end == pos) break;
      if (eml[pos] != ' ' && eml[pos] != '\t')
        names.push_back(eml.substr(pos, eml.find(':', pos) - pos));
      pos = end + 2;
    }
    return names;
  }

  std::unique_ptr<PythonMilter> python_;
};

TEST_F(MilterRealTest, EveryStageReachesTheMilterWithPostfixsMacrosAndAcceptStores) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  const SmtpReply reply = Send("plain", "sender@remote.test", {"user@example.test"});
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  const std::string id = QueuedId(reply.text);
  ASSERT_TRUE(Stored(reply).has_value());
  const int conn = python_->LastConnection();
  std::vector<std::string> stages;
  std::optional<MilterEvent> connect, mail, rcpt, eom;
  for (const MilterEvent& e : python_->EventsOf(conn)) {
    stages.push_back(e.stage);
    if (e.stage == "connect") connect = e;
    if (e.stage == "mail") mail = e;
    if (e.stage == "rcpt") rcpt = e;
    if (e.stage == "eom") eom = e;
  }
  for (const char* stage :
       {"connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"}) {
    EXPECT_NE(std::find(stages.begin(), stages.end(), stage), stages.end())
        << stage << " never reached the milter: " << absl::StrJoin(stages, ",") << python_->Log();
  }
  ASSERT_TRUE(connect && mail && rcpt && eom) << python_->Log();
  EXPECT_EQ(connect->macros["{client_addr}"], "127.0.0.1") << python_->Log();
  EXPECT_EQ(connect->macros["j"], "mx.example.test") << python_->Log();
  EXPECT_EQ(connect->macros["{daemon_name}"].empty(), false) << python_->Log();
  EXPECT_EQ(mail->macros["{mail_addr}"], "sender@remote.test") << python_->Log();
  EXPECT_EQ(rcpt->macros["{rcpt_addr}"], "user@example.test") << python_->Log();
  EXPECT_EQ(eom->macros["i"], id) << "the queue id the client got: " << python_->Log();
  // The milter saw the client's message: not our Received header.
  for (const MilterEvent& e : python_->EventsOf(conn)) {
    if (e.stage == "header") {
      EXPECT_NE(e.args.at(0), "Received") << python_->Log();
    }
  }
}

TEST_F(MilterRealTest, RefusalsAtEachStageReachTheClient) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  SmtpReply reply = Send("reject");
  EXPECT_EQ(reply.code, 550) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "5.7.1") << reply.text;
  reply = Send("tempfail");
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "4.7.1") << reply.text;
  reply = Send("custom");
  EXPECT_EQ(reply.code, 554) << reply.text;
  EXPECT_TRUE(absl::StrContains(reply.text, "Custom rejection by test milter")) << reply.text;
  reply = Send("plain", "sender+reject-mail@remote.test");
  EXPECT_EQ(reply.code, 550) << reply.text;
  EXPECT_TRUE(CommittedIds(server_->spool()).empty()) << "a refused message was stored";

  // A recipient the milter refuses at RCPT is refused alone; the message goes to the other.
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO client.example").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<sender@remote.test>").code, 250);
  EXPECT_EQ(client->Command("RCPT TO:<bad+reject-rcpt@example.test>").code, 550);
  EXPECT_EQ(client->Command("RCPT TO:<good@example.test>").code, 250);
  ASSERT_EQ(client->Command("DATA").code, 354);
  reply = client->Command("Subject: plain\r\n\r\nbody\r\n.");
  ASSERT_EQ(reply.code, 250) << reply.text;
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  ASSERT_EQ(stored->entry.recipients.size(), 1u);
  EXPECT_EQ(stored->entry.recipients[0].address, "good@example.test");
}

TEST_F(MilterRealTest, DiscardAnswers250AndStoresNothing) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  const SmtpReply reply = Send("discard");
  EXPECT_EQ(reply.code, 250) << reply.text;
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(MilterRealTest, HeaderChangesAreStoredAfterOurReceived) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  const SmtpReply reply = Send("addheader insheader chgheader delheader");
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  const std::vector<std::string> names = HeaderNames(stored->eml);
  ASSERT_GE(names.size(), 5u) << stored->eml;
  EXPECT_EQ(names[0], "Received") << stored->eml;
  EXPECT_EQ(names[1], "X-Test-Inserted") << stored->eml;
  EXPECT_EQ(names.back(), "X-Test-Added") << stored->eml;
  EXPECT_TRUE(absl::StrContains(stored->eml, "X-Test-Change: changed by test milter\r\n"))
      << stored->eml;
  EXPECT_FALSE(absl::StrContains(stored->eml, "X-Test-Delete")) << stored->eml;
  EXPECT_TRUE(absl::StrContains(stored->eml, "\r\n\r\nHello from the milter test.\r\n"))
      << stored->eml;
}

TEST_F(MilterRealTest, EnvelopeChangesAndReplacedBodyAreStored) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  SmtpReply reply = Send("chgfrom addrcpt delrcpt", "sender@remote.test",
                         {"first@example.test", "last@example.test"});
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->entry.sender, "changed-sender@example.org");
  std::vector<std::string> rcpts;
  for (const auto& r : stored->entry.recipients) rcpts.push_back(r.address);
  EXPECT_EQ(rcpts, (std::vector<std::string>{"first@example.test", "added-rcpt@example.org"}));

  reply = Send("replbody");
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(
      absl::EndsWith(stored->eml, "\r\n\r\nReplaced body line 1.\r\nReplaced body line 2.\r\n"))
      << stored->eml;
  EXPECT_TRUE(absl::StartsWith(stored->eml, "Received: ")) << stored->eml;
}

TEST_F(MilterRealTest, ProgressSkipAndChangesWithEsmtpArguments) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  // Progress twice, then continue: the timeout starts again, the message is taken.
  SmtpReply reply = Send("progress");
  EXPECT_EQ(reply.code, 250) << reply.text << server_->Log();
  // SKIP after the first body chunk: the rest of a 200 KB body is not sent, the message is.
  std::string body;
  while (body.size() < 200000) body.append(std::string(76, 'b')).append("\r\n");
  reply = Send("skip-body", "sender@remote.test", {"user@example.test"}, body);
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(absl::EndsWith(stored->eml, body)) << "the stored body is whole";
  int chunks = 0;
  for (const MilterEvent& e : python_->EventsOf(python_->LastConnection()))
    chunks += e.stage == "body";
  EXPECT_EQ(chunks, 1) << python_->Log();
  // A changed sender with ESMTP arguments and a recipient added with NOTIFY.
  reply = Send("chgfromargs addrcptpar");
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->entry.sender, "changed-sender@example.org");
  ASSERT_EQ(stored->entry.recipients.size(), 2u);
  EXPECT_EQ(stored->entry.recipients[1].address, "added-par@example.org");
  EXPECT_TRUE(absl::StrContains(stored->json, "NEVER")) << stored->json;
}

TEST_F(MilterRealTest, QuarantineHoldsTheMessage) {
  StartPython();
  StartServer(Config({{"py", python_->address(), ""}}));
  const SmtpReply reply = Send("quarantine");
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(stored->entry.held) << "a quarantined message is queued on hold";
  const CommandResult list = RunCommand(
      {RingmxBinary(), "queue", "-c", server_->config_path(), "list", "--json"}, absl::Seconds(30));
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, QueuedId(reply.text))) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "held")) << list.output;
}

TEST_F(MilterRealTest, MilterDownOrTooSlowGetsItsDefaultAction) {
  // Nothing listens on this port: the milter is down.
  const std::string down = "inet:127.0.0.1:1";
  StartServer(Config({{"down", down, ""}}));
  SmtpReply reply = Send("plain");
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "4.7.1") << reply.text;
  EXPECT_TRUE(server_->WaitForLog("down")) << server_->Log();
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
  server_.reset();

  StartServer(Config({{"down", down, "default_action = \"accept\"\n"}}));
  reply = Send("plain");
  EXPECT_EQ(reply.code, 250) << reply.text << server_->Log();
  server_.reset();

  // Slower than its content timeout: tempfail; the shard served another session meanwhile.
  StartPython(PythonMilter::Options{.slow_seconds = 4});
  StartServer(Config({{"py", python_->address(), "content_timeout_s = 1\n"}}));
  reply = Send("slow");
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "4.7.1") << reply.text;
}

TEST_F(MilterRealTest, RelayClientsSkipMiltersWhenTheListenerSaysSo) {
  StartPython();
  // 127.0.0.1 is not a relay client: the milter is called and refuses.
  StartServer(Config({{"py", python_->address(), ""}}, "milters_skip = \"relay\"\n"));
  EXPECT_EQ(Send("reject").code, 550);
  server_.reset();
  // Now it is one: its mail is not shown to the milter.
  const int before = python_->LastConnection();
  StartServer(
      Config({{"py", python_->address(), ""}}, "milters_skip = \"relay\"\n", "[\"127.0.0.0/8\"]"));
  const SmtpReply reply = Send("reject");
  EXPECT_EQ(reply.code, 250) << reply.text << server_->Log();
  for (const MilterEvent& e : python_->Events()) {
    if (e.connection > before) {
      EXPECT_NE(e.stage, "eom") << python_->Log();
    }
  }
}

// rspamd, as sites run it: its proxy worker in milter mode, scanning itself (self_scan).
class RspamdTest : public MilterRealTest {};

TEST_F(RspamdTest, GtubeIsRefusedHamIsStoredWithItsHeadersAndDownTempfails) {
  std::string error;
  auto rspamd = Rspamd::Start(dir_ / "rspamd", &error);
  ASSERT_NE(rspamd, nullptr) << error;
  StartServer(Config({{"rspamd", rspamd->address(), ""}}));
  SmtpReply reply =
      Send("GTUBE", "sender@remote.test", {"user@example.test"},
           "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n");
  EXPECT_EQ(reply.code, 554) << reply.text << server_->Log();
  EXPECT_EQ(reply.Enhanced(), "5.7.1") << reply.text;
  EXPECT_TRUE(absl::StrContains(reply.text, "Gtube pattern")) << reply.text;

  reply = Send("a plain message", "sender@remote.test", {"user@example.test"},
               "Nothing to see here, just a short note between colleagues.\r\n");
  ASSERT_EQ(reply.code, 250) << reply.text << server_->Log();
  auto stored = Stored(reply);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(absl::StartsWith(stored->eml, "Received: ")) << stored->eml;
  // rspamd's verdict headers (its milter_headers module), and the queue id it was given (our `i`
  // macro): the one the client got.
  EXPECT_TRUE(absl::StrContains(stored->eml, "\r\nX-Rspamd-Action: ")) << stored->eml;
  EXPECT_TRUE(absl::StrContains(stored->eml, "\r\nX-Spamd-Result: default: False")) << stored->eml;
  EXPECT_TRUE(absl::StrContains(
      stored->eml, absl::StrCat("\r\nX-Rspamd-Queue-Id: ", QueuedId(reply.text), "\r\n")))
      << stored->eml;

  ASSERT_TRUE(rspamd->Stop());
  reply = Send("plain");
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "4.7.1") << reply.text;
}

}  // namespace
}  // namespace ringmx::testing
