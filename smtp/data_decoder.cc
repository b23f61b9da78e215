#include "smtp/data_decoder.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <utility>

#include "smtp/limits.h"

namespace ringmx::smtp {
namespace {

constexpr uint8_t Bit(DataDecoder::Error error) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(error));
}

// The first CR or LF in [p, end), or `end`. One pass for both, 16 octets at a time.
const char* FindCrOrLf(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    if (*p == '\r' || *p == '\n') return p;
  }
  return end;
}

}  // namespace

size_t DataDecoder::capacity() const { return body_.capacity(); }

void DataDecoder::Begin(Mode mode, uint64_t max_message_bytes, uint64_t size_hint) {
  mode_ = mode;
  state_ = State::kLineStart;
  errors_ = 0;
  max_bytes_ = max_message_bytes;
  size_ = 0;
  line_len_ = 0;
  streamed_ = false;
  body_.clear();
  if (size_hint > 0) {
    const size_t first = static_cast<size_t>(std::min<uint64_t>(size_hint, BufferCap()));
    if (first > 0) body_.AddBlock(first);
  }
}

size_t DataDecoder::BufferCap() const {
  return std::min(static_cast<size_t>(max_bytes_), buffer_limit_);
}

void DataDecoder::Clear() { Begin(Mode::kDotStuffed, 0); }

DataDecoder::Error DataDecoder::error() const {
  // Most important first, so the answer does not depend on the order faults were seen in.
  if (errors_ & Bit(Error::kBareCrLf)) return Error::kBareCrLf;
  if (errors_ & Bit(Error::kLineTooLong)) return Error::kLineTooLong;
  if (errors_ & Bit(Error::kTooBig)) return Error::kTooBig;
  return Error::kNone;
}

void DataDecoder::Fail(Error error) {
  if (errors_ == 0) body_.clear();  // a refused message holds no memory
  errors_ |= Bit(error);
}

void DataDecoder::Count(size_t n) {
  size_ += n;
  if (size_ > max_bytes_) Fail(Error::kTooBig);
}

void DataDecoder::Append(const char* data, size_t n) {
  Count(n);
  if (errors_ != 0) return;
  while (n > 0) {
    if (body_.room() == 0) body_.AddBlock(NextBlockBytes(n));
    const size_t k = std::min(n, body_.room());
    body_.AppendToLast(data, k);
    data += k;
    n -= k;
  }
}

size_t DataDecoder::NextBlockBytes(size_t n) const {
  const size_t cap = BufferCap();
  const size_t held = body_.capacity();
  // The caller keeps within the buffer limit (see set_buffer_limit), and Count() failed the
  // message before it passes max_message_bytes; the max() keeps a block for `n` even if not.
  const size_t left = cap > held ? cap - held : 0;
  const bool streaming = buffer_limit_ != SIZE_MAX;
  size_t next;
  if (body_.block_count() == 0) {
    // A later piece of a streamed message: the message is large, one block for the whole piece
    // (or for what the size limit still allows: size() already counts these `n` octets).
    // The first piece: what the first input brought (a small message fits one small block).
    const uint64_t allowed = n + (max_bytes_ > size_ ? max_bytes_ - size_ : 0);
    next = streamed_ ? static_cast<size_t>(std::min<uint64_t>(left, allowed))
                     : std::max(n, size_t{4096});
  } else {
    next = std::max(2 * body_.last_block_capacity(), n);
    // Once the next doubling would leave less than itself before the limit, the rest goes in
    // this block: no small last block.
    if (streaming && left > next && left - next < next) next = left;
  }
  next = std::min({next, left, streaming ? cap : kMaxBlockBytes});
  return std::max(next, n);
}

void DataDecoder::AddLineLength(size_t n) {
  line_len_ += n;
  // RFC 5321 section 4.5.3.1.6: 998 octets + CR LF.
  if (line_len_ > kMaxTextLineOctets) Fail(Error::kLineTooLong);
}

core::BodyBlocks DataDecoder::TakeChunk() {
  core::BodyBlocks chunk = std::move(body_);
  body_.clear();
  streamed_ = true;
  return chunk;
}

