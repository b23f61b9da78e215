// End-to-end: timeouts, slow clients, early talkers, graceful shutdown, config checking and the
// control socket, against the real server process.
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

using LifecycleTest = ServerTest;

TEST_F(LifecycleTest, IdleSessionGets421AfterIdleTimeout) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\nidle_s = 1\ndata_s = 2\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const absl::Time start = absl::Now();
  SmtpReply r = client->ReadReply(absl::Seconds(10));
  EXPECT_EQ(r.code, 421) << r.text;
  EXPECT_EQ(r.Enhanced(), "4.4.2");
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(5)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_TRUE(server_->WaitForLog("result=timeout"));
}

TEST_F(LifecycleTest, TricklingCommandBytesDoesNotExtendTheIdleTimeout) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\nidle_s = 1\ndata_s = 2\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const absl::Time start = absl::Now();
  std::string seen;
  // One byte every 100 ms, never a whole line; bounded at 60 bytes (6 s).
  bool closed = false;
  for (int i = 0; i < 60 && !closed; ++i) {
    client->Send("N");
    closed = client->WaitClosed(absl::Milliseconds(100), &seen);
  }
  EXPECT_TRUE(closed) << "a trickling client kept the session open";
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_NE(seen.find("421 4.4.2"), std::string::npos) << seen;
}

TEST_F(LifecycleTest, TricklingDataIsCutAtTheDataTimeout) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\nidle_s = 1\ndata_s = 2\n"));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO slow.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(client->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(client->Command("DATA").code, 354);
  const absl::Time start = absl::Now();
  std::string seen;
  bool closed = false;
  // Whole lines, one every 100 ms: each arrives well inside any per-read timeout. Bounded: 8 s.
  for (int i = 0; i < 80 && !closed; ++i) {
    client->Send("x\r\n");
    closed = client->WaitClosed(absl::Milliseconds(100), &seen);
  }
  EXPECT_TRUE(closed) << "a trickling client kept DATA open";
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(1900));
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_NE(seen.find("421 4.4.2"), std::string::npos) << seen;
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(LifecycleTest, ClientTalkingBeforeTheGreetingGets554) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\ngreet_pause_ms = 500\n"));
  auto client = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("EHLO eager.test\r\n"));
  SmtpReply r = client->ReadReply();
  EXPECT_EQ(r.code, 554) << r.text;
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(5)));
  // A patient client is greeted after the pause.
  auto patient = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->ReadReply().code, 220);
  EXPECT_TRUE(server_->WaitForLog("result=early-talk"));
}

TEST_F(LifecycleTest, SigtermFinishesDataInProgressAnswers421AndExitsCleanly) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\nshutdown_grace_s = 10\n"));
  auto busy = Connect();
  ASSERT_NE(busy, nullptr);
  ASSERT_EQ(busy->Command("EHLO busy.test").code, 250);
  ASSERT_EQ(busy->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(busy->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(busy->Command("DATA").code, 354);
  ASSERT_TRUE(busy->Send("Subject: in flight\r\n\r\nfirst half\r\n"));
  auto idle = Connect();
  ASSERT_NE(idle, nullptr);
  ASSERT_EQ(idle->Command("EHLO idle.test").code, 250);

  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->WaitForLog("SIGTERM"));
  // The idle session is told at once.
  SmtpReply idle_reply = idle->ReadReply(absl::Seconds(5));
  EXPECT_EQ(idle_reply.code, 421) << idle_reply.text;
  EXPECT_EQ(idle_reply.Enhanced(), "4.3.2");
  // New connections are no longer accepted.
  auto late = SmtpClient::Connect("127.0.0.1", server_->port());
  if (late != nullptr) {
    EXPECT_NE(late->ReadReply(absl::Seconds(2)).code, 220);
  }
  // The DATA in progress finishes and is stored; the next command gets 421.
  ASSERT_TRUE(busy->Send("second half\r\n.\r\n"));
  SmtpReply stored = busy->ReadReply();
  EXPECT_EQ(stored.code, 250) << stored.text;
  SmtpReply bye = busy->Command("MAIL FROM:<a@remote.test>");
  EXPECT_EQ(bye.code, 421) << bye.text;
  EXPECT_EQ(bye.Enhanced(), "4.3.2");

  std::optional<int> code = server_->WaitExit(absl::Seconds(15));
  ASSERT_TRUE(code.has_value()) << "server did not exit after SIGTERM";
  EXPECT_EQ(*code, 0);
  // Nothing half-written: every committed message has both files, tmp/ is empty.
  const std::vector<std::string> ids = CommittedIds(dir_ / "spool");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ListDir(dir_ / "spool/new").size(), 2u);
  EXPECT_TRUE(ListDir(dir_ / "spool/tmp").empty());
  const std::string eml = ReadWholeFile(dir_ / ("spool/new/" + ids[0] + ".eml"));
  EXPECT_NE(eml.find("first half\r\nsecond half\r\n"), std::string::npos);
}

