// Message transfer through smtp::Session: DATA (dot-unstuffing, smuggling defences, limits),
// BDAT, the delivery hand-off, pipelining around it, timeouts and shutdown. Transcripts go through
// Check(), which also replays them split at every byte boundary and one byte at a time.
#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "smtp/limits.h"
#include "smtp/session.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using testing::Check;
using testing::EhloReply;
using testing::Env;
using testing::Greeting;
using testing::kMaxMessageSize;
using testing::kT0;
using testing::Lines;
using testing::Transcript;

constexpr char kHead[] =
    "EHLO client.example\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<user@example.test>\r\n";
constexpr char k354[] = "354 End data with <CR><LF>.<CR><LF>\r\n";
constexpr char kBareReply[] = "550 5.6.0 Message contains bare CR or LF\r\n";
constexpr char kLongLineReply[] = "550 5.6.0 Message line too long\r\n";
constexpr char kTooBigReply[] = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
constexpr char kOk[] = "250 2.0.0 Ok\r\n";

std::string HeadReplies() {
  return Greeting() + EhloReply() + Lines({"250 2.1.0 Ok", "250 2.1.5 Ok"});
}

// The n-th (1-based) queue id minted at kT0 by shard 0.
std::string Id(int n) {
  core::QueueIdGenerator ids(0);
  std::string id;
  for (int i = 0; i < n; ++i) id = ids.Next(kT0);
  return id;
}

std::string Queued(int n) { return absl::StrCat("250 2.0.0 Ok: queued as ", Id(n), "\r\n"); }

// A driver for tests that need control over time and delivery answers.
class Driver {
 public:
  explicit Driver(Env& env) : session_(env.snapshot, env.facts, ids_) {}
  void Start(absl::Time now = kT0) { session_.Start(now, out_); }
  void Input(std::string_view bytes, absl::Time now = kT0) { session_.OnInput(bytes, now, out_); }
  void Delivered(absl::Status status, absl::Time now = kT0) {
    session_.OnDelivered(status, now, out_);
  }
  // Replies since the last call.
  std::string Take() {
    std::string r = std::move(out_.replies);
    out_.replies.clear();
    return r;
  }
  Output& out() { return out_; }
  Session& session() { return session_; }

 private:
  core::QueueIdGenerator ids_{0};
  Session session_;
  Output out_;
};

// --- DATA ------------------------------------------------------------------------------------

TEST(SessionDataTest, DeliversAMessageWithExactRecord) {
  Env env;
  Transcript t =
      Check(env, absl::StrCat(kHead, "DATA\r\nSubject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(k354) + Queued(1) + "221 2.0.0 Bye\r\n");
  ASSERT_EQ(t.records.size(), 1u);
  const core::SpoolRecord& r = t.records[0];
  EXPECT_EQ(r.id, Id(1));
  EXPECT_EQ(r.id.size(), 20u);
  EXPECT_EQ(r.body, "Subject: hi\r\n\r\nHello\r\n");
  EXPECT_EQ(r.trace_headers,
            absl::StrCat("Received: from client.example ([203.0.113.5])\r\n"
                         "\tby mx.example.test (ringmx) with ESMTP id ",
                         Id(1),
                         "\r\n"
                         "\tfor <user@example.test>; Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
  EXPECT_EQ(
      r.envelope_json,
      absl::StrCat(
          R"({"id":")", Id(1),
          R"(","received_at":"2023-11-14T22:13:20.000000Z","mail_from":"sender@remote.test",)",
          R"("mail_params":{},"rcpt_to":["user@example.test"],)",
          R"("client":{"address":"203.0.113.5","port":40000},)",
          R"("local":{"address":"192.0.2.10","port":25},"proxied_by":null,"listener":"mx",)",
          R"("helo":"client.example","protocol":"ESMTP","smtputf8":false,)",
          R"("body_type":"7BIT","size":22,"tls":null,"auth":null,)",
          R"("dsn":{"ret":null,"envid":null},"rcpt_dsn":[{"notify":null,"orcpt":null}]})"));
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "quit");
  EXPECT_EQ(t.stats.messages_accepted, 1u);
  EXPECT_EQ(t.stats.messages_rejected, 0u);
  EXPECT_EQ(t.stats.bytes_accepted, 22u);
  EXPECT_EQ(t.stats.commands, 5u);
}

TEST(SessionDataTest, EnvelopeCarriesParametersRecipientsAndUtf8) {
  Env env;
  env.facts.tls = true;
  env.facts.auth_identity = "alice";
  Transcript t = Check(env,
                       "EHLO client.example\r\nMAIL FROM:<> SIZE=30 body=8bitmime SMTPUTF8\r\n"
                       "RCPT TO:<j\xc3\xb6rg@example.test>\r\nRCPT TO:<PostMaster>\r\n"
                       "RCPT TO:<x@remote.test>\r\nDATA\r\nHi\r\n.\r\n");
  ASSERT_EQ(t.records.size(), 1u);
  const core::SpoolRecord& r = t.records[0];
  // Two recipients: no "for" clause, the date goes on its own line.
  EXPECT_EQ(r.trace_headers, absl::StrCat("Received: from client.example ([203.0.113.5])\r\n"
                                          "\tby mx.example.test (ringmx) with UTF8SMTPSA id ",
                                          Id(1), ";\r\n\tTue, 14 Nov 2023 22:13:20 +0000\r\n"));
  EXPECT_EQ(
      r.envelope_json,
      absl::StrCat(
          R"({"id":")", Id(1), R"(","received_at":"2023-11-14T22:13:20.000000Z","mail_from":"",)",
          R"("mail_params":{"SIZE":"30","BODY":"8bitmime","SMTPUTF8":true},)",
          "\"rcpt_to\":[\"j\xc3\xb6rg@example.test\",\"PostMaster\",\"x@remote.test\"],",
          R"("client":{"address":"203.0.113.5","port":40000},)",
          R"("local":{"address":"192.0.2.10","port":25},"proxied_by":null,"listener":"mx",)",
          R"("helo":"client.example","protocol":"UTF8SMTPSA","smtputf8":true,)",
          R"("body_type":"8BITMIME","size":4,"tls":null,"auth":"alice",)",
          R"("dsn":{"ret":null,"envid":null},"rcpt_dsn":[{"notify":null,"orcpt":null},)",
          R"({"notify":null,"orcpt":null},{"notify":null,"orcpt":null}]})"));
}

TEST(SessionDataTest, ProtocolWordFollowsHeloTlsAndAuth) {
  struct Case {
    std::string hello;
    bool tls;
    std::string auth;
    std::string mail_params;
    std::string protocol;
  };
  const std::vector<Case> cases = {
      {"HELO", false, "", "", "SMTP"},
      {"EHLO", false, "", "", "ESMTP"},
      {"EHLO", true, "", "", "ESMTPS"},
      {"EHLO", false, "bob", "", "ESMTPA"},
      {"EHLO", true, "bob", "", "ESMTPSA"},
      {"EHLO", false, "", " SMTPUTF8", "UTF8SMTP"},
      {"EHLO", true, "", " SMTPUTF8", "UTF8SMTPS"},
      {"EHLO", false, "bob", " SMTPUTF8", "UTF8SMTPA"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.protocol);
    Env env;
    env.facts.tls = c.tls;
    env.facts.auth_identity = c.auth;
    Transcript t = testing::Run(
        env, absl::StrCat(c.hello, " client.example\r\nMAIL FROM:<a@remote.test>", c.mail_params,
                          "\r\nRCPT TO:<u@example.test>\r\nDATA\r\nx\r\n.\r\n"));
    ASSERT_EQ(t.records.size(), 1u);
    EXPECT_NE(t.records[0].trace_headers.find(absl::StrCat(" with ", c.protocol, " id ")),
              std::string::npos)
        << t.records[0].trace_headers;
    EXPECT_NE(t.records[0].envelope_json.find(absl::StrCat("\"protocol\":\"", c.protocol, "\"")),
              std::string::npos);
  }
}

TEST(SessionDataTest, HeloNameCannotForgeReceivedStructure) {
  Env env;
  Transcript t = Check(env,
                       "EHLO a (b) ;c\r\nMAIL FROM:<a@remote.test>\r\n"
                       "RCPT TO:<u@example.test>\r\nDATA\r\nx\r\n.\r\n");
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].trace_headers.substr(0, 28), "Received: from a??b???c ([20");
  EXPECT_NE(t.records[0].envelope_json.find(R"("helo":"a (b) ;c")"), std::string::npos);
}

