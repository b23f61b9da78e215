// End-to-end relay and recipient policy (docs/policy.md) against the real server: relay by
// network and denial otherwise, relay by a verified client certificate's fingerprint, local
// domains, unknown local users from a recipients file, `ringmx check` on that file, and reloads
// that change it (or fail and keep the old one). Relay by AUTH is tested with AUTH.
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

struct PolicyOptions {
  std::string relay_networks = "[]";
  std::string relay_client_certs = "[]";
  bool recipients = false;  // recipients = "recipients" (beside the config)
  bool tls_required = false;
};

class RelayTest : public PkiServerTest {
 protected:
  // One STARTTLS listener "mx" that asks for client certificates; local domains example.test and
  // example.org.
  std::string Config(const PolicyOptions& o) const {
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 2\n\n"
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n"
        "client_certs = \"optional\"\ntls_required = ",
        o.tls_required ? "true" : "false",
        "\n\n"
        "[tls]\ncert = \"",
        pki_->mx_cert, "\"\nkey = \"", pki_->mx_key, "\"\nclient_ca = \"", pki_->client_ca,
        "\"\n\n[policy]\nlocal_domains = [\"example.test\", \"example.org\"]\n",
        "relay_networks = ", o.relay_networks, "\nrelay_client_certs = ", o.relay_client_certs,
        "\n", o.recipients ? "recipients = \"recipients\"\n" : "", "\n[spool]\npath = \"",
        dir_.path(), "/spool\"\n\n[control]\nsocket = \"", dir_.path(), "/control.sock\"\n");
  }

  void WriteRecipients(const std::string& text) { std::ofstream(dir_ / "recipients") << text; }

  // RCPT TO:<rcpt> after EHLO and MAIL on a new plaintext session; the reply's code and text.
  SmtpReply Rcpt(const std::string& rcpt) {
    auto client = Connect();
    if (client == nullptr) return {};
    EXPECT_EQ(client->Command("EHLO client.example").code, 250);
    EXPECT_EQ(client->Command("MAIL FROM:<a@remote.test>").code, 250);
    SmtpReply reply = client->Command(absl::StrCat("RCPT TO:<", rcpt, ">"));
    client->Command("QUIT");
    return reply;
  }

  // The same over STARTTLS with the client certificate `cert`/`key` ("" for none).
  SmtpReply RcptOverTls(const std::string& rcpt, const std::string& cert, const std::string& key) {
    auto plain = Connect();
    if (plain == nullptr) return {};
    std::string error;
    auto tls = StartTls(*plain, TlsClientOptions{.cert = cert, .key = key}, &error);
    EXPECT_NE(tls, nullptr) << error;
    if (tls == nullptr) return {};
    EXPECT_EQ(tls->Command("EHLO client.example").code, 250);
    EXPECT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 250);
    SmtpReply reply = tls->Command(absl::StrCat("RCPT TO:<", rcpt, ">"));
    tls->Command("QUIT");
    return reply;
  }

  CommandResult Check() const {
    return RunCommand(
        {RingmxBinary(), "check", "-c", server_ ? server_->config_path() : dir_ / "ringmx.toml"},
        absl::Seconds(10));
  }
};

// "AB:CD:..." upper case: the form `openssl x509 -fingerprint -sha256` prints.
std::string OpensslFingerprint(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    absl::StrAppend(&out, i == 0 ? "" : ":", absl::AsciiStrToUpper(hex.substr(i, 2)));
  }
  return out;
}

