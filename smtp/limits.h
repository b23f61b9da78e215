// Protocol size limits of the SMTP server side, in one place so that the session, the parsers and
// their tests agree. Each value cites the rule it implements.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <algorithm>

namespace ringmx::smtp {

// RFC 5321 section 4.5.3.1.4: a command line is at most 512 octets including the CRLF. The session
// never buffers more than this of one command line, whatever the client sends.
inline constexpr size_t kMaxCommandLineOctets = 512;

// MAIL and RCPT lines may be longer: RFC 5321 section 4.5.3.1.4 lets extensions raise the limit,
// and RFC 3461 does (an ORCPT value alone may be 500 characters, an ENVID 100 decoded ones, up to
// 300 as xtext). 2048 is Postfix's line_length_limit, which covers all of them at once.
inline constexpr size_t kMaxMailRcptLineOctets = 2048;

// RFC 5321 section 4.5.3.1.6: a text line is at most 1000 octets including the CRLF, so 998 octets
// of content (counted after dot-unstuffing, as stored).
inline constexpr size_t kMaxTextLineOctets = 998;

// RFC 5321 section 4.5.3.1.1-3: local-part 64 octets, domain 255 octets, and a whole path
// (reverse-path or forward-path, angle brackets and any source route included) 256 octets.
inline constexpr size_t kMaxLocalPartOctets = 64;
inline constexpr size_t kMaxDomainOctets = 255;
inline constexpr size_t kMaxPathOctets = 256;

// Octets of over-long command lines (past kMaxCommandLineOctets; counted before their LF) one
// session may send in all. Each such line gets "500 5.5.2" and the session stays in sync; once
// the sum reaches this (even inside a line whose LF has not come) the session answers "500 5.5.2"
// and "421 4.7.0" and closes (end reason "too-long-line") instead of reading on. No client has a
// reason to send a command line over 512 octets (RFC 4954 section 4 allows an AUTH line of
// 12,288); without this bound a client of 100 KB lines is read for 20 x 100 KB before the error
// limit ends it, with it for two lines. Postfix reads about 40 KB of such a client
// (line_length_limit 2,048 per piece, 20 pieces to smtpd_hard_error_limit).
inline constexpr size_t kMaxOverlongCommandOctets = 128 * 1024;

// DATA input (raw octets after the 354, dot-stuffing and the final "." CR LF included) or BDAT
// content of one transaction that is far past max_message_size is not read to its end: the session
// answers "552 5.3.4" and closes (end reason "too-big-stream"). A message somewhat over the limit
// (a client that did not use SIZE) is still read to its end, refused with 552, and the session goes
// on; only a stream past max_message_size + max(max_message_size / 2, 1 MiB) is cut. Without it an
// endless DATA is read and discarded until timeouts.data_s, at whatever rate the client can send.
inline constexpr uint64_t kMinOversizeSlackOctets = 1024 * 1024;
constexpr uint64_t StreamCutOctets(uint64_t max_message_size) {
  const uint64_t slack = std::max<uint64_t>(max_message_size / 2, kMinOversizeSlackOctets);
  return max_message_size > UINT64_MAX - slack ? UINT64_MAX : max_message_size + slack;
}

// The body buffer of a message being received: when it is full the session hands it to the store
// (a fragment) and goes on with the next one, so a session holds at most two of these (one being
// written, one filling) whatever the message size (DESIGN.md section 6).
inline constexpr size_t kStreamChunkBytes = 256 * 1024;

// Client input held while a delivery is outstanding (the client may pipeline after the end of a
// message). Beyond this the session answers the outstanding message, then 421 and closes.
inline constexpr size_t kMaxPendingInputBytes = 256 * 1024;

// Protocol errors (500, 501, 502, 503, 555 replies, 530 for a command that needs TLS first, 554 for
// STARTTLS over TLS) one session may make before it is disconnected with 421, as Postfix's
// smtpd_hard_error_limit (default 20). This is the default only: the session reads
// `[limits] max_errors` from its Snapshot (core::LimitsConfig::kDefaultMaxErrors is this value).
inline constexpr int kMaxProtocolErrors = 20;

// RCPT commands refused with 452 for exceeding max_recipients that one transaction may send before
// each further one also counts as a protocol error (so a flood of thousands of RCPT ends in 421
// instead of being answered forever), as Postfix's smtpd_recipient_overshoot_limit (default 1000).
inline constexpr int kMaxRecipientOvershoot = 1000;

}  // namespace ringmx::smtp
