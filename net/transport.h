// The record layer of one connection, between its socket and its SMTP session
// (net/connection.cc): what bytes on the wire mean for the session and back. Three kinds:
//  - PlainTransport: cleartext SMTP, bytes through as they are;
//  - UserspaceTls: TLS records through OpenSSL (tls::Engine, memory BIOs): the handshake, then
//    decryption and encryption, close_notify; and the hand-off of its keys to the kernel;
//  - KernelTls: TLS records in the kernel (TLS ULP): plaintext on the socket for data records,
//    and the records that are not data (alerts, KeyUpdate, a renegotiation attempt) handled here.
// Connection owns one at a time: plain at accept, UserspaceTls from implicit TLS or STARTTLS on,
// KernelTls once the kernel took the keys. None of them touches the ring: Connection does the
// receives and sends; KernelTls makes the socket calls of its own records (alerts, KeyUpdate,
// new keys), which the kernel needs between sends. Each is tested alone
// (tests/net/transport_test.cc; the kernel's part in tests/net/ktls_test.cc).
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "tls/engine.h"
#include "tls/ktls_keys.h"
#include "tls/ktls_records.h"

namespace ringmx::net {

// Shard-local, like the connection that owns it.
class Transport {
 public:
  enum class Kind : uint8_t { kPlain, kUserspaceTls, kKernelTls };

  virtual ~Transport() = default;
  virtual Kind kind() const = 0;
  // The session's bytes flow: plain, or TLS with the handshake done (and not moving to the
  // kernel). While false the session waits and the receive is not paused or switched.
  virtual bool carrying() const = 0;
  // Plaintext from the session (its replies) into bytes for the socket, appended to `wire`.
  virtual absl::Status Seal(std::string_view plaintext, std::string& wire) = 0;
  // The session ended (221, 421): the goodbye that follows its last reply, appended to `wire`
  // (TLS close_notify in userspace; the kernel's goes out at the FIN, KernelTls::SendGoodbye).
  virtual void OnSessionClose(std::string& /*wire*/) {}
};

// Cleartext SMTP: what the socket brings is the session's input as it is.
class PlainTransport final : public Transport {
 public:
  Kind kind() const override { return Kind::kPlain; }
  bool carrying() const override { return true; }
  absl::Status Seal(std::string_view plaintext, std::string& wire) override;
};

// TLS in userspace: ciphertext from the socket into the engine, records out.
class UserspaceTls final : public Transport {
 public:
  enum class State : uint8_t {
    kHandshaking,  // the session waits
    // Handshake done, the record layer is moving to the kernel: the receive is being cancelled
    // (what it still brings is ciphertext that ExportForKernel() decrypts); the session waits.
    kSwitching,
    kUp,  // records through OpenSSL
  };

  // What one Receive() produced.
  struct Input {
    // The handshake finished in this call. The caller decides (StayInUserspace, or
    // BeginKernelSwitch) and then calls Receive(""), which decrypts any data that came with the
    // client's Finished.
    bool handshake_done = false;
    // Decrypted plaintext for the session; valid until the next call.
    std::string_view plaintext;
    // The client's close_notify has arrived.
    bool peer_closed = false;
  };

  explicit UserspaceTls(std::unique_ptr<tls::Engine> engine);

  Kind kind() const override { return Kind::kUserspaceTls; }
  bool carrying() const override { return state_ == State::kUp; }
  State state() const { return state_; }

  // Ciphertext from the socket: handshake steps while handshaking, records decrypted once up,
  // kept for ExportForKernel() while switching. Our records (handshake messages, an alert on
  // failure) are appended to `wire` in every case. An error is a TLS failure: the connection ends.
  absl::Status Receive(std::string_view bytes, std::string& wire, Input& input);
  // Records once up (before that, bytes as they are: the session says nothing meanwhile).
  absl::Status Seal(std::string_view plaintext, std::string& wire) override;
  // close_notify, once up.
  void OnSessionClose(std::string& wire) override;

  // After the handshake: go on in userspace.
  void StayInUserspace() { state_ = State::kUp; }
  // After the handshake: the record layer moves to the kernel (Connection stops the receive).
  void BeginKernelSwitch() { state_ = State::kSwitching; }
  // The session ends before the kernel took the keys: its goodbye goes through OpenSSL, which
  // still has them.
  void AbandonKernelSwitch() { state_ = State::kUp; }

