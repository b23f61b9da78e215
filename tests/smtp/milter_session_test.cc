// Tests of smtp/milter/session.h and smtp/milter/message.h: negotiation, every stage, the reply
// rules, failures, header splitting and applying the changes, as byte transcripts.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

#include "smtp/milter/codec.h"
#include "smtp/milter/message.h"
#include "smtp/milter/session.h"

namespace ringmx::smtp::milter {
namespace {

using namespace std::string_literals;

std::string Len(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}
std::string Pkt(char command, std::string_view data) {
  return Len(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}
std::string U32(uint32_t v) { return Len(v); }

std::string OptNeg(uint32_t actions, uint32_t protocol, std::string tail = "") {
  return Pkt('O', U32(6) + U32(actions) + U32(protocol) + tail);
}

// The packets in `wire` as "C:data" strings, for readable expectations.
std::vector<std::string> Packets(std::string_view wire) {
  std::vector<std::string> out;
  while (wire.size() >= 5) {
    const uint32_t n = (uint32_t{static_cast<uint8_t>(wire[0])} << 24) |
                       (uint32_t{static_cast<uint8_t>(wire[1])} << 16) |
                       (uint32_t{static_cast<uint8_t>(wire[2])} << 8) |
                       uint32_t{static_cast<uint8_t>(wire[3])};
    out.push_back(std::string(1, wire[4]) + ":" + std::string(wire.substr(5, n - 1)));
    wire.remove_prefix(4 + n);
  }
  EXPECT_TRUE(wire.empty());
  return out;
}

constexpr uint32_t kRspamdProtocol =
    proto::kSkip | proto::kNrConnect | proto::kNrHelo | proto::kNrMail | proto::kNrRcpt |
    proto::kNrData | proto::kNrUnknown | proto::kNrHeader | proto::kNrEoh | proto::kNrBody;
constexpr uint32_t kRspamdActions = action::kAddHeaders | action::kChangeHeaders |
                                    action::kAddRcpt | action::kDeleteRcpt | action::kChangeFrom |
                                    action::kChangeBody | action::kQuarantine;

ConnectInfo Client() {
  return ConnectInfo{"client.example.org", Family::kInet, 40000, "192.0.2.1"};
}

class MilterSessionTest : public testing::Test {
 protected:
  MilterSessionTest() : session_(SessionConfig{"rspamd", DefaultAction::kTempfail}) {
    session_.SetMacro("j", "mx.example.test");
    session_.SetMacro("{daemon_name}", "ringmx");
    session_.SetMacro("{client_addr}", "192.0.2.1");
  }

  // Connects and negotiates with `optneg`; returns what was sent after the OPTNEG answer.
  std::vector<std::string> Negotiate(const std::string& optneg) {
    session_.Connect(Client(), out_);
    EXPECT_EQ(Packets(out_.send),
              std::vector<std::string>{"O:" + U32(6) + U32(0x1FF) + U32(0x001FFFFF)});
    EXPECT_EQ(session_.waiting_for(), Session::Waiting::kCommand);
    EXPECT_FALSE(out_.verdict.has_value());
    out_.Clear();
    session_.OnInput(optneg, out_);
    return Packets(Take());
  }
  std::string Take() {
    std::string s = std::move(out_.send);
    out_.send.clear();
    return s;
  }
  Verdict TakeVerdict() {
    EXPECT_TRUE(out_.verdict.has_value());
    Verdict v = out_.verdict.value_or(Verdict{});
    out_.verdict.reset();
    return v;
  }

  // Drives ContentHeaders, ContentBody and ContentEnd over `message` (the client's message) as the
  // engine becomes idle; Input() and feeding go on with it after each reply.
  void Content(std::string message) {
    message_ = std::move(message);
    content_step_ = 0;
    Pump();
  }
  void Pump() {
    while (content_step_ < 3 && session_.idle() && !out_.verdict.has_value()) {
      const std::string_view m = message_;
      const size_t body = SplitHeaders(m).body_offset;
      switch (content_step_++) {
        case 0:
          session_.ContentHeaders(m.substr(0, body), out_);
          break;
        case 1:
          session_.ContentBody(m.substr(body), out_);
          break;
        default:
          session_.ContentEnd(out_);
          break;
      }
    }
  }
  void Input(std::string_view bytes) {
    session_.OnInput(bytes, out_);
    Pump();
  }

  Session session_;
  Output out_;
  std::string message_;
  int content_step_ = 3;
};

const std::string kConnectPacket =
    "C:client.example.org\0"
    "4\x9c\x40"
    "192.0.2.1\0"s;
const std::string kConnectMacros =
    "D:Cj\0mx.example.test\0{daemon_name}\0ringmx\0{client_addr}\0"
    "192.0.2.1\0"s;

TEST_F(MilterSessionTest, RspamdNoReplyFlagsNeverWait) {
  EXPECT_EQ(Negotiate(OptNeg(kRspamdActions, kRspamdProtocol)),
            (std::vector<std::string>{kConnectMacros, kConnectPacket}));
  Verdict v = TakeVerdict();
  EXPECT_EQ(v.stage, Stage::kConnect);
  EXPECT_EQ(v.kind, Verdict::Kind::kContinue);
  EXPECT_TRUE(session_.idle());

  session_.Helo("client.example.org", out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.SetMacro("i", "Q1");
  session_.SetMacro("{mail_addr}", "a@example.org");
  session_.Mail("<a@example.org>", std::vector<std::string>{"SIZE=40"}, out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.SetMacro("{rcpt_addr}", "b@example.test");
  session_.Rcpt("<b@example.test>", {}, out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.Data(out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  EXPECT_EQ(Packets(Take()),
            (std::vector<std::string>{
                "H:client.example.org\0"s, "D:Mi\0Q1\0{mail_addr}\0a@example.org\0"s,
                "M:<a@example.org>\0SIZE=40\0"s, "D:Ri\0Q1\0{rcpt_addr}\0b@example.test\0"s,
                "R:<b@example.test>\0"s, "D:Ti\0Q1\0"s, "T:"}));

  Content("Subject: hi\r\nX-Long: a\r\n b\r\n\r\nbody\r\n");
  EXPECT_FALSE(out_.verdict.has_value());
  EXPECT_EQ(session_.waiting_for(), Session::Waiting::kContent);
  EXPECT_EQ(Packets(Take()),
            (std::vector<std::string>{"L:Subject\0hi\0"s, "L:X-Long\0a\n b\0"s, "D:Ni\0Q1\0"s,
                                      "N:", "B:body\r\n", "D:Ei\0Q1\0"s, "E:"}));
  session_.OnInput(
      Pkt('h', "X-Spam\0Yes\0"s) + Pkt('p', "") + Pkt('y', "554 5.7.1 Gtube pattern\0"s), out_);
  EXPECT_TRUE(out_.progress);
  v = TakeVerdict();
  EXPECT_EQ(v.stage, Stage::kContent);
  EXPECT_EQ(v.kind, Verdict::Kind::kReject);
  EXPECT_TRUE(v.custom);
  EXPECT_EQ(v.reply.ToWire(), "554 5.7.1 Gtube pattern\r\n");
  ASSERT_EQ(v.modifications.size(), 1u);
  EXPECT_EQ(v.modifications[0].name, "X-Spam");
  EXPECT_TRUE(session_.idle());

  // The message ended at EOB: no ABORT is owed.
  session_.Abort(out_);
  EXPECT_TRUE(out_.send.empty());
  session_.Quit(out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"Q:"});
  EXPECT_TRUE(out_.close);
}

// A milter that answers every stage, fed its replies one byte at a time.
TEST_F(MilterSessionTest, WholeTransactionWithRepliesByteByByte) {
  const auto feed = [&](const std::string& wire) {
    for (char c : wire) Input(std::string_view(&c, 1));
  };
  session_.Connect(Client(), out_);
  out_.Clear();
  feed(OptNeg(action::kAll, 0));
  EXPECT_EQ(Packets(Take()), (std::vector<std::string>{kConnectMacros, kConnectPacket}));
  EXPECT_FALSE(out_.verdict.has_value());
  feed(Pkt('c', ""));
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);

  session_.Helo("h", out_);
  EXPECT_FALSE(out_.verdict.has_value());
  feed(Pkt('c', ""));
  EXPECT_EQ(TakeVerdict().stage, Stage::kHelo);
  session_.Mail("<a@example.org>", {}, out_);
  feed(Pkt('c', ""));
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.Rcpt("<x@example.test>", {}, out_);
  feed(Pkt('r', ""));
  Verdict v = TakeVerdict();
  EXPECT_EQ(v.stage, Stage::kRcpt);
  EXPECT_EQ(v.kind, Verdict::Kind::kReject);
  EXPECT_EQ(v.reply.ToWire(), "550 5.7.1 Command rejected\r\n");
  // A refused recipient does not end the message.
  session_.Rcpt("<b@example.test>", {}, out_);
  feed(Pkt('t', ""));
  v = TakeVerdict();
  EXPECT_EQ(v.kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(v.reply.ToWire(), "451 4.7.1 Service unavailable - try again later\r\n");
  session_.Rcpt("<c@example.test>", {}, out_);
  feed(Pkt('c', ""));
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.Data(out_);
  feed(Pkt('c', ""));
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  Take();

  Content("A: 1\r\nB: 2\r\n\r\nx\r\n");
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"L:A\0"
                                                      "1\0"s});
  feed(Pkt('c', ""));
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"L:B\0"
                                                      "2\0"s});
  feed(Pkt('c', ""));
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"N:"});
  feed(Pkt('c', ""));
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"B:x\r\n"});
  feed(Pkt('c', ""));
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"E:"});
  EXPECT_FALSE(out_.verdict.has_value());
  feed(Pkt('i', U32(0) + "X-First\0"
                         "1\0"s) +
       Pkt('m', U32(1) + "B\0\0"s) + Pkt('b', "new\r\n") + Pkt('b', "body\r\n") +
       Pkt('2', "<d@example.test>\0N=1\0"s) + Pkt('-', "<c@example.test>\0"s) +
       Pkt('e', "<s@example.org>\0"s) + Pkt('q', "held\0"s) + Pkt('a', ""));
  v = TakeVerdict();
  EXPECT_EQ(v.kind, Verdict::Kind::kAccept);
  ASSERT_EQ(v.modifications.size(), 7u);
  EXPECT_EQ(v.modifications[2].kind, Modification::Kind::kReplaceBody);
  EXPECT_EQ(v.modifications[2].value, "new\r\nbody\r\n");

  const std::string stored = "Received: by us\r\n\tid Q1\r\nA: 1\r\nB: 2\r\n\r\nx\r\n";
  ModifiedMessage m = ApplyModifications(stored, v.modifications, session_.header_leading_space());
  EXPECT_TRUE(m.bytes_changed);
  EXPECT_EQ(m.bytes, "Received: by us\r\n\tid Q1\r\nX-First: 1\r\nA: 1\r\n\r\nnew\r\nbody\r\n");
  EXPECT_EQ(m.envelope.sender, "s@example.org");
  EXPECT_EQ(m.envelope.added_recipients,
            (std::vector<EnvelopeChanges::Recipient>{{"d@example.test", "N=1"}}));
  EXPECT_EQ(m.envelope.deleted_recipients, std::vector<std::string>{"c@example.test"});
  EXPECT_EQ(m.envelope.quarantine, "held");
}

