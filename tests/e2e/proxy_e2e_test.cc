// End-to-end PROXY protocol (docs/proxy.md, issue 14) against the real server: v1 and v2 headers
// sent by hand from 127.0.0.1 (the "balancer"), and what the server makes of them: the stored
// message's Received header and envelope name the header's client and record the balancer,
// relay_networks, no_tls_hosts and the connection limits decide on the header's client, LOCAL
// keeps the socket's address, the header comes before the ClientHello on implicit TLS, and an
// untrusted peer, a malformed header and a missing header are closed without a greeting.
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

struct ProxyOptions {
  std::string trusted = R"(["127.0.0.0/8"])";
  std::string limits;  // a [limits] table, "" for the defaults
};

// A v2 PROXY TCP4 header: client a.b.c.d:sport connected to e.f.g.h:dport.
std::string V2Tcp4(const uint8_t src[4], uint16_t sport, const uint8_t dst[4], uint16_t dport) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x21';  // version 2, PROXY
  h += '\x11';  // AF_INET, STREAM
  h += '\0';
  h += '\x0c';  // 12 bytes of addresses
  h.append(reinterpret_cast<const char*>(src), 4);
  h.append(reinterpret_cast<const char*>(dst), 4);
  h += static_cast<char>(sport >> 8);
  h += static_cast<char>(sport & 0xff);
  h += static_cast<char>(dport >> 8);
  h += static_cast<char>(dport & 0xff);
  return h;
}

// A v2 LOCAL header (what HAProxy's health checks send): no addresses.
std::string V2Local() {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x20';  // version 2, LOCAL
  h += '\0';    // AF_UNSPEC
  h += '\0';
  h += '\0';
  return h;
}

class ProxyTest : public PkiServerTest {
 protected:
  // Listener "mx" (STARTTLS, any version, no_tls_hosts 192.0.2.0/24) and "smtps" (implicit TLS,
  // v2 only), both behind proxy_trusted; relay from 10.0.0.0/8 only; proxy_s 1.
  std::string Config(const ProxyOptions& o = {}) const {
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 1\n\n"
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n"
        "no_tls_hosts = [\"192.0.2.0/24\"]\nproxy_protocol = \"any\"\nproxy_trusted = ",
        o.trusted,
        "\n\n[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n"
        "proxy_protocol = \"v2\"\nproxy_trusted = ",
        o.trusted, "\n\n[tls]\ncert = \"", pki_->mx_cert, "\"\nkey = \"", pki_->mx_key,
        "\"\n\n[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = [\"10.0.0.0/8\"]\n\n",
        o.limits, "\n[timeouts]\nproxy_s = 1\n\n[spool]\npath = \"", dir_.path(),
        "/spool\"\n\n[control]\nsocket = \"", dir_.path(), "/control.sock\"\n");
  }

  // Connects to `listener` and sends `header` (and whatever follows it in the same write).
  std::unique_ptr<SmtpClient> ConnectWith(std::string_view header,
                                          const std::string& listener = "mx") {
    auto client = SmtpClient::Connect("127.0.0.1", server_->port(listener));
    EXPECT_NE(client, nullptr);
    if (client != nullptr) {
      EXPECT_TRUE(client->Send(header));
    }
    return client;
  }

  // A whole message after `header`; returns the queue id ("" if it was not accepted).
  std::string SendOne(std::string_view header) {
    auto client = ConnectWith(header);
    if (client == nullptr) return "";
    EXPECT_EQ(client->ReadReply().code, 220);
    const SmtpReply done =
        client->SendMail("s@remote.test", {"u@example.test"}, "Subject: proxied\r\n\r\nhello\r\n");
    EXPECT_EQ(done.code, 250) << done.text;
    client->Command("QUIT");
    return QueuedId(done.text);
  }

  // RCPT to a remote domain after `header`: the reply code.
  int RelayRcpt(std::string_view header) {
    auto client = ConnectWith(header);
    if (client == nullptr) return -1;
    EXPECT_EQ(client->ReadReply().code, 220);
    EXPECT_EQ(client->Command("EHLO c.example").code, 250);
    EXPECT_EQ(client->Command("MAIL FROM:<s@remote.test>").code, 250);
    const int code = client->Command("RCPT TO:<x@remote.test>").code;
    client->Command("QUIT");
    return code;
  }
};

