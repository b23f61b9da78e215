// Protocol size limits of the SMTP server side, in one place so that the session, the parsers and
// their tests agree. Each value cites the rule it implements.
#pragma once

#include <stddef.h>

namespace ringmx::smtp {

// RFC 5321 section 4.5.3.1.4: a command line is at most 512 octets including the CRLF. The session
// never buffers more than this of one command line, whatever the client sends.
inline constexpr size_t kMaxCommandLineOctets = 512;

// RFC 5321 section 4.5.3.1.6: a text line is at most 1000 octets including the CRLF, so 998 octets
// of content (counted after dot-unstuffing, as stored).
inline constexpr size_t kMaxTextLineOctets = 998;

// RFC 5321 section 4.5.3.1.1-3: local-part 64 octets, domain 255 octets, and a whole path
// (reverse-path or forward-path, angle brackets and any source route included) 256 octets.
inline constexpr size_t kMaxLocalPartOctets = 64;
inline constexpr size_t kMaxDomainOctets = 255;
inline constexpr size_t kMaxPathOctets = 256;

// Client input held while a delivery is outstanding (the client may pipeline after the end of a
// message). Beyond this the session answers the outstanding message, then 421 and closes.
inline constexpr size_t kMaxPendingInputBytes = 256 * 1024;

// Protocol errors (500, 501, 502, 503, 555 replies, 530 for a command that needs TLS first, 554 for
// STARTTLS over TLS) one session may make before it is disconnected with 421, as Postfix's
// smtpd_hard_error_limit (default 20).
inline constexpr int kMaxProtocolErrors = 20;

// RCPT commands refused with 452 for exceeding max_recipients that one transaction may send before
// each further one also counts as a protocol error (so a flood of thousands of RCPT ends in 421
// instead of being answered forever), as Postfix's smtpd_recipient_overshoot_limit (default 1000).
inline constexpr int kMaxRecipientOvershoot = 1000;

}  // namespace ringmx::smtp