TEST(SessionDataTest, DotUnstuffing) {
  struct Case {
    std::string data;  // after DATA, through the terminating dot line
    std::string body;
  };
  const std::vector<Case> cases = {
      {".\r\n", ""},  // empty message
      {"\r\n.\r\n", "\r\n"},
      {".hidden\r\n.\r\n", "hidden\r\n"},  // data beginning with a dot
      {"..leading\r\n.\r\n", ".leading\r\n"},
      {"..\r\n.\r\n", ".\r\n"},  // a line that is just ".."
      {"...\r\n.\r\n", "..\r\n"},
      {"a.b\r\n .\r\nx.\r\n.\r\n", "a.b\r\n .\r\nx.\r\n"},
      {"line\r\n..\r\n..x\r\n.\r\n", "line\r\n.\r\n.x\r\n"},
      {"Subject: t\r\n\r\n.\r\n", "Subject: t\r\n\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::CHexEscape(c.data));
    Env env;
    Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\n", c.data, "NOOP\r\n"));
    EXPECT_EQ(t.replies, HeadReplies() + std::string(k354) + Queued(1) + std::string(kOk));
    ASSERT_EQ(t.records.size(), 1u);
    EXPECT_EQ(t.records[0].body, c.body);
    EXPECT_NE(t.records[0].envelope_json.find(absl::StrCat("\"size\":", c.body.size(), ",")),
              std::string::npos);
  }
}

// Each variant hides a second transaction behind something that is not CR LF "." CR LF. The
// message is refused, nothing in it runs as a command, and the stream stays in sync.
TEST(SessionDataTest, BareCrAndLfNeverEndDataAndAreRefused) {
  const std::string smuggled =
      "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
      "Subject: smuggled\r\n\r\nsmuggled\r\n";
  // (A CR LF "." CR LF anywhere, even right after a bare CR or LF, is a real end: "\r\r\n.\r\n"
  // ends the data. None of these contains one.)
  const std::vector<std::string> variants = {
      "\n.\n", "\r\n.\n",     "\n.\r\n",  "\r.\r\n",  "\r\n.\r",  "\r.\r",       "\n.\r\n\n", "\n",
      "\r",    "\r\n.\r\r\n", "\r\n..\n", "x\ny\r\n", "x\ry\r\n", "\r\n.\n\r\n", "\n\n.\n\n"};
  for (const std::string& v : variants) {
    SCOPED_TRACE(absl::CHexEscape(v));
    Env env;
    Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\nSubject: legit\r\n\r\nhello", v,
                                           smuggled, "\r\n.\r\nNOOP\r\n"));
    EXPECT_EQ(t.replies,
              HeadReplies() + std::string(k354) + std::string(kBareReply) + std::string(kOk));
    EXPECT_TRUE(t.records.empty());
    EXPECT_EQ(t.stats.messages_rejected, 1u);
    EXPECT_EQ(t.stats.messages_accepted, 0u);
  }
}

TEST(SessionDataTest, CrAtTheEndOfOneReadFollowedByNonLfIsBare) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\nSubject: x\r\n\r\nhello\r"));
  d.Input("MAIL FROM:<evil@remote.test>\r\n.\r\nNOOP\r\n");
  EXPECT_EQ(d.Take(),
            HeadReplies() + std::string(k354) + std::string(kBareReply) + std::string(kOk));
  EXPECT_FALSE(d.out().deliver.has_value());
}

TEST(SessionDataTest, TextLinesOf998OctetsAreAcceptedAnd999Refused) {
  const std::string l998(998, 'a');
  Env env;
  Transcript ok = Check(env, absl::StrCat(kHead, "DATA\r\n", l998, "\r\n.\r\n"));
  EXPECT_EQ(ok.replies, HeadReplies() + std::string(k354) + Queued(1));
  ASSERT_EQ(ok.records.size(), 1u);
  EXPECT_EQ(ok.records[0].body, l998 + "\r\n");
  // A dot-stuffed line counts after unstuffing.
  Transcript stuffed = Check(env, absl::StrCat(kHead, "DATA\r\n.", l998, "\r\n.\r\n"));
  EXPECT_EQ(stuffed.replies, HeadReplies() + std::string(k354) + Queued(1));
  Transcript bad = Check(env, absl::StrCat(kHead, "DATA\r\nshort\r\n", l998,
                                           "a\r\nMAIL FROM:<x@y.test>\r\n.\r\nNOOP\r\n"));
  EXPECT_EQ(bad.replies,
            HeadReplies() + std::string(k354) + std::string(kLongLineReply) + std::string(kOk));
  EXPECT_TRUE(bad.records.empty());
}

