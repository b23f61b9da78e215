#include "smtp/reply.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ringmx::smtp {
namespace {

// Parses `bytes` fed in two pieces split at `split`; returns the replies' wire form, then
// "error: ..." if the parser failed, or "partial" if bytes of a reply are left over.
std::vector<std::string> ParseSplit(std::string_view bytes, size_t split,
                                    ReplyParser::Limits limits = {}) {
  ReplyParser parser(limits);
  std::vector<std::string> out;
  for (std::string_view piece : {bytes.substr(0, split), bytes.substr(split)}) {
    while (true) {
      Reply reply;
      const ReplyParser::Result r = parser.Parse(piece, reply);
      if (r == ReplyParser::Result::kNeedMore) break;
      if (r == ReplyParser::Result::kError) {
        out.push_back("error: " + parser.error());
        return out;
      }
      out.push_back(reply.ToWire());
    }
  }
  if (parser.mid_reply()) out.push_back("partial");
  return out;
}

// Checks that every split of `bytes` parses to `want`.
void ExpectAllSplits(std::string_view bytes, const std::vector<std::string>& want,
                     ReplyParser::Limits limits = {}) {
  for (size_t split = 0; split <= bytes.size(); ++split) {
    EXPECT_EQ(ParseSplit(bytes, split, limits), want) << "split at " << split;
  }
}

TEST(ReplyParserTest, ParsesSingleAndMultilineRepliesAtEveryByteBoundary) {
  ExpectAllSplits(
      "220 mx.example.test ESMTP\r\n250-mx.example.test\r\n250-PIPELINING\r\n"
      "250 CHUNKING\r\n354 go\r\n",
      {"220 mx.example.test ESMTP\r\n", "250-mx.example.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
       "354 go\r\n"});
}

TEST(ReplyParserTest, KeepsTheRestOfTheInputAfterAReply) {
  ReplyParser parser;
  std::string_view input = "220 Ready\r\n\x16\x03\x01";
  Reply reply;
  ASSERT_EQ(parser.Parse(input, reply), ReplyParser::Result::kReply);
  EXPECT_EQ(reply.code, 220);
  EXPECT_EQ(input, "\x16\x03\x01");
}

TEST(ReplyParserTest, ReadsTheEnhancedStatusCodeAndText) {
  Reply reply;
  ASSERT_TRUE(ParseOneReply("550-5.1.1 no such user\r\n550 5.1.1 here\r\n", reply));
  EXPECT_EQ(reply.code, 550);
  EXPECT_EQ(reply.enhanced, "5.1.1");
  EXPECT_EQ(reply.lines, (std::vector<std::string>{"5.1.1 no such user", "5.1.1 here"}));
  EXPECT_EQ(reply.Text(), "no such user here");
  EXPECT_EQ(reply.OneLine(), "550 5.1.1 no such user; 5.1.1 here");
  EXPECT_TRUE(reply.permanent());

  ASSERT_TRUE(ParseOneReply("250 2.0.0\r\n", reply));
  EXPECT_EQ(reply.enhanced, "2.0.0");
  // The class must match the code's; "2.0.0" in a 550 is just text.
  ASSERT_TRUE(ParseOneReply("550 2.0.0 odd\r\n", reply));
  EXPECT_EQ(reply.enhanced, "");
  ASSERT_TRUE(ParseOneReply("250 2.0.0x\r\n", reply));
  EXPECT_EQ(reply.enhanced, "");
  ASSERT_TRUE(ParseOneReply("250 2.1234.0 no\r\n", reply));
  EXPECT_EQ(reply.enhanced, "");
}

TEST(ReplyParserTest, AcceptsABareCodeAndBareLf) {
  ExpectAllSplits("250\r\n221\n", {"250\r\n", "221\r\n"});
  Reply reply;
  ASSERT_TRUE(ParseOneReply("250\r\n", reply));
  EXPECT_EQ(reply.lines, (std::vector<std::string>{""}));
}

TEST(ReplyParserTest, FindsEhloKeywords) {
  Reply reply;
  ASSERT_TRUE(
      ParseOneReply("250-mx.example.test SIZE-less greeting\r\n250-size 1000\r\n250-8BITMIME\r\n"
                    "250 PIPELININGX\r\n",
                    reply));
  EXPECT_TRUE(reply.HasKeyword("SIZE"));
  EXPECT_EQ(reply.KeywordParams("SIZE"), "1000");
  EXPECT_TRUE(reply.HasKeyword("8bitmime"));
  EXPECT_FALSE(reply.HasKeyword("PIPELINING"));
  EXPECT_FALSE(reply.HasKeyword("mx.example.test"));  // the greeting line is not a keyword
}

TEST(ReplyParserTest, RejectsMalformedReplies) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hello\r\n", "error: a reply line that does not start with a reply code"},
      {"25\r\n", "error: a reply line that does not start with a reply code"},
      {"150 x\r\n", "error: a reply line that does not start with a reply code"},
      {"650 x\r\n", "error: a reply line that does not start with a reply code"},
      {"250x\r\n", "error: a reply code followed by neither a space nor a hyphen"},
      {"250-a\r\n550 b\r\n", "error: a multiline reply whose lines carry different codes"},
      {"250 a\rb\r\n", "error: a CR not followed by LF in a reply line"},
      {std::string("250 a\0b\r\n", 9), "error: a NUL in a reply line"},
  };
  for (const auto& [bytes, want] : cases) {
    for (size_t split = 0; split <= bytes.size(); ++split) {
      const std::vector<std::string> got = ParseSplit(bytes, split);
      ASSERT_FALSE(got.empty()) << bytes;
      EXPECT_EQ(got.back(), want) << bytes << " split at " << split;
    }
  }
}