// The body streams in: each piece goes as soon as the engine is idle, answered chunk by chunk.
TEST_F(MilterSessionTest, ContentArrivesInPieces) {
  Negotiate(OptNeg(action::kAddHeaders, proto::kNrConnect));
  TakeVerdict();
  const std::string headers = "A: 1\r\n\r\n";
  session_.ContentHeaders(headers, out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"L:A\0"
                                                      "1\0"s});
  EXPECT_EQ(session_.waiting_for(), Session::Waiting::kContent);
  session_.OnInput(Pkt('c', ""), out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"N:"});
  EXPECT_FALSE(session_.idle());
  session_.OnInput(Pkt('c', ""), out_);
  EXPECT_TRUE(session_.idle());
  EXPECT_EQ(session_.waiting_for(), Session::Waiting::kNothing);
  EXPECT_FALSE(out_.verdict.has_value());
  const std::string first = "abc\r\n";
  session_.ContentBody(first, out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"B:abc\r\n"});
  session_.OnInput(Pkt('c', ""), out_);
  EXPECT_TRUE(session_.idle());
  EXPECT_FALSE(out_.verdict.has_value());
  const std::string second = "def\r\n";
  session_.ContentBody(second, out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"B:def\r\n"});
  session_.OnInput(Pkt('p', ""), out_);  // progress: still waiting
  EXPECT_TRUE(out_.progress);
  EXPECT_FALSE(session_.idle());
  session_.OnInput(Pkt('c', ""), out_);
  session_.ContentEnd(out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"E:"});
  session_.OnInput(Pkt('h', "X-A\0b\0"s) + Pkt('c', ""), out_);
  Verdict v = TakeVerdict();
  EXPECT_EQ(v.stage, Stage::kContent);
  EXPECT_EQ(v.kind, Verdict::Kind::kContinue);
  ASSERT_EQ(v.modifications.size(), 1u);
  EXPECT_TRUE(session_.idle());
}