std::string Filler(size_t bytes) {
  // Lines of 98 octets + CR LF; the last one shortened to hit `bytes` exactly.
  std::string s;
  while (s.size() + 100 <= bytes) s += std::string(98, 'x') + "\r\n";
  if (s.size() < bytes) {
    const size_t rest = bytes - s.size();
    s += rest >= 2 ? std::string(rest - 2, 'y') + "\r\n" : std::string(rest, 'y');
  }
  return s;
}

TEST(SessionDataTest, MessageOfExactlyTheMaximumSizeIsAccepted) {
  Env env;
  const std::string body = Filler(kMaxMessageSize);
  ASSERT_EQ(body.size(), kMaxMessageSize);
  Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(k354) + Queued(1));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, body);
  EXPECT_LE(t.max_memory, kMaxMessageSize + kMaxCommandLineOctets);
}

TEST(SessionDataTest, MessageOverTheMaximumSizeIsRefused) {
  Env env;
  const std::string body = Filler(kMaxMessageSize) + "z\r\n";
  Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\nNOOP\r\n"));
  EXPECT_EQ(t.replies,
            HeadReplies() + std::string(k354) + std::string(kTooBigReply) + std::string(kOk));
  EXPECT_TRUE(t.records.empty());
  EXPECT_EQ(t.stats.messages_rejected, 1u);
}

TEST(SessionDataTest, EndlessDataStaysBoundedAndIsCut) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\n"));
  d.Take();
  const std::string chunk = Filler(64 * 1024);
  int chunks = 0;
  while (!d.session().closed() && chunks < 64) {  // up to 4 MiB against a 10000-octet limit
    d.Input(chunk);
    ++chunks;
    ASSERT_LE(d.session().MemoryUsageForTest(), kMaxMessageSize + kMaxCommandLineOctets);
  }
  // Cut once StreamCutOctets (10000 + 1 MiB) octets have come: the 17th chunk crosses it.
  EXPECT_EQ(chunks, static_cast<int>(StreamCutOctets(kMaxMessageSize) / chunk.size()) + 1);
  EXPECT_EQ(d.Take(), std::string(kTooBigReply));
  EXPECT_TRUE(d.out().close);
  EXPECT_EQ(d.session().end_reason(), "too-big-stream");
  EXPECT_EQ(d.session().stats().messages_rejected, 1u);
  EXPECT_EQ(d.session().MemoryUsageForTest(), 0u);
  d.Input(".\r\nNOOP\r\n");
  EXPECT_EQ(d.Take(), "");
}

TEST(SessionDataTest, StreamCutIsHalfTheLimitOrOneMibPastIt) {
  EXPECT_EQ(StreamCutOctets(10000), 10000u + 1024 * 1024);
  EXPECT_EQ(StreamCutOctets(1024 * 1024), 2u * 1024 * 1024);
  EXPECT_EQ(StreamCutOctets(26214400), 26214400u + 13107200u);
  EXPECT_EQ(StreamCutOctets(UINT64_MAX - 5), UINT64_MAX);
}

TEST(SessionDataTest, DataWhoseEndComesWithinTheCutIsRefusedAndTheSessionGoesOn) {
  Env env;
  // Raw DATA octets, the final "." CR LF included: exactly the cut.
  const uint64_t cut = StreamCutOctets(kMaxMessageSize);
  const std::string body = Filler(cut - 3);
  Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\nNOOP\r\n"));
  EXPECT_EQ(t.replies,
            HeadReplies() + std::string(k354) + std::string(kTooBigReply) + std::string(kOk));
  EXPECT_FALSE(t.closed);
  EXPECT_EQ(t.stats.messages_rejected, 1u);
  EXPECT_LE(t.max_memory, kMaxMessageSize + kMaxCommandLineOctets);
}

TEST(SessionDataTest, DataWithoutItsEndWithinTheCutIs552AndClose) {
  Env env;
  // One octet more: the cut's octets hold no end of data. Whatever follows (here the end of the
  // data and a command) is never read, however the input is split.
  const uint64_t cut = StreamCutOctets(kMaxMessageSize);
  const std::string body = Filler(cut - 2);
  Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\nNOOP\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(k354) + std::string(kTooBigReply));
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "too-big-stream");
  EXPECT_EQ(t.stats.messages_rejected, 1u);
  EXPECT_TRUE(t.records.empty());
  EXPECT_LE(t.max_memory, kMaxMessageSize + kMaxCommandLineOctets);
}

TEST(SessionDataTest, DataTakesNoArgumentsAndNeedsRecipients) {
  Env env;
  EXPECT_EQ(Check(env, absl::StrCat(kHead, "DATA now\r\n")).replies,
            HeadReplies() + "501 5.5.4 Syntax: DATA\r\n");
}

// --- Delivery and pipelining -----------------------------------------------------------------

TEST(SessionDataTest, StoreFailureIs452AndEndsTheTransaction) {
  Env env;
  env.delivery_results = {absl::ResourceExhaustedError("disk full")};
  Transcript t =
      Check(env, absl::StrCat(kHead, "DATA\r\nx\r\n.\r\nRCPT TO:<user@example.test>\r\n",
                              "MAIL FROM:<a@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
                              "DATA\r\ny\r\n.\r\n"));
  EXPECT_EQ(t.replies,
            HeadReplies() + std::string(k354) +
                Lines({"452 4.3.1 Insufficient system storage",
                       "503 5.5.1 Error: need MAIL command", "250 2.1.0 Ok", "250 2.1.5 Ok"}) +
                std::string(k354) + Queued(2));
  EXPECT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.stats.messages_rejected, 1u);
  EXPECT_EQ(t.stats.messages_accepted, 1u);
  EXPECT_EQ(t.stats.bytes_accepted, 3u);
}

