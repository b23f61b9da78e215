// smtp::DataDecoder alone: end of DATA, dot-unstuffing, bare CR/LF, line length and size limits,
// in both modes, with every input also fed split at each byte boundary and byte by byte.
#include "smtp/data_decoder.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

#include "core/strings.h"

namespace ringmx::smtp {
namespace {

using Error = DataDecoder::Error;
using Mode = DataDecoder::Mode;

struct Result {
  size_t consumed = 0;  // octets taken before done() (all of them if never done)
  bool done = false;
  Error error = Error::kNone;
  std::string body;
  uint64_t size = 0;
  size_t max_capacity = 0;

  bool operator==(const Result& o) const {
    return consumed == o.consumed && done == o.done && error == o.error && body == o.body &&
           size == o.size;
  }
};

Result Feed(Mode mode, std::string_view input, const std::vector<size_t>& cuts, uint64_t max,
            bool finish) {
  DataDecoder d;
  d.Begin(mode, max);
  Result r;
  size_t pos = 0;
  for (size_t i = 0; i <= cuts.size() && !d.done(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    const size_t n = d.Consume(input.substr(pos, end - pos));
    r.consumed += n;
    r.max_capacity = std::max(r.max_capacity, d.capacity());
    if (!d.done()) {
      EXPECT_EQ(n, end - pos);
    }
    pos = end;
  }
  if (finish) d.Finish();
  r.done = d.done();
  r.error = d.error();
  r.body = d.body();
  r.size = d.size();
  return r;
}

// Runs `input` whole, split in two at every offset, and byte by byte; expects the same result.
Result Decode(Mode mode, std::string_view input, uint64_t max = 1 << 20, bool finish = false) {
  const Result whole = Feed(mode, input, {}, max, finish);
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) {
    const Result split = Feed(mode, input, {i}, max, finish);
    EXPECT_TRUE(split == whole) << "split at " << i << " of " << absl::CHexEscape(core::Av(input));
    if (!(split == whole)) break;
    every.push_back(i);
  }
  EXPECT_TRUE(Feed(mode, input, every, max, finish) == whole)
      << "byte by byte: " << absl::CHexEscape(core::Av(input));
  EXPECT_LE(whole.max_capacity, max);
  return whole;
}

TEST(DataDecoderTest, EndsAtCrLfDotCrLfAndLeavesTheRest) {
  Result r = Decode(Mode::kDotStuffed, "Subject: a\r\n\r\nbody\r\n.\r\nMAIL FROM:<x@y>\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, Error::kNone);
  EXPECT_EQ(r.body, "Subject: a\r\n\r\nbody\r\n");
  EXPECT_EQ(r.consumed, 23u);
  EXPECT_EQ(r.size, 20u);
}

TEST(DataDecoderTest, EmptyMessageEndsOnTheFirstLine) {
  Result r = Decode(Mode::kDotStuffed, ".\r\nrest");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.consumed, 3u);
}

TEST(DataDecoderTest, RemovesOneLeadingDotPerLine) {
  EXPECT_EQ(Decode(Mode::kDotStuffed, "..\r\n...\r\n.a.b.\r\n a\r\n.\r\n").body,
            ".\r\n..\r\na.b.\r\n a\r\n");
}

TEST(DataDecoderTest, NotYetDoneWithoutTheTerminator) {
  Result r = Decode(Mode::kDotStuffed, "line\r\n.");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.consumed, 7u);
  EXPECT_EQ(r.body, "line\r\n");
  Result r2 = Decode(Mode::kDotStuffed, "line\r\n.\r");
  EXPECT_FALSE(r2.done);
  EXPECT_EQ(r2.error, Error::kNone);
}

TEST(DataDecoderTest, BareLineEndsAreErrorsAndNeverEndTheData) {
  const std::vector<std::string> fakes = {"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n",      "\r\n.\rX",
                                          "\r.\r", "a\nb",    "a\rb",    "\r\n.\r.\r\n", "\n"};
  for (const std::string& fake : fakes) {
    SCOPED_TRACE(absl::CHexEscape(fake));
    const std::string input = "hello" + fake + "MAIL FROM:<evil@x>\r\n";
    Result open = Decode(Mode::kDotStuffed, input);
    EXPECT_FALSE(open.done);
    EXPECT_EQ(open.error, Error::kBareCrLf);
    EXPECT_EQ(open.body, "");  // freed at the first error
    Result closed = Decode(Mode::kDotStuffed, input + ".\r\nNEXT");
    EXPECT_TRUE(closed.done);
    EXPECT_EQ(closed.consumed, input.size() + 3);
    EXPECT_EQ(closed.error, Error::kBareCrLf);
  }
}

TEST(DataDecoderTest, LineLengthLimitCountsAfterUnstuffing) {
  const std::string l998(998, 'a');
  EXPECT_EQ(Decode(Mode::kDotStuffed, l998 + "\r\n.\r\n").error, Error::kNone);
  EXPECT_EQ(Decode(Mode::kDotStuffed, "." + l998 + "\r\n.\r\n").error, Error::kNone);
  Result r = Decode(Mode::kDotStuffed, "x\r\n" + l998 + "a\r\n.\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.error, Error::kLineTooLong);
  EXPECT_EQ(Decode(Mode::kChunked, l998 + "a\r\n", 1 << 20, true).error, Error::kLineTooLong);
  EXPECT_EQ(Decode(Mode::kChunked, l998 + "\r\n" + l998, 1 << 20, true).error, Error::kNone);
}

TEST(DataDecoderTest, SizeLimitIsExactAndMemoryNeverExceedsIt) {
  const std::string forty = "abcdefgh\r\nabcdefgh\r\nabcdefgh\r\nabcdefgh\r\n";
  Result ok = Decode(Mode::kDotStuffed, forty + ".\r\n", 40);
  EXPECT_EQ(ok.error, Error::kNone);
  EXPECT_EQ(ok.body, forty);
  Result big = Decode(Mode::kDotStuffed, forty + "x\r\n.\r\n", 40);
  EXPECT_TRUE(big.done);
  EXPECT_EQ(big.error, Error::kTooBig);
  EXPECT_EQ(big.body, "");
  EXPECT_EQ(big.size, 43u);
}

TEST(DataDecoderTest, LargeBodyGrowsWithinTheLimit) {
  DataDecoder d;
  const uint64_t max = 100000;
  d.Begin(Mode::kDotStuffed, max);
  const std::string line = std::string(78, 'z') + "\r\n";
  for (int i = 0; i < 1250; ++i) {
    d.Consume(line);
    ASSERT_LE(d.capacity(), max);
  }
  EXPECT_EQ(d.error(), Error::kNone);
  d.Consume("more\r\n");
  EXPECT_EQ(d.error(), Error::kTooBig);
  EXPECT_EQ(d.capacity(), 0u);
  d.Consume(".\r\n");
  EXPECT_TRUE(d.done());
}

TEST(DataDecoderTest, ChunkedModeKeepsDotsAndAllowsCrLfAcrossChunks) {
  Result r = Decode(Mode::kChunked, ".\r\n..x\r\n.\r\n", 1 << 20, true);
  EXPECT_EQ(r.error, Error::kNone);
  EXPECT_EQ(r.body, ".\r\n..x\r\n.\r\n");
  EXPECT_EQ(r.consumed, 11u);

  DataDecoder d;
  d.Begin(Mode::kChunked, 100);
  d.Consume("ab\r");
  d.Consume("\ncd");
  d.Finish();
  EXPECT_EQ(d.error(), Error::kNone);
  EXPECT_EQ(d.body(), "ab\r\ncd");
  EXPECT_EQ(d.TakeBody(), "ab\r\ncd");
}

TEST(DataDecoderTest, ChunkedModeRefusesBareCrLf) {
  EXPECT_EQ(Decode(Mode::kChunked, "a\nb", 1 << 20, true).error, Error::kBareCrLf);
  EXPECT_EQ(Decode(Mode::kChunked, "a\rb", 1 << 20, true).error, Error::kBareCrLf);
  EXPECT_EQ(Decode(Mode::kChunked, "ab\r", 1 << 20, true).error, Error::kBareCrLf);
  EXPECT_EQ(Decode(Mode::kChunked, "\n", 1 << 20, true).error, Error::kBareCrLf);
}

TEST(DataDecoderTest, ChunkedFailTooBigStoresNothingMore) {
  DataDecoder d;
  d.Begin(Mode::kChunked, 10);
  d.Consume("abc");
  d.FailTooBig();
  EXPECT_EQ(d.capacity(), 0u);
  EXPECT_EQ(d.Consume("anything"), 8u);
  d.Finish();
  EXPECT_EQ(d.error(), Error::kTooBig);
  EXPECT_EQ(d.body(), "");
  EXPECT_EQ(d.capacity(), 0u);
}

TEST(DataDecoderTest, BareCrLfOutranksOtherFaultsWhateverTheOrder) {
  const std::string l999(999, 'a');
  EXPECT_EQ(Decode(Mode::kDotStuffed, l999 + "\r\nx\ny\r\n.\r\n").error, Error::kBareCrLf);
  EXPECT_EQ(Decode(Mode::kDotStuffed, "x\ny\r\n" + l999 + "\r\n.\r\n").error, Error::kBareCrLf);
  EXPECT_EQ(Decode(Mode::kDotStuffed, l999 + "\r\n.\r\n", 100).error, Error::kLineTooLong);
  EXPECT_EQ(Decode(Mode::kDotStuffed, std::string(90, 'a') + "\r\na\rb\r\n.\r\n", 50).error,
            Error::kBareCrLf);
}

TEST(DataDecoderTest, BeginResetsForTheNextMessage) {
  DataDecoder d;
  d.Begin(Mode::kDotStuffed, 100);
  d.Consume("a\nb\r\n.\r\n");
  EXPECT_EQ(d.error(), Error::kBareCrLf);
  d.Begin(Mode::kDotStuffed, 100);
  EXPECT_EQ(d.Consume("ok\r\n.\r\n"), 7u);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.error(), Error::kNone);
  EXPECT_EQ(d.body(), "ok\r\n");
  d.Clear();
  EXPECT_EQ(d.capacity(), 0u);
}

// Streams `input` through a decoder with buffer limit `limit`, as the session does: never more
// than the room left in the buffer per Consume(), the buffer taken whenever it is full. Returns
// the pieces; checks that the buffer never holds more than `limit`.
std::vector<std::string> Stream(std::string_view input, size_t limit, size_t read_size,
                                uint64_t size_hint = 0) {
  DataDecoder d;
  d.set_buffer_limit(limit);
  d.Begin(Mode::kDotStuffed, 1 << 24, size_hint);
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < input.size() && !d.done()) {
    if (d.StreamRoom() == 0) pieces.push_back(d.TakeChunk());
    const size_t n = std::min({d.StreamRoom(), read_size, input.size() - pos});
    pos += d.Consume(input.substr(pos, n));
    EXPECT_LE(d.capacity(), limit);
  }
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.error(), Error::kNone);
  pieces.push_back(d.TakeBody());
  return pieces;
}

