// AUTH end to end (issue 11): the real server with a passwd file of yescrypt, sha512-crypt and
// bcrypt users (hashed here with libxcrypt), STARTTLS and implicit-TLS listeners with auth = true.
// AUTH is not advertised before TLS and gets 538 there; PLAIN and LOGIN work after TLS for every
// hash; a wrong password gets 535 and relays nothing; an authenticated client relays, the
// Received header says ESMTPSA and the envelope records the identity; passwords never reach the
// log; repeated failures are slowed, then refused with 421; the passwd file reloads with the
// config. Interop: swaks (PLAIN and LOGIN over STARTTLS) and Python's smtplib login().
#include <crypt.h>
#include <stdio.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

// crypt(3) of `password` with a fresh salt of `prefix` ("$y$", "$6$", "$2b$").
std::string Hash(const char* prefix, const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof(salt)) == nullptr) return "";
  crypt_data data = {};
  const char* hash = crypt_rn(password.c_str(), salt, &data, sizeof(data));
  return hash == nullptr || hash[0] == '*' ? "" : std::string(hash);
}

std::string PlainResponse(const std::string& user, const std::string& password) {
  std::string raw;
  raw.push_back('\0');
  raw.append(user).push_back('\0');
  raw.append(password);
  return absl::Base64Escape(raw);
}

struct User {
  const char* name;
  const char* password;
  const char* prefix;  // crypt(3) method
  const char* scheme;  // Dovecot {SCHEME} written before the hash, "" for none
};
constexpr User kUsers[] = {
    {"yes@example.test", "Yescrypt-pass 1", "$y$", ""},
    {"sha@example.test", "sha512:pass", "$6$", "{SHA512-CRYPT}"},
    {"blf@example.test", "bcrypt pass!", "$2b$", "{BLF-CRYPT}"},
};

// A command with a longer wait for its reply than TlsSmtpClient::Command() has (a throttled
// answer is held back for seconds).
SmtpReply SlowCommand(TlsSmtpClient& tls, const std::string& line) {
  tls.Send(line + "\r\n");
  return tls.ReadReply(absl::Seconds(30));
}

class AuthTest : public PkiServerTest {
 protected:
  void WritePasswd(const std::string& extra_lines = "") {
    std::ofstream out(dir_.path() + "/passwd");
    out << "# users of the test\n";
    for (const User& u : kUsers) {
      const std::string hash = Hash(u.prefix, u.password);
      ASSERT_FALSE(hash.empty()) << u.prefix;
      // Dovecot's passwd-file fields after the hash are ignored.
      out << u.name << ":" << u.scheme << hash << "::::::\n";
    }
    out << extra_lines;
  }

  std::string Config(int workers = 2, const std::string& auth_extra = "") const {
    auto listener = [](const char* name, const char* mode) {
      return absl::StrCat("[[listener]]\nname = \"", name,
                          "\"\naddress = \"127.0.0.1:0\"\ntls = \"", mode, "\"\nauth = true\n\n");
    };
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = ", workers, "\n\n", listener("mx", "starttls"),
        listener("smtps", "implicit"), "[tls]\ncert = \"", pki_->mx_cert, "\"\nkey = \"",
        pki_->mx_key, "\"\n\n[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = []\n\n",
        "[auth]\npasswd = \"", dir_.path(), "/passwd\"\n", auth_extra, "\n[spool]\npath = \"",
        dir_.path(), "/spool\"\n\n[control]\nsocket = \"", dir_.path(), "/control.sock\"\n");
  }

  void Start(int workers = 2, const std::string& auth_extra = "") {
    WritePasswd();
    StartServer(Config(workers, auth_extra));
  }

  // A STARTTLS session after its second EHLO.
  std::unique_ptr<TlsSmtpClient> Tls(std::unique_ptr<SmtpClient>& plain) {
    plain = Connect();
    if (plain == nullptr) return nullptr;
    std::string error;
    auto tls = StartTls(*plain, {}, &error);
    EXPECT_NE(tls, nullptr) << error;
    if (tls != nullptr) {
      const SmtpReply ehlo = tls->Command("EHLO client.example");
      EXPECT_EQ(ehlo.code, 250);
      EXPECT_NE(ehlo.text.find("AUTH PLAIN LOGIN"), std::string::npos) << ehlo.text;
    }
    return tls;
  }
};

TEST_F(AuthTest, NotAdvertisedBeforeTlsAnd538) {
  Start();
  auto plain = Connect();
  ASSERT_NE(plain, nullptr);
  const SmtpReply ehlo = plain->Command("EHLO client.example");
  EXPECT_EQ(ehlo.code, 250);
  EXPECT_EQ(ehlo.text.find("AUTH"), std::string::npos) << ehlo.text;
  const SmtpReply auth = plain->Command(
      absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[0].name, kUsers[0].password)));
  EXPECT_EQ(auth.code, 538) << auth.text;
  EXPECT_EQ(auth.Enhanced(), "5.7.11");
  EXPECT_EQ(server_->Log().find(kUsers[0].password), std::string::npos);
}

