// The outbound side of SMTP and LMTP (RFC 5321, RFC 2033): a pure client engine that drives one
// connection to a next hop, like smtp::Session does for the inbound side. Bytes from the hop in,
// bytes to send and per-recipient results out; it never touches a socket, a timer, OpenSSL or
// the clock. net/ (the delivery driver) connects, moves the bytes, runs the TLS handshake when
// asked, enforces timeouts (waiting_for() says which) and records the results in the queue.
//
// One connection carries many messages (one transaction each, all of the message's recipients
// for this hop), uses PIPELINING (RFC 2920) and CHUNKING (RFC 3030) where the hop offers them,
// and never downgrades: an 8-bit message to a hop without 8BITMIME, or an SMTPUTF8 message to a
// hop without SMTPUTF8, fails for its recipients without sending the data.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/dsn_params.h"
#include "smtp/reply.h"

namespace ringmx::smtp {

enum class ClientProtocol : uint8_t { kSmtp, kLmtp };

// STARTTLS use on this connection (the route's `tls`): kNone never asks; kOpportunistic asks
// when the hop offers it and goes on in plaintext when it does not or refuses; kRequired fails
// the connection when the hop does not offer it or refuses it. Certificate checks are the
// driver's (it calls OnTlsFailed()).
enum class ClientTls : uint8_t { kNone, kOpportunistic, kRequired };

struct ClientConfig {
  ClientProtocol protocol = ClientProtocol::kSmtp;
  std::string helo_name;  // our hostname, sent in EHLO/HELO/LHLO
  ClientTls tls = ClientTls::kNone;
  bool use_pipelining = true;  // when offered (LMTP always pipelines: RFC 2033 section 4.1)
  bool use_chunking = true;    // BDAT when offered, DATA otherwise
};

// What the hop offered in its EHLO/LHLO reply (all false after HELO).
struct HopExtensions {
  bool pipelining = false;
  bool chunking = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool starttls = false;
  bool size = false;
  uint64_t max_size = 0;  // SIZE's parameter; 0: none given
};

// One message for this hop. The engine borrows `body`: the pieces must stay valid until the
// Output that reports `message_done` for it.
struct OutboundMessage {
  std::string sender;                   // reverse-path without <>; "" is the null sender
  std::vector<std::string> recipients;  // forward-paths without <>; not empty
  bool body_8bit = false;               // received with BODY=8BITMIME
  bool smtputf8 = false;                // received with SMTPUTF8
  // The stored message bytes (our Received header first), CRLF line ends, in order. The engine
  // dot-stuffs them for DATA and sends them as they are with BDAT.
  std::vector<std::string_view> body;
  // A recipient probe (verification at RCPT time, issue 12 item 5): MAIL and RCPT only, then
  // RSET; each recipient's result is its RCPT reply; `body` is ignored.
  bool probe = false;
  // The sender's RFC 3461 wishes, as stored (smtp/envelope.h StoredEnvelope). Passed on only to a
  // hop that offers DSN (extensions().dsn), and never with a probe: MAIL gets RET= and ENVID=
  // (xtext), RCPT of recipient i gets NOTIFY= and ORCPT= from rcpt_dsn[i]. A hop without DSN
  // gets none of them; the driver then owes the sender any success DSN itself (RFC 3461 section
  // 5.2.2: "relayed"). `envid` "" and a missing or defaulted rcpt_dsn entry send nothing.
  DsnRet ret = DsnRet::kUnspecified;
  std::string envid;                    // decoded
  std::vector<DsnRcptParams> rcpt_dsn;  // empty, or one per recipient
};

// The final result for one recipient of the current message.
struct RecipientResult {
  enum class Status : uint8_t {
    kSent,      // the hop took responsibility (2yz), or a probe's RCPT was accepted
    kDeferred,  // try again later: a 4yz, or the connection failed (lost, timeout, protocol)
    kBounced,   // a 5yz from the hop, or our own permanent refusal (`local`)
  };
  size_t index = 0;  // into OutboundMessage::recipients
  Status status = Status::kDeferred;
  // The reply that decided: the hop's (RCPT, MAIL, DATA/BDAT, or after the data), or one we made
  // up when `local` (no 8BITMIME, lost connection, protocol error).
  Reply reply;
  bool local = false;
  // The hop's reply to this recipient's RCPT, when it got that far (code 0 otherwise).
  Reply rcpt_reply;
};

// What the driver must do after a call into the Client. Calls append; the driver executes and
// then calls Clear(). Order: send `send`, then start TLS or close.
struct ClientOutput {
  std::string send;  // bytes for the hop
  // Final results of the current message's recipients, each recipient once, in the order they
  // became final.
  std::vector<RecipientResult> results;
  // The current message is finished (every recipient has a result); the engine no longer
  // borrows its body and takes the next one with Send().
  bool message_done = false;
  // Once `send` is out (it ends with "STARTTLS\r\n"'s answer already read: nothing more to
  // send), run the TLS handshake as the client, then call OnTlsEstablished() or OnTlsFailed().
  bool start_tls = false;
  // Close the connection once `send` is out. The engine is finished.
  bool close = false;
  // Why the connection ended, when it failed ("" after an orderly QUIT), for the log.
  std::string error;

