// The SMTP session's private state, shared by the files that implement smtp::Session
// (session.cc: commands and the connection's life; session_data.cc: DATA, BDAT and streaming to
// the store; session_auth.cc: AUTH and checks answered later). Not part of any API.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/command.h"
#include "smtp/data_decoder.h"
#include "smtp/envelope.h"
#include "smtp/internal/milter_chain.h"
#include "smtp/sasl.h"
#include "smtp/session.h"

namespace ringmx::smtp {

// What happens to the octets of the BDAT chunk being read.
enum class Session::Disposition : uint8_t {
  kStore,          // part of the message (the decoder may still refuse it)
  kNeedMail,       // RFC 3030: consumed, then 503 (no MAIL)
  kNeedRcpt,       // consumed, then 503 (no accepted RCPT)
  kNeedTls,        // consumed, then 530 (tls_required and no TLS yet)
  kMilterRefused,  // consumed, then the milters' refusal of the transaction's DATA
};

namespace internal {

enum class Mode : uint8_t {
  kCommand,  // reading command lines
  kData,     // after 354: message data until CR LF "." CR LF
  kChunk,    // reading the octets of a BDAT chunk
};

enum class Hello : uint8_t { kNone, kHelo, kEhlo };

// What the session does once the milters have answered (State::milter_wait).
enum class MilterWait : uint8_t {
  kNone,
  kConnect,       // the greeting
  kHelo,          // the EHLO/HELO reply
  kMail,          // 250 to MAIL
  kRcpt,          // 250 to RCPT
  kRejectedRcpt,  // our own refusal of a RCPT
  kData,          // 354
  kBdat,          // the first BDAT chunk of the transaction
  kUnknown,       // 500 to an unknown command
  kContentPiece,  // a piece of the body: on to the store
  kContentEnd,    // the end of the message
};

// The largest client header section held back while milters see a message (docs/milter.md).
inline constexpr size_t kMaxMilterHeaderBytes = 256 * 1024;

constexpr bool IsBlank(char c) { return c == ' ' || c == '\t'; }

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && StartsWithIgnoreCase(a, b);
}

// Decimal digits to uint64_t, saturating at UINT64_MAX (a SIZE that large exceeds any limit).
// `text` cut to 256 octets, every byte outside printable ASCII and every '"' and '\\' made '?':
// a client's claim (an AUTH user name) safe inside a log line's quotes, as Postfix logs
// sasl_username.
inline std::string PrintableForLog(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 256))
    out.push_back(c > 0x20 && c < 0x7F && c != '"' && c != '\\' ? c : '?');
  return out;
}

inline uint64_t ParseDecimalSaturating(std::string_view digits) {
  uint64_t v = 0;
  for (char c : digits) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return UINT64_MAX;
    v = v * 10 + d;
  }
  return v;
}

inline constexpr std::string_view kTlsRequiredReply =
    "530 5.7.0 Must issue a STARTTLS command first";
inline constexpr std::string_view kTooBigReply =
    "552 5.3.4 Message size exceeds fixed maximum message size";

}  // namespace internal

struct Session::State {
  using Mode = internal::Mode;
  using Hello = internal::Hello;
  bool started = false;
  bool shutdown = false;           // OnShutdown() was called: 421 at the next opportunity
  bool awaiting_delivery = false;  // a `deliver` is out; input goes to `pending`
  bool pending_overflow = false;   // more than kMaxPendingInputBytes arrived while awaiting
  bool discarding_line = false;    // inside an over-long command line, dropping through its LF
  // Octets of the over-long line being dropped (`discarding_line`), before its LF.
  size_t discarded_line_octets = 0;
  // Octets (before their LF) of the over-long command lines completed so far, for
  // kMaxOverlongCommandOctets. Like `errors`, the connection's: a TLS upgrade keeps it.
  size_t overlong_octets = 0;
  // From an accepted STARTTLS to OnTlsEstablished()/OnTlsFailed(). While set, every input octet
  // is dropped unread: plaintext sent after STARTTLS must never run after the upgrade
  // (CVE-2011-0411).
  bool tls_pending = false;
  Mode mode = Mode::kCommand;
  Hello hello = Hello::kNone;
  int errors = 0;  // protocol errors so far (kMaxProtocolErrors)
  std::string helo;

  // AUTH (session_auth.cc). `sasl` is set from an AUTH command until its exchange ends; while
  // `sasl_active` the next command line is the client's SASL response, not a command.
  std::unique_ptr<SaslServer> sasl;
  bool sasl_active = false;
  // The check the session waits for (Output::check), 0 if none; `next_token` numbers them.
  uint64_t check_token = 0;
  uint64_t next_token = 0;
  CheckRequest::Kind check_kind = CheckRequest::Kind::kCredentials;
  std::string check_user;       // kCredentials: the user being verified
  std::string check_mechanism;  // kCredentials: its SASL mechanism
  // kRecipient: the RCPT waiting for its verification, and its DSN parameters.
  std::string check_rcpt;
  DsnRcptParams check_rcpt_dsn;
  std::string check_rcpt_params;  // its ESMTP parameter text, for the milters

