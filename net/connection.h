// The connection driver: joins one accepted socket to one smtp::Session. It moves bytes between
// the ring and the session, executes the session's actions (send, deliver, close) and owns the
// lifetime rules: a Connection is destroyed only when none of its operations is in flight.
// Three pieces sit between the socket and the session: the PROXY preamble stage (net/preamble.h,
// until the header is in), the transport (net/transport.h: plain, TLS in userspace, TLS in the
// kernel) and the session itself; Connection does their I/O on the shard's ring.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/snapshot.h"
#include "net/generation.h"
#include "net/held_input.h"
#include "net/milter_link.h"
#include "net/preamble.h"
#include "net/reactor.h"
#include "net/runtime.h"
#include "net/spool.h"
#include "net/transport.h"
#include "policy/policy.h"
#include "smtp/session.h"

namespace ringmx::net {

class Shard;

// Shard-local. Created by its Shard on accept, destroyed by the Shard once Finished().
class Connection final : public SpoolWaiter, public FragmentWaiter, public MilterLinkOwner {
  friend class Shard;  // reads session_.facts() for its checks
 public:
  // `listener_index` is the index of `facts.listener` in the generation's config. The connection
  // keeps `generation` (its Snapshot and TLS contexts) until it is destroyed.
  Connection(Shard& shard, int fd, GenerationRef generation, size_t listener_index,
             policy::ConnectionFacts facts, absl::Time now);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // On a listener with `proxy_protocol` (docs/proxy.md): closes a peer outside `proxy_trusted`
  // at once, without a word; otherwise arms the receive and waits (up to timeouts.proxy_s) for
  // the PROXY header, and StartSession() runs once it is in. Elsewhere StartSession() at once.
  void Start(absl::Time now);
  // Periodic check of the PROXY header's deadline, the greet pause, the session deadline and the
  // closing linger, against the shard's clock. Called by the shard's tick.
  void Tick(absl::Time now);
  // SIGTERM: the session answers 421 now or at its next command. A connection still waiting for
  // its PROXY header is simply closed.
  void Drain(absl::Time now);
  // Shutdown grace over: drop the connection without waiting for the client.
  void Abort();
  // Acts on what the batch produced: one send, re-arming, closing. Called by the shard once per
  // completion batch for each dirty connection.
  void Flush(absl::Time now);
  // True when the connection is closed and no operation of it is in flight.
  bool Finished() const;

  void OnStored(const absl::Status& result) override;
  // FragmentWaiter: a piece of the message streaming in is stored (or failed).
  void OnFragmentStored(const absl::Status& result) override;

  // The answer to the session's check (Shard::StartCheck).
  void OnCheckAnswer(smtp::CheckAnswer answer);

  // MilterLinkOwner: the session's milter connections (net/milter_link.h).
  void OnMilterBytes(uint32_t index, std::string_view bytes) override;
  void OnMilterFailed(uint32_t index, std::string_view why) override;
  void OnMilterDrained(uint32_t index) override;

  // Bookkeeping used by the Shard.
  bool dirty_ = false;
  size_t slot_ = 0;  // index in Shard::connections_

 private:
  // One handler object per kind of operation, so a completion says what it is for.
  struct Op final : CompletionHandler {
    Connection* connection = nullptr;
    void (Connection::*on_complete)(const io_uring_cqe& cqe) = nullptr;
    void OnCompletion(const io_uring_cqe& cqe) override { (connection->*on_complete)(cqe); }
  };

