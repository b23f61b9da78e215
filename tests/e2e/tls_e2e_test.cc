// End-to-end TLS: STARTTLS and implicit TLS against the real server, with a PKI made at test
// time: SNI selection and fallback, chains served whole, client certificates on both transports,
// version floors, the CVE-2011-0411 injection, close_notify mid-DATA, the Received header, and
// `ringmx tlsa` against the running server.
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include <openssl/ssl.h>

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

struct TlsListenerOptions {
  std::string client_certs = "none";
  bool sni_strict = false;
  bool tls_required = false;
  std::string min_tls = "1.2";
  std::string default_cert;  // "" = mx.pem
  bool ktls = true;          // [tls] ktls
};

class TlsTest : public PkiServerTest {
 protected:
  // Listener "mx" (STARTTLS) and "smtps" (implicit), both with `o`.
  std::string Config(const TlsListenerOptions& o = {}) const {
    auto listener = [&](const char* name, const char* mode) {
      return absl::StrCat(
          "[[listener]]\nname = \"", name, "\"\naddress = \"127.0.0.1:0\"\n", "tls = \"", mode,
          "\"\nclient_certs = \"", o.client_certs, "\"\n",
          "sni_strict = ", o.sni_strict ? "true" : "false", "\n", "min_tls = \"", o.min_tls, "\"\n",
          std::string(mode) == "starttls"
              ? absl::StrCat("tls_required = ", o.tls_required ? "true" : "false", "\n")
              : "",
          "\n");
    };
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 2\n\n", listener("mx", "starttls"),
        listener("smtps", "implicit"), "[tls]\ncert = \"",
        o.default_cert.empty() ? pki_->mx_cert : o.default_cert, "\"\nkey = \"", pki_->mx_key,
        "\"\nclient_ca = \"", pki_->client_ca, "\"\nktls = ", o.ktls ? "true" : "false",
        "\n\n[[tls.sni]]\nnames = [\"sni.example.test\", ", "\"*.wild.example.test\"]\ncert = \"",
        pki_->sni_cert, "\"\nkey = \"", pki_->sni_key,
        "\"\n\n[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = []\n\n[spool]\n",
        "path = \"", dir_.path(), "/spool\"\n\n[control]\nsocket = \"", dir_.path(),
        "/control.sock\"\n");
  }

  // A STARTTLS session up to TLS.
  std::unique_ptr<TlsSmtpClient> UpgradedSession(std::unique_ptr<SmtpClient>& plain,
                                                 const TlsClientOptions& options,
                                                 std::string* error) {
    plain = Connect();
    if (plain == nullptr) return nullptr;
    return StartTls(*plain, options, error);
  }

  // An implicit-TLS session, greeted.
  std::unique_ptr<TlsSmtpClient> ImplicitSession(std::unique_ptr<SmtpClient>& raw,
                                                 const TlsClientOptions& options,
                                                 std::string* error) {
    raw = SmtpClient::Connect("127.0.0.1", server_->port("smtps"));
    if (raw == nullptr) return nullptr;
    auto tls = TlsSmtpClient::Handshake(*raw, options, error);
    if (tls == nullptr) return nullptr;
    // A server that refuses the client (TLS 1.3: after the client's own handshake finished)
    // sends no greeting.
    SmtpReply greeting = tls->ReadReply();
    if (greeting.code != 220) {
      if (error) *error = "no greeting over TLS: " + greeting.text;
      return nullptr;
    }
    return tls;
  }

  // Sends one message over `tls` (after EHLO) and returns the stored .eml (empty on failure).
  // `body` must not hold a line that starts with a dot.
  // `mail_params`: appended to MAIL FROM (" SIZE=...").
  std::string DeliverAndRead(TlsSmtpClient& tls,
                             std::string_view body = "Subject: tls\r\n\r\nover tls\r\n",
                             const std::string& mail_params = "") {
    EXPECT_EQ(tls.Command("EHLO tls-client.example.test").code, 250);
    EXPECT_EQ(tls.Command(absl::StrCat("MAIL FROM:<a@remote.test>", mail_params)).code, 250);
    EXPECT_EQ(tls.Command("RCPT TO:<u@example.test>").code, 250);
    EXPECT_EQ(tls.Command("DATA").code, 354);
    tls.Send(body);
    tls.Send(".\r\n");
    SmtpReply stored = tls.ReadReply(absl::Seconds(60));
    EXPECT_EQ(stored.code, 250) << stored.text;
    const std::string id = QueuedId(stored.text);
    if (id.empty()) return "";
    last_json_ = StoredJson(server_->spool(), id);
    return StoredEml(server_->spool(), id);
  }

  // Whether the running server moves TLS connections to the kernel's record layer (its start-up
  // line says so); `why` gets the line.
  bool KernelTlsInUse(std::string* why = nullptr) const {
    const std::string log = server_->Log();
    const size_t at = log.find("kernel TLS: ");
    if (why != nullptr && at != std::string::npos) *why = log.substr(at, log.find('\n', at) - at);
    return log.find("kernel TLS: available; TLS connections move") != std::string::npos;
  }
  // Whether TLS 1.3 sessions move too (the kernel can follow KeyUpdates).
  bool KernelTls13InUse() const {
    return KernelTlsInUse() && server_->Log().find("KeyUpdate followed") != std::string::npos;
  }
  // The log lines that mention kernel TLS, for failure messages.
  std::string KernelTlsLogLines() const {
    std::string out;
    for (absl::string_view line : absl::StrSplit(server_->Log(), '\n')) {
      if (absl::StrContains(line, "kernel TLS") || absl::StrContains(line, "record_layer")) {
        absl::StrAppend(&out, line, "\n");
      }
    }
    return out;
  }
  // For a TLS 1.3 session.
  const char* RecordLayerLine() const {
    return KernelTls13InUse() ? "record_layer=kernel" : "record_layer=userspace";
  }
  const char* KtlsJson() const { return KernelTls13InUse() ? "\"ktls\":true" : "\"ktls\":false"; }

  std::string last_json_;
};

