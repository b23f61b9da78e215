#include "tls/ktls_records.h"

#include <stdint.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace ringmx::tls {
namespace {

using Action = KtlsRecordDecision::Action;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(KtlsRecordsTest, ApplicationDataGoesToTheSession) {
  for (uint16_t version : {kTls12, kTls13}) {
    EXPECT_EQ(ClassifyKtlsRecord(version, kRecordApplicationData, "EHLO x\r\n").action,
              Action::kSessionData);
    EXPECT_EQ(ClassifyKtlsRecord(version, kRecordApplicationData, "").action, Action::kSessionData);
  }
}

TEST(KtlsRecordsTest, CloseNotifyMeansThePeerClosedAtEitherLevel) {
  EXPECT_EQ(ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({1, 0})).action, Action::kPeerClosed);
  EXPECT_EQ(ClassifyKtlsRecord(kTls12, kRecordAlert, Bytes({1, 0})).action, Action::kPeerClosed);
  EXPECT_EQ(ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({2, 0})).action, Action::kPeerClosed);
  // Trailing bytes after the description do not change the meaning.
  EXPECT_EQ(ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({1, 0, 7})).action, Action::kPeerClosed);
}

TEST(KtlsRecordsTest, OtherAlertsEndTheConnectionWithTheirDescription) {
  KtlsRecordDecision d = ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({2, 40}));
  EXPECT_EQ(d.action, Action::kPeerAlert);
  EXPECT_EQ(d.peer_alert, 40);  // handshake_failure
  d = ClassifyKtlsRecord(kTls12, kRecordAlert, Bytes({1, 90}));
  EXPECT_EQ(d.action, Action::kPeerAlert);  // user_canceled, a warning, still ends it
  EXPECT_EQ(d.peer_alert, 90);
  d = ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({2, 255}));
  EXPECT_EQ(d.peer_alert, 255);  // the description is unsigned
}

TEST(KtlsRecordsTest, ShortAlertIsAPeerAlertWithoutDescription) {
  KtlsRecordDecision d = ClassifyKtlsRecord(kTls13, kRecordAlert, Bytes({1}));
  EXPECT_EQ(d.action, Action::kPeerAlert);
  EXPECT_EQ(d.peer_alert, -1);
  d = ClassifyKtlsRecord(kTls12, kRecordAlert, "");
  EXPECT_EQ(d.action, Action::kPeerAlert);
  EXPECT_EQ(d.peer_alert, -1);
}

TEST(KtlsRecordsTest, Tls13KeyUpdateNotRequested) {
  const KtlsRecordDecision d =
      ClassifyKtlsRecord(kTls13, kRecordHandshake, Bytes({kHandshakeKeyUpdate, 0, 0, 1, 0}));
  EXPECT_EQ(d.action, Action::kKeyUpdate);
  EXPECT_FALSE(d.update_requested);
}

TEST(KtlsRecordsTest, Tls13KeyUpdateRequested) {
  const KtlsRecordDecision d =
      ClassifyKtlsRecord(kTls13, kRecordHandshake, Bytes({kHandshakeKeyUpdate, 0, 0, 1, 1}));
  EXPECT_EQ(d.action, Action::kKeyUpdate);
  EXPECT_TRUE(d.update_requested);
}

TEST(KtlsRecordsTest, MalformedKeyUpdateFailsWithUnexpectedMessage) {
  for (const std::string& payload : {
           Bytes({24, 0, 0, 1, 2}),                  // bad request_update value
           Bytes({24, 0, 0, 2, 0}),                  // wrong length field
           Bytes({24, 1, 0, 1, 0}),                  // wrong length field (high byte)
           Bytes({24, 0, 1, 1, 0}),                  // wrong length field (middle byte)
           Bytes({24, 0, 0, 1}),                     // truncated
           Bytes({24, 0, 0, 1, 0, 24}),              // something after it in the same record
           Bytes({24, 0, 0, 1, 0, 24, 0, 0, 1, 0}),  // two KeyUpdates in one record
       }) {
    const KtlsRecordDecision d = ClassifyKtlsRecord(kTls13, kRecordHandshake, payload);
    EXPECT_EQ(d.action, Action::kFail) << payload.size();
    EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
    EXPECT_EQ(d.reason, "unexpected handshake message type 24 after the handshake");
  }
}

