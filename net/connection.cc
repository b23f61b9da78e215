#include "net/connection.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/strings.h"
#include "net/buffer_ring.h"
#include "net/shard.h"

namespace ringmx::net {
namespace {

// How long a closing connection waits for the client's EOF after our FIN, so that the last
// reply (221, 421, 554) is not destroyed by a RST from unread input.
constexpr absl::Duration kLinger = absl::Seconds(2);

}  // namespace

Connection::Connection(Shard& shard, int fd, const Runtime& runtime, size_t listener_index,
                       policy::ConnectionFacts facts, absl::Time now)
    : shard_(shard),
      fd_(fd),
      tls_context_(runtime.tls),
      listener_index_(listener_index),
      greet_pause_(runtime.snapshot->config.timeouts.greet_pause),
      session_(runtime.snapshot, std::move(facts), shard.ids()),
      started_(now) {
  recv_op_.connection = this;
  recv_op_.on_complete = &Connection::OnRecv;
  send_op_.connection = this;
  send_op_.on_complete = &Connection::OnSend;
  greet_op_.connection = this;
  greet_op_.on_complete = &Connection::OnGreetTimer;
}

Connection::~Connection() {
  if (fd_ >= 0) close(fd_);
}

void Connection::Start(absl::Time now) {
  ArmRecv();
  if (session_.facts().listener->tls == core::TlsMode::kImplicit) {
    // RFC 8314: TLS from the first byte; the greeting comes once the handshake is done.
    BeginTls(now);
    return;
  }
  if (greet_pause_ > absl::ZeroDuration()) {
    const int64_t ns = absl::ToInt64Nanoseconds(greet_pause_);
    greet_ts_.tv_sec = ns / 1000000000;
    greet_ts_.tv_nsec = ns % 1000000000;
    io_uring_sqe* sqe = shard_.reactor().Prepare(&greet_op_);
    io_uring_prep_timeout(sqe, &greet_ts_, 0, 0);
    greet_inflight_ = true;
    return;
  }
  session_.Start(now, out_);
  AfterSession();
}

void Connection::OnGreetTimer(const io_uring_cqe& /*cqe*/) {
  greet_inflight_ = false;
  if (!done_ && !closing_ && !session_.closed()) {
    session_.Start(absl::Now(), out_);
    AfterSession();
  }
  MarkDirty();
}

void Connection::ArmRecv() {
  io_uring_sqe* sqe = shard_.reactor().Prepare(&recv_op_);
  io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = shard_.buffers().group_id();
  recv_armed_ = true;
  recv_rearm_ = false;
}

void Connection::OnRecv(const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) recv_armed_ = false;
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t buffer_id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (cqe.res > 0) {
    if (has_buffer) {
      if (!done_ && !closing_) {
        const std::string_view bytes =
            shard_.buffers().View(buffer_id, static_cast<uint32_t>(cqe.res));
        if (transport_ == Transport::kPlain) {
          session_.OnInput(bytes, absl::Now(), out_);
          AfterSession();
        } else {
          OnCiphertext(bytes, absl::Now());
        }
      }
      // Whatever the session needs of these bytes it has copied.
      shard_.buffers().Recycle(buffer_id);
    }
    if (!recv_armed_ && !done_) recv_rearm_ = true;
  } else if (cqe.res == -ENOBUFS) {
    // Every receive buffer of the shard was in use for a moment; try again after this batch.
    if (!done_) recv_rearm_ = true;
  } else {
    if (has_buffer) shard_.buffers().Recycle(buffer_id);
    // EOF (0), reset, or our own cancel: nothing more will come from this client.
    if (cqe.res != -ECANCELED && !closing_ && end_reason_.empty() && !session_.closed()) {
      end_reason_ = cqe.res == 0 ? "disconnect" : "reset";
    }
    done_ = true;
  }
  MarkDirty();
}

void Connection::AfterSession() {
  if (!out_.replies.empty()) {
    if (transport_ == Transport::kTls) {
      absl::Status encrypted = tls_->Encrypt(out_.replies);
      if (!encrypted.ok()) {
        FailTls(encrypted, absl::Now());
        return;
      }
      wire_.append(tls_->TakeCiphertext());
    } else {
      // Cleartext, including the "220 Ready to start TLS" that must precede the handshake.
      wire_.append(out_.replies);
    }
    out_.replies.clear();
  }
  if (out_.start_tls) {
    out_.start_tls = false;
    // Bytes after STARTTLS in the same read were discarded by the session (CVE-2011-0411);
    // from here on everything read is the client's handshake.
    BeginTls(absl::Now());
  }
  if (out_.deliver.has_value()) {
    spool_inflight_ = true;
    shard_.spool().Submit(std::move(*out_.deliver), this);
    out_.deliver.reset();
  }
  if (out_.close && !closing_) {
    closing_ = true;
    if (transport_ == Transport::kTls) {
      // The TLS goodbye after the last reply (221, 421), so the client sees a clean end.
      tls_->SendCloseNotify();
      wire_.append(tls_->TakeCiphertext());
    }
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
  if (!done_) {
    session_.OnDelivered(result, absl::Now(), out_);
    AfterSession();
  }
  MarkDirty();
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
    send_offset_ = 0;
  }
  MarkDirty();
}