// A refusal before end of message decides it: the rest of the body is not sent, EOB neither.
TEST_F(MilterSessionTest, RefusalAtAHeaderEndsTheMessageEarly) {
  Negotiate(OptNeg(0, proto::kNrConnect));
  TakeVerdict();
  const std::string headers = "A: 1\r\nB: 2\r\n\r\n";
  session_.ContentHeaders(headers, out_);
  Take();
  session_.OnInput(Pkt('r', ""), out_);
  Verdict v = TakeVerdict();
  EXPECT_EQ(v.stage, Stage::kContent);
  EXPECT_EQ(v.kind, Verdict::Kind::kReject);
  EXPECT_TRUE(session_.idle());
  session_.ContentBody("more\r\n", out_);
  EXPECT_TRUE(out_.send.empty());
  EXPECT_FALSE(out_.verdict.has_value());
  session_.ContentEnd(out_);
  EXPECT_TRUE(out_.send.empty());
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
}

TEST_F(MilterSessionTest, AcceptAtConnectSendsNothingMore) {
  Negotiate(OptNeg(0, 0));
  session_.OnInput(Pkt('a', ""), out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  session_.Helo("h", out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  session_.Mail("<a@b>", {}, out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  Content("A: b\r\n\r\n");
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  EXPECT_TRUE(out_.send.empty());
}

TEST_F(MilterSessionTest, RefusalAtHeloStaysForTheConnection) {
  Negotiate(OptNeg(0, 0));
  session_.OnInput(Pkt('c', ""), out_);
  TakeVerdict();
  session_.Helo("h", out_);
  session_.OnInput(Pkt('y', "421-4.7.0 go\r\n421 4.7.0 away\0"s), out_);
  Verdict v = TakeVerdict();
  EXPECT_EQ(v.kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(v.reply.lines.size(), 2u);
  Take();
  session_.Mail("<a@b>", {}, out_);
  Verdict again = TakeVerdict();
  EXPECT_EQ(again.kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(again.stage, Stage::kMail);
  EXPECT_EQ(again.reply.ToWire(), v.reply.ToWire());
  EXPECT_TRUE(out_.send.empty());
}

TEST_F(MilterSessionTest, AcceptOrDiscardAfterMailSkipsTheRestOfTheMessage) {
  Negotiate(OptNeg(0, 0));
  session_.OnInput(Pkt('c', ""), out_);
  session_.Helo("h", out_);
  session_.OnInput(Pkt('c', ""), out_);
  session_.Mail("<a@b>", {}, out_);
  session_.OnInput(Pkt('d', ""), out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kDiscard);
  Take();
  session_.Rcpt("<c@d>", {}, out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  session_.Data(out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  EXPECT_TRUE(out_.send.empty());
  // The next transaction aborts the old one at the milter and starts afresh.
  session_.Mail("<e@f>", {}, out_);
  EXPECT_EQ(Packets(Take()), (std::vector<std::string>{"A:", "M:<e@f>\0"s}));
  session_.OnInput(Pkt('a', ""), out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kAccept);
  session_.Abort(out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"A:"});
  session_.Abort(out_);  // nothing open any more
  EXPECT_TRUE(out_.send.empty());
}

TEST_F(MilterSessionTest, DiscardAtConnectIsContinue) {
  Negotiate(OptNeg(0, 0));
  session_.OnInput(Pkt('d', ""), out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
}

TEST_F(MilterSessionTest, NoFlagsSkipEventsButSendTheirMacros) {
  EXPECT_EQ(Negotiate(OptNeg(0, proto::kNoConnect | proto::kNoHelo | proto::kNoMail |
                                    proto::kNoHeaders | proto::kNoBody | proto::kNoEoh)),
            std::vector<std::string>{kConnectMacros});
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.Helo("h", out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  session_.Mail("<a@b>", {}, out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
  EXPECT_TRUE(Take().empty());  // no macros set for these stages
  session_.Rcpt("<c@d>", {}, out_);
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"R:<c@d>\0"s});
  session_.OnInput(Pkt('c', ""), out_);
  TakeVerdict();
  Content("A: 1\r\n\r\nbody\r\n");
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"E:"});
}

TEST_F(MilterSessionTest, MilterMacroListsReplaceOurs) {
  session_.SetMacro("{mail_addr}", "a@b");
  session_.SetMacro("i", "Q9");
  // Only MAIL gets a list: CONNECT gets no macros at all.
  EXPECT_EQ(Negotiate(OptNeg(0, proto::kNrConnect, U32(2) + "{mail_addr},{client_addr}\0"s)),
            std::vector<std::string>{kConnectPacket});
  TakeVerdict();
  session_.Mail("<a@b>", {}, out_);
  EXPECT_EQ(Packets(Take()), (std::vector<std::string>{"D:M{mail_addr}\0a@b\0{client_addr}\0"
                                                       "192.0.2.1\0"s,
                                                       "M:<a@b>\0"s}));
}

TEST_F(MilterSessionTest, SkipStopsTheBody) {
  Negotiate(OptNeg(0, proto::kSkip | proto::kNrConnect | proto::kNoHeaders | proto::kNoEoh));
  TakeVerdict();
  const std::string body(3 * kMaxBodyChunkBytes + 10, 'x');
  Content("\r\n" + body);
  std::vector<std::string> sent = Packets(Take());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].size(), 2 + kMaxBodyChunkBytes);
  Input(Pkt('s', ""));
  EXPECT_EQ(Packets(Take()), std::vector<std::string>{"E:"});
  session_.OnInput(Pkt('c', ""), out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kContinue);
}

TEST_F(MilterSessionTest, BodyGoesInChunksOfAtMost65535) {
  Negotiate(OptNeg(0, proto::kNrConnect | proto::kNrBody | proto::kNoHeaders | proto::kNoEoh));
  TakeVerdict();
  const std::string body(2 * kMaxBodyChunkBytes + 1, 'y');
  Content("\r\n" + body);
  std::vector<std::string> sent = Packets(Take());
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0].size(), 2 + kMaxBodyChunkBytes);
  EXPECT_EQ(sent[1].size(), 2 + kMaxBodyChunkBytes);
  EXPECT_EQ(sent[2], "B:y");
  EXPECT_EQ(sent[3], "E:");
}

TEST_F(MilterSessionTest, ABodyInPartsGoesInOrderAndNoChunkSpansTwoParts) {
  Negotiate(OptNeg(0, proto::kNrConnect | proto::kNrBody | proto::kNoHeaders | proto::kNoEoh));
  TakeVerdict();
  // A body piece held in blocks, as the session hands it over: an empty part is skipped.
  const std::string a(kMaxBodyChunkBytes + 5, 'a');
  const std::string b = "bb";
  const std::string c(100, 'c');
  const std::vector<std::string_view> parts = {a, b, "", c};
  session_.ContentHeaders("\r\n", out_);
  ASSERT_TRUE(session_.idle());
  session_.ContentBody(parts, out_);
  ASSERT_TRUE(session_.idle());  // no BODY replies: all sent at once
  session_.ContentEnd(out_);
  std::vector<std::string> sent = Packets(Take());
  ASSERT_EQ(sent.size(), 5u);
  EXPECT_EQ(sent[0], "B:" + a.substr(0, kMaxBodyChunkBytes));
  EXPECT_EQ(sent[1], "B:aaaaa");
  EXPECT_EQ(sent[2], "B:bb");
  EXPECT_EQ(sent[3], "B:" + c);
  EXPECT_EQ(sent[4], "E:");
}

TEST_F(MilterSessionTest, ChangeBeforeEndOfMessageFailsWithTheDefaultAction) {
  Negotiate(OptNeg(action::kAll, 0));
  session_.OnInput(Pkt('h', "X\0y\0"s), out_);
  Verdict v = TakeVerdict();
  EXPECT_TRUE(v.failed);
  EXPECT_EQ(v.kind, Verdict::Kind::kTempfail);
  EXPECT_EQ(v.reply.ToWire(), "451 4.7.1 Service unavailable - try again later\r\n");
  EXPECT_TRUE(out_.close);
  EXPECT_NE(out_.error.find("milter rspamd:"), std::string::npos) << out_.error;
  EXPECT_TRUE(session_.finished());
  out_.Clear();
  session_.Helo("h", out_);
  EXPECT_EQ(TakeVerdict().kind, Verdict::Kind::kTempfail);
  EXPECT_TRUE(out_.send.empty());
}

TEST_F(MilterSessionTest, ChangeNotNegotiatedFails) {
  Negotiate(OptNeg(action::kAddHeaders, proto::kNrConnect | proto::kNoHeaders | proto::kNoEoh));
  TakeVerdict();
  Content("\r\n");
  Take();
  session_.OnInput(Pkt('-', "<a@b>\0"s), out_);
  EXPECT_TRUE(TakeVerdict().failed);
  EXPECT_NE(out_.error.find("without having negotiated"), std::string::npos) << out_.error;
}

// A milter cannot make the session hold more than max_changes_bytes (the session passes the
// message size limit): changes past it are a failure, with the default action.
TEST(MilterSessionFailTest, ChangesPastTheLimitFailWithTheDefaultAction) {
  for (const bool over : {false, true}) {
    Session session(SessionConfig{"big", DefaultAction::kTempfail, 100});
    Output out;
    session.Connect(Client(), out);
    out.Clear();
    session.OnInput(OptNeg(action::kAll, proto::kNrConnect | proto::kNoHeaders | proto::kNoEoh),
                    out);
    ASSERT_TRUE(out.verdict.has_value());
    out.Clear();
    session.ContentHeaders("\r\n", out);
    ASSERT_TRUE(session.idle());
    session.ContentBody("", out);
    session.ContentEnd(out);
    ASSERT_FALSE(out.verdict.has_value());
    out.Clear();
    session.OnInput(Pkt('b', std::string(60, 'x')), out);
    EXPECT_FALSE(out.verdict.has_value());
    session.OnInput(Pkt('b', std::string(over ? 41 : 40, 'y')) + Pkt('c', ""), out);
    ASSERT_TRUE(out.verdict.has_value()) << over;
    if (!over) {
      EXPECT_FALSE(out.verdict->failed);
      ASSERT_EQ(out.verdict->modifications.size(), 1u);
      EXPECT_EQ(out.verdict->modifications[0].value.size(), 100u);
      continue;
    }
    EXPECT_TRUE(out.verdict->failed);
    EXPECT_EQ(out.verdict->kind, Verdict::Kind::kTempfail);
    EXPECT_NE(out.error.find("changes of more than 100 bytes"), std::string::npos) << out.error;
  }
}

TEST(MilterSessionFailTest, EachDefaultAction) {
  const std::pair<DefaultAction, Verdict::Kind> cases[] = {
      {DefaultAction::kTempfail, Verdict::Kind::kTempfail},
      {DefaultAction::kReject, Verdict::Kind::kReject},
      {DefaultAction::kAccept, Verdict::Kind::kAccept}};
  for (const auto& [action, kind] : cases) {
    Session s(SessionConfig{"m", action});
    Output out;
    s.Connect(Client(), out);
    s.OnError("connection refused", out);
    ASSERT_TRUE(out.verdict.has_value());
    EXPECT_EQ(out.verdict->kind, kind);
    EXPECT_TRUE(out.verdict->failed);
    EXPECT_EQ(out.error, "milter m: connection refused");
    out.Clear();
    s.OnError("again", out);  // already failed: nothing new
    EXPECT_FALSE(out.verdict.has_value());
    s.Quit(out);
    EXPECT_TRUE(out.send.empty());
  }
}

TEST(MilterSessionFailTest, BadNegotiations) {
  const std::string cases[] = {
      Pkt('O', U32(7) + U32(0) + U32(0)),      // version above ours
      Pkt('O', U32(1) + U32(0) + U32(0)),      // version below 2
      Pkt('O', U32(6) + U32(0x200) + U32(0)),  // action not offered
      Pkt('c', ""),                            // not an OPTNEG
      Pkt('O', U32(6)),                        // malformed
      Len(200000) + "O",                       // oversized
  };
  for (const std::string& wire : cases) {
    Session s(SessionConfig{"m", DefaultAction::kTempfail});
    Output out;
    s.Connect(Client(), out);
    out.Clear();
    s.OnInput(wire, out);
    ASSERT_TRUE(out.verdict.has_value()) << testing::PrintToString(wire);
    EXPECT_TRUE(out.verdict->failed);
    EXPECT_EQ(out.verdict->stage, Stage::kConnect);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.send.empty());
  }
}