  // The transaction. `in_mail` is true from an accepted MAIL to its end (delivery, refusal,
  // RSET, EHLO/HELO).
  bool in_mail = false;
  Envelope envelope;
  bool bdat_used = false;  // a BDAT chunk was taken in this transaction (DATA is now 503)
  // RCPT commands refused with 452 for exceeding max_recipients in this transaction, up to
  // kMaxRecipientOvershoot; counted as protocol errors beyond that.
  int recipient_overshoot = 0;
  bool rejection_counted = false;  // stats already count this transaction as refused

  // The BDAT chunk being read (mode == kChunk).
  Disposition chunk_disposition = Disposition::kStore;
  uint64_t chunk_size = 0;
  uint64_t chunk_remaining = 0;
  bool chunk_last = false;

  DataDecoder decoder;
  // Raw octets of the current DATA consumed so far (mode == kData), for StreamCutOctets().
  uint64_t data_octets = 0;
  // The start of a command line whose LF has not arrived. Invariant: size() <
  // LineLimit() (kMaxCommandLineOctets, or kMaxSaslLineBytes for AUTH); a longer line is dropped
  // (`discarding_line`) instead of buffered.
  std::string line;
  // Input that arrived while the session was blocked (a delivery, a stored piece or a check
  // outstanding). Invariant: size() <= kMaxPendingInputBytes.
  std::string pending;
  // Streaming (Output::fragment). `stream_id` is minted with the first piece; `fragments` pieces
  // have been handed over in this transaction. While `fragment_outstanding` the store has not
  // answered the last one; `stream_failed`: it answered with an error (the message gets 452).
  std::string stream_id;
  uint32_t fragments = 0;
  bool fragment_outstanding = false;
  bool stream_failed = false;
  // The data ended while a piece was outstanding: Deliver() once it is stored.
  bool deliver_after_fragment = false;
  // The size the client announced with MAIL FROM SIZE= (RFC 1870) for this transaction, 0 if
  // none; receiving_large_message() looks at it.
  uint64_t announced_size = 0;
  // Id and size of the outstanding delivery; OnDelivered() answers with them.
  std::string outstanding_id;
  uint64_t outstanding_size = 0;
  // Its log line's fields after the id (sender, recipients, size, TLS, AUTH identity): logged
  // with the store's answer, so that the queue id leads from intake to the delivery lines.
  std::string outstanding_log;

  // Milters (session_milter.cc); `milters` is null when the listener has none.
  std::unique_ptr<internal::MilterChain> milters;
  // Set while the milters' answer is awaited: what continues then. Input waits meanwhile.
  internal::MilterWait milter_wait = internal::MilterWait::kNone;
  absl::Time milter_parked_at;       // when the wait began (the deadline moves by the wait)
  absl::Time milter_saved_deadline;  // the session's deadline before the wait
  bool milter_ehlo = false;          // kHelo: EHLO (not HELO)
  std::string milter_rcpt;           // kRcpt/kRejectedRcpt: the mailbox
  DsnRcptParams milter_rcpt_dsn;     // kRcpt: its DSN parameters
  std::string milter_reply;          // kRejectedRcpt: our refusal; kUnknown: the 500
  std::string auth_mechanism;        // the SASL mechanism of a successful AUTH
  // The transaction is shown to the milters (MAIL on a session milters_skip does not exempt).
  bool milter_txn = false;
  std::string txn_id;  // the queue id minted at MAIL for the milters' `i` macro
  // A milter discarded the message: 250, but nothing is stored.
  bool milter_discard = false;
  // The milters refused the DATA stage of a BDAT transaction: every chunk up to LAST gets it.
  bool milter_data_refused = false;
  // A milter refused the message's content; answered at the end of the data.
  std::optional<internal::MilterOutcome> milter_refusal;
  // The content goes to the milters: the client's header section is held here (not streamed)
  // until its end, at most kMaxMilterHeaderBytes; `milter_header_scan` is where the scan for its
  // end resumes. Then the body streams: `milter_body` is the piece in the milters' hands, handed
  // to the store once they took it (at the end: the record's tail).
  bool milter_content = false;
  bool milter_headers_done = false;
  bool milter_headers_sent = false;
  bool milter_header_too_large = false;
  bool milter_end_started = false;
  size_t milter_header_scan = 0;
  bool milter_header_field_open = false;  // a field started: a WSP line folds into it
  std::string milter_headers;
  core::BodyBlocks milter_body;
  uint64_t milter_body_bytes = 0;  // body octets handed to the store as fragments
  std::vector<internal::MilterOutcome::Changes> milter_changes;
  // A milter quarantined the message (its name and reason): stored on hold.
  std::optional<std::string> milter_quarantine;
  std::string milter_quarantine_by;
};

}  // namespace ringmx::smtp