  tls::Engine& engine() { return *engine_; }
  const tls::Engine& engine() const { return *engine_; }

 private:
  std::unique_ptr<tls::Engine> engine_;
  State state_ = State::kHandshaking;
  std::string plaintext_;  // scratch for decrypted records, reused
};

// TLS in the kernel: the socket carries plaintext for data records; every other record comes up
// with its content type and is handled here.
class KernelTls final : public Transport {
 public:
  // What a received record asks of the connection.
  struct RecordResult {
    enum class Action : uint8_t {
      kData,        // `payload` is the session's
      kNone,        // handled here (our records owed go out at the next Flush)
      kPeerClosed,  // close_notify: the client is gone
      kPeerAlert,   // another alert: the client ended the connection (`peer_alert`)
      kFailed,      // fatal: Fail() has set the goodbye alert; `reason` is for the log line
    };
    Action action = Action::kNone;
    int peer_alert = -1;
    std::string reason;
  };
  // One receive completion parsed: a record's payload (or part of one) and its content type.
  struct Received {
    uint8_t record_type = tls::kRecordApplicationData;
    std::string_view payload;
  };

  // `fd` is the connected socket that has the keys (InstallKernelTls); it is not owned.
  KernelTls(int fd, tls::KtlsHandoff keys);

  Kind kind() const override { return Kind::kKernelTls; }
  bool carrying() const override { return true; }
  // The kernel encrypts: plaintext goes on the socket.
  absl::Status Seal(std::string_view plaintext, std::string& wire) override;

  // The template of the receive (recvmsg: no address, room for the TLS_GET_RECORD_TYPE control
  // message). PrepareRecvMsg() resets what the kernel writes back, before each submission.
  msghdr& recv_msg() { return recv_msg_; }
  void PrepareRecvMsg();
  // A single-shot recvmsg's completion: the payload starts `buffer`, the record type is in the
  // control area. Error when the control message was truncated.
  absl::StatusOr<Received> ParseSingleShot(std::string_view buffer) const;
  // A multishot recvmsg's completion (io_uring_recvmsg_out, then control, then payload), `res`
  // bytes. Error when malformed or the control message was truncated.
  absl::StatusOr<Received> ParseMultishot(std::string_view buffer, int res);

  // One record (tls::ClassifyKtlsRecord): data, or what it asks (new receive key, alerts owed).
  RecordResult OnRecord(uint8_t record_type, std::string_view payload);
  // Our records owed (a warning no_renegotiation alert, our KeyUpdate) go out now, between
  // sends. OK also when the socket buffer is full (they wait for the next call); an error when
  // our KeyUpdate or its new transmit key failed: the connection cannot go on.
  absl::Status SendOwed();
  // True while our KeyUpdate is owed: it goes out before any more data.
  bool key_update_owed() const { return key_update_owed_; }
  bool no_renegotiation_owed() const { return no_renegotiation_owed_; }
  // Ends the connection with a fatal `alert` (sent before the FIN by SendGoodbye()).
  void Fail(uint8_t alert);
  // The TLS goodbye after the last reply: close_notify, or the alert of Fail(). Best effort.
  void SendGoodbye();
  uint8_t goodbye_level() const { return goodbye_level_; }
  uint8_t goodbye_alert() const { return goodbye_alert_; }
  const tls::KtlsHandoff& keys() const { return keys_; }

 private:
  const int fd_;
  // The current keys: TLS 1.3 KeyUpdates advance them (tls::AdvanceTrafficKeys).
  tls::KtlsHandoff keys_;
  msghdr recv_msg_{};
  alignas(cmsghdr) char control_[CMSG_SPACE(sizeof(uint8_t))] = {};
  // The client's KeyUpdate asked for ours (update_requested): it goes out before any more data.
  bool key_update_owed_ = false;
  // A TLS 1.2 client tried to renegotiate: a warning no_renegotiation alert goes out next.
  bool no_renegotiation_owed_ = false;
  // The alert sent before our FIN: close_notify, or the fatal alert of Fail().
  uint8_t goodbye_level_ = tls::kAlertLevelWarning;
  uint8_t goodbye_alert_ = tls::kAlertCloseNotify;
};

}  // namespace ringmx::net