TEST_F(RelayTest, RelayByNetworkAndDeniedOtherwise) {
  StartServer(Config({.relay_networks = "[\"127.0.0.0/8\"]"}));
  SmtpReply relayed = Rcpt("user@remote.test");
  EXPECT_EQ(relayed.code, 250) << relayed.text;
  EXPECT_TRUE(server_->WaitForLog(
      "rcpt=<user@remote.test> decision=relay reason=relay_networks:127.0.0.0/8"))
      << server_->Log();
  // Local mail from the same client is local, not relayed (and not logged per recipient).
  EXPECT_EQ(Rcpt("someone@example.test").code, 250);
  // (A decision is logged before its reply is sent, so it would be in the log by now.)
  EXPECT_EQ(server_->Log().find("rcpt=<someone@example.test> decision="), std::string::npos)
      << server_->Log();

  server_.reset();
  StartServer(Config({.relay_networks = "[\"10.0.0.0/8\"]"}));
  SmtpReply denied = Rcpt("user@remote.test");
  EXPECT_EQ(denied.code, 554);
  EXPECT_NE(denied.text.find("5.7.1 <user@remote.test>: Relay access denied"), std::string::npos)
      << denied.text;
  EXPECT_TRUE(server_->WaitForLog("rcpt=<user@remote.test> decision=reject reason=relay-denied"))
      << server_->Log();
  // Local domains stay open to everyone; sender-specified routing through them does not.
  EXPECT_EQ(Rcpt("someone@example.org").code, 250);
  EXPECT_EQ(Rcpt("user%remote.test@example.org").code, 554);
  EXPECT_EQ(Rcpt("postmaster").code, 250);
}

TEST_F(RelayTest, RelayByVerifiedClientCertificateFingerprint) {
  // Both test clients' fingerprints are listed; only the one that verifies may relay. The first
  // is written as openssl prints it, to show the key's normalisation.
  StartServer(Config(
      {.relay_client_certs = absl::StrCat("[\"", OpensslFingerprint(pki_->client_cert_sha256),
                                          "\", \"", pki_->foreign_client_cert_sha256, "\"]")}));
  SmtpReply with_cert = RcptOverTls("user@remote.test", pki_->client_cert, pki_->client_key);
  EXPECT_EQ(with_cert.code, 250) << with_cert.text;
  EXPECT_TRUE(server_->WaitForLog(absl::StrCat(
      "rcpt=<user@remote.test> decision=relay reason=", "client_cert:", pki_->client_cert_sha256)))
      << server_->Log();

  SmtpReply foreign =
      RcptOverTls("user@remote.test", pki_->foreign_client_cert, pki_->foreign_client_key);
  EXPECT_EQ(foreign.code, 554) << foreign.text;
  SmtpReply no_cert = RcptOverTls("user@remote.test", "", "");
  EXPECT_EQ(no_cert.code, 554) << no_cert.text;
  SmtpReply plaintext = Rcpt("user@remote.test");
  EXPECT_EQ(plaintext.code, 554) << plaintext.text;
}

TEST_F(RelayTest, UnknownLocalUserAndReloadOfTheRecipientsFile) {
  WriteRecipients("# example.test's users\nalice@example.test\n");
  StartServer(Config({.relay_networks = "[\"127.0.0.0/8\"]", .recipients = true}));
  EXPECT_EQ(Rcpt("alice@example.test").code, 250);
  EXPECT_EQ(Rcpt("Alice@EXAMPLE.test").code, 250);
  SmtpReply unknown = Rcpt("bob@example.test");
  EXPECT_EQ(unknown.code, 550);
  EXPECT_NE(unknown.text.find("5.1.1 <bob@example.test>: Recipient address rejected: User unknown"),
            std::string::npos)
      << unknown.text;
  EXPECT_TRUE(server_->WaitForLog("rcpt=<bob@example.test> decision=reject reason=unknown-user"))
      << server_->Log();
  EXPECT_EQ(Rcpt("bob@example.org").code, 250);  // no lines for example.org: anyone
  EXPECT_EQ(Rcpt("postmaster@example.test").code, 250);

  // A changed file is picked up by a reload.
  WriteRecipients("bob@example.test\n@example.org\n");
  const std::string reloaded = server_->Control("reload");
  EXPECT_NE(reloaded.find("generation=2"), std::string::npos) << reloaded;
  EXPECT_EQ(Rcpt("bob@example.test").code, 250);
  EXPECT_EQ(Rcpt("alice@example.test").code, 550);

  // A bad file fails the reload, names the key and the line, and keeps the running table.
  WriteRecipients("bob@example.test\nnot-an-address\n");
  const std::string bad = server_->Control("reload");
  EXPECT_NE(bad.find("policy.recipients"), std::string::npos) << bad;
  EXPECT_NE(bad.find("recipients:2: expected \"user@domain\" or \"@domain\", got "
                     "\"not-an-address\""),
            std::string::npos)
      << bad;
  EXPECT_EQ(Rcpt("bob@example.test").code, 250);
  EXPECT_EQ(Rcpt("alice@example.test").code, 550);
  // `ringmx check` refuses the same file.
  CommandResult check = Check();
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("policy.recipients"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find("recipients:2:"), std::string::npos) << check.output;

  // So is a missing one.
  std::filesystem::remove(dir_ / "recipients");
  const std::string missing = server_->Control("reload");
  EXPECT_NE(missing.find("policy.recipients: read recipients file"), std::string::npos) << missing;
  EXPECT_EQ(Rcpt("bob@example.test").code, 250);
  check = Check();
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("policy.recipients"), std::string::npos) << check.output;

  WriteRecipients("alice@example.test\n");
  check = Check();
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

