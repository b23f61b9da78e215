// End-to-end tests of milters (docs/milter.md): the real server against a scripted milter that
// listens on 127.0.0.1 in this process (a thread per milter connection, decoding the packets with
// the codec's framing and answering per script). Accept with an added header, reject at RCPT,
// tempfail at end of message, a milter that is down (default tempfail / accept), a milter that
// does not answer (timeout, on the server's test clock), quarantine.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

#include "smtp/milter/codec.h"
#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

using namespace std::string_literals;

std::string Be32(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}
std::string Pkt(char command, std::string_view data) {
  return Be32(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}

// A milter on 127.0.0.1: answers OPTNEG with `protocol`, each command with `script[command]` (or
// "continue"), never `hang_on`. Stops (and joins its threads) in the destructor.
class FakeMilter {
 public:
  // On 127.0.0.1 with a port of the kernel's choice, or on the unix socket `unix_path`.
  explicit FakeMilter(const std::string& unix_path = "") {
    if (!unix_path.empty()) {
      listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", unix_path.c_str());
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      listen(listen_fd_, 16);
      return;
    }
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~FakeMilter() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (std::thread& t : workers_) t.join();
    close(listen_fd_);
  }

  uint32_t protocol = 0;
  char hang_on = 0;
  std::map<char, std::string> script;

  void Start() {
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  uint16_t port() const { return port_; }
  // Every command byte received so far, over all connections.
  std::string Commands() {
    std::lock_guard<std::mutex> lock(mu_);
    return commands_;
  }

 private:
  void AcceptLoop() {
    // Bounded: the test ends within minutes; each poll waits 50 ms.
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }
  void Serve(int fd) {
    std::string buffer;
    char chunk[16384];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      std::string reply;
      while (buffer.size() >= 5) {
        const uint32_t len = (uint32_t{static_cast<uint8_t>(buffer[0])} << 24) |
                             (uint32_t{static_cast<uint8_t>(buffer[1])} << 16) |
                             (uint32_t{static_cast<uint8_t>(buffer[2])} << 8) |
                             uint32_t{static_cast<uint8_t>(buffer[3])};
        if (buffer.size() < 4 + len) break;
        const char command = buffer[4];
        buffer.erase(0, 4 + len);
        {
          std::lock_guard<std::mutex> lock(mu_);
          commands_.push_back(command);
        }
        if (command == 'O') {
          reply += Pkt('O', Be32(6) + Be32(smtp::milter::action::kAll) + Be32(protocol));
        } else if (command == 'D' || command == 'A' || command == 'Q' || command == 'K' ||
                   command == hang_on) {
          // no answer
        } else if (auto it = script.find(command); it != script.end()) {
          reply += it->second;
        } else {
          reply += Pkt('c', "");
        }
      }
      if (!reply.empty() && write(fd, reply.data(), reply.size()) < 0) break;
    }
    close(fd);
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::string commands_;
};

// A port on 127.0.0.1 where nothing listens.
uint16_t ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

const std::string kMessage = "From: a@remote.test\r\nSubject: milter\r\n\r\nthe body\r\n";

class MilterTest : public ServerTest {
 protected:
  // `address` (e.g. "unix:/path") instead of 127.0.0.1:`milter_port` when given.
  void Start(uint16_t milter_port, const std::string& milter_extra = "", bool test_clock = false,
             const std::string& address = "") {
    std::string config = BasicConfig(
        dir_, "",
        absl::StrCat("[[milter]]\nname = \"fake\"\naddress = \"",
                     address.empty() ? absl::StrCat("inet:127.0.0.1:", milter_port) : address,
                     "\"\n", milter_extra));
    config = absl::StrReplaceAll(config, {{"address = \"127.0.0.1:0\"\n",
                                           "address = \"127.0.0.1:0\"\nmilters = [\"fake\"]\n"}});
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error, absl::Seconds(20), test_clock);
    ASSERT_NE(server_, nullptr) << error;
  }
  // Stops the server with SIGTERM: it must exit 0, with nothing from a sanitizer in its log.
  void Stop() {
    if (server_ == nullptr) return;
    server_->Signal(SIGTERM);
    EXPECT_EQ(server_->WaitExit(absl::Seconds(60)), 0);
    const std::string log = server_->Log();
    EXPECT_FALSE(absl::StrContains(log, "Sanitizer")) << log;
    EXPECT_FALSE(absl::StrContains(log, "runtime error")) << log;
    server_.reset();
  }
  void TearDown() override { Stop(); }
  CommandResult Queue(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {RingmxBinary(), "queue", "-c", server_->config_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, absl::Seconds(60));
  }
};

TEST_F(MilterTest, AcceptedMessageIsStoredWithTheMiltersHeaderAfterOurReceived) {
  FakeMilter milter;
  milter.script['E'] = Pkt('h', "X-Milter\0checked\0"s) + Pkt('a', "");
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(milter.port()));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
  ASSERT_EQ(reply.code, 250) << reply.text;
  client->Command("QUIT");
  const std::string eml = StoredEml(server_->spool(), QueuedId(reply.text));
  EXPECT_TRUE(absl::StartsWith(eml, "Received: from client.example.test")) << eml;
  EXPECT_TRUE(absl::StrContains(
      eml, "\r\nFrom: a@remote.test\r\nSubject: milter\r\nX-Milter: checked\r\n\r\nthe body\r\n"))
      << eml;
  EXPECT_TRUE(absl::StartsWith(milter.Commands(), "ODC")) << milter.Commands();
  EXPECT_TRUE(absl::StrContains(milter.Commands(), "LLDNBDE")) << milter.Commands();
}

