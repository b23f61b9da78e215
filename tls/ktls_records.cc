#include "tls/ktls_records.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ringmx::tls {
namespace {

KtlsRecordDecision Decide(KtlsRecordDecision::Action action) {
  KtlsRecordDecision decision;
  decision.action = action;
  return decision;
}

KtlsRecordDecision Fail(uint8_t alert, std::string reason) {
  KtlsRecordDecision decision = Decide(KtlsRecordDecision::Action::kFail);
  decision.fatal_alert = alert;
  decision.reason = std::move(reason);
  return decision;
}

KtlsRecordDecision ClassifyHandshake(uint16_t tls_version, std::string_view payload) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(payload[i]); };
  // RFC 8446 §4.6.3: KeyUpdate is type 24 with a 3-byte length of 1 and one byte,
  // update_not_requested(0) or update_requested(1).
  if (tls_version == kTls13 && payload.size() == 5 && byte(0) == kHandshakeKeyUpdate &&
      byte(1) == 0 && byte(2) == 0 && byte(3) == 1 && byte(4) <= 1) {
    KtlsRecordDecision decision = Decide(KtlsRecordDecision::Action::kKeyUpdate);
    decision.update_requested = byte(4) == 1;
    return decision;
  }
  if (tls_version == kTls12 && !payload.empty() && byte(0) == kHandshakeClientHello) {
    return Decide(KtlsRecordDecision::Action::kRefuseRenegotiation);
  }
  return Fail(
      kAlertUnexpectedMessage,
      absl::StrCat("unexpected handshake message type ",
                   payload.empty() ? -1 : static_cast<int>(byte(0)), " after the handshake"));
}

}  // namespace

KtlsRecordDecision ClassifyKtlsRecord(uint16_t tls_version, uint8_t record_type,
                                      std::string_view payload) {
  switch (record_type) {
    case kRecordApplicationData:
      return Decide(KtlsRecordDecision::Action::kSessionData);
    case kRecordAlert: {
      // The description is the second byte; the level (first byte) does not change the meaning.
      if (payload.size() >= 2 && static_cast<uint8_t>(payload[1]) == kAlertCloseNotify) {
        return Decide(KtlsRecordDecision::Action::kPeerClosed);
      }
      KtlsRecordDecision decision = Decide(KtlsRecordDecision::Action::kPeerAlert);
      decision.peer_alert = payload.size() >= 2 ? static_cast<uint8_t>(payload[1]) : -1;
      return decision;
    }
    case kRecordHandshake:
      return ClassifyHandshake(tls_version, payload);
    default:
      return Fail(kAlertUnexpectedMessage,
                  absl::StrCat("record of content type ", static_cast<int>(record_type),
                               " after the handshake"));
  }
}

}  // namespace ringmx::tls
