// End-to-end delivery rules (issue 12) that need no real mailbox server, against the capture
// SMTP server of tests/testing/next_hops.h as next hop and as bounce hop: failover to the next hop
// of a route (refused connection, 421 greeting), a hop that never greets, a hop marked down holding
// its mail while other routes flow, relay recipients no route covers, recipient verification
// against the hop's answers, no silent downgrade of 8-bit and SMTPUTF8 mail, NOTIFY=SUCCESS to a
// hop without DSN, NOTIFY=NEVER, the end of the lifetime, retries on their own, connection reuse,
// routes checked by `ringmx check` and changed by a reload, and what `ringmx queue list`, the log
// line and the stats say about a deferred recipient before and after a restart.
// tests/e2e/delivery_hops_e2e_test.cc covers the real Dovecot and Postfix hops.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/next_hops.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

constexpr char kPlainMessage[] =
    "From: <sender@remote.test>\r\nTo: <alice@example.test>\r\nSubject: plain\r\n\r\nhello\r\n";

class DeliveryRulesTest : public ServerTest {
 protected:
  void SetUp() override {
    bounce_ = CaptureSmtp::Start(dir_ / "bounce", &error_);
    ASSERT_NE(bounce_, nullptr) << error_;
  }

  // A capture server as next hop, offering `extensions`.
  std::unique_ptr<CaptureSmtp> StartHop(const std::string& name,
                                        const std::vector<std::string>& extensions = {"PIPELINING",
                                                                                      "8BITMIME"}) {
    auto hop = CaptureSmtp::Start(dir_ / name, &error_, extensions);
    EXPECT_NE(hop, nullptr) << error_;
    return hop;
  }

  static std::string HopName(uint16_t port) { return absl::StrCat("smtp:[127.0.0.1]:", port); }

  // A config routing example.test to `hops` (plain SMTP), DSNs to the bounce capture server.
  std::string Config(const std::vector<uint16_t>& hops, const std::string& route_extra = "",
                     const std::string& delivery_extra = "retry_first_s = 1\nretry_max_s = 2\n",
                     int workers = 2) {
    std::string list;
    for (uint16_t port : hops) {
      absl::StrAppend(&list, list.empty() ? "" : ", ", "\"", HopName(port), "\"");
    }
    return BasicConfig(
        dir_, "",
        absl::StrCat("[[route]]\ndomains = [\"example.test\"]\nnext_hop = [", list,
                     "]\ntls = \"none\"\n", route_extra, "\n[delivery]\nbounce_next_hop = \"",
                     HopName(bounce_->port()), "\"\n", delivery_extra),
        /*relay=*/true, workers);
  }

  // One transaction with the given MAIL and RCPT parameters ("" for none); `data` must be
  // dot-stuffed and end in CRLF. Returns the queue id of the 250.
  std::string Send(const std::string& mail_params, const std::vector<std::string>& rcpt_lines,
                   const std::string& data = kPlainMessage) {
    auto client = Connect();
    if (!client) return "";
    EXPECT_EQ(client->Command("EHLO client.remote.test").code, 250);
    SmtpReply mail = client->Command(absl::StrCat("MAIL FROM:<sender@remote.test>", mail_params));
    EXPECT_EQ(mail.code, 250) << mail.text;
    for (const std::string& rcpt : rcpt_lines) {
      SmtpReply r = client->Command(absl::StrCat("RCPT TO:", rcpt));
      EXPECT_EQ(r.code, 250) << rcpt << ": " << r.text;
    }
    EXPECT_EQ(client->Command("DATA").code, 354);
    SmtpReply done = client->Command(data + ".");
    EXPECT_EQ(done.code, 250) << done.text;
    client->Command("QUIT");
    return QueuedId(done.text);
  }

  bool WaitQueueEmpty(absl::Duration timeout = absl::Seconds(30)) {
    return PollUntil([&] { return server_->Stat("queue_messages") == 0; }, timeout);
  }

  // `ringmx queue list --json`; "" if it failed.
  std::string QueueListJson() {
    CommandResult list =
        RunCommand({RingmxBinary(), "queue", "-c", server_->config_path(), "list", "--json"},
                   absl::Seconds(30));
    EXPECT_EQ(list.exit_code, 0) << list.output;
    return list.exit_code == 0 ? list.output : "";
  }

