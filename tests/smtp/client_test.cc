// Transcripts of the outbound engine: the hop's replies go in split at every byte boundary; the
// bytes the engine sends and the results it reports are compared exactly.
#include "smtp/client.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include <gtest/gtest.h>

namespace ringmx::smtp {
namespace {

// One step of a transcript: something happens, and the engine must send `sends` and report
// `events` (results "rcpt<i>=<status>:<code>[L]" (L: local), "done", "tls", "close").
struct Step {
  enum class Kind { kHop, kMessage, kQuit, kTlsUp, kTlsFailed, kClosed };
  Kind kind;
  std::string hop;  // kHop: the hop's bytes
  std::string sends;
  std::string events;
};

Step Hop(std::string bytes, std::string sends, std::string events = "") {
  return {Step::Kind::kHop, std::move(bytes), std::move(sends), std::move(events)};
}
Step Msg(std::string sends, std::string events = "") {
  return {Step::Kind::kMessage, "", std::move(sends), std::move(events)};
}
Step Quit(std::string sends) { return {Step::Kind::kQuit, "", std::move(sends), ""}; }
Step TlsUp(std::string sends) { return {Step::Kind::kTlsUp, "", std::move(sends), ""}; }
Step Closed(std::string events) { return {Step::Kind::kClosed, "", "", std::move(events)}; }

std::string StatusName(RecipientResult::Status s) {
  switch (s) {
    case RecipientResult::Status::kSent:
      return "sent";
    case RecipientResult::Status::kDeferred:
      return "deferred";
    case RecipientResult::Status::kBounced:
      return "bounced";
  }
  return "?";
}

void Describe(const ClientOutput& out, std::string& events) {
  auto add = [&](const std::string& e) {
    if (!events.empty()) events.push_back(' ');
    events.append(e);
  };
  for (const RecipientResult& r : out.results) {
    add(absl::StrCat("rcpt", r.index, "=", StatusName(r.status), ":", r.reply.code,
                     r.local ? "L" : ""));
  }
  if (out.message_done) add("done");
  if (out.start_tls) add("tls");
  if (out.close) add("close");
}

// Runs `steps` with every hop input split in two at `split` (capped to its length); messages
// come from `messages` in order. Returns the last output's error.
std::string Run(const ClientConfig& config, const std::vector<OutboundMessage>& messages,
                const std::vector<Step>& steps, size_t split) {
  Client client(config);
  size_t next_message = 0;
  std::string last_error;
  for (size_t n = 0; n < steps.size(); ++n) {
    const Step& step = steps[n];
    ClientOutput out;
    std::string sends;
    std::string events;
    auto take = [&] {
      sends += out.send;
      Describe(out, events);
      if (!out.error.empty()) last_error = out.error;
      out.Clear();
    };
    switch (step.kind) {
      case Step::Kind::kHop: {
        const size_t k = std::min(split, step.hop.size());
        client.OnInput(std::string_view(step.hop).substr(0, k), out);
        take();
        client.OnInput(std::string_view(step.hop).substr(k), out);
        take();
        break;
      }
      case Step::Kind::kMessage:
        EXPECT_TRUE(client.can_send()) << "step " << n;
        if (!client.can_send()) return last_error;
        client.Send(messages.at(next_message++), out);
        take();
        break;
      case Step::Kind::kQuit:
        client.Quit(out);
        take();
        break;
      case Step::Kind::kTlsUp:
        client.OnTlsEstablished(out);
        take();
        break;
      case Step::Kind::kTlsFailed:
        client.OnTlsFailed("certificate", out);
        take();
        break;
      case Step::Kind::kClosed:
        client.OnClosed("lost connection", out);
        take();
        break;
    }
    EXPECT_EQ(sends, step.sends) << "step " << n << " split " << split;
    EXPECT_EQ(events, step.events) << "step " << n << " split " << split;
    if (::testing::Test::HasFailure()) return last_error;
  }
  return last_error;
}

// Runs the transcript at every split of its longest hop input; returns the error of the run.
std::string RunAllSplits(const ClientConfig& config, const std::vector<OutboundMessage>& messages,
                         const std::vector<Step>& steps) {
  size_t longest = 0;
  for (const Step& s : steps) longest = std::max(longest, s.hop.size());
  std::string error;
  for (size_t split = 0; split <= longest; ++split) {
    error = Run(config, messages, steps, split);
    if (::testing::Test::HasFailure()) break;
  }
  return error;
}

ClientConfig Smtp() {
  ClientConfig c;
  c.helo_name = "mx.example.test";
  return c;
}

ClientConfig Lmtp() {
  ClientConfig c = Smtp();
  c.protocol = ClientProtocol::kLmtp;
  return c;
}

constexpr char kBody[] = "Received: by mx\r\nSubject: hi\r\n\r\nhello\r\n";

OutboundMessage Message(std::vector<std::string> rcpts) {
  OutboundMessage m;
  m.sender = "alice@example.org";
  m.recipients = std::move(rcpts);
  m.body = {kBody};
  return m;
}

const std::string kGreeting = "220 hop.example.test ESMTP\r\n";
const std::string kEhlo = "EHLO mx.example.test\r\n";
const std::string kEhloPlain = "250-hop.example.test\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n";
const std::string kEhloPipe =
    "250-hop.example.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
const std::string kMail = "MAIL FROM:<alice@example.org>";
const std::string kData = absl::StrCat(kBody, ".\r\n");

TEST(ClientTest, SmtpWithoutPipeliningOneCommandAtATime) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Msg(""),
      Hop(kEhloPlain, kMail + " SIZE=39\r\n"),
      Hop("250 2.1.0 Ok\r\n", "RCPT TO:<a@x.test>\r\n"),
      Hop("250 2.1.5 Ok\r\n", "RCPT TO:<b@x.test>\r\n"),
      Hop("550 5.1.1 unknown\r\n", "DATA\r\n", "rcpt1=bounced:550"),
      Hop("354 go\r\n", kData),
      Hop("250 2.0.0 queued as X\r\n", "", "rcpt0=sent:250 done"),
      Quit("QUIT\r\n"),
      Hop("221 bye\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test", "b@x.test"})}, steps), "");
}