  void Clear() {
    send.clear();
    results.clear();
    message_done = false;
    start_tls = false;
    close = false;
    error.clear();
  }
};

// One connection to a next hop. Owned by the net/ delivery driver; shard-local.
class Client {
 public:
  // What the engine waits for; the driver picks the timeout (Postfix's smtp_*_timeout).
  enum class Waiting : uint8_t {
    kGreeting,  // the 220 greeting
    kHelo,      // the reply to EHLO, HELO or LHLO
    kStartTls,  // the reply to STARTTLS
    kTls,       // the driver's TLS handshake
    kMail,      // replies to MAIL/RCPT (and DATA's 354 when pipelined), or to RSET
    kData,      // DATA's 354
    kDataDone,  // the reply (LMTP: replies) after the message data
    kIdle,      // nothing: the connection is ready for a message (or QUIT)
    kQuit,      // the reply to QUIT
    kClosed,    // the engine is finished
  };

  explicit Client(ClientConfig config);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Bytes from the hop; may end anywhere and is valid only during the call.
  void OnInput(std::string_view input, ClientOutput& out);
  // After `start_tls`: the handshake succeeded; the engine sends EHLO/LHLO again (RFC 3207
  // section 4.2) and forgets what it learnt in plaintext.
  void OnTlsEstablished(ClientOutput& out);
  // The handshake failed (or the certificate did not verify): the connection is lost. The
  // driver closes it; the current message's recipients are deferred.
  void OnTlsFailed(std::string_view why, ClientOutput& out);
  // The hop closed the connection (or the driver's timeout for waiting_for() passed, or a write
  // failed): the current message's unfinished recipients are deferred with `why`.
  void OnClosed(std::string_view why, ClientOutput& out);

  // Takes the next message; only while can_send(). Starts at once when the connection is idle,
  // otherwise once the greeting and EHLO (and STARTTLS) are done.
  void Send(const OutboundMessage& message, ClientOutput& out);
  // Ends the connection with QUIT once the current message (if any) is finished.
  void Quit(ClientOutput& out);

  bool can_send() const { return !message_ && !quit_ && waiting_ != Waiting::kClosed; }
  Waiting waiting_for() const { return waiting_; }
  // What the hop offered (valid once past kHelo).
  const HopExtensions& extensions() const { return ext_; }
  bool tls_active() const { return tls_active_; }
  const ClientConfig& config() const { return config_; }

 private:
  enum class Expect : uint8_t {
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kMail,
    kRcpt,
    kData,
    kDataDone,
    kDiscardDot,
    kRset,
    kQuit,
  };

  void OnReply(const Reply& reply, ClientOutput& out);
  void OnHelloReply(Expect what, const Reply& reply, ClientOutput& out);
  void OnTransactionReply(Expect what, const Reply& reply, ClientOutput& out);
  void SendHello(bool ehlo, ClientOutput& out);
  void AfterHello(ClientOutput& out);
  void Idle(ClientOutput& out);
  void BeginTransaction(ClientOutput& out);
  void SendRcpt(size_t index, ClientOutput& out);
  void AfterRcpts(ClientOutput& out);
  void SendBody(ClientOutput& out);
  void SendRset(ClientOutput& out);
  void Command(std::string_view line, Expect expect, ClientOutput& out);
  // Records a final result for recipient `index` (once).
  // The status follows the reply's class unless `status` says otherwise.
  void Result(size_t index, const Reply& reply, bool local,
              std::optional<RecipientResult::Status> status, ClientOutput& out);
  // Results for every recipient still without one.
  void ResultForRest(const Reply& reply, bool local, std::optional<RecipientResult::Status> status,
                     ClientOutput& out);
  void FinishMessage(ClientOutput& out);
  // The connection failed (refused, lost, untrusted): defers every open recipient with `reply`
  // (the hop's) or a local 451 4.4.2 `why`, then closes, after a QUIT when `quit` (the hop
  // still talks sense).
  void Fail(std::string why, const Reply* reply, bool quit, ClientOutput& out);

  ClientConfig config_;
  ReplyParser parser_;
  HopExtensions ext_;
  Waiting waiting_ = Waiting::kGreeting;
  bool tls_active_ = false;
  bool tls_declined_ = false;  // the hop refused STARTTLS (opportunistic: go on in plaintext)
  bool pipelining_ = false;    // this connection pipelines (offered and wanted, or LMTP)
  bool quit_ = false;          // Quit() was called
  // Replies owed by the hop, in the order of the commands sent (RFC 2920).
  std::deque<Expect> expect_;

  // The current message; set from Send() until FinishMessage().
  std::optional<OutboundMessage> message_;
  bool started_ = false;           // its transaction has begun (MAIL sent)
  bool mail_ok_ = false;           // MAIL was accepted: a transaction is open at the hop
  bool mail_failed_ = false;       // MAIL was refused: every recipient has its result
  size_t rcpt_sent_ = 0;           // RCPTs sent
  size_t rcpt_replies_ = 0;        // RCPT replies received
  std::vector<size_t> accepted_;   // recipients accepted at RCPT, in order
  size_t data_replies_ = 0;        // LMTP: replies after the data so far
  std::vector<bool> done_;         // per recipient: has its final result
  std::vector<Reply> rcpt_reply_;  // per recipient: its RCPT reply
  size_t open_ = 0;                // recipients without a result
};

// Appends `piece` to `out` with RFC 5321 section 4.5.2 transparency: a '.' at the start of a
// line is doubled. `at_line_start` carries the state across pieces (true before the first).
void AppendDotStuffed(std::string_view piece, bool& at_line_start, std::string& out);

}  // namespace ringmx::smtp
