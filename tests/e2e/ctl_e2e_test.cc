// End-to-end, issue 15 item 1 (and item 3's histograms): the control commands of the real server
// after mail over plain SMTP and STARTTLS. `ctl version`, `ctl certs` (the served leaf's
// fingerprint as openssl computes it from the file, the warnings of an expired certificate and,
// with the test clock moved on, of one about to expire), `ctl stats` (replies, TLS by version,
// record layer, failures, latency counts), `ctl metrics` through promtool with both histograms
// counted, `--json` everywhere, and the control socket paths the server refuses to start on.
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/json.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class CtlTest : public PkiServerTest {
 protected:
  // One STARTTLS listener "mx" with mx.pem as the default certificate and the expired one for
  // old.example.test; the test clock, so that certificate expiry can be reached.
  void SetUp() override {
    const std::string config = absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 2\n\n[[listener]]\nname = \"mx\"\n",
        "address = \"127.0.0.1:0\"\ntls = \"starttls\"\n\n[tls]\ncert = \"", pki_->mx_cert,
        "\"\nkey = \"", pki_->mx_key, "\"\nktls = false\n\n[[tls.sni]]\n",
        "names = [\"old.example.test\"]\ncert = \"", pki_->expired_cert, "\"\nkey = \"",
        pki_->expired_key, "\"\n\n[policy]\nlocal_domains = [\"example.test\"]\n",
        "relay_networks = []\n\n[spool]\npath = \"", dir_.path(), "/spool\"\n\n[control]\n",
        "socket = \"", dir_.path(), "/control.sock\"\n");
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error, absl::Seconds(20), /*test_clock=*/true);
    ASSERT_NE(server_, nullptr) << error;
  }

  // `ringmx ctl --json CMD`, parsed.
  core::JsonValue CtlJson(const std::string& command) {
    const std::string out = server_->Control("--json " + command);
    absl::StatusOr<core::JsonValue> json = core::ParseJson(out);
    EXPECT_TRUE(json.ok()) << json.status() << "\n" << out;
    return json.ok() ? *json : core::JsonValue();
  }

  static uint64_t Uint(const core::JsonValue* value) {
    EXPECT_NE(value, nullptr);
    if (value == nullptr) return 0;
    EXPECT_TRUE(value->AsUint64().has_value()) << value->text();
    return value->AsUint64().value_or(0);
  }

  // Sends one message through STARTTLS; the client's TLS version, or "" on failure.
  std::string MailOverTls() {
    auto plain = Connect();
    if (plain == nullptr) return "";
    std::string error;
    auto tls = StartTls(*plain, {.sni = "mx.example.test"}, &error);
    EXPECT_NE(tls, nullptr) << error;
    if (tls == nullptr) return "";
    EXPECT_EQ(tls->Command("EHLO tls.example.test").code, 250);
    EXPECT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 250);
    EXPECT_EQ(tls->Command("RCPT TO:<u@example.test>").code, 250);
    EXPECT_EQ(tls->Command("DATA").code, 354);
    EXPECT_EQ(tls->Command("Subject: tls\r\n\r\nover TLS\r\n.").code, 250);
    EXPECT_EQ(tls->Command("QUIT").code, 221);
    return tls->version();
  }

  // Waits (bounded) until no session is open, so that every session's counters are in.
  void WaitSessionsEnded() {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (server_->Stat("connections_open") != 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(server_->Stat("connections_open"), 0);
  }
};

