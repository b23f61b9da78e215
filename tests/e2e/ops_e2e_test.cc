// End-to-end, issue 15 (operations): the `[metrics]` Prometheus endpoint of the real server
// (values move with traffic, only GET /metrics answers 200, `promtool check metrics` accepts the
// text, `ringmx ctl metrics` prints the same metrics); the systemd side (the server's sd_notify
// datagrams as systemd would receive them, and dist/ringmx.service through systemd-analyze).
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

constexpr char kMetrics[] = "[metrics]\naddress = \"127.0.0.1:0\"\n";

class MetricsTest : public ServerTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartServer(BasicConfig(dir_, "", kMetrics)));
    // "metrics listening address=127.0.0.1:40123 path=/metrics"
    ASSERT_TRUE(server_->WaitForLog("metrics listening address=127.0.0.1:"));
    const std::string log = server_->Log();
    const std::string marker = "metrics listening address=127.0.0.1:";
    const size_t at = log.find(marker) + marker.size();
    const std::string port = log.substr(at, log.find(' ', at) - at);
    ASSERT_TRUE(absl::SimpleAtoi(port, &metrics_port_)) << log;
    ASSERT_NE(metrics_port_, 0);
  }

  // One HTTP request; the whole response ("" if the connection failed or stayed open).
  std::string Http(const std::string& request) {
    auto client = SmtpClient::Connect("127.0.0.1", static_cast<uint16_t>(metrics_port_));
    if (client == nullptr) return "";
    if (!client->Send(request)) return "";
    std::string response;
    if (!client->WaitClosed(absl::Seconds(10), &response)) return "";
    return response;
  }

  // GET /metrics: the body of a 200 response, or "" (and a test failure).
  std::string Scrape() {
    const std::string response = Http("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 200 OK\r\n")) << response;
    const size_t body = response.find("\r\n\r\n");
    if (body == std::string::npos) return "";
    return response.substr(body + 4);
  }

  // Sample "name{labels}" -> value, summed over shards under the bare name too. A histogram's
  // `_sum` (seconds) is kept in microseconds.
  static std::map<std::string, uint64_t> Samples(const std::string& text) {
    std::map<std::string, uint64_t> out;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "#")) continue;
      const size_t space = line.rfind(' ');
      uint64_t value = 0;
      double seconds = 0;
      if (space != absl::string_view::npos && absl::EndsWith(line.substr(0, space), "_sum") &&
          absl::SimpleAtod(line.substr(space + 1), &seconds)) {
        value = static_cast<uint64_t>(seconds * 1e6);  // a histogram's sum: in microseconds
      } else if (space == absl::string_view::npos ||
                 !absl::SimpleAtoi(line.substr(space + 1), &value)) {
        ADD_FAILURE() << "not a sample: " << line;
        continue;
      }
      const std::string series(line.substr(0, space));
      out[series] = value;
      const size_t brace = series.find('{');
      if (brace != std::string::npos) out[series.substr(0, brace)] += value;
    }
    return out;
  }

  int metrics_port_ = 0;
};

TEST_F(MetricsTest, CountersMoveWithAMessage) {
  const std::map<std::string, uint64_t> before = Samples(Scrape());
  ASSERT_EQ(before.count("ringmx_messages_accepted_total"), 1u);
  EXPECT_EQ(before.at("ringmx_messages_accepted_total"), 0u);
  EXPECT_EQ(before.at("ringmx_shards"), 2u);
  EXPECT_EQ(before.count("ringmx_messages_accepted_total{shard=\"0\"}"), 1u);
  EXPECT_EQ(before.count("ringmx_messages_accepted_total{shard=\"1\"}"), 1u);

  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string data = "Subject: metrics\r\n\r\nhello\r\n";
  SmtpReply r = client->SendMail("a@remote.test", {"u@example.test"}, data);
  ASSERT_EQ(r.code, 250) << r.text;

  // While the session is open: it shows as open, and its message sits in the queue.
  const std::map<std::string, uint64_t> during = Samples(Scrape());
  EXPECT_EQ(during.at("ringmx_connections_open"), 1u);
  EXPECT_EQ(during.at("ringmx_connections_total"), 1u);
  EXPECT_EQ(during.at("ringmx_queue_messages"), 1u);

  // A session adds its messages and bytes to the counters when it ends.
  ASSERT_EQ(client->Command("QUIT").code, 221);
  ASSERT_TRUE(client->WaitClosed(absl::Seconds(10)));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::map<std::string, uint64_t> after = Samples(Scrape());
  while (after.at("ringmx_connections_open") != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    after = Samples(Scrape());
  }
  EXPECT_EQ(after.at("ringmx_connections_open"), 0u);
  EXPECT_EQ(after.at("ringmx_messages_accepted_total"), 1u);
  EXPECT_GE(after.at("ringmx_message_bytes_accepted_total"), data.size());
  EXPECT_EQ(after.at("ringmx_queue_messages"), 1u);
  EXPECT_EQ(after.at("ringmx_config_generation"), 1u);

  // The control command prints the same text (nothing moves any more).
  const std::string scraped = Scrape();
  const std::string ctl = server_->Control("metrics");
  EXPECT_EQ(ctl, scraped);

  // A reload moves the generation.
  EXPECT_TRUE(absl::StartsWith(server_->Control("reload"), "ok generation=2"));
  EXPECT_EQ(Samples(Scrape()).at("ringmx_config_generation"), 2u);
}

