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
  r.body = d.body().Flatten();
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
  EXPECT_EQ(d.body().Flatten(), "ab\r\ncd");
  EXPECT_EQ(d.TakeBody().Flatten(), "ab\r\ncd");
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
  EXPECT_EQ(d.body().Flatten(), "");
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
  EXPECT_EQ(d.body().Flatten(), "ok\r\n");
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
    if (d.StreamRoom() == 0) pieces.push_back(d.TakeChunk().Flatten());
    const size_t n = std::min({d.StreamRoom(), read_size, input.size() - pos});
    pos += d.Consume(input.substr(pos, n));
    EXPECT_LE(d.capacity(), limit);
  }
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.error(), Error::kNone);
  pieces.push_back(d.TakeBody().Flatten());
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

// The blocks of the body so far; checks that no block seen before has moved.
void ExpectBlocksStayPut(const core::BodyBlocks& body, std::vector<const char*>& seen) {
  for (size_t i = 0; i < body.block_count(); ++i) {
    if (i < seen.size()) {
      EXPECT_EQ(body.block(i).data(), seen[i]) << "block " << i << " moved";
    } else {
      seen.push_back(body.block(i).data());
    }
  }
}

TEST(DataDecoderTest, StreamingBlocksDoubleToTheLimitAndNeverMove) {
  constexpr size_t kLimit = 256 * 1024;
  DataDecoder d;
  d.set_buffer_limit(kLimit);
  d.Begin(Mode::kDotStuffed, 1 << 24);
  const std::string line = std::string(98, 'x') + "\r\n";
  // One receive buffer's worth first, as the connection delivers it.
  std::string first;
  while (first.size() + line.size() <= 16380) first += line;
  d.Consume(first);
  std::vector<const char*> seen;
  ExpectBlocksStayPut(d.body(), seen);
  EXPECT_EQ(d.capacity(), first.size()) << "the first block is the first input's size";
  while (d.StreamRoom() >= line.size()) {
    d.Consume(line);
    ExpectBlocksStayPut(d.body(), seen);
    ASSERT_LE(d.capacity(), kLimit);
  }
  EXPECT_EQ(d.capacity(), kLimit);
  // Doublings, the last block taking the rest to the limit (no small block at the end).
  const core::BodyBlocks& body = d.body();
  ASSERT_EQ(body.block_count(), 4u);
  EXPECT_EQ(body.block(0).size(), first.size());
  // Full blocks, each twice the one before (a block is moved on from only when full).
  EXPECT_EQ(body.block(1).size(), 2 * first.size());
  EXPECT_EQ(body.block(2).size(), 4 * first.size());
  // The next piece is one block of the limit.
  const core::BodyBlocks piece = d.TakeChunk();
  EXPECT_EQ(d.capacity(), 0u);
  d.Consume(line);
  EXPECT_EQ(d.body().block_count(), 1u);
  EXPECT_EQ(d.capacity(), kLimit);
}

TEST(DataDecoderTest, ALaterPieceNearTheSizeLimitGetsOnlyWhatTheLimitAllows) {
  constexpr size_t kLimit = 64 * 1024;
  constexpr uint64_t kMax = kLimit + 1000;
  DataDecoder d;
  d.set_buffer_limit(kLimit);
  d.Begin(Mode::kDotStuffed, kMax);
  const std::string line = std::string(98, 'x') + "\r\n";
  while (d.StreamRoom() >= line.size()) d.Consume(line);
  const uint64_t before = d.size();
  d.TakeChunk();
  d.Consume(line);
  // One block for the rest of the message: the line and what the limit still allows after it.
  EXPECT_EQ(d.body().block_count(), 1u);
  EXPECT_EQ(d.capacity(), kMax - before);
  EXPECT_EQ(d.error(), Error::kNone);
}

TEST(DataDecoderTest, ASmallMessageIsOneSmallBlock) {
  DataDecoder d;
  d.set_buffer_limit(256 * 1024);
  d.Begin(Mode::kDotStuffed, 1 << 24);
  const std::string body = std::string(990, 'x') + "\r\n";
  d.Consume(body + ".\r\n");
  ASSERT_TRUE(d.done());
  EXPECT_EQ(d.body().block_count(), 1u);
  EXPECT_EQ(d.capacity(), 4096u);
  EXPECT_EQ(d.TakeBody().Flatten(), body);
}

// A message of `lines` (each without its CR LF) as DATA sends it: dot-stuffed, ended by ".".
std::string Wire(const std::vector<std::string>& lines) {
  std::string wire;
  for (const std::string& l : lines) {
    if (l.starts_with(".")) wire.push_back('.');
    wire.append(l).append("\r\n");
  }
  return wire + ".\r\n";
}

