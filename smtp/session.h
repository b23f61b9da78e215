// The SMTP state machine for one connection (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING and STARTTLS). Pure: bytes in, actions out. It never
// touches a socket, a file, OpenSSL or the clock; net/ executes what it asks for. That is what
// makes every protocol rule testable byte by byte. The session knows that TLS is on and the facts
// of it (core::TlsFacts), never how it works.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/queue_id.h"
#include "core/secret.h"
#include "core/snapshot.h"
#include "core/spool_record.h"
#include "core/tls_facts.h"
#include "policy/policy.h"
#include "smtp/dsn_params.h"
#include "smtp/milter/session.h"
#include "smtp/sasl.h"

namespace ringmx::smtp {

namespace internal {
struct MilterEvent;
struct MilterOutcome;
}  // namespace internal

// A check the session waits on (DESIGN.md section 6b): something that takes time or outside help
// to answer (a password hash, a milter, a next hop). The session parks the command that asked
// for it and buffers any further input in order; the driver runs the check wherever it belongs
// (a worker thread, a socket on the ring) and brings the answer back with
// Session::OnCheckAnswer() and the same token. A session that closes (or times out) while a
// check is out simply never takes its answer: the driver drops it.
struct CheckRequest {
  enum class Kind : uint8_t {
    // AUTH: verify `user`'s `secret` against the [auth] passwd table (SASL `mechanism`).
    kCredentials,
    // RCPT with verify_recipients on its route: ask the next hop whether `address` exists
    // (DESIGN.md section 6a). Accept: 250; reject: 550 5.1.1 (or the check's reply); tempfail:
    // 450 4.4.1 (or the check's reply).
    kRecipient,
  };
  uint64_t token = 0;  // unique within the session; never 0
  Kind kind = Kind::kCredentials;
  std::string mechanism;  // kCredentials: "PLAIN" or "LOGIN"
  std::string user;       // kCredentials: the authentication identity
  // kCredentials: the password; wipes itself, never logged.
  core::SecretString secret;
  std::string address;  // kRecipient: the forward-path without <>
};

// The driver's answer to a CheckRequest.
struct CheckAnswer {
  enum class Decision : uint8_t {
    kAccept,    // the check passed (kCredentials: "235 2.7.0 Authentication successful")
    kReject,    // it failed (kCredentials: "535 5.7.8 Authentication credentials invalid")
    kTempFail,  // it could not be made (kCredentials: "454 4.7.0 Temporary authentication failure")
    kRefuse,    // the client is refused altogether: `reply` (or 421 4.7.0), then close
  };
  Decision decision = Decision::kTempFail;
  // The check's own reply line ("CODE X.Y.Z text", no CR LF), used instead of the kind's default
  // when not empty.
  std::string reply;
};

// Bytes for the connection to milter `milter` (an index into the listener's `milters`): the
// driver connects on the first bytes for it (the [[milter]]'s address, connect_timeout_s) and
// sends them in order.
struct MilterSend {
  uint32_t milter = 0;
  std::string bytes;
};

// What the driver must do after a call into a Session. Calls append; the driver executes and then
// calls Clear(). Order of execution: abort_streams, fragment, deliver (if set), send `replies` (one
// write), then start TLS or close. `deliver` and `start_tls` are never set by the same call.
struct Output {
  // Wire bytes of every reply produced by the call(s), in command order (RFC 2920).
  std::string replies;
  // Streamed messages whose pieces were handed over (`fragment`) and that ended without a
  // message (refused after the data, RSET, a store error, the session closing): the driver tells
  // the store (Spool::Abort) before anything else of this Output.
  std::vector<std::string> abort_streams;
  // A piece of the message being received (at most kStreamChunkBytes), to store now. At most one
  // is outstanding: the session hands over the next piece, or the final `deliver`, only after the
  // driver's OnFragmentStored(); while its next buffer is full it waits, buffering input, and
  // input_blocked() tells the driver to stop reading.
  std::optional<core::SpoolFragment> fragment;
  // A message to store (with `fragments` > 0 its body is only the rest after the fragments). The
  // session waits (buffering any further input) until the driver calls OnDelivered() with the
  // store's result; at most one is outstanding.
  std::optional<core::SpoolRecord> deliver;
  // Events for the connection's log, in order (a relay decision and its reason, an AUTH result),
  // each one line without the connection's prefix, which the driver adds. Never holds a
  // password or message bytes.
  std::vector<std::string> log;
  // A check to run (CheckRequest); at most one is out per session. The session waits, buffering
  // input, until OnCheckAnswer() answers it.
  std::optional<CheckRequest> check;
  // Milters (docs/milter.md): bytes for each milter connection, in order, and the milters whose
  // connection the driver closes once their bytes are out. The session waits (buffering input)
  // while a milter's answer is awaited; the driver brings the answers with OnMilterInput() or
  // OnMilterError() and keeps the timeout MilterWaiting() names.
  std::vector<MilterSend> milter_send;
  std::vector<uint32_t> milter_close;
  // Close the connection once `replies` has been sent.
  bool close = false;
  // STARTTLS was accepted: once `replies` (ending in "220 2.0.0 Ready to start TLS") has been
  // sent, run the TLS handshake as the server, then call OnTlsEstablished() or OnTlsFailed().
  // Every byte the client sent after the STARTTLS line has been discarded (CVE-2011-0411:
  // pipelined plaintext must not survive the upgrade); the driver must drop any plaintext still
  // unread as well, and not pass it to OnInput() (which would drop it too).
  bool start_tls = false;