core::BodyBlocks DataDecoder::TakeBody() {
  core::BodyBlocks body = std::move(body_);
  body_.clear();
  return body;
}

void DataDecoder::Finish() {
  if (state_ == State::kDone) return;
  if (state_ == State::kCr) {  // the message ended on a lone CR
    Fail(Error::kBareCrLf);
    Count(1);
  }
  state_ = State::kDone;
}

size_t DataDecoder::Consume(std::string_view input) {
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  const char* p = begin;
  while (p < end) {
    switch (state_) {
      case State::kLineStart:
        line_len_ = 0;
        if (mode_ == Mode::kDotStuffed && *p == '.') {
          ++p;  // RFC 5321 section 4.5.2: the leading dot is removed
          state_ = State::kDot;
        } else {
          state_ = State::kInLine;
        }
        break;

      case State::kDot:
        if (*p == '\r') {
          ++p;
          state_ = State::kDotCr;
        } else {
          state_ = State::kInLine;
        }
        break;

      case State::kDotCr:
        if (*p == '\n') {
          ++p;
          state_ = State::kDone;  // CR LF "." CR LF: the end of the data
          return static_cast<size_t>(p - begin);
        }
        // ".\r" followed by anything but LF: the CR is bare line content.
        Fail(Error::kBareCrLf);
        Count(1);
        AddLineLength(1);
        state_ = State::kInLine;
        break;

      case State::kInLine: {
        // Fast path: whole clean lines (CR only right before LF, not over the length limit,
        // the next line not starting with a dot) are scanned once and copied as one run.
        const char* const run = p;
        while (true) {
          const char* q = FindCrOrLf(p, end);
          if (end - q < 2 || q[0] != '\r' || q[1] != '\n') break;
          const size_t n = static_cast<size_t>(q - p);
          if (line_len_ + n > kMaxTextLineOctets) break;
          line_len_ = 0;
          p = q + 2;
          if (p == end || (mode_ == Mode::kDotStuffed && *p == '.')) break;
        }
        if (p != run) {
          Append(run, static_cast<size_t>(p - run));
          state_ = State::kLineStart;  // `p` is at a line start (or at the end)
          break;
        }
        const size_t avail = static_cast<size_t>(end - p);
        const char* cr = static_cast<const char*>(memchr(p, '\r', avail));
        const char* stop = cr != nullptr ? cr : end;
        const char* lf = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(stop - p)));
        if (lf != nullptr) {
          // A LF not preceded by CR. What follows is not a line start, so a "." after it can
          // never end the data.
          const size_t n = static_cast<size_t>(lf - p);
          AddLineLength(n);
          Append(p, n);
          Fail(Error::kBareCrLf);
          Count(1);
          line_len_ = 0;
          p = lf + 1;
          break;
        }
        const size_t n = static_cast<size_t>(stop - p);
        AddLineLength(n);
        if (cr == nullptr) {
          Append(p, n);
          p = end;
        } else if (cr + 1 == end) {
          Append(p, n);  // the CR is held back until we know what follows it
          p = end;
          state_ = State::kCr;
        } else if (cr[1] == '\n') {
          Append(p, n + 2);  // the line and its CR LF in one copy
          p = cr + 2;
          state_ = State::kLineStart;
        } else {
          Append(p, n);
          Fail(Error::kBareCrLf);
          Count(1);
          AddLineLength(1);
          p = cr + 1;
        }
        break;
      }

      case State::kCr:
        if (*p == '\n') {
          Append("\r\n", 2);
          ++p;
          state_ = State::kLineStart;
        } else {
          // The CR that ended the previous input was bare; this octet is more line content.
          Fail(Error::kBareCrLf);
          Count(1);
          AddLineLength(1);
          state_ = State::kInLine;
        }
        break;

      case State::kDone:
        return static_cast<size_t>(p - begin);
    }
  }
  return static_cast<size_t>(p - begin);
}

}  // namespace ringmx::smtp