TEST_F(TlsTest, StartTlsDeliversAndRecordsTlsInReceivedHeaderAndEnvelope) {
  StartServer(Config());
  std::unique_ptr<SmtpClient> plain;
  std::string error;
  auto tls = UpgradedSession(plain, {.sni = "mx.example.test"}, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_EQ(tls->version(), "TLSv1.3");
  // RFC 3207: the session starts over; STARTTLS is no longer offered; MAIL needs EHLO first.
  EXPECT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 503);
  SmtpReply ehlo = tls->Command("EHLO again.example.test");
  EXPECT_EQ(ehlo.code, 250);
  EXPECT_EQ(ehlo.text.find("STARTTLS"), std::string::npos) << ehlo.text;
  EXPECT_EQ(tls->Command("STARTTLS").code, 554);
  const std::string eml = DeliverAndRead(*tls);
  EXPECT_NE(eml.find(absl::StrCat("(using TLSv1.3 with cipher ", tls->cipher(), " (")),
            std::string::npos)
      << eml.substr(0, 400);
  EXPECT_NE(eml.find("with ESMTPS id"), std::string::npos) << eml.substr(0, 400);
  EXPECT_EQ(eml.find("Client CN"), std::string::npos) << "no client certificate was sent";
  EXPECT_NE(last_json_.find("\"version\":\"TLSv1.3\""), std::string::npos) << last_json_;
  EXPECT_NE(last_json_.find("\"sni\":\"mx.example.test\""), std::string::npos) << last_json_;
  EXPECT_NE(last_json_.find(KtlsJson()), std::string::npos) << last_json_;
  EXPECT_TRUE(server_->WaitForLog(RecordLayerLine()));
  EXPECT_EQ(tls->Command("QUIT").code, 221);
  EXPECT_TRUE(tls->ServerSentCloseNotify());
}

