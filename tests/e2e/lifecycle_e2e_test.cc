// End-to-end: timeouts, slow clients, early talkers, the closing linger, graceful shutdown, shard
// thread pinning, config checking and the control socket, against the real server process.
#include <signal.h>
#include <sys/types.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

// Every deadline of the server (idle and DATA timeouts, greet pause, closing linger, shutdown
// grace) reads the server's clock, not the wall clock. The tests below start the server with
// --test-clock and move its clock forward past a deadline instead of waiting for it; timeouts stay
// at minutes, so the real seconds a loaded machine takes never reach one. Every wait here is a
// generous "until it happens" bound; nothing asserts how long anything took.
class LifecycleTest : public ServerTest {
 protected:
  void StartServerWithTestClock(const std::string& config) {
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error, absl::Seconds(30), /*test_clock=*/true);
    ASSERT_NE(server_, nullptr) << error;
  }
  // Waits until the server has accepted `n` connections in all (the control command `stats`).
  bool WaitForConnectionsTotal(int64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (server_->Stat("connections_total") < n) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }
};

constexpr char kMinuteTimeouts[] = "[timeouts]\nidle_s = 300\ndata_s = 600\n";

TEST_F(LifecycleTest, IdleSessionGets421AfterIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(BasicConfig(dir_, "", kMinuteTimeouts)));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  // Not before the deadline: AdvanceClock returns once the shards have checked their deadlines
  // at the new time, so a session cut too early would answer this NOOP with its 421.
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(200)));
  SmtpReply noop = client->Command("NOOP");
  ASSERT_EQ(noop.code, 250) << noop.text;
  // A whole command restarts the idle timer; 301 s of silence after it ends the session.
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(301)));
  SmtpReply r = client->ReadReply(absl::Seconds(30));
  EXPECT_EQ(r.code, 421) << r.text;
  EXPECT_EQ(r.Enhanced(), "4.4.2");
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(30)));
  EXPECT_TRUE(server_->WaitForLog("result=timeout", absl::Seconds(30)));
}

TEST_F(LifecycleTest, TricklingCommandBytesDoesNotExtendTheIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(BasicConfig(dir_, "", kMinuteTimeouts)));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  // A byte every 120 s, never a whole line: were each byte to restart the 300 s idle timer, the
  // session would live until 540 s; it must end at 300 s, before the third byte's 120 s are up.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->Send("N"));
    ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(120)));
  }
  std::string seen;
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(30), &seen))
      << "a trickling client kept the session open";
  EXPECT_NE(seen.find("421 4.4.2"), std::string::npos) << seen;
}

TEST_F(LifecycleTest, TricklingDataIsCutAtTheDataTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(BasicConfig(dir_, "", kMinuteTimeouts)));
  // Two clients in DATA, each sending a whole line every 100 s (well inside the 300 s idle
  // timeout): `finisher` ends its message after 400 s, past idle_s, and it is stored; `trickler`
  // goes on and is cut once the 600 s DATA phase is over.
  auto finisher = Connect();
  auto trickler = Connect();
  ASSERT_NE(finisher, nullptr);
  ASSERT_NE(trickler, nullptr);
  for (SmtpClient* client : {finisher.get(), trickler.get()}) {
    ASSERT_EQ(client->Command("EHLO slow.test").code, 250);
    ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
    ASSERT_EQ(client->Command("RCPT TO:<u@example.test>").code, 250);
    ASSERT_EQ(client->Command("DATA").code, 354);
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(finisher->Send("x\r\n"));
    ASSERT_TRUE(trickler->Send("x\r\n"));
    ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(100)));
  }
  SmtpReply stored = finisher->Command(".");
  EXPECT_EQ(stored.code, 250) << "DATA was cut at the idle timeout: " << stored.text;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(trickler->Send("x\r\n"));
    ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(100)));
  }
  std::string seen;
  EXPECT_TRUE(trickler->WaitClosed(absl::Seconds(30), &seen))
      << "a trickling client kept DATA open";
  EXPECT_NE(seen.find("421 4.4.2"), std::string::npos) << seen;
  EXPECT_EQ(CommittedIds(server_->spool()).size(), 1u);
}

