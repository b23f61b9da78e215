// Builds delivery status notifications (RFC 3464): the message ringmx sends from the null
// reverse-path to a message's sender when it cannot deliver (a failure DSN, "bounce"), when
// delivery is still being retried (a delay DSN) and, when the sender asked with NOTIFY=SUCCESS
// (RFC 3461), when it delivered or relayed. Pure: the delivery driver gathers the facts (the
// message, its envelope, each recipient's outcome, the time) and queues what this returns through
// `[delivery] bounce_next_hop`. See docs/dsn.md for the format and the choices below.
//
// The result is a complete RFC 5322 message, CRLF line ends, no line over 998 octets:
//   From: Mail Delivery System <MAILER-DAEMON@hostname>, To: <sender>, Subject (per kind), Date,
//   Message-ID, Auto-Submitted: auto-replied (RFC 3834), MIME-Version, Content-Type:
//   multipart/report; report-type=delivery-status; boundary="..." (a boundary that occurs
//   nowhere in the parts' content nor anywhere in the original message), and three parts:
//   1. text/plain (US-ASCII): what happened, in words, one paragraph per recipient.
//   2. message/delivery-status: per-message fields (Original-Envelope-Id when ENVID was given,
//      Reporting-MTA: dns; hostname, Arrival-Date, X-Ringmx-Queue-ID) and one block per reported
//      recipient (Original-Recipient when ORCPT was given, Final-Recipient, Action, Status,
//      Remote-MTA when known, Diagnostic-Code when known (folded, at most
//      kMaxDsnDiagnosticBytes), Last-Attempt-Date when known, Will-Retry-Until for delays).
//   3. the original: message/rfc822 (the whole message) or text/rfc822-headers (its header
//      section), see DsnRequest::ret. A part holding 8-bit octets says Content-Transfer-Encoding:
//      8bit, and so does the top level (RFC 2045 section 6.4); the DSN is then an 8BITMIME
//      message (DsnMessage::body_8bitmime). A part that is not valid MIME content (a line over 998
//      octets, a bare CR or LF, a NUL: never true of a message ringmx accepted) is not attached
//      and the text says so.
//
// Never for the null reverse-path: a DSN is itself sent from <>, and answering one would let two
// systems bounce each other forever (RFC 5321 section 4.5.5, RFC 3464 section 2).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

#include "smtp/dsn_params.h"

