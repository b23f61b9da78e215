// smtp/envelope.h: the Received header, the envelope JSON and the date formats.
#include "smtp/envelope.h"

#include <string>
#include <vector>

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
            R"("local":{"address":"2001:db8::25","port":25},"proxied_by":null,"listener":null,)"
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

// BuildEnvelopeJson -> ParseStoredEnvelope gives back what the driver needs.
TEST(StoredEnvelopeTest, RoundTrip) {
  policy::ConnectionFacts facts = Facts("192.0.2.7:2525");
  facts.tls = true;
  facts.tls_facts.emplace();
  facts.tls_facts->version = "TLSv1.3";
  Envelope env;
  env.mail_from = "s@remote.test";
  env.rcpt_to = {"a@example.test", "b@example.test", "c@example.test"};
  env.smtputf8 = true;
  env.body_8bitmime = true;
  env.mail_params.push_back({"RET", "FULL", true});
  env.dsn.ret = DsnRet::kFull;
  env.dsn.envid = "id \"1\"\\";
  env.rcpt_dsn.resize(2);  // the third recipient has no entry: defaults
  env.rcpt_dsn[0].notify.given = true;
  env.rcpt_dsn[0].notify.flags = DsnNotify::kDelay | DsnNotify::kSuccess;
  env.rcpt_dsn[0].orcpt = DsnOrcpt{"rfc822", "x;y@z"};
  env.rcpt_dsn[1].notify.given = true;
  env.rcpt_dsn[1].notify.never = true;
  TraceContext ctx;
  ctx.id = "Q1";
  ctx.received_at = absl::FromUnixSeconds(1700000000);
  ctx.helo = "client.example";
  ctx.ehlo = true;
  ctx.facts = &facts;
  const std::string json = BuildEnvelopeJson(env, ctx);
  const absl::StatusOr<StoredEnvelope> s = ParseStoredEnvelope(json);
  ASSERT_TRUE(s.ok()) << s.status() << "\n" << json;
  EXPECT_EQ(s->id, "Q1");
  EXPECT_EQ(s->mail_from, env.mail_from);
  EXPECT_EQ(s->rcpt_to, env.rcpt_to);
  EXPECT_TRUE(s->smtputf8);
  EXPECT_TRUE(s->body_8bitmime);
  EXPECT_EQ(s->client_address, "192.0.2.7");
  EXPECT_EQ(s->helo, "client.example");
  EXPECT_EQ(s->protocol, "UTF8SMTPS");
  EXPECT_EQ(s->ret, DsnRet::kFull);
  EXPECT_EQ(s->envid, *env.dsn.envid);
  ASSERT_EQ(s->rcpt_dsn.size(), 3u);
  EXPECT_EQ(s->rcpt_dsn[0].notify, env.rcpt_dsn[0].notify);
  EXPECT_EQ(s->rcpt_dsn[0].orcpt, env.rcpt_dsn[0].orcpt);
  EXPECT_EQ(s->rcpt_dsn[1].notify, env.rcpt_dsn[1].notify);
  EXPECT_FALSE(s->rcpt_dsn[1].orcpt.has_value());
  EXPECT_FALSE(s->rcpt_dsn[2].notify.given);
  EXPECT_FALSE(s->rcpt_dsn[2].orcpt.has_value());
}

// A client that came through a PROXY header: the envelope names it as the client and the
// balancer as proxied_by; the reader gives the balancer's address back.
TEST(EnvelopeTest, JsonRecordsTheBalancer) {
  policy::ConnectionFacts facts = Facts("192.0.2.77:40000");
  facts.proxied_by = *core::Endpoint::Parse("[2001:db8::10]:51000");
  Envelope env;
  env.mail_from = "s@remote.test";
  env.rcpt_to = {"a@example.test"};
  TraceContext ctx;
  ctx.id = "P";
  ctx.received_at = absl::FromUnixSeconds(1700000000);
  ctx.hostname = "mx";
  ctx.helo = "client.test";
  ctx.ehlo = true;
  ctx.facts = &facts;
  const std::string json = BuildEnvelopeJson(env, ctx);
  EXPECT_NE(json.find(R"("client":{"address":"192.0.2.77","port":40000},)"
                      R"("local":{"address":"2001:db8::25","port":25},)"
                      R"("proxied_by":{"address":"2001:db8::10","port":51000},)"),
            std::string::npos)
      << json;
  EXPECT_NE(BuildReceivedHeader(env, ctx).find("from client.test ([192.0.2.77])"),
            std::string::npos);
  const absl::StatusOr<StoredEnvelope> s = ParseStoredEnvelope(json);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->client_address, "192.0.2.77");
  EXPECT_EQ(s->proxied_by_address, "2001:db8::10");
  // A direct connection: null, read as "".
  facts.proxied_by.reset();
  const absl::StatusOr<StoredEnvelope> direct = ParseStoredEnvelope(BuildEnvelopeJson(env, ctx));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->proxied_by_address, "");
}

