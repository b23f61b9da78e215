// The one SMTP reply parser (RFC 5321 section 4.2): bytes from a server in, whole replies out.
// Used by the outbound client engine (smtp/client.h), the load harness (bench/load), the test
// client (tests/testing) and `ringmx tlsa` (net/tlsa_check.cc). Pure and incremental: input may
// end anywhere, even inside a CR LF; every complete reply is handed back in order; anything
// malformed is an error with a reason, never a crash, and memory stays bounded by the limits.
#pragma once

#include <stddef.h>

#include <string>
#include <string_view>
#include <vector>

namespace ringmx::smtp {

// One complete reply. `lines` hold the text of each line after "ddd-" / "ddd " (with the
// enhanced status code, if any, as sent), without the line end; a bare "ddd" line has "" as text.
struct Reply {
  int code = 0;  // 200..599 (the first digit is 2, 3, 4 or 5)
  // The enhanced status code (RFC 3463, RFC 2034) of the first line, "2.1.5", when that line
  // starts with one whose class matches `code`'s first digit; "" otherwise.
  std::string enhanced;
  std::vector<std::string> lines;  // never empty

  bool positive() const { return code >= 200 && code < 400; }   // 2yz or 3yz
  bool transient() const { return code >= 400 && code < 500; }  // 4yz
  bool permanent() const { return code >= 500; }                // 5yz

  // The lines' text without the enhanced code, joined by a space (for logs and DSNs).
  std::string Text() const;
  // "ddd text", lines joined with "; " ("250-a" "250 b" -> "250 a; b"); for log lines.
  std::string OneLine() const;
  // The reply on the wire: "ddd-text\r\n"... "ddd text\r\n" (a line with empty text is "ddd").
  std::string ToWire() const;
  // True if a line after the first (an EHLO keyword line) starts with `keyword`
  // (case-insensitive) followed by the end of the line or a space. The first line of an EHLO
  // reply is the greeting, never a keyword (RFC 5321 section 4.1.1.1).
  bool HasKeyword(std::string_view keyword) const;
  // The parameters of that keyword line ("SIZE 10240000" -> "10240000"); "" if absent or none.
  std::string KeywordParams(std::string_view keyword) const;
};

// Incremental parser for a stream of replies. Owned by one connection (shard-local, or a test's
// thread). After an error it stays failed: the stream cannot be trusted any more.
class ReplyParser {
 public:
  struct Limits {
    // RFC 5321 section 4.5.3.1.5 allows 512 octets a reply line (CR LF included); some servers
    // send longer lines, so we accept up to this many octets of text, and no more.
    size_t max_line_bytes = 4096;
    // Lines in one reply (a long EHLO reply has ~20).
    size_t max_lines = 1000;
  };
  enum class Result { kNeedMore, kReply, kError };

  ReplyParser() = default;
  explicit ReplyParser(Limits limits) : limits_(limits) {}

  // Consumes bytes from the front of `input` up to the end of the next complete reply and
  // returns kReply with it in `reply` (`input` then starts after its last line end: a caller
  // that must stop at a reply boundary, e.g. after "220" to STARTTLS, can see what follows). If
  // no reply completes, consumes all of `input` (keeping a partial line, bounded by the limits)
  // and returns kNeedMore. kError: the stream is malformed (error() says how); `input` is left
  // where the error was found and every later call returns kError.
  // Line ends are CR LF; a bare LF is accepted as one too (as Postfix's client does), a CR not
  // followed by LF, or a NUL, is malformed.
  Result Parse(std::string_view& input, Reply& reply);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // True while a reply has begun (some bytes of it were consumed) but is not complete.
  bool mid_reply() const { return !line_.empty() || !partial_.lines.empty(); }

 private:
  Result Fail(std::string why);
  // Handles the complete line in line_ (without its end). kReply completes partial_.
  Result TakeLine(Reply& reply);

  Limits limits_;
  std::string line_;     // the current line so far (without CR LF); at most max_line_bytes + 4
  bool saw_cr_ = false;  // line_ is followed by a CR whose LF has not arrived yet
  Reply partial_;        // lines of the reply in progress
  std::string error_;
};

// Parses `bytes`, which must hold exactly one complete reply and nothing else (tests and tools).
// False (with `error` set when given) otherwise.
bool ParseOneReply(std::string_view bytes, Reply& reply, std::string* error = nullptr);

}  // namespace ringmx::smtp
