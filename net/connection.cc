#include "net/connection.h"

#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/strings.h"
#include "net/buffer_ring.h"
#include "net/ktls.h"
#include "net/shard.h"
#include "tls/ktls_records.h"

namespace ringmx::net {
namespace {

// How long a closing connection waits for the client's EOF after our FIN, so that the last
// reply (221, 421, 554) is not destroyed by a RST from unread input.
constexpr absl::Duration kLinger = absl::Seconds(2);

// Replies waiting for a client that does not read them (it pipelines and never reads, so each
// command it sends adds a reply the kernel cannot take). Past this the connection stops reading
// until the client has taken half of it, so the server never holds more than about this much
// output per connection (issue 9: hostile clients, memory bounded).
constexpr size_t kMaxQueuedOutputBytes = 256 * 1024;
// Input that was already on its way when the receive was paused is held, up to this much (as the
// session holds pipelined input during a delivery); a client that sends more without reading is
// dropped.
constexpr size_t kMaxHeldInputBytes = 256 * 1024;
// The same while the session waits for the store (a message streaming in faster than the disk
// takes it): the sender is legitimate, and what its receives completed before the cancel landed
// is held. That is bounded by the shard's receive buffers (all of them, 8 MiB, for the whole
// shard, in one batch; nothing more is read until the held input is used up), so this bound
// only guards against a mistake.
constexpr size_t kMaxHeldInputWhileStoringBytes = 16 * 1024 * 1024;
// The most client input handed to the session per call (DeliverInput).
constexpr size_t kSessionSliceBytes = 64 * 1024;
// Client input read (and dropped) after the session has ended. Within this the linger reads on
// until the client's EOF, so that our last reply is not destroyed by a RST. A client that sends
// more (a DATA stream cut at the size limit, a 100 KB command line) is not read any further: the
// receive is cancelled, TCP flow control stops its stream, and the linger (or the stuck-send
// deadline) ends the connection. The client can still read our last reply and FIN meanwhile.
constexpr size_t kMaxClosingInputBytes = 64 * 1024;
// A send buffer that grew past this is freed once sent, so a burst does not pin memory.
constexpr size_t kKeptSendCapacityBytes = 64 * 1024;

// The fatal alert of a kernel receive the connection cannot parse.
using tls::kAlertInternalError;

}  // namespace

Connection::Connection(Shard& shard, int fd, GenerationRef generation, size_t listener_index,
                       policy::ConnectionFacts facts, absl::Time now)
    : shard_(shard),
      fd_(fd),
      snapshot_(&generation->snapshot()),
      generation_(std::move(generation)),
      listener_index_(listener_index),
      greet_pause_(snapshot_->config.timeouts.greet_pause),
      session_(*snapshot_, std::move(facts), shard.ids()),
      transport_(std::make_unique<PlainTransport>()),
      kernel_tls_wanted_(shard.kernel_tls() && snapshot_->config.tls.ktls),
      started_(now),
      held_input_(shard.buffers()) {
  recv_op_.connection = this;
  recv_op_.on_complete = &Connection::OnRecv;
  send_op_.connection = this;
  send_op_.on_complete = &Connection::OnSend;
  milters_.resize(session_.milter_count());
}

Connection::~Connection() {
  if (admitted_) shard_.limiter().Release(*admitted_);
  if (check_id_ != 0) shard_.CancelCheck(check_id_);
  if (fd_ >= 0) close(fd_);
}

bool Connection::Admit(absl::Time now) {
  const core::IpAddress& client = session_.facts().client.address;
  const core::LimitsConfig& limits = snapshot_->config.limits;
  const policy::LimitVerdict verdict =
      shard_.limiter().Admit(limits, shard_.shard_count(), client, now);
  if (verdict == policy::LimitVerdict::kAdmit) {
    admitted_ = client;
    return true;
  }
  refused_ = true;
  ShardCounters::Add(shard_.mutable_counters().connections_refused, 1);
  int limit = 0;
  std::string text;
  switch (verdict) {
    case policy::LimitVerdict::kTooManySessions:
      limit = limits.max_sessions;
      text = "too many connections";
      break;
    case policy::LimitVerdict::kTooManyFromClient:
      limit = limits.max_sessions_per_client;
      text = absl::StrCat("too many connections from ", client.ToString());
      break;
    case policy::LimitVerdict::kRateExceeded:
      limit = limits.max_connection_rate_per_client;
      text = "connection rate limit exceeded";
      break;
    case policy::LimitVerdict::kAdmit:
      break;
  }
  const bool implicit = session_.facts().listener->tls == core::TlsMode::kImplicit;
  core::LogWarning(absl::StrCat(
      "limit shard=", shard_.index(), " client=", session_.facts().client.ToString(), " listener=",
      session_.facts().listener->name, " refused=", core::Av(policy::LimitKey(verdict)),
      " limit=", limit, " shard_share=", policy::ShardShare(limit, shard_.shard_count()),
      " shards=", shard_.shard_count(), implicit ? " reply=none (implicit TLS)" : " reply=421"));
  // RFC 5321 section 3.8: a server that cannot take the connection says 421 and closes. An
  // implicit-TLS client expects a handshake, not plaintext: it only sees the close.
  if (!implicit) {
    absl::StrAppend(&wire_, "421 4.7.0 ", snapshot_->config.hostname, " Error: ", text, "\r\n");
    shard_.mutable_counters().traffic.CountReplies(wire_);
  }
  // No receive is armed: the FIN follows the 421 at once and the connection ends (a client that
  // talked before the greeting may see a reset instead).
  closing_ = true;
  MarkDirty();
  return false;
}

void Connection::Start(absl::Time now) {
  const policy::ConnectionFacts& facts = session_.facts();
  if (facts.listener->proxy_protocol == core::ProxyProtocol::kNone) {
    StartSession(now);
    return;
  }
  preamble_ = std::make_unique<ProxyPreamble>(*facts.listener, facts.client,
                                              snapshot_->config.timeouts.proxy, now);
  if (!preamble_->trusted()) {
    EndPreamble("untrusted", "");
    return;
  }
  // Nothing is said and nothing is counted (limits) until the header names the client.
  ArmRecv();
}

void Connection::EndPreamble(std::string_view reason, std::string_view detail) {
  const policy::ConnectionFacts& facts = session_.facts();
  const std::string line =
      absl::StrCat("proxy shard=", shard_.index(), " client=", facts.client.ToString(),
                   " listener=", facts.listener->name, " ", core::Av(reason),
                   detail.empty() ? "" : ": ", core::Av(detail), ", closed");
  if (reason == "shutdown") {
    core::LogInfo(line);
  } else {
    ShardCounters::Add(shard_.mutable_counters().proxy_refused, 1);  // before the line tells of it
    core::LogWarning(line);
  }
  preamble_.reset();
  preamble_failed_ = true;
  if (end_reason_.empty()) end_reason_ = absl::StrCat("proxy-", core::Av(reason));
  // No reply: the peer is a balancer (or pretends to be), not an SMTP client. The FIN goes out at
  // once; an armed receive reads (and drops) what still comes during the linger.
  closing_ = true;
  MarkDirty();
}

void Connection::OnPreamble(std::string_view bytes, absl::Time now) {
  const ProxyPreamble::Outcome outcome = preamble_->Feed(bytes);
  switch (outcome.state) {
    case ProxyPreamble::Outcome::State::kNeedMore:
      return;
    case ProxyPreamble::Outcome::State::kFailed:
      EndPreamble(outcome.reason, outcome.detail);
      return;
    case ProxyPreamble::Outcome::State::kDone:
      break;
  }
  // PROXY TCP4/TCP6 names the client; LOCAL (the balancer's health checks), UNKNOWN and the
  // families we do not take keep the socket's own addresses (spec sections 2.1 and 2.2).
  if (outcome.client.has_value() && outcome.local.has_value()) {
    session_.SetProxiedClient(*outcome.client, *outcome.local, outcome.balancer);
  }
  preamble_.reset();
  StartSession(now);
  // What came after the header in the same read is the client's: SMTP, or its ClientHello.
  if (outcome.leftover.empty() || done_ || closing_) return;
  OnTransportBytes(outcome.leftover, now);
}

void Connection::StartSession(absl::Time now) {
  if (!Admit(now)) return;
  if (!recv_armed_) ArmRecv();
  if (session_.facts().listener->tls == core::TlsMode::kImplicit) {
    // RFC 8314: TLS from the first byte; the greeting comes once the handshake is done.
    BeginTls(now);
    return;
  }
  if (greet_pause_ > absl::ZeroDuration()) {
    greet_deadline_ = now + greet_pause_;  // Tick() greets
    return;
  }
  session_.Start(now, out_);
  AfterSession();
}

bool Connection::ReadOneAtATime() {
  // Plain and userspace TLS: once a message is large (Session::receiving_large_message). Kernel
  // TLS: from the first octet of every message, because a multishot recvmsg there delivers its
  // burst (record by record, up to megabytes on a slow machine) before a cancel lands, and what
  // the session cannot take then is copied a second time; the extra cancel and re-arm per message
  // are small beside the kernel's decryption.
  if (kernel_tls() != nullptr) return session_.receiving_message();
  return session_.receiving_large_message();
}

void Connection::ArmRecv() {
  io_uring_sqe* sqe = shard_.reactor().Prepare(&recv_op_);
  if (KernelTls* ktls = kernel_tls(); ktls != nullptr) {
    // recvmsg, so that the kernel can say which kind of record the bytes come from.
    ktls->PrepareRecvMsg();
    if (ReadOneAtATime()) {
      // One record at a time while a message comes in, as below. Its completion holds the
      // payload at the start of the buffer and the record type in the control area.
      io_uring_prep_recvmsg(sqe, fd_, &ktls->recv_msg(), 0);
      recv_single_shot_ = true;
    } else {
      io_uring_prep_recvmsg_multishot(sqe, fd_, &ktls->recv_msg(), 0);
      recv_single_shot_ = false;
    }
  } else if (session_.receiving_large_message()) {
    // A large message is coming in (Session::receiving_large_message): one receive at a time,
    // re-armed only when the session can take more, so that a fast sender is held back by TCP
    // rather than by input piling up here while the store writes.
    io_uring_prep_recv(sqe, fd_, nullptr, 0, 0);
    recv_single_shot_ = true;
  } else {
    io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
    recv_single_shot_ = false;
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = shard_.buffers().group_id();
  recv_armed_ = true;
  recv_rearm_ = false;
  recv_switch_sent_ = false;
}

void Connection::OnRecv(const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) recv_armed_ = false;
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t buffer_id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  KernelTls* ktls = kernel_tls();
  // What HoldInput may keep in place; recycle() gives the buffer back unless it did.
  if (has_buffer && cqe.res > 0) recv_buffer_ = buffer_id;
  recv_buffer_held_ = false;
  auto recycle = [&] {
    if (!recv_buffer_held_) shard_.buffers().Recycle(buffer_id);
    recv_buffer_.reset();
    recv_buffer_held_ = false;
  };
  if (cqe.res > 0 && ktls != nullptr) {
    if (has_buffer) {
      const std::string_view bytes =
          shard_.buffers().View(buffer_id, static_cast<uint32_t>(cqe.res));
      if (recv_single_shot_) {
        // A single-shot recvmsg: the payload starts the buffer, the record type is in the
        // control area (no control message: application data).
        absl::StatusOr<KernelTls::Received> record = ktls->ParseSingleShot(bytes);
        if (!record.ok()) {
          if (!done_ && !closing_)
            FailKernelTls(kAlertInternalError, std::string(record.status().message()));
        } else if (!done_ && closing_) {
          DropClosingInput(bytes.size());
        } else if (!done_) {
          OnKernelRecord(record->record_type, record->payload, shard_.BatchNow());
        }
        recycle();
        if (!recv_armed_ && !done_) recv_rearm_ = true;
        MarkDirty();
        return;
      }
      absl::StatusOr<KernelTls::Received> record = ktls->ParseMultishot(bytes, cqe.res);
      if (!record.ok()) {
        if (!done_ && !closing_)
          FailKernelTls(kAlertInternalError, std::string(record.status().message()));
      } else if (record->payload.empty() && !recv_armed_) {
        // recvmsg returned 0: the client closed TCP without close_notify.
        if (!closing_ && end_reason_.empty() && !session_.closed()) end_reason_ = "disconnect";
        done_ = true;
      } else if (!done_ && closing_) {
        DropClosingInput(record->payload.size());
      } else if (!done_) {
        OnKernelRecord(record->record_type, record->payload, shard_.BatchNow());
      }
      recycle();
    }
    if (!recv_armed_ && !done_) recv_rearm_ = true;
  } else if (cqe.res > 0) {
    if (has_buffer) {
      if (!done_ && closing_) {
        DropClosingInput(static_cast<size_t>(cqe.res));
      } else if (!done_) {
        const std::string_view bytes =
            shard_.buffers().View(buffer_id, static_cast<uint32_t>(cqe.res));
        if (preamble_ != nullptr) {
          OnPreamble(bytes, shard_.BatchNow());
        } else {
          OnTransportBytes(bytes, shard_.BatchNow());
        }
      }
      // Whatever the session needs of these bytes it has copied, or held_input_ kept the buffer.
      recycle();
    }
    if (!recv_armed_ && !done_) recv_rearm_ = true;
  } else if (cqe.res == -ENOBUFS) {
    // Every receive buffer of the shard was in use for a moment; try again after this batch.
    if (!done_) recv_rearm_ = true;
  } else if (cqe.res == -ECANCELED && recv_paused_) {
    // Our own cancel: the client's replies backed up (Flush re-arms once they drain).
  } else if (cqe.res == -ECANCELED && recv_switch_sent_) {
    // Our own cancel: a message started streaming in; re-armed one receive at a time.
    if (!done_) recv_rearm_ = true;
  } else if (cqe.res == -ECANCELED && closing_read_stopped_) {
    // Our own cancel: the client kept sending after the end (DropClosingInput). The linger ends
    // the connection.
  } else if (cqe.res == -ECANCELED && SwitchingToKernel()) {
    // Our own cancel before the kernel takes the keys: not an end (Flush completes the move).
  } else if (cqe.res == -EKEYEXPIRED && ktls != nullptr) {
    // A read raced the client's KeyUpdate before the new key was installed; read again.
    if (!done_) recv_rearm_ = true;
  } else {
    if (has_buffer) shard_.buffers().Recycle(buffer_id);
    // EOF (0), reset, a record the kernel could not decrypt (EBADMSG), or our own cancel:
    // nothing more will come from this client.
    if (cqe.res != -ECANCELED && !closing_ && end_reason_.empty() && !session_.closed()) {
      end_reason_ = cqe.res == 0 ? "disconnect" : cqe.res == -EBADMSG ? "tls-bad-record" : "reset";
    }
    done_ = true;
  }
  MarkDirty();
}

void Connection::AfterSession() {
  for (const std::string& event : out_.log) {
    core::LogInfo(absl::StrCat("smtp shard=", shard_.index(),
                               " client=", session_.facts().client.ToString(), " ", event));
  }
  out_.log.clear();
  if (SwitchingToKernel() && out_.close) {
    // The session is ending (timeout, shutdown) before the kernel took the keys: say goodbye
    // through OpenSSL, which still has them.
    userspace_tls()->AbandonKernelSwitch();
  }
  if (SwitchingToKernel()) {
    // Replies (the implicit-TLS greeting) wait for the record layer to settle.
    MarkDirty();
    return;
  }
  if (!out_.replies.empty()) {
    shard_.mutable_counters().traffic.CountReplies(out_.replies);
    // Cleartext, including the "220 Ready to start TLS" that must precede the handshake;
    // records through OpenSSL; or plaintext that the kernel encrypts.
    absl::Status sealed = transport_->Seal(out_.replies, wire_);
    if (!sealed.ok()) {
      FailTls(sealed, shard_.BatchNow());
      return;
    }
    out_.replies.clear();
  }
  if (out_.start_tls) {
    out_.start_tls = false;
    // Bytes after STARTTLS in the same read were discarded by the session (CVE-2011-0411);
    // from here on everything read is the client's handshake.
    BeginTls(shard_.BatchNow());
  }
  // The store, in the order the session produced these (Output).
  for (const std::string& id : out_.abort_streams) shard_.spool().Abort(id);
  out_.abort_streams.clear();
  if (out_.fragment.has_value()) {
    fragment_inflight_ = true;
    core::SpoolFragment& fragment = *out_.fragment;
    shard_.spool().SubmitFragment(fragment.id, fragment.index, std::move(fragment.bytes), this);
    out_.fragment.reset();
  }
  if (out_.deliver.has_value()) {
    spool_inflight_ = true;
    stored_at_ = shard_.BatchNow();
    shard_.spool().Submit(std::move(*out_.deliver), this);
    out_.deliver.reset();
  }
  if (out_.check.has_value()) {
    check_id_ = shard_.StartCheck(this, std::move(*out_.check), session_.snapshot());
    out_.check.reset();
  }
  // Milters: connect on the first bytes for each, then send in order; close after QUIT.
  for (smtp::MilterSend& send : out_.milter_send) {
    if (send.milter >= milters_.size() || done_) continue;
    std::unique_ptr<MilterLink>& link = milters_[send.milter];
    if (link == nullptr) {
      link = std::make_unique<MilterLink>(shard_.reactor(), *this, send.milter,
                                          session_.milter_config(send.milter));
      link->Start(shard_.BatchNow());
    }
    link->Send(send.bytes, shard_.BatchNow());
  }
  out_.milter_send.clear();
  for (uint32_t i : out_.milter_close) {
    if (i < milters_.size() && milters_[i] != nullptr) milters_[i]->CloseAfterSend();
  }
  out_.milter_close.clear();
  if (out_.close && !closing_) {
    closing_ = true;
    // The TLS goodbye after the last reply (221, 421), so the client sees a clean end (in
    // userspace; the kernel's goes out with the FIN, Flush).
    transport_->OnSessionClose(wire_);
  }
  MarkDirty();
}

void Connection::OnStored(const absl::Status& result) {
  spool_inflight_ = false;
  ShardCounters& counters = shard_.mutable_counters();
  if (!result.ok()) {
    ShardCounters::Add(counters.store_errors, 1);
    core::LogError(absl::StrCat("shard=", shard_.index(), " spool error: ", result.ToString()));
  }
  TrafficCells::Observe(shard_.mutable_counters().traffic.store_latency,
                        shard_.BatchNow() - stored_at_);
  if (!done_) {
    session_.OnDelivered(result, shard_.BatchNow(), out_);
    AfterSession();
  }
  MarkDirty();
}

void Connection::OnCheckAnswer(smtp::CheckAnswer answer) {
  check_id_ = 0;
  if (!done_) {
    session_.OnCheckAnswer(session_.check_outstanding(), answer, shard_.BatchNow(), out_);
    AfterSession();
  }
  MarkDirty();  // Flush() resumes reading if the session can take input again
}

void Connection::OnFragmentStored(const absl::Status& result) {
  fragment_inflight_ = false;
  if (!result.ok()) {
    ShardCounters::Add(shard_.mutable_counters().store_errors, 1);
    core::LogError(absl::StrCat("shard=", shard_.index(), " spool error: ", result.ToString()));
  }
  // The session hears of it once the milters have that piece too (MaybeFinishFragment).
  fragment_result_ = result;
  MaybeFinishFragment();
  MarkDirty();  // Flush() resumes reading if the session can take input again
}

void Connection::MaybeFinishFragment() {
  if (!fragment_result_.has_value()) return;
  for (const std::unique_ptr<MilterLink>& link : milters_) {
    if (link != nullptr && !link->drained()) return;
  }
  const absl::Status result = std::move(*fragment_result_);
  fragment_result_.reset();
  if (!done_) {
    session_.OnFragmentStored(result, shard_.BatchNow(), out_);
    AfterSession();
  }
}

void Connection::OnMilterBytes(uint32_t index, std::string_view bytes) {
  if (index < milters_.size() && milters_[index] != nullptr) {
    milters_[index]->Touch(shard_.BatchNow());
  }
  if (!done_) {
    session_.OnMilterInput(index, bytes, shard_.BatchNow(), out_);
    AfterSession();
  }
  MarkDirty();
}

void Connection::OnMilterFailed(uint32_t index, std::string_view why) {
  if (!done_) {
    session_.OnMilterError(index, why, shard_.BatchNow(), out_);
    AfterSession();
  }
  MarkDirty();
}

void Connection::OnMilterDrained(uint32_t /*index*/) {
  MaybeFinishFragment();
  MarkDirty();
}

void Connection::AbandonStoreStream() {
  // Torn down mid-message without the session closing: the store drops what it holds of it
  // (and will not call us about it any more).
  const std::string_view id = session_.streaming_id();
  if (!id.empty()) shard_.spool().Abort(id);
  fragment_inflight_ = false;
}

void Connection::SendWire() {
  sending_.swap(wire_);
  wire_.clear();
  send_offset_ = 0;
  SubmitSend();
}

void Connection::SubmitSend() {
  io_uring_sqe* sqe = shard_.reactor().Prepare(&send_op_);
  io_uring_prep_send(sqe, fd_, sending_.data() + send_offset_, sending_.size() - send_offset_,
                     MSG_NOSIGNAL);
  send_inflight_ = true;
}

void Connection::OnSend(const io_uring_cqe& cqe) {
  send_inflight_ = false;
  if (cqe.res < 0) {
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "send-error";
    done_ = true;
  } else {
    send_offset_ += static_cast<size_t>(cqe.res);
    if (send_offset_ < sending_.size() && !done_) {
      SubmitSend();  // short write: the rest of the same batch's replies
      return;
    }
    sending_.clear();
    if (sending_.capacity() > kKeptSendCapacityBytes) std::string().swap(sending_);
    send_offset_ = 0;
  }
  MarkDirty();
}

UserspaceTls* Connection::userspace_tls() {
  return transport_->kind() == Transport::Kind::kUserspaceTls
             ? static_cast<UserspaceTls*>(transport_.get())
             : nullptr;
}

KernelTls* Connection::kernel_tls() {
  return transport_->kind() == Transport::Kind::kKernelTls
             ? static_cast<KernelTls*>(transport_.get())
             : nullptr;
}

bool Connection::TlsIn(UserspaceTls::State state) {
  const UserspaceTls* tls = userspace_tls();
  return tls != nullptr && tls->state() == state;
}

void Connection::BeginTls(absl::Time now) {
  const policy::ConnectionFacts& facts = session_.facts();
  const bool implicit = facts.listener->tls == core::TlsMode::kImplicit;
  absl::StatusOr<std::unique_ptr<tls::Engine>> engine =
      tls::Engine::ForServer(generation_->runtime().tls, listener_index_, implicit, facts.client);
  if (!engine.ok()) {
    FailTls(engine.status(), now);
    return;
  }
  transport_ = std::make_unique<UserspaceTls>(*std::move(engine));
  handshake_at_ = now;
}

void Connection::OnTransportBytes(std::string_view bytes, absl::Time now) {
  if (transport_->kind() == Transport::Kind::kPlain) {
    DeliverInput(bytes, now);
  } else {
    OnCiphertext(bytes, now);
  }
}

void Connection::OnCiphertext(std::string_view bytes, absl::Time now) {
  UserspaceTls* tls = userspace_tls();
  UserspaceTls::Input input;
  absl::Status received = tls->Receive(bytes, wire_, input);
  if (!received.ok()) {
    FailTls(received, now);
    return;
  }
  if (input.handshake_done) {
    OnHandshakeDone(now);
    if (done_ || closing_ || SwitchingToKernel()) return;
    // Application data may have come with the client's Finished: decrypt it.
    received = tls->Receive(std::string_view(), wire_, input);
    if (!received.ok()) {
      FailTls(received, now);
      return;
    }
  }
  if (!input.plaintext.empty()) DeliverInput(input.plaintext, now);
  if (input.peer_closed && !done_) {
    // close_notify: the client is gone. A message in progress is dropped with the session.
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-close";
    done_ = true;
  }
}

void Connection::OnHandshakeDone(absl::Time now) {
  // The client's Finished gets no answer from us (no session tickets), so its ACK would wait for
  // the delayed-ACK timer, and a client with Nagle on would hold its first command 40 ms behind
  // it. Acknowledge at once.
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
  TrafficCells::Observe(shard_.mutable_counters().traffic.handshake_time, now - handshake_at_);
  // Kernel TLS takes TLS 1.2 and 1.3 only: a TLS 1.0/1.1 session (a client of a
  // [[policy.tls_floor]]) stays on OpenSSL's record layer. A TLS 1.3 session may see KeyUpdates;
  // it moves only if the kernel can take new keys.
  UserspaceTls* tls = userspace_tls();
  const std::string& version = tls->engine().facts().version;
  const bool kernel_can =
      version == "TLSv1.2" || (version == "TLSv1.3" && shard_.kernel_tls_rekey());
  if (kernel_tls_wanted_ && kernel_can) {
    // Stop reading first: every byte the kernel is to decrypt must still be in the socket when
    // it gets the keys. What the receive brings until the cancel lands goes to OpenSSL, which
    // decrypts it in ExportForKernel(). Flush() completes the move (CompleteKernelTls) once the
    // receive has ended and our last userspace records (a TLS 1.2 Finished) are sent.
    tls->BeginKernelSwitch();
    if (recv_armed_) {
      io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
      io_uring_prep_cancel(sqe, static_cast<CompletionHandler*>(&recv_op_), 0);
    }
    MarkDirty();
    return;
  }
  tls->StayInUserspace();
  FinishHandshake(now, /*kernel=*/false);
}

void Connection::CompleteKernelTls(absl::Time now) {
  UserspaceTls* tls = userspace_tls();
  absl::StatusOr<tls::KtlsHandoff> keys = tls->engine().ExportForKernel();
  bool tx_installed = false;
  absl::Status installed = keys.ok() ? InstallKernelTls(fd_, *keys, &tx_installed) : keys.status();
  if (!installed.ok() && tx_installed) {
    // Half in the kernel: neither side can carry on.
    core::LogWarning(absl::StrCat("tls shard=", shard_.index(),
                                  " client=", session_.facts().client.ToString(),
                                  " kernel TLS receive key refused: ", installed.message()));
    if (end_reason_.empty()) end_reason_ = "ktls-failed";
    done_ = true;
    MarkDirty();
    return;
  }
  if (!installed.ok()) {
    // The socket is untouched and OpenSSL's state matches it: stay in userspace.
    core::LogInfo(absl::StrCat("tls shard=", shard_.index(),
                               " client=", session_.facts().client.ToString(),
                               " kernel TLS not used: ", installed.message()));
    tls->StayInUserspace();
    recv_rearm_ = true;
    FinishHandshake(now, /*kernel=*/false);
    if (done_ || closing_) return;
    if (keys.ok() && !keys->pending_plaintext.empty()) {
      DeliverInput(keys->pending_plaintext, now);
    } else if (!keys.ok()) {
      OnCiphertext(std::string_view(), now);  // what the export read is returned now
    }
    if (tls->engine().peer_closed() && !done_) {
      if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-close";
      done_ = true;
    }
    return;
  }
  const bool peer_closed = tls->engine().peer_closed();
  std::string pending = std::move(keys->pending_plaintext);
  // The facts of the handshake, before OpenSSL's session goes: the kernel has the keys.
  std::unique_ptr<Transport> userspace = std::move(transport_);
  transport_ = std::make_unique<KernelTls>(fd_, *std::move(keys));
  FinishHandshake(now, /*kernel=*/true, &tls->engine());
  userspace.reset();  // OpenSSL's session is no longer needed
  if (!pending.empty() && !done_ && !closing_) DeliverInput(pending, now);
  if (peer_closed && !done_) {
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-close";
    done_ = true;
  }
  if (!done_ && !closing_) ArmRecv();
  MarkDirty();
}

void Connection::OnKernelRecord(uint8_t record_type, std::string_view payload, absl::Time now) {
  const KernelTls::RecordResult result = kernel_tls()->OnRecord(record_type, payload);
  switch (result.action) {
    case KernelTls::RecordResult::Action::kData:
      DeliverInput(payload, now);  // held, not handed over, while reading is paused
      return;
    case KernelTls::RecordResult::Action::kPeerClosed:
      // close_notify: the client is gone. A message in progress is dropped with the session.
      if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-close";
      done_ = true;
      MarkDirty();
      return;
    case KernelTls::RecordResult::Action::kPeerAlert:
      core::LogWarning(
          absl::StrCat("tls shard=", shard_.index(), " client=", session_.facts().client.ToString(),
                       " sent TLS alert ", result.peer_alert, " (kernel record layer)"));
      if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-alert";
      done_ = true;
      MarkDirty();
      return;
    case KernelTls::RecordResult::Action::kNone:
      // A KeyUpdate followed, or a renegotiation refused: our records owed go out at Flush.
      MarkDirty();
      return;
    case KernelTls::RecordResult::Action::kFailed:
      FailKernelTls(kernel_tls()->goodbye_alert(), result.reason);
      return;
  }
}

void Connection::SendKernelOwed() {
  const absl::Status sent = kernel_tls()->SendOwed();
  if (!sent.ok()) {
    core::LogWarning(absl::StrCat("tls shard=", shard_.index(),
                                  " client=", session_.facts().client.ToString(),
                                  " cannot send our KeyUpdate: ", sent.message()));
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "ktls-failed";
    done_ = true;
  }
}

void Connection::FailKernelTls(uint8_t alert, std::string_view why) {
  core::LogWarning(absl::StrCat("tls shard=", shard_.index(),
                                " client=", session_.facts().client.ToString(),
                                " listener=", session_.facts().listener->name,
                                " failed: ", core::Av(why), " (kernel record layer)"));
  if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-failed";
  kernel_tls()->Fail(alert);
  out_.replies.clear();
  closing_ = true;
  MarkDirty();
}

void Connection::FinishHandshake(absl::Time now, bool kernel, const tls::Engine* engine) {
  if (engine == nullptr) engine = &userspace_tls()->engine();
  core::TlsFacts facts = engine->facts();
  facts.ktls = kernel;
  shard_.mutable_counters().traffic.CountHandshake(facts, kernel);
  const policy::ConnectionFacts& conn = session_.facts();
  core::LogInfo(absl::StrCat(
      "tls shard=", shard_.index(), " client=", conn.client.ToString(),
      " listener=", conn.listener->name, facts.implicit ? " mode=implicit" : " mode=starttls",
      " version=", facts.version, " cipher=", facts.cipher,
      " sni=", facts.sni.empty() ? "-" : facts.sni,
      facts.sni_fallback ? " sni_fallback=default-certificate" : "", " client_cert=",
      facts.client_cert.result == core::ClientCertResult::kVerified      ? "verified"
      : facts.client_cert.result == core::ClientCertResult::kNotVerified ? "not-verified"
                                                                         : "none",
      kernel ? " record_layer=kernel" : " record_layer=userspace"));
  session_.OnTlsEstablished(facts, now, out_);
  if (facts.implicit) session_.Start(now, out_);
  AfterSession();
}

void Connection::FailTls(const absl::Status& status, absl::Time now) {
  const std::string prefix =
      absl::StrCat("tls shard=", shard_.index(), " client=", session_.facts().client.ToString(),
                   " listener=", session_.facts().listener->name);
  UserspaceTls* tls = userspace_tls();
  if (tls != nullptr && tls->engine().version_refusal().has_value()) {
    // Too old a protocol for this client (its listener's min_tls, or its tls_floor's): OpenSSL
    // sent protocol_version. One line an operator can act on, e.g. by adding a tls_floor.
    const tls::Engine::VersionRefusal& refusal = *tls->engine().version_refusal();
    core::LogWarning(absl::StrCat(prefix, " handshake refused: client offered ", refusal.offered,
                                  ", minimum ", refusal.minimum));
  } else {
    core::LogWarning(absl::StrCat(prefix, " failed: ", status.message()));
  }
  if (tls == nullptr && transport_->kind() == Transport::Kind::kPlain) {
    shard_.mutable_counters().traffic.CountHandshakeFailure("engine not created");
  } else if (tls != nullptr && tls->state() == UserspaceTls::State::kHandshaking) {
    shard_.mutable_counters().traffic.CountHandshakeFailure(tls->engine().failure_reason());
  }
  if (end_reason_.empty()) end_reason_ = "tls-failed";
  session_.OnTlsFailed(now, out_);
  out_.replies.clear();  // nothing more can be said in cleartext once TLS has begun
  closing_ = true;
  MarkDirty();
}

void Connection::Tick(absl::Time now) {
  if (done_) return;
  if (fin_sent_) {
    if (now >= linger_deadline_) {
      done_ = true;
      MarkDirty();
    }
    return;
  }
  if (preamble_ != nullptr) {
    // Still waiting for the PROXY header: nothing else runs yet.
    if (preamble_->Expired(now)) EndPreamble("timeout", preamble_->TimeoutDetail());
    return;
  }
  if (closing_ && send_inflight_) {
    // The session has ended but its last replies cannot leave: the client does not read. Wait
    // as long as the linger after a FIN, then drop the connection.
    if (unsent_deadline_ == absl::InfiniteFuture()) unsent_deadline_ = now + kLinger;
    if (now >= unsent_deadline_) {
      if (end_reason_.empty() && !session_.closed()) end_reason_ = "not-reading";
      done_ = true;
      MarkDirty();
    }
    return;
  }
  if (now >= greet_deadline_) {
    // The greet pause is over; an early talker has already been answered 554 and is closing.
    greet_deadline_ = absl::InfiniteFuture();
    if (!closing_ && !session_.closed()) {
      session_.Start(now, out_);
      AfterSession();
    }
  }
  if (!closing_ && now >= session_.deadline()) {
    session_.OnTimeout(now, out_);
    AfterSession();
  }
  for (size_t i = 0; i < milters_.size(); ++i) {
    if (milters_[i] != nullptr) milters_[i]->Tick(now, session_.MilterWaiting(i));
  }
}

void Connection::Drain(absl::Time now) {
  if (done_ || closing_) return;
  if (preamble_ != nullptr) {
    EndPreamble("shutdown", "before the header");
    return;
  }
  session_.OnShutdown(now, out_);
  AfterSession();
}

void Connection::Abort() {
  if (end_reason_.empty() && !session_.closed()) end_reason_ = "shutdown-forced";
  done_ = true;
  MarkDirty();
}

void Connection::MarkDirty() { shard_.MarkDirty(this); }

size_t Connection::QueuedOutput() const { return wire_.size() + (sending_.size() - send_offset_); }

void Connection::PauseIfBackedUp() {
  const bool reading = transport_->carrying();
  if (recv_paused_ || done_ || !reading) return;
  // A client whose replies back up, or a session that cannot take more input now (a message
  // streaming in faster than the store writes it).
  if (QueuedOutput() <= kMaxQueuedOutputBytes && !session_.input_blocked()) return;
  // If the receive is not armed (it ended, e.g. ENOBUFS), it is simply not re-armed.
  if (recv_armed_) {
    io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
    io_uring_prep_cancel(sqe, static_cast<CompletionHandler*>(&recv_op_), 0);
  }
  recv_paused_ = true;
}

void Connection::DeliverInput(std::string_view bytes, absl::Time now) {
  if (recv_paused_ || !held_input_.empty()) {
    // Older input waits: this goes after it.
    HoldInput(bytes);
  } else {
    const size_t taken = FeedSession(bytes, now);
    if (taken < bytes.size()) HoldInput(bytes.substr(taken));
  }
  // A large message is coming in: end the multishot receive before the session has to wait for
  // the store, so that it is re-armed one receive at a time (ArmRecv) and no burst piles up here.
  if (recv_armed_ && !recv_single_shot_ && !recv_switch_sent_ && !done_ && transport_->carrying() &&
      ReadOneAtATime()) {
    io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
    io_uring_prep_cancel(sqe, static_cast<CompletionHandler*>(&recv_op_), 0);
    recv_switch_sent_ = true;
  }
  PauseIfBackedUp();
}

size_t Connection::FeedSession(std::string_view bytes, absl::Time now) {
  // In slices: a session that starts waiting for the store (a delivery) buffers at most one
  // slice; a session whose body buffer is full takes nothing more, and the rest waits here.
  size_t taken = 0;
  while (taken < bytes.size() && !done_ && !session_.closed()) {
    if (session_.input_blocked()) return taken;
    const size_t n = std::min(bytes.size() - taken, kSessionSliceBytes);
    const size_t used = session_.OnInputUntilFull(bytes.substr(taken, n), now, out_);
    AfterSession();
    taken += used;
    if (used < n) return taken;
  }
  // Ended: whatever is left means nothing any more.
  return bytes.size();
}

void Connection::HoldInput(std::string_view bytes) {
  // Read before the cancel landed (or while the session waits): held, not answered, so memory
  // and output stay bounded.
  const size_t max_held = session_.input_blocked() || session_.receiving_large_message()
                              ? kMaxHeldInputWhileStoringBytes
                              : kMaxHeldInputBytes;
  if (held_input_.size() + bytes.size() > max_held) {
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "not-reading";
    done_ = true;
    MarkDirty();
    return;
  }
  ShardCounters& counters = shard_.mutable_counters();
  if (held_input_.Hold(bytes, recv_buffer_held_ ? std::nullopt : recv_buffer_)) {
    recv_buffer_held_ = true;
    ShardCounters::Add(counters.input_held_in_place_bytes, bytes.size());
    counters.recv_buffers_held.store(shard_.buffers().held(), std::memory_order_relaxed);
  } else {
    ShardCounters::Add(counters.input_held_copied_bytes, bytes.size());
  }
}

void Connection::DeliverHeld(absl::Time now) {
  while (!held_input_.empty() && !done_ && !session_.closed() && !session_.input_blocked()) {
    const std::string_view front = held_input_.Front();
    const size_t taken = FeedSession(front, now);
    held_input_.Consume(std::min(taken, front.size()));
    if (taken < front.size()) break;
  }
  if (done_ || session_.closed()) held_input_.Clear();
  PauseIfBackedUp();
}

void Connection::DropClosingInput(size_t bytes) {
  closing_input_ += bytes;
  if (closing_input_ <= kMaxClosingInputBytes || closing_read_stopped_) return;
  closing_read_stopped_ = true;
  if (recv_armed_) {
    io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
    io_uring_prep_cancel(sqe, static_cast<CompletionHandler*>(&recv_op_), 0);
  }
  MarkDirty();
}

void Connection::Flush(absl::Time now) {
  if (!done_ && SwitchingToKernel() && !recv_armed_ && !send_inflight_ && wire_.empty()) {
    CompleteKernelTls(now);
  }
  // Records of our own go out between sends, so they keep their place in the stream.
  if (!done_ && kernel_tls() != nullptr && !send_inflight_) SendKernelOwed();
  if (!done_) {
    if (!wire_.empty() && !send_inflight_ &&
        (kernel_tls() == nullptr || !kernel_tls()->key_update_owed())) {
      // One write per batch: everything the session produced since the last send (RFC 2920).
      SendWire();
    }
    // Backpressure: a client that does not read its replies is not read either.
    PauseIfBackedUp();
    if (recv_paused_ && !recv_armed_ && !closing_ && QueuedOutput() <= kMaxQueuedOutputBytes / 2 &&
        !session_.input_blocked()) {
      recv_paused_ = false;
      recv_rearm_ = true;
      if (!held_input_.empty()) {
        DeliverHeld(now);  // as far as the session takes it; may pause again
        if (!wire_.empty() && !send_inflight_) SendWire();
      }
    }
    if (closing_ && recv_paused_ && !recv_armed_ && !closing_read_stopped_) {
      // The session ended while reading was paused (it waited for the store, or the client was
      // not reading): nothing held matters any more, but a client that is still sending must be
      // read (and dropped, DropClosingInput) during the linger, or its unread input would reset
      // the connection before it reads our last reply.
      recv_paused_ = false;
      held_input_.Clear();
      recv_rearm_ = true;
    }
    // Also while closing: a single-shot receive ends after each read, and the linger needs one.
    if (recv_rearm_ && !recv_armed_ && !recv_paused_ && !closing_read_stopped_ &&
        !SwitchingToKernel()) {
      ArmRecv();
    }
    if (closing_ && !fin_sent_ && !send_inflight_ && wire_.empty() && !spool_inflight_) {
      // The TLS goodbye after the last reply under kernel TLS: close_notify, or the alert of a
      // failure.
      if (KernelTls* ktls = kernel_tls(); ktls != nullptr) ktls->SendGoodbye();
      // Replies are out: half-close and wait (bounded) for the client's EOF.
      shutdown(fd_, SHUT_WR);
      fin_sent_ = true;
      linger_deadline_ = now + kLinger;
      // With nothing left to read the connection can go; a client that is still sending is given
      // the linger to read our reply before its unread input resets the connection.
      if (!recv_armed_ && !closing_read_stopped_) done_ = true;
    }
  }
  if (done_) {
    // Held receive buffers go back to the ring now, not when the connection is destroyed.
    held_input_.Clear();
    if (fragment_inflight_ || !session_.streaming_id().empty()) AbandonStoreStream();
    // The session's milter connections end with it (QUIT went out if the session closed).
    for (std::unique_ptr<MilterLink>& link : milters_) {
      if (link != nullptr) link->Close();
    }
    if (recv_armed_ && !cancel_sent_) {
      io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
      io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
      cancel_sent_ = true;
    }
    if (send_inflight_ && !cancel_sent_) {
      io_uring_sqe* sqe = shard_.reactor().Prepare(nullptr);
      io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
      cancel_sent_ = true;
    }
    if (Finished()) LogEnd(now);
  }
  // Held buffers are taken only while a completion is handled and given back on the way here.
  shard_.mutable_counters().recv_buffers_held.store(shard_.buffers().held(),
                                                    std::memory_order_relaxed);
}

bool Connection::Finished() const {
  if (!(done_ && !recv_armed_ && !send_inflight_ && !spool_inflight_)) return false;
  for (const std::unique_ptr<MilterLink>& link : milters_) {
    if (link != nullptr && !link->finished()) return false;
  }
  return true;
}

void Connection::LogEnd(absl::Time now) {
  if (logged_) return;
  logged_ = true;
  // Admit() logged the one line of a refused connection, EndPreamble() that of a failed preamble.
  if (refused_ || preamble_failed_) return;
  if (preamble_ != nullptr) {
    // The peer went away (or the connection was aborted) before its PROXY header: no session.
    core::LogInfo(
        absl::StrCat("proxy shard=", shard_.index(), " client=", session_.facts().client.ToString(),
                     " listener=", session_.facts().listener->name,
                     " ended before the header: ", end_reason_.empty() ? "closed" : end_reason_));
    return;
  }
  const smtp::SessionStats& stats = session_.stats();
  ShardCounters& counters = shard_.mutable_counters();
  ShardCounters::Add(counters.messages_accepted, stats.messages_accepted);
  ShardCounters::Add(counters.messages_rejected, stats.messages_rejected);
  ShardCounters::Add(counters.bytes_accepted, stats.bytes_accepted);
  std::string_view result = session_.end_reason();
  if (result.empty()) result = end_reason_;
  if (result.empty()) result = "closed";
  const std::string_view helo = session_.helo();
  core::LogInfo(absl::StrCat(
      "session shard=", shard_.index(), " client=", session_.facts().client.ToString(),
      session_.facts().proxied_by ? " proxied_by=" : "",
      session_.facts().proxied_by ? session_.facts().proxied_by->address.ToString() : "",
      " listener=", session_.facts().listener->name, " helo=", helo.empty() ? "-" : core::Av(helo),
      " messages=", stats.messages_accepted, " rejected=", stats.messages_rejected,
      " bytes=", stats.bytes_accepted, " commands=", stats.commands, " result=", core::Av(result),
      " duration_ms=", absl::ToInt64Milliseconds(now - started_)));
}

}  // namespace ringmx::net