TEST(MilterSessionFailTest, UnaskedReplyFails) {
  Session s(SessionConfig{"m", DefaultAction::kReject});
  Output out;
  s.Connect(Client(), out);
  s.OnInput(OptNeg(0, proto::kNrConnect), out);
  out.Clear();
  s.OnInput(Pkt('c', ""), out);
  EXPECT_TRUE(s.finished());
  EXPECT_FALSE(out.verdict.has_value());  // nothing was pending
  EXPECT_NE(out.error.find("unexpected reply 'c'"), std::string::npos) << out.error;
}

TEST(MilterSessionFailTest, IgnoresDataSizeBitsAndUnknownProtocolBits) {
  Session s(SessionConfig{"m", DefaultAction::kTempfail});
  Output out;
  s.Connect(Client(), out);
  s.OnInput(OptNeg(0, proto::kNrConnect | proto::kMaxDataSizeBits | 0x08000000), out);
  ASSERT_TRUE(out.verdict.has_value());
  EXPECT_FALSE(out.verdict->failed);
}

TEST(MilterSessionFailTest, OldMilterGetsNoDataOrUnknown) {
  Session s(SessionConfig{"m", DefaultAction::kTempfail});
  Output out;
  s.Connect(Client(), out);
  s.OnInput(Pkt('O', U32(2) + U32(0) + U32(proto::kNoConnect)), out);
  out.Clear();
  s.Data(out);
  EXPECT_EQ(out.verdict->kind, Verdict::Kind::kContinue);
  s.Unknown("XFOO", out);
  EXPECT_EQ(out.verdict->kind, Verdict::Kind::kContinue);
  EXPECT_TRUE(out.send.empty());
}

