// End-to-end: `[limits]` (issue 11 item 6) against the real server: concurrent sessions per client
// address (one shard, exact; two shards, within the per-shard budget), total sessions, new
// connections per client per minute (with the test clock), protocol errors per session, exempt
// clients, a reload of the limits, implicit TLS, and `ringmx check` on bad values. Clients bind
// to 127.0.0.2 and 127.0.0.3 so that each test has distinct client addresses on loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"
#include "tests/testing/test_pki.h"

namespace ringmx::testing {
namespace {

// A blocking SMTP client whose socket is bound to a chosen loopback source address.
class BoundClient {
 public:
  // nullptr if the socket cannot be bound or connected.
  static std::unique_ptr<BoundClient> Connect(const std::string& source, uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
        connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0) {
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<BoundClient>(new BoundClient(fd));
  }
  ~BoundClient() { close(fd_); }

  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // One whole reply; code -1 if the server closed first or `timeout` passed.
  SmtpReply ReadReply(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    SmtpReply reply;
    while (!TakeReply(buffer_, reply)) {
      if (!Fill(deadline)) return SmtpReply{};
    }
    return reply;
  }
  SmtpReply Command(const std::string& line) {
    if (!Send(line + "\r\n")) return SmtpReply{};
    return ReadReply();
  }
  // True once the server has closed the connection (EOF or reset) within `timeout`; everything
  // read meanwhile stays in `buffered()`.
  bool WaitClosed(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!closed_) {
      if (!Fill(deadline) && !closed_) return false;
    }
    return true;
  }
  const std::string& buffered() const { return buffer_; }

 private:
  explicit BoundClient(int fd) : fd_(fd) {}
  bool Fill(absl::Time deadline) {
    if (closed_) return false;
    const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait_ms)) <= 0) return false;
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  bool closed_ = false;
  std::string buffer_;
};

enum class Outcome { kGreeted, kRefused, kOther };

class ConnectionLimitsTest : public ServerTest {
 protected:
  void StartServerWithTestClock(const std::string& config) {
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error, absl::Seconds(30), /*test_clock=*/true);
    ASSERT_NE(server_, nullptr) << error;
  }
  // A config whose relay_networks (and so the default exemption) is empty: 127.0.0.1 is limited
  // too. `limits` is the body of the [limits] table.
  std::string Config(const std::string& limits, int workers = 1) {
    return BasicConfig(dir_, "", absl::StrCat("[limits]\n", limits), /*relay=*/false, workers);
  }
  // Connects from `source` and reads the first reply: the 220 (the client is kept in `held_`) or
  // a 421 4.7.0 (checked to be followed by the close); `last_` keeps the reply.
  Outcome Attempt(const std::string& source, uint16_t port = 0) {
    auto client = BoundClient::Connect(source, port == 0 ? server_->port() : port);
    if (client == nullptr) {
      ADD_FAILURE() << "connect from " << source << " failed";
      return Outcome::kOther;
    }
    last_ = client->ReadReply();
    if (last_.code == 220) {
      held_.push_back(std::move(client));
      return Outcome::kGreeted;
    }
    if (last_.code == 421 && last_.Enhanced() == "4.7.0") {
      EXPECT_TRUE(client->WaitClosed()) << "no close after " << last_.text;
      return Outcome::kRefused;
    }
    ADD_FAILURE() << "from " << source << ": " << last_.text;
    return Outcome::kOther;
  }
  std::vector<std::unique_ptr<BoundClient>> held_;
  SmtpReply last_;
};

TEST_F(ConnectionLimitsTest, SessionsPerClientOneShardIsExact) {
  StartServer(Config("max_sessions_per_client = 3\n"));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted) << i;
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
  EXPECT_EQ(last_.text, "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.2\r\n");
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
  // Another client address has its own count.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted) << i;
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kRefused);

  // A session of 127.0.0.2 ends: a new one fits again once the server has seen it end.
  ASSERT_EQ(held_[0]->Command("QUIT").code, 221);
  held_.erase(held_.begin());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  Outcome outcome = Outcome::kRefused;
  while (outcome == Outcome::kRefused && absl::Now() < deadline) {
    outcome = Attempt("127.0.0.2");
    if (outcome == Outcome::kRefused) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(outcome, Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);

  EXPECT_TRUE(server_->WaitForLog("limit shard=0 client=127.0.0.2:", absl::Seconds(10)));
  EXPECT_NE(server_->Log().find("refused=max_sessions_per_client limit=3 shard_share=3 shards=1"),
            std::string::npos)
      << server_->Log();
  EXPECT_GE(server_->Stat("connections_refused"), 4);
}

TEST_F(ConnectionLimitsTest, SessionsPerClientTwoShardsStayWithinTheLimit) {
  // Each shard takes 3; the kernel spreads the connections, so the client gets at least 3 (one
  // shard's share) and never more than 6.
  StartServer(Config("max_sessions_per_client = 6\n", /*workers=*/2));
  int greeted = 0;
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    const Outcome outcome = Attempt("127.0.0.2");
    ASSERT_NE(outcome, Outcome::kOther);
    (outcome == Outcome::kGreeted ? greeted : refused)++;
  }
  EXPECT_LE(greeted, 6);
  EXPECT_GE(greeted, 3);
  EXPECT_EQ(greeted + refused, 40);
  // The limit is per client: another address still gets in.
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted);
  EXPECT_NE(server_->Log().find("limit=6 shard_share=3 shards=2"), std::string::npos);
}