TEST_F(AuthTest, PlainAndLoginForEveryHashThenRelay) {
  Start();
  for (const User& u : kUsers) {
    for (const bool login : {false, true}) {
      SCOPED_TRACE(absl::StrCat(u.name, login ? " LOGIN" : " PLAIN"));
      std::unique_ptr<SmtpClient> plain;
      auto tls = Tls(plain);
      ASSERT_NE(tls, nullptr);
      SmtpReply reply;
      if (login) {
        EXPECT_EQ(tls->Command("AUTH LOGIN").text, "334 VXNlcm5hbWU6\r\n");
        EXPECT_EQ(tls->Command(absl::Base64Escape(u.name)).text, "334 UGFzc3dvcmQ6\r\n");
        reply = tls->Command(absl::Base64Escape(u.password));
      } else {
        reply = tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(u.name, u.password)));
      }
      ASSERT_EQ(reply.code, 235) << reply.text;
      EXPECT_EQ(reply.Enhanced(), "2.7.0");
      // Authenticated: a remote recipient is relayed.
      EXPECT_EQ(tls->Command("MAIL FROM:<sender@example.test>").code, 250);
      EXPECT_EQ(tls->Command("RCPT TO:<someone@remote.test>").code, 250);
      EXPECT_EQ(tls->Command("DATA").code, 354);
      tls->Send("Subject: auth\r\n\r\nhi\r\n.\r\n");
      const SmtpReply stored = tls->ReadReply(absl::Seconds(60));
      ASSERT_EQ(stored.code, 250) << stored.text;
      const std::string id = QueuedId(stored.text);
      const std::string eml = StoredEml(server_->spool(), id);
      EXPECT_NE(eml.find("with ESMTPSA id"), std::string::npos) << eml.substr(0, 400);
      EXPECT_EQ(eml.find(u.password), std::string::npos);
      const std::string json = StoredJson(server_->spool(), id);
      EXPECT_NE(json.find(absl::StrCat("\"auth\":\"", u.name, "\"")), std::string::npos) << json;
    }
  }
  const std::string log = server_->Log();
  for (const User& u : kUsers) {
    EXPECT_EQ(log.find(u.password), std::string::npos) << u.password;
    EXPECT_EQ(log.find(absl::Base64Escape(u.password)), std::string::npos);
    EXPECT_EQ(log.find(PlainResponse(u.name, u.password)), std::string::npos);
    EXPECT_NE(log.find(absl::StrCat("user=\"", u.name, "\" result=ok")), std::string::npos);
  }
}

TEST_F(AuthTest, ImplicitTlsListenerAuthenticates) {
  Start();
  auto raw = SmtpClient::Connect("127.0.0.1", server_->port("smtps"));
  ASSERT_NE(raw, nullptr);
  std::string error;
  auto tls = TlsSmtpClient::Handshake(*raw, {}, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_EQ(tls->ReadReply().code, 220);
  EXPECT_NE(tls->Command("EHLO client.example").text.find("AUTH PLAIN LOGIN"), std::string::npos);
  EXPECT_EQ(
      tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[1].name, kUsers[1].password)))
          .code,
      235);
}

TEST_F(AuthTest, WrongPasswordAndUnknownUserGet535AndRelayNothing) {
  Start();
  std::unique_ptr<SmtpClient> plain;
  auto tls = Tls(plain);
  ASSERT_NE(tls, nullptr);
  SmtpReply reply =
      tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[0].name, "not the password")));
  EXPECT_EQ(reply.code, 535) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "5.7.8");
  reply = tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse("nobody@example.test", "x")));
  EXPECT_EQ(reply.code, 535) << reply.text;
  // A password of another user is not this user's.
  reply =
      tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[0].name, kUsers[1].password)));
  EXPECT_EQ(reply.code, 535) << reply.text;
  reply = tls->Command("AUTH PLAIN !!!");
  EXPECT_EQ(reply.code, 501) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "5.5.2");
  EXPECT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 250);
  reply = tls->Command("RCPT TO:<someone@remote.test>");
  EXPECT_EQ(reply.code, 554) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "5.7.1");
  EXPECT_EQ(tls->Command("RCPT TO:<local@example.test>").code, 250);
  EXPECT_TRUE(server_->WaitForLog("result=failed"));
  EXPECT_EQ(server_->Log().find("not the password"), std::string::npos);
}