// One log line per message, with its queue id, once the store answered: the id leads from intake
// to the delivery lines (docs/operations.md, "Logs").
TEST(SessionDataTest, EachMessageGetsOneLogLineWithItsIdOnceTheStoreAnswered) {
  Env env;
  env.delivery_results = {absl::ResourceExhaustedError("disk full")};
  Transcript t =
      Check(env, absl::StrCat(kHead, "DATA\r\nx\r\n.\r\n",
                              "MAIL FROM:<>\r\nRCPT TO:<user@example.test>\r\n",
                              "RCPT TO:<postmaster@example.test>\r\nDATA\r\nyz\r\n.\r\n"));
  std::vector<std::string> messages;
  for (const std::string& line : t.log) {
    if (line.starts_with("message ")) messages.push_back(line);
  }
  ASSERT_EQ(messages.size(), 2u) << absl::StrJoin(t.log, "\n");
  EXPECT_EQ(messages[0], absl::StrCat("message id=", Id(1),
                                      " from=<sender@remote.test> to=<user@example.test> nrcpt=1"
                                      " size=3 tls=none auth=- result=refused reply=452"
                                      " store=\"disk full\""));
  EXPECT_EQ(messages[1],
            absl::StrCat("message id=", Id(2),
                         " from=<> to=<user@example.test>,<postmaster@example.test> nrcpt=2"
                         " size=4 tls=none auth=- result=queued"));
}

TEST(SessionDataTest, PipelinedTransactionsAfterDataAreAnsweredInOrder) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "DATA\r\nfirst\r\n.\r\n",
                                         "MAIL FROM:<b@remote.test>\r\nRCPT TO:<v@example.test>\r\n"
                                         "DATA\r\nsecond\r\n.\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(k354) + Queued(1) +
                           Lines({"250 2.1.0 Ok", "250 2.1.5 Ok"}) + std::string(k354) + Queued(2) +
                           "221 2.0.0 Bye\r\n");
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.records[0].body, "first\r\n");
  EXPECT_EQ(t.records[1].body, "second\r\n");
  EXPECT_NE(t.records[1].envelope_json.find(R"("mail_from":"b@remote.test")"), std::string::npos);
}

TEST(SessionDataTest, InputDuringDeliveryIsHeldUntilTheStoreAnswers) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\nx\r\n.\r\nNOOP\r\n"));
  EXPECT_EQ(d.Take(), HeadReplies() + std::string(k354));
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(d.out().deliver->body, "x\r\n");
  EXPECT_TRUE(d.session().delivery_outstanding());
  EXPECT_EQ(d.session().deadline(), absl::InfiniteFuture());
  d.out().Clear();
  d.Input("RSET\r\n");
  EXPECT_EQ(d.Take(), "");
  d.Delivered(absl::OkStatus(), kT0 + absl::Seconds(1));
  EXPECT_EQ(d.Take(), Queued(1) + std::string(kOk) + std::string(kOk));
  EXPECT_FALSE(d.session().delivery_outstanding());
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(301));
  // A second answer for the same message is ignored.
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), "");
}

TEST(SessionDataTest, TooMuchInputDuringDeliveryGets421AfterTheMessageReply) {
  Env env;
  Driver d(env);
  d.Start();
  std::string noops;
  while (noops.size() <= kMaxPendingInputBytes) noops += "NOOP\r\n";
  d.Input(absl::StrCat(kHead, "DATA\r\nx\r\n.\r\n", noops));
  EXPECT_EQ(d.Take(), HeadReplies() + std::string(k354));
  EXPECT_TRUE(d.out().deliver.has_value());
  EXPECT_LE(d.session().MemoryUsageForTest(), kMaxPendingInputBytes + kMaxCommandLineOctets);
  d.Input(noops);  // ignored: already over
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), Queued(1) + "421 4.7.0 mx.example.test Error: too much pipelined input\r\n");
  EXPECT_TRUE(d.session().closed());
  EXPECT_EQ(d.session().end_reason(), "too-much-pipelining");
}

TEST(SessionDataTest, InputDuringDeliveryWithinTheBoundIsAllAnswered) {
  Env env;
  Driver d(env);
  d.Start();
  std::string noops;
  int count = 0;
  while (noops.size() + 6 <= kMaxPendingInputBytes) {
    noops += "NOOP\r\n";
    ++count;
  }
  d.Input(absl::StrCat(kHead, "DATA\r\nx\r\n.\r\n"));
  for (size_t i = 0; i < noops.size(); i += 1000) d.Input(noops.substr(i, 1000));
  d.Take();
  d.Delivered(absl::OkStatus());
  std::string expected = Queued(1);
  for (int i = 0; i < count; ++i) expected += kOk;
  EXPECT_EQ(d.Take(), expected);
  EXPECT_FALSE(d.session().closed());
}

// --- Streaming: the body goes to the store in pieces while it arrives -------------------------

core::Config BigConfig() {
  core::Config config = testing::TestConfig();
  config.policy.max_message_size = 30 << 20;
  return config;
}

// HeadReplies() with BigConfig()'s SIZE.
std::string BigHeadReplies() {
  std::string replies = HeadReplies();
  const size_t at = replies.find("SIZE 10000");
  return replies.replace(at, strlen("SIZE 10000"), "SIZE 31457280");
}

// A body of `bytes` octets whose lines all differ (so a misplaced piece shows).
std::string NumberedBody(size_t bytes) {
  std::string s;
  for (int i = 0; s.size() < bytes; ++i) absl::StrAppend(&s, "line ", i, " of the body\r\n");
  return s;
}

TEST(SessionDataTest, LargeMessageStreamsInPiecesThatJoinExactly) {
  Env env(BigConfig());
  const std::string body = NumberedBody(2 << 20);
  const std::string input = absl::StrCat(kHead, "DATA\r\n", body, ".\r\nQUIT\r\n");
  std::vector<size_t> cuts;  // reads of 7777 octets, like a network would cut them
  for (size_t i = 7777; i < input.size(); i += 7777) cuts.push_back(i);
  for (const std::vector<size_t>& how : {std::vector<size_t>{}, cuts}) {
    Transcript t = testing::Run(env, input, how);
    EXPECT_EQ(t.replies, BigHeadReplies() + std::string(k354) + Queued(1) + "221 2.0.0 Bye\r\n");
    ASSERT_EQ(t.records.size(), 1u);
    EXPECT_EQ(t.records[0].id, Id(1));
    EXPECT_EQ(t.records[0].body, body) << "the pieces do not join to the message";
    EXPECT_GE(t.records[0].fragments, body.size() / kStreamChunkBytes - 1);
    EXPECT_EQ(t.fragments, t.records[0].fragments);
    EXPECT_NE(t.records[0].envelope_json.find(absl::StrCat("\"size\":", body.size())),
              std::string::npos);
    EXPECT_EQ(t.stats.bytes_accepted, body.size());
    // Never the whole message: one body buffer (and the command line) at most.
    EXPECT_LE(t.max_memory, kStreamChunkBytes + kMaxCommandLineOctets);
    EXPECT_TRUE(t.aborted_streams.empty());
  }
}