// Issue 11 item 4 (RFC 3207 section 4): HELO, RSET and EXPN were answered 250, 250 and 502 on a
// tls_required listener before STARTTLS; now everything but NOOP, EHLO, STARTTLS and QUIT is 530.
TEST_F(RelayTest, TlsRequiredRefusesEverythingButNoopEhloStartTlsAndQuit) {
  StartServer(Config({.relay_networks = "[\"127.0.0.0/8\"]", .tls_required = true}));
  auto plain = Connect();
  ASSERT_NE(plain, nullptr);
  for (const char* command : {"HELO client.example", "RSET", "EXPN staff", "VRFY alice", "FOO bar",
                              "MAIL FROM:<a@remote.test>"}) {
    SmtpReply r = plain->Command(command);
    EXPECT_EQ(r.code, 530) << command << ": " << r.text;
    EXPECT_NE(r.text.find("5.7.0 Must issue a STARTTLS command first"), std::string::npos)
        << r.text;
  }
  EXPECT_EQ(plain->Command("NOOP").code, 250);
  EXPECT_EQ(plain->Command("EHLO client.example").code, 250);
  ASSERT_EQ(plain->Command("STARTTLS").code, 220);
  std::string error;
  auto tls = TlsSmtpClient::Handshake(*plain, {}, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_EQ(tls->Command("HELO client.example").code, 250);
  EXPECT_EQ(tls->Command("RSET").code, 250);
  EXPECT_EQ(tls->Command("QUIT").code, 221);
}

TEST_F(RelayTest, CheckRefusesNoTlsHostsOnATlsRequiredListener) {
  std::string config = Config({.tls_required = true});
  config.insert(config.find("tls_required"), "no_tls_hosts = [\"192.0.2.0/24\"]\n");
  { std::ofstream(dir_ / "ringmx.toml") << config; }
  CommandResult check = Check();
  EXPECT_NE(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("listener[0].no_tls_hosts: no_tls_hosts cannot be used with "
                              "tls_required = true"),
            std::string::npos)
      << check.output;
}

TEST_F(RelayTest, ServeRefusesToStartWithABadRecipientsFile) {
  WriteRecipients("alice@example.test\n\n<bob@example.test>\n");
  { std::ofstream(dir_ / "ringmx.toml") << Config({.recipients = true}); }
  CommandResult serve =
      RunCommand({RingmxBinary(), "serve", "-c", dir_ / "ringmx.toml"}, absl::Seconds(20));
  EXPECT_NE(serve.exit_code, 0);
  EXPECT_NE(serve.output.find("policy.recipients"), std::string::npos) << serve.output;
  EXPECT_NE(serve.output.find("recipients:3:"), std::string::npos) << serve.output;
}

}  // namespace
}  // namespace ringmx::testing