TEST(ClientTest, SmtpPipelinesMailRcptAndDataThenWaitsFor354) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("250 2.0.0 ok\r\n", "", "rcpt0=sent:250 rcpt1=sent:250 done"),
      // The connection is reused for the next message, without RSET.
      Msg(kMail + "\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("451 4.3.0 try later\r\n", "", "rcpt0=deferred:451 done"),
      Quit("QUIT\r\n"),
      Hop("221 bye\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test", "b@x.test"}), Message({"c@x.test"})}, steps),
            "");
}

TEST(ClientTest, LmtpReportsOneResultPerAcceptedRecipientInOrder) {
  const std::vector<Step> steps = {
      Hop(kGreeting, "LHLO mx.example.test\r\n"),
      Hop("250-dovecot\r\n250 8BITMIME\r\n", ""),
      // LMTP always pipelines (RFC 2033 section 4.1).
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
                  "RCPT TO:<d@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n250 ok\r\n354 go\r\n", kData,
          "rcpt1=bounced:550"),
      Hop("250 2.0.0 a saved\r\n452 4.2.2 c over quota\r\n552 5.2.2 d full\r\n", "",
          "rcpt0=sent:250 rcpt2=deferred:452 rcpt3=bounced:552 done"),
  };
  EXPECT_EQ(
      RunAllSplits(Lmtp(), {Message({"a@x.test", "b@x.test", "c@x.test", "d@x.test"})}, steps), "");
}

TEST(ClientTest, LmtpHopClosingAfterSomeRepliesDefersTheRest) {
  const std::vector<Step> steps = {
      Hop(kGreeting, "LHLO mx.example.test\r\n"),
      Hop("250 dovecot\r\n", ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("250 2.0.0 a saved\r\n", "", "rcpt0=sent:250"),
      Closed("rcpt1=deferred:451L done close"),
  };
  EXPECT_EQ(RunAllSplits(Lmtp(), {Message({"a@x.test", "b@x.test"})}, steps),
            "lost connection while waiting for the reply to the end of the data");
}

TEST(ClientTest, RefusedMailFailsEveryRecipientAndNeedsNoRset) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"),
      Hop("451 4.3.0 busy\r\n503 no mail\r\n", "", "rcpt0=deferred:451 rcpt1=deferred:451"),
      Hop("503 no mail\r\n554 no valid recipients\r\n", "", "done"),
      Msg(kMail + "\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"),
      Hop("550 5.7.1 sender refused\r\n503 no\r\n503 no\r\n", "", "rcpt0=bounced:550 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test", "b@x.test"}), Message({"c@x.test"})}, steps),
            "");
}