TEST(SessionDataTest, SessionWaitsForEachPieceAndHoldsInputMeanwhile) {
  Env env(BigConfig());
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\n"));
  d.Take();
  const std::string body = NumberedBody(700 * 1024);
  // The first buffer fills and goes; the second fills and waits for the first to be stored.
  d.Input(std::string_view(body).substr(0, 600 * 1024));
  ASSERT_TRUE(d.out().fragment.has_value());
  EXPECT_EQ(d.out().fragment->index, 0u);
  const std::string id = d.out().fragment->id;
  std::string stored = d.out().fragment->bytes.Flatten();
  d.out().Clear();
  EXPECT_TRUE(d.session().input_blocked());
  EXPECT_EQ(d.session().streaming_id(), id);
  EXPECT_LE(d.session().MemoryUsageForTest(),
            kStreamChunkBytes + kMaxPendingInputBytes + kMaxCommandLineOctets);
  d.Input(body.substr(600 * 1024) + ".\r\nNOOP\r\n");
  EXPECT_FALSE(d.out().fragment.has_value()) << "a second piece before the first was stored";
  EXPECT_FALSE(d.out().deliver.has_value());
  EXPECT_EQ(d.Take(), "");
  // Stored: the next piece goes, the rest is read up to the end of the data, and the message
  // waits for that piece.
  d.session().OnFragmentStored(absl::OkStatus(), kT0, d.out());
  ASSERT_TRUE(d.out().fragment.has_value());
  EXPECT_EQ(d.out().fragment->index, 1u);
  stored += d.out().fragment->bytes.Flatten();
  EXPECT_FALSE(d.out().deliver.has_value());
  d.out().Clear();
  EXPECT_TRUE(d.session().input_blocked());
  d.session().OnFragmentStored(absl::OkStatus(), kT0, d.out());
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(d.out().deliver->id, id);
  EXPECT_EQ(d.out().deliver->fragments, 2u);
  EXPECT_EQ(stored + d.out().deliver->body.Flatten(), body);
  EXPECT_EQ(d.session().streaming_id(), "");
  d.out().Clear();
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), absl::StrCat("250 2.0.0 Ok: queued as ", id, "\r\n", kOk));
}

// OnInputUntilFull (the driver's entry, issue 10): what does not fit while the previous piece is
// being stored is left to the caller, not buffered (it stays in the driver's receive buffer), and
// offered again it completes the message exactly.
TEST(SessionDataTest, InputThatDoesNotFitIsLeftToTheCaller) {
  Env env(BigConfig());
  Driver d(env);
  d.Start();
  EXPECT_EQ(d.session().OnInputUntilFull(absl::StrCat(kHead, "DATA\r\n"), kT0, d.out()),
            sizeof(kHead) - 1 + 6);
  d.Take();
  const std::string message = NumberedBody(700 * 1024);
  const std::string input = message + ".\r\nNOOP\r\n";
  std::string_view rest = input;
  // The first buffer fills and goes; the second fills and the rest is not taken.
  const size_t used = d.session().OnInputUntilFull(rest.substr(0, 600 * 1024), kT0, d.out());
  EXPECT_GE(used, kStreamChunkBytes);
  EXPECT_LT(used, 600u * 1024);
  ASSERT_TRUE(d.out().fragment.has_value());
  const std::string id = d.out().fragment->id;
  std::string stored = d.out().fragment->bytes.Flatten();
  d.out().Clear();
  rest.remove_prefix(used);
  EXPECT_TRUE(d.session().input_blocked());
  // Nothing was kept: the body buffer and the command line only, no pending input.
  EXPECT_LE(d.session().MemoryUsageForTest(), kStreamChunkBytes + kMaxCommandLineOctets);
  // While it is blocked nothing is taken.
  EXPECT_EQ(d.session().OnInputUntilFull(rest, kT0, d.out()), 0u);
  EXPECT_FALSE(d.out().fragment.has_value());
  // Stored: the session can go on, and the full buffer goes with the next input.
  d.session().OnFragmentStored(absl::OkStatus(), kT0, d.out());
  EXPECT_FALSE(d.session().input_blocked());
  EXPECT_FALSE(d.out().fragment.has_value());
  // The rest: up to the end of the data, then the NOOP waits in the session (a piece is out and
  // the message must wait for it), as with OnInput.
  EXPECT_EQ(d.session().OnInputUntilFull(rest, kT0, d.out()), rest.size());
  ASSERT_TRUE(d.out().fragment.has_value());
  EXPECT_EQ(d.out().fragment->index, 1u);
  stored += d.out().fragment->bytes.Flatten();
  d.out().Clear();
  EXPECT_EQ(d.Take(), "");
  d.session().OnFragmentStored(absl::OkStatus(), kT0, d.out());
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(stored + d.out().deliver->body.Flatten(), message);
  d.out().Clear();
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), absl::StrCat("250 2.0.0 Ok: queued as ", id, "\r\n", kOk));
  EXPECT_FALSE(d.session().input_blocked());
}

// A client that announced a large message (SIZE=) is read one receive at a time from its first
// body octet; a small one only once its data reaches a quarter of a body buffer.
TEST(SessionDataTest, LargeAnnouncedMessageIsLargeFromItsFirstOctet) {
  Env env(BigConfig());
  for (uint64_t announced : {uint64_t{0}, uint64_t{1024}, uint64_t{kStreamChunkBytes / 4}}) {
    Driver d(env);
    d.Start();
    d.Input(absl::StrCat("EHLO client.example\r\nMAIL FROM:<sender@remote.test>",
                         announced == 0 ? "" : absl::StrCat(" SIZE=", announced),
                         "\r\nRCPT TO:<user@example.test>\r\n"));
    EXPECT_FALSE(d.session().receiving_large_message()) << announced;
    d.Input("DATA\r\n");
    EXPECT_EQ(d.session().receiving_large_message(), announced >= kStreamChunkBytes / 4)
        << announced;
    d.Input(NumberedBody(kStreamChunkBytes / 4 + 100));
    EXPECT_TRUE(d.session().receiving_large_message()) << announced;
    d.Input(".\r\n");
    EXPECT_FALSE(d.session().receiving_large_message()) << announced;
  }
}

