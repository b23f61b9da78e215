#include "net/transport.h"

#include <linux/tls.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include <liburing.h>

#include "net/ktls.h"

namespace ringmx::net {

absl::Status PlainTransport::Seal(std::string_view plaintext, std::string& wire) {
  // Cleartext, including the "220 Ready to start TLS" that must precede the handshake.
  wire.append(plaintext);
  return absl::OkStatus();
}

UserspaceTls::UserspaceTls(std::unique_ptr<tls::Engine> engine) : engine_(std::move(engine)) {}

absl::Status UserspaceTls::Receive(std::string_view bytes, std::string& wire, Input& input) {
  input = Input();
  engine_->PutCiphertext(bytes);
  if (state_ == State::kHandshaking) {
    absl::StatusOr<tls::Progress> progress = engine_->Handshake();
    wire.append(engine_->TakeCiphertext());  // handshake messages, or the alert of a failure
    if (!progress.ok()) return progress.status();
    if (*progress == tls::Progress::kNeedInput) return absl::OkStatus();
    input.handshake_done = true;
    return absl::OkStatus();
  }
  if (state_ == State::kSwitching) {
    // Read before the cancel took effect: ExportForKernel() decrypts it for the session.
    return absl::OkStatus();
  }
  plaintext_.clear();
  absl::Status decrypted = engine_->Decrypt(plaintext_);
  wire.append(engine_->TakeCiphertext());
  if (!decrypted.ok()) return decrypted;
  input.plaintext = plaintext_;
  input.peer_closed = engine_->peer_closed();
  return absl::OkStatus();
}

absl::Status UserspaceTls::Seal(std::string_view plaintext, std::string& wire) {
  if (state_ != State::kUp) {
    // Before the handshake is done there are no records to put replies in (the session waits
    // and says nothing then): as the connection always did, they go as they are.
    wire.append(plaintext);
    return absl::OkStatus();
  }
  absl::Status encrypted = engine_->Encrypt(plaintext);
  if (!encrypted.ok()) return encrypted;
  wire.append(engine_->TakeCiphertext());
  return absl::OkStatus();
}

void UserspaceTls::OnSessionClose(std::string& wire) {
  if (state_ != State::kUp) return;  // no TLS session to close yet
  // The TLS goodbye after the last reply (221, 421), so the client sees a clean end.
  engine_->SendCloseNotify();
  wire.append(engine_->TakeCiphertext());
}

KernelTls::KernelTls(int fd, tls::KtlsHandoff keys) : fd_(fd), keys_(std::move(keys)) {
  keys_.pending_plaintext.clear();
  recv_msg_.msg_control = control_;
  recv_msg_.msg_controllen = sizeof(control_);
}

absl::Status KernelTls::Seal(std::string_view plaintext, std::string& wire) {
  wire.append(plaintext);  // the kernel encrypts
  return absl::OkStatus();
}

void KernelTls::PrepareRecvMsg() {
  // The kernel writes the control length back after a single-shot recvmsg; both kinds read it at
  // submission (and the multishot parser uses it as its template).
  recv_msg_.msg_controllen = sizeof(control_);
  recv_msg_.msg_flags = 0;
}

absl::StatusOr<KernelTls::Received> KernelTls::ParseSingleShot(std::string_view buffer) const {
  // No control message: application data.
  Received received;
  msghdr& msg = const_cast<msghdr&>(recv_msg_);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) {
      received.record_type = *CMSG_DATA(c);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return absl::DataLossError("truncated recvmsg control");
  }
  received.payload = buffer;
  return received;
}

absl::StatusOr<KernelTls::Received> KernelTls::ParseMultishot(std::string_view buffer, int res) {
  io_uring_recvmsg_out* header = io_uring_recvmsg_validate(
      const_cast<char*>(buffer.data()), static_cast<int>(buffer.size()), &recv_msg_);
  if (header == nullptr || (header->flags & MSG_CTRUNC) != 0) {
    return absl::DataLossError("malformed recvmsg result");
  }
  Received received;
  const size_t length = io_uring_recvmsg_payload_length(header, res, &recv_msg_);
  // The kernel adds no control message for data.
  for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(header, &recv_msg_); c != nullptr;
       c = io_uring_recvmsg_cmsg_nexthdr(header, &recv_msg_, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) {
      received.record_type = *CMSG_DATA(c);
    }
  }
  received.payload = std::string_view(
      static_cast<const char*>(io_uring_recvmsg_payload(header, &recv_msg_)), length);
  return received;
}