// tls.ktls = false keeps every connection on OpenSSL's record layer, whatever the kernel has.
TEST_F(TlsTest, KtlsOffKeepsTheRecordLayerInUserspace) {
  StartServer(Config({.ktls = false}));
  EXPECT_FALSE(KernelTlsInUse());
  std::unique_ptr<SmtpClient> plain;
  std::string error;
  auto tls = UpgradedSession(plain, {}, &error);
  ASSERT_NE(tls, nullptr) << error;
  DeliverAndRead(*tls);
  EXPECT_NE(last_json_.find("\"ktls\":false"), std::string::npos) << last_json_;
  EXPECT_TRUE(server_->WaitForLog("record_layer=userspace"));
  EXPECT_EQ(server_->Log().find("record_layer=kernel"), std::string::npos);
  EXPECT_EQ(tls->Command("QUIT").code, 221);
  EXPECT_TRUE(tls->ServerSentCloseNotify());
}

// A message far larger than a body buffer streams to the queue over TLS as over plain TCP, on
// both record layers (the kernel's where it has TLS, else this runs the userspace one twice).
TEST_F(TlsTest, LargeMessagesStreamOverBothRecordLayers) {
  std::string body = "Subject: large over tls\r\n\r\n";
  for (int i = 0; body.size() < (3 << 20); ++i) {
    absl::StrAppend(&body, "line ", i, " of a large message sent over TLS\r\n");
  }
  for (bool ktls : {false, true}) {
    SCOPED_TRACE(ktls ? "ktls = true" : "ktls = false");
    StartServer(Config({.ktls = ktls}));
    std::unique_ptr<SmtpClient> plain;
    std::string error;
    auto tls = UpgradedSession(plain, {.max_version = TLS1_2_VERSION}, &error);
    ASSERT_NE(tls, nullptr) << error;
    // Without SIZE= (one receive at a time from 64 KiB on), then with it (from the first octet,
    // input that waits kept in its receive buffer).
    for (const std::string& params : {std::string(), absl::StrCat(" SIZE=", body.size())}) {
      SCOPED_TRACE(params);
      const std::string eml = DeliverAndRead(*tls, body, params);
      ASSERT_GT(eml.size(), body.size()) << server_->Log();
      EXPECT_EQ(eml.substr(eml.size() - body.size()), body) << "stored bytes differ";
    }
    const QueueContents queue = ReadQueue(server_->spool());
    ASSERT_EQ(queue.messages.size(), 2u);
    for (const auto& [id, message] : queue.messages) {
      EXPECT_GE(message.entry.fragments.size(), 10u) << "not streamed: " << id;
    }
    EXPECT_EQ(tls->Command("QUIT").code, 221);
    server_.reset();
    std::filesystem::remove_all(dir_ / "spool");
  }
}