TEST(MilterSessionFailTest, RejectedRecipientsWhenAsked) {
  Session s(SessionConfig{"m", DefaultAction::kTempfail});
  Output out;
  s.Connect(Client(), out);
  s.OnInput(OptNeg(0, proto::kRcptRej | proto::kNrConnect | proto::kNrRcpt), out);
  ASSERT_TRUE(s.wants_rejected_rcpts());
  out.Clear();
  s.SetMacro("{rcpt_addr}", "kept");
  Reply ours;
  ours.code = 550;
  ours.enhanced = "5.1.1";
  ours.lines = {"5.1.1 No such user"};
  s.RejectedRcpt("<x@y>", {}, ours, out);
  EXPECT_EQ(Packets(out.send),
            (std::vector<std::string>{"D:R{rcpt_addr}\0No such user\0{rcpt_host}\0"
                                      "5.1.1\0{rcpt_mailer}\0error\0"s,
                                      "R:<x@y>\0"s}));
  out.Clear();
  s.Rcpt("<z@y>", {}, out);
  EXPECT_EQ(Packets(out.send), (std::vector<std::string>{"D:R{rcpt_addr}\0kept\0"s, "R:<z@y>\0"s}));
}

TEST(MilterSessionFailTest, QuitWhileWaiting) {
  Session s(SessionConfig{"m", DefaultAction::kTempfail});
  Output out;
  s.Connect(Client(), out);
  out.Clear();
  s.Quit(out);
  EXPECT_EQ(Packets(out.send), std::vector<std::string>{"Q:"});
  EXPECT_TRUE(out.close);
  EXPECT_TRUE(s.finished());
}

