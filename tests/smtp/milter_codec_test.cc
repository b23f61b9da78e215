// Tests of smtp/milter/codec.h: exact packets for every command, the reply decoder split at every
// offset, each reply type and each malformed shape.
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "smtp/milter/codec.h"

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

TEST(MilterCodecTest, EncodesOptNeg) {
  std::string out;
  AppendOptNeg(6, 0x1FF, 0x001FFFFF, out);
  EXPECT_EQ(out, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff"s);
}

TEST(MilterCodecTest, EncodesMacros) {
  std::string out;
  const std::vector<Macro> macros = {{"j", "mx.example.test"}, {"{daemon_name}", "mx"}};
  AppendMacros('C', macros, out);
  EXPECT_EQ(out, Pkt('D', "Cj\0mx.example.test\0{daemon_name}\0mx\0"s));
}

TEST(MilterCodecTest, EncodesConnectForEachFamily) {
  std::string out;
  AppendConnect("client.example.org", Family::kInet, 54321, "192.0.2.1", out);
  EXPECT_EQ(out, Pkt('C',
                     "client.example.org\0"
                     "4\xd4\x31"
                     "192.0.2.1\0"s));
  out.clear();
  AppendConnect("[2001:db8::1]", Family::kInet6, 25, "2001:db8::1", out);
  EXPECT_EQ(out, Pkt('C',
                     "[2001:db8::1]\0"
                     "6\0\x19"
                     "2001:db8::1\0"s));
  out.clear();
  AppendConnect("localhost", Family::kUnix, 999, "/run/s", out);
  EXPECT_EQ(out, Pkt('C', "localhost\0L\0\0/run/s\0"s));
  out.clear();
  AppendConnect("unknown", Family::kUnknown, 1, "x", out);
  EXPECT_EQ(out, Pkt('C', "unknown\0U"s));
}

TEST(MilterCodecTest, EncodesEnvelopeCommands) {
  std::string out;
  AppendHelo("client.example.org", out);
  EXPECT_EQ(out, Pkt('H', "client.example.org\0"s));
  out.clear();
  const std::vector<std::string> args = {"SIZE=120", "BODY=8BITMIME"};
  AppendMail("<a@example.org>", args, out);
  EXPECT_EQ(out, Pkt('M', "<a@example.org>\0SIZE=120\0BODY=8BITMIME\0"s));
  out.clear();
  AppendRcpt("<b@example.test>", {}, out);
  EXPECT_EQ(out, Pkt('R', "<b@example.test>\0"s));
  out.clear();
  AppendMail("<>", {}, out);
  EXPECT_EQ(out, Pkt('M', "<>\0"s));
}

TEST(MilterCodecTest, EncodesEmptyCommands) {
  std::string out;
  AppendData(out);
  AppendEoh(out);
  AppendEob(out);
  AppendAbort(out);
  AppendQuit(out);
  AppendQuitNc(out);
  EXPECT_EQ(
      out, Pkt('T', "") + Pkt('N', "") + Pkt('E', "") + Pkt('A', "") + Pkt('Q', "") + Pkt('K', ""));
}

TEST(MilterCodecTest, EncodesHeaderBodyAndUnknown) {
  std::string out;
  AppendHeader("Subject", "hello\n\tworld", out);
  EXPECT_EQ(out, Pkt('L', "Subject\0hello\n\tworld\0"s));
  out.clear();
  AppendBody("line\r\n\0binary"s, out);
  EXPECT_EQ(out, Pkt('B', "line\r\n\0binary"s));
  out.clear();
  const std::string big(kMaxBodyChunkBytes, 'x');
  AppendBody(big, out);
  EXPECT_EQ(out.size(), 5 + kMaxBodyChunkBytes);
  EXPECT_EQ(out.substr(0, 5), "\0\1\0\0B"s);
  out.clear();
  AppendUnknown("XFOO bar", out);
  EXPECT_EQ(out, Pkt('U', "XFOO bar\0"s));
}

TEST(MilterCodecTest, CutsStringsAtNul) {
  std::string out;
  AppendHelo("evil\0more"s, out);
  EXPECT_EQ(out, Pkt('H', "evil\0"s));
}

// Feeds `wire` split at `cut` (and byte by byte when cut is 0) and collects the replies.
absl::StatusOr<std::vector<MilterReply>> DecodeAll(std::string_view wire, size_t cut) {
  ReplyDecoder decoder;
  std::vector<MilterReply> replies;
  std::vector<std::string_view> pieces;
  if (cut == 0) {
    for (size_t i = 0; i < wire.size(); ++i) pieces.push_back(wire.substr(i, 1));
  } else {
    pieces = {wire.substr(0, cut), wire.substr(cut)};
  }
  for (std::string_view piece : pieces) {
    while (!piece.empty()) {
      absl::StatusOr<std::optional<MilterReply>> r = decoder.Next(piece);
      if (!r.ok()) return r.status();
      if (!r->has_value()) break;
      replies.push_back(**r);
    }
  }
  EXPECT_FALSE(decoder.mid_packet());
  return replies;
}

TEST(MilterCodecTest, DecodesAStreamSplitAtEveryOffset) {
  const std::string wire = Pkt('O', "\0\0\0\x06\0\0\0\x03\0\x1f\0\0\0\0\0\0{client_addr} i\0"s) +
                           Pkt('c', "") + Pkt('p', "") + Pkt('h', "X-Spam\0yes\0"s) +
                           Pkt('y', "554 5.7.1 Gtube pattern\0"s) + Pkt('a', "");
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    SCOPED_TRACE(cut);
    absl::StatusOr<std::vector<MilterReply>> replies = DecodeAll(wire, cut);
    ASSERT_TRUE(replies.ok()) << replies.status();
    ASSERT_EQ(replies->size(), 6u);
    const MilterReply& o = (*replies)[0];
    EXPECT_EQ(o.kind, MilterReply::Kind::kOptNeg);
    EXPECT_EQ(o.optneg.version, 6u);
    EXPECT_EQ(o.optneg.actions, 3u);
    EXPECT_EQ(o.optneg.protocol, 0x001F0000u);
    ASSERT_TRUE(o.optneg.macros[0].has_value());
    EXPECT_EQ(*o.optneg.macros[0], "{client_addr} i");
    EXPECT_FALSE(o.optneg.macros[1].has_value());
    EXPECT_EQ((*replies)[1].kind, MilterReply::Kind::kContinue);
    EXPECT_EQ((*replies)[2].kind, MilterReply::Kind::kProgress);
    EXPECT_EQ((*replies)[3].kind, MilterReply::Kind::kModification);
    EXPECT_EQ((*replies)[3].modification.name, "X-Spam");
    EXPECT_EQ((*replies)[4].kind, MilterReply::Kind::kReplyCode);
    EXPECT_EQ((*replies)[4].reply.code, 554);
    EXPECT_EQ((*replies)[4].reply.enhanced, "5.7.1");
    EXPECT_EQ((*replies)[5].kind, MilterReply::Kind::kAccept);
  }
}