TEST_F(MetricsTest, OnlyGetOfMetricsIsServed) {
  EXPECT_TRUE(absl::StartsWith(Http("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 "));
  EXPECT_TRUE(absl::StartsWith(Http("GET /metrics/x HTTP/1.0\r\n\r\n"), "HTTP/1.1 404 "));
  const std::string post = Http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(post, "HTTP/1.1 405 ")) << post;
  EXPECT_TRUE(absl::StrContains(post, "\r\nAllow: GET\r\n")) << post;
  EXPECT_TRUE(absl::StartsWith(Http("EHLO x\r\n\r\n"), "HTTP/1.1 400 "));
  // A head that never ends is cut at its bound and answered 400 (not read forever). Exactly the
  // bound, so that the server has read every byte when it closes (unread bytes would reset the
  // connection and could take the answer with them).
  const std::string line = "GET /metrics HTTP/1.1\r\n";
  EXPECT_TRUE(absl::StartsWith(Http(line + std::string(8192 - line.size(), 'x')), "HTTP/1.1 400 "));
  // Serving goes on.
  EXPECT_FALSE(Scrape().empty());
}

TEST_F(MetricsTest, PromtoolAcceptsTheText) {
  ASSERT_EQ(access("/usr/bin/promtool", X_OK), 0)
      << "promtool is missing: tools/install-deps.sh installs it (Debian package prometheus)";
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->SendMail("a@remote.test", {"u@example.test"}, "Subject: x\r\n\r\nx\r\n").code,
            250);
  const std::string text = Scrape();
  ASSERT_FALSE(text.empty());
  const std::string path = dir_.path() + "/metrics.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  CommandResult check =
      RunCommand({"/bin/sh", "-c", "promtool check metrics < \"$0\"", path}, absl::Seconds(60));
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;
  EXPECT_EQ(check.output, "") << "promtool lint findings";
  // The histograms are in the checked text: the 250 latency counted the message (the listener is
  // plain, so the handshake histogram is there with nothing in it; tests/e2e/ctl_e2e_test counts
  // a handshake and checks that text with promtool too).
  const std::map<std::string, uint64_t> samples = Samples(text);
  EXPECT_EQ(samples.at("ringmx_message_store_wait_seconds_count"), 1u);
  EXPECT_EQ(samples.at("ringmx_message_store_wait_seconds_bucket{le=\"+Inf\"}"), 1u);
  EXPECT_EQ(samples.count("ringmx_message_store_wait_seconds_bucket{le=\"0.00025\"}"), 1u);
  EXPECT_GT(samples.at("ringmx_message_store_wait_seconds_sum"), 0u);
  EXPECT_EQ(samples.at("ringmx_tls_handshake_seconds_count"), 0u);
  EXPECT_EQ(samples.at("ringmx_replies_total{shard=\"0\",class=\"2xx\"}") +
                samples.at("ringmx_replies_total{shard=\"1\",class=\"2xx\"}"),
            5u);  // 220, EHLO, MAIL, RCPT, 250 after the data
}

// The server started with NOTIFY_SOCKET pointing at a datagram socket of the test, as systemd
// starts a Type=notify service.
class NotifyTest : public ServerTest {
 protected:
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }
  // The next datagram, or "" after 30 s.
  std::string Next() {
    char buf[1024];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  int fd_ = -1;
};