// ---------------------------------------------------------------------------------------------
// The header splitter and ApplyModifications.

TEST(MilterMessageTest, SplitsFoldedHeaders) {
  const std::string m = "A: 1\r\nLong : x\r\n\ty\r\n z\r\nB:2\r\n\r\nbody\r\n";
  SplitMessage s = SplitHeaders(m);
  ASSERT_EQ(s.fields.size(), 3u);
  EXPECT_EQ(s.fields[0].name, "A");
  EXPECT_EQ(s.fields[0].raw_value, " 1");
  EXPECT_EQ(s.fields[1].name, "Long");
  EXPECT_EQ(s.fields[1].raw_value, " x\r\n\ty\r\n z");
  EXPECT_EQ(s.fields[1].raw, "Long : x\r\n\ty\r\n z\r\n");
  EXPECT_EQ(s.fields[2].raw_value, "2");
  EXPECT_EQ(m.substr(s.body_offset), "body\r\n");
  EXPECT_EQ(s.header_end + 2, s.body_offset);
  EXPECT_EQ(MilterHeaderValue(s.fields[1].raw_value, false), "x\n\ty\n z");
  EXPECT_EQ(MilterHeaderValue(s.fields[1].raw_value, true), " x\n\ty\n z");
}

TEST(MilterMessageTest, BodyStartsAtANonHeaderLine) {
  SplitMessage s = SplitHeaders("A: 1\nnot a header\nmore\n");
  ASSERT_EQ(s.fields.size(), 1u);
  EXPECT_EQ(s.header_end, 5u);
  EXPECT_EQ(s.body_offset, 5u);
  s = SplitHeaders(" leading fold\r\nA: 1\r\n");
  EXPECT_TRUE(s.fields.empty());
  EXPECT_EQ(s.body_offset, 0u);
  s = SplitHeaders("A: 1\r\nB: 2");
  ASSERT_EQ(s.fields.size(), 2u);
  EXPECT_EQ(s.fields[1].raw, "B: 2");
  EXPECT_EQ(s.body_offset, 10u);
  s = SplitHeaders("");
  EXPECT_TRUE(s.fields.empty());
}