void Connection::BeginTls(absl::Time now) {
  const policy::ConnectionFacts& facts = session_.facts();
  const bool implicit = facts.listener->tls == core::TlsMode::kImplicit;
  absl::StatusOr<std::unique_ptr<tls::Engine>> engine =
      tls::Engine::ForServer(tls_context_, listener_index_, implicit, facts.client);
  if (!engine.ok()) {
    FailTls(engine.status(), now);
    return;
  }
  tls_ = *std::move(engine);
  transport_ = Transport::kHandshaking;
}

void Connection::OnCiphertext(std::string_view bytes, absl::Time now) {
  tls_->PutCiphertext(bytes);
  if (transport_ == Transport::kHandshaking) {
    absl::StatusOr<tls::Progress> progress = tls_->Handshake();
    wire_.append(tls_->TakeCiphertext());  // handshake messages, or the alert of a failure
    if (!progress.ok()) {
      FailTls(progress.status(), now);
      return;
    }
    if (*progress == tls::Progress::kNeedInput) return;
    OnHandshakeDone(now);
    if (done_ || closing_) return;
    // Application data may have come with the client's Finished: fall through and decrypt it.
  }
  plaintext_.clear();
  absl::Status decrypted = tls_->Decrypt(plaintext_);
  wire_.append(tls_->TakeCiphertext());
  if (!decrypted.ok()) {
    FailTls(decrypted, now);
    return;
  }
  if (!plaintext_.empty()) {
    session_.OnInput(plaintext_, now, out_);
    AfterSession();
  }
  if (tls_->peer_closed() && !done_) {
    // close_notify: the client is gone. A message in progress is dropped with the session.
    if (end_reason_.empty() && !session_.closed()) end_reason_ = "tls-close";
    done_ = true;
  }
}

void Connection::OnHandshakeDone(absl::Time now) {
  transport_ = Transport::kTls;
  // The client's Finished gets no answer from us (no session tickets), so its ACK would wait for
  // the delayed-ACK timer, and a client with Nagle on would hold its first command 40 ms behind
  // it. Acknowledge at once.
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
  const core::TlsFacts& facts = tls_->facts();
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
      // Kernel TLS needs TLS ULP, which this kernel lacks or was not probed for: OpenSSL keeps
      // the record layer.
      " record_layer=userspace"));
  session_.OnTlsEstablished(facts, now, out_);
  if (facts.implicit) session_.Start(now, out_);
  AfterSession();
}

void Connection::FailTls(const absl::Status& status, absl::Time now) {
  core::LogWarning(
      absl::StrCat("tls shard=", shard_.index(), " client=", session_.facts().client.ToString(),
                   " listener=", session_.facts().listener->name, " failed: ", status.message()));
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
  if (!closing_ && now >= session_.deadline()) {
    session_.OnTimeout(now, out_);
    AfterSession();
  }
}

void Connection::Drain(absl::Time now) {
  if (done_ || closing_) return;
  session_.OnShutdown(now, out_);
  AfterSession();
}

void Connection::Abort() {
  if (end_reason_.empty() && !session_.closed()) end_reason_ = "shutdown-forced";
  done_ = true;
  MarkDirty();
}

void Connection::MarkDirty() { shard_.MarkDirty(this); }

void Connection::Flush(absl::Time now) {
  if (!done_) {
    if (!wire_.empty() && !send_inflight_) {
      // One write per batch: everything the session produced since the last send (RFC 2920).
      sending_.swap(wire_);
      wire_.clear();
      send_offset_ = 0;
      SubmitSend();
    }
    if (recv_rearm_ && !recv_armed_ && !closing_) ArmRecv();
    if (closing_ && !fin_sent_ && !send_inflight_ && wire_.empty() && !spool_inflight_) {
      // Replies are out: half-close and wait (bounded) for the client's EOF.
      shutdown(fd_, SHUT_WR);
      fin_sent_ = true;
      linger_deadline_ = now + kLinger;
      if (!recv_armed_) done_ = true;
    }
  }
  if (done_) {
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
}

bool Connection::Finished() const {
  return done_ && !recv_armed_ && !send_inflight_ && !spool_inflight_ && !greet_inflight_;
}

void Connection::LogEnd(absl::Time now) {
  if (logged_) return;
  logged_ = true;
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
      " listener=", session_.facts().listener->name, " helo=", helo.empty() ? "-" : core::Av(helo),
      " messages=", stats.messages_accepted, " rejected=", stats.messages_rejected,
      " bytes=", stats.bytes_accepted, " commands=", stats.commands, " result=", core::Av(result),
      " duration_ms=", absl::ToInt64Milliseconds(now - started_)));
}

}  // namespace ringmx::net