TEST_F(NotifyTest, ReadyReloadingStopping) {
  const std::string path = dir_.path() + "/notify";
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd_, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{30, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // The child inherits it; the other tests of this binary run without it.
  ASSERT_EQ(setenv("NOTIFY_SOCKET", path.c_str(), 1), 0);
  StartServer(BasicConfig(dir_));
  unsetenv("NOTIFY_SOCKET");
  ASSERT_NE(server_, nullptr);

  const std::string ready = Next();
  EXPECT_TRUE(
      absl::StartsWith(ready, "READY=1\nSTATUS=serving: 2 shards, generation 1, mx 127.0.0.1:"))
      << ready;

  EXPECT_TRUE(absl::StartsWith(server_->Control("reload"), "ok generation=2"));
  const std::string reloading = Next();
  EXPECT_TRUE(absl::StartsWith(reloading, "RELOADING=1\nMONOTONIC_USEC=")) << reloading;
  const std::string reloaded = Next();
  EXPECT_TRUE(
      absl::StartsWith(reloaded, "READY=1\nSTATUS=serving: 2 shards, reloaded generation=2"))
      << reloaded;

  // A config the server refuses, through SIGHUP (`ringmx ctl -c` would stop at the broken file
  // itself): READY=1 again (the old config serves on), and the status says why.
  {
    std::ofstream out(server_->config_path(), std::ios::app);
    out << "\nbogus_key = 1\n";
  }
  server_->Signal(SIGHUP);
  EXPECT_TRUE(absl::StartsWith(Next(), "RELOADING=1\n"));
  const std::string refused = Next();
  EXPECT_TRUE(absl::StartsWith(
      refused, "READY=1\nSTATUS=serving the previous config; reload failed: error "))
      << refused;
  EXPECT_TRUE(absl::StrContains(refused, "bogus_key")) << refused;

  server_->Signal(SIGTERM);
  const std::string stopping = Next();
  EXPECT_TRUE(absl::StartsWith(stopping, "STOPPING=1\nSTATUS=draining")) << stopping;
  EXPECT_EQ(server_->WaitExit(absl::Seconds(30)), 0);
}

// The unit file as systemd reads it. systemd-analyze also checks that the commands exist, so
// /usr/bin/ringmx becomes the binary just built (nothing else in the unit changes). Its warnings
// (an unknown key, a bad value) leave the exit status at 0, so the output must be empty too.
TEST(UnitFileTest, SystemdAnalyzeVerify) {
  ASSERT_EQ(access("/usr/bin/systemd-analyze", X_OK), 0)
      << "systemd-analyze is missing (Debian package systemd; tools/install-deps.sh)";
  const std::string unit = ReadWholeFile(RINGMX_SOURCE_DIR "/dist/ringmx.service");
  ASSERT_FALSE(unit.empty());
  ASSERT_TRUE(absl::StrContains(unit, "\nType=notify\n"));
  ASSERT_TRUE(absl::StrContains(unit, "\nExecStart=/usr/bin/ringmx serve -c "));
  TempDir dir;
  // ExecStart= splits at spaces: the binary goes in by a link at a path without one, since the
  // checkout's own path may have a space in it (tools/fresh-machine-test.sh builds under "/tmp/x
  // y").
  const std::string binary = dir.path() + "/ringmx";
  ASSERT_EQ(symlink(RingmxBinary().c_str(), binary.c_str()), 0) << strerror(errno);
  ASSERT_EQ(binary.find(' '), std::string::npos) << binary;
  const std::string path = dir.path() + "/ringmx.service";
  {
    std::ofstream out(path, std::ios::binary);
    out << absl::StrReplaceAll(unit, {{"/usr/bin/ringmx", binary}});
  }
  CommandResult verify =
      RunCommand({"/usr/bin/systemd-analyze", "verify", path}, absl::Seconds(60));
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_EQ(verify.output, "") << "systemd-analyze verify found problems";

  // The test is able to fail: a misspelt key is reported.
  const std::string bad = dir.path() + "/bad.service";
  {
    std::ofstream out(bad, std::ios::binary);
    out << absl::StrReplaceAll(unit,
                               {{"/usr/bin/ringmx", binary}, {"ProtectSystem=", "ProtectSytem="}});
  }
  CommandResult bad_verify =
      RunCommand({"/usr/bin/systemd-analyze", "verify", bad}, absl::Seconds(60));
  EXPECT_TRUE(absl::StrContains(bad_verify.output, "ProtectSytem")) << bad_verify.output;
}

// The Debian package (dist/CMakeLists.txt): built with cpack from this build tree into a
// temporary directory and inspected with dpkg-deb, never installed on the host.
TEST(DebianPackageTest, CpackBuildsTheDeb) {
  TempDir out;
  CommandResult cpack = RunCommand({RINGMX_CPACK, "-G", "DEB", "--config",
                                    RINGMX_BINARY_DIR "/CPackConfig.cmake", "-B", out.path()},
                                   absl::Seconds(300));
  ASSERT_EQ(cpack.exit_code, 0) << cpack.output;
  std::string deb;
  for (const std::string& name : ListDir(out.path())) {
    if (absl::EndsWith(name, ".deb")) deb = out.path() + "/" + name;
  }
  ASSERT_FALSE(deb.empty()) << cpack.output;
  // ringmx_<version>_amd64.deb
  EXPECT_TRUE(absl::EndsWith(deb, absl::StrCat("/ringmx_", RINGMX_VERSION, "_amd64.deb"))) << deb;

  CommandResult info = RunCommand({"/usr/bin/dpkg-deb", "-I", deb}, absl::Seconds(60));
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_TRUE(absl::StrContains(info.output, " Package: ringmx\n")) << info.output;
  EXPECT_TRUE(absl::StrContains(info.output, absl::StrCat(" Version: ", RINGMX_VERSION, "\n")))
      << info.output;
  EXPECT_TRUE(absl::StrContains(info.output, " Architecture: amd64\n")) << info.output;
  // Dependencies found by dpkg-shlibdeps from the binary's libraries, and adduser for postinst.
  const size_t depends_at = info.output.find(" Depends: ");
  ASSERT_NE(depends_at, std::string::npos) << info.output;
  const std::string depends =
      info.output.substr(depends_at, info.output.find('\n', depends_at) - depends_at);
  for (const char* package : {"adduser", "ssl-cert", "libc6", "libssl3", "liburing2", "libsystemd0",
                              "libtomlplusplus3", "libstdc++6"}) {
    EXPECT_TRUE(absl::StrContains(depends, absl::StrCat(" ", package)))
        << package << ": " << depends;
  }
  // The maintainer scripts and the conffile list.
  for (const char* file : {"postinst", "prerm", "postrm", "conffiles"}) {
    EXPECT_TRUE(absl::StrContains(info.output, file)) << file << "\n" << info.output;
  }
  CommandResult postinst =
      RunCommand({"/bin/sh", "-c", "dpkg-deb --ctrl-tarfile \"$0\" | tar -xOf - ./postinst", deb},
                 absl::Seconds(60));
  EXPECT_TRUE(absl::StrContains(postinst.output, "adduser --system --group")) << postinst.output;
  EXPECT_TRUE(absl::StrContains(postinst.output, "chown ringmx:ringmx /var/spool/ringmx"))
      << postinst.output;
  EXPECT_TRUE(absl::StrContains(postinst.output, "adduser --quiet ringmx ssl-cert"))
      << postinst.output;
  CommandResult conffiles =
      RunCommand({"/bin/sh", "-c", "dpkg-deb --ctrl-tarfile \"$0\" | tar -xOf - ./conffiles", deb},
                 absl::Seconds(60));
  EXPECT_EQ(conffiles.output, "/etc/ringmx/ringmx.toml\n");

  CommandResult contents = RunCommand({"/usr/bin/dpkg-deb", "-c", deb}, absl::Seconds(60));
  ASSERT_EQ(contents.exit_code, 0) << contents.output;
  for (const char* path :
       {"./usr/bin/ringmx", "./usr/lib/systemd/system/ringmx.service", "./etc/ringmx/ringmx.toml",
        "./var/spool/ringmx/", "./usr/share/doc/ringmx/operations.md"}) {
    EXPECT_TRUE(absl::StrContains(contents.output, absl::StrCat(" ", path, "\n")))
        << path << "\n"
        << contents.output;
  }

  // What the package installs works together: its config passes `ringmx check` with its binary,
  // and its unit is the one in dist/.
  const std::string root = out.path() + "/root";
  CommandResult extract = RunCommand({"/usr/bin/dpkg-deb", "-x", deb, root}, absl::Seconds(60));
  ASSERT_EQ(extract.exit_code, 0) << extract.output;
  CommandResult check =
      RunCommand({root + "/usr/bin/ringmx", "check", "-c", root + "/etc/ringmx/ringmx.toml"},
                 absl::Seconds(60));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(ReadWholeFile(root + "/usr/lib/systemd/system/ringmx.service"),
            ReadWholeFile(RINGMX_SOURCE_DIR "/dist/ringmx.service"));
  // The unit's reload reaches the server where the package's config puts the control socket.
  EXPECT_TRUE(absl::StrContains(ReadWholeFile(root + "/etc/ringmx/ringmx.toml"),
                                "socket = \"/run/ringmx/control.sock\""));
  EXPECT_TRUE(absl::StrContains(ReadWholeFile(RINGMX_SOURCE_DIR "/dist/ringmx.service"),
                                "ringmx ctl -s /run/ringmx/control.sock reload"));
}

}  // namespace
}  // namespace ringmx::testing
