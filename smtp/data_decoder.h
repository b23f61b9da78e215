// The message-content decoder behind DATA and BDAT: finds the end of DATA, removes dot-stuffing,
// and enforces the rules that keep SMTP smuggling out (CVE-2023-51764/51765/51766) and memory
// bounded. It is its own class, independent of the session, so micro-benchmarks and fuzzers can
// drive it alone.
//
// Rules (both modes):
//  - Only CR LF is a line ending. A bare LF or a bare CR anywhere in the content is an error
//    (kBareCrLf): the message is refused and nothing inside it is ever treated as a command.
//  - A line longer than 998 octets (RFC 5321 section 4.5.3.1.6, counted after unstuffing) is an
//    error (kLineTooLong).
//  - More than `max_message_bytes` octets of content is an error (kTooBig).
//  After an error the body is freed and nothing more is stored, but the input is still scanned
//  (in DATA mode for the real end of the data), so the stream stays in sync. When a message has
//  several faults, error() reports the most important (bare CR/LF, then line length, then
//  size), so the answer never depends on how the input was split into reads.
//
// kDotStuffed (DATA, RFC 5321 section 4.5.2): the data ends only at CR LF "." CR LF, where the
// first CR LF is the end of the previous line (or of the DATA command for an empty message). A
// leading '.' is removed from every other line. "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r" and the
// like do not end the data.
//
// kChunked (BDAT, RFC 3030): the caller feeds exactly the chunk bytes; no dot handling. A CR LF may
// straddle two chunks. Finish() after the LAST chunk.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "core/body_blocks.h"

namespace ringmx::smtp {

// Shard-local; one per session, reused for every message of the session.
class DataDecoder {
 public:
  enum class Mode : uint8_t { kDotStuffed, kChunked };
  enum class Error : uint8_t { kNone, kBareCrLf, kLineTooLong, kTooBig };

  DataDecoder() = default;

  // The body is kept in blocks (core::BodyBlocks), each allocated once and never moved: each
  // content octet is copied once, into the last block, and a full block is followed by a new
  // one, never regrown. The first block is the first input's size (at least 4 KiB), the next ones
  // double up to the buffer limit (kMaxBlockBytes without one); a piece taken while streaming is
  // followed by a piece of one block of the buffer limit (the message is large).
  static constexpr size_t kMaxBlockBytes = size_t{256} << 10;

  // Starts a new message, dropping anything left from the previous one. `size_hint`: the size the
  // client announced (MAIL FROM SIZE=, RFC 1870), 0 if none: the first block is allocated at
  // that size up front (at most the buffer limit), so a message that keeps its word is in one
  // block.
  void Begin(Mode mode, uint64_t max_message_bytes, uint64_t size_hint = 0);

  // Streaming (the session hands the body to the store in pieces): the body buffer grows to at
  // most `limit` octets as long as the caller feeds at most StreamRoom() octets per Consume() and
  // takes the buffer with TakeChunk() when StreamRoom() is 0. Default: no limit besides
  // max_message_bytes. Kept across Begin().
  void set_buffer_limit(size_t limit) { buffer_limit_ = limit; }
  // How many more input octets fit the buffer limit: decoded content is never longer than its
  // input, except for one octet held back from the previous input (a CR whose LF had not come).
  size_t StreamRoom() const {
    return buffer_limit_ > body_.size() + 1 ? buffer_limit_ - body_.size() - 1 : 0;
  }

  // Consumes message bytes and returns how many were consumed. kDotStuffed: stops right after the
  // terminating CR LF "." CR LF (done() is then true) and leaves the rest to the caller; returns
  // input.size() otherwise. kChunked: consumes everything. Calls after done() consume nothing.
  size_t Consume(std::string_view input);

  // kChunked: the last chunk has been fed. A CR left pending at the very end is a bare CR.
  void Finish();

  // kChunked: the caller knows more content is coming than the limit allows (BDAT count). Frees
  // the body; nothing more is stored.
  void FailTooBig() { Fail(Error::kTooBig); }

  bool done() const { return state_ == State::kDone; }
  Error error() const;
  // Content octets seen so far (after unstuffing), counted on past the limit.
  uint64_t size() const { return size_; }
  // The decoded message so far (since the last TakeChunk()): exactly the client's bytes after
  // unstuffing, CR LF kept. For DATA it excludes the terminating "." CR LF (the CR LF before the
  // dot belongs to the message). Empty after an error. Block boundaries fall anywhere (inside a
  // line, between CR and LF): they follow the allocation, not the content.
  const core::BodyBlocks& body() const { return body_; }
  // Drops the message and frees the body's memory (RSET, EHLO, close).
  void Clear();
  // Moves the body out (after done()/Finish() with no error). The decoder needs Begin() again.
  core::BodyBlocks TakeBody();
  // Moves the content decoded so far out, mid-message, and goes on with an empty buffer (its
  // first block, allocated when content comes, is the whole buffer limit). size() still counts
  // every octet of the message. Only without error().
  core::BodyBlocks TakeChunk();
  // Heap bytes held for the body; never more than max_message_bytes (nor the buffer limit while
  // streaming).
  size_t capacity() const;

 private:
  enum class State : uint8_t {
    kLineStart,  // the next octet begins a line (after CR LF, or at the start)
    kDot,        // a line-start '.' was seen and dropped
    kDotCr,      // line-start ".\r" seen: "\n" next ends the data
    kInLine,     // inside a line (or after a bare LF: that is not a line start)
    kCr,         // a CR ended the previous input; LF is expected next
    kDone,
  };

  void Fail(Error error);
  // Counts `n` content octets against the size limit.
  void Count(size_t n);
  // Counts and stores `n` content octets (stores nothing after an error).
  void Append(const char* data, size_t n);
  // The capacity of the next block when `n` more octets do not fit the last one.
  size_t NextBlockBytes(size_t n) const;
  // The most the body buffer may hold: min(max_message_bytes, buffer limit).
  size_t BufferCap() const;
  // Adds `n` octets to the current line's length and checks the line limit.
  void AddLineLength(size_t n);

  Mode mode_ = Mode::kDotStuffed;
  State state_ = State::kLineStart;
  uint8_t errors_ = 0;  // bit (1 << Error) for each fault seen in this message
  uint64_t max_bytes_ = 0;
  size_t buffer_limit_ = SIZE_MAX;  // set_buffer_limit()
  uint64_t size_ = 0;
  size_t line_len_ = 0;  // content octets of the current line so far
  // True after TakeChunk() until Begin(): the next piece starts with a block of the buffer limit.
  bool streamed_ = false;
  // Invariant: heap held by body_ <= BufferCap() (blocks are sized by NextBlockBytes()), and none
  // once errors_ != 0.
  core::BodyBlocks body_;
};

}  // namespace ringmx::smtp