TEST(SessionDataTest, StoreErrorOnAPieceGives452AndAbortsTheStream) {
  Env env(BigConfig());
  env.fragment_results = {absl::ResourceExhaustedError("disk full")};
  const std::string body = NumberedBody(1 << 20);
  Transcript t =
      testing::Run(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\n",
                                     "MAIL FROM:<a@remote.test>\r\nRCPT TO:<user@example.test>\r\n"
                                     "DATA\r\nsmall\r\n.\r\n"));
  EXPECT_EQ(t.replies, BigHeadReplies() + std::string(k354) +
                           "452 4.3.1 Insufficient system storage\r\n" +
                           Lines({"250 2.1.0 Ok", "250 2.1.5 Ok"}) + std::string(k354) + Queued(2));
  EXPECT_EQ(t.aborted_streams, std::vector<std::string>{Id(1)});
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "small\r\n");
  EXPECT_EQ(t.stats.messages_rejected, 1u);
}

TEST(SessionDataTest, MessageRefusedAfterItsPiecesAbortsTheStream) {
  Env env(BigConfig());
  // A bare LF far into the message: pieces were handed over before it was seen.
  const std::string body = NumberedBody(700 * 1024) + "bare\nlf\r\n" + NumberedBody(1000);
  Transcript t = testing::Run(env, absl::StrCat(kHead, "DATA\r\n", body, ".\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, BigHeadReplies() + std::string(k354) + kBareReply + "221 2.0.0 Bye\r\n");
  EXPECT_GE(t.fragments, 2u);
  EXPECT_EQ(t.aborted_streams, std::vector<std::string>{Id(1)});
  EXPECT_TRUE(t.records.empty());
}

TEST(SessionDataTest, TimeoutInTheMiddleOfAStreamAbortsIt) {
  Env env(BigConfig());
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\n", NumberedBody(300 * 1024)));
  ASSERT_TRUE(d.out().fragment.has_value());
  const std::string id = d.out().fragment->id;
  d.out().Clear();
  d.session().OnFragmentStored(absl::OkStatus(), kT0, d.out());
  d.out().Clear();
  d.session().OnTimeout(kT0 + absl::Seconds(601), d.out());
  EXPECT_TRUE(d.session().closed());
  EXPECT_EQ(d.out().abort_streams, std::vector<std::string>{id});
  EXPECT_EQ(d.session().streaming_id(), "");
}

TEST(SessionDataTest, BdatChunksStreamToo) {
  Env env(BigConfig());
  const std::string body = NumberedBody(900 * 1024);
  const size_t half = body.size() / 2;
  Transcript t = testing::Run(
      env, absl::StrCat(kHead, "BDAT ", half, "\r\n", body.substr(0, half), "BDAT ",
                        body.size() - half, " LAST\r\n", body.substr(half), "QUIT\r\n"));
  EXPECT_EQ(t.replies, BigHeadReplies() + absl::StrCat("250 2.0.0 ", half, " octets received\r\n") +
                           Queued(1) + "221 2.0.0 Bye\r\n");
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, body);
  EXPECT_GE(t.records[0].fragments, 3u);
}

// --- BDAT ------------------------------------------------------------------------------------

TEST(SessionDataTest, BdatSingleLastChunk) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 5 LAST\r\nhelloNOOP\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + Queued(1) + std::string(kOk));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "hello");
  EXPECT_NE(t.records[0].envelope_json.find(R"("size":5,)"), std::string::npos);
}

TEST(SessionDataTest, BdatChunksAreJoinedAndCounted) {
  Env env;
  Transcript t = Check(
      env, absl::StrCat(kHead, "BDAT 7\r\nSubjectBDAT 9\r\n: x\r\n\r\nhi", "bdat 2 last\r\n\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() +
                           Lines({"250 2.0.0 7 octets received", "250 2.0.0 9 octets received"}) +
                           Queued(1));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "Subject: x\r\n\r\nhi\r\n");
}

TEST(SessionDataTest, BdatZeroLengthChunks) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 0\r\nBDAT 4\r\nab\r\nBDAT 0 LAST\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() +
                           Lines({"250 2.0.0 0 octets received", "250 2.0.0 4 octets received"}) +
                           Queued(1));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "ab\r\n");
  Transcript empty = Check(env, absl::StrCat(kHead, "BDAT 0 LAST\r\n"));
  EXPECT_EQ(empty.replies, HeadReplies() + Queued(1));
  ASSERT_EQ(empty.records.size(), 1u);
  EXPECT_EQ(empty.records[0].body, "");
}

TEST(SessionDataTest, BdatContentIsNeitherUnstuffedNorRunAsCommands) {
  Env env;
  const std::string content = "..x\r\n.\r\nMAIL FROM:<evil@remote.test>\r\nQUIT\r\n";
  Transcript t =
      Check(env, absl::StrCat(kHead, "BDAT ", content.size(), " LAST\r\n", content, "NOOP\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + Queued(1) + std::string(kOk));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, content);
  EXPECT_FALSE(t.closed);
}

TEST(SessionDataTest, BdatCrLfMayStraddleChunks) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd"));
  EXPECT_EQ(t.replies, HeadReplies() + "250 2.0.0 3 octets received\r\n" + Queued(1));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "ab\r\ncd");
}

TEST(SessionDataTest, BdatBareLfFailsTheTransactionUntilLast) {
  Env env;
  Transcript t =
      Check(env, absl::StrCat(kHead, "BDAT 4\r\na\nbcBDAT 2 LAST\r\nde",
                              "RCPT TO:<user@example.test>\r\nMAIL FROM:<a@remote.test>\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(kBareReply) + std::string(kBareReply) +
                           Lines({"503 5.5.1 Error: need MAIL command", "250 2.1.0 Ok"}));
  EXPECT_TRUE(t.records.empty());
  EXPECT_EQ(t.stats.messages_rejected, 1u);
}

TEST(SessionDataTest, BdatLastChunkEndingInCrIsRefused) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 3 LAST\r\nab\rNOOP\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(kBareReply) + std::string(kOk));
  EXPECT_TRUE(t.records.empty());
}

