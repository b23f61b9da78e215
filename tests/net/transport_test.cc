// The record layers of net/transport.h, each alone: plaintext through; TLS in userspace against
// an OpenSSL client over memory BIOs (handshake, data both ways, data that came with the client's
// Finished, close_notify both ways, a failed handshake, the switch towards the kernel); and the
// parts of kernel TLS that need no TLS ULP (record decisions, owed records, the goodbye alert,
// parsing recvmsg completions). Installing keys in the kernel is tests/net/ktls_test.cc's, which
// tools/ktls-vm-test.sh runs on a kernel that has the ULP.
#include "net/transport.h"

#include <linux/tls.h>
#include <string.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include <liburing.h>
#include <openssl/ssl.h>

#include "tests/tls/tls_test_util.h"
#include "tls/engine.h"
#include "tls/ktls_records.h"

namespace ringmx::net {
namespace {

using tls::testing::BaseConfig;
using tls::testing::ClientOptions;
using tls::testing::MustBuild;
using tls::testing::MustEngine;
using tls::testing::TestClient;

TEST(PlainTransportTest, BytesGoThroughAsTheyAre) {
  PlainTransport plain;
  EXPECT_EQ(plain.kind(), Transport::Kind::kPlain);
  EXPECT_TRUE(plain.carrying());
  std::string wire = "220 a\r\n";
  ASSERT_TRUE(plain.Seal(std::string("250 b\r\n\0x", 9), wire).ok());
  EXPECT_EQ(wire, std::string("220 a\r\n250 b\r\n\0x", 16));
  plain.OnSessionClose(wire);  // nothing to say at the end in cleartext
  EXPECT_EQ(wire.size(), 16u);
}

// A UserspaceTls on a server engine of the test PKI, and an OpenSSL client.
class UserspaceTlsTest : public ::testing::Test {
 protected:
  UserspaceTlsTest() : tls_(MustEngine(MustBuild(BaseConfig()))), client_(ClientOptions{}) {}

  // Runs the handshake; returns the Input of the call that finished it.
  UserspaceTls::Input Handshake() {
    UserspaceTls::Input input;
    for (int round = 0; round < 10 && !input.handshake_done; ++round) {
      EXPECT_GE(client_.Step(), 0) << client_.error();
      std::string wire;
      EXPECT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
      client_.Put(wire);
    }
    EXPECT_TRUE(input.handshake_done);
    EXPECT_EQ(client_.Step(), 1) << client_.error();
    return input;
  }