  // The JSON object of recipient `address` in `json` (from its address to the end of the object;
  // recipients hold no nested objects); "" if absent.
  static std::string RecipientJson(const std::string& json, const std::string& address) {
    const size_t at = json.find(absl::StrCat("\"address\":\"", address, "\""));
    if (at == std::string::npos) return "";
    return json.substr(at, json.find('}', at) - at);
  }

  // The one DSN the bounce hop got, after checking its envelope.
  CapturedMessage OnlyDsn() {
    EXPECT_TRUE(bounce_->WaitForMessages(1)) << server_->Log();
    const std::vector<CapturedMessage> all = bounce_->Messages();
    EXPECT_EQ(all.size(), 1u);
    if (all.empty()) return {};
    EXPECT_EQ(all[0].sender, "");
    EXPECT_EQ(all[0].recipients, std::vector<std::string>{"sender@remote.test"});
    EXPECT_TRUE(absl::StrContains(all[0].data, "report-type=delivery-status")) << all[0].data;
    return all[0];
  }

  std::string error_;
  std::unique_ptr<CaptureSmtp> bounce_;
};

TEST_F(DeliveryRulesTest, FailsOverToTheNextHopWhenTheFirstRefusesConnections) {
  const uint16_t dead = FreeLoopbackPort();  // nothing listens there: connections are refused
  ASSERT_NE(dead, 0);
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  StartServer(Config({dead, hop->port()}, "", "hop_down_s = 600\n"));
  const std::string id = Send("", {"<alice@example.test>"});
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  // The first hop is marked down, the recipient went to the second one in the same attempt.
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat("hop=", HopName(dead), " down for ")))
      << server_->Log();
  EXPECT_TRUE(server_->WaitForLog(
      absl::StrCat(" id=", id, " to=<alice@example.test> hop=", HopName(hop->port()))))
      << server_->Log();
  EXPECT_NE(server_->Log().find("attempt=1 status=sent"), std::string::npos) << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_deferred"), 0);
  EXPECT_TRUE(bounce_->Messages().empty());
}

TEST_F(DeliveryRulesTest, FailsOverToTheNextHopWhenTheFirstGreetsWith421) {
  // A hop that answers every connection with 421 and closes it.
  uint16_t busy_port = 0;
  const int busy = ListenOnLoopback(busy_port, 16);
  ASSERT_GE(busy, 0);
  std::atomic<bool> stop{false};
  std::thread refuser([&] {
    for (int i = 0; i < 20000 && !stop; ++i) {  // 50 ms each: bounded at 1000 s
      pollfd p{busy, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int c = accept4(busy, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      constexpr std::string_view kBusy = "421 4.3.2 too busy, try another\r\n";
      (void)!write(c, kBusy.data(), kBusy.size());
      close(c);
    }
  });
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  StartServer(Config({busy_port, hop->port()}, "", "hop_down_s = 600\n"));
  const std::string id = Send("", {"<alice@example.test>"});
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  stop = true;
  refuser.join();
  close(busy);
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat("hop=", HopName(busy_port), " down for ")))
      << server_->Log();
  // Sent on the first attempt, to the second hop: the 421 did not defer the recipient.
  EXPECT_TRUE(server_->WaitForLog(
      absl::StrCat(" id=", id, " to=<alice@example.test> hop=", HopName(hop->port()))))
      << server_->Log();
  EXPECT_NE(server_->Log().find("attempt=1 status=sent"), std::string::npos) << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_deferred"), 0) << server_->Log();
}

TEST_F(DeliveryRulesTest, AHopThatNeverGreetsTimesOutAndDefers) {
  // A socket that listens and never accepts: the kernel completes the connection, no greeting
  // ever comes.
  uint16_t port = 0;
  const int silent = ListenOnLoopback(port, 16);
  ASSERT_GE(silent, 0);
  StartServer(Config({port}, "", "command_timeout_s = 1\nhop_down_s = 600\n"));
  const std::string id = Send("", {"<alice@example.test>"});
  EXPECT_TRUE(server_->WaitForLog(
      absl::StrCat(" id=", id, " to=<alice@example.test> hop=", HopName(port), " delay=")))
      << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("attempt=1 status=deferred")) << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("timeout talking to " + HopName(port))) << server_->Log();
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat("hop=", HopName(port), " down for ")))
      << server_->Log();
  EXPECT_EQ(server_->Stat("queue_messages"), 1);
  EXPECT_TRUE(bounce_->Messages().empty());
  close(silent);
}