TEST(MilterMessageTest, ClientMessageSkipsOurReceived) {
  EXPECT_EQ(ClientMessage("Received: from x\r\n\tby y\r\nA: 1\r\n\r\nb\r\n"), "A: 1\r\n\r\nb\r\n");
}

constexpr std::string_view kStored =
    "Received: from c by mx\r\n\tid Q1\r\n"
    "From: a@example.org\r\n"
    "Subject: one\r\n"
    "X-Tag: 1\r\n"
    "Subject: two\r\n"
    "\r\n"
    "Body line\r\n";

TEST(MilterMessageTest, AppliesHeaderChanges) {
  using K = Modification::Kind;
  const std::vector<Modification> mods = {
      {K::kAddHeader, 0, "X-Spam", "yes\n\tscore 5"},
      {K::kInsertHeader, 0, "DKIM-Signature", "v=1"},
      {K::kInsertHeader, 99, "X-Last", "z"},
      {K::kChangeHeader, 2, "subject", "TWO"},
      {K::kChangeHeader, 0, "X-Tag", ""},
      {K::kChangeHeader, 3, "Subject", ""},     // no third Subject: nothing
      {K::kChangeHeader, 1, "X-New", "added"},  // no such field: added
  };
  ModifiedMessage m = ApplyModifications(kStored, mods);
  EXPECT_EQ(m.bytes,
            "Received: from c by mx\r\n\tid Q1\r\n"
            "DKIM-Signature: v=1\r\n"
            "From: a@example.org\r\n"
            "Subject: one\r\n"
            "Subject: TWO\r\n"
            "X-Spam: yes\r\n\tscore 5\r\n"
            "X-Last: z\r\n"
            "X-New: added\r\n"
            "\r\n"
            "Body line\r\n");
  EXPECT_TRUE(m.bytes_changed);
}