TEST_F(LifecycleTest, ClientTalkingBeforeTheGreetingGets554) {
  ASSERT_NO_FATAL_FAILURE(
      StartServerWithTestClock(BasicConfig(dir_, "", "[timeouts]\ngreet_pause_ms = 60000\n")));
  auto client = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("EHLO eager.test\r\n"));
  SmtpReply r = client->ReadReply(absl::Seconds(30));
  EXPECT_EQ(r.code, 554) << r.text;
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(30)));
  EXPECT_TRUE(server_->WaitForLog("result=early-talk", absl::Seconds(30)));
  // A patient client is greeted once the pause is over, and not before.
  auto patient = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(patient, nullptr);
  ASSERT_TRUE(WaitForConnectionsTotal(2));  // its pause runs from the accept
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(30)));
  SmtpReply early = patient->ReadReply(absl::Milliseconds(300));
  EXPECT_EQ(early.code, -1) << "greeted during the pause: " << early.text;
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(31)));
  EXPECT_EQ(patient->ReadReply(absl::Seconds(30)).code, 220);
  EXPECT_EQ(patient->Command("EHLO patient.test").code, 250);
}

TEST_F(LifecycleTest, ClosingConnectionWaitsForTheClientsEofOnlyForTheLinger) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(BasicConfig(dir_)));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Command("QUIT").code, 221);
  // The server half-closes after the 221 ...
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(30)));
  // ... and, since this client never closes its side, ends the connection when the linger is
  // over (the session's line is logged when the connection ends).
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(3)));
  EXPECT_TRUE(server_->WaitForLog("result=quit", absl::Seconds(30)));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (server_->Stat("connections_open") != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(server_->Stat("connections_open"), 0);
}

TEST_F(LifecycleTest, AdvancingTheClockIsRefusedWithoutTheTestFlag) {
  StartServer(BasicConfig(dir_));
  const std::string reply = server_->Control("advance-clock-for-test 1000");
  EXPECT_NE(reply.find("error"), std::string::npos) << reply;
  EXPECT_NE(reply.find("--test-clock"), std::string::npos) << reply;
  EXPECT_FALSE(server_->AdvanceClock(absl::Seconds(1)));
}

TEST_F(LifecycleTest, SigtermFinishesDataInProgressAnswers421AndExitsCleanly) {
  // A grace far longer than this test can take, however slow the machine.
  StartServer(BasicConfig(dir_, "", "[timeouts]\nshutdown_grace_s = 3600\n"));
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
  SmtpReply idle_reply = idle->ReadReply(absl::Seconds(30));
  EXPECT_EQ(idle_reply.code, 421) << idle_reply.text;
  EXPECT_EQ(idle_reply.Enhanced(), "4.3.2");
  // New connections are no longer accepted.
  auto late = SmtpClient::Connect("127.0.0.1", server_->port());
  if (late != nullptr) {
    EXPECT_NE(late->ReadReply(absl::Seconds(2)).code, 220);
  }
  // The DATA in progress finishes and is stored; the next command gets 421.
  ASSERT_TRUE(busy->Send("second half\r\n.\r\n"));
  SmtpReply stored = busy->ReadReply(absl::Seconds(30));
  EXPECT_EQ(stored.code, 250) << stored.text;
  SmtpReply bye = busy->Command("MAIL FROM:<a@remote.test>", absl::Seconds(30));
  EXPECT_EQ(bye.code, 421) << bye.text;
  EXPECT_EQ(bye.Enhanced(), "4.3.2");

  std::optional<int> code = server_->WaitExit(absl::Seconds(60));
  ASSERT_TRUE(code.has_value()) << "server did not exit after SIGTERM";
  EXPECT_EQ(*code, 0);
  // Nothing half-written: the one message is whole and the log has no torn tail.
  const QueueContents queue = ReadQueue(dir_ / "spool");
  ASSERT_EQ(queue.messages.size(), 1u);
  EXPECT_TRUE(queue.problems.empty()) << queue.problems[0];
  const std::string eml = queue.messages.begin()->second.eml;
  EXPECT_NE(eml.find("first half\r\nsecond half\r\n"), std::string::npos);
}