TEST_F(DeliveryRulesTest, AHopMarkedDownHoldsItsMailWhileOtherRoutesFlow) {
  const uint16_t dead = FreeLoopbackPort();
  ASSERT_NE(dead, 0);
  auto other = StartHop("other");
  ASSERT_NE(other, nullptr);
  // One shard, so that every message meets the mark its first failure left.
  StartServer(Config({dead},
                     absl::StrCat("\n[[route]]\ndomains = [\"other.test\"]\nnext_hop = [\"",
                                  HopName(other->port()), "\"]\ntls = \"none\"\n"),
                     "retry_first_s = 1\nretry_max_s = 2\nhop_down_s = 600\n", /*workers=*/1));
  Send("", {"<alice@example.test>"});
  ASSERT_TRUE(server_->WaitForLog(absl::StrCat("hop=", HopName(dead), " down for ")))
      << server_->Log();
  ASSERT_TRUE(server_->WaitForLog("status=deferred")) << server_->Log();
  // A second message for the down hop waits without an attempt; mail for the other route flows.
  Send("", {"<bob@example.test>"});
  Send("", {"<carol@other.test>"});
  ASSERT_TRUE(other->WaitForMessages(1)) << server_->Log();
  EXPECT_EQ(other->Messages()[0].recipients, std::vector<std::string>{"carol@other.test"});
  // Past alice's retry time (1 s): still no new attempt while the hop is marked down.
  const int64_t attempts = server_->Stat("delivery_attempts");
  EXPECT_GE(attempts, 1);
  EXPECT_LE(attempts, 2);  // carol's, and alice's first unless her connection failed at once
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_EQ(server_->Stat("delivery_attempts"), attempts) << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_deferred"), 1);
  EXPECT_EQ(server_->Stat("queue_messages"), 2);
  EXPECT_EQ(server_->Log().find("to=<bob@example.test> hop="), std::string::npos) << server_->Log();
  // `queue flush` clears the mark: bob is tried (and deferred) now.
  server_->Control("queue flush");
  EXPECT_TRUE(server_->WaitForLog(
      "to=<bob@example.test> hop=smtp:[127.0.0.1]:" + std::to_string(dead) + " delay="))
      << server_->Log();
  EXPECT_GE(server_->Stat("delivery_deferred"), 2);
  EXPECT_TRUE(bounce_->Messages().empty());
}

TEST_F(DeliveryRulesTest, ARelayRecipientNoRouteCoversIsRefusedAtRcpt) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  // The client may relay (127.0.0.0/8 is in relay_networks), but only example.test is routed.
  StartServer(Config({hop->port()}));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO client.remote.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<sender@remote.test>").code, 250);
  const SmtpReply elsewhere = client->Command("RCPT TO:<user@elsewhere.example>");
  EXPECT_EQ(elsewhere.code, 550) << elsewhere.text;
  EXPECT_EQ(elsewhere.Enhanced(), "5.4.4") << elsewhere.text;
  EXPECT_EQ(client->Command("RCPT TO:<alice@example.test>").code, 250);
  client->Command("QUIT");
}

TEST_F(DeliveryRulesTest, VerificationTurnsTheHopsAnswersIntoRcptReplies) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  hop->SetRecipientReply("ghost@example.test", "550 5.1.1 no such user");
  hop->SetRecipientReply("busy@example.test", "451 4.3.0 table busy");
  StartServer(Config({hop->port()}, "verify_recipients = true\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO client.remote.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<sender@remote.test>").code, 250);
  EXPECT_EQ(client->Command("RCPT TO:<alice@example.test>").code, 250);
  const SmtpReply ghost = client->Command("RCPT TO:<ghost@example.test>");
  EXPECT_EQ(ghost.code, 550) << ghost.text;
  EXPECT_EQ(ghost.Enhanced(), "5.1.1") << ghost.text;
  // A 4xx from the hop is a temporary answer, and nothing is cached ...
  const SmtpReply busy = client->Command("RCPT TO:<busy@example.test>");
  EXPECT_EQ(busy.code, 450) << busy.text;
  EXPECT_EQ(busy.Enhanced(), "4.4.1") << busy.text;
  EXPECT_TRUE(server_->WaitForLog("to=<busy@example.test> hop=" + HopName(hop->port()) +
                                  " result=tempfail"))
      << server_->Log();
  // ... so the next RCPT asks again and gets the hop's new answer; ghost stays unknown from the
  // cache.
  hop->ClearRecipientReply("busy@example.test");
  EXPECT_EQ(client->Command("RCPT TO:<busy@example.test>").code, 250);
  hop->ClearRecipientReply("ghost@example.test");
  EXPECT_EQ(client->Command("RCPT TO:<ghost@example.test>").code, 550);
  ASSERT_EQ(client->Command("DATA").code, 354);
  ASSERT_EQ(client->Command(std::string(kPlainMessage) + ".").code, 250);
  client->Command("QUIT");
  // The probes were transactions without data: only the message itself was stored.
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  EXPECT_EQ(hop->Messages().size(), 1u);
  EXPECT_EQ(hop->Messages()[0].recipients,
            (std::vector<std::string>{"alice@example.test", "busy@example.test"}));
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
}