TEST(MilterCodecTest, DecodesSimpleReplies) {
  const std::pair<char, MilterReply::Kind> cases[] = {
      {'a', MilterReply::Kind::kAccept},  {'c', MilterReply::Kind::kContinue},
      {'r', MilterReply::Kind::kReject},  {'t', MilterReply::Kind::kTempfail},
      {'d', MilterReply::Kind::kDiscard}, {'p', MilterReply::Kind::kProgress},
      {'s', MilterReply::Kind::kSkip},    {'4', MilterReply::Kind::kShutdown},
  };
  for (const auto& [c, kind] : cases) {
    absl::StatusOr<MilterReply> r = DecodeReply(c, "");
    ASSERT_TRUE(r.ok()) << c;
    EXPECT_EQ(r->kind, kind);
    EXPECT_EQ(r->command, c);
    absl::StatusOr<MilterReply> bad = DecodeReply(c, "x");
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << c;
  }
}

TEST(MilterCodecTest, DecodesReplyCodes) {
  absl::StatusOr<MilterReply> r = DecodeReply('y', "451 4.7.1 Try 100%% later\0"s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reply.code, 451);
  EXPECT_EQ(r->reply.lines, std::vector<std::string>{"4.7.1 Try 100% later"});

  r = DecodeReply('y', "550-5.7.1 first\r\n550 5.7.1 second\0"s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reply.lines, (std::vector<std::string>{"5.7.1 first", "5.7.1 second"}));

  for (const std::string& bad : {"250 2.0.0 ok\0"s, "55 x\0"s, "\0"s, "550 x"s, "550 x\0junk"s,
                                 "550-a\n550 b\0"s, "550-a\r\n551 b\0"s, "550 a\r\n\0"s}) {
    EXPECT_EQ(DecodeReply('y', bad).status().code(), absl::StatusCode::kInvalidArgument)
        << testing::PrintToString(bad);
  }
}