TEST_F(LifecycleTest, SigtermGraceCutsSessionsThatNeverFinish) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(
      BasicConfig(dir_, "", "[timeouts]\nshutdown_grace_s = 300\n", true, /*workers=*/2)));
  auto stuck = Connect();
  ASSERT_NE(stuck, nullptr);
  ASSERT_EQ(stuck->Command("EHLO stuck.test").code, 250);
  ASSERT_EQ(stuck->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(stuck->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(stuck->Command("DATA").code, 354);
  ASSERT_TRUE(stuck->Send("Subject: never ends\r\n\r\npartial\r\n"));
  server_->Signal(SIGTERM);
  // Both shards have started their grace (from the clock as it was) before it moves.
  ASSERT_TRUE(server_->WaitForLog("shard=0 draining", absl::Seconds(30)));
  ASSERT_TRUE(server_->WaitForLog("shard=1 draining", absl::Seconds(30)));
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(301)));
  std::optional<int> code = server_->WaitExit(absl::Seconds(60));
  ASSERT_TRUE(code.has_value()) << "the grace did not end the stuck session";
  EXPECT_EQ(*code, 0);
  EXPECT_NE(server_->Log().find("shutdown grace over"), std::string::npos) << server_->Log();
  EXPECT_TRUE(stuck->WaitClosed(absl::Seconds(30)));
  EXPECT_TRUE(CommittedIds(dir_ / "spool").empty());
  EXPECT_TRUE(ListDir(dir_ / "spool/tmp").empty());
}

// ---- Shard threads and CPUs (DESIGN.md section 1) --------------------------------------------

// "0-2,5" -> {0, 1, 2, 5}; empty on anything else.
std::vector<int> ParseCpuList(const std::string& text) {
  std::vector<int> cpus;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> range = absl::StrSplit(part, '-');
    int first = 0;
    int last = 0;
    if (range.empty() || range.size() > 2 || !absl::SimpleAtoi(range[0], &first)) return {};
    last = first;
    if (range.size() == 2 && !absl::SimpleAtoi(range[1], &last)) return {};
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  return cpus;
}

// The Cpus_allowed_list of a /proc/.../status file.
std::vector<int> AllowedCpusOf(const std::string& status_path) {
  const std::string status = ReadWholeFile(status_path);
  const std::string key = "Cpus_allowed_list:";
  const size_t pos = status.find(key);
  if (pos == std::string::npos) return {};
  const size_t end = status.find('\n', pos);
  return ParseCpuList(std::string(absl::StripAsciiWhitespace(
      absl::string_view(status).substr(pos + key.size(), end - pos - key.size()))));
}

// Thread name ("ringmx-shard0", ...) -> the CPUs it may run on, for every shard thread of `pid`.
std::map<std::string, std::vector<int>> ShardThreadCpus(pid_t pid) {
  std::map<std::string, std::vector<int>> out;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  for (const std::string& tid : ListDir(tasks)) {
    std::string name = ReadWholeFile(absl::StrCat(tasks, "/", tid, "/comm"));
    while (!name.empty() && name.back() == '\n') name.pop_back();
    if (name.rfind("ringmx-shard", 0) != 0) continue;
    out[name] = AllowedCpusOf(absl::StrCat(tasks, "/", tid, "/status"));
  }
  return out;
}

// BasicConfig with `line` added among the top-level keys.
std::string WithTopLevelKey(const std::string& config, const std::string& line) {
  std::string out = config;
  const size_t pos = out.find("\n\n[[listener]]");
  out.insert(pos + 1, line + "\n");
  return out;
}

TEST_F(LifecycleTest, ShardThreadsArePinnedOnePerCpu) {
  StartServer(BasicConfig(dir_, "", "", true, /*workers=*/2));
  // The server's main thread is never pinned: its set is what the process may use.
  const std::vector<int> allowed = AllowedCpusOf(absl::StrCat("/proc/", server_->pid(), "/status"));
  ASSERT_FALSE(allowed.empty());
  const std::map<std::string, std::vector<int>> shards = ShardThreadCpus(server_->pid());
  ASSERT_EQ(shards.size(), 2u) << server_->Log();
  for (int i = 0; i < 2; ++i) {
    const std::string name = absl::StrCat("ringmx-shard", i);
    ASSERT_EQ(shards.count(name), 1u) << name;
    // Shard i on the i-th allowed CPU, wrapping around when there are fewer CPUs than shards.
    const int expected = allowed[static_cast<size_t>(i) % allowed.size()];
    EXPECT_EQ(shards.at(name), std::vector<int>{expected}) << name;
    EXPECT_NE(server_->Log().find(absl::StrCat("shard=", i, " cpu=", expected, "\n")),
              std::string::npos)
        << server_->Log();
  }
  if (allowed.size() >= 2) {
    EXPECT_NE(shards.at("ringmx-shard0"), shards.at("ringmx-shard1"));
  }
}

