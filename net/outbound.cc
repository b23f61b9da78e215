#include "net/outbound.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/log.h"
#include "core/status.h"
#include "net/listener.h"

namespace ringmx::net {
namespace {

constexpr size_t kRecvBytes = 16 * 1024;

std::string ErrnoText(int err) { return strerror(err); }

}  // namespace

OutboundConnection::OutboundConnection(Reactor& reactor, OutboundOwner& owner,
                                       OutboundOptions options)
    : reactor_(reactor),
      owner_(owner),
      options_(std::move(options)),
      hop_name_(options_.hop.ToString()),
      client_(options_.client),
      recv_buf_(new char[kRecvBytes]) {
  connect_op_.owner = recv_op_.owner = send_op_.owner = this;
  connect_op_.kind = Op::Kind::kConnect;
  recv_op_.kind = Op::Kind::kRecv;
  send_op_.kind = Op::Kind::kSend;
}

OutboundConnection::~OutboundConnection() {
  RINGMX_DCHECK(ops_in_flight_ == 0);
  if (fd_ >= 0) close(fd_);
}

void OutboundConnection::Start(absl::Time now) {
  now_ = phase_start_ = started_at_ = now;
  address_ = std::make_unique<SocketAddress>();
  absl::StatusOr<int> fd = OpenOutboundSocket(options_.hop.is_unix, options_.hop.unix_path,
                                              options_.hop.inet, *address_);
  if (!fd.ok()) {
    Fail(std::string(fd.status().message()));
    return;
  }
  fd_ = *fd;
  io_uring_sqe* sqe = reactor_.Prepare(&connect_op_);
  io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&address_->storage),
                        address_->length);
  ++ops_in_flight_;
}

void OutboundConnection::OnOp(Op::Kind kind, int res) {
  RINGMX_DCHECK(ops_in_flight_ > 0);
  --ops_in_flight_;
  switch (kind) {
    case Op::Kind::kConnect:
      OnConnected(res);
      break;
    case Op::Kind::kRecv:
      recv_armed_ = false;
      OnRecv(res);
      break;
    case Op::Kind::kSend:
      send_armed_ = false;
      OnSent(res);
      break;
  }
  MaybeFinished();
}

void OutboundConnection::OnConnected(int res) {
  if (state_ == State::kClosed) return;
  if (res < 0) {
    Fail(absl::StrCat("connect to ", hop_name_, ": ", ErrnoText(-res)));
    return;
  }
  state_ = State::kOpen;
  phase_start_ = now_;
  ArmRecv();
  PumpSend();
}

void OutboundConnection::ArmRecv() {
  if (recv_armed_ || state_ != State::kOpen) return;
  io_uring_sqe* sqe = reactor_.Prepare(&recv_op_);
  io_uring_prep_recv(sqe, fd_, recv_buf_.get(), kRecvBytes, 0);
  recv_armed_ = true;
  ++ops_in_flight_;
}

void OutboundConnection::OnRecv(int res) {
  if (state_ != State::kOpen) return;
  if (res <= 0) {
    Fail(res == 0 ? "connection closed by the hop"
                  : absl::StrCat("receive from ", hop_name_, ": ", ErrnoText(-res)));
    return;
  }
  phase_start_ = now_;
  std::string_view bytes(recv_buf_.get(), static_cast<size_t>(res));
  smtp::ClientOutput out;
  if (tls_ != nullptr) {
    tls_->PutCiphertext(bytes);
    if (tls_handshaking_) {
      AdvanceTls();
      ArmRecv();
      return;
    }
    plain_.clear();
    absl::Status status = tls_->Decrypt(plain_);
    QueueRaw(tls_->TakeCiphertext());
    if (!plain_.empty()) client_.OnInput(plain_, out);
    if (!status.ok()) {
      Process(out);
      Fail(absl::StrCat("TLS: ", status.message()));
      return;
    }
  } else {
    client_.OnInput(bytes, out);
  }
  Process(out);
  ArmRecv();
}

void OutboundConnection::StartTls() {
  if (!options_.make_tls) {
    smtp::ClientOutput out;
    client_.OnTlsFailed("no TLS context for this hop", out);
    Process(out);
    return;
  }
  absl::StatusOr<std::unique_ptr<tls::Engine>> engine = options_.make_tls();
  if (!engine.ok()) {
    smtp::ClientOutput out;
    client_.OnTlsFailed(std::string(engine.status().message()), out);
    Process(out);
    return;
  }
  tls_ = std::move(*engine);
  tls_handshaking_ = true;
  AdvanceTls();
  ArmRecv();
}

void OutboundConnection::AdvanceTls() {
  absl::StatusOr<tls::Progress> progress = tls_->Handshake();
  QueueRaw(tls_->TakeCiphertext());
  smtp::ClientOutput out;
  if (!progress.ok()) {
    tls_handshaking_ = false;
    client_.OnTlsFailed(std::string(progress.status().message()), out);
    Process(out);
    return;
  }
  if (*progress != tls::Progress::kEstablished) {
    PumpSend();
    return;
  }
  tls_handshaking_ = false;
  client_.OnTlsEstablished(out);
  Process(out);
  // Application data that came with the server's last handshake flight.
  plain_.clear();
  const bool decrypted = tls_->Decrypt(plain_).ok();
  QueueRaw(tls_->TakeCiphertext());
  if (decrypted && !plain_.empty()) {
    smtp::ClientOutput more;
    client_.OnInput(plain_, more);
    Process(more);
  }
}

