// End-to-end outbound TLS (issue 12, docs/delivery.md "Outbound TLS"): ringmx delivers to a real
// Postfix that offers STARTTLS with a certificate of the throwaway test PKI. `verify` checks the
// chain against the route's CA and the name against tls_name; `opportunistic` takes any
// certificate; a wrong name defers, never delivers in plaintext.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/pki_server_test.h"
#include "tests/testing/next_hops.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

class DeliveryTlsTest : public PkiServerTest {
 protected:
  void SetUp() override {
    std::string error;
    postfix_ = PostfixHop::Start(dir_ / "postfix", "example.test", {"alice"}, &error,
                                 absl::Seconds(30), pki_->mx_cert, pki_->mx_key);
    ASSERT_NE(postfix_, nullptr) << error;
    capture_ = CaptureSmtp::Start(dir_ / "capture", &error);
    ASSERT_NE(capture_, nullptr) << error;
  }

  void StartWithRoute(const std::string& tls) {
    StartServer(BasicConfig(
        dir_, "",
        absl::StrCat("[[route]]\ndomains = [\"example.test\"]\nnext_hop = [\"smtp:[127.0.0.1]:",
                     postfix_->port(), "\"]\n", tls,
                     "\n[delivery]\nbounce_next_hop = \"smtp:[127.0.0.1]:", capture_->port(),
                     "\"\nretry_first_s = 60\n")));
  }

  void SendOne(const std::string& subject) {
    auto client = Connect();
    ASSERT_NE(client, nullptr);
    const std::string message =
        absl::StrCat("From: s@remote.test\r\nTo: alice@example.test\r\nSubject: ", subject,
                     "\r\n\r\nover TLS\r\n");
    SmtpReply reply = client->SendMail("s@remote.test", {"alice@example.test"}, message);
    ASSERT_EQ(reply.code, 250) << reply.text;
    client->Command("QUIT");
  }

  std::unique_ptr<PostfixHop> postfix_;
  std::unique_ptr<CaptureSmtp> capture_;
};

TEST_F(DeliveryTlsTest, VerifyWithTheRightCaAndNameDeliversOverTls) {
  StartWithRoute(absl::StrCat("tls = \"verify\"\ntls_ca = \"", pki_->root,
                              "\"\ntls_name = \"mx.example.test\""));
  SendOne("verified");
  ASSERT_TRUE(postfix_->WaitForMessages("alice", 1)) << server_->Log() << postfix_->Log();
  EXPECT_TRUE(server_->WaitForLog("status=sent tls=TLSv1.")) << server_->Log();
  // Postfix saw the TLS session too (its Received header says "with ESMTPS").
  EXPECT_NE(postfix_->Messages("alice")[0].find("with ESMTPS"), std::string::npos)
      << postfix_->Messages("alice")[0];
}

TEST_F(DeliveryTlsTest, OpportunisticTakesTheCertificateWithoutCheckingIt) {
  StartWithRoute("tls = \"opportunistic\"");
  SendOne("opportunistic");
  ASSERT_TRUE(postfix_->WaitForMessages("alice", 1)) << server_->Log() << postfix_->Log();
  EXPECT_TRUE(server_->WaitForLog("status=sent tls=TLSv1.")) << server_->Log();
}

TEST_F(DeliveryTlsTest, AWrongNameDefersAndNothingGoesInPlaintext) {
  StartWithRoute(absl::StrCat("tls = \"verify\"\ntls_ca = \"", pki_->root,
                              "\"\ntls_name = \"relay.other.test\""));
  SendOne("wrong-name");
  ASSERT_TRUE(server_->WaitForLog("status=deferred")) << server_->Log();
  EXPECT_NE(server_->Log().find("relay.other.test"), std::string::npos) << server_->Log();
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_TRUE(postfix_->Messages("alice").empty());
  EXPECT_EQ(server_->Stat("queue_messages"), 1);
}

}  // namespace
}  // namespace ringmx::testing