TEST_F(LifecycleTest, PinThreadsFalseLeavesShardThreadsFree) {
  StartServer(
      WithTopLevelKey(BasicConfig(dir_, "", "", true, /*workers=*/2), "pin_threads = false"));
  const std::vector<int> allowed = AllowedCpusOf(absl::StrCat("/proc/", server_->pid(), "/status"));
  ASSERT_FALSE(allowed.empty());
  const std::map<std::string, std::vector<int>> shards = ShardThreadCpus(server_->pid());
  ASSERT_EQ(shards.size(), 2u) << server_->Log();
  for (const auto& [name, cpus] : shards) EXPECT_EQ(cpus, allowed) << name;
  EXPECT_NE(server_->Log().find("shard=0 cpu=any"), std::string::npos) << server_->Log();
}

TEST_F(LifecycleTest, CheckAcceptsAGoodConfigAndNamesTheKeyOfABadOne) {
  { std::ofstream(dir_ / "good.toml") << BasicConfig(dir_); }
  CommandResult good =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "good.toml"}, absl::Seconds(10));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_NE(good.output.find("threads pinned one per CPU"), std::string::npos) << good.output;
  {
    std::ofstream(dir_ / "unpinned.toml")
        << WithTopLevelKey(BasicConfig(dir_), "pin_threads = false");
  }
  CommandResult unpinned =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "unpinned.toml"}, absl::Seconds(10));
  EXPECT_EQ(unpinned.exit_code, 0) << unpinned.output;
  EXPECT_NE(unpinned.output.find("not pinned"), std::string::npos) << unpinned.output;
  { std::ofstream(dir_ / "badpin.toml") << WithTopLevelKey(BasicConfig(dir_), "pin_threads = 1"); }
  CommandResult badpin =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "badpin.toml"}, absl::Seconds(10));
  EXPECT_NE(badpin.exit_code, 0);
  EXPECT_NE(badpin.output.find("pin_threads: expected a boolean"), std::string::npos)
      << badpin.output;
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

TEST_F(LifecycleTest, CheckNamesARouteCaBundleThatCannotBeLoaded) {
  // tls = "verify" routes load their tls_ca when the config is checked, as at start and reload.
  const std::string routes =
      "[[route]]\ndomains = [\"*\"]\nnext_hop = [\"smtp:[127.0.0.1]:2525\"]\n"
      "tls = \"verify\"\ntls_ca = \"relay-ca.pem\"\ntls_name = \"relay.example.test\"\n"
      "[delivery]\nbounce_next_hop = \"smtp:[127.0.0.1]:2525\"\n";
  { std::ofstream(dir_ / "route.toml") << BasicConfig(dir_, "", routes); }
  CommandResult missing =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "route.toml"}, absl::Seconds(10));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("route[0].tls_ca: "), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("relay-ca.pem: No such file or directory"), std::string::npos)
      << missing.output;
  { std::ofstream(dir_ / "relay-ca.pem") << "not a certificate\n"; }
  CommandResult garbage =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "route.toml"}, absl::Seconds(10));
  EXPECT_NE(garbage.exit_code, 0);
  EXPECT_NE(garbage.output.find("route[0].tls_ca: "), std::string::npos) << garbage.output;
  EXPECT_NE(garbage.output.find("cannot load CA certificates"), std::string::npos)
      << garbage.output;
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

  CommandResult stats = RunCommand(
      {RingmxBinary(), "ctl", "-c", server_->config_path(), "--json", "stats"}, absl::Seconds(10));
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
  // The file, the line and the key: "<dir>/ringmx.toml:1: hostname: ...".
  EXPECT_NE(broken.output.find("ringmx.toml:1: hostname"), std::string::npos) << broken.output;
  auto after = Connect();
  ASSERT_NE(after, nullptr);
  ASSERT_EQ(after->Command("EHLO after.test").code, 250);
  ASSERT_EQ(after->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(after->Command("RCPT TO:<x@new.example>").code, 250);
}

}  // namespace
}  // namespace ringmx::testing