TEST_F(AuthTest, RepeatedFailuresAreSlowedThenRefused) {
  // One shard, so that every connection meets the same failure count (each shard counts its own).
  Start(/*workers=*/1, "slow_after = 2\nrefuse_after = 4\n");
  std::unique_ptr<SmtpClient> plain;
  auto tls = Tls(plain);
  ASSERT_NE(tls, nullptr);
  const std::string wrong =
      absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[0].name, "wrong password"));
  for (int i = 1; i <= 4; ++i) {
    SCOPED_TRACE(i);
    const SmtpReply reply = SlowCommand(*tls, wrong);
    EXPECT_EQ(reply.code, 535) << reply.text;
    // From the third attempt on (two failures = slow_after) the answer is held back.
    EXPECT_EQ(server_->Log().find("auth throttle") != std::string::npos, i >= 3) << i;
  }
  // Four failures reach refuse_after: the next attempt gets 421 and the connection closes.
  SmtpReply reply = SlowCommand(*tls, wrong);
  EXPECT_EQ(reply.code, 421) << reply.text;
  EXPECT_EQ(reply.Enhanced(), "4.7.0");
  // A new connection from the same address is refused at AUTH, even with the right password.
  std::unique_ptr<SmtpClient> plain2;
  auto tls2 = Tls(plain2);
  ASSERT_NE(tls2, nullptr);
  reply = SlowCommand(
      *tls2, absl::StrCat("AUTH PLAIN ", PlainResponse(kUsers[0].name, kUsers[0].password)));
  EXPECT_EQ(reply.code, 421) << reply.text;
}

TEST_F(AuthTest, PasswdFileReloadsWithTheConfig) {
  Start();
  const std::string newcomer = "new@example.test";
  {
    std::unique_ptr<SmtpClient> plain;
    auto tls = Tls(plain);
    ASSERT_NE(tls, nullptr);
    EXPECT_EQ(tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(newcomer, "fresh"))).code,
              535);
  }
  WritePasswd(absl::StrCat(newcomer, ":", Hash("$y$", "fresh"), "\n"));
  const std::string reloaded = server_->Control("reload");
  EXPECT_NE(reloaded.find("ok"), std::string::npos) << reloaded;
  std::unique_ptr<SmtpClient> plain;
  auto tls = Tls(plain);
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(newcomer, "fresh"))).code, 235);
  // A broken passwd file at reload keeps the old one.
  {
    std::ofstream out(dir_.path() + "/passwd");
    out << "broken line without a hash\n";
  }
  const std::string refused = server_->Control("reload");
  EXPECT_NE(refused.find("auth.passwd"), std::string::npos) << refused;
  std::unique_ptr<SmtpClient> plain2;
  auto tls2 = Tls(plain2);
  ASSERT_NE(tls2, nullptr);
  EXPECT_EQ(tls2->Command(absl::StrCat("AUTH PLAIN ", PlainResponse(newcomer, "fresh"))).code, 235);
}

// Interop with clients people use: swaks and Python's smtplib, over STARTTLS.
TEST_F(AuthTest, SwaksAndSmtplib) {
  Start();
  const std::string port = std::to_string(server_->port());
  for (const char* mechanism : {"PLAIN", "LOGIN"}) {
    SCOPED_TRACE(mechanism);
    const CommandResult swaks = RunCommand({"/usr/bin/swaks",
                                            "--server",
                                            "127.0.0.1",
                                            "--port",
                                            port,
                                            "--tls",
                                            "--auth",
                                            mechanism,
                                            "--auth-user",
                                            kUsers[0].name,
                                            "--auth-password",
                                            kUsers[0].password,
                                            "--from",
                                            "sender@example.test",
                                            "--to",
                                            "someone@remote.test",
                                            "--helo",
                                            "swaks.example",
                                            "--timeout",
                                            "30"},
                                           absl::Seconds(60));
    EXPECT_EQ(swaks.exit_code, 0) << swaks.output;
    EXPECT_NE(swaks.output.find("235 2.7.0"), std::string::npos) << swaks.output;
    EXPECT_NE(swaks.output.find("queued as"), std::string::npos) << swaks.output;
  }
  const std::string script = absl::StrCat(
      "import smtplib, ssl, sys\n"
      "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = "
      "ssl.CERT_NONE\n"
      "s = smtplib.SMTP('127.0.0.1', ",
      port, ", timeout=30)\n", "s.starttls(context=ctx)\n", "code, text = s.login('",
      kUsers[2].name, "', '", kUsers[2].password, "')\n",
      "print('login', code)\n"
      "refused = s.sendmail('sender@example.test', ['someone@remote.test'], 'Subject: "
      "py\\r\\n\\r\\nhi\\r\\n')\n"
      "print('refused', refused)\n"
      "s.quit()\n"
      "try:\n"
      "  s = smtplib.SMTP('127.0.0.1', ",
      port, ", timeout=30); s.starttls(context=ctx)\n", "  s.login('", kUsers[2].name,
      "', 'wrong')\n"
      "except smtplib.SMTPAuthenticationError as e:\n"
      "  print('wrong', e.smtp_code)\n");
  const CommandResult py = RunCommand({"/usr/bin/python3", "-c", script}, absl::Seconds(60));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_NE(py.output.find("login 235"), std::string::npos) << py.output;
  EXPECT_NE(py.output.find("refused {}"), std::string::npos) << py.output;
  EXPECT_NE(py.output.find("wrong 535"), std::string::npos) << py.output;
}

}  // namespace
}  // namespace ringmx::testing