TEST(SessionDataTest, BdatLongLineIsRefused) {
  Env env;
  Transcript t = Check(
      env, absl::StrCat(kHead, "BDAT 1001 LAST\r\n", std::string(999, 'a'), "\r\n", "NOOP\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + std::string(kLongLineReply) + std::string(kOk));
}

TEST(SessionDataTest, BdatOverTheLimitIsReadThenRefused) {
  Env env;
  Transcript one =
      Check(env, absl::StrCat(kHead, "BDAT 10001 LAST\r\n", Filler(10001), "NOOP\r\n"));
  EXPECT_EQ(one.replies, HeadReplies() + std::string(kTooBigReply) + std::string(kOk));
  EXPECT_LE(one.max_memory, kMaxCommandLineOctets);  // never buffered
  Transcript two = Check(env, absl::StrCat(kHead, "BDAT 6000\r\n", Filler(6000),
                                           "BDAT 5000 LAST\r\n", Filler(5000), "NOOP\r\n"));
  EXPECT_EQ(two.replies, HeadReplies() + "250 2.0.0 6000 octets received\r\n" +
                             std::string(kTooBigReply) + std::string(kOk));
  EXPECT_TRUE(two.records.empty());
  EXPECT_LE(two.max_memory, kMaxMessageSize + kMaxCommandLineOctets);
}

TEST(SessionDataTest, BdatAnnouncingMoreThanTheCutIs552AndCloseWithoutReadingIt) {
  Env env;
  const uint64_t cut = StreamCutOctets(kMaxMessageSize);
  // Within the cut: read, then refused, and the session goes on (as above).
  Transcript within =
      Check(env, absl::StrCat(kHead, "BDAT 6000\r\n", Filler(6000), "BDAT ", cut - 6000,
                              " LAST\r\n", Filler(cut - 6000), "NOOP\r\n"));
  EXPECT_EQ(within.replies, HeadReplies() + "250 2.0.0 6000 octets received\r\n" +
                                std::string(kTooBigReply) + std::string(kOk));
  EXPECT_FALSE(within.closed);
  // One octet past it, counting the chunks already taken: answered at the BDAT command.
  Transcript past = Check(env, absl::StrCat(kHead, "BDAT 6000\r\n", Filler(6000), "BDAT ",
                                            cut - 5999, " LAST\r\nNOOP\r\n"));
  EXPECT_EQ(past.replies,
            HeadReplies() + "250 2.0.0 6000 octets received\r\n" + std::string(kTooBigReply));
  EXPECT_TRUE(past.closed);
  EXPECT_EQ(past.end_reason, "too-big-stream");
  EXPECT_EQ(past.stats.messages_rejected, 1u);
  // A huge chunk out of sequence is not read either.
  Transcript no_mail = Check(env, "EHLO c.example\r\nBDAT 9999999999999999999\r\nNOOP\r\n");
  EXPECT_EQ(no_mail.replies, Greeting() + EhloReply() + std::string(kTooBigReply));
  EXPECT_EQ(no_mail.end_reason, "too-big-stream");
  EXPECT_EQ(no_mail.stats.messages_rejected, 0u);
}

TEST(SessionDataTest, BdatOutOfSequenceStillConsumesItsChunk) {
  Env env;
  Transcript no_mail = Check(env, "EHLO c.example\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(no_mail.replies,
            Greeting() + EhloReply() + "503 5.5.1 Error: need MAIL command\r\n" + std::string(kOk));
  EXPECT_FALSE(no_mail.closed);
  Transcript no_rcpt = Check(env,
                             "EHLO c.example\r\nMAIL FROM:<a@remote.test>\r\n"
                             "RCPT TO:<a@remote.test>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(no_rcpt.replies,
            Greeting() + EhloReply() +
                Lines({"250 2.1.0 Ok", "554 5.7.1 <a@remote.test>: Relay access denied",
                       "503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"}));
  EXPECT_TRUE(no_rcpt.records.empty());
}

TEST(SessionDataTest, DataAfterBdatIs503) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 2\r\nabDATA\r\nBDAT 1 LAST\r\nc"));
  EXPECT_EQ(t.replies, HeadReplies() +
                           Lines({"250 2.0.0 2 octets received",
                                  "503 5.5.1 Error: DATA not allowed after BDAT"}) +
                           Queued(1));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.records[0].body, "abc");
}

TEST(SessionDataTest, BdatWithBadSyntaxHangsUp) {
  const std::vector<std::string> args = {
      "", " x", " 5 FIRST", " -1", " 5LAST", " 99999999999999999999", " 5 LAST extra"};
  for (const std::string& arg : args) {
    SCOPED_TRACE(arg);
    Env env;
    Transcript t = Check(env, absl::StrCat(kHead, "BDAT", arg, "\r\nQUIT\r\n"));
    EXPECT_EQ(t.replies, HeadReplies() + "521 5.5.4 Syntax: BDAT count [LAST]\r\n");
    EXPECT_TRUE(t.closed);
    EXPECT_EQ(t.end_reason, "bad-bdat");
  }
}

TEST(SessionDataTest, PipelinedBdatTransactions) {
  Env env;
  Transcript t =
      Check(env, absl::StrCat(kHead, "BDAT 3 LAST\r\none",
                              "MAIL FROM:<b@remote.test>\r\nRCPT TO:<v@example.test>\r\n",
                              "BDAT 3 LAST\r\ntwoRSET\r\nRSET\r\nQUIT\r\n"));
  EXPECT_EQ(t.replies, HeadReplies() + Queued(1) + Lines({"250 2.1.0 Ok", "250 2.1.5 Ok"}) +
                           Queued(2) + std::string(kOk) + std::string(kOk) + "221 2.0.0 Bye\r\n");
  ASSERT_EQ(t.records.size(), 2u);
  EXPECT_EQ(t.records[0].body, "one");
  EXPECT_EQ(t.records[1].body, "two");
}

TEST(SessionDataTest, RsetDuringBdatDropsTheMessage) {
  Env env;
  Transcript t = Check(env, absl::StrCat(kHead, "BDAT 3\r\nabcRSET\r\nBDAT 1 LAST\r\nx"));
  EXPECT_EQ(t.replies, HeadReplies() + Lines({"250 2.0.0 3 octets received", "250 2.0.0 Ok",
                                              "503 5.5.1 Error: need MAIL command"}));
  EXPECT_TRUE(t.records.empty());
}