void OutboundConnection::Process(smtp::ClientOutput& out) {
  if (!out.send.empty()) QueuePlain(out.send);
  if (!out.error.empty() && error_.empty()) error_ = out.error;
  if (out.start_tls) tls_after_send_ = true;
  if (out.close) close_after_send_ = true;
  const smtp::Client::Waiting waiting = client_.waiting_for();
  if (waiting != last_waiting_) {
    last_waiting_ = waiting;
    phase_start_ = now_;
    using Waiting = smtp::Client::Waiting;
    if (waiting == Waiting::kMail || waiting == Waiting::kData || waiting == Waiting::kDataDone ||
        waiting == Waiting::kIdle) {
      was_ready_ = true;  // past the greeting and EHLO/LHLO (and STARTTLS)
    }
    if (waiting == Waiting::kIdle) idle_since_ = now_;
  }
  const bool done = out.message_done;
  if (done) busy_ = false;
  if (!out.results.empty() || done) owner_.OnResults(*this, out.results, done);
  PumpSend();
}

void OutboundConnection::QueuePlain(std::string_view bytes) {
  if (bytes.empty()) return;
  if (tls_ != nullptr && !tls_handshaking_) {
    absl::Status status = tls_->Encrypt(bytes);
    QueueRaw(tls_->TakeCiphertext());
    if (!status.ok() && error_.empty()) error_ = absl::StrCat("TLS: ", status.message());
    return;
  }
  QueueRaw(bytes);
}

void OutboundConnection::QueueRaw(std::string_view bytes) { queued_.append(bytes); }

void OutboundConnection::PumpSend() {
  if (state_ != State::kOpen || send_armed_) return;
  if (sent_ >= sending_.size()) {
    sending_.clear();
    sent_ = 0;
    if (!queued_.empty()) std::swap(sending_, queued_);
  }
  if (!sending_.empty()) {
    io_uring_sqe* sqe = reactor_.Prepare(&send_op_);
    io_uring_prep_send(sqe, fd_, sending_.data() + sent_, sending_.size() - sent_, MSG_NOSIGNAL);
    send_armed_ = true;
    ++ops_in_flight_;
    return;
  }
  // Everything is out.
  if (tls_after_send_) {
    tls_after_send_ = false;
    StartTls();
    return;
  }
  if (close_after_send_) {
    close_after_send_ = false;
    if (tls_ != nullptr && !tls_handshaking_) {
      tls_->SendCloseNotify();
      std::string notify = tls_->TakeCiphertext();
      if (!notify.empty()) {
        // Best effort: a blocking-free send of a few bytes on an open socket.
        (void)send(fd_, notify.data(), notify.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    CloseSocket();
  }
}

void OutboundConnection::OnSent(int res) {
  if (state_ != State::kOpen) return;
  if (res <= 0) {
    Fail(absl::StrCat("send to ", hop_name_, ": ", ErrnoText(res == 0 ? EPIPE : -res)));
    return;
  }
  sent_ += static_cast<size_t>(res);
  PumpSend();
}

void OutboundConnection::Send(const smtp::OutboundMessage& message, absl::Time now) {
  now_ = now;
  RINGMX_DCHECK(can_send());
  busy_ = true;
  ++messages_;
  phase_start_ = now;
  smtp::ClientOutput out;
  client_.Send(message, out);
  Process(out);
}

void OutboundConnection::Quit(absl::Time now) {
  now_ = now;
  if (state_ == State::kClosed) return;
  smtp::ClientOutput out;
  client_.Quit(out);
  Process(out);
}

absl::Time OutboundConnection::Deadline() const {
  using Waiting = smtp::Client::Waiting;
  if (state_ == State::kConnecting) return phase_start_ + options_.connect_timeout;
  switch (client_.waiting_for()) {
    case Waiting::kIdle:
    case Waiting::kClosed:
      return absl::InfiniteFuture();
    case Waiting::kData:
    case Waiting::kDataDone:
      return phase_start_ + options_.data_timeout;
    default:
      return phase_start_ + options_.command_timeout;
  }
}

void OutboundConnection::Tick(absl::Time now) {
  now_ = now;
  if (state_ != State::kClosed && now >= Deadline()) {
    Fail(absl::StrCat("timeout ", state_ == State::kConnecting ? "connecting to " : "talking to ",
                      hop_name_));
  }
  MaybeFinished();
}

void OutboundConnection::Abort(std::string_view why) { Fail(why); }

void OutboundConnection::Fail(std::string_view why) {
  if (state_ == State::kClosed) return;
  if (error_.empty()) error_ = std::string(why);
  smtp::ClientOutput out;
  client_.OnClosed(why, out);
  out.send.clear();  // nothing more goes to a failed connection
  out.close = false;
  out.start_tls = false;
  if (out.message_done) busy_ = false;
  CloseSocket();
  if (!out.results.empty() || out.message_done) {
    owner_.OnResults(*this, out.results, out.message_done);
  }
}

void OutboundConnection::CloseSocket() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  busy_ = false;
  // Ends the RECV/SEND/CONNECT in flight (they complete with 0 or an error); the descriptor is
  // closed by the destructor, once nothing in flight refers to it.
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  if (ops_in_flight_ > 0) {
    io_uring_sqe* sqe = reactor_.Prepare(nullptr);
    io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
  }
}

void OutboundConnection::MaybeFinished() {
  if (finished_reported_ || !finished()) return;
  finished_reported_ = true;
  owner_.OnFinished(*this);
}

}  // namespace ringmx::net