// The SHA-256 fingerprint of the certificate in `pem`, by the openssl command: lower case hex.
std::string OpensslFingerprint(const std::string& pem) {
  const CommandResult r =
      RunCommand({"/usr/bin/openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"},
                 absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // "sha256 Fingerprint=AB:CD:..."
  const size_t eq = r.output.find('=');
  if (eq == std::string::npos) return "";
  std::string hex = absl::StrReplaceAll(r.output.substr(eq + 1), {{":", ""}, {"\n", ""}});
  return absl::AsciiStrToLower(hex);
}

TEST_F(CtlTest, CommandsAfterPlainAndStartTlsMail) {
  // Plain.
  {
    auto client = Connect();
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->SendMail("a@remote.test", {"u@example.test"}, "Subject: p\r\n\r\np\r\n").code,
              250);
    EXPECT_EQ(client->Command("RCPT TO:<x@example.test>").code, 503);  // a 5xx: no MAIL
    ASSERT_EQ(client->Command("QUIT").code, 221);
  }
  // STARTTLS.
  ASSERT_EQ(MailOverTls(), "TLSv1.3");
  // A handshake that fails: not a ClientHello after the 220.
  {
    auto client = Connect();
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->Command("EHLO x.example.test").code, 250);
    ASSERT_EQ(client->Command("STARTTLS").code, 220);
    ASSERT_TRUE(client->Send(std::string("\x16\x03\x01\x00\x05hello", 10)));
    EXPECT_TRUE(client->WaitClosed(absl::Seconds(10)));
  }
  ASSERT_NO_FATAL_FAILURE(WaitSessionsEnded());

  // version
  const core::JsonValue version = CtlJson("version");
  ASSERT_NE(version.Find("version"), nullptr);
  EXPECT_EQ(version.Find("version")->text(), RINGMX_VERSION);
  EXPECT_FALSE(version.Find("git_commit")->text().empty());
  EXPECT_FALSE(version.Find("build_type")->text().empty());
  EXPECT_FALSE(version.Find("compiler")->text().empty());
  EXPECT_THAT(version.Find("openssl")->text(), StartsWith("OpenSSL 3"));
  EXPECT_THAT(version.Find("liburing_library")->text(), StartsWith("liburing.so"));
  ASSERT_NE(version.Find("kernel_tls"), nullptr);
  EXPECT_FALSE(version.Find("kernel_tls")->Find("enabled")->bool_value());  // tls.ktls = false
  const std::string readable_version = server_->Control("version");
  EXPECT_THAT(readable_version, HasSubstr(absl::StrCat("version: ", RINGMX_VERSION, "\n")));
  EXPECT_THAT(readable_version, HasSubstr("kernel_tls:\n  available: "));

  // certs
  const core::JsonValue certs = CtlJson("certs");
  const core::JsonValue* list = certs.Find("certificates");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->elements().size(), 2u);
  const core::JsonValue& mx = list->elements()[0];
  EXPECT_EQ(mx.Find("config_key")->text(), "tls.cert");
  EXPECT_EQ(mx.Find("sha256_fingerprint")->text(), OpensslFingerprint(pki_->mx_cert));
  EXPECT_EQ(mx.Find("subject")->text(), "CN=mx.example.test,O=Ringmx Test");
  EXPECT_EQ(mx.Find("chain_length")->AsUint64(), 2u);
  EXPECT_EQ(mx.Find("key_type")->text(), "RSA");
  EXPECT_EQ(mx.Find("warning"), nullptr);
  const core::JsonValue& old = list->elements()[1];
  EXPECT_EQ(old.Find("names")->elements()[0].text(), "old.example.test");
  EXPECT_EQ(old.Find("sha256_fingerprint")->text(), OpensslFingerprint(pki_->expired_cert));
  ASSERT_NE(old.Find("warning"), nullptr);
  EXPECT_THAT(old.Find("warning")->text(), HasSubstr("expired on"));
  ASSERT_EQ(certs.Find("listeners")->elements().size(), 1u);
  EXPECT_EQ(certs.Find("listeners")->elements()[0].Find("certificates")->elements().size(), 2u);
  EXPECT_THAT(server_->Control("certs"), HasSubstr("warning: tls.sni[0].cert (CN=expired"));

  // stats
  const core::JsonValue stats = CtlJson("stats");
  EXPECT_EQ(Uint(stats.Find("messages_accepted")), 2u);
  EXPECT_EQ(Uint(stats.Find("connections_total")), 3u);
  // The queue by state, counted by the shards: both messages wait for delivery (no route).
  const core::JsonValue* queue = stats.Find("queue");
  ASSERT_NE(queue, nullptr) << server_->Control("--json stats");
  EXPECT_EQ(Uint(queue->Find("messages")), 2u);
  EXPECT_EQ(Uint(queue->Find("held")), 0u);
  EXPECT_EQ(Uint(queue->Find("recipients")->Find("pending")) +
                Uint(queue->Find("recipients")->Find("deferred")),
            2u);
  EXPECT_EQ(Uint(queue->Find("recipients")->Find("delivered")), 0u);
  const core::JsonValue* replies = stats.Find("replies");
  ASSERT_NE(replies, nullptr);
  // Plain: 220, EHLO, MAIL, RCPT, 250 after data, 221; TLS: 220, EHLO, 220 STARTTLS, EHLO, MAIL,
  // RCPT, 250, 221; the failed one: 220, EHLO, 220 STARTTLS.
  EXPECT_EQ(Uint(replies->Find("2xx")), 17u);
  EXPECT_EQ(Uint(replies->Find("3xx")), 2u);  // 354 twice
  EXPECT_EQ(Uint(replies->Find("5xx")), 1u);
  EXPECT_GE(Uint(replies->Find("by_enhanced_code")->Find("2.0.0")), 2u);
  EXPECT_EQ(Uint(replies->Find("by_enhanced_code")->Find("5.5.1")), 1u);
  const core::JsonValue* tls = stats.Find("tls");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(Uint(tls->Find("handshakes")), 1u);
  EXPECT_EQ(Uint(tls->Find("by_version")->Find("TLSv1.3")), 1u);
  EXPECT_EQ(tls->Find("by_cipher")->members().size(), 1u);
  EXPECT_EQ(Uint(tls->Find("record_layer")->Find("userspace")), 1u);  // tls.ktls = false
  EXPECT_EQ(Uint(tls->Find("record_layer")->Find("kernel")), 0u);
  EXPECT_EQ(Uint(tls->Find("handshake_failures")), 1u);
  ASSERT_EQ(tls->Find("failures_by_reason")->members().size(), 1u);
  EXPECT_FALSE(tls->Find("failures_by_reason")->members()[0].first.empty());
  const core::JsonValue* latency = stats.Find("latency");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(Uint(latency->Find("store_wait")->Find("count")), 2u);
  EXPECT_EQ(Uint(latency->Find("tls_handshake")->Find("count")), 1u);
  // Per shard, adding up to the totals.
  const core::JsonValue* per_shard = stats.Find("per_shard");
  ASSERT_NE(per_shard, nullptr);
  ASSERT_EQ(per_shard->elements().size(), 2u);
  uint64_t accepted = 0, two = 0;
  for (const core::JsonValue& shard : per_shard->elements()) {
    accepted += Uint(shard.Find("messages_accepted"));
    two += Uint(shard.Find("replies")->Find("2xx"));
  }
  EXPECT_EQ(accepted, 2u);
  EXPECT_EQ(two, 17u);
  EXPECT_THAT(server_->Control("stats"), HasSubstr("  by_version:\n    TLSv1.3: 1\n"));

  // metrics: both histograms counted, and promtool accepts the text.
  const std::string metrics = server_->Control("metrics");
  EXPECT_THAT(metrics, HasSubstr("\nringmx_message_store_wait_seconds_count 2\n"));
  EXPECT_THAT(metrics, HasSubstr("\nringmx_tls_handshake_seconds_count 1\n"));
  EXPECT_THAT(metrics, HasSubstr("ringmx_tls_handshake_seconds_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("version=\"TLSv1.3\""));
  const std::string path = dir_.path() + "/metrics.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << metrics;
  }
  const CommandResult check =
      RunCommand({"/bin/sh", "-c", "promtool check metrics < \"$0\"", path}, absl::Seconds(60));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool lint findings";
  // Replies that are not JSON come wrapped with --json.
  const core::JsonValue metrics_json = CtlJson("metrics");
  EXPECT_TRUE(metrics_json.Find("ok")->bool_value());
  EXPECT_EQ(metrics_json.Find("reply")->text() + "\n", metrics);
  const core::JsonValue reload = CtlJson("reload");
  EXPECT_THAT(reload.Find("reply")->text(), StartsWith("ok generation=2"));

  // 358 days on, the default certificate (valid for 365) is about to expire.
  ASSERT_TRUE(server_->AdvanceClock(absl::Hours(24 * 358)));
  const core::JsonValue later = CtlJson("certs");
  const core::JsonValue& mx_later = later.Find("certificates")->elements()[0];
  ASSERT_NE(mx_later.Find("warning"), nullptr) << server_->Control("certs");
  EXPECT_THAT(mx_later.Find("warning")->text(),
              HasSubstr("tls.cert (CN=mx.example.test,O=Ringmx Test): expires in "));
  EXPECT_EQ(later.Find("warnings")->elements().size(), 2u);
}

