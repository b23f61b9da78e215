// End-to-end with a real HAProxy (Debian's haproxy, issue 14; docs/proxy.md "Deployment"): two
// ringmx nodes behind HAProxy in `mode tcp` with `send-proxy-v2` and `option smtpchk`, all on
// loopback. Clients bound to 127.0.0.2 and 127.0.0.3 send mail through HAProxy (127.0.0.1): both
// nodes take a share; every stored message carries its client's own address and the balancer's;
// relay_networks decides on the client's address; HAProxy's health checks (v2 LOCAL headers, EHLO,
// QUIT) are not logged as warnings or errors. One node is stopped with SIGTERM under load: every
// message that got its 250 is in one of the two queues, and HAProxy sends the rest to the other.
// HAProxy is started by the test in its temporary directory and stopped by its PID.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"

namespace ringmx::testing {
namespace {

constexpr char kHaproxy[] = "/usr/sbin/haproxy";

// A port on 127.0.0.1 that nothing listens on right now.
uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// A ringmx node behind the balancer: listener "mx" takes v2 headers from 127.0.0.1 only.
std::string NodeConfig(const TempDir& dir, const std::string& hostname) {
  return absl::StrCat(
      "hostname = \"", hostname,
      "\"\nworkers = 2\n\n"
      "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\n"
      "proxy_protocol = \"v2\"\nproxy_trusted = [\"127.0.0.1/32\"]\n\n"
      "[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = [\"127.0.0.2/32\"]\n\n"
      "[spool]\npath = \"",
      dir.path(), "/spool\"\n\n[control]\nsocket = \"", dir.path(), "/control.sock\"\n");
}

class HaproxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kHaproxy, X_OK) != 0) {
      GTEST_FAIL() << kHaproxy << " is missing: run tools/install-deps.sh (package haproxy)";
    }
    std::string error;
    node1_ = ServerProcess::Start(dir1_, NodeConfig(dir1_, "node1.example.test"), &error);
    ASSERT_NE(node1_, nullptr) << error;
    node2_ = ServerProcess::Start(dir2_, NodeConfig(dir2_, "node2.example.test"), &error);
    ASSERT_NE(node2_, nullptr) << error;
    front_port_ = FreePort();
    ASSERT_NE(front_port_, 0);
    const std::string config = absl::StrCat(
        "global\n    maxconn 500\n\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n"
        "    timeout server 30s\n    retries 3\n    option redispatch\n\n"
        "frontend smtp_in\n    bind 127.0.0.1:",
        front_port_,
        "\n    default_backend ringmx\n\n"
        "backend ringmx\n    balance roundrobin\n    option smtpchk EHLO haproxy.example.test\n"
        "    default-server send-proxy-v2 check-send-proxy inter 300ms fall 2 rise 1\n"
        "    server node1 127.0.0.1:",
        node1_->port(), " check\n    server node2 127.0.0.1:", node2_->port(), " check\n");
    const std::string config_path = haproxy_dir_ / "haproxy.cfg";
    std::ofstream(config_path) << config;
    const std::string log_path = haproxy_dir_ / "haproxy.log";
    haproxy_pid_ = fork();
    ASSERT_GE(haproxy_pid_, 0);
    if (haproxy_pid_ == 0) {
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
      }
      execl(kHaproxy, kHaproxy, "-db", "-f", config_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Ready once both nodes have answered a health check (v2 LOCAL, EHLO, QUIT).
    ASSERT_TRUE(node1_->WaitForLog("helo=haproxy.example.test", absl::Seconds(15)))
        << ReadWholeFile(log_path) << node1_->Log();
    ASSERT_TRUE(node2_->WaitForLog("helo=haproxy.example.test", absl::Seconds(15)))
        << ReadWholeFile(log_path) << node2_->Log();
  }

  void TearDown() override {
    if (haproxy_pid_ > 0) {
      kill(haproxy_pid_, SIGTERM);
      if (!WaitPid(haproxy_pid_, absl::Now() + absl::Seconds(10))) {
        kill(haproxy_pid_, SIGKILL);
        WaitPid(haproxy_pid_, absl::InfiniteFuture());
      }
    }
  }

  // One message through HAProxy from `source`; its queue id, or "" if it did not get a 250.
  std::string SendThrough(const std::string& source, const std::string& tag) {
    auto client = SmtpClient::Connect("127.0.0.1", front_port_, source);
    if (client == nullptr) return "";
    if (client->ReadReply(absl::Seconds(10)).code != 220) return "";
    const SmtpReply done = client->SendMail("s@remote.test", {"u@example.test"},
                                            absl::StrCat("Subject: ", tag, "\r\n\r\nhello\r\n"));
    if (done.code != 250) return "";
    client->Command("QUIT");
    return QueuedId(done.text);
  }

  int RelayRcpt(const std::string& source) {
    auto client = SmtpClient::Connect("127.0.0.1", front_port_, source);
    if (client == nullptr || client->ReadReply().code != 220) return -1;
    if (client->Command("EHLO c.example").code != 250) return -1;
    if (client->Command("MAIL FROM:<s@remote.test>").code != 250) return -1;
    const int code = client->Command("RCPT TO:<x@remote.test>").code;
    client->Command("QUIT");
    return code;
  }

  TempDir dir1_, dir2_, haproxy_dir_;
  std::unique_ptr<ServerProcess> node1_, node2_;
  uint16_t front_port_ = 0;
  pid_t haproxy_pid_ = -1;
};