TEST_F(DeliveryRulesTest, AnUnreachableHopCanBeSetToAcceptUnverifiedRecipients) {
  const uint16_t dead = FreeLoopbackPort();
  ASSERT_NE(dead, 0);
  StartServer(Config({dead}, "verify_recipients = true\nverify_unreachable = \"accept\"\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO client.remote.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<sender@remote.test>").code, 250);
  const SmtpReply rcpt = client->Command("RCPT TO:<alice@example.test>", absl::Seconds(40));
  EXPECT_EQ(rcpt.code, 250) << rcpt.text;
  client->Command("QUIT");
  EXPECT_TRUE(
      server_->WaitForLog("to=<alice@example.test> hop=" + HopName(dead) + " result=unreachable"))
      << server_->Log();
}

TEST_F(DeliveryRulesTest, RingmxCheckValidatesTheRoutes) {
  const std::string path = dir_ / "check.toml";
  auto check = [&](const std::string& config) {
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << config; }
    return RunCommand({RingmxBinary(), "check", "-c", path}, absl::Seconds(30));
  };
  const CommandResult good = check(Config({2525}));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  // A host name: this version does no lookups.
  const CommandResult name = check(BasicConfig(
      dir_, "",
      "[[route]]\ndomains = [\"example.test\"]\nnext_hop = [\"smtp:relay.example.test\"]\n"
      "[delivery]\nbounce_next_hop = \"smtp:[127.0.0.1]:25\"\n"));
  EXPECT_NE(name.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(name.output, "route[0].next_hop[0]")) << name.output;
  // A local domain no route covers; no bounce hop.
  const CommandResult uncovered =
      check(BasicConfig(dir_, "",
                        "[[route]]\ndomains = [\"other.test\"]\nnext_hop = [\"smtp:[127.0.0.1]\"]\n"
                        "[delivery]\nbounce_next_hop = \"smtp:[127.0.0.1]:25\"\n"));
  EXPECT_NE(uncovered.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(uncovered.output, "example.test")) << uncovered.output;
  const CommandResult no_bounce = check(
      BasicConfig(dir_, "", "[[route]]\ndomains = [\"*\"]\nnext_hop = [\"smtp:[127.0.0.1]\"]\n"));
  EXPECT_NE(no_bounce.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(no_bounce.output, "bounce_next_hop")) << no_bounce.output;
}

TEST_F(DeliveryRulesTest, EightBitMailToAHopWithout8BitMimeFailsWithADsnInsteadOfADowngrade) {
  auto hop = StartHop("hop", {"PIPELINING"});
  ASSERT_NE(hop, nullptr);
  StartServer(Config({hop->port()}));
  Send(" BODY=8BITMIME", {"<alice@example.test>"},
       "Subject: 8-bit\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac\r\n");
  const CapturedMessage dsn = OnlyDsn();
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; alice@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Action: failed")) << dsn.data;
  EXPECT_TRUE(absl::StrContains(dsn.data, "Status: 5.6.3")) << dsn.data;
  // The DSN returns the 8-bit original, so it goes out as 8BITMIME itself.
  EXPECT_TRUE(absl::StrContains(bounce_->Messages()[0].mail_command, "BODY=8BITMIME"));
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_TRUE(hop->Messages().empty()) << "nothing may reach the hop";
  EXPECT_NE(server_->Log().find("status=bounced tls=none reply=\"554 5.6.3"), std::string::npos)
      << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_bounced"), 1);
  EXPECT_EQ(server_->Stat("dsns_queued"), 1);
}