// --- Timeouts --------------------------------------------------------------------------------

TEST(SessionDataTest, IdleDeadlineMovesOnlyOnCompleteCommands) {
  Env env;
  Driver d(env);
  d.Start();
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(300));
  d.Input("NO", kT0 + absl::Seconds(10));
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(300));  // slowloris gains nothing
  d.Input("OP\r\n", kT0 + absl::Seconds(20));
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(320));
  d.Take();
  d.session().OnTimeout(kT0 + absl::Seconds(319), d.out());  // stale timer: ignored
  EXPECT_EQ(d.Take(), "");
  EXPECT_FALSE(d.session().closed());
  d.session().OnTimeout(kT0 + absl::Seconds(320), d.out());
  EXPECT_EQ(d.Take(), "421 4.4.2 mx.example.test Error: timeout exceeded\r\n");
  EXPECT_TRUE(d.out().close);
  EXPECT_TRUE(d.session().closed());
  EXPECT_EQ(d.session().end_reason(), "timeout");
}

TEST(SessionDataTest, DataDeadlineCoversTheWholeTransfer) {
  Env env;
  Driver d(env);
  const absl::Time t1 = kT0 + absl::Seconds(30);
  d.Start();
  d.Input(kHead, kT0);
  d.Input("DATA\r\n", t1);
  EXPECT_EQ(d.session().deadline(), t1 + absl::Seconds(600));
  d.Input("Subject: slow\r\n\r\nline\r\n", t1 + absl::Seconds(500));
  EXPECT_EQ(d.session().deadline(), t1 + absl::Seconds(600));
  d.Input(".\r\n", t1 + absl::Seconds(550));
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(d.session().deadline(), absl::InfiniteFuture());
  d.session().OnTimeout(t1 + absl::Hours(10), d.out());  // nothing while the store works
  EXPECT_FALSE(d.session().closed());
  d.Delivered(absl::OkStatus(), t1 + absl::Seconds(560));
  EXPECT_EQ(d.session().deadline(), t1 + absl::Seconds(860));
}

TEST(SessionDataTest, TimeoutDuringDataDropsTheMessage) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\nSubject: x\r\n\r\nhalf"));
  d.Take();
  d.session().OnTimeout(kT0 + absl::Seconds(600), d.out());
  EXPECT_EQ(d.Take(), "421 4.4.2 mx.example.test Error: timeout exceeded\r\n");
  EXPECT_FALSE(d.out().deliver.has_value());
  EXPECT_TRUE(d.session().closed());
  d.Input(".\r\n");
  EXPECT_FALSE(d.out().deliver.has_value());
  EXPECT_EQ(d.Take(), "");
  EXPECT_EQ(d.session().MemoryUsageForTest(), 0u);
}

TEST(SessionDataTest, BdatChunkGetsTheDataDeadline) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(kHead);
  d.Input("BDAT 10\r\nabc", kT0 + absl::Seconds(5));
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(605));
  d.Input("defg", kT0 + absl::Seconds(50));
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(605));
  d.Input("hij", kT0 + absl::Seconds(60));
  EXPECT_EQ(d.session().deadline(), kT0 + absl::Seconds(360));
}

// --- Shutdown --------------------------------------------------------------------------------

TEST(SessionDataTest, ShutdownClosesAnIdleSessionAtOnce) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input("EHLO c.example\r\n");
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(d.out().close);
  EXPECT_EQ(d.session().end_reason(), "shutdown");
}

TEST(SessionDataTest, ShutdownBeforeTheGreetingCloses) {
  Env env;
  Driver d(env);
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(d.session().closed());
}

TEST(SessionDataTest, ShutdownMidTransactionAnswersTheNextCommand) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input("EHLO c.example\r\nMAIL FROM:<a@remote.test>\r\n");
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "");
  EXPECT_FALSE(d.session().closed());
  d.Input("RCPT TO:<u@example.test>\r\nNOOP\r\n");
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(d.session().closed());
}

TEST(SessionDataTest, ShutdownWaitsForAPartialCommand) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input("NO");
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "");
  d.Input("OP\r\n");
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
}

TEST(SessionDataTest, ShutdownLetsDataFinishThenAnswersTheNextCommand) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "DATA\r\nfirst half\r\n"));
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "");
  d.Input("second half\r\n.\r\n");
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(d.out().deliver->body, "first half\r\nsecond half\r\n");
  d.out().Clear();
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), Queued(1));
  EXPECT_FALSE(d.session().closed());
  d.Input("MAIL FROM:<a@remote.test>\r\n");
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(d.session().closed());
}

TEST(SessionDataTest, ShutdownStillAnswersQuitWith221) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input("EHLO c.example\r\nMAIL FROM:<a@remote.test>\r\n");
  d.session().OnShutdown(kT0, d.out());
  d.Take();
  d.Input("QUIT\r\n");
  EXPECT_EQ(d.Take(), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(d.session().end_reason(), "quit");
}

TEST(SessionDataTest, ShutdownLetsABdatTransferFinish) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input(absl::StrCat(kHead, "BDAT 3\r\nabc"));
  d.Take();
  d.session().OnShutdown(kT0, d.out());
  EXPECT_EQ(d.Take(), "");
  d.Input("BDAT 2 LAST\r\nde");
  ASSERT_TRUE(d.out().deliver.has_value());
  EXPECT_EQ(d.out().deliver->body, "abcde");
  d.out().Clear();
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), Queued(1));
  d.Input("BDAT 1 LAST\r\nx");  // a new transaction may not start
  EXPECT_EQ(d.Take(), "421 4.3.2 Service shutting down\r\n");
}

TEST(SessionDataTest, ClosedSessionIgnoresEverything) {
  Env env;
  Driver d(env);
  d.Start();
  d.Input("QUIT\r\n");
  d.Take();
  d.out().Clear();
  d.Input("NOOP\r\n");
  d.session().OnTimeout(kT0 + absl::Hours(1), d.out());
  d.session().OnShutdown(kT0, d.out());
  d.Delivered(absl::OkStatus());
  EXPECT_EQ(d.Take(), "");
  EXPECT_FALSE(d.out().close);
  EXPECT_EQ(d.session().end_reason(), "quit");
}

}  // namespace
}  // namespace ringmx::smtp