TEST(MilterMessageTest, LeadingSpaceAndFoldSafety) {
  using K = Modification::Kind;
  const std::vector<Modification> mods = {{K::kAddHeader, 0, "X-A", " v\nno-fold\n\nX-Evil: 1"}};
  EXPECT_EQ(ApplyModifications("R: x\r\n\r\nb\r\n", mods, true).bytes,
            "R: x\r\nX-A: v\r\n no-fold\r\n \r\n X-Evil: 1\r\n\r\nb\r\n");
}

TEST(MilterMessageTest, ReplacesTheBodyAndLeavesUnchangedBytesAlone) {
  using K = Modification::Kind;
  const std::vector<Modification> mods = {{K::kReplaceBody, 0, "", "new\nbody"},
                                          {K::kQuarantine, 0, "", "virus"}};
  ModifiedMessage m = ApplyModifications(kStored, mods);
  EXPECT_TRUE(m.bytes.ends_with("Subject: two\r\n\r\nnew\r\nbody\r\n")) << m.bytes;
  EXPECT_EQ(m.envelope.quarantine, "virus");

  const std::vector<Modification> none = {{K::kDeleteRecipient, 0, "<b@example.test>", ""}};
  m = ApplyModifications(kStored, none);
  EXPECT_FALSE(m.bytes_changed);
  EXPECT_EQ(m.bytes, kStored);
  EXPECT_EQ(m.envelope.deleted_recipients, std::vector<std::string>{"b@example.test"});
}

TEST(MilterMessageTest, AddsToAMessageWithoutEmptyLine) {
  using K = Modification::Kind;
  const std::vector<Modification> mods = {{K::kAddHeader, 0, "X", "1"}};
  EXPECT_EQ(ApplyModifications("R: r\r\nA: 1", mods).bytes, "R: r\r\nA: 1\r\nX: 1\r\n");
  EXPECT_EQ(ApplyModifications("R: r\r\nbody text\r\n", mods).bytes,
            "R: r\r\nX: 1\r\nbody text\r\n");
}

}  // namespace
}  // namespace ringmx::smtp::milter
