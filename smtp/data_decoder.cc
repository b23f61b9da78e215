#include "smtp/data_decoder.h"

#include <string.h>

#include <algorithm>
#include <utility>

#include "smtp/limits.h"

namespace ringmx::smtp {

void DataDecoder::Begin(Mode mode, uint64_t max_message_bytes) {
  mode_ = mode;
  state_ = State::kLineStart;
  error_ = Error::kNone;
  max_bytes_ = max_message_bytes;
  size_ = 0;
  line_len_ = 0;
  body_.clear();
}

void DataDecoder::Fail(Error error) {
  if (error_ != Error::kNone) return;  // the first error is the one reported
  error_ = error;
  std::string().swap(body_);  // free it: a refused message holds no memory
}

void DataDecoder::Append(const char* data, size_t n) {
  size_ += n;
  if (error_ != Error::kNone) return;
  if (size_ > max_bytes_) {
    Fail(Error::kTooBig);
    return;
  }
  if (body_.size() + n > body_.capacity()) {
    // Grow geometrically, but never past the limit (std::string would double beyond it).
    const uint64_t want =
        std::max<uint64_t>({body_.size() + n, 2 * uint64_t{body_.capacity()}, 4096});
    body_.reserve(static_cast<size_t>(std::min<uint64_t>(want, max_bytes_)));
  }
  body_.append(data, n);
}

void DataDecoder::Clear() {
  Begin(Mode::kDotStuffed, 0);
  std::string().swap(body_);
}

std::string DataDecoder::TakeBody() {
  std::string body = std::move(body_);
  body_ = std::string();
  return body;
}

void DataDecoder::Finish() {
  if (state_ == State::kDone) return;
  if (state_ == State::kCr) Fail(Error::kBareCrLf);  // the message ended on a lone CR
  state_ = State::kDone;
}

size_t DataDecoder::Consume(std::string_view input) {
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  const char* p = begin;
  // A refused chunk is skipped unscanned: BDAT has an explicit length, so no end to look for.
  if (mode_ == Mode::kChunked && error_ != Error::kNone && state_ != State::kDone) {
    return input.size();
  }
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
        // ".\r" followed by anything but LF: the CR is bare. The next octet is line content.
        Fail(Error::kBareCrLf);
        line_len_ = 1;
        state_ = State::kInLine;
        break;

      case State::kInLine: {
        const size_t avail = static_cast<size_t>(end - p);
        const char* cr = static_cast<const char*>(memchr(p, '\r', avail));
        const char* stop = cr != nullptr ? cr : end;
        const char* lf = static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(stop - p)));
        if (lf != nullptr) {
          // A LF not preceded by CR. What follows is not a line start, so a "." after it can
          // never end the data.
          Fail(Error::kBareCrLf);
          size_ += static_cast<size_t>(lf + 1 - p);
          line_len_ = 0;
          p = lf + 1;
          break;
        }
        const size_t n = static_cast<size_t>(stop - p);
        line_len_ += n;
        if (line_len_ > kMaxTextLineOctets) Fail(Error::kLineTooLong);
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
          Fail(Error::kBareCrLf);
          size_ += n + 1;
          ++line_len_;
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
          Fail(Error::kBareCrLf);  // the CR at the end of the previous input was bare
          ++line_len_;
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