  UserspaceTls tls_;
  TestClient client_;
};

TEST_F(UserspaceTlsTest, HandshakeThenDataBothWaysThenCloseNotify) {
  EXPECT_EQ(tls_.kind(), Transport::Kind::kUserspaceTls);
  EXPECT_EQ(tls_.state(), UserspaceTls::State::kHandshaking);
  EXPECT_FALSE(tls_.carrying());
  Handshake();
  tls_.StayInUserspace();
  EXPECT_TRUE(tls_.carrying());
  EXPECT_EQ(tls_.engine().facts().version, "TLSv1.3");

  client_.Write("EHLO client.example.org\r\n");
  std::string wire;
  UserspaceTls::Input input;
  ASSERT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
  EXPECT_EQ(input.plaintext, "EHLO client.example.org\r\n");
  EXPECT_FALSE(input.peer_closed);

  wire.clear();
  ASSERT_TRUE(tls_.Seal("250 mx.example.test\r\n", wire).ok());
  EXPECT_EQ(wire.find("250"), std::string::npos);  // encrypted
  client_.Put(wire);
  std::string reply;
  ASSERT_TRUE(client_.Read(reply)) << client_.error();
  EXPECT_EQ(reply, "250 mx.example.test\r\n");

  // Our goodbye (after a 221): the client sees a clean close_notify.
  wire.clear();
  tls_.OnSessionClose(wire);
  ASSERT_FALSE(wire.empty());
  client_.Put(wire);
  reply.clear();
  ASSERT_TRUE(client_.Read(reply)) << client_.error();
  EXPECT_TRUE((SSL_get_shutdown(client_.ssl()) & SSL_RECEIVED_SHUTDOWN) != 0);
}

TEST_F(UserspaceTlsTest, ClientCloseNotifyIsPeerClosed) {
  Handshake();
  tls_.StayInUserspace();
  client_.Write("QUIT\r\n");
  SSL_shutdown(client_.ssl());
  std::string wire;
  UserspaceTls::Input input;
  ASSERT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
  EXPECT_EQ(input.plaintext, "QUIT\r\n");
  EXPECT_TRUE(input.peer_closed);
}

TEST_F(UserspaceTlsTest, DataWithTheClientsFinishedIsDecryptedAfterTheDecision) {
  // The client finishes first (TLS 1.3: after the server's flight) and writes at once, so its
  // Finished and its first command arrive in one read.
  ASSERT_GE(client_.Step(), 0);
  std::string wire;
  UserspaceTls::Input input;
  ASSERT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
  EXPECT_FALSE(input.handshake_done);
  client_.Put(wire);
  ASSERT_EQ(client_.Step(), 1) << client_.error();
  client_.Write("EHLO early\r\n");
  wire.clear();
  ASSERT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
  ASSERT_TRUE(input.handshake_done);
  EXPECT_TRUE(input.plaintext.empty());  // the connection decides first
  tls_.StayInUserspace();
  ASSERT_TRUE(tls_.Receive("", wire, input).ok());
  EXPECT_EQ(input.plaintext, "EHLO early\r\n");
}

TEST_F(UserspaceTlsTest, SwitchingKeepsTheBytesForTheKernelHandOff) {
  Handshake();
  tls_.BeginKernelSwitch();
  EXPECT_EQ(tls_.state(), UserspaceTls::State::kSwitching);
  EXPECT_FALSE(tls_.carrying());
  client_.Write("EHLO raced\r\n");
  std::string wire;
  UserspaceTls::Input input;
  ASSERT_TRUE(tls_.Receive(client_.Take(), wire, input).ok());
  EXPECT_TRUE(input.plaintext.empty());  // not for the session yet
  absl::StatusOr<tls::KtlsHandoff> keys = tls_.engine().ExportForKernel();
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->pending_plaintext, "EHLO raced\r\n");
  // The session ends before the kernel took the keys: the goodbye goes through OpenSSL.
  tls_.AbandonKernelSwitch();
  EXPECT_EQ(tls_.state(), UserspaceTls::State::kUp);
}

TEST_F(UserspaceTlsTest, NoCloseNotifyBeforeTheHandshakeIsDone) {
  std::string wire;
  tls_.OnSessionClose(wire);
  EXPECT_TRUE(wire.empty());
}

TEST_F(UserspaceTlsTest, PlaintextInsteadOfAHandshakeFails) {
  std::string wire;
  UserspaceTls::Input input;
  EXPECT_FALSE(tls_.Receive("EHLO this is not a ClientHello\r\n", wire, input).ok());
  EXPECT_FALSE(input.handshake_done);
  EXPECT_TRUE(input.plaintext.empty());
}

TEST_F(UserspaceTlsTest, ABrokenHandshakeFailsWithAnAlert) {
  std::string wire;
  UserspaceTls::Input input;
  // A handshake record whose ClientHello is cut short: OpenSSL answers with a fatal alert.
  const absl::Status status =
      tls_.Receive(std::string("\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9), wire, input);
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(input.handshake_done);
  ASSERT_GE(wire.size(), 1u);
  EXPECT_EQ(static_cast<uint8_t>(wire[0]), tls::kRecordAlert);
}

// Kernel TLS without a kernel: fd -1 makes every socket call fail, which is what the cases here
// need (the record decisions, and what happens when the kernel refuses).
tls::KtlsHandoff Keys(uint16_t version) {
  tls::KtlsHandoff keys;
  keys.tls_version = version;
  keys.pending_plaintext = "not kept";
  return keys;
}

TEST(KernelTlsTest, DataIsPlaintextBothWays) {
  KernelTls ktls(-1, Keys(tls::kTls12));
  EXPECT_EQ(ktls.kind(), Transport::Kind::kKernelTls);
  EXPECT_TRUE(ktls.carrying());
  EXPECT_TRUE(ktls.keys().pending_plaintext.empty());
  std::string wire;
  ASSERT_TRUE(ktls.Seal("250 ok\r\n", wire).ok());
  EXPECT_EQ(wire, "250 ok\r\n");
  ktls.OnSessionClose(wire);  // the kernel's goodbye goes out at the FIN, not in `wire`
  EXPECT_EQ(wire, "250 ok\r\n");
  EXPECT_EQ(ktls.OnRecord(tls::kRecordApplicationData, "MAIL").action,
            KernelTls::RecordResult::Action::kData);
  EXPECT_EQ(ktls.goodbye_level(), tls::kAlertLevelWarning);
  EXPECT_EQ(ktls.goodbye_alert(), tls::kAlertCloseNotify);
}

TEST(KernelTlsTest, AlertsEndTheConnection) {
  KernelTls ktls(-1, Keys(tls::kTls13));
  EXPECT_EQ(ktls.OnRecord(tls::kRecordAlert, std::string("\x01\x00", 2)).action,
            KernelTls::RecordResult::Action::kPeerClosed);
  const KernelTls::RecordResult alert =
      ktls.OnRecord(tls::kRecordAlert, std::string("\x02\x28", 2));
  EXPECT_EQ(alert.action, KernelTls::RecordResult::Action::kPeerAlert);
  EXPECT_EQ(alert.peer_alert, 40);
}

TEST(KernelTlsTest, RenegotiationIsRefusedAndTheAlertOwed) {
  KernelTls ktls(-1, Keys(tls::kTls12));
  const std::string hello("\x01\x00\x00\x02\x03\x03", 6);
  EXPECT_EQ(ktls.OnRecord(tls::kRecordHandshake, hello).action,
            KernelTls::RecordResult::Action::kNone);
  EXPECT_TRUE(ktls.no_renegotiation_owed());
  // The socket refuses (not "buffer full"): the alert is given up, the connection goes on.
  EXPECT_TRUE(ktls.SendOwed().ok());
  EXPECT_FALSE(ktls.no_renegotiation_owed());
}

TEST(KernelTlsTest, AKeyUpdateThatCannotBeFollowedFailsWithInternalError) {
  // No traffic secrets: the receive key cannot be advanced.
  KernelTls ktls(-1, Keys(tls::kTls13));
  const std::string key_update("\x18\x00\x00\x01\x01", 5);
  const KernelTls::RecordResult result = ktls.OnRecord(tls::kRecordHandshake, key_update);
  EXPECT_EQ(result.action, KernelTls::RecordResult::Action::kFailed);
  EXPECT_NE(result.reason.find("cannot follow the client's KeyUpdate"), std::string::npos);
  EXPECT_EQ(ktls.goodbye_level(), tls::kAlertLevelFatal);
  EXPECT_EQ(ktls.goodbye_alert(), tls::kAlertInternalError);
  EXPECT_FALSE(ktls.key_update_owed());
}

TEST(KernelTlsTest, UnexpectedRecordsFailWithTheirAlert) {
  KernelTls ktls(-1, Keys(tls::kTls13));
  const KernelTls::RecordResult result = ktls.OnRecord(tls::kRecordChangeCipherSpec, "\x01");
  EXPECT_EQ(result.action, KernelTls::RecordResult::Action::kFailed);
  EXPECT_FALSE(result.reason.empty());
  EXPECT_EQ(ktls.goodbye_level(), tls::kAlertLevelFatal);
  EXPECT_EQ(ktls.goodbye_alert(), tls::kAlertUnexpectedMessage);
}

// A multishot recvmsg completion as the kernel lays it out in a provided buffer.
std::string MultishotBuffer(const msghdr& msg, int record_type, std::string_view payload,
                            uint32_t flags) {
  std::string buffer(sizeof(io_uring_recvmsg_out) + msg.msg_namelen + msg.msg_controllen, '\0');
  io_uring_recvmsg_out out{};
  out.namelen = 0;
  out.controllen = record_type < 0 ? 0 : static_cast<uint32_t>(CMSG_SPACE(sizeof(uint8_t)));
  out.payloadlen = static_cast<uint32_t>(payload.size());
  out.flags = flags;
  memcpy(buffer.data(), &out, sizeof(out));
  if (record_type >= 0) {
    cmsghdr c{};
    c.cmsg_len = CMSG_LEN(sizeof(uint8_t));
    c.cmsg_level = SOL_TLS;
    c.cmsg_type = TLS_GET_RECORD_TYPE;
    char* control = buffer.data() + sizeof(out) + msg.msg_namelen;
    memcpy(control, &c, sizeof(c));
    *CMSG_DATA(reinterpret_cast<cmsghdr*>(control)) = static_cast<uint8_t>(record_type);
  }
  buffer.append(payload);
  return buffer;
}

TEST(KernelTlsTest, ParsesMultishotCompletions) {
  KernelTls ktls(-1, Keys(tls::kTls13));
  ktls.PrepareRecvMsg();
  alignas(8) std::string alert =
      MultishotBuffer(ktls.recv_msg(), tls::kRecordAlert, std::string("\x01\x00", 2), 0);
  absl::StatusOr<KernelTls::Received> received =
      ktls.ParseMultishot(alert, static_cast<int>(alert.size()));
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(received->record_type, tls::kRecordAlert);
  EXPECT_EQ(received->payload, std::string("\x01\x00", 2));

  std::string data = MultishotBuffer(ktls.recv_msg(), -1, "RCPT TO:<a@b>\r\n", 0);
  received = ktls.ParseMultishot(data, static_cast<int>(data.size()));
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(received->record_type, tls::kRecordApplicationData);
  EXPECT_EQ(received->payload, "RCPT TO:<a@b>\r\n");

  std::string truncated = MultishotBuffer(ktls.recv_msg(), tls::kRecordAlert, "x", MSG_CTRUNC);
  EXPECT_FALSE(ktls.ParseMultishot(truncated, static_cast<int>(truncated.size())).ok());
  EXPECT_FALSE(ktls.ParseMultishot("ab", 2).ok());  // shorter than the header
}

TEST(KernelTlsTest, ParsesSingleShotCompletions) {
  KernelTls ktls(-1, Keys(tls::kTls12));
  ktls.PrepareRecvMsg();
  msghdr& msg = ktls.recv_msg();
  // What the kernel writes back for a handshake record.
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  ASSERT_NE(c, nullptr);
  c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_GET_RECORD_TYPE;
  *CMSG_DATA(c) = tls::kRecordHandshake;
  absl::StatusOr<KernelTls::Received> received = ktls.ParseSingleShot("\x01\x00");
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(received->record_type, tls::kRecordHandshake);
  // No control message: application data.
  msg.msg_controllen = 0;
  received = ktls.ParseSingleShot("DATA\r\n");
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(received->record_type, tls::kRecordApplicationData);
  EXPECT_EQ(received->payload, "DATA\r\n");
  msg.msg_flags = MSG_CTRUNC;
  EXPECT_FALSE(ktls.ParseSingleShot("x").ok());
}

}  // namespace
}  // namespace ringmx::net