TEST_F(DeliveryRulesTest, SmtpUtf8MailToAHopWithoutSmtpUtf8FailsWithADsn) {
  auto hop = StartHop("hop");  // 8BITMIME, no SMTPUTF8
  ASSERT_NE(hop, nullptr);
  StartServer(Config({hop->port()}));
  Send(" SMTPUTF8", {"<alice@example.test>"}, "Subject: utf8\r\n\r\nhello\r\n");
  const CapturedMessage dsn = OnlyDsn();
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; alice@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Status: 5.6.7")) << dsn.data;
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_TRUE(hop->Messages().empty()) << "nothing may reach the hop";
}

TEST_F(DeliveryRulesTest, NotifySuccessThroughAnSmtpHopWithoutDsnGetsARelayedDsn) {
  auto hop = StartHop("hop");  // no DSN offered
  ASSERT_NE(hop, nullptr);
  StartServer(Config({hop->port()}));
  Send(" ENVID=env-2", {"<alice@example.test> NOTIFY=SUCCESS", "<bob@example.test>"});
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  // A hop without DSN gets no DSN parameters.
  const CapturedMessage relayed = hop->Messages()[0];
  EXPECT_EQ(relayed.mail_command, "MAIL FROM:<sender@remote.test>");
  EXPECT_EQ(relayed.rcpt_commands, (std::vector<std::string>{"RCPT TO:<alice@example.test>",
                                                             "RCPT TO:<bob@example.test>"}));
  const CapturedMessage dsn = OnlyDsn();
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; alice@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Action: relayed")) << dsn.data;
  EXPECT_TRUE(absl::StrContains(dsn.data, "Original-Envelope-Id: env-2")) << dsn.data;
  EXPECT_FALSE(absl::StrContains(dsn.data, "bob@example.test")) << "bob did not ask";
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
}

TEST_F(DeliveryRulesTest, NotifyNeverLeavesARecipientOutOfTheFailureDsn) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  hop->SetRecipientReply("ghost@example.test", "550 5.1.1 no such user");
  hop->SetRecipientReply("bob@example.test", "550 5.1.1 no such user");
  hop->SetRecipientReply("carol@example.test", "554 5.7.1 not for you");
  StartServer(Config({hop->port()}));
  Send("", {"<ghost@example.test> NOTIFY=NEVER", "<bob@example.test>", "<alice@example.test>",
            "<carol@example.test> NOTIFY=FAILURE"});
  // One DSN for the message, listing both failures that asked for one.
  const CapturedMessage dsn = OnlyDsn();
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; bob@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; carol@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Status: 5.7.1")) << dsn.data;
  EXPECT_FALSE(absl::StrContains(dsn.data, "ghost@example.test")) << dsn.data;
  EXPECT_FALSE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; alice@example.test"));
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  EXPECT_EQ(hop->Messages()[0].recipients, std::vector<std::string>{"alice@example.test"});
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_bounced"), 3);
  EXPECT_EQ(server_->Stat("delivery_sent"), 2);  // alice, and the DSN to the bounce hop
  EXPECT_EQ(server_->Stat("dsns_queued"), 1);
}

TEST_F(DeliveryRulesTest, ARecipientPastItsLifetimeFailsWithTheHopsTemporaryStatus) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  hop->SetRecipientReply("bob@example.test", "451 4.3.0 busy, try later");
  // max_lifetime_s = 0: the first temporary failure is already past the lifetime.
  StartServer(Config({hop->port()}, "", "max_lifetime_s = 0\n"));
  Send("", {"<alice@example.test>", "<bob@example.test>"});
  const CapturedMessage dsn = OnlyDsn();
  EXPECT_TRUE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; bob@example.test"));
  EXPECT_TRUE(absl::StrContains(dsn.data, "Action: failed")) << dsn.data;
  EXPECT_TRUE(absl::StrContains(dsn.data, "Status: 4.3.0")) << dsn.data;
  EXPECT_TRUE(absl::StrContains(dsn.data, "451 4.3.0")) << dsn.data;
  EXPECT_FALSE(absl::StrContains(dsn.data, "Final-Recipient: rfc822; alice@example.test"));
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_NE(server_->Log().find("to=<bob@example.test>"), std::string::npos);
  EXPECT_NE(server_->Log().find("status=bounced expired=true"), std::string::npos)
      << server_->Log();
  EXPECT_EQ(server_->Stat("delivery_deferred"), 0);
}