TEST(ClientTest, RefusedMailWithoutPipelining) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPlain, ""),
      Msg(kMail + " SIZE=39\r\n"),
      Hop("452 4.3.1 full\r\n", "", "rcpt0=deferred:452 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, EveryRcptRefusedSendsRsetAndNoData) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPlain, ""),
      Msg(kMail + " SIZE=39\r\n"),
      Hop("250 ok\r\n", "RCPT TO:<a@x.test>\r\n"),
      Hop("450 4.2.0 greylisted\r\n", "RSET\r\n", "rcpt0=deferred:450 done"),
      Msg(""),  // waits for the RSET's reply
      Hop("250 ok\r\n", kMail + " SIZE=39\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"}), Message({"b@x.test"})}, steps), "");
}

TEST(ClientTest, PipelinedDataAcceptedAfterEveryRcptFailedSendsAnEmptyMessage) {
  // RFC 2920 section 3.1: end the data at once and ignore the reply.
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n550 5.1.1 unknown\r\n354 go\r\n", ".\r\n", "rcpt0=bounced:550"),
      Hop("554 no valid recipients\r\n", "", "done"),
      Quit("QUIT\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, RefusedDataFailsTheAcceptedRecipientsAndResets) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n554 5.5.0 no data for you\r\n", "RSET\r\n",
          "rcpt1=bounced:550 rcpt0=bounced:554 done"),
      Hop("250 ok\r\n", ""),
      Quit("QUIT\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test", "b@x.test"})}, steps), "");
}

TEST(ClientTest, TransientDataRefusalDefers) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPlain, ""),
      Msg(kMail + " SIZE=39\r\n"),
      Hop("250 ok\r\n", "RCPT TO:<a@x.test>\r\n"),
      Hop("250 ok\r\n", "DATA\r\n"),
      Hop("451 4.3.0 not now\r\n", "RSET\r\n", "rcpt0=deferred:451 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, PermanentRefusalAfterTheDataBounces) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("554-5.7.1 spam\r\n554 5.7.1 go away\r\n", "", "rcpt0=bounced:554 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, EhloRefusedFallsBackToHeloAndRefusesToDowngrade) {
  OutboundMessage eight = Message({"a@x.test", "b@x.test"});
  eight.body_8bit = true;
  OutboundMessage utf8 = Message({"c@x.test"});
  utf8.smtputf8 = true;
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop("502 5.5.2 what?\r\n", "HELO mx.example.test\r\n"),
      Hop("250 hop.example.test\r\n", ""),
      // Nothing is sent: the hop cannot take these messages as they are.
      Msg("", "rcpt0=bounced:554L rcpt1=bounced:554L done"),
      Msg("", "rcpt0=bounced:554L done"),
      Msg(kMail + "\r\n"),  // a 7-bit message goes, without SIZE (HELO: no extensions)
      Hop("250 ok\r\n", "RCPT TO:<d@x.test>\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {eight, utf8, Message({"d@x.test"})}, steps), "");
}

TEST(ClientTest, DowngradeRefusalNamesTheMissingExtension) {
  OutboundMessage utf8 = Message({"a@x.test"});
  utf8.smtputf8 = true;
  Client client(Smtp());
  ClientOutput out;
  client.OnInput(kGreeting, out);
  client.OnInput(kEhloPlain, out);
  out.Clear();
  client.Send(utf8, out);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].reply.enhanced, "5.6.7");
  EXPECT_EQ(out.results[0].reply.Text(),
            "the next hop does not support SMTPUTF8, which this message needs (no downgrade)");
  EXPECT_TRUE(out.send.empty());
}

TEST(ClientTest, EightBitAndUtf8MessagesGoWithTheirParameters) {
  OutboundMessage m = Message({"a@x.test"});
  m.body_8bit = true;
  m.smtputf8 = true;
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + " BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {m}, steps), "");
}