TEST(DataDecoderTest, StreamedPiecesJoinToTheWholeBodyAndStayWithinTheLimit) {
  std::string message;
  for (int i = 0; i < 3000; ++i) {
    message += (i % 7 == 0) ? ".dot-stuffed line " : "plain line ";
    message += std::to_string(i) + "\r\n";
  }
  std::string wire;
  for (size_t start = 0; start < message.size();) {
    const size_t end = message.find("\r\n", start) + 2;
    if (message[start] == '.') wire += '.';
    wire.append(message, start, end - start);
    start = end;
  }
  wire += ".\r\n";
  for (size_t limit : {size_t{1000}, size_t{4096}, size_t{65536}}) {
    for (size_t read_size : {size_t{1}, size_t{333}, size_t{16384}}) {
      std::vector<std::string> pieces = Stream(wire, limit, read_size);
      std::string joined;
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (i + 1 < pieces.size()) {
          EXPECT_GE(pieces[i].size() + 1, limit) << "a full piece";
        }
        joined += pieces[i];
      }
      EXPECT_EQ(joined, message) << "limit " << limit << " read " << read_size;
    }
  }
}

TEST(DataDecoderTest, StreamingBufferGrowsStraightToItsLimitAtTheEnd) {
  constexpr size_t kLimit = 256 * 1024;
  DataDecoder d;
  d.set_buffer_limit(kLimit);
  d.Begin(Mode::kDotStuffed, 1 << 24);
  const std::string line = std::string(98, 'x') + "\r\n";
  size_t late_moves = 0;  // moves of a buffer that already held a quarter of the limit
  const char* buffer = nullptr;
  while (d.StreamRoom() >= line.size()) {
    const bool late = d.capacity() >= kLimit / 4;
    d.Consume(line);
    if (d.body().data() != buffer) {
      if (late) ++late_moves;
      buffer = d.body().data();
    }
    ASSERT_LE(d.capacity(), kLimit);
  }
  EXPECT_EQ(d.capacity(), kLimit);
  // Doublings up to a quarter of the limit, then the limit itself: one last move, not two.
  EXPECT_EQ(late_moves, 1u);
}

TEST(DataDecoderTest, AnnouncedSizeAllocatesTheBufferOnce) {
  std::string body;
  for (int i = 0; i < 50; ++i) body += std::string(98, 'x') + "\r\n";
  DataDecoder d;
  d.Begin(Mode::kDotStuffed, 1 << 20, body.size());
  const size_t capacity = d.capacity();
  EXPECT_GE(capacity, body.size());
  const char* const buffer = d.body().data();
  for (size_t pos = 0; pos < body.size(); pos += 100)
    d.Consume(std::string_view(body).substr(pos, 100));
  d.Consume(".\r\n");
  ASSERT_TRUE(d.done());
  EXPECT_EQ(d.body(), body);
  EXPECT_EQ(d.body().data(), buffer) << "the body was moved by a regrowth";
  EXPECT_EQ(d.capacity(), capacity);
  // A hint past the limit allocates no more than the limit.
  DataDecoder small;
  small.Begin(Mode::kDotStuffed, 1000, 1 << 20);
  EXPECT_LE(small.capacity(), 1000u);
}

}  // namespace
}  // namespace ringmx::smtp