  void Clear() {
    replies.clear();
    abort_streams.clear();
    log.clear();
    check.reset();
    fragment.reset();
    deliver.reset();
    milter_send.clear();
    milter_close.clear();
    close = false;
    start_tls = false;
  }
};

// Counters for the session-end log line.
struct SessionStats {
  uint64_t messages_accepted = 0;
  uint64_t messages_rejected = 0;  // refused after DATA/BDAT (size, bare CR/LF, line length, store)
  uint64_t bytes_accepted = 0;     // message bytes of accepted messages
  uint64_t commands = 0;
};

// One SMTP conversation. Owned by the net/ connection that feeds it. Shard-local. Holds the
// Snapshot it was created with until it is destroyed, so a reload never changes a live session.
class Session {
 public:
  // `ids` must outlive the session (the shard owns it). `facts.listener` must point into
  // `snapshot`. This form borrows `snapshot`, which must outlive the session: net/ keeps it alive
  // through its shard's generation handle (net/generation.h), so starting a session touches no
  // shared reference count.
  Session(const core::Snapshot& snapshot, policy::ConnectionFacts facts,
          core::QueueIdGenerator& ids);
  // The same, keeping `snapshot` alive itself (tests and tools).
  Session(std::shared_ptr<const core::Snapshot> snapshot, policy::ConnectionFacts facts,
          core::QueueIdGenerator& ids);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // The PROXY header (smtp/proxy_header.h) named the client: from now on `client` is the client
  // for everything (policy, limits, logs, the Received header, the envelope), `local` the address
  // it connected to (the balancer's front end), and `balancer` (the socket's peer) is recorded as
  // facts().proxied_by. Only before Start() and before any other call that takes input or TLS:
  // the session derives nothing from the client until then. Ignored once started.
  void SetProxiedClient(const core::Endpoint& client, const core::Endpoint& local,
                        const core::Endpoint& balancer);

  // The greeting: "220 <hostname> ESMTP ringmx". The driver calls it once, after the optional
  // greet pause. Input received before Start() is early talk: 554 and close (OnInput handles it).
  // On an implicit-TLS listener (RFC 8314) the driver completes the handshake and calls
  // OnTlsEstablished() first, so the greeting already goes out over TLS.
  void Start(absl::Time now, Output& out);

  // The TLS handshake succeeded: after `start_tls` (STARTTLS), or before Start() on an implicit
  // listener. Records `facts` (facts().tls, facts().tls_facts) for policy, the Received header
  // and the envelope JSON, and returns the session to its initial state (RFC 3207 section 4.2):
  // no HELO/EHLO name, no transaction, nothing buffered; the client must send EHLO again, and
  // STARTTLS is neither advertised nor accepted any more. Sends nothing: no greeting follows
  // STARTTLS. The idle timeout restarts at `now`. A shutdown requested during the handshake is
  // answered now, over TLS. Ignored after close, or when no handshake was due.
  void OnTlsEstablished(const core::TlsFacts& facts, absl::Time now, Output& out);

  // The handshake after "220 2.0.0 Ready to start TLS" (or on an implicit listener) failed. No
  // reply is possible (the client speaks TLS, not plaintext): close, end reason "tls-failed".
  void OnTlsFailed(absl::Time now, Output& out);

