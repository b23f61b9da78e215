// The envelope of one SMTP transaction and the spool-record bytes built from it at the end of
// DATA/BDAT: the Received trace header (RFC 5321 section 4.4) and the `<id>.json` envelope
// (DESIGN.md section 6), and the reader of that envelope for the delivery driver
// (ParseStoredEnvelope). Pure: the time comes in as a value.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "policy/policy.h"
#include "smtp/dsn_params.h"

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
  // RFC 3461 RET and ENVID of MAIL FROM (also kept, as sent, in `mail_params`).
  DsnMailParams dsn;
  // RFC 3461 NOTIFY and ORCPT of each accepted recipient: rcpt_dsn[i] belongs to rcpt_to[i]. The
  // session keeps both the same length; an entry missing at the end (an envelope built by hand)
  // reads as a recipient without DSN parameters.
  std::vector<DsnRcptParams> rcpt_dsn;

  void Clear() {
    mail_from.clear();
    mail_params.clear();
    rcpt_to.clear();
    smtputf8 = false;
    body_8bitmime = false;
    dsn = DsnMailParams{};
    rcpt_dsn.clear();
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
//   rcpt_to [..], client {address, port}, local {address, port}, proxied_by (null, or the PROXY
//   protocol balancer's {address, port} when the client came through one), listener, helo,
//   protocol, smtputf8, body_type ("7BIT" | "8BITMIME"), size, tls, auth (null or the identity),
//   dsn {ret ("FULL" | "HDRS" | null), envid (decoded, or null)},
//   rcpt_dsn [one per rcpt_to: {notify (null when not given, ["NEVER"], or a non-empty subset of
//             "SUCCESS", "FAILURE", "DELAY" in that order), orcpt (null or {addr_type, address},
//             the address decoded)}].
// `tls` is null without TLS, else
//   {version, cipher, cipher_bits, sni (string, null if none), sni_fallback, ktls, implicit,
//    client_cert: {result ("none" | "verified" | "not-verified"), subject, issuer, sha256,
//                  verify_error}}
// where subject and issuer are RFC 2253 text, sha256 the lower-case hex fingerprint, all three
// null when result is "none"; verify_error is null unless there is an error text.
std::string BuildEnvelopeJson(const Envelope& envelope, const TraceContext& context);

// What the delivery driver needs from a stored `<id>.json` envelope. The queue record's sender
// and recipients stay authoritative for addresses (the JSON replaces invalid UTF-8 by U+FFFD);
// `rcpt_dsn` is indexed like the record's recipients, which are the envelope's `rcpt_to`.
struct StoredEnvelope {
  std::string id;
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  bool smtputf8 = false;
  bool body_8bitmime = false;
  std::string client_address;  // as written ("192.0.2.1", "2001:db8::1"); "" when absent
  // The balancer's address when the client came through a PROXY header; "" when null or absent
  // (envelopes written before ringmx took the PROXY protocol).
  std::string proxied_by_address;
  std::string helo;
  std::string protocol;  // "ESMTPS" ...; "" when absent
  DsnRet ret = DsnRet::kUnspecified;
  std::string envid;  // decoded; "" when none (an ENVID is never empty)
  // One per rcpt_to, in order; defaults (no NOTIFY, no ORCPT) for envelopes written before
  // ringmx accepted DSN parameters.
  std::vector<DsnRcptParams> rcpt_dsn;
};

// Reads an envelope written by BuildEnvelopeJson, by this version or an earlier one (fields it
// does not know are ignored; absent ones take the defaults above). Checks what it reads: the
// text must be one JSON object; mail_from a string and rcpt_to an array of strings (both
// required); every other field it reads, when present, must have the type BuildEnvelopeJson
// writes (null allowed where it writes null); ret must be "FULL" or "HDRS"; envid and ORCPT
// addresses must be what dsn_params accepts (printable US-ASCII, within RFC 3461's lengths);
// ORCPT's addr_type an atom; notify a non-empty list of known keywords, "NEVER" alone; rcpt_dsn,
// when present, as long as rcpt_to. Returns InvalidArgument saying which field is wrong.
absl::StatusOr<StoredEnvelope> ParseStoredEnvelope(std::string_view envelope_json);

// "Mon, 2 Jan 2006 15:04:05 +0000" (RFC 5322 section 3.3), always UTC.
std::string FormatRfc5322Date(absl::Time time);
// "2006-01-02T15:04:05.000000Z" (RFC 3339), always UTC with microseconds.
std::string FormatRfc3339Micros(absl::Time time);

}  // namespace ringmx::smtp
