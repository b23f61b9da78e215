// One outbound connection to a next hop (DESIGN.md section 6a): a socket on the shard's ring, an
// optional client TLS engine (STARTTLS), and the pure smtp::Client engine that speaks SMTP or LMTP
// on it. The delivery driver (net/delivery.h) owns these, hands them one message at a time and
// keeps idle ones for reuse (Postfix's connection cache).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "core/next_hop.h"
#include "net/listener.h"
#include "net/reactor.h"
#include "smtp/client.h"
#include "tls/engine.h"

namespace ringmx::net {

class OutboundConnection;

// What an outbound connection tells its owner. Called on the shard's thread from inside a
// completion, a Tick() or a Send(); the owner must not destroy the connection from a callback
// (it waits for OnFinished() and deletes it after the batch).
class OutboundOwner {
 public:
  // Final results for recipients of the current message (`done`: the message is finished, the
  // engine no longer borrows its body).
  virtual void OnResults(OutboundConnection& connection,
                         std::vector<smtp::RecipientResult>& results, bool done) = 0;
  // The connection is closed and has no operation in flight: it may be deleted (after the batch).
  virtual void OnFinished(OutboundConnection& connection) = 0;

 protected:
  ~OutboundOwner() = default;
};

struct OutboundOptions {
  core::NextHop hop;
  smtp::ClientConfig client;
  // Makes the client TLS engine when the hop's STARTTLS is accepted; unset when the route does
  // not use TLS (then ClientConfig::tls must be kNone).
  std::function<absl::StatusOr<std::unique_ptr<tls::Engine>>()> make_tls;
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration command_timeout = absl::Seconds(300);
  absl::Duration data_timeout = absl::Seconds(600);
};

// Shard-local. Destroy only once finished() (no operation in flight).
class OutboundConnection {
 public:
  OutboundConnection(Reactor& reactor, OutboundOwner& owner, OutboundOptions options);
  ~OutboundConnection();
  OutboundConnection(const OutboundConnection&) = delete;
  OutboundConnection& operator=(const OutboundConnection&) = delete;

  // Opens the socket and starts connecting. A failure (no socket) closes the connection at once
  // (OnFinished() comes from the next Tick()).
  void Start(absl::Time now);
  // Hands over the next message (only while can_send()); the engine borrows its body until the
  // results say `done`.
  void Send(const smtp::OutboundMessage& message, absl::Time now);
  // QUIT once idle, then close.
  void Quit(absl::Time now);
  // Checks the deadline of what the engine waits for; a timeout defers the current message's
  // recipients and closes. Also reports OnFinished() for a connection closed outside a
  // completion.
  void Tick(absl::Time now);
  // Closes now (shutdown): the current message's recipients are deferred with `why`.
  void Abort(std::string_view why);

  bool can_send() const { return client_.can_send() && state_ != State::kClosed; }
  // True while a message is being sent (Send() called, results not all in).
  bool busy() const { return busy_; }
  // Idle and ready for a message: the greeting and EHLO/LHLO (and STARTTLS) are done.
  bool idle() const { return client_.waiting_for() == smtp::Client::Waiting::kIdle && !busy_; }
  // The engine reached the idle state at least once: the hop greeted and took our EHLO/LHLO.
  bool was_ready() const { return was_ready_; }
  bool closed() const { return state_ == State::kClosed; }
  bool finished() const { return state_ == State::kClosed && ops_in_flight_ == 0; }
  // When Start() was called.
  absl::Time started_at() const { return started_at_; }
  // When it last became idle (for the connection cache's idle limit).
  absl::Time idle_since() const { return idle_since_; }
  const core::NextHop& hop() const { return options_.hop; }
  const std::string& hop_name() const { return hop_name_; }
  // Why the connection failed ("" if it did not), for the log and the hop-down tracker.
  const std::string& error() const { return error_; }
  bool tls_active() const { return client_.tls_active(); }
  // The TLS version in use ("TLSv1.3"), "" on a plaintext connection.
  std::string tls_version() const {
    return tls_ != nullptr && !tls_handshaking_ && client_.tls_active() ? tls_->facts().version
                                                                        : std::string();
  }
  // What the hop offered in its EHLO/LHLO reply.
  const smtp::HopExtensions& extensions() const { return client_.extensions(); }
  // How many messages this connection has carried.
  uint64_t messages() const { return messages_; }

 private:
  enum class State : uint8_t { kConnecting, kOpen, kClosed };
  struct Op final : CompletionHandler {
    enum class Kind : uint8_t { kConnect, kRecv, kSend };
    OutboundConnection* owner = nullptr;
    Kind kind = Kind::kConnect;
    void OnCompletion(const io_uring_cqe& cqe) override { owner->OnOp(kind, cqe.res); }
  };

  void OnOp(Op::Kind kind, int res);
  void OnConnected(int res);
  void OnRecv(int res);
  void OnSent(int res);
  void ArmRecv();
  // Acts on what the engine asked for: queue bytes (encrypted under TLS), report results, start
  // TLS or close once the bytes are out.
  void Process(smtp::ClientOutput& out);
  void QueuePlain(std::string_view bytes);
  void QueueRaw(std::string_view bytes);
  void PumpSend();
  void StartTls();
  void AdvanceTls();
  // The connection failed or ended: tells the engine (deferring what is open), closes the socket.
  void Fail(std::string_view why);
  void CloseSocket();
  void MaybeFinished();
  absl::Time Deadline() const;

  Reactor& reactor_;
  OutboundOwner& owner_;
  const OutboundOptions options_;
  const std::string hop_name_;
  smtp::Client client_;
  State state_ = State::kConnecting;
  int fd_ = -1;
  Op connect_op_;
  Op recv_op_;
  Op send_op_;
  size_t ops_in_flight_ = 0;
  bool recv_armed_ = false;
  bool send_armed_ = false;
  bool busy_ = false;
  bool was_ready_ = false;
  bool finished_reported_ = false;
  uint64_t messages_ = 0;
  std::string error_;
  // Bytes for the socket: `sending_` is the SEND in flight (from `sent_` on), `queued_` what
  // comes after it.
  std::string sending_;
  size_t sent_ = 0;
  std::string queued_;
  // After the queued bytes are out: start the TLS handshake / close.
  bool tls_after_send_ = false;
  bool close_after_send_ = false;
  std::unique_ptr<tls::Engine> tls_;
  bool tls_handshaking_ = false;
  std::unique_ptr<char[]> recv_buf_;
  std::string plain_;  // decrypted input, scratch
  // Deadlines: the phase started at `phase_start_` (connect, each command, the data).
  absl::Time now_ = absl::InfinitePast();
  absl::Time phase_start_ = absl::InfinitePast();
  absl::Time idle_since_ = absl::InfinitePast();
  absl::Time started_at_ = absl::InfinitePast();
  smtp::Client::Waiting last_waiting_ = smtp::Client::Waiting::kGreeting;
  // sockaddr for CONNECT (read by the kernel while the op is in flight).
  std::unique_ptr<SocketAddress> address_;  // connect() reads it until it completes
};

}  // namespace ringmx::net