// Warning and error lines of a node's log ("<time> <level> <message>").
std::vector<std::string> Complaints(const std::string& log) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (line.find(" warning ") != absl::string_view::npos ||
        line.find(" error ") != absl::string_view::npos) {
      lines.emplace_back(line);
    }
  }
  return lines;
}

TEST_F(HaproxyTest, TwoNodesShareTheLoadAndKeepEveryAcceptedMessage) {
  // relay_networks (127.0.0.2/32) decides on the client's own address, not HAProxy's.
  EXPECT_EQ(RelayRcpt("127.0.0.2"), 250);
  EXPECT_EQ(RelayRcpt("127.0.0.3"), 554);

  // Two clients, each sending one message per connection; node1 gets SIGTERM once 20 messages
  // are in.
  constexpr int kPerClient = 40;
  std::atomic<int> accepted{0};
  std::atomic<bool> stopped{false};
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> ids;  // (id, source)
  std::vector<std::string> after_stop;                   // ids of messages sent after SIGTERM
  auto run = [&](const std::string& source) {
    for (int i = 0; i < kPerClient; ++i) {
      const bool late = stopped.load();
      const std::string id = SendThrough(source, absl::StrCat(source, " #", i));
      if (id.empty()) continue;
      accepted.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu);
      ids.emplace_back(id, source);
      if (late) after_stop.push_back(id);
    }
  };
  std::thread a(run, "127.0.0.2");
  std::thread b(run, "127.0.0.3");
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (accepted.load() < 20 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
  // Before the stop both nodes have had a share (round robin).
  const size_t node1_before = QueuedIds(node1_->spool()).size();
  const size_t node2_before = QueuedIds(node2_->spool()).size();
  node1_->Signal(SIGTERM);
  stopped.store(true);
  const std::optional<int> exit_code = node1_->WaitExit(absl::Seconds(30));
  a.join();
  b.join();
  EXPECT_EQ(exit_code, 0);
  EXPECT_GT(node1_before, 0u);
  EXPECT_GT(node2_before, 0u);

  // Every 250 is in one of the two queues, with its client's own address and HAProxy's.
  const std::vector<std::string> q1 = QueuedIds(node1_->spool());
  const std::vector<std::string> q2 = QueuedIds(node2_->spool());
  const std::set<std::string> in1(q1.begin(), q1.end());
  const std::set<std::string> in2(q2.begin(), q2.end());
  ASSERT_GE(ids.size(), 20u);
  for (const auto& [id, source] : ids) {
    SCOPED_TRACE(id);
    const bool on1 = in1.count(id) > 0;
    ASSERT_TRUE(on1 || in2.count(id) > 0);
    const std::string spool = on1 ? node1_->spool() : node2_->spool();
    const std::string json = StoredJson(spool, id);
    EXPECT_NE(json.find(absl::StrCat(R"("client":{"address":")", source, "\"")), std::string::npos)
        << json;
    EXPECT_NE(json.find(R"("proxied_by":{"address":"127.0.0.1",)"), std::string::npos) << json;
    EXPECT_NE(StoredEml(spool, id).find(absl::StrCat("([", source, "])")), std::string::npos);
  }
  // HAProxy sent the rest to node2: messages sent after the stop were accepted there.
  EXPECT_FALSE(after_stop.empty());
  for (const std::string& id : after_stop) {
    if (in1.count(id) == 0) {
      EXPECT_EQ(in2.count(id), 1u) << id;
    }
  }

  // Health checks (v2 LOCAL from 127.0.0.1) are ordinary sessions: nothing to warn about.
  EXPECT_EQ(Complaints(node2_->Log()), std::vector<std::string>{}) << node2_->Log();
  EXPECT_NE(node2_->Log().find("client=127.0.0.1:"), std::string::npos);
}

}  // namespace
}  // namespace ringmx::testing