  // Asks the shard's ConnectionLimiter whether the client may have a session (`[limits]`).
  // True: admitted (released in the destructor). False: refused and closing: a 421 (nothing on
  // implicit TLS, where plaintext means nothing to the client) goes out, then the FIN; nothing of
  // the session is used. Called once the client's address is known: at accept, or after the
  // PROXY header on a listener with `proxy_protocol`.
  bool Admit(absl::Time now);
  // What follows the preamble, once the client is known: Admit(), then the receive (if not armed
  // yet) and either the TLS handshake (implicit TLS), the greeting at once, or the greet
  // deadline (the configured greet pause from `now`), which Tick() checks: the greeting follows
  // the shard's clock, one tick late at most.
  void StartSession(absl::Time now);
  // PROXY preamble: the first bytes of the connection go to `preamble_` until it has the header.
  // Done: the header's client becomes the session's (smtp::Session::SetProxiedClient),
  // StartSession() runs and the bytes after the header go on as client data. Malformed: logged
  // and closed.
  void OnPreamble(std::string_view bytes, absl::Time now);
  // Ends a connection whose preamble failed (untrusted peer, malformed header, timeout,
  // shutdown) with one log line and no reply; the session never started.
  void EndPreamble(std::string_view reason, std::string_view detail);
  void OnRecv(const io_uring_cqe& cqe);
  void OnSend(const io_uring_cqe& cqe);
  void ArmRecv();
  void SubmitSend();
  // Moves everything in `wire_` to `sending_` and starts its send. Only when no send is in flight.
  void SendWire();
  void AfterSession();  // executes what the session asked for in out_; moves replies to wire_
  // Starts the server side of a TLS handshake (implicit TLS at accept, or after STARTTLS's 220).
  void BeginTls(absl::Time now);
  // Bytes from the socket (not kernel TLS) through the transport: plaintext to the session;
  // ciphertext to the userspace TLS layer (handshake steps, then records decrypted).
  void OnTransportBytes(std::string_view bytes, absl::Time now);
  void OnCiphertext(std::string_view bytes, absl::Time now);
  // The handshake is done: either start moving the record layer to the kernel, or go on in
  // userspace (FinishHandshake).
  void OnHandshakeDone(absl::Time now);
  // Logs the TLS line and tells the session, with `kernel` saying which record layer it got.
  // `engine`: the userspace layer's, when the transport is already the kernel's.
  void FinishHandshake(absl::Time now, bool kernel, const tls::Engine* engine = nullptr);
  // Hands the keys to the kernel once the receive has stopped and our last userspace records are
  // out (Flush calls it); falls back to userspace when the hand-off is not possible.
  void CompleteKernelTls(absl::Time now);
  // Kernel TLS: one recvmsg completion (a record's plaintext, or part of one, and its type).
  // tls::ClassifyKtlsRecord says what it is; this does the I/O that asks for (new receive key,
  // alerts owed, closing).
  void OnKernelRecord(uint8_t record_type, std::string_view payload, absl::Time now);
  // Kernel TLS: our records owed (no_renegotiation, KeyUpdate) between sends.
  void SendKernelOwed();
  // Kernel TLS: ends the connection with a fatal alert (sent before the FIN).
  void FailKernelTls(uint8_t alert, std::string_view why);
  void FailTls(const absl::Status& status, absl::Time now);
  void MarkDirty();
  // Plaintext from the client: to the session, or held while the receive is paused or the
  // session cannot take it (HoldInput).
  void DeliverInput(std::string_view bytes, absl::Time now);
  // Hands `bytes` to the session in slices until it cannot take more; returns how many it took
  // (all of them once the session or the connection has ended).
  size_t FeedSession(std::string_view bytes, absl::Time now);
  // Input read after the session ended (`closing_`): dropped; past kMaxClosingInputBytes the
  // receive is cancelled for good (`closing_read_stopped_`), so that a client still streaming is
  // stopped by TCP flow control instead of being read until the linger ends.
  void DropClosingInput(size_t bytes);
  // Replies not yet taken by the kernel.
  size_t QueuedOutput() const;
  // Keeps client input for later (reading is paused or about to be); closes a client that sends
  // past the bound ("not-reading"). Bytes of the receive buffer being handled
  // (`recv_buffer_`) stay in it when HeldInput allows (the buffer is then not recycled).
  void HoldInput(std::string_view bytes);
  // Hands held input to the session, oldest first, as far as it takes it (Flush, once reading
  // resumes).
  void DeliverHeld(absl::Time now);
  // Tells the store to drop the pieces of a message that was streaming in when the connection
  // ended without the session closing it.
  void AbandonStoreStream();
  // Stops reading a client whose replies back up (kMaxQueuedOutputBytes).
  void PauseIfBackedUp();
  void LogEnd(absl::Time now);

  // The transport when it is TLS in userspace / in the kernel; nullptr otherwise.
  UserspaceTls* userspace_tls();
  KernelTls* kernel_tls();
  // Whether the receive should be single-shot now (a message is streaming in), see ArmRecv().
  bool ReadOneAtATime();
  // TLS in userspace in `state`.
  bool TlsIn(UserspaceTls::State state);
  // The record layer is moving to the kernel (UserspaceTls::State::kSwitching): the receive is
  // being cancelled and the session's replies stay in out_ until the move is over.
  bool SwitchingToKernel() { return TlsIn(UserspaceTls::State::kSwitching); }

