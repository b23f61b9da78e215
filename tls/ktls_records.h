// What to do with one record that the kernel's TLS layer (TLS ULP receive side) hands up after the
// handshake. Once the kernel holds the receive key, every record type reaches us as plaintext with
// its content type (TLS_GET_RECORD_TYPE): application data for the session, but also alerts and
// post-handshake messages (KeyUpdate, a TLS 1.2 renegotiation attempt) that OpenSSL would have
// handled. This file decides what each one means; net/transport.cc (KernelTls) and
// net/connection.cc do the I/O the decision asks for (new keys, alerts on the wire, closing). Pure:
// no socket, no OpenSSL, so the rules can be unit-tested and fuzzed without a kernel that has TLS
// ULP.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

namespace ringmx::tls {

// TLS record content types (RFC 8446 §5.1), as the kernel reports them.
inline constexpr uint8_t kRecordChangeCipherSpec = 20;
inline constexpr uint8_t kRecordAlert = 21;
inline constexpr uint8_t kRecordHandshake = 22;
inline constexpr uint8_t kRecordApplicationData = 23;

// Alert levels and the descriptions (RFC 8446 §6, RFC 5246 §7.2) that the kernel path sends.
inline constexpr uint8_t kAlertLevelWarning = 1;
inline constexpr uint8_t kAlertLevelFatal = 2;
inline constexpr uint8_t kAlertCloseNotify = 0;
inline constexpr uint8_t kAlertUnexpectedMessage = 10;
inline constexpr uint8_t kAlertInternalError = 80;
inline constexpr uint8_t kAlertNoRenegotiation = 100;

// Handshake message types (RFC 8446 §4) the kernel path looks at.
inline constexpr uint8_t kHandshakeClientHello = 1;
inline constexpr uint8_t kHandshakeKeyUpdate = 24;

// Protocol versions as carried in tls::KtlsHandoff::tls_version.
inline constexpr uint16_t kTls12 = 0x0303;
inline constexpr uint16_t kTls13 = 0x0304;

// The verdict on one received record. A plain value.
struct KtlsRecordDecision {
  enum class Action : uint8_t {
    // Application data: `payload` goes to the SMTP session as it is.
    kSessionData,
    // An alert whose description is close_notify (whatever its level): the client is gone. A
    // message in progress is dropped with the session.
    kPeerClosed,
    // Any other alert, or an alert record too short to hold a description: the client ended the
    // connection. `peer_alert` is the description, or -1 when the record had fewer than 2 bytes.
    kPeerAlert,
    // TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): the client's next records use its next traffic secret,
    // so the receive key must be advanced. `update_requested`: the client asked for ours too.
    kKeyUpdate,
    // TLS 1.2 ClientHello (renegotiation): answer with a warning no_renegotiation alert and go on
    // (RFC 5246 §7.2.2). The record itself is dropped.
    kRefuseRenegotiation,
    // Anything else: end the connection with the fatal alert `fatal_alert`; `reason` is for the
    // log line.
    kFail,
  };

  Action action = Action::kFail;
  int peer_alert = -1;            // kPeerAlert only
  bool update_requested = false;  // kKeyUpdate only
  uint8_t fatal_alert = 0;        // kFail only
  std::string reason;             // kFail only: "record of content type 20 after the handshake"
};

// Classifies one record of `record_type` carrying `payload` (the record's plaintext as the kernel
// returned it) on a connection of `tls_version` (kTls12 or kTls13). Rules:
//  - application data (23): kSessionData;
//  - alert (21): kPeerClosed when the description (second byte) is close_notify, else kPeerAlert;
//  - handshake (22): under TLS 1.3 exactly one KeyUpdate message (24, length 1, value 0 or 1)
//    is kKeyUpdate; under TLS 1.2 a record that starts with a ClientHello (1) is
//    kRefuseRenegotiation; any other handshake record is kFail with unexpected_message (this
//    includes several messages in one record and a KeyUpdate that is not alone in its record);
//  - any other content type (change_cipher_spec, heartbeat, unknown): kFail with
//    unexpected_message.
// `payload` is only read during the call.
KtlsRecordDecision ClassifyKtlsRecord(uint16_t tls_version, uint8_t record_type,
                                      std::string_view payload);

}  // namespace ringmx::tls