TEST_F(MilterTest, AMilterOnAUnixSocket) {
  FakeMilter milter(dir_ / "milter.sock");
  milter.script['E'] = Pkt('y', "554 5.7.1 Gtube pattern\0"s);
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(0, "", false, "unix:" + (dir_ / "milter.sock")));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
  EXPECT_EQ(reply.code, 554) << reply.text;
  EXPECT_TRUE(absl::StrContains(reply.text, "5.7.1 Gtube pattern")) << reply.text;
  // The decision's log line carries the queue id the transaction had (the milter's `i`).
  EXPECT_TRUE(server_->WaitForLog("stage=content action=reject")) << server_->Log();
  EXPECT_TRUE(absl::StrContains(server_->Log(), "milter=fake id=")) << server_->Log();
  client->Command("QUIT");  // (a session left in a transaction would hold the shutdown's grace)
}

TEST_F(MilterTest, RejectAtRcpt) {
  FakeMilter milter;
  milter.script['R'] = Pkt('r', "");
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(milter.port()));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
  EXPECT_EQ(reply.code, 550) << reply.text;
  EXPECT_TRUE(absl::StrContains(reply.text, "5.7.1 Command rejected")) << reply.text;
  EXPECT_TRUE(server_->WaitForLog("stage=rcpt action=reject")) << server_->Log();
  EXPECT_TRUE(absl::StrContains(server_->Log(), "milter=fake id=")) << server_->Log();
  client->Command("QUIT");
}

TEST_F(MilterTest, TempfailAtEndOfMessage) {
  FakeMilter milter;
  milter.script['E'] = Pkt('t', "");
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(milter.port()));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_TRUE(absl::StrContains(reply.text, "4.7.1 Service unavailable - try again later"));
  client->Command("QUIT");
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(MilterTest, MilterDownGetsTheDefaultAction) {
  const uint16_t closed = ClosedPort();
  {
    ASSERT_NO_FATAL_FAILURE(Start(closed));
    auto client = Connect();
    ASSERT_NE(client, nullptr);
    SmtpReply reply = client->Command("EHLO client.example.test");
    EXPECT_EQ(reply.code, 451) << reply.text;
    EXPECT_TRUE(absl::StrContains(reply.text, "4.7.1 Service unavailable - try again later"));
    EXPECT_TRUE(server_->WaitForLog("milter=fake failed: connect to inet:127.0.0.1:"));
    client->Command("QUIT");
  }
  Stop();
  {
    ASSERT_NO_FATAL_FAILURE(Start(closed, "default_action = \"accept\"\n"));
    auto client = Connect();
    ASSERT_NE(client, nullptr);
    SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
    EXPECT_EQ(reply.code, 250) << reply.text;
  }
}

TEST_F(MilterTest, AMilterThatDoesNotAnswerTimesOut) {
  FakeMilter milter;
  milter.hang_on = 'E';
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(milter.port(), "content_timeout_s = 20\n", /*test_clock=*/true));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Command("EHLO client.example.test").code, 250);
  ASSERT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(client->Command("RCPT TO:<u@example.test>").code, 250);
  ASSERT_EQ(client->Command("DATA").code, 354);
  ASSERT_TRUE(client->Send(kMessage + ".\r\n"));
  // Bounded wait for the milter to have the end of message, then the server's clock passes the
  // content timeout.
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(milter.Commands(), "E") && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(absl::StrContains(milter.Commands(), "E"));
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(21)));
  SmtpReply reply = client->ReadReply(absl::Seconds(10));
  EXPECT_EQ(reply.code, 451) << reply.text;
  EXPECT_TRUE(server_->WaitForLog(" failed: timeout")) << server_->Log();
}

TEST_F(MilterTest, QuarantinedMessageIsHeldInTheQueue) {
  FakeMilter milter;
  milter.script['E'] = Pkt('q', "looks odd\0"s) + Pkt('a', "");
  milter.Start();
  ASSERT_NO_FATAL_FAILURE(Start(milter.port()));
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  SmtpReply reply = client->SendMail("a@remote.test", {"u@example.test"}, kMessage);
  ASSERT_EQ(reply.code, 250) << reply.text;
  client->Command("QUIT");
  const std::string id = QueuedId(reply.text);
  CommandResult list = Queue({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, id)) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "(held)")) << list.output;
  EXPECT_TRUE(absl::StrContains(StoredJson(server_->spool(), id),
                                "\"quarantine\":{\"milter\":\"fake\",\"reason\":\"looks odd\"}"));
  EXPECT_TRUE(
      server_->WaitForLog(absl::StrCat("milter=fake id=", id, " quarantine reason=\"looks odd\"")))
      << server_->Log();
  // ... and the message line with the same id says it is held.
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat("message id=", id, " ")));
  EXPECT_TRUE(absl::StrContains(server_->Log(), "held=quarantine result=queued")) << server_->Log();
}

}  // namespace
}  // namespace ringmx::testing