TEST_F(LifecycleTest, SigtermGraceCutsSessionsThatNeverFinish) {
  StartServer(BasicConfig(dir_, "", "[timeouts]\nshutdown_grace_s = 1\n"));
  auto stuck = Connect();
  ASSERT_NE(stuck, nullptr);
  ASSERT_EQ(stuck->Command("EHLO stuck.test").code, 250);
  ASSERT_EQ(stuck->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(stuck->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(stuck->Command("DATA").code, 354);
  ASSERT_TRUE(stuck->Send("Subject: never ends\r\n\r\npartial\r\n"));
  server_->Signal(SIGTERM);
  std::optional<int> code = server_->WaitExit(absl::Seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_TRUE(CommittedIds(dir_ / "spool").empty());
  EXPECT_TRUE(ListDir(dir_ / "spool/tmp").empty());
}

TEST_F(LifecycleTest, CheckAcceptsAGoodConfigAndNamesTheKeyOfABadOne) {
  { std::ofstream(dir_ / "good.toml") << BasicConfig(dir_); }
  CommandResult good =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "good.toml"}, absl::Seconds(10));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  { std::ofstream(dir_ / "bad.toml") << BasicConfig(dir_) << "[policy2]\nmax_recipients = 3\n"; }
  CommandResult bad =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "bad.toml"}, absl::Seconds(10));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("policy2"), std::string::npos) << bad.output;
  { std::ofstream(dir_ / "bad2.toml") << "hostname = \"mx.example.test\"\nworkers = \"two\"\n"; }
  CommandResult bad2 =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "bad2.toml"}, absl::Seconds(10));
  EXPECT_NE(bad2.exit_code, 0);
  EXPECT_NE(bad2.output.find("workers"), std::string::npos) << bad2.output;
  EXPECT_NE(bad2.output.find(":2"), std::string::npos) << "line number missing: " << bad2.output;
  // serve refuses the same file, before binding anything.
  CommandResult serve =
      RunCommand({RingmxBinary(), "serve", "-c", dir_ / "bad2.toml"}, absl::Seconds(10));
  EXPECT_NE(serve.exit_code, 0);
  EXPECT_NE(serve.output.find("workers"), std::string::npos) << serve.output;
}

TEST_F(LifecycleTest, SecondServerOnTheSamePortRefusesToStart) {
  StartServer(BasicConfig(dir_));
  TempDir other;
  std::string config = BasicConfig(other);
  const std::string from = "127.0.0.1:0";
  config.replace(config.find(from), from.size(), absl::StrCat("127.0.0.1:", server_->port()));
  { std::ofstream(other / "ringmx.toml") << config; }
  CommandResult second =
      RunCommand({RingmxBinary(), "serve", "-c", other / "ringmx.toml"}, absl::Seconds(10));
  EXPECT_NE(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("in use"), std::string::npos) << second.output;
  // The first server still gets every connection.
  for (int i = 0; i < 10; ++i) EXPECT_NE(Connect(), nullptr);
}

TEST_F(LifecycleTest, ControlSocketStatsAndReload) {
  StartServer(BasicConfig(dir_, "", "", /*relay=*/false));
  auto before = Connect();
  ASSERT_NE(before, nullptr);
  SmtpReply r = before->SendMail("a@remote.test", {"u@example.test"}, "Subject: s\r\n\r\ns\r\n");
  ASSERT_EQ(r.code, 250);

  CommandResult stats =
      RunCommand({RingmxBinary(), "ctl", "-c", server_->config_path(), "stats"}, absl::Seconds(10));
  EXPECT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_NE(stats.output.find("\"messages_accepted\":"), std::string::npos) << stats.output;

  // A session open before the reload keeps its snapshot; new sessions see the new local domain.
  auto old_session = Connect();
  ASSERT_NE(old_session, nullptr);
  {
    std::string config = BasicConfig(dir_, "", "", false);
    const std::string from = "local_domains = [\"example.test\"]";
    config.replace(config.find(from), from.size(),
                   "local_domains = [\"example.test\", \"new.example\"]");
    std::ofstream(server_->config_path(), std::ios::trunc) << config;
  }
  CommandResult reload = RunCommand({RingmxBinary(), "ctl", "-c", server_->config_path(), "reload"},
                                    absl::Seconds(10));
  EXPECT_EQ(reload.exit_code, 0) << reload.output;
  EXPECT_NE(reload.output.find("generation=2"), std::string::npos) << reload.output;
  auto fresh = Connect();
  ASSERT_NE(fresh, nullptr);
  ASSERT_EQ(fresh->Command("EHLO fresh.test").code, 250);
  ASSERT_EQ(fresh->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(fresh->Command("RCPT TO:<x@new.example>").code, 250);
  ASSERT_EQ(old_session->Command("EHLO old.test").code, 250);
  ASSERT_EQ(old_session->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(old_session->Command("RCPT TO:<x@new.example>").code, 554);

  // A broken config is refused and the running one stays.
  { std::ofstream(server_->config_path(), std::ios::trunc) << "hostname = 12\n"; }
  CommandResult broken =
      RunCommand({RingmxBinary(), "ctl", "-s", dir_ / "control.sock", "reload"}, absl::Seconds(10));
  EXPECT_NE(broken.exit_code, 0) << broken.output;
  EXPECT_NE(broken.output.find("hostname"), std::string::npos) << broken.output;
  auto after = Connect();
  ASSERT_NE(after, nullptr);
  ASSERT_EQ(after->Command("EHLO after.test").code, 250);
  ASSERT_EQ(after->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(after->Command("RCPT TO:<x@new.example>").code, 250);
}

}  // namespace
}  // namespace ringmx::testing
