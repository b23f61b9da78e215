// Fuzz target: the DATA/BDAT decoder (smtp/data_decoder.h). The same bytes are decoded whole, cut
// at fuzzer-chosen points, and by a plain byte-at-a-time reference written from the rules in the
// header; all three must agree on where each message ends, its body, its size and its error.
//
// Input: [flags][cut count][cut offsets, 2 bytes each][content...]
//   flags bit 0: BDAT (kChunked) instead of DATA; bits 1-2: the size limit.
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "smtp/data_decoder.h"
#include "smtp/limits.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using smtp::DataDecoder;

struct Message {
  bool done = false;
  DataDecoder::Error error = DataDecoder::Error::kNone;
  uint64_t size = 0;
  std::string body;
  size_t end = 0;  // offset in the content just after the message (DATA: after "." CR LF)
  bool operator==(const Message&) const = default;
};

constexpr int kMaxMessages = 4;

// Feeds `content` cut at `cuts` (ascending, inside the content) like the session does: in DATA mode
// a finished message is followed by the next one at once, from the rest of the same piece.
std::vector<Message> Decode(DataDecoder::Mode mode, uint64_t limit, std::string_view content,
                            const std::vector<size_t>& cuts) {
  std::vector<Message> out;
  DataDecoder decoder;
  decoder.Begin(mode, limit);
  size_t pos = 0;
  for (size_t i = 0; i <= cuts.size() && static_cast<int>(out.size()) < kMaxMessages; ++i) {
    const size_t piece_end = i < cuts.size() ? cuts[i] : content.size();
    while (pos < piece_end && static_cast<int>(out.size()) < kMaxMessages) {
      const size_t n = decoder.Consume(content.substr(pos, piece_end - pos));
      RINGMX_CHECK(n <= piece_end - pos);
      pos += n;
      RINGMX_CHECK(decoder.capacity() <= limit);
      if (!decoder.done()) {
        RINGMX_CHECK(pos == piece_end);
        break;
      }
      out.push_back({true, decoder.error(), decoder.size(), decoder.body().Flatten(), pos});
      decoder.Begin(mode, limit);
    }
  }
  if (mode == DataDecoder::Mode::kChunked) {
    decoder.Finish();
    RINGMX_CHECK(decoder.done());
    out.push_back(
        {true, decoder.error(), decoder.size(), decoder.body().Flatten(), content.size()});
    // Finish() is idempotent and Consume() after it takes nothing.
    decoder.Finish();
    RINGMX_CHECK(decoder.Consume("x\r\n") == 0);
    RINGMX_CHECK(out.back() == Message({true, decoder.error(), decoder.size(),
                                        decoder.body().Flatten(), content.size()}));
  } else if (static_cast<int>(out.size()) < kMaxMessages) {
    // The unfinished message: what the decoder has so far (its error only counts once complete,
    // since a pending CR or dot may still change it).
    out.push_back({false, DataDecoder::Error::kNone, 0, "", content.size()});
  }
  return out;
}

// The reference: one octet at a time, straight from the rules in smtp/data_decoder.h.
std::vector<Message> Reference(DataDecoder::Mode mode, uint64_t limit, std::string_view c) {
  const bool dot_stuffed = mode == DataDecoder::Mode::kDotStuffed;
  std::vector<Message> out;
  size_t i = 0;
  while (static_cast<int>(out.size()) < kMaxMessages) {
    Message m;
    bool bare = false, too_long = false;
    std::string body;
    size_t line = 0;
    bool line_start = true;
    const auto content_octet = [&](char ch) {
      body.push_back(ch);
      ++m.size;
    };
    bool pending = false;  // the content ended in the middle of something undecided
    while (i < c.size()) {
      if (dot_stuffed && line_start && c[i] == '.') {
        // CR LF "." CR LF ends the data; any other leading dot is removed (RFC 5321 §4.5.2).
        if (i + 2 < c.size() && c[i + 1] == '\r' && c[i + 2] == '\n') {
          i += 3;
          m.done = true;
          break;
        }
        if (i + 1 == c.size() || (i + 2 == c.size() && c[i + 1] == '\r')) {
          pending = true;
          i = c.size();
          break;
        }
        ++i;
        line_start = false;
        continue;
      }
      line_start = false;
      const char ch = c[i];
      if (ch == '\r' && i + 1 < c.size() && c[i + 1] == '\n') {
        content_octet('\r');
        content_octet('\n');
        i += 2;
        line = 0;
        line_start = true;
        continue;
      }
      if (ch == '\r' && i + 1 == c.size()) {
        pending = true;  // DATA: undecided; BDAT: Finish() makes it a bare CR
        if (!dot_stuffed) {
          bare = true;
          ++m.size;
        }
        ++i;
        break;
      }
      if (ch == '\r') {
        bare = true;
        content_octet(ch);
        if (++line > smtp::kMaxTextLineOctets) too_long = true;
      } else if (ch == '\n') {
        bare = true;  // a LF without CR; what follows is not a line start
        content_octet(ch);
        line = 0;
      } else {
        content_octet(ch);
        if (++line > smtp::kMaxTextLineOctets) too_long = true;
      }
      ++i;
    }
    (void)pending;
    if (dot_stuffed && !m.done) {
      out.push_back({false, DataDecoder::Error::kNone, 0, "", c.size()});
      return out;
    }
    m.done = true;
    m.error = bare             ? DataDecoder::Error::kBareCrLf
              : too_long       ? DataDecoder::Error::kLineTooLong
              : m.size > limit ? DataDecoder::Error::kTooBig
                               : DataDecoder::Error::kNone;
    if (m.error == DataDecoder::Error::kNone) m.body = std::move(body);
    m.end = i;
    out.push_back(std::move(m));
    if (!dot_stuffed) return out;
  }
  return out;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx::fuzz;
  FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const DataDecoder::Mode mode =
      (flags & 1) != 0 ? DataDecoder::Mode::kChunked : DataDecoder::Mode::kDotStuffed;
  const int ncuts = in.Byte() % 33;
  std::vector<uint16_t> raw_cuts;
  for (int i = 0; i < ncuts; ++i) raw_cuts.push_back(in.U16());
  const std::string_view content = in.Rest();
  uint64_t limit;
  switch ((flags >> 1) & 3) {
    case 0:
      limit = 1 << 20;
      break;
    case 1:
      limit = 64;
      break;
    case 2:
      limit = 2000;
      break;
    default:
      limit = content.empty() ? 0 : raw_cuts.empty() ? 5 : raw_cuts[0] % (content.size() + 2);
  }
  std::vector<size_t> cuts;
  for (uint16_t c : raw_cuts) {
    if (!content.empty()) cuts.push_back(c % content.size());
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  if (!cuts.empty() && cuts[0] == 0) cuts.erase(cuts.begin());

  const std::vector<Message> whole = Decode(mode, limit, content, {});
  const std::vector<Message> split = Decode(mode, limit, content, cuts);
  RINGMX_CHECK(whole == split);
  const std::vector<Message> reference = Reference(mode, limit, content);
  RINGMX_CHECK(whole == reference);
  for (const Message& m : whole) {
    if (!m.done || m.error != DataDecoder::Error::kNone) continue;
    // A clean body: CR LF line endings only, no line over 998 octets, within the limit.
    RINGMX_CHECK(m.body.size() == m.size && m.size <= limit);
  }
  return 0;
}