  Shard& shard_;
  const int fd_;
  // The snapshot this connection started with; `generation_` keeps it.
  const core::Snapshot* const snapshot_;
  // Set by Admit() when the shard's limiter counted this connection's session: the address to
  // release in the destructor. `refused_`: Admit() said no (LogEnd logs nothing more).
  std::optional<core::IpAddress> admitted_;
  bool refused_ = false;
  // Set while a listener with `proxy_protocol` waits for the connection's PROXY header (from
  // Start() on); reset once the header is in (or the connection failed). Bytes read meanwhile go
  // to OnPreamble().
  std::unique_ptr<ProxyPreamble> preamble_;
  // The preamble failed and logged its line (EndPreamble): LogEnd logs nothing more.
  bool preamble_failed_ = false;
  // The config generation this connection started with: its Snapshot and TLS contexts (a reload
  // does not change them). Outlives session_, which borrows the Snapshot.
  const GenerationRef generation_;
  const size_t listener_index_;
  const absl::Duration greet_pause_;
  smtp::Session session_;
  // The record layer: plain at accept; UserspaceTls from BeginTls() on; KernelTls once the kernel
  // took the keys (the userspace one is released then).
  std::unique_ptr<Transport> transport_;
  // The shard's kernel has TLS ULP and the config (tls.ktls) lets connections use it.
  const bool kernel_tls_wanted_;
  // Bytes for the socket (ciphertext under TLS), in order; moved to `sending_` by Flush().
  std::string wire_;
  smtp::Output out_;
  const absl::Time started_;

  Op recv_op_;
  Op send_op_;

  // Bytes handed to the kernel by the send in flight; `send_offset_` of them are already sent.
  std::string sending_;
  size_t send_offset_ = 0;

  bool recv_armed_ = false;
  bool recv_rearm_ = false;  // the multishot recv ended (e.g. ENOBUFS) and must be re-armed
  bool send_inflight_ = false;
  bool spool_inflight_ = false;  // a message is with the spool; OnStored() clears it
  // When the message went to the spool and when the TLS handshake began (stats histograms).
  absl::Time stored_at_ = absl::InfinitePast();
  absl::Time handshake_at_ = absl::InfinitePast();
  // The session's check that is out (Shard::StartCheck id), 0 if none. The check itself needs
  // nothing of the connection: teardown only tells the shard to drop its answer.
  uint64_t check_id_ = 0;
  // A piece of a message streaming in is with the store; OnFragmentStored() clears it (or
  // AbandonStoreStream(): after Spool::Abort() the store does not call back).
  bool fragment_inflight_ = false;
  // One link per milter of the listener, opened when the session first sends it bytes.
  std::vector<std::unique_ptr<MilterLink>> milters_;
  // A stored piece whose answer waits until the milter links have sent that data on
  // (back-pressure: memory stays bounded by the piece size).
  std::optional<absl::Status> fragment_result_;
  // Hands a held fragment answer to the session once every milter link is drained.
  void MaybeFinishFragment();
  // The armed receive is a single-shot one (a message is streaming in; see ArmRecv()).
  bool recv_single_shot_ = false;
  // The multishot receive was cancelled to switch to single-shot receives.
  bool recv_switch_sent_ = false;
  bool cancel_sent_ = false;
  // The session asked to close: flush replies, send FIN, then wait for the client's EOF.
  bool closing_ = false;
  bool fin_sent_ = false;
  // Octets read since `closing_` was set (DropClosingInput).
  size_t closing_input_ = 0;
  // More than kMaxClosingInputBytes came after the end: the receive was cancelled and is never
  // re-armed; the linger (Tick) ends the connection, resetting it if input is left unread.
  bool closing_read_stopped_ = false;
  absl::Time linger_deadline_ = absl::InfiniteFuture();
  // Closing with a send still stuck (the client does not read): when to give up on it.
  absl::Time unsent_deadline_ = absl::InfiniteFuture();
  // The receive was cancelled because more than kMaxQueuedOutputBytes of replies waited for the
  // client; Flush re-arms it once half of them have left.
  bool recv_paused_ = false;
  // Client plaintext that arrived while paused or that the session could not take yet (at most
  // kMaxHeldInputBytes, or kMaxHeldInputWhileStoringBytes while a message streams in); the
  // session gets it when the receive resumes. Kept in the receive buffers it came in where it
  // can be (net/held_input.h), so a held body byte is copied once, by the session.
  HeldInput held_input_;
  // During OnRecv: the receive buffer of the completion being handled, and whether held_input_
  // kept it (then OnRecv does not recycle it; HeldInput gives it back once consumed).
  std::optional<uint16_t> recv_buffer_;
  bool recv_buffer_held_ = false;
  // When the greet pause ends and Tick() sends the 220; InfiniteFuture() when there is no pause
  // or it is over. Input before it is early talk (the session answers 554).
  absl::Time greet_deadline_ = absl::InfiniteFuture();
  // Nothing more will be read or written: the peer went away, the linger ended, or Abort().
  bool done_ = false;
  std::string end_reason_;  // set when the driver, not the session, ends the connection
  bool logged_ = false;
};

}  // namespace ringmx::net