  // Consumes client bytes. `input` may end anywhere, in a command line or in message data, and is
  // valid only during the call. Every complete command is answered in this call, in order
  // (PIPELINING). While a delivery is outstanding the bytes are buffered, up to 256 KiB; past
  // that the session answers the message, then "421 4.7.0 ... too much pipelined input" and
  // closes. After close, input is ignored.
  void OnInput(std::string_view input, absl::Time now, Output& out);

  // The store's answer for the outstanding `deliver`: OK gives "250 2.0.0 Ok: queued as <id>",
  // an error "452 4.3.1 Insufficient system storage"; the transaction is over either way. Then
  // buffered input is processed, which may set a new `deliver` in `out`.
  void OnDelivered(const absl::Status& result, absl::Time now, Output& out);

  // The store's answer for the outstanding `fragment`. OK: the next piece (or the message) may
  // go; buffered input is processed. An error: the message will be answered "452 4.3.1" at its
  // end (its data is still read, to stay in step with the client) and its stream aborted.
  void OnFragmentStored(const absl::Status& result, absl::Time now, Output& out);

  // The answer to the outstanding `check` with this token (a stale or unknown token is ignored):
  // the parked command is answered and buffered input is processed.
  void OnCheckAnswer(uint64_t token, const CheckAnswer& answer, absl::Time now, Output& out);

  // The token of the check the session waits for, 0 if none.
  uint64_t check_outstanding() const;

  // Milters (docs/milter.md, DESIGN.md section 6b). The session runs one milter engine per name
  // in its listener's `milters`, in that order, and parks the command (or the greeting, or the
  // message) while an answer is awaited; Output::milter_send carries the bytes.
  size_t milter_count() const;
  // The [[milter]] of index `i` (< milter_count()), from the session's Snapshot.
  const core::MilterConfig& milter_config(size_t i) const;
  // Which timeout applies to milter `i` now: kCommand (command_timeout_s), kContent
  // (content_timeout_s) or kNothing (no answer awaited). The connect timeout is the driver's.
  milter::Session::Waiting MilterWaiting(size_t i) const;
  // Bytes from milter `i` (valid only during the call); may end anywhere.
  void OnMilterInput(uint32_t milter, std::string_view bytes, absl::Time now, Output& out);
  // Milter `i` failed: connection refused or lost, a write failed, or its timeout passed. It
  // stands for its default_action from now on (one log line names it and `why`).
  void OnMilterError(uint32_t milter, std::string_view why, absl::Time now, Output& out);
  // True while the session waits for a milter's answer.
  bool milter_outstanding() const;

  // Like OnInput(), except for message data that cannot be taken now because the body buffer is
  // full and its predecessor is still with the store (a large message streaming in faster than
  // the store writes): that is not buffered. Returns how many octets of `input` the session
  // used; the caller keeps the rest and offers it again, before any newer input, once
  // input_blocked() is false. Everything else (pipelined commands during a delivery, a check or
  // a milter, input after STARTTLS or the end) goes as with OnInput() and counts as used. The
  // driver uses this so that it can keep the rest where it was received instead of having it
  // copied twice (net/held_input.h).
  size_t OnInputUntilFull(std::string_view input, absl::Time now, Output& out);

  // True while the session cannot take input now (a delivery or a stored piece is awaited and
  // nothing more fits): input given to OnInput() meanwhile is buffered, up to
  // kMaxPendingInputBytes; the driver should stop reading the client until this turns false.
  bool input_blocked() const;

  // True while message data is being received and the message is large (a quarter of a body
  // buffer so far, pieces already handed over, or announced with SIZE= at a quarter of a body
  // buffer or more): the driver then reads one receive at a time,
  // so that a fast sender waits in TCP rather than in the driver's memory.
  bool receiving_large_message() const;
  // True while message data (DATA, or BDAT chunks that are stored) is being received, whatever
  // its size.
  bool receiving_message() const;

  // The id of a message whose pieces were handed to the store and that has neither been handed
  // over whole (`deliver`) nor aborted: a driver that tears the connection down without closing
  // the session calls Spool::Abort() with it. "" if none.
  std::string_view streaming_id() const;

