// The milter client engine: one milter's side of one SMTP session, as Postfix's smtpd_milters
// run it (protocol version 6, smtp/milter/codec.h). Pure, like smtp::Client: events and the
// milter's bytes in; bytes to send, a verdict per stage and the end-of-message changes out. It
// never touches a socket, a timer or the clock. net/ connects (the [[milter]]'s address), moves
// the bytes, enforces the timeouts (waiting_for() says which); smtp::Session runs one engine per
// listener milter and applies the verdicts (docs/milter.md).
//
// Stages, in order: Connect (sends OPTNEG first, then CONNECT once negotiated), Helo, then per
// transaction Mail, Rcpt..., Data, the content in pieces (ContentHeaders: every HEADER and EOH;
// ContentBody: BODY chunks, as the body streams in; ContentEnd: EOB), and Abort or Quit. Each
// event may be called only when idle(); its verdict comes in the Output of that call (when no
// reply is awaited: the milter said it will not send one, or asked not to get the event) or of a
// later OnInput(). ContentHeaders and ContentBody have no verdict of their own: the engine is
// idle() again once their packets are sent and answered, and a verdict comes only when the milter
// decides the message early (or fails); ContentEnd always ends with one.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "smtp/milter/codec.h"
#include "smtp/milter/message.h"
#include "smtp/reply.h"

namespace ringmx::smtp::milter {

// `default_action` of a [[milter]]: what a milter that is down, too slow, or talks nonsense
// stands for, for the rest of the SMTP session.
enum class DefaultAction : uint8_t { kTempfail, kAccept, kReject };

struct SessionConfig {
  std::string name;  // the [[milter]]'s name, for error texts
  DefaultAction default_action = DefaultAction::kTempfail;
  // The most bytes of changes (header names and values, addresses, a replacement body) one end of
  // message may ask for; more is an error (the default_action), so that a milter cannot make the
  // session hold more than a message's worth. The session passes policy.max_message_size.
  uint64_t max_changes_bytes = 64 * 1024 * 1024;
};

enum class Stage : uint8_t { kConnect, kHelo, kMail, kRcpt, kData, kContent, kUnknown };

// What a milter decided about one stage.
struct Verdict {
  enum class Kind : uint8_t {
    kContinue,  // go on
    // No objection to anything more: of this message (MAIL to end of message), or of the whole
    // connection (at Connect or Helo). The engine sends this milter nothing more for it.
    kAccept,
    kReject,    // refuse with `reply` (5yz): the recipient at kRcpt, else the command/message
    kTempfail,  // refuse with `reply` (4yz)
    kDiscard,   // accept the message and drop it (only after MAIL; at Connect/Helo: kContinue)
    kShutdown,  // `reply` (421) and close the SMTP connection
  };
  Stage stage = Stage::kConnect;
  Kind kind = Kind::kContinue;
  // kReject, kTempfail, kShutdown: what to answer. 'r' gives "550 5.7.1 Command rejected", 't'
  // "451 4.7.1 Service unavailable - try again later" (Postfix's texts), 'y' the milter's own
  // (`custom`), whose class decides between kReject and kTempfail.
  Reply reply;
  bool custom = false;
  // The milter failed (error in Output) and this is its default_action.
  bool failed = false;
  // kContent: the changes asked for before the final answer, in order (ApplyModifications()).
  std::vector<Modification> modifications;
};

// What the driver must do after a call. Calls append; the driver executes, then calls Clear().
struct Output {
  std::string send;                // bytes for the milter
  std::optional<Verdict> verdict;  // the answer to the pending event, once known
  bool progress = false;           // the milter said it is still working: restart the timeout
  // Close the milter connection once `send` is out; the engine is finished (every later event
  // gets the default_action, or kAccept after a connection-level accept).
  bool close = false;
  std::string error;  // why the milter failed, for the log (with the milter's name)

