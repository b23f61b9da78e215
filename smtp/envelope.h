// The envelope of one SMTP transaction and the spool-record bytes built from it at the end of
// DATA/BDAT: the Received trace header (RFC 5321 section 4.4) and the `<id>.json` envelope
// (DESIGN.md section 6). Pure: the time comes in as a value.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

#include "policy/policy.h"

namespace ringmx::smtp {

// One MAIL FROM parameter as accepted; keyword upper-cased.
struct MailParam {
  std::string keyword;
  std::string value;
  bool has_value = false;
};

// What MAIL and RCPT established. Shard-local; owned by the session and reused per transaction.
struct Envelope {
  std::string mail_from;  // mailbox as written, "" for the null reverse-path
  std::vector<MailParam> mail_params;
  std::vector<std::string> rcpt_to;  // accepted recipients in order, as written
  bool smtputf8 = false;             // MAIL FROM carried SMTPUTF8 (RFC 6531)
  bool body_8bitmime = false;        // BODY=8BITMIME (RFC 6152); 7BIT otherwise

  void Clear() {
    mail_from.clear();
    mail_params.clear();
    rcpt_to.clear();
    smtputf8 = false;
    body_8bitmime = false;
  }
};

// Session facts the record needs besides the envelope. Views must outlive the Build* calls.
struct TraceContext {
  std::string_view id;        // queue id
  absl::Time received_at;     // end of data
  std::string_view hostname;  // our name (Snapshot config.hostname)
  std::string_view helo;      // the client's HELO/EHLO argument
  bool ehlo = false;          // the client said EHLO (not HELO)
  const policy::ConnectionFacts* facts = nullptr;
  uint64_t size = 0;  // message octets, Received header excluded
};

// The "with" protocol keyword (RFC 3848, RFC 6531): SMTP after HELO; after EHLO ESMTP, ESMTPS
// with TLS, ESMTPA with AUTH, ESMTPSA with both, and UTF8SMTP/UTF8SMTPS/UTF8SMTPA/UTF8SMTPSA
// when the transaction used SMTPUTF8.
std::string_view ProtocolName(bool ehlo, bool smtputf8, bool tls, bool auth);

// The Received header, CRLF-terminated, folded with CRLF TAB:
//   Received: from <helo> (<client address literal>)
//   \t(using <version> with cipher <cipher> (<bits>/<alg bits> bits))       with TLS
//   \t<client certificate comment>                                         with TLS
//   \tby <hostname> (ringmx) with <protocol> id <id>
//   \tfor <rcpt>; <date>            when there is exactly one recipient, else
//   \tby <hostname> (ringmx) with <protocol> id <id>;
//   \t<date>
// The TLS lines are Postfix's (smtpd_tls_received_header): the client certificate comment is
//   (Client CN "<subject CN>", Issuer "<issuer CN>" (verified OK))    or (... (not verified))
// when the client presented a certificate, else "(Client did not present a certificate)" when the
// listener asked for one and "(No client certificate requested)" when it did not. The HELO name
// is printed with octets outside 0x21-0x7E and "()\;" replaced by '?', so a client cannot forge
// structure in our header; certificate names are printed in quotes with '"' and '\' escaped and
// other octets outside 0x20-0x7E replaced by '?'. No line exceeds 998 octets. The TLS lines
// appear when facts->tls_facts is set.
std::string BuildReceivedHeader(const Envelope& envelope, const TraceContext& context);

// The `<id>.json` envelope, one JSON object:
//   id, received_at (RFC 3339 UTC, microseconds), mail_from, mail_params {KEYWORD: value or true},
//   rcpt_to [..], client {address, port}, local {address, port}, listener, helo, protocol,
//   smtputf8, body_type ("7BIT" | "8BITMIME"), size, tls, auth (null or the identity).
// `tls` is null without TLS, else
//   {version, cipher, cipher_bits, sni (string, null if none), sni_fallback, ktls, implicit,
//    client_cert: {result ("none" | "verified" | "not-verified"), subject, issuer, sha256,
//                  verify_error}}
// where subject and issuer are RFC 2253 text, sha256 the lower-case hex fingerprint, all three
// null when result is "none"; verify_error is null unless there is an error text.
std::string BuildEnvelopeJson(const Envelope& envelope, const TraceContext& context);

// "Mon, 2 Jan 2006 15:04:05 +0000" (RFC 5322 section 3.3), always UTC.
std::string FormatRfc5322Date(absl::Time time);
// "2006-01-02T15:04:05.000000Z" (RFC 3339), always UTC with microseconds.
std::string FormatRfc3339Micros(absl::Time time);

}  // namespace ringmx::smtp