// The server refuses to start on a control socket path another user could have prepared.
class CtlSocketTest : public ::testing::Test {
 protected:
  // Runs `ringmx serve` on BasicConfig with control.socket = `socket`; its exit code and output.
  CommandResult Serve(const std::string& socket) {
    std::string config = BasicConfig(dir_);
    config =
        absl::StrReplaceAll(config, {{absl::StrCat("socket = \"", dir_.path(), "/control.sock\""),
                                      absl::StrCat("socket = \"", socket, "\"")}});
    const std::string path = dir_.path() + "/ringmx.toml";
    {
      std::ofstream out(path);
      out << config;
    }
    // Bounded: a server that wrongly starts is killed at the timeout (and fails the test).
    return RunCommand({RingmxBinary(), "serve", "-c", path}, absl::Seconds(30));
  }
  TempDir dir_;
};

uid_t Nobody() {
  const passwd* pw = getpwnam("nobody");
  return pw != nullptr ? pw->pw_uid : 65534;
}

TEST_F(CtlSocketTest, SymlinkIsRefused) {
  const std::string socket = dir_.path() + "/control.sock";
  ASSERT_EQ(symlink((dir_.path() + "/elsewhere.sock").c_str(), socket.c_str()), 0);
  const CommandResult r = Serve(socket);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("control.socket: " + socket + " is a symbolic link"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("ringmx ready")));
  struct stat st;
  EXPECT_NE(lstat((dir_.path() + "/elsewhere.sock").c_str(), &st), 0);
}

TEST_F(CtlSocketTest, ForeignOwnerIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to nobody";
  // A socket file that belongs to nobody.
  const std::string socket = dir_.path() + "/control.sock";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);
  }
  ASSERT_EQ(chown(socket.c_str(), Nobody(), static_cast<gid_t>(-1)), 0);
  CommandResult r = Serve(socket);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("control.socket: " + socket + " is owned by nobody"));
  // A directory that belongs to nobody.
  const std::string sub = dir_.path() + "/run";
  ASSERT_EQ(mkdir(sub.c_str(), 0755), 0);
  ASSERT_EQ(chown(sub.c_str(), Nobody(), static_cast<gid_t>(-1)), 0);
  r = Serve(sub + "/control.sock");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("control.socket: directory " + sub + " is owned by nobody"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("ringmx ready")));
}

}  // namespace
}  // namespace ringmx::testing