TEST_F(ProxyTest, V1HeaderNamesTheClientOfTheStoredMessage) {
  StartServer(Config());
  const std::string id = SendOne("PROXY TCP4 192.0.2.77 198.51.100.25 40000 25\r\n");
  ASSERT_FALSE(id.empty());
  const std::string eml = StoredEml(server_->spool(), id);
  EXPECT_NE(eml.find("Received: from client.example.test ([192.0.2.77])"), std::string::npos)
      << eml;
  EXPECT_EQ(eml.find("127.0.0.1"), std::string::npos) << eml;
  const std::string json = StoredJson(server_->spool(), id);
  EXPECT_NE(json.find(R"("client":{"address":"192.0.2.77","port":40000})"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("local":{"address":"198.51.100.25","port":25})"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("proxied_by":{"address":"127.0.0.1",)"), std::string::npos) << json;
  EXPECT_TRUE(server_->WaitForLog("client=192.0.2.77:40000 proxied_by=127.0.0.1 listener=mx"))
      << server_->Log();
}

TEST_F(ProxyTest, V2HeaderWithPipelinedCommandInTheSameWrite) {
  StartServer(Config());
  const uint8_t src[4] = {192, 0, 2, 78};
  const uint8_t dst[4] = {198, 51, 100, 25};
  // The EHLO rides in the header's segment: it is the client's first command, not early talk.
  auto client = ConnectWith(V2Tcp4(src, 40001, dst, 25) + "EHLO c.example\r\n");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->ReadReply().code, 220);
  const SmtpReply ehlo = client->ReadReply();
  EXPECT_EQ(ehlo.code, 250) << ehlo.text;
  // no_tls_hosts has 192.0.2.0/24: the header's client is not offered STARTTLS.
  EXPECT_EQ(ehlo.text.find("STARTTLS"), std::string::npos) << ehlo.text;
  const SmtpReply done = client->SendMail("s@remote.test", {"u@example.test"},
                                          "Subject: v2\r\n\r\nhello\r\n", /*ehlo=*/true);
  ASSERT_EQ(done.code, 250) << done.text;
  const std::string id = QueuedId(done.text);
  const std::string eml = StoredEml(server_->spool(), id);
  EXPECT_NE(eml.find("([192.0.2.78])"), std::string::npos) << eml;
  const std::string json = StoredJson(server_->spool(), id);
  EXPECT_NE(json.find(R"("client":{"address":"192.0.2.78","port":40001})"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("proxied_by":{"address":"127.0.0.1",)"), std::string::npos) << json;
}

TEST_F(ProxyTest, PolicyDecidesOnTheHeadersClient) {
  StartServer(Config());
  // relay_networks is 10.0.0.0/8: the balancer (127.0.0.1) is not in it, the client may be.
  EXPECT_EQ(RelayRcpt("PROXY TCP4 10.1.2.3 198.51.100.25 40000 25\r\n"), 250);
  EXPECT_EQ(RelayRcpt("PROXY TCP4 192.0.2.77 198.51.100.25 40000 25\r\n"), 554);
  // no_tls_hosts (192.0.2.0/24) does not hold 10.1.2.3: STARTTLS is offered.
  auto client = ConnectWith("PROXY TCP4 10.1.2.3 198.51.100.25 40002 25\r\n");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->ReadReply().code, 220);
  const SmtpReply ehlo = client->Command("EHLO c.example");
  EXPECT_NE(ehlo.text.find("STARTTLS"), std::string::npos) << ehlo.text;
}

TEST_F(ProxyTest, LocalHeaderKeepsTheSocketsAddress) {
  StartServer(Config());
  const std::string id = SendOne(V2Local());
  ASSERT_FALSE(id.empty());
  EXPECT_NE(StoredEml(server_->spool(), id).find("([127.0.0.1])"), std::string::npos);
  const std::string json = StoredJson(server_->spool(), id);
  EXPECT_NE(json.find(R"("client":{"address":"127.0.0.1",)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("proxied_by":null)"), std::string::npos) << json;
}

TEST_F(ProxyTest, ImplicitTlsReadsTheHeaderBeforeTheClientHello) {
  StartServer(Config());
  const uint8_t src[4] = {192, 0, 2, 79};
  const uint8_t dst[4] = {198, 51, 100, 25};
  auto raw = ConnectWith(V2Tcp4(src, 40003, dst, 465), "smtps");
  ASSERT_NE(raw, nullptr);
  std::string error;
  auto tls = TlsSmtpClient::Handshake(*raw, TlsClientOptions{}, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_EQ(tls->ReadReply().code, 220);
  EXPECT_EQ(tls->Command("EHLO c.example").code, 250);
  tls->Command("QUIT");
  EXPECT_TRUE(server_->WaitForLog("tls shard=0 client=192.0.2.79:40003 listener=smtps"))
      << server_->Log();
}

TEST_F(ProxyTest, ConnectionLimitsCountTheHeadersClient) {
  StartServer(Config({.limits = "[limits]\nmax_sessions_per_client = 1\n"}));
  // Every connection comes from 127.0.0.1; the limit counts the clients the headers name.
  auto first = ConnectWith("PROXY TCP4 192.0.2.77 198.51.100.25 40000 25\r\n");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->ReadReply().code, 220);
  auto other = ConnectWith("PROXY TCP4 192.0.2.88 198.51.100.25 40000 25\r\n");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->ReadReply().code, 220);
  auto second = ConnectWith("PROXY TCP4 192.0.2.77 198.51.100.25 40001 25\r\n");
  ASSERT_NE(second, nullptr);
  const SmtpReply refused = second->ReadReply();
  EXPECT_EQ(refused.code, 421) << refused.text;
  EXPECT_NE(refused.text.find("too many connections from 192.0.2.77"), std::string::npos)
      << refused.text;
}