TEST_F(DeliveryRulesTest, OneConnectionCarriesManyMessages) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  // Start() connected to see the greeting: count only what comes after.
  const size_t before = hop->Sessions();
  // One shard and at most one connection to the hop: every message must take turns on it.
  StartServer(Config({hop->port()}, "max_connections = 1\n", "retry_first_s = 1\nretry_max_s = 2\n",
                     /*workers=*/1));
  constexpr size_t kMessages = 20;
  for (size_t i = 0; i < kMessages; ++i) Send("", {"<alice@example.test>"});
  ASSERT_TRUE(hop->WaitForMessages(kMessages)) << server_->Log();
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  // A connection is closed after 5 s idle; sending 20 small messages takes far less, but a busy
  // machine may pause, so allow a second connection and no more.
  const size_t sessions = hop->Sessions() - before;
  EXPECT_GE(sessions, 1u);
  EXPECT_LE(sessions, 2u) << server_->Log();
  EXPECT_EQ(static_cast<size_t>(server_->Stat("outbound_connections_total")), sessions);
  EXPECT_EQ(static_cast<size_t>(server_->Stat("delivery_attempts")), kMessages);
  EXPECT_EQ(static_cast<size_t>(server_->Stat("delivery_sent")), kMessages);
  // The Prometheus text says the same (one shard: shard="0").
  const std::string metrics = server_->Control("metrics");
  EXPECT_TRUE(absl::StrContains(metrics, "\nringmx_delivery_attempts_total{shard=\"0\"} 20\n"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics, "\nringmx_delivery_sent_total{shard=\"0\"} 20\n"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(
      metrics, absl::StrCat("\nringmx_outbound_connections_total{shard=\"0\"} ", sessions, "\n")))
      << metrics;
}

TEST_F(DeliveryRulesTest, AReloadedRouteSendsNewMailToItsNewHop) {
  auto first = StartHop("first");
  auto second = StartHop("second");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  StartServer(Config({first->port()}));
  Send("", {"<alice@example.test>"});
  ASSERT_TRUE(first->WaitForMessages(1)) << server_->Log();
  // A broken route is refused by the reload (the old routes stay) ...
  {
    std::ofstream out(server_->config_path(), std::ios::binary | std::ios::trunc);
    out << Config({second->port()}, "max_connections = 0\n");
  }
  const std::string refused = server_->Control("reload");
  EXPECT_TRUE(absl::StrContains(refused, "route[0].max_connections")) << refused;
  Send("", {"<alice@example.test>"});
  ASSERT_TRUE(first->WaitForMessages(2)) << server_->Log();
  // ... a valid one is taken.
  {
    std::ofstream out(server_->config_path(), std::ios::binary | std::ios::trunc);
    out << Config({second->port()});
  }
  const std::string reloaded = server_->Control("reload");
  EXPECT_TRUE(absl::StrContains(reloaded, "ok")) << reloaded;
  Send("", {"<alice@example.test>"});
  ASSERT_TRUE(second->WaitForMessages(1)) << server_->Log();
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_EQ(first->Messages().size(), 2u);
}

TEST_F(DeliveryRulesTest, ADeferredRecipientIsTriedAgainOnItsOwn) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  hop->SetRecipientReply("bob@example.test", "451 4.3.0 busy, try later");
  // retry_first_s = 1: no `queue flush` here, the schedule alone brings the next attempts.
  StartServer(Config({hop->port()}));
  Send("", {"<bob@example.test>"});
  ASSERT_TRUE(server_->WaitForLog("attempt=1 status=deferred")) << server_->Log();
  ASSERT_TRUE(server_->WaitForLog("attempt=2 status=deferred", absl::Seconds(30)))
      << server_->Log();
  hop->ClearRecipientReply("bob@example.test");
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  EXPECT_EQ(hop->Messages()[0].recipients, std::vector<std::string>{"bob@example.test"});
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("status=sent")) << server_->Log();
  EXPECT_GE(server_->Stat("delivery_deferred"), 2);
  EXPECT_TRUE(bounce_->Messages().empty());
}