// An envelope written before ringmx accepted DSN parameters (the JSON of JsonEscapesClientText
// before the change) reads with defaults.
TEST(StoredEnvelopeTest, OldEnvelopesReadWithDefaults) {
  const absl::StatusOr<StoredEnvelope> s = ParseStoredEnvelope(
      R"({"id":"X","received_at":"2023-11-14T22:13:20.000005Z",)"
      R"("mail_from":"\"we\\\"ird\"@remote.test","mail_params":{"SIZE":"3"},)"
      R"("rcpt_to":["a@example.test","b@example.test"],)"
      R"("client":{"address":"192.0.2.7","port":2525},)"
      R"("local":{"address":"2001:db8::25","port":25},"listener":null,)"
      R"("helo":"h\u0001\ufffd","protocol":"SMTP","smtputf8":false,"body_type":"7BIT",)"
      R"("size":3,"tls":null,"auth":null})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->mail_from, "\"we\\\"ird\"@remote.test");
  EXPECT_EQ(s->helo, "h\x01\xef\xbf\xbd");
  EXPECT_EQ(s->ret, DsnRet::kUnspecified);
  EXPECT_EQ(s->envid, "");
  ASSERT_EQ(s->rcpt_dsn.size(), 2u);
  EXPECT_EQ(s->rcpt_dsn[0], DsnRcptParams{});
  EXPECT_EQ(s->rcpt_dsn[1], DsnRcptParams{});
  // The least an envelope can be.
  const absl::StatusOr<StoredEnvelope> least =
      ParseStoredEnvelope(R"( {"mail_from":"","rcpt_to":[]} )");
  ASSERT_TRUE(least.ok()) << least.status();
  EXPECT_TRUE(least->rcpt_to.empty());
}

TEST(StoredEnvelopeTest, RefusesWhatBuildEnvelopeJsonNeverWrites) {
  const std::string head = R"({"mail_from":"s@r.test","rcpt_to":["a@e.test"],)";
  const std::vector<std::string> bad = {
      "",
      "[]",
      R"({"mail_from":"s@r.test"})",
      R"({"rcpt_to":[]})",
      R"({"mail_from":1,"rcpt_to":[]})",
      R"({"mail_from":"","rcpt_to":[1]})",
      R"({"mail_from":"","rcpt_to":[]} x)",
      head + R"("smtputf8":"yes"})",
      head + R"("body_type":"BINARYMIME"})",
      head + R"("client":[]})",
      head + R"("proxied_by":[]})",
      head + R"("proxied_by":{"address":1}})",
      head + R"("helo":null})",
      head + R"("dsn":[]})",
      head + R"("dsn":{"ret":"ALL"}})",
      head + R"("dsn":{"ret":1}})",
      head + R"("dsn":{"envid":""}})",
      head + R"("dsn":{"envid":"a\nb"}})",
      head + absl::StrCat(R"("dsn":{"envid":")", std::string(101, 'x'), R"("}})"),
      head + R"("rcpt_dsn":[]})",
      head + R"("rcpt_dsn":[null,null]})",
      head + R"("rcpt_dsn":{}})",
      head + R"("rcpt_dsn":[1]})",
      head + R"("rcpt_dsn":[{"notify":[]}]})",
      head + R"("rcpt_dsn":[{"notify":"NEVER"}]})",
      head + R"("rcpt_dsn":[{"notify":["NEVER","FAILURE"]}]})",
      head + R"("rcpt_dsn":[{"notify":["SUCCESS,FAILURE"]}]})",
      head + R"("rcpt_dsn":[{"notify":["ALWAYS"]}]})",
      head + R"("rcpt_dsn":[{"notify":[""]}]})",
      head + R"("rcpt_dsn":[{"orcpt":"rfc822;a@b"}]})",
      head + R"("rcpt_dsn":[{"orcpt":{"addr_type":"rfc822"}}]})",
      head + R"("rcpt_dsn":[{"orcpt":{"addr_type":"rfc 822","address":"a@b"}}]})",
      head + R"("rcpt_dsn":[{"orcpt":{"addr_type":"rfc822","address":""}}]})",
      head + R"("rcpt_dsn":[{"orcpt":{"addr_type":"rfc822","address":"\u00e9@b"}}]})",
  };
  for (const std::string& text : bad) {
    EXPECT_FALSE(ParseStoredEnvelope(text).ok()) << text;
  }
  // And the same head with good values is taken (the cases above fail for their field).
  const absl::StatusOr<StoredEnvelope> good =
      ParseStoredEnvelope(head + R"("dsn":{"ret":"HDRS","envid":null},)"
                                 R"("rcpt_dsn":[{"notify":["DELAY","FAILURE"],"orcpt":null}]})");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->ret, DsnRet::kHdrs);
  EXPECT_EQ(good->rcpt_dsn[0].notify.ToParameterValue(), "FAILURE,DELAY");
}

}  // namespace
}  // namespace ringmx::smtp