  void Clear() {
    send.clear();
    verdict.reset();
    progress = false;
    close = false;
    error.clear();
  }
};

// CONNECT's arguments (Postfix's milter8_conn_event).
struct ConnectInfo {
  // The client's verified name, or "[address]" when it has none (Sendmail's form).
  std::string hostname;
  Family family = Family::kInet;
  uint16_t port = 0;
  std::string address;  // "192.0.2.1", "2001:db8::1" (no "IPv6:" prefix), or a socket path
};

// One milter for one SMTP session. Owned by the net/ session driver; shard-local.
class Session {
 public:
  // Which timeout applies ([[milter]] connect_timeout_s is the driver's, before Connect()).
  enum class Waiting : uint8_t {
    kNothing,  // idle, or finished
    kCommand,  // OPTNEG or a reply to CONNECT..DATA: command_timeout_s
    kContent,  // replies to HEADER, EOH, BODY, EOB: content_timeout_s
  };

  explicit Session(SessionConfig config);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Macro values (Sendmail names: "j", "{daemon_name}"; braces optional here). The engine sends
  // those the stage's list names that have a value; set them before the event that needs them
  // (Postfix's defaults per stage: kDefaultMacros). An empty value is a value.
  void SetMacro(std::string_view name, std::string value);
  void ClearMacro(std::string_view name);

  // Events. Each needs idle(). Borrowed views are used only during the call, except Content's.
  void Connect(const ConnectInfo& info, Output& out);
  void Helo(std::string_view helo, Output& out);
  // `path` with its angle brackets, `args` the ESMTP parameters. An unfinished earlier
  // transaction is aborted first.
  void Mail(std::string_view path, std::span<const std::string> args, Output& out);
  void Rcpt(std::string_view path, std::span<const std::string> args, Output& out);
  // A recipient we refused ourselves, only when wants_rejected_rcpts() (SMFIP_RCPT_REJ): sent as
  // RCPT with {rcpt_mailer} "error", {rcpt_host} our enhanced code and {rcpt_addr} our reply
  // text, as Postfix does. Its verdict does not matter: the recipient stays refused.
  void RejectedRcpt(std::string_view path, std::span<const std::string> args,
                    const Reply& our_reply, Output& out);
  void Data(Output& out);
  // The client's message (our Received is not shown, as with Postfix), in three steps; each view
  // is borrowed until idle() again. ContentHeaders: the client's header section (the fields, and
  // optionally the empty line after them): one HEADER per field, then EOH. ContentBody: a piece
  // of the body, in BODY chunks of at most 65535 bytes (any number of calls; an empty piece sends
  // nothing). ContentEnd: EOB, whose replies carry the changes and the final verdict. After an
  // early verdict (the milter refused, accepted or discarded the message, or failed) the first
  // two do nothing and ContentEnd answers at once (kAccept, or the default_action).
  void ContentHeaders(std::string_view header_section, Output& out);
  void ContentBody(std::string_view piece, Output& out);
  // The same for a piece held in parts (a body's blocks, core/body_blocks.h), sent in order; a
  // BODY chunk does not span two parts. The views (not the span) are borrowed likewise.
  void ContentBody(std::span<const std::string_view> parts, Output& out);
  void ContentEnd(Output& out);
  // Ends the current transaction without a message (RSET, a refused MAIL or DATA, a lost
  // client): ABORT when the milter has one open. No reply; may be called any time.
  void Abort(Output& out);
  // An unknown SMTP command (the line without CR LF).
  void Unknown(std::string_view line, Output& out);
  // The SMTP session ends: QUIT and close. May be called any time.
  void Quit(Output& out);

  // Bytes from the milter; may end anywhere; valid only during the call.
  void OnInput(std::string_view input, Output& out);
  // The milter connection failed: refused, lost, a write failed, or the timeout for
  // waiting_for() passed. The pending event (if any) gets the default_action; so does every
  // later one.
  void OnError(std::string_view why, Output& out);

  bool idle() const { return pending_ == Pending::kNone && !piece_; }
  Waiting waiting_for() const;
  bool finished() const { return state_ == State::kFailed || state_ == State::kClosed; }
  // After negotiation: what the milter asked for.
  const OptNegReply& negotiated() const { return optneg_; }
  bool wants_rejected_rcpts() const { return (protocol_ & proto::kRcptRej) != 0; }
  // SMFIP_HDR_LEADSPC: pass to ApplyModifications().
  bool header_leading_space() const { return (protocol_ & proto::kHeaderLeadingSpace) != 0; }
  const SessionConfig& config() const { return config_; }