  // The driver calls this when now >= deadline(): "421 4.4.2" and close; a message in progress is
  // dropped. During a STARTTLS handshake the close is silent (no plaintext reply can be read).
  // A call with now < deadline() (a stale timer: the deadline moved since it was armed) does
  // nothing; the driver re-arms for deadline().
  void OnTimeout(absl::Time now, Output& out);

  // Graceful shutdown (SIGTERM): a session between transactions gets "421 4.3.2" and closes at
  // once; any other session gets it at its next command. A DATA/BDAT transfer in progress
  // finishes and is answered normally first; a STARTTLS handshake in progress gets it once TLS is
  // up (OnTlsEstablished).
  void OnShutdown(absl::Time now, Output& out);

  // When the session times out if nothing advances it: idle timeout from the last complete
  // command (or completed BDAT chunk), or the data timeout from the DATA command for the whole
  // message, and from each BDAT command for its chunk. Bytes alone do not extend it
  // (slowloris). The STARTTLS handshake runs on the idle timeout of the STARTTLS command.
  // InfiniteFuture() while a delivery is outstanding and after close.
  absl::Time deadline() const { return deadline_; }

  bool closed() const { return closed_; }
  // Why the session ended: "quit", "timeout", "shutdown", "early-talk", "too-much-pipelining",
  // "too-many-errors" (20 protocol errors), "bad-bdat" (unparseable BDAT count),
  // "too-big-stream" (DATA or BDAT far past max_message_size, smtp/limits.h), "too-long-line"
  // (128 KiB of over-long command lines, smtp/limits.h) or "tls-failed" (OnTlsFailed); "" while
  // open.
  std::string_view end_reason() const { return end_reason_; }
  std::string_view helo() const;
  const SessionStats& stats() const { return stats_; }
  const policy::ConnectionFacts& facts() const { return facts_; }
  // The Snapshot the session started with (what its checks are made against).
  const core::Snapshot& snapshot() const { return *snapshot_; }

  // True between a `deliver` and the OnDelivered() that answers it.
  bool delivery_outstanding() const;
  // True between a `start_tls` and the OnTlsEstablished()/OnTlsFailed() that ends the handshake.
  bool tls_handshake_pending() const;

  // Heap bytes held for client input (partial command line, the message body buffer, input
  // buffered during a delivery). Bounded by 512 + kStreamChunkBytes + kMaxPendingInputBytes
  // (smtp/limits.h) whatever the client sends and whatever the message size: pieces handed over
  // as `fragment` are the driver's. With milters add the held header section (at most 256 KiB
  // plus one piece) and the body piece in the milters' hands (kStreamChunkBytes). Tests assert
  // it.
  size_t MemoryUsageForTest() const;

 private:
  struct State;  // parser and transaction state, in session.cc
  enum class Disposition : uint8_t;

  // Runs `input` through the protocol until it is used up, the session closes or a delivery is
  // started; returns the octets consumed.
  size_t Process(std::string_view input, absl::Time now, Output& out);
  size_t ConsumeCommandBytes(std::string_view input, absl::Time now, Output& out);
  size_t ConsumeData(std::string_view input, absl::Time now, Output& out);
  size_t ConsumeChunk(std::string_view input, absl::Time now, Output& out);
  // `line` is one complete command line, its final LF included.
  void HandleLine(std::string_view line, absl::Time now, Output& out);
  void DoHello(bool ehlo, std::string_view args, Output& out);
  void DoStartTls(std::string_view args, absl::Time now, Output& out);
  // AUTH (session_auth.cc): starts the SASL exchange; HandleSaslLine() takes each response line
  // (its CR LF removed); a complete exchange parks the session on a kCredentials check.
  void DoAuth(std::string_view args, Output& out);
  void HandleSaslLine(std::string_view content, Output& out);
  // Acts on one step of the SASL exchange (a challenge, credentials or an error).
  void OnSaslStep(SaslStep step, Output& out);
  // Ends the SASL exchange (sasl_active off, the exchange's memory freed).
  void EndSasl();
  // The octet limit of the command line being read: kMaxSaslLineBytes for a SASL response and an
  // AUTH command, kMaxMailRcptLineOctets for MAIL and RCPT, kMaxCommandLineOctets for everything
  // else.
  size_t LineLimit(std::string_view input) const;
  void DoMail(std::string_view args, absl::Time now, Output& out);
  void DoRcpt(std::string_view args, Output& out);
  // An accepted recipient: shown to the milters (if any), then appended to the envelope with
  // 250. `params` is the RCPT's ESMTP parameter text.
  void AddRecipient(std::string_view mailbox, DsnRcptParams dsn, std::string_view params,
                    Output& out);
  void AppendRecipient(std::string_view mailbox, DsnRcptParams dsn, Output& out);
  // A recipient we refuse with `reply`: shown to the milters that asked for those first.
  void RefuseRecipient(std::string_view mailbox, std::string_view params, std::string reply,
                       Output& out);
  // The EHLO/HELO reply.
  void ReplyHello(bool ehlo, Output& out);
  // 354 and the start of the message data.
  void BeginData(absl::Time now, Output& out);