TEST(KtlsRecordsTest, KeyUpdateUnderTls12IsUnexpected) {
  const KtlsRecordDecision d =
      ClassifyKtlsRecord(kTls12, kRecordHandshake, Bytes({24, 0, 0, 1, 0}));
  EXPECT_EQ(d.action, Action::kFail);
  EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
  EXPECT_EQ(d.reason, "unexpected handshake message type 24 after the handshake");
}

TEST(KtlsRecordsTest, Tls12ClientHelloIsARenegotiationToRefuse) {
  EXPECT_EQ(ClassifyKtlsRecord(kTls12, kRecordHandshake, Bytes({1, 0, 0, 2, 3, 3})).action,
            Action::kRefuseRenegotiation);
  // Only the message type is looked at: the refusal does not depend on the rest.
  EXPECT_EQ(ClassifyKtlsRecord(kTls12, kRecordHandshake, Bytes({1})).action,
            Action::kRefuseRenegotiation);
}

TEST(KtlsRecordsTest, Tls13ClientHelloIsUnexpected) {
  const KtlsRecordDecision d = ClassifyKtlsRecord(kTls13, kRecordHandshake, Bytes({1, 0, 0, 0}));
  EXPECT_EQ(d.action, Action::kFail);
  EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
  EXPECT_EQ(d.reason, "unexpected handshake message type 1 after the handshake");
}

TEST(KtlsRecordsTest, OtherHandshakeMessagesAreUnexpected) {
  // Finished (20), NewSessionTicket (4), Certificate (11): none may come from a client here.
  for (int type : {20, 4, 11, 0, 255}) {
    for (uint16_t version : {kTls12, kTls13}) {
      const KtlsRecordDecision d =
          ClassifyKtlsRecord(version, kRecordHandshake, Bytes({type, 0, 0, 0}));
      EXPECT_EQ(d.action, Action::kFail);
      EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
      EXPECT_EQ(d.reason, "unexpected handshake message type " + std::to_string(type) +
                              " after the handshake");
    }
  }
}

TEST(KtlsRecordsTest, EmptyHandshakeRecordIsUnexpected) {
  for (uint16_t version : {kTls12, kTls13}) {
    const KtlsRecordDecision d = ClassifyKtlsRecord(version, kRecordHandshake, "");
    EXPECT_EQ(d.action, Action::kFail);
    EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
    EXPECT_EQ(d.reason, "unexpected handshake message type -1 after the handshake");
  }
}

TEST(KtlsRecordsTest, UnknownVersionNeitherRekeysNorRenegotiates) {
  EXPECT_EQ(ClassifyKtlsRecord(0, kRecordHandshake, Bytes({24, 0, 0, 1, 0})).action, Action::kFail);
  EXPECT_EQ(ClassifyKtlsRecord(0x0302, kRecordHandshake, Bytes({1, 0})).action, Action::kFail);
}

TEST(KtlsRecordsTest, OtherContentTypesFailWithUnexpectedMessage) {
  for (int type : {int{kRecordChangeCipherSpec}, 24 /* heartbeat */, 0, 19, 25, 255}) {
    const KtlsRecordDecision d = ClassifyKtlsRecord(kTls13, static_cast<uint8_t>(type), "x");
    EXPECT_EQ(d.action, Action::kFail);
    EXPECT_EQ(d.fatal_alert, kAlertUnexpectedMessage);
    EXPECT_EQ(d.reason, "record of content type " + std::to_string(type) + " after the handshake");
  }
}

}  // namespace
}  // namespace ringmx::tls