TEST(MilterCodecTest, DecodesModifications) {
  using Kind = Modification::Kind;
  struct Case {
    char command;
    std::string data;
    Modification want;
  };
  const Case cases[] = {
      {'h', "X-A\0v\0"s, {Kind::kAddHeader, 0, "X-A", "v"}},
      {'i', "\0\0\0\x02X-B\0w\0"s, {Kind::kInsertHeader, 2, "X-B", "w"}},
      {'m', "\0\0\0\x01Subject\0\0"s, {Kind::kChangeHeader, 1, "Subject", ""}},
      {'e', "<new@example.org>\0"s, {Kind::kChangeSender, 0, "<new@example.org>", ""}},
      {'e',
       "<new@example.org>\0SIZE=1\0"s,
       {Kind::kChangeSender, 0, "<new@example.org>", "SIZE=1"}},
      {'+', "<c@example.test>\0"s, {Kind::kAddRecipient, 0, "<c@example.test>", ""}},
      {'2',
       "<c@example.test>\0NOTIFY=NEVER\0"s,
       {Kind::kAddRecipient, 0, "<c@example.test>", "NOTIFY=NEVER"}},
      {'-', "<b@example.test>\0"s, {Kind::kDeleteRecipient, 0, "<b@example.test>", ""}},
      {'b', "new body\r\n\0x"s, {Kind::kReplaceBody, 0, "", "new body\r\n\0x"s}},
      {'q', "spam\0"s, {Kind::kQuarantine, 0, "", "spam"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<MilterReply> r = DecodeReply(c.command, c.data);
    ASSERT_TRUE(r.ok()) << c.command << ": " << r.status();
    EXPECT_EQ(r->kind, MilterReply::Kind::kModification);
    EXPECT_EQ(r->modification, c.want) << c.command;
  }
}

TEST(MilterCodecTest, RefusesMalformedReplies) {
  const std::pair<char, std::string> cases[] = {
      {'h', "X-A\0v"s},                                 // value without NUL
      {'h', "X-A"s},                                    // name without NUL
      {'h', "\0v\0"s},                                  // empty name
      {'h', "X A\0v\0"s},                               // space in name
      {'h', "X:A\0v\0"s},                               // colon in name
      {'h', "X-A\0v\0extra"s},                          // trailing data
      {'i', "\0\0\0"s},                                 // short index
      {'m', "\0\0\0\x01"s},                             // index only
      {'e', ""s},                                       // no address
      {'e', "\0"s},                                     // empty address
      {'e', "<a>\0args"s},                              // args without NUL
      {'+', "<a>\0X=1\0"s},                             // args on '+'
      {'-', "<a>"s},                                    // no NUL
      {'q', "why"s},                                    // no NUL
      {'O', "\0\0\0\x06\0\0"s},                         // short OPTNEG
      {'O', "\0\0\0\x06\0\0\0\0\0\0\0\0\0\0"s},         // truncated stage
      {'O', "\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\0abc"s},  // list without NUL
      {'Z', ""s},                                       // unknown command
      {'f', ""s},                                       // connection failure: not a reply we take
  };
  for (const auto& [c, data] : cases) {
    absl::StatusOr<MilterReply> r = DecodeReply(c, data);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << c << " " << testing::PrintToString(data);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
}

TEST(MilterCodecTest, OptNegIgnoresUnknownMacroStages) {
  absl::StatusOr<MilterReply> r =
      DecodeReply('O', "\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x09x\0\0\0\0\x02{mail_addr}\0"s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->optneg.macros[2], "{mail_addr}");
}

TEST(MilterCodecTest, DecoderRefusesZeroAndOversizedLengthsAndStaysFailed) {
  {
    ReplyDecoder d;
    const std::string zero = "\0\0\0\0"s;
    std::string_view in = zero;
    EXPECT_EQ(d.Next(in).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(d.failed());
    std::string ok = Pkt('c', "");
    std::string_view again = ok;
    EXPECT_FALSE(d.Next(again).ok());
  }
  {
    ReplyDecoder d;
    const std::string wire = Len(kMaxReplyPacketBytes + 1) + "b";
    std::string_view in = wire;
    absl::StatusOr<std::optional<MilterReply>> r = d.Next(in);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("too large"), std::string_view::npos);
  }
  {
    // The largest packet is taken.
    ReplyDecoder d;
    const std::string wire =
        Len(kMaxReplyPacketBytes) + "b" + std::string(kMaxReplyPacketBytes - 1, 'x');
    std::string_view in = wire;
    absl::StatusOr<std::optional<MilterReply>> r = d.Next(in);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->modification.value.size(), kMaxReplyPacketBytes - 1);
  }
  {
    // A bad packet in the middle of a stream fails the decoder.
    const std::string wire = Pkt('c', "") + Pkt('h', "bad name\0v\0"s) + Pkt('a', "");
    absl::StatusOr<std::vector<MilterReply>> r = DecodeAll(wire, 3);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(MilterCodecTest, DecoderLeavesTheRestOfTheInput) {
  ReplyDecoder d;
  const std::string wire = Pkt('c', "") + Pkt('a', "");
  std::string_view in = wire;
  absl::StatusOr<std::optional<MilterReply>> r = d.Next(in);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ(in.size(), 5u);
  r = d.Next(in);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->kind, MilterReply::Kind::kAccept);
  EXPECT_TRUE(in.empty());
}

}  // namespace
}  // namespace ringmx::smtp::milter
