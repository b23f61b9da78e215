// The example a newcomer runs (tools/run-example.sh with config/ringmx.example.toml) serves
// STARTTLS out of the box: tools/example-cert.sh makes a self-signed certificate for the
// example's hostname on first start and keeps it afterwards; `ringmx check` refuses the config
// while the certificate is missing, naming the key.
#include <stdint.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

class ExampleTest : public ServerTest {
 protected:
  // The example config, moved into dir_: its config file's folder is dir_ (ServerProcess writes
  // it there), so "../run/..." becomes "run/..."; the listener takes a free port.
  std::string ExampleConfig() {
    const std::string text = ReadWholeFile(RINGMX_SOURCE_DIR "/config/ringmx.example.toml");
    EXPECT_NE(text.find("address = \"127.0.0.1:2525\""), std::string::npos);
    EXPECT_NE(text.find("\"../run/"), std::string::npos);
    return absl::StrReplaceAll(text, {{"address = \"127.0.0.1:2525\"", "address = \"127.0.0.1:0\""},
                                      {"\"../run/", "\"run/"}});
  }
  CommandResult MakeCert() {
    return RunCommand({"/bin/bash", RINGMX_SOURCE_DIR "/tools/example-cert.sh", dir_ / "run/tls",
                       "mx.example.test"},
                      absl::Seconds(60));
  }
  CommandResult Check(const std::string& config) {
    const std::string path = dir_ / "check.toml";
    std::ofstream(path) << config;
    return RunCommand({RingmxBinary(), "check", "-c", path}, absl::Seconds(30));
  }
};

TEST_F(ExampleTest, ServesStartTlsWithACertificateMadeOnFirstStartAndKeptAfter) {
  const std::string config = ExampleConfig();
  // Before the first start: no certificate, and `check` says which key names the missing file.
  CommandResult check = Check(config);
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("tls.cert"), std::string::npos) << check.output;

  CommandResult made = MakeCert();
  ASSERT_EQ(made.exit_code, 0) << made.output;
  EXPECT_NE(made.output.find("made a self-signed certificate"), std::string::npos) << made.output;
  const std::string cert = ReadWholeFile(dir_ / "run/tls/cert.pem");
  ASSERT_NE(cert.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(std::filesystem::status(dir_ / "run/tls/key.pem").permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none)
      << "the key is readable by others";
  check = Check(config);
  EXPECT_EQ(check.exit_code, 0) << check.output;

  // A second start keeps the certificate (an operator's own one stays too).
  made = MakeCert();
  ASSERT_EQ(made.exit_code, 0) << made.output;
  EXPECT_EQ(made.output, "");
  EXPECT_EQ(ReadWholeFile(dir_ / "run/tls/cert.pem"), cert);

  StartServer(config);
  auto plain = Connect();
  ASSERT_NE(plain, nullptr);
  std::string error;
  auto tls = StartTls(*plain, TlsClientOptions{.sni = "mx.example.test"}, &error);
  ASSERT_NE(tls, nullptr) << error << server_->Log();
  EXPECT_EQ(tls->version().rfind("TLSv1.", 0), 0u) << tls->version();
  ASSERT_EQ(tls->Command("EHLO client.example").code, 250);
  ASSERT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(tls->Command("RCPT TO:<you@example.test>").code, 250);
  ASSERT_EQ(tls->Command("DATA").code, 354);
  const SmtpReply reply = tls->Command("Subject: hello\r\n\r\nover TLS\r\n.");
  ASSERT_EQ(reply.code, 250) << reply.text;
  EXPECT_TRUE(server_->WaitForLog(
      absl::StrCat(" message id=", QueuedId(reply.text),
                   " from=<a@remote.test> to=<you@example.test> nrcpt=1 size=")))
      << server_->Log();
  EXPECT_NE(StoredEml(dir_ / "run/spool", QueuedId(reply.text)).find("TLSv1."), std::string::npos)
      << "the Received header names the TLS version";

  // DANE for the self-signed chain: a 3 1 1 record, and no 2 1 1 (there is no issuer to pin; an
  // empty record would be invalid); the served leaf matches it.
  const CommandResult tlsa =
      RunCommand({RingmxBinary(), "tlsa", "-c", server_->config_path()}, absl::Seconds(30));
  ASSERT_EQ(tlsa.exit_code, 0) << tlsa.output;
  EXPECT_NE(tlsa.output.find("(mx.example.test,localhost, EC-P256,"), std::string::npos)
      << tlsa.output;
  EXPECT_NE(tlsa.output.find("_25._tcp.mx.example.test. IN TLSA 3 1 1 "), std::string::npos)
      << tlsa.output;
  EXPECT_EQ(tlsa.output.find("IN TLSA 2 1 1"), std::string::npos) << tlsa.output;
  EXPECT_NE(tlsa.output.find("; no TLSA 2 1 1"), std::string::npos) << tlsa.output;
  const CommandResult served =
      RunCommand({RingmxBinary(), "tlsa", "--check", absl::StrCat("127.0.0.1:", server_->port()),
                  "--starttls", "-c", server_->config_path()},
                 absl::Seconds(30));
  EXPECT_EQ(served.exit_code, 0) << served.output;
  EXPECT_NE(served.output.find("TLSA 3 1 1"), std::string::npos) << served.output;
  EXPECT_NE(served.output.find(": match"), std::string::npos) << served.output;
}

}  // namespace
}  // namespace ringmx::testing
