#include "net/milter_link.h"

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
#include "net/listener.h"

namespace ringmx::net {
namespace {

constexpr size_t kRecvBytes = 16 * 1024;

}  // namespace

MilterLink::MilterLink(Reactor& reactor, MilterLinkOwner& owner, uint32_t index,
                       const core::MilterConfig& config)
    : reactor_(reactor),
      owner_(owner),
      index_(index),
      config_(config),
      recv_buf_(new char[kRecvBytes]) {
  connect_op_.link = recv_op_.link = send_op_.link = this;
  connect_op_.kind = Op::Kind::kConnect;
  recv_op_.kind = Op::Kind::kRecv;
  send_op_.kind = Op::Kind::kSend;
}

MilterLink::~MilterLink() {
  RINGMX_DCHECK(ops_in_flight_ == 0);
  if (fd_ >= 0) close(fd_);
}

void MilterLink::Start(absl::Time now) {
  connect_started_ = activity_ = now;
  address_ = std::make_unique<SocketAddress>();
  absl::StatusOr<int> fd =
      OpenOutboundSocket(config_.is_unix, config_.unix_path, config_.inet, *address_);
  if (!fd.ok()) {
    deferred_failure_ = std::string(fd.status().message());
    CloseSocket();
    return;
  }
  fd_ = *fd;
  io_uring_sqe* sqe = reactor_.Prepare(&connect_op_);
  io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&address_->storage),
                        address_->length);
  ++ops_in_flight_;
}

void MilterLink::Send(std::string_view bytes, absl::Time now) {
  if (state_ == State::kClosed || bytes.empty()) return;
  activity_ = now;
  queued_.append(bytes);
  PumpSend();
}

void MilterLink::CloseAfterSend() {
  if (state_ == State::kClosed) return;
  close_after_send_ = true;
  PumpSend();
}

void MilterLink::Close() { CloseSocket(); }

void MilterLink::OnOp(Op::Kind kind, int res) {
  RINGMX_DCHECK(ops_in_flight_ > 0);
  --ops_in_flight_;
  switch (kind) {
    case Op::Kind::kConnect:
      if (state_ == State::kClosed) return;
      if (res < 0) {
        Fail(absl::StrCat("connect to ", config_.AddressString(), ": ", strerror(-res)));
        return;
      }
      state_ = State::kOpen;
      ArmRecv();
      PumpSend();
      return;
    case Op::Kind::kRecv:
      recv_armed_ = false;
      if (state_ != State::kOpen) return;
      if (res <= 0) {
        Fail(res == 0 ? std::string("connection closed by the milter")
                      : absl::StrCat("receive: ", strerror(-res)));
        return;
      }
      ArmRecv();
      owner_.OnMilterBytes(index_, std::string_view(recv_buf_.get(), static_cast<size_t>(res)));
      return;
    case Op::Kind::kSend:
      send_armed_ = false;
      if (state_ != State::kOpen) return;
      if (res <= 0) {
        Fail(absl::StrCat("send: ", strerror(res == 0 ? EPIPE : -res)));
        return;
      }
      sent_ += static_cast<size_t>(res);
      PumpSend();
      if (drained() && state_ == State::kOpen) owner_.OnMilterDrained(index_);
      return;
  }
}

void MilterLink::ArmRecv() {
  if (recv_armed_ || state_ != State::kOpen) return;
  io_uring_sqe* sqe = reactor_.Prepare(&recv_op_);
  io_uring_prep_recv(sqe, fd_, recv_buf_.get(), kRecvBytes, 0);
  recv_armed_ = true;
  ++ops_in_flight_;
}

void MilterLink::PumpSend() {
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
  if (close_after_send_) CloseSocket();
}

void MilterLink::Tick(absl::Time now, smtp::milter::Session::Waiting waiting) {
  if (!deferred_failure_.empty()) {
    std::string why = std::move(deferred_failure_);
    deferred_failure_.clear();
    owner_.OnMilterFailed(index_, why);
    owner_.OnMilterDrained(index_);
    return;
  }
  if (state_ == State::kClosed) return;
  if (state_ == State::kConnecting) {
    if (now >= connect_started_ + config_.connect_timeout) {
      Fail(absl::StrCat("timeout connecting to ", config_.AddressString(), " (",
                        absl::FormatDuration(config_.connect_timeout), ")"));
    }
    return;
  }
  using Waiting = smtp::milter::Session::Waiting;
  absl::Duration limit = absl::InfiniteDuration();
  if (waiting == Waiting::kCommand) limit = config_.command_timeout;
  if (waiting == Waiting::kContent) limit = config_.content_timeout;
  if (limit != absl::InfiniteDuration() && now >= activity_ + limit) {
    Fail(absl::StrCat("timeout: no answer within ", absl::FormatDuration(limit)));
  }
}

void MilterLink::Fail(std::string why) {
  if (state_ == State::kClosed) return;
  CloseSocket();
  owner_.OnMilterFailed(index_, why);
  owner_.OnMilterDrained(index_);
}

void MilterLink::CloseSocket() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  queued_.clear();
  // Ends the RECV/SEND/CONNECT in flight; the descriptor is closed by the destructor, once
  // nothing in flight refers to it (the SEND's buffer stays ours until then).
  if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
  if (ops_in_flight_ > 0 && fd_ >= 0) {
    io_uring_sqe* sqe = reactor_.Prepare(nullptr);
    io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
  }
}

}  // namespace ringmx::net