namespace ringmx::smtp {

// A Diagnostic-Code longer than this (after control and 8-bit octets became '?') is cut and ends
// in "...". Long enough for any sane multi-line reply; bounded so that a hop cannot make our DSN
// huge.
inline constexpr size_t kMaxDsnDiagnosticBytes = 2000;
// Default of DsnRequest::full_message_limit: without RET, a failure DSN carries the whole
// message when it is at most this size, else only its headers.
inline constexpr size_t kDefaultDsnFullMessageLimit = 128 * 1024;

// Which report a DSN is. One DSN reports one kind; recipients with another outcome are left out.
enum class DsnKind : uint8_t {
  kFailure,  // reports Action failed, for NOTIFY FAILURE (the default)
  kDelay,    // reports Action delayed, for NOTIFY DELAY (the default)
  kSuccess,  // reports Action delivered or relayed, for NOTIFY SUCCESS only
};

// RFC 3464 section 2.3.3.
enum class DsnAction : uint8_t {
  kFailed,
  kDelayed,
  kDelivered,  // a final hop (LMTP, or an SMTP hop as the mailbox) took it
  kRelayed,    // handed to an SMTP hop that does not offer DSN: no further report will come
};

// One recipient of the original message and what became of it.
struct DsnRecipient {
  std::string address;  // the RCPT TO mailbox as accepted (Final-Recipient)
  std::optional<DsnOrcpt> orcpt;
  DsnNotify notify;
  DsnAction action = DsnAction::kFailed;
  // RFC 3463 status "X.Y.Z" (class 2, 4 or 5). When empty or malformed: the enhanced code after
  // the reply code of an smtp `diagnostic` ("550 5.1.1 ..." gives 5.1.1) when there is one, else
  // X.0.0 with X = 5 (failed), 4 (delayed) or 2 (delivered, relayed). The class is not forced to
  // match the action: a message that expired while its hop answered 4xx is "failed" with the
  // last 4.x.x status, as Postfix reports it.
  std::string status;
  std::string remote_mta;  // the hop's host name or address; "" when none was reached
  // What explains the outcome: the hop's reply ("550 5.1.1 <a@b>: unknown user"; the lines of a
  // multi-line reply joined by spaces or CRLF) when `diagnostic_is_smtp`, else our own words
  // ("connection refused by 192.0.2.5", "message expired after 5 days"). "" for none.
  std::string diagnostic;
  // Diagnostic-Code type: "smtp" for a hop's reply (also an LMTP hop's, as Postfix writes it),
  // "X-Ringmx" for our own text.
  bool diagnostic_is_smtp = true;
  // Last-Attempt-Date; absl::InfinitePast() when there was none.
  absl::Time last_attempt = absl::InfinitePast();
  // Will-Retry-Until for delays (the end of the message's lifetime); ignored otherwise.
  absl::Time retry_until = absl::InfinitePast();
};

// Everything a DSN is built from. Views must outlive the BuildDsn call.
struct DsnRequest {
  DsnKind kind = DsnKind::kFailure;
  std::string_view hostname;  // ours (config hostname): Reporting-MTA, From, Message-ID
  // The queue id the DSN will be stored under: unique, so Message-ID is. Octets other than
  // [A-Za-z0-9.-] are dropped from the Message-ID.
  std::string_view dsn_id;
  std::string_view original_id;      // the original's queue id (X-Ringmx-Queue-ID); may be ""
  std::string_view sender;           // the original MAIL FROM mailbox; "" for <>
  std::optional<std::string> envid;  // ENVID, decoded
  DsnRet ret = DsnRet::kUnspecified;
  absl::Time arrival;  // when the original was received (Arrival-Date)
  absl::Time now;      // Date
  // The original as stored: our Received header, then the client's bytes (CRLF line ends).
  std::string_view message;
  // Without RET, a failure DSN returns the whole message up to this size, else its headers.
  // Delay and success DSNs return the headers only (RFC 3461 section 4.3: RET is about failures;
  // the sender still has the message and it is on its way). RET=HDRS always gives headers only;
  // RET=FULL gives the whole message on a failure whatever its size.
  size_t full_message_limit = kDefaultDsnFullMessageLimit;
  std::vector<DsnRecipient> recipients;
};

// A DSN to queue: sent MAIL FROM:<> (the null reverse-path) RCPT TO:<rcpt_to>.
struct DsnMessage {
  std::string rcpt_to;  // the original sender
  std::string bytes;    // the whole message, CRLF line ends
  // The message holds 8-bit octets (an 8-bit original attached): send it with BODY=8BITMIME.
  bool body_8bitmime = false;
  // The sender's address is not ASCII (the To header carries it as UTF-8, RFC 6532): send it
  // with SMTPUTF8.
  bool smtputf8 = false;
  // Indices into DsnRequest::recipients of the recipients it reports, in order.
  std::vector<size_t> reported;
  // What part 3 holds.
  enum class Returned : uint8_t { kFull, kHeaders, kNothing } returned = Returned::kNothing;
};

// Whether `recipient` belongs in a DSN of `kind`: its action matches the kind and its NOTIFY asks
// for it (NEVER never does).
bool DsnWanted(DsnKind kind, const DsnRecipient& recipient);

// Builds the DSN of `request.kind` for the recipients DsnWanted selects. nullopt when there is
// none to send: the sender is the null reverse-path (see the file comment), or no recipient is
// selected.
std::optional<DsnMessage> BuildDsn(const DsnRequest& request);

}  // namespace ringmx::smtp