TEST(ClientTest, DotStuffsLinesThatStartWithAPeriodAcrossPieces) {
  OutboundMessage m = Message({"a@x.test"});
  m.body = {"Subject: x\r\n\r\n.one\r\n", "..two\r\nmid.dot\r\n", ".", "\r\n.", "x"};
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
      // The last line lacked its CR LF: the engine ends it before the final dot.
      Hop("250 ok\r\n250 ok\r\n354 go\r\n",
          "Subject: x\r\n\r\n..one\r\n...two\r\nmid.dot\r\n..\r\n..x\r\n.\r\n"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {m}, steps), "");
}

TEST(ClientTest, AppendDotStuffedKeepsBytesOtherwise) {
  std::string out;
  bool at_line_start = true;
  AppendDotStuffed(".a\r\nb.\r\n.", at_line_start, out);
  EXPECT_EQ(out, "..a\r\nb.\r\n..");
  EXPECT_FALSE(at_line_start);
}

TEST(ClientTest, ChunkingSendsTheBytesAsStoredInOneLastChunk) {
  OutboundMessage m = Message({"a@x.test", "b@x.test"});
  m.body = {".dot\r\n", "end\r\n"};
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop("250-hop\r\n250-PIPELINING\r\n250 CHUNKING\r\n", ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"),
      Hop("250 ok\r\n250 ok\r\n", "", ""),
      Hop("250 ok\r\n", "BDAT 11 LAST\r\n.dot\r\nend\r\n"),
      Hop("250 2.0.0 ok\r\n", "", "rcpt0=sent:250 rcpt1=sent:250 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {m}, steps), "");
}

TEST(ClientTest, MalformedReplyIsAProtocolErrorThatEndsTheConnection) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\nhello there\r\n", "", "rcpt0=deferred:451L done close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps),
            "protocol error: a reply line that does not start with a reply code");
}

TEST(ClientTest, UnexpectedReplyIsAProtocolError) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe + "250 extra\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {}, steps), "protocol error: an unexpected reply: 250 extra");
}

TEST(ClientTest, HopClosingMidTransactionDefersEveryOpenRecipient) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n550 no\r\n", "", "rcpt1=bounced:550"),
      Closed("rcpt0=deferred:451L done close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test", "b@x.test"})}, steps),
            "lost connection while waiting for the replies to MAIL/RCPT");
}

TEST(ClientTest, ClosingAnIdleConnectionIsNoError) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Closed("close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {}, steps), "");
}

TEST(ClientTest, UnsolicitedServiceClosingWhileIdleClosesTheConnection) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Hop("421 4.4.2 idle too long\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {}, steps),
            "the next hop closed the connection: 421 4.4.2 idle too long");
}

TEST(ClientTest, RefusingGreetingDefersTheMessageAndQuits) {
  const std::vector<Step> steps = {
      Msg(""),
      Hop("554 5.7.1 go away\r\n", "QUIT\r\n", "rcpt0=deferred:554 done"),
      Hop("221 bye\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps),
            "the next hop refused the connection: 554 5.7.1 go away");
}

TEST(ClientTest, ServiceClosingReplyToRcptDefersAndCloses) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, ""),
      Msg(kMail + "\r\nRCPT TO:<a@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n421 4.3.2 shutting down\r\n", "", "rcpt0=deferred:421 done close"),
  };
  RunAllSplits(Smtp(), {Message({"a@x.test"})}, steps);
}