// Block boundaries land at every offset of the content around them (inside a line, between CR
// and LF, right after a removed dot, just before the terminating dot), with the input split at
// the boundary too and byte by byte around it: the blocks join to the contiguous result.
TEST(DataDecoderTest, BlockBoundariesAnywhereGiveTheSameBody) {
  for (Mode mode : {Mode::kDotStuffed, Mode::kChunked}) {
    for (size_t shift = 0; shift < 90; ++shift) {
      std::vector<std::string> lines;
      lines.push_back(std::string(shift, 'p'));
      size_t content = shift + 2;
      for (int i = 0; content < 40000; ++i) {
        std::string l(i % 3 == 0 ? 1 : 0, '.');
        l.append(i % 5 == 0 ? 0 : 20 + i % 57, 'a');
        if (i % 7 == 0) l = "..";
        content += l.size() + 2;
        lines.push_back(std::move(l));
      }
      std::string message;
      for (const std::string& l : lines) message.append(l).append("\r\n");
      const std::string wire = mode == Mode::kDotStuffed ? Wire(lines) : message;
      // First input: exactly one first block (4096 content octets when nothing is stuffed
      // before it); then inputs cut at shifting places.
      for (size_t read : {size_t{1}, size_t{333}, size_t{4096}, size_t{16384}}) {
        DataDecoder d;
        d.Begin(mode, 1 << 24);
        std::vector<const char*> seen;
        size_t pos = 0;
        size_t n = std::min<size_t>(4096, wire.size());
        while (pos < wire.size() && !d.done()) {
          pos += d.Consume(std::string_view(wire).substr(pos, n));
          ExpectBlocksStayPut(d.body(), seen);
          n = std::min(read + shift % 7, wire.size() - pos);
        }
        if (mode == Mode::kChunked) d.Finish();
        ASSERT_TRUE(d.done());
        ASSERT_EQ(d.error(), Error::kNone) << "shift " << shift << " read " << read;
        EXPECT_EQ(pos, wire.size());
        EXPECT_GT(d.body().block_count(), 2u);
        ASSERT_EQ(d.body().Flatten(), message) << "shift " << shift << " read " << read;
        EXPECT_EQ(d.size(), message.size());
      }
    }
  }
}

// The terminating CR LF "." CR LF split across inputs right where the first block is full.
TEST(DataDecoderTest, TheEndOfDataAtABlockBoundaryInAnySplit) {
  for (size_t body_size : {size_t{4094}, size_t{4095}, size_t{4096}, size_t{4097}}) {
    std::string message;
    while (body_size - message.size() >= 160) message.append(78, 'z').append("\r\n");
    message.append(body_size - message.size() - 2, 'z').append("\r\n");
    const std::string wire = message + ".\r\n";
    for (size_t cut = body_size - 3; cut <= wire.size(); ++cut) {
      for (size_t cut2 = cut; cut2 <= wire.size(); ++cut2) {
        DataDecoder d;
        d.Begin(Mode::kDotStuffed, 1 << 20);
        size_t pos = d.Consume(std::string_view(wire).substr(0, cut));
        pos += d.Consume(std::string_view(wire).substr(pos, cut2 - pos));
        pos += d.Consume(std::string_view(wire).substr(pos));
        ASSERT_TRUE(d.done()) << body_size << " " << cut << " " << cut2;
        EXPECT_EQ(pos, wire.size());
        EXPECT_EQ(d.body().Flatten(), message);
      }
    }
  }
}

TEST(DataDecoderTest, AnnouncedSizeAllocatesTheBufferOnce) {
  std::string body;
  for (int i = 0; i < 50; ++i) body += std::string(98, 'x') + "\r\n";
  DataDecoder d;
  d.Begin(Mode::kDotStuffed, 1 << 20, body.size());
  const size_t capacity = d.capacity();
  EXPECT_GE(capacity, body.size());
  ASSERT_EQ(d.body().block_count(), 1u);
  const char* const buffer = d.body().block(0).data();
  for (size_t pos = 0; pos < body.size(); pos += 100)
    d.Consume(std::string_view(body).substr(pos, 100));
  d.Consume(".\r\n");
  ASSERT_TRUE(d.done());
  EXPECT_EQ(d.body().Flatten(), body);
  ASSERT_EQ(d.body().block_count(), 1u) << "a message that keeps its word is one block";
  EXPECT_EQ(d.body().block(0).data(), buffer) << "the body was moved by a regrowth";
  EXPECT_EQ(d.capacity(), capacity);
  // A hint past the limit allocates no more than the limit.
  DataDecoder small;
  small.Begin(Mode::kDotStuffed, 1000, 1 << 20);
  EXPECT_LE(small.capacity(), 1000u);
}

}  // namespace
}  // namespace ringmx::smtp