TEST_F(ConnectionLimitsTest, TotalSessionsCountEveryClient) {
  // Exempt clients are exempt from the per-client limits only.
  StartServer(Config("max_sessions = 3\nexempt = [\"127.0.0.0/8\"]\n"));
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted);
  ASSERT_EQ(Attempt("127.0.0.3"), Outcome::kRefused);
  EXPECT_EQ(last_.text, "421 4.7.0 mx.example.test Error: too many connections\r\n");
  EXPECT_EQ(Attempt("127.0.0.1"), Outcome::kRefused);
  EXPECT_TRUE(server_->WaitForLog("refused=max_sessions limit=3"));
}

TEST_F(ConnectionLimitsTest, ConnectionRatePerMinute) {
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(Config("max_connection_rate_per_client = 3\n")));
  // The server's clock is the real one plus what the test added. Move it to just past a minute
  // boundary, so that the connections below (a few seconds of real time) fall into one minute.
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  ASSERT_TRUE(server_->AdvanceClock(absl::Milliseconds(60'000 - now_ms % 60'000 + 1'000)));

  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted) << i;
    ASSERT_EQ(held_.back()->Command("QUIT").code,
              221);  // the rate counts connections, not sessions
  }
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
  EXPECT_EQ(last_.text, "421 4.7.0 mx.example.test Error: connection rate limit exceeded\r\n");
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted);
  EXPECT_TRUE(server_->WaitForLog("refused=max_connection_rate_per_client limit=3"));

  // Two minutes later the earlier connections no longer count.
  ASSERT_TRUE(server_->AdvanceClock(absl::Minutes(2)));
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
}

TEST_F(ConnectionLimitsTest, ErrorsPerSession) {
  StartServer(Config("max_errors = 3\n"));
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
  BoundClient& client = *held_.back();
  EXPECT_EQ(client.Command("FROB").code, 500);
  EXPECT_EQ(client.Command("FROB").code, 500);
  ASSERT_TRUE(client.Send("FROB\r\n"));
  EXPECT_EQ(client.ReadReply().code, 500);
  SmtpReply r = client.ReadReply();
  EXPECT_EQ(r.text, "421 4.7.0 mx.example.test Error: too many errors\r\n");
  EXPECT_TRUE(client.WaitClosed());
}

TEST_F(ConnectionLimitsTest, ExemptClientsAreNotLimitedPerClient) {
  StartServer(
      Config("max_sessions_per_client = 1\nmax_connection_rate_per_client = 2\n"
             "exempt = [\"127.0.0.2/32\"]\n"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted) << i;
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kRefused);
}

TEST_F(ConnectionLimitsTest, RelayNetworksAreExemptByDefault) {
  std::string config = BasicConfig(dir_, "", "[limits]\nmax_sessions_per_client = 1\n",
                                   /*relay=*/false, /*workers=*/1);
  const std::string from = "relay_networks = []";
  config.replace(config.find(from), from.size(), "relay_networks = [\"127.0.0.2\"]");
  StartServer(config);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted) << i;
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.3"), Outcome::kRefused);
}

TEST_F(ConnectionLimitsTest, ReloadChangesTheLimitsAndKeepsTheCounts) {
  StartServer(Config("max_sessions_per_client = 1\n"));
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
  {
    std::ofstream out(server_->config_path(), std::ios::trunc);
    out << Config("max_sessions_per_client = 2\n");
  }
  ASSERT_NE(server_->Control("reload").find("ok generation=2"), std::string::npos);
  // The session open before the reload still counts: one more fits, not two.
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kGreeted);
  EXPECT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
}

TEST_F(ConnectionLimitsTest, ImplicitTlsRefusalIsACloseWithoutPlaintext) {
  TempDir pki_dir;
  absl::StatusOr<TestPki> pki = CreateTestPki(pki_dir.path());
  ASSERT_TRUE(pki.ok()) << pki.status();
  StartServer(
      Config(absl::StrCat("max_sessions_per_client = 1\n\n[[listener]]\nname = \"smtps\"\n",
                          "address = \"127.0.0.1:0\"\ntls = \"implicit\"\n\n[tls]\ncert = \"",
                          pki->mx_cert, "\"\nkey = \"", pki->mx_key, "\"\n")));
  // The first session waits for a TLS handshake (nothing is said in plaintext).
  auto first = BoundClient::Connect("127.0.0.2", server_->port("smtps"));
  ASSERT_NE(first, nullptr);
  // One shard: it admits the first connection before it looks at the second.
  auto second = BoundClient::Connect("127.0.0.2", server_->port("smtps"));
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(second->WaitClosed());
  EXPECT_EQ(second->buffered(), "");
  EXPECT_TRUE(server_->WaitForLog("refused=max_sessions_per_client limit=1"));
  EXPECT_NE(server_->Log().find("reply=none (implicit TLS)"), std::string::npos);
  // The plain listener says why.
  ASSERT_EQ(Attempt("127.0.0.2"), Outcome::kRefused);
}

TEST_F(ConnectionLimitsTest, CheckRejectsBadLimits) {
  const std::string path = dir_ / "bad.toml";
  std::ofstream(path) << Config("max_sessions_per_client = -1\n");
  CommandResult check = RunCommand({RingmxBinary(), "check", "-c", path}, absl::Seconds(10));
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("limits.max_sessions_per_client"), std::string::npos) << check.output;
  std::ofstream(path, std::ios::trunc) << Config("exempt = [\"127.0.0.300\"]\n");
  check = RunCommand({RingmxBinary(), "check", "-c", path}, absl::Seconds(10));
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("limits.exempt[0]"), std::string::npos) << check.output;
}

}  // namespace
}  // namespace ringmx::testing