  // Milters (session_milter.cc).
  bool MiltersFor(bool transaction) const;
  void SetConnectMacros();
  // Runs `event` through the milters; `wait` says what continues once they have answered (now,
  // or from OnMilterInput/OnMilterError).
  void RunMilters(internal::MilterEvent&& event, uint8_t wait, absl::Time now, Output& out);
  void MiltersAnswered(uint8_t wait, absl::Time now, Output& out);
  // A piece of the message's content through the milters (the body splits off the held header
  // section); `end`: the data is complete.
  void MilterContent(core::BodyBlocks bytes, bool end, absl::Time now, Output& out);
  void MilterContentAnswered(bool end, absl::Time now, Output& out);
  // End of a message whose content went to the milters: refuse, discard, or deliver.
  void FinishMilterMessage(absl::Time now, Output& out);
  // Applies the milters' end-of-message changes to the envelope and the held header section.
  void ApplyMilterChanges(Output& out);
  // Replies with a milter's refusal (closing after a shutdown).
  void ReplyMilterRefusal(const internal::MilterOutcome& outcome, Output& out);
  // The answer to a RCPT's recipient verification (CheckRequest::Kind::kRecipient).
  void FinishRcptCheck(const CheckAnswer& answer, Output& out);
  void DoData(std::string_view args, absl::Time now, Output& out);
  void DoBdat(std::string_view args, absl::Time now, Output& out);
  void CompleteChunk(absl::Time now, Output& out);
  void EndOfData(absl::Time now, Output& out);
  void Deliver(absl::Time now, Output& out);
  // The end of a message's data without a decoder error: Deliver(), or wait for the outstanding
  // piece, or 452 after a store error.
  void FinishMessage(absl::Time now, Output& out);
  // Before body octets are consumed: makes room in the body buffer (hands the full one over, or
  // drops it after a store error). False when it cannot (the previous piece is still out).
  bool MakeRoom(absl::Time now, Output& out);
  // Processes input buffered while the session was blocked (input_blocked()).
  void ResumeInput(absl::Time now, Output& out);
  // Hands the full body buffer to the store as the next fragment (minting the id first).
  void EmitFragment(absl::Time now, Output& out);
  // Ends the stream of the current transaction without a message (Output::abort_streams).
  void AbandonStream(Output& out);
  // Answers a message refused by the decoder and ends its transaction.
  void RejectMessage(Output& out);
  // A DATA or BDAT transfer far past max_message_size (StreamCutOctets in smtp/limits.h): 552
  // and close, end reason "too-big-stream".
  void CutOversizedStream(Output& out);
  // Over-long command lines reached kMaxOverlongCommandOctets: 500, 421 and close, end reason
  // "too-long-line".
  void CutLongLine(Output& out);
  void ResetTransaction(Output& out);
  void BufferPending(std::string_view input);
  // Receiving message data, the body buffer full and the previous piece not stored yet.
  bool StreamFull() const;
  // Between transactions with nothing pending: a shutdown request can be honoured at once.
  bool Idle() const;
  void MaybeCloseForShutdown(Output& out);
  void Reply(Output& out, std::string_view line);
  // A protocol error reply (500/501/502/503/555); counts towards kMaxProtocolErrors.
  void ReplyError(Output& out, std::string_view line);
  void Close(Output& out, std::string_view reason);

  // Set by the owning constructor only; snapshot_ points into it then.
  std::shared_ptr<const core::Snapshot> owned_snapshot_;
  const core::Snapshot* snapshot_;
  policy::ConnectionFacts facts_;
  core::QueueIdGenerator& ids_;
  std::unique_ptr<State> state_;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool closed_ = false;
  std::string end_reason_;
  SessionStats stats_;
};

}  // namespace ringmx::smtp