KernelTls::RecordResult KernelTls::OnRecord(uint8_t record_type, std::string_view payload) {
  RecordResult result;
  const tls::KtlsRecordDecision decision =
      tls::ClassifyKtlsRecord(keys_.tls_version, record_type, payload);
  switch (decision.action) {
    case tls::KtlsRecordDecision::Action::kSessionData:
      result.action = RecordResult::Action::kData;
      return result;
    case tls::KtlsRecordDecision::Action::kPeerClosed:
      result.action = RecordResult::Action::kPeerClosed;
      return result;
    case tls::KtlsRecordDecision::Action::kPeerAlert:
      result.action = RecordResult::Action::kPeerAlert;
      result.peer_alert = decision.peer_alert;
      return result;
    case tls::KtlsRecordDecision::Action::kKeyUpdate: {
      // RFC 8446 §4.6.3: the client's next records use its next traffic secret. The kernel holds
      // further records back until it has the new receive key.
      absl::Status advanced = tls::AdvanceTrafficKeys(keys_, tls::KtlsSide::kRx);
      if (advanced.ok()) advanced = UpdateKernelTlsKey(fd_, keys_, tls::KtlsSide::kRx);
      if (!advanced.ok()) {
        Fail(tls::kAlertInternalError);
        result.action = RecordResult::Action::kFailed;
        result.reason = absl::StrCat("cannot follow the client's KeyUpdate: ", advanced.message());
        return result;
      }
      if (decision.update_requested) key_update_owed_ = true;
      return result;
    }
    case tls::KtlsRecordDecision::Action::kRefuseRenegotiation:
      // A TLS 1.2 renegotiation attempt: refuse it politely and go on (RFC 5246 §7.2.2).
      no_renegotiation_owed_ = true;
      return result;
    case tls::KtlsRecordDecision::Action::kFail:
      Fail(decision.fatal_alert);
      result.action = RecordResult::Action::kFailed;
      result.reason = decision.reason;
      return result;
  }
  return result;
}

absl::Status KernelTls::SendOwed() {
  // Records of our own go out between sends, so they keep their place in the stream.
  if (no_renegotiation_owed_) {
    const char alert[] = {static_cast<char>(tls::kAlertLevelWarning),
                          static_cast<char>(tls::kAlertNoRenegotiation)};
    if (!absl::IsUnavailable(
            SendKernelTlsRecord(fd_, kTlsRecordAlert, std::string_view(alert, 2)))) {
      no_renegotiation_owed_ = false;
    }
  }
  if (!key_update_owed_) return absl::OkStatus();
  // Our KeyUpdate (RFC 8446 §4.6.3): key_update(24), length 1, update_not_requested; then our
  // new transmit key.
  static constexpr char kKeyUpdate[] = {tls::kHandshakeKeyUpdate, 0, 0, 1, 0};
  absl::Status sent = SendKernelTlsRecord(fd_, kTlsRecordHandshake,
                                          std::string_view(kKeyUpdate, sizeof(kKeyUpdate)));
  if (absl::IsUnavailable(sent)) return absl::OkStatus();  // the socket buffer is full: next time
  if (sent.ok()) sent = tls::AdvanceTrafficKeys(keys_, tls::KtlsSide::kTx);
  if (sent.ok()) sent = UpdateKernelTlsKey(fd_, keys_, tls::KtlsSide::kTx);
  key_update_owed_ = false;
  return sent;
}

void KernelTls::Fail(uint8_t alert) {
  goodbye_level_ = tls::kAlertLevelFatal;
  goodbye_alert_ = alert;
}

void KernelTls::SendGoodbye() {
  // Best effort: a full socket buffer at this point means the client is not reading anyway.
  const char alert[] = {static_cast<char>(goodbye_level_), static_cast<char>(goodbye_alert_)};
  SendKernelTlsRecord(fd_, kTlsRecordAlert, std::string_view(alert, 2)).IgnoreError();
}

}  // namespace ringmx::net
