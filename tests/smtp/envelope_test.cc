// smtp/envelope.h: the Received header, the envelope JSON and the date formats.
#include "smtp/envelope.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace ringmx::smtp {
namespace {

policy::ConnectionFacts Facts(std::string_view client) {
  policy::ConnectionFacts facts;
  facts.client = *core::Endpoint::Parse(client);
  facts.local = *core::Endpoint::Parse("[2001:db8::25]:25");
  return facts;
}

TEST(EnvelopeTest, ProtocolNames) {
  EXPECT_EQ(ProtocolName(false, false, false, false), "SMTP");
  EXPECT_EQ(ProtocolName(false, true, true, true), "SMTP");
  EXPECT_EQ(ProtocolName(true, false, false, false), "ESMTP");
  EXPECT_EQ(ProtocolName(true, false, true, false), "ESMTPS");
  EXPECT_EQ(ProtocolName(true, false, false, true), "ESMTPA");
  EXPECT_EQ(ProtocolName(true, false, true, true), "ESMTPSA");
  EXPECT_EQ(ProtocolName(true, true, false, false), "UTF8SMTP");
  EXPECT_EQ(ProtocolName(true, true, true, false), "UTF8SMTPS");
  EXPECT_EQ(ProtocolName(true, true, false, true), "UTF8SMTPA");
  EXPECT_EQ(ProtocolName(true, true, true, true), "UTF8SMTPSA");
}

TEST(EnvelopeTest, Rfc5322Dates) {
  EXPECT_EQ(FormatRfc5322Date(absl::FromUnixSeconds(1700000000)),
            "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(FormatRfc5322Date(absl::FromUnixSeconds(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(FormatRfc5322Date(absl::FromUnixSeconds(1709424005) + absl::Milliseconds(999)),
            "Sun, 3 Mar 2024 00:00:05 +0000");
}

TEST(EnvelopeTest, Rfc3339WithMicroseconds) {
  EXPECT_EQ(FormatRfc3339Micros(absl::FromUnixSeconds(1700000000) + absl::Microseconds(123456)),
            "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(FormatRfc3339Micros(absl::FromUnixSeconds(1700000000)), "2023-11-14T22:13:20.000000Z");
}

TEST(EnvelopeTest, ReceivedHeaderForIpv6ClientWithoutRecipientClause) {
  policy::ConnectionFacts facts = Facts("[2001:db8::5]:1234");
  Envelope env;
  TraceContext ctx;
  ctx.id = "ID1";
  ctx.received_at = absl::FromUnixSeconds(1700000000);
  ctx.hostname = "mx.example.test";
  ctx.helo = "[IPv6:2001:db8::5]";
  ctx.ehlo = true;
  ctx.facts = &facts;
  EXPECT_EQ(BuildReceivedHeader(env, ctx),
            "Received: from [IPv6:2001:db8::5] ([IPv6:2001:db8::5])\r\n"
            "\tby mx.example.test (ringmx) with ESMTP id ID1;\r\n"
            "\tTue, 14 Nov 2023 22:13:20 +0000\r\n");
}

TEST(EnvelopeTest, ReceivedHeaderLinesStayUnder998Octets) {
  policy::ConnectionFacts facts = Facts("192.0.2.7:25");
  Envelope env;
  env.rcpt_to.push_back(std::string(64, 'r') + "@" + std::string(189, 'd'));
  const std::string helo(505, 'h');  // the most a 512-octet EHLO line can carry
  TraceContext ctx;
  ctx.id = "01234567890123456789";
  ctx.received_at = absl::FromUnixSeconds(1700000000);
  const std::string hostname(253, 'm');
  ctx.hostname = hostname;
  ctx.helo = helo;
  ctx.ehlo = true;
  ctx.facts = &facts;
  const std::string header = BuildReceivedHeader(env, ctx);
  ASSERT_EQ(header.substr(header.size() - 2), "\r\n");
  for (absl::string_view line : absl::StrSplit(header, "\r\n")) {
    EXPECT_LE(line.size(), 998u);
    EXPECT_EQ(line.find('\n'), absl::string_view::npos);
    EXPECT_EQ(line.find('\r'), absl::string_view::npos);
  }
  // Continuation lines start with a TAB (folding).
  EXPECT_NE(header.find("\r\n\tby "), std::string::npos);
  EXPECT_NE(header.find("\r\n\tfor <"), std::string::npos);
}

TEST(EnvelopeTest, JsonEscapesClientText) {
  policy::ConnectionFacts facts = Facts("192.0.2.7:2525");
  Envelope env;
  env.mail_from = "\"we\\\"ird\"@remote.test";
  env.rcpt_to = {"a@example.test"};
  env.mail_params.push_back({"SIZE", "3", true});
  TraceContext ctx;
  ctx.id = "X";
  ctx.received_at = absl::FromUnixSeconds(1700000000) + absl::Microseconds(5);
  ctx.hostname = "mx";
  ctx.helo = "h\x01\xff";
  ctx.ehlo = false;
  ctx.facts = &facts;
  ctx.size = 3;
  EXPECT_EQ(BuildEnvelopeJson(env, ctx),
            R"({"id":"X","received_at":"2023-11-14T22:13:20.000005Z",)"
            R"("mail_from":"\"we\\\"ird\"@remote.test","mail_params":{"SIZE":"3"},)"
            R"("rcpt_to":["a@example.test"],"client":{"address":"192.0.2.7","port":2525},)"
            R"("local":{"address":"2001:db8::25","port":25},"listener":null,)"
            R"("helo":"h\u0001\ufffd","protocol":"SMTP","smtputf8":false,"body_type":"7BIT",)"
            R"("size":3,"tls":null,"auth":null,"dsn":{"ret":null,"envid":null},)"
            R"("rcpt_dsn":[{"notify":null,"orcpt":null}]})");
  EXPECT_NE(BuildReceivedHeader(env, ctx).find("from h?? ([192.0.2.7])"), std::string::npos);
}

TEST(EnvelopeTest, ReceivedHeaderWithTlsAfterHeloAndTwoRecipients) {
  policy::ConnectionFacts facts = Facts("192.0.2.7:25");
  facts.tls = true;
  core::TlsFacts& tls = facts.tls_facts.emplace();
  tls.version = "TLSv1.3";
  tls.cipher = "TLS_CHACHA20_POLY1305_SHA256";
  tls.cipher_bits = 256;
  tls.cipher_alg_bits = 256;
  Envelope env;
  env.rcpt_to = {"a@example.test", "b@example.test"};
  TraceContext ctx;
  ctx.id = "ID2";
  ctx.received_at = absl::FromUnixSeconds(1700000000);
  ctx.hostname = "mx.example.test";
  ctx.helo = "client.example";
  ctx.ehlo = false;    // HELO: plain "SMTP" (RFC 3848 has no TLS name for it)
  ctx.facts = &facts;  // no listener: no client certificate was requested
  EXPECT_EQ(BuildReceivedHeader(env, ctx),
            "Received: from client.example ([192.0.2.7])\r\n"
            "\t(using TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits))\r\n"
            "\t(No client certificate requested)\r\n"
            "\tby mx.example.test (ringmx) with SMTP id ID2;\r\n"
            "\tTue, 14 Nov 2023 22:13:20 +0000\r\n");
}

TEST(EnvelopeTest, TlsTokensCannotForgeStructure) {
  policy::ConnectionFacts facts = Facts("192.0.2.7:25");
  facts.tls = true;
  core::TlsFacts& tls = facts.tls_facts.emplace();
  tls.version = "TLS v1)\r\n";
  tls.cipher = "A(B\"C\\";
  Envelope env;
  TraceContext ctx;
  ctx.id = "ID3";
  ctx.hostname = "mx.example.test";
  ctx.helo = "c";
  ctx.ehlo = true;
  ctx.facts = &facts;
  EXPECT_NE(
      BuildReceivedHeader(env, ctx).find("\t(using TLS?v1??? with cipher A?B?C? (0/0 bits))\r\n"),
      std::string::npos);
}

}  // namespace
}  // namespace ringmx::smtp