  // The macro lists we send by default, per MacroStage (Postfix's milter_*_macros, with
  // {client_addr} and {client_name} added to CONNECT), as OPTNEG would write them.
  static const std::string_view kDefaultMacros[kMacroStages];

 private:
  enum class State : uint8_t {
    kNew,                 // Connect() not called
    kNegotiating,         // OPTNEG sent
    kReady,               // events go to the milter
    kAcceptedConnection,  // 'a' at CONNECT/HELO: nothing more is sent
    kRejectedConnection,  // a refusal at CONNECT/HELO: every event gets `sticky_`
    kFailed,              // default_action for every event
    kClosed,              // after Quit()
  };
  // What the engine waits for.
  enum class Pending : uint8_t { kNone, kOptNeg, kReply };
  enum class ContentStep : uint8_t { kHeaders, kEoh, kBody, kBetween, kEob };

  // Sends the macros of `macro_stage` (if any), then the event unless the milter asked not to
  // get it (`no_flag`, SMFIP_NO*) or skips it (SMFIR_SKIP): `encode` appends the packet. Returns
  // true when a reply is awaited; false when none is (skipped, or `nr_flag`, SMFIP_NR*): the
  // caller goes on at once.
  template <typename Encode>
  bool Event(Stage stage, char command, std::optional<MacroStage> macro_stage, uint32_t no_flag,
             uint32_t nr_flag, Output& out, Encode encode);
  // The verdict kContinue for the event just handled (skipped, or no reply awaited).
  void Continue(Stage stage, Output& out);
  // The verdict for an event when the engine no longer talks to the milter; false if it does.
  bool Settled(Stage stage, Output& out);
  void SendMacros(char command, MacroStage stage, Output& out);
  void OnReply(const MilterReply& reply, Output& out);
  void OnOptNeg(const OptNegReply& reply, Output& out);
  void SendConnect(Output& out);
  void AdvanceContent(Output& out);
  void Finish(Verdict verdict, Output& out);
  void Fail(std::string why, Output& out);
  Verdict DefaultVerdict(Stage stage) const;

  SessionConfig config_;
  State state_ = State::kNew;
  Pending pending_ = Pending::kNone;
  Stage stage_ = Stage::kConnect;  // the stage of the pending event
  char pending_command_ = 0;       // the command whose reply is awaited
  ReplyDecoder decoder_;
  OptNegReply optneg_;
  uint32_t actions_ = 0;   // negotiated SMFIF_* actions
  uint32_t protocol_ = 0;  // negotiated SMFIP_* flags (kMaxDataSizeBits cleared)
  std::vector<std::string> macro_lists_[kMacroStages];    // names per MacroStage
  absl::flat_hash_map<std::string, std::string> macros_;  // name without braces -> value
  std::optional<ConnectInfo> connect_;  // kept from Connect() until OPTNEG is answered
  Verdict sticky_;                      // kRejectedConnection: the answer to every event
  std::string error_;                   // kFailed: why
  char skip_command_ = 0;               // SMFIR_SKIP: events of this command are skipped
  bool in_transaction_ = false;         // MAIL sent, no EOB answered or ABORT sent since
  // A final answer after MAIL ('a', 'd', a refusal of MAIL, DATA or the content) ended this
  // message at the milter: nothing more of it is sent; Rcpt/Data/Content answer kAccept.
  bool message_done_ = false;

  // True while the engine can still take content for the current message.
  bool ContentOpen() const { return state_ == State::kReady && !message_done_; }
  void EndContent();

  // The content: `content_active_` from the first Content* call of a message to its verdict;
  // `piece_` is the borrowed piece (the header section, or a body piece) not yet all sent; a body
  // piece in parts goes on with `body_parts_` from `body_next_`.
  bool content_active_ = false;
  std::optional<std::string_view> piece_;
  std::vector<std::string_view> body_parts_;
  size_t body_next_ = 0;
  ContentStep step_ = ContentStep::kBetween;
  std::vector<HeaderField> headers_;
  size_t header_index_ = 0;
  size_t body_offset_ = 0;
  std::vector<Modification> modifications_;
  uint64_t modifications_bytes_ = 0;  // name and value bytes in modifications_
};

}  // namespace ringmx::smtp::milter