// The live kernel path: after the handshake the record layer moves to the kernel (TLS ULP) and
// whole sessions run over it, with each cipher the kernel takes; TLS 1.3 sessions move where the
// kernel can rekey, and go through client KeyUpdates (with and without a request for ours)
// whichever layer has them; close_notify at the end. Where the kernel has no TLS ULP this reports
// itself skipped with the kernel's reason. tools/ktls-vm-test.sh runs it in a VM on Debian's
// kernel.
TEST_F(TlsTest, KernelTlsCarriesWholeSessionsWhereTheKernelHasIt) {
  StartServer(Config());
  std::string why;
  if (!KernelTlsInUse(&why)) GTEST_SKIP() << "kernel TLS is not in use here: " << why;
  struct Case {
    std::string name;
    TlsClientOptions options;
    bool tls13;
  } cases[] = {
      {"TLS 1.3 AES-256-GCM",
       {.min_version = TLS1_3_VERSION, .ciphersuites = "TLS_AES_256_GCM_SHA384"},
       true},
      {"TLS 1.3 AES-128-GCM",
       {.min_version = TLS1_3_VERSION, .ciphersuites = "TLS_AES_128_GCM_SHA256"},
       true},
      {"TLS 1.3 ChaCha20-Poly1305",
       {.min_version = TLS1_3_VERSION, .ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"},
       true},
      {"TLS 1.2 AES-128-GCM",
       {.max_version = TLS1_2_VERSION, .cipher_list = "ECDHE-RSA-AES128-GCM-SHA256"},
       false},
      {"TLS 1.2 AES-256-GCM",
       {.max_version = TLS1_2_VERSION, .cipher_list = "ECDHE-RSA-AES256-GCM-SHA384"},
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<SmtpClient> plain;
    std::string error;
    auto tls = UpgradedSession(plain, c.options, &error);
    ASSERT_NE(tls, nullptr) << error;
    std::string eml = DeliverAndRead(*tls);
    EXPECT_NE(eml.find("over tls"), std::string::npos);
    // TLS 1.3 moves only where the kernel can rekey (the start-up line says which).
    const bool kernel = !c.tls13 || KernelTls13InUse();
    EXPECT_NE(last_json_.find(kernel ? "\"ktls\":true" : "\"ktls\":false"), std::string::npos)
        << KernelTlsLogLines();
    if (c.tls13) {
      // The client moves to new keys; the kernel must follow before the next record.
      ASSERT_TRUE(tls->KeyUpdate(/*ask_peer=*/false));
      EXPECT_EQ(tls->Command("NOOP").code, 250);
      // And again, asking for ours: the server's replies then come under its new keys.
      ASSERT_TRUE(tls->KeyUpdate(/*ask_peer=*/true));
      EXPECT_EQ(tls->Command("NOOP").code, 250);
      eml = DeliverAndRead(*tls);  // a second message, under the updated keys both ways
      EXPECT_NE(eml.find("over tls"), std::string::npos);
    }
    EXPECT_EQ(tls->Command("QUIT").code, 221);
    EXPECT_TRUE(tls->ServerSentCloseNotify());
  }
  // Implicit TLS greets through the kernel too (TLS 1.2, which moves on every kernel with ULP).
  std::unique_ptr<SmtpClient> raw;
  std::string error;
  auto tls = ImplicitSession(raw, {.max_version = TLS1_2_VERSION}, &error);
  ASSERT_NE(tls, nullptr) << error;
  const std::string eml = DeliverAndRead(*tls);
  EXPECT_NE(eml.find("with ESMTPS"), std::string::npos);
  EXPECT_NE(last_json_.find("\"ktls\":true"), std::string::npos) << last_json_;
  EXPECT_EQ(tls->Command("QUIT").code, 221);
  EXPECT_TRUE(tls->ServerSentCloseNotify());
  // A close_notify in the middle of DATA on the kernel path leaves nothing stored.
  std::unique_ptr<SmtpClient> plain;
  auto cut = UpgradedSession(plain, {.max_version = TLS1_2_VERSION}, &error);
  ASSERT_NE(cut, nullptr) << error;
  const size_t stored = CommittedIds(server_->spool()).size();
  EXPECT_EQ(cut->Command("EHLO cut.example.test").code, 250);
  EXPECT_EQ(cut->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(cut->Command("RCPT TO:<u@example.test>").code, 250);
  EXPECT_EQ(cut->Command("DATA").code, 354);
  cut->Send("Subject: cut\r\n\r\nhalf");
  cut->SendCloseNotify();
  EXPECT_TRUE(server_->WaitForLog("result=tls-close"));
  EXPECT_EQ(CommittedIds(server_->spool()).size(), stored);
  EXPECT_TRUE(server_->WaitForLog("record_layer=kernel"));
}

TEST_F(TlsTest, ImplicitTlsGreetsOverTlsAndDelivers) {
  StartServer(Config());
  std::unique_ptr<SmtpClient> raw;
  std::string error;
  auto tls = ImplicitSession(raw, {}, &error);
  ASSERT_NE(tls, nullptr) << error;
  SmtpReply ehlo = tls->Command("EHLO implicit.example.test");
  EXPECT_EQ(ehlo.text.find("STARTTLS"), std::string::npos);
  const std::string eml = DeliverAndRead(*tls);
  EXPECT_NE(eml.find("with ESMTPS"), std::string::npos);
  EXPECT_NE(last_json_.find("\"implicit\":true"), std::string::npos) << last_json_;
}

TEST_F(TlsTest, SniSelectsTheCertificateAndUnknownOrAbsentFallsBackToTheDefault) {
  StartServer(Config());
  struct Case {
    std::string sni;
    std::string expected_spki;
  } cases[] = {{"sni.example.test", pki_->sni_spki_sha256},
               {"SNI.Example.Test", pki_->sni_spki_sha256},
               {"a.wild.example.test", pki_->sni_spki_sha256},
               {"b.a.wild.example.test", pki_->mx_spki_sha256},  // wildcards cover one label
               {"mail.example.test", pki_->mx_spki_sha256},
               {"unknown.example.org", pki_->mx_spki_sha256},
               {"", pki_->mx_spki_sha256}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sni);
    std::unique_ptr<SmtpClient> plain;
    std::string error;
    auto tls = UpgradedSession(plain, {.sni = c.sni}, &error);
    ASSERT_NE(tls, nullptr) << error;
    EXPECT_EQ(tls->served_leaf_spki_sha256(), c.expected_spki);
    EXPECT_EQ(tls->Command("QUIT").code, 221);
  }
  EXPECT_TRUE(server_->WaitForLog("sni=unknown.example.org sni_fallback=default-certificate"));
}

TEST_F(TlsTest, SniStrictRefusesAnUnknownName) {
  StartServer(Config({.sni_strict = true}));
  std::unique_ptr<SmtpClient> plain;
  std::string error;
  EXPECT_EQ(UpgradedSession(plain, {.sni = "unknown.example.org"}, &error), nullptr);
  EXPECT_NE(error.find("unrecognized name"), std::string::npos) << error;
  auto ok = UpgradedSession(plain, {.sni = "sni.example.test"}, &error);
  EXPECT_NE(ok, nullptr) << error;
}

TEST_F(TlsTest, TheWholeConfiguredChainIsServed) {
  StartServer(Config());
  std::unique_ptr<SmtpClient> plain;
  std::string error;
  auto two = UpgradedSession(plain, {}, &error);
  ASSERT_NE(two, nullptr) << error;
  EXPECT_EQ(two->served_chain_length(), 2);  // leaf + intermediate, as in mx.pem
  server_.reset();
  StartServer(Config({.default_cert = pki_->mx_fullchain_with_root}));
  auto three = UpgradedSession(plain, {}, &error);
  ASSERT_NE(three, nullptr) << error;
  EXPECT_EQ(three->served_chain_length(), 3);  // leaf + intermediate + root, as configured
}

TEST_F(TlsTest, ClientCertificatesAreVerifiedTheSameOnStartTlsAndImplicitTls) {
  StartServer(Config({.client_certs = "optional"}));
  struct Case {
    std::string cert, key;
    std::string received;  // expected text in the Received header
    std::string result;    // envelope client_cert.result
  } cases[] = {
      {pki_->client_cert, pki_->client_key,
       "(Client CN \"client.example.test\", Issuer \"Ringmx Test Client CA\" (verified OK))",
       "verified"},
      {pki_->foreign_client_cert, pki_->foreign_client_key,
       "(Client CN \"foreign-client.example.test\", Issuer \"Ringmx Test Foreign CA\" (not "
       "verified))",
       "not-verified"},
      {"", "", "", "none"},
  };
  for (const Case& c : cases) {
    for (bool implicit : {false, true}) {
      SCOPED_TRACE(absl::StrCat(c.result, implicit ? " implicit" : " starttls"));
      std::unique_ptr<SmtpClient> sock;
      std::string error;
      TlsClientOptions options{.cert = c.cert, .key = c.key};
      auto tls = implicit ? ImplicitSession(sock, options, &error)
                          : UpgradedSession(sock, options, &error);
      ASSERT_NE(tls, nullptr) << error;
      const std::string eml = DeliverAndRead(*tls);
      if (c.received.empty()) {
        EXPECT_EQ(eml.find("Client CN"), std::string::npos);
      } else {
        EXPECT_NE(eml.find(c.received), std::string::npos) << eml.substr(0, 500);
      }
      EXPECT_NE(last_json_.find(absl::StrCat("\"result\":\"", c.result, "\"")), std::string::npos)
          << last_json_;
    }
  }
  EXPECT_NE(last_json_.find("\"client_cert\""), std::string::npos);
}

TEST_F(TlsTest, RequiredClientCertificatesRefuseUntrustedAndAbsent) {
  StartServer(Config({.client_certs = "required"}));
  for (bool implicit : {false, true}) {
    SCOPED_TRACE(implicit ? "implicit" : "starttls");
    std::string error;
    std::unique_ptr<SmtpClient> sock;
    TlsClientOptions foreign{.cert = pki_->foreign_client_cert, .key = pki_->foreign_client_key};
    auto refused =
        implicit ? ImplicitSession(sock, foreign, &error) : UpgradedSession(sock, foreign, &error);
    // TLS 1.3 clients learn of the refusal on their first read, not in SSL_connect.
    if (refused != nullptr) {
      EXPECT_EQ(refused->Command("EHLO x.example.test").code, -1);
    }
    auto absent = implicit ? ImplicitSession(sock, {}, &error) : UpgradedSession(sock, {}, &error);
    if (absent != nullptr) {
      EXPECT_EQ(absent->Command("EHLO x.example.test").code, -1);
    }
    TlsClientOptions trusted{.cert = pki_->client_cert, .key = pki_->client_key};
    auto ok =
        implicit ? ImplicitSession(sock, trusted, &error) : UpgradedSession(sock, trusted, &error);
    ASSERT_NE(ok, nullptr) << error;
    EXPECT_EQ(ok->Command("EHLO x.example.test").code, 250);
  }
  EXPECT_TRUE(server_->WaitForLog("failed"));
}

TEST_F(TlsTest, MinimumVersionRefusesOldClientsAndLogsWhatTheyOffered) {
  StartServer(Config());
  std::unique_ptr<SmtpClient> plain;
  std::string error;
  auto old = UpgradedSession(plain, {.max_version = TLS1_1_VERSION}, &error);
  EXPECT_EQ(old, nullptr);
  EXPECT_NE(error.find("protocol version"), std::string::npos) << error;
  EXPECT_TRUE(server_->WaitForLog("TLSv1.1")) << server_->Log();
  server_.reset();
  StartServer(Config({.min_tls = "1.3"}));
  auto tls12 = UpgradedSession(plain, {.max_version = TLS1_2_VERSION}, &error);
  EXPECT_EQ(tls12, nullptr);
  auto tls13 = UpgradedSession(plain, {}, &error);
  EXPECT_NE(tls13, nullptr) << error;
}

TEST_F(TlsTest, TlsRequiredAnswers530UntilStartTls) {
  StartServer(Config({.tls_required = true}));
  auto plain = Connect();
  ASSERT_NE(plain, nullptr);
  ASSERT_EQ(plain->Command("EHLO plain.example.test").code, 250);
  SmtpReply r = plain->Command("MAIL FROM:<a@remote.test>");
  EXPECT_EQ(r.code, 530) << r.text;
  EXPECT_EQ(r.Enhanced(), "5.7.0");
  std::string error;
  SmtpReply ready = plain->Command("STARTTLS");
  ASSERT_EQ(ready.code, 220);
  auto tls = TlsSmtpClient::Handshake(*plain, {}, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_FALSE(DeliverAndRead(*tls).empty());
}

// CVE-2011-0411: commands pipelined after STARTTLS in cleartext must never run, neither from the
// same segment nor from a later one sent before the handshake.
TEST_F(TlsTest, CommandsInjectedAfterStartTlsAreNeverRun) {
  StartServer(Config());
  {
    auto plain = Connect();
    ASSERT_NE(plain, nullptr);
    ASSERT_EQ(plain->Command("EHLO inject.example.test").code, 250);
    ASSERT_TRUE(plain->Send("STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n"));
    SmtpReply ready = plain->ReadReply();
    ASSERT_EQ(ready.code, 220);
    EXPECT_EQ(plain->pending(), "") << "the injected command was answered in cleartext";
    std::string error;
    auto tls = TlsSmtpClient::Handshake(*plain, {}, &error);
    ASSERT_NE(tls, nullptr) << error;
    // The first reply over TLS is the one to our EHLO, nothing queued before it; and the
    // injected MAIL left no transaction behind.
    SmtpReply ehlo = tls->Command("EHLO inject.example.test");
    EXPECT_EQ(ehlo.code, 250) << ehlo.text;
    EXPECT_EQ(tls->Command("RCPT TO:<u@example.test>").code, 503);
  }
  {
    auto plain = Connect();
    ASSERT_NE(plain, nullptr);
    ASSERT_EQ(plain->Command("EHLO inject.example.test").code, 250);
    ASSERT_TRUE(plain->Send("STARTTLS\r\n"));
    absl::SleepFor(absl::Milliseconds(100));  // a second segment, before the handshake
    ASSERT_TRUE(plain->Send("MAIL FROM:<evil@remote.test>\r\n"));
    SmtpReply ready = plain->ReadReply();
    ASSERT_EQ(ready.code, 220);
    // The injected bytes are taken as the start of the handshake, which then fails: they are
    // never run as a command, and no cleartext reply follows.
    std::string rest;
    EXPECT_TRUE(plain->WaitClosed(absl::Seconds(10), &rest));
    EXPECT_EQ(rest.find("250"), std::string::npos) << rest;
  }
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
}

TEST_F(TlsTest, CloseNotifyInTheMiddleOfDataStoresNothingAndTheServerStaysUp) {
  StartServer(Config());
  for (bool implicit : {false, true}) {
    std::unique_ptr<SmtpClient> sock;
    std::string error;
    auto tls = implicit ? ImplicitSession(sock, {}, &error) : UpgradedSession(sock, {}, &error);
    ASSERT_NE(tls, nullptr) << error;
    ASSERT_EQ(tls->Command("EHLO cut.example.test").code, 250);
    ASSERT_EQ(tls->Command("MAIL FROM:<a@remote.test>").code, 250);
    ASSERT_EQ(tls->Command("RCPT TO:<u@example.test>").code, 250);
    ASSERT_EQ(tls->Command("DATA").code, 354);
    ASSERT_TRUE(tls->Send("Subject: cut\r\n\r\nhalf a message\r\n"));
    tls->SendCloseNotify();
    EXPECT_TRUE(sock->WaitClosed(absl::Seconds(10)));
  }
  EXPECT_TRUE(server_->WaitForLog("result=tls-close"));
  EXPECT_TRUE(CommittedIds(server_->spool()).empty());
  EXPECT_TRUE(ListDir(server_->spool() + "/tmp").empty());
  EXPECT_NE(Connect(), nullptr);
}

TEST_F(TlsTest, TlsaRecordsArePrintedAndCheckedAgainstTheRunningServer) {
  StartServer(Config());
  CommandResult records =
      RunCommand({RingmxBinary(), "tlsa", "-c", server_->config_path()}, absl::Seconds(20));
  ASSERT_EQ(records.exit_code, 0) << records.output;
  EXPECT_NE(records.output.find("IN TLSA 3 1 1 " + pki_->mx_spki_sha256), std::string::npos)
      << records.output;
  EXPECT_NE(records.output.find("IN TLSA 2 1 1 " + pki_->intermediate_spki_sha256),
            std::string::npos)
      << records.output;
  EXPECT_NE(records.output.find("IN TLSA 3 1 1 " + pki_->sni_spki_sha256), std::string::npos);
  const std::string target = absl::StrCat("127.0.0.1:", server_->port());
  CommandResult check = RunCommand(
      {RingmxBinary(), "tlsa", "--check", target, "--starttls", "-c", server_->config_path()},
      absl::Seconds(20));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("served 2 certificates"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find("TLSA 2 1 1 " + pki_->intermediate_spki_sha256 + ": match"),
            std::string::npos)
      << check.output;
  const std::string implicit_target = absl::StrCat("127.0.0.1:", server_->port("smtps"));
  CommandResult sni = RunCommand({RingmxBinary(), "tlsa", "--check", implicit_target, "--sni",
                                  "sni.example.test", "-c", server_->config_path()},
                                 absl::Seconds(20));
  EXPECT_EQ(sni.exit_code, 0) << sni.output;
  EXPECT_NE(sni.output.find("3 1 1 " + pki_->sni_spki_sha256), std::string::npos) << sni.output;
}

}  // namespace
}  // namespace ringmx::testing
