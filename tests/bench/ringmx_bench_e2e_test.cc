// End-to-end tests of ringmx-bench: it runs against the real server as a subprocess with --json;
// what it reports is checked against the spool (every accepted message is in the queue).
// Every run is small and bounded by --total-messages (or, in the one test about it, --duration),
// and by RunCommand's generous timeout. Nothing here depends on how much a run gets done in a
// stretch of wall-clock time: counts are exact, or bounds that hold however slow the machine is.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_pki.h"

namespace ringmx::testing {
namespace {

struct BenchRun {
  int exit_code = -1;
  std::string output;  // the JSON line (and anything printed on stderr)

  // The integer after "key": (top level keys are unique in the line); -1 if absent.
  int64_t Int(const std::string& key) const {
    const std::string needle = "\"" + key + "\":";
    size_t pos = output.find(needle);
    if (pos == std::string::npos) return -1;
    pos += needle.size();
    size_t end = output.find_first_not_of("0123456789", pos);
    int64_t v = -1;
    if (!absl::SimpleAtoi(output.substr(pos, end - pos), &v)) return -1;
    return v;
  }
  // The number after "key": (e.g. "elapsed_s"); -1 if absent.
  double Double(const std::string& key) const {
    const std::string needle = "\"" + key + "\":";
    size_t pos = output.find(needle);
    if (pos == std::string::npos) return -1;
    pos += needle.size();
    size_t end = output.find_first_not_of("0123456789.", pos);
    double v = -1;
    if (!absl::SimpleAtod(output.substr(pos, end - pos), &v)) return -1;
    return v;
  }
  // The "errors" object, e.g. {"552":3}.
  std::string Errors() const {
    size_t pos = output.find("\"errors\":");
    if (pos == std::string::npos) return "<none>";
    size_t end = output.find('}', pos);
    return output.substr(pos + 9, end - pos - 8);
  }
};

BenchRun RunBench(std::vector<std::string> args) {
  // No --duration unless a test asks: a cap in seconds would make the counts depend on speed.
  std::vector<std::string> argv = {RINGMX_BENCH_PATH, "--json"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, absl::Seconds(300));
  return BenchRun{r.exit_code, r.output};
}

class BenchTest : public ServerTest {
 protected:
  std::string Target(const std::string& listener = "mx") const {
    return absl::StrCat("127.0.0.1:", server_->port(listener));
  }
  size_t Stored() const { return CommittedIds(server_->spool()).size(); }
};

TEST_F(BenchTest, SendsExactlyTheMessagesAskedAndCountsThem) {
  StartServer(BasicConfig(dir_));
  BenchRun run = RunBench({"--target", Target(), "--threads", "2", "--concurrency", "7",
                           "--messages-per-connection", "5", "--total-messages", "137",
                           "--server-pid", std::to_string(server_->pid())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 137) << run.output;
  EXPECT_EQ(run.Int("messages_failed"), 0) << run.output;
  EXPECT_EQ(run.Errors(), "{}") << run.output;
  EXPECT_EQ(Stored(), 137u);
  // 137 messages at up to 5 per session: at least 28 sessions, each ended with 221.
  EXPECT_GE(run.Int("sessions"), 28) << run.output;
  EXPECT_EQ(run.Int("sessions_failed"), 0) << run.output;
  EXPECT_NE(run.output.find("\"cpu_s_per_1000_messages\":"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("\"peak_rss_kb\":"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("\"data_to_250\":{\"count\":137,"), std::string::npos) << run.output;
}

TEST_F(BenchTest, WithoutPipeliningSeveralRecipientsAndAMessageFile) {
  StartServer(BasicConfig(dir_));
  const std::string file = dir_ / "message.txt";
  {
    std::ofstream out(file, std::ios::binary);
    out << "Subject: from a file\n\n.leading dot\nplain line\n";
  }
  BenchRun run = RunBench({"--target", Target(), "--concurrency", "3", "--pipelining", "off",
                           "--rcpts", "3", "--messages-per-connection", "4", "--total-messages",
                           "20", "--message-file", file});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 20) << run.output;
  EXPECT_EQ(run.Errors(), "{}") << run.output;
  const std::vector<std::string> ids = CommittedIds(server_->spool());
  ASSERT_EQ(ids.size(), 20u);
  const std::string eml = StoredEml(server_->spool(), ids[0]);
  // Dot-stuffed on the wire, unstuffed in the spool; LF lines became CRLF.
  EXPECT_NE(eml.find("\r\n.leading dot\r\nplain line\r\n"), std::string::npos) << eml;
  const std::string json = StoredJson(server_->spool(), ids[0]);
  EXPECT_NE(json.find("user2@example.test"), std::string::npos) << json;
}

TEST_F(BenchTest, OversizeMessagesAreCountedUnder552) {
  StartServer(BasicConfig(dir_, "max_message_size = 1024\n"));
  BenchRun run = RunBench({"--target", Target(), "--concurrency", "4", "--size", "4096",
                           "--messages-per-connection", "3", "--total-messages", "25"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 0) << run.output;
  EXPECT_EQ(run.Int("messages_failed"), 25) << run.output;
  EXPECT_EQ(run.Errors(), "{\"552\":25}") << run.output;
  EXPECT_EQ(Stored(), 0u);
}

TEST_F(BenchTest, RelayRefusalIsCountedUnder554InBothModes) {
  StartServer(BasicConfig(dir_, "", "", /*relay=*/false));
  for (const char* pipelining : {"on", "off"}) {
    BenchRun run = RunBench({"--target", Target(), "--concurrency", "2", "--to", "elsewhere.test",
                             "--rcpts", "2", "--pipelining", pipelining, "--total-messages", "10"});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_EQ(run.Int("messages"), 0) << pipelining << run.output;
    EXPECT_EQ(run.Int("messages_failed"), 10) << pipelining << run.output;
    EXPECT_EQ(run.Errors(), "{\"554\":10}") << pipelining << run.output;
  }
  EXPECT_EQ(Stored(), 0u);
}

TEST(BenchNoServerTest, RefusedConnectionsAreCountedNotFatal) {
  // A port nobody listens on: bind one, read it, close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  BenchRun run = RunBench({"--target", absl::StrCat("127.0.0.1:", ntohs(addr.sin_port)),
                           "--concurrency", "3", "--total-messages", "12"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 0) << run.output;
  EXPECT_EQ(run.Int("messages_failed"), 12) << run.output;
  EXPECT_EQ(run.Errors(), "{\"connect\":12}") << run.output;
}

TEST_F(BenchTest, AStalledServerIsCountedAsTimeouts) {
  StartServer(BasicConfig(dir_));
  // Stopped: the kernel still completes connects (backlog), but no banner ever comes.
  server_->Signal(SIGSTOP);
  BenchRun run = RunBench(
      {"--target", Target(), "--concurrency", "2", "--timeout", "0.3", "--total-messages", "4"});
  server_->Signal(SIGCONT);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 0) << run.output;
  EXPECT_EQ(run.Int("messages_failed"), 4) << run.output;
  EXPECT_EQ(run.Errors(), "{\"timeout\":4}") << run.output;
}

TEST_F(BenchTest, DurationAndRateBoundTheRun) {
  StartServer(BasicConfig(dir_));
  // Open loop: sessions are scheduled at 0, 25, 50, ... ms; none is started after the first
  // second. How many of them a loaded machine finishes, and whether each gets its second message
  // in before the second is over, varies; so only bounds that hold at any speed are checked.
  BenchRun run = RunBench({"--target", Target(), "--concurrency", "10", "--rate", "40",
                           "--messages-per-connection", "2", "--duration", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const int64_t sessions = run.Int("sessions");
  const int64_t started = sessions + run.Int("sessions_failed");
  EXPECT_GE(sessions, 1) << run.output;
  // The duration bounds the run: at most rate x duration sessions.
  EXPECT_LE(started, 40) << run.output;
  // The rate bounds it too: the n-th session does not start before (n - 1) / 40 s.
  EXPECT_GE(run.Double("elapsed_s") + 0.001, static_cast<double>(started - 1) / 40.0) << run.output;
  // At most two messages for each of the at most 40 sessions; each one answered 250 is in the
  // spool. (Not 2 x `sessions`: a session still open when the drain grace ends, which a loaded
  // machine makes likely, is counted neither as a session nor as failed, but its messages count.)
  EXPECT_LE(run.Int("messages") + run.Int("messages_failed"), 2 * 40) << run.output;
  EXPECT_EQ(static_cast<int64_t>(Stored()), run.Int("messages")) << run.output;
}

TEST_F(BenchTest, StartTlsAndImplicitTls) {
  std::filesystem::create_directories(dir_ / "pki");
  absl::StatusOr<TestPki> pki = CreateTestPki(dir_ / "pki");
  ASSERT_TRUE(pki.ok()) << pki.status();
  StartServer(BasicConfig(
      dir_, "",
      absl::StrCat("[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n"
                   "\n[[listener]]\nname = \"sub\"\naddress = \"127.0.0.1:0\"\n"
                   "tls = \"starttls\"\n\n[tls]\ncert = \"",
                   pki->mx_ecdsa_cert, "\"\nkey = \"", pki->mx_ecdsa_key, "\"\n")));
  BenchRun run =
      RunBench({"--target", Target("smtps"), "--tls", "implicit", "--sni", "mx.example.test",
                "--concurrency", "3", "--messages-per-connection", "2", "--total-messages", "12"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 12) << run.output;
  EXPECT_EQ(run.Int("tls_handshakes"), run.Int("sessions")) << run.output;
  EXPECT_GE(run.Int("tls_handshakes"), 6) << run.output;
  run = RunBench({"--target", Target("sub"), "--tls", "starttls", "--concurrency", "2",
                  "--pipelining", "off", "--total-messages", "5"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.Int("messages"), 5) << run.output;
  EXPECT_EQ(run.Int("tls_handshakes"), 5) << run.output;
  EXPECT_EQ(run.Errors(), "{}") << run.output;
  EXPECT_EQ(Stored(), 17u);
}

}  // namespace
}  // namespace ringmx::testing
