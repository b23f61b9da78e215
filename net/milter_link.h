// One milter connection of one SMTP session (docs/milter.md): a socket to a [[milter]]'s address
// (inet IPv4/IPv6 or unix) on the shard's ring, a send queue and a receive. It knows nothing of
// the protocol: the pure smtp::Session (its milter engines) says what to send and takes what
// comes back; this moves the bytes and keeps the timeouts (connect_timeout_s while connecting,
// then command_timeout_s or content_timeout_s from the last activity while the session waits for
// this milter's answer). The net::Connection owns its links.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"

#include "core/config.h"
#include "net/listener.h"
#include "net/reactor.h"
#include "smtp/milter/session.h"

namespace ringmx::net {

// What a link tells its owner. Called on the shard's thread from inside a completion or Tick();
// never from Start()/Send()/Close().
class MilterLinkOwner {
 public:
  // Bytes from milter `index` (valid only during the call).
  virtual void OnMilterBytes(uint32_t index, std::string_view bytes) = 0;
  // The link failed (connect refused, lost, a send failed, a timeout): it is closed now.
  virtual void OnMilterFailed(uint32_t index, std::string_view why) = 0;
  // Everything queued for the milter has been handed to the kernel (or dropped with the link).
  virtual void OnMilterDrained(uint32_t index) = 0;

 protected:
  ~MilterLinkOwner() = default;
};

// Shard-local. Destroy only once finished() (no operation in flight).
class MilterLink {
 public:
  // `config` must outlive the link (it lives in the session's Snapshot).
  MilterLink(Reactor& reactor, MilterLinkOwner& owner, uint32_t index,
             const core::MilterConfig& config);
  ~MilterLink();
  MilterLink(const MilterLink&) = delete;
  MilterLink& operator=(const MilterLink&) = delete;

  // Opens the socket and starts connecting; bytes sent meanwhile wait for the connection.
  void Start(absl::Time now);
  // Queues bytes for the milter (a new event: the reply timeout starts again).
  void Send(std::string_view bytes, absl::Time now);
  // Bytes came from the milter at `now` (a progress reply among them): the timeout starts again.
  void Touch(absl::Time now) { activity_ = now; }
  // Closes once everything queued is out (after QUIT).
  void CloseAfterSend();
  // Closes now (the SMTP connection is gone); no callback follows.
  void Close();
  // Checks the deadline: `waiting` is what the session waits for from this milter. Also reports
  // a failure that happened outside a completion (no socket).
  void Tick(absl::Time now, smtp::milter::Session::Waiting waiting);

  // Nothing queued or being sent.
  bool drained() const {
    return state_ == State::kClosed || (queued_.empty() && sent_ >= sending_.size());
  }
  bool closed() const { return state_ == State::kClosed; }
  bool finished() const { return state_ == State::kClosed && ops_in_flight_ == 0; }

 private:
  enum class State : uint8_t { kConnecting, kOpen, kClosed };
  struct Op final : CompletionHandler {
    enum class Kind : uint8_t { kConnect, kRecv, kSend };
    MilterLink* link = nullptr;
    Kind kind = Kind::kConnect;
    void OnCompletion(const io_uring_cqe& cqe) override { link->OnOp(kind, cqe.res); }
  };

  void OnOp(Op::Kind kind, int res);
  void ArmRecv();
  void PumpSend();
  // Closes and tells the owner.
  void Fail(std::string why);
  void CloseSocket();

  Reactor& reactor_;
  MilterLinkOwner& owner_;
  const uint32_t index_;
  const core::MilterConfig& config_;
  State state_ = State::kConnecting;
  int fd_ = -1;
  Op connect_op_;
  Op recv_op_;
  Op send_op_;
  size_t ops_in_flight_ = 0;
  bool recv_armed_ = false;
  bool send_armed_ = false;
  bool close_after_send_ = false;
  // Bytes for the socket: `sending_` is the SEND in flight (from `sent_` on), `queued_` what
  // comes after it.
  std::string sending_;
  size_t sent_ = 0;
  std::string queued_;
  std::unique_ptr<char[]> recv_buf_;
  std::unique_ptr<SocketAddress> address_;  // connect() reads it until it completes
  absl::Time connect_started_ = absl::InfinitePast();
  // The last activity: a new event sent, or bytes received (a milter's progress included).
  absl::Time activity_ = absl::InfinitePast();
  // A failure found outside a completion (Start), reported by the next Tick().
  std::string deferred_failure_;
};

}  // namespace ringmx::net