TEST_F(DeliveryRulesTest, ADeferredRecipientIsShownByQueueListTheLogAndTheStats) {
  auto hop = StartHop("hop");
  ASSERT_NE(hop, nullptr);
  hop->SetRecipientReply("bob@example.test", "450 4.2.1 mailbox busy");
  // Default retry times: bob waits 300 s after his first attempt.
  StartServer(Config({hop->port()}, "", ""));
  const std::string id = Send("", {"<alice@example.test>", "<bob@example.test>"});
  ASSERT_TRUE(hop->WaitForMessages(1)) << server_->Log();
  ASSERT_TRUE(server_->WaitForLog("status=deferred")) << server_->Log();
  // The log line: every field, in order.
  const std::regex line(absl::StrCat(
      "delivery shard=[0-9]+ id=", id,
      " to=<bob@example\\.test> hop=smtp:\\[127\\.0\\.0\\.1\\]:", hop->port(),
      " delay=[0-9]+\\.[0-9]{3} attempt=1 status=deferred tls=none reply=\"450 4\\.2\\.1 "));
  EXPECT_TRUE(std::regex_search(server_->Log(), line)) << server_->Log();
  const std::regex sent(absl::StrCat("delivery shard=[0-9]+ id=", id,
                                     " to=<alice@example\\.test> hop=[^ ]+ delay=[0-9.]+ "
                                     "attempt=1 status=sent tls=none reply=\"250 "));
  EXPECT_TRUE(std::regex_search(server_->Log(), sent)) << server_->Log();
  // The queue keeps the message for bob only, with his state, attempt and the hop's reply. The
  // state records follow the log line within a group commit (docs/delivery.md): wait for them.
  std::string bob_part;
  std::string alice_part;
  ASSERT_TRUE(PollUntil(
      [&] {
        const std::string json = QueueListJson();
        bob_part = RecipientJson(json, "bob@example.test");
        alice_part = RecipientJson(json, "alice@example.test");
        return absl::StrContains(json, id) && absl::StrContains(bob_part, "\"deferred\"") &&
               absl::StrContains(alice_part, "\"delivered\"");
      },
      absl::Seconds(20)))
      << bob_part << "\n"
      << alice_part;
  EXPECT_TRUE(absl::StrContains(bob_part, "\"deferred\"")) << bob_part;
  EXPECT_TRUE(absl::StrContains(bob_part, "\"attempts\":1")) << bob_part;
  EXPECT_TRUE(absl::StrContains(bob_part, "\"next_attempt\"")) << bob_part;
  EXPECT_TRUE(absl::StrContains(bob_part, "450 4.2.1")) << bob_part;
  EXPECT_TRUE(absl::StrContains(alice_part, "\"delivered\"")) << alice_part;
  EXPECT_EQ(server_->Stat("delivery_attempts"), 1);
  EXPECT_EQ(server_->Stat("delivery_sent"), 1);
  EXPECT_EQ(server_->Stat("delivery_deferred"), 1);
  EXPECT_EQ(server_->Stat("queue_messages"), 1);
  // The schedule is in the queue: after a restart bob is still deferred, with the same attempt
  // count and next attempt, and is not tried before it.
  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->WaitExit(absl::Seconds(40)).has_value());
  StartServer(Config({hop->port()}, "", ""));
  EXPECT_EQ(RecipientJson(QueueListJson(), "bob@example.test"), bob_part);
  EXPECT_EQ(server_->Stat("delivery_attempts"), 0);
  // The hop takes bob now; a flush brings his attempt forward.
  hop->ClearRecipientReply("bob@example.test");
  server_->Control("queue flush");
  ASSERT_TRUE(hop->WaitForMessages(2)) << server_->Log();
  EXPECT_EQ(hop->Messages()[1].recipients, std::vector<std::string>{"bob@example.test"});
  EXPECT_TRUE(WaitQueueEmpty()) << server_->Log();
  // The restarted server's log: bob's second attempt (the first was before the restart).
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat("to=<bob@example.test> hop=", HopName(hop->port()))))
      << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("attempt=2 status=sent")) << server_->Log();
  EXPECT_TRUE(bounce_->Messages().empty());
}

}  // namespace
}  // namespace ringmx::testing