TEST_F(ProxyTest, UntrustedPeerIsClosedWithoutGreeting) {
  StartServer(Config({.trusted = R"(["127.0.0.2/32"])"}));
  auto client = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(client, nullptr);
  std::string rest;
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(10), &rest));
  EXPECT_EQ(rest, "");
  EXPECT_TRUE(server_->WaitForLog("listener=mx untrusted, closed")) << server_->Log();
  EXPECT_EQ(server_->Stat("proxy_refused"), 1);
}

TEST_F(ProxyTest, MalformedHeaderIsClosedWithoutGreeting) {
  StartServer(Config());
  for (const std::string_view bad :
       {std::string_view("PROXY TCP4 192.0.2.777 198.51.100.25 40000 25\r\n"),
        std::string_view("EHLO not-a-header\r\n")}) {
    auto client = ConnectWith(bad);
    ASSERT_NE(client, nullptr);
    std::string rest;
    EXPECT_TRUE(client->WaitClosed(absl::Seconds(10), &rest));
    EXPECT_EQ(rest, "");
  }
  // v1 on the v2-only listener.
  auto v1 = ConnectWith("PROXY TCP4 192.0.2.77 198.51.100.25 40000 25\r\n", "smtps");
  ASSERT_NE(v1, nullptr);
  EXPECT_TRUE(v1->WaitClosed(absl::Seconds(10)));
  EXPECT_TRUE(server_->WaitForLog("malformed: bad v1 address")) << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("malformed: no PROXY header of an accepted version"))
      << server_->Log();
  EXPECT_TRUE(server_->WaitForLog("listener=smtps malformed")) << server_->Log();
  EXPECT_EQ(server_->Stat("proxy_refused"), 3) << "each closed connection counted once";
}

TEST_F(ProxyTest, PeerLeavingBeforeTheHeaderIsNoSession) {
  StartServer(Config());
  {
    auto client = ConnectWith("PROXY TCP4 192.0.2.77");  // half a header, then the FIN
    ASSERT_NE(client, nullptr);
  }
  EXPECT_TRUE(server_->WaitForLog("listener=mx ended before the header: disconnect"))
      << server_->Log();
  EXPECT_EQ(server_->Log().find("session shard="), std::string::npos) << server_->Log();
}

TEST_F(ProxyTest, MissingHeaderTimesOut) {
  StartServer(Config());
  auto client = SmtpClient::Connect("127.0.0.1", server_->port());
  ASSERT_NE(client, nullptr);
  // Half a header, then nothing: closed after proxy_s (1 s) plus a tick, without a word.
  ASSERT_TRUE(client->Send("PROXY TCP4 192.0.2.77"));
  std::string rest;
  EXPECT_TRUE(client->WaitClosed(absl::Seconds(10), &rest));
  EXPECT_EQ(rest, "");
  EXPECT_TRUE(server_->WaitForLog("timeout: no header within 1 s, closed")) << server_->Log();
}

}  // namespace
}  // namespace ringmx::testing
