// SMTP command-line parsing (RFC 5321 section 4.1): the verb, MAIL/RCPT paths and ESMTP
// parameters. Pure functions over string views: nothing is copied, every view returned points into
// the caller's line. The session (smtp/session.cc) decides what to answer; this file only says
// what the client wrote and whether it is well-formed.
#pragma once

#include <stdint.h>

#include <optional>
#include <string_view>

namespace ringmx::smtp {

enum class Verb : uint8_t {
  kUnknown,
  kHelo,
  kEhlo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kHelp,
  kStartTls,  // RFC 3207
  kAuth,      // not offered yet: 502
  // Known commands this server does not implement (EXPN, TURN, ETRN, ATRN, SEND, SOML, SAML, VERB,
  // BURL): 502 5.5.1.
  kNotImplemented,
};

struct CommandLine {
  Verb verb = Verb::kUnknown;
  // Everything after the verb and its separating blanks, trailing blanks removed. Empty when the
  // command has no argument.
  std::string_view args;
};

// Splits one command line (without its CRLF) into verb and arguments. Verbs are matched
// case-insensitively (RFC 5321 section 2.4). A verb must be followed by a space, a tab or the end
// of the line; anything else is kUnknown.
CommandLine ParseCommandLine(std::string_view line);

// True if `text` starts with `prefix`, ASCII case-insensitively.
bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix);

enum class PathKind : uint8_t {
  kReversePath,  // MAIL FROM: "<>" allowed
  kForwardPath,  // RCPT TO: bare "<postmaster>" allowed
};

// A parsed RFC 5321 path (section 4.1.2). Views point into the text given to ParsePath.
struct Path {
  bool null = false;  // the null reverse-path "<>"
  // The mailbox as the client wrote it, without angle brackets and without any source route
  // ("<@a,@b:u@d>" gives "u@d"), quotes and escapes kept. "postmaster" (as written) for the
  // bare form; empty for the null path.
  std::string_view mailbox;
  std::string_view local_part;  // as written, quotes kept
  std::string_view domain;      // domain or address literal "[...]"; empty for bare postmaster
  bool non_ascii = false;       // contains octets >= 0x80 (valid UTF-8; needs SMTPUTF8)
  std::string_view rest;        // the text after '>' (parameters)
};

// Parses a path at the start of `text` ("<...>" with the bracket first). Accepts quoted local
// parts, UTF-8 (RFC 6531; the caller checks SMTPUTF8), address literals ("[192.0.2.1]",
// "[IPv6:2001:db8::1]"), a source route (dropped, RFC 5321 section 4.1.1.3), and enforces the
// length limits of smtp/limits.h. Unquoted local parts may hold dots anywhere ("a..b."), as many
// real senders need. nullopt when the path is malformed or too long.
std::optional<Path> ParsePath(std::string_view text, PathKind kind);

// One ESMTP parameter "KEYWORD[=VALUE]" (RFC 5321 section 4.1.2, esmtp-param).
struct Param {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

// Iterates over the space-separated parameters after a path. Next() returns false at the end;
// blanks between parameters may be repeated. Keyword and value syntax are the caller's business.
class ParamReader {
 public:
  explicit ParamReader(std::string_view text) : text_(text) {}
  bool Next(Param& param);

 private:
  std::string_view text_;
};

// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace ringmx::smtp