TEST(ReplyParserTest, StaysFailedAfterAnError) {
  ReplyParser parser;
  std::string_view input = "xyz\r\n250 ok\r\n";
  Reply reply;
  EXPECT_EQ(parser.Parse(input, reply), ReplyParser::Result::kError);
  std::string_view more = "250 ok\r\n";
  EXPECT_EQ(parser.Parse(more, reply), ReplyParser::Result::kError);
  EXPECT_TRUE(parser.failed());
}

TEST(ReplyParserTest, BoundsLineLengthAndLineCount) {
  ReplyParser::Limits limits;
  limits.max_line_bytes = 10;
  limits.max_lines = 3;
  ExpectAllSplits("250 0123456789\r\n", {"250 0123456789\r\n"}, limits);
  ExpectAllSplits("250 01234567890\r\n", {"error: a reply line longer than 10 octets"}, limits);
  ExpectAllSplits("250-a\r\n250-b\r\n250 c\r\n", {"250-a\r\n250-b\r\n250 c\r\n"}, limits);
  ExpectAllSplits("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", {"error: a reply of more than 3 lines"},
                  limits);
  // The default limit is lenient (4096 octets) but bounded.
  EXPECT_EQ(ParseSplit("250 " + std::string(4096, 'x') + "\r\n", 0).back().size(), 4102u);
  EXPECT_EQ(ParseSplit("250 " + std::string(5000, 'x') + "\r\n", 0).back(),
            "error: a reply line longer than 4096 octets");
}

TEST(ReplyParserTest, ReportsAnIncompleteReply) {
  EXPECT_EQ(ParseSplit("250-a\r\n250 b", 3), (std::vector<std::string>{"partial"}));
  std::string error;
  Reply reply;
  EXPECT_FALSE(ParseOneReply("250 a\r\n250 b\r\n", reply, &error));
  EXPECT_EQ(error, "bytes after the reply");
  EXPECT_FALSE(ParseOneReply("250-a\r\n", reply, &error));
  EXPECT_EQ(error, "an incomplete reply");
}

}  // namespace
}  // namespace ringmx::smtp