TEST(ClientTest, StartTlsWhenOfferedThenEhloAgain) {
  ClientConfig config = Smtp();
  config.tls = ClientTls::kOpportunistic;
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop("250-hop\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "STARTTLS\r\n"),
      Hop("220 2.0.0 go ahead\r\n", "", "tls"),
      TlsUp(kEhlo),
      Hop("250-hop\r\n250 8BITMIME\r\n", ""),
      Msg(kMail + "\r\n"),  // no PIPELINING after TLS: the plaintext offer is forgotten
  };
  EXPECT_EQ(RunAllSplits(config, {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, PlaintextAfterTheStartTlsReplyIsRefused) {
  ClientConfig config = Smtp();
  config.tls = ClientTls::kOpportunistic;
  Client client(config);
  ClientOutput out;
  client.OnInput(kGreeting, out);
  client.OnInput("250-hop\r\n250 STARTTLS\r\n", out);
  out.Clear();
  client.OnInput("220 go ahead\r\n250 injected\r\n", out);
  EXPECT_TRUE(out.close);
  EXPECT_FALSE(out.start_tls);
  EXPECT_EQ(out.error, "protocol error: bytes after the reply to STARTTLS");
}

TEST(ClientTest, OpportunisticTlsGoesOnInPlaintextWhenRefused) {
  ClientConfig config = Smtp();
  config.tls = ClientTls::kOpportunistic;
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop("250-hop\r\n250 STARTTLS\r\n", "STARTTLS\r\n"),
      Hop("454 4.7.0 TLS not available\r\n", ""),
      Msg(kMail + "\r\n"),
  };
  EXPECT_EQ(RunAllSplits(config, {Message({"a@x.test"})}, steps), "");
}

TEST(ClientTest, RequiredTlsNotOfferedDefersAndQuits) {
  ClientConfig config = Smtp();
  config.tls = ClientTls::kRequired;
  const std::vector<Step> steps = {
      Msg(""),
      Hop(kGreeting, kEhlo),
      Hop(kEhloPipe, "QUIT\r\n", "rcpt0=deferred:451L done"),
      Hop("221 bye\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(config, {Message({"a@x.test"})}, steps),
            "the next hop does not offer STARTTLS, which the route requires");
}

TEST(ClientTest, TlsFailureDefers) {
  ClientConfig config = Smtp();
  config.tls = ClientTls::kRequired;
  const std::vector<Step> steps = {
      Msg(""),
      Hop(kGreeting, kEhlo),
      Hop("250-hop\r\n250 STARTTLS\r\n", "STARTTLS\r\n"),
      Hop("220 go\r\n", "", "tls"),
      {Step::Kind::kTlsFailed, "", "", "rcpt0=deferred:451L done close"},
  };
  EXPECT_EQ(RunAllSplits(config, {Message({"a@x.test"})}, steps),
            "TLS with the next hop failed: certificate");
}

TEST(ClientTest, ProbeAsksRcptThenResets) {
  OutboundMessage probe;
  probe.recipients = {"known@x.test", "unknown@x.test"};
  probe.probe = true;
  const std::vector<Step> steps = {
      Hop(kGreeting, "LHLO mx.example.test\r\n"),
      Hop("250 dovecot\r\n", ""),
      Msg("MAIL FROM:<>\r\nRCPT TO:<known@x.test>\r\nRCPT TO:<unknown@x.test>\r\n"),
      Hop("250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n", "RSET\r\n",
          "rcpt1=bounced:550 rcpt0=sent:250 done"),
      Hop("250 ok\r\n", ""),
  };
  EXPECT_EQ(RunAllSplits(Lmtp(), {probe}, steps), "");
}

// A message with every RFC 3461 parameter: RET, an ENVID that needs xtext, and per recipient
// NOTIFY and ORCPT (one recipient with none).
OutboundMessage DsnMessage() {
  OutboundMessage m = Message({"a@x.test", "b@x.test", "c@x.test"});
  m.ret = DsnRet::kHdrs;
  m.envid = "Q 1+2=3";
  m.rcpt_dsn.resize(3);
  m.rcpt_dsn[0].notify.given = true;
  m.rcpt_dsn[0].notify.flags = DsnNotify::kSuccess | DsnNotify::kFailure;
  m.rcpt_dsn[0].orcpt = DsnOrcpt{"rfc822", "bob+sales@x.test"};
  m.rcpt_dsn[2].notify.given = true;
  m.rcpt_dsn[2].notify.never = true;
  return m;
}

TEST(ClientTest, PassesDsnParametersToAHopThatOffersDsn) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Hop("250-hop.example.test\r\n250-PIPELINING\r\n250 DSN\r\n", ""),
      Msg(kMail + " RET=HDRS ENVID=Q+201+2B2+3D3\r\n"
                  "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bsales@x.test\r\n"
                  "RCPT TO:<b@x.test>\r\n"
                  "RCPT TO:<c@x.test> NOTIFY=NEVER\r\n"
                  "DATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("250 2.0.0 ok\r\n", "", "rcpt0=sent:250 rcpt1=sent:250 rcpt2=sent:250 done"),
      Quit("QUIT\r\n"),
      Hop("221 bye\r\n", "", "close"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {DsnMessage()}, steps), "");
}

TEST(ClientTest, LmtpHopThatOffersDsnGetsTheParametersToo) {
  OutboundMessage m = DsnMessage();
  m.ret = DsnRet::kFull;
  m.envid.clear();
  m.rcpt_dsn.resize(1);  // shorter than the recipients: the rest send nothing
  const std::vector<Step> steps = {
      Hop(kGreeting, "LHLO mx.example.test\r\n"),
      Hop("250-dovecot\r\n250-DSN\r\n250 8BITMIME\r\n", ""),
      Msg(kMail + " RET=FULL\r\n"
                  "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bsales@x.test\r\n"
                  "RCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"),
      Hop("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", kData),
      Hop("250 ok\r\n250 ok\r\n452 full\r\n", "",
          "rcpt0=sent:250 rcpt1=sent:250 rcpt2=deferred:452 done"),
  };
  EXPECT_EQ(RunAllSplits(Lmtp(), {m}, steps), "");
}

TEST(ClientTest, HopWithoutDsnGetsNoDsnParameters) {
  const std::vector<Step> steps = {
      Hop(kGreeting, kEhlo),
      Msg(""),
      // No DSN in the reply (SIZE is offered, so MAIL carries SIZE and nothing of RFC 3461).
      Hop(kEhloPlain, kMail + " SIZE=39\r\n"),
      Hop("250 2.1.0 Ok\r\n", "RCPT TO:<a@x.test>\r\n"),
      Hop("250 2.1.5 Ok\r\n", "RCPT TO:<b@x.test>\r\n"),
      Hop("250 2.1.5 Ok\r\n", "RCPT TO:<c@x.test>\r\n"),
      Hop("250 2.1.5 Ok\r\n", "DATA\r\n"),
      Hop("354 go\r\n", kData),
      Hop("250 2.0.0 ok\r\n", "", "rcpt0=sent:250 rcpt1=sent:250 rcpt2=sent:250 done"),
  };
  EXPECT_EQ(RunAllSplits(Smtp(), {DsnMessage()}, steps), "");
}

TEST(ClientTest, ProbeSendsNoDsnParametersEvenWhenOffered) {
  OutboundMessage probe = DsnMessage();
  probe.sender.clear();
  probe.probe = true;
  const std::vector<Step> steps = {
      Hop(kGreeting, "LHLO mx.example.test\r\n"),
      Hop("250-dovecot\r\n250 DSN\r\n", ""),
      Msg("MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"),
      Hop("250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n", "RSET\r\n",
          "rcpt2=bounced:550 rcpt0=sent:250 rcpt1=sent:250 done"),
      Hop("250 ok\r\n", ""),
  };
  EXPECT_EQ(RunAllSplits(Lmtp(), {probe}, steps), "");
}

TEST(ClientTest, LearnsTheHopsExtensions) {
  Client client(Smtp());
  ClientOutput out;
  client.OnInput(kGreeting, out);
  client.OnInput(
      "250-hop\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
      "250-SIZE 52428800\r\n250-DSN\r\n250 STARTTLS\r\n",
      out);
  const HopExtensions& ext = client.extensions();
  EXPECT_TRUE(ext.pipelining && ext.chunking && ext.eightbitmime && ext.smtputf8 && ext.dsn &&
              ext.starttls && ext.size);
  EXPECT_EQ(ext.max_size, 52428800u);
  EXPECT_EQ(client.waiting_for(), Client::Waiting::kIdle);  // tls = none: no STARTTLS
}

TEST(ClientTest, KeepsRcptRepliesWithTheFinalResult) {
  Client client(Smtp());
  ClientOutput out;
  client.OnInput(kGreeting, out);
  client.OnInput(kEhloPipe, out);
  const OutboundMessage m = Message({"a@x.test"});
  client.Send(m, out);
  out.Clear();
  client.OnInput("250 ok\r\n250 2.1.5 recipient ok\r\n354 go\r\n250 2.0.0 queued\r\n", out);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].rcpt_reply.OneLine(), "250 2.1.5 recipient ok");
  EXPECT_EQ(out.results[0].reply.OneLine(), "250 2.0.0 queued");
  EXPECT_EQ(client.waiting_for(), Client::Waiting::kIdle);
  EXPECT_TRUE(client.can_send());
}

}  // namespace
}  // namespace ringmx::smtp
