// Kernel TLS: the probe, the real hand-off of exported keys to a TCP socket, and the KernelTls
// transport (net/transport.h) on such a socket. The hand-off tests need a kernel with TLS ULP;
// where there is none (as on the development machines) it reports itself skipped with the kernel's
// reason, and the key material is proven instead by tests/tls/ktls_export_test.cc (decrypting live
// records with the exported keys).
#include "net/ktls.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"

#include "net/transport.h"
#include "tests/tls/tls_test_util.h"

namespace ringmx::net {
namespace {

// A connected loopback TCP pair.
struct TcpPair {
  int client = -1;
  int server = -1;
  TcpPair() {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(listener, reinterpret_cast<sockaddr*>(&addr), len);
    listen(listener, 1);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connect(client, reinterpret_cast<sockaddr*>(&addr), len);
    server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    close(listener);
    timeval tv{10, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~TcpPair() {
    close(client);
    close(server);
  }
};

TEST(KernelTlsTest, ProbeGivesAReasonWhenUnavailable) {
  const KernelTlsSupport support = ProbeKernelTls();
  if (!support.available) {
    EXPECT_NE(support.reason.find("TCP_ULP"), std::string::npos) << support.reason;
  } else {
    EXPECT_TRUE(support.reason.empty());
  }
}

TEST(KernelTlsTest, InstallWithoutUlpFailsCleanly) {
  const KernelTlsSupport support = ProbeKernelTls();
  if (support.available) GTEST_SKIP() << "the kernel has TLS ULP; covered by the hand-off test";
  TcpPair pair;
  tls::KtlsHandoff keys;
  keys.tls_version = 0x0304;
  keys.cipher = tls::KtlsCipher::kAes128Gcm;
  keys.tx.key = keys.rx.key = std::string(16, 'k');
  keys.tx.iv = keys.rx.iv = std::string(12, 'i');
  const absl::Status status = InstallKernelTls(pair.server, keys);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
}

TEST(KernelTlsTest, ExportedKeysInstalledInTheKernelCarryRealRecords) {
  const KernelTlsSupport support = ProbeKernelTls();
  if (!support.available) {
    GTEST_SKIP() << "kernel TLS is not available here (" << support.reason
                 << "); the exported keys are checked by tests/tls/ktls_export_test";
  }
  auto context = tls::testing::MustBuild(tls::testing::BaseConfig());
  ASSERT_NE(context, nullptr);
  auto engine = tls::testing::MustEngine(context);
  TcpPair pair;
  // The client: OpenSSL on its real socket, in a thread.
  std::string client_got;
  std::thread client([&] {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, pair.client);
    if (SSL_connect(ssl) == 1) {
      SSL_write(ssl, "hello kernel\r\n", 14);
      char buf[64];
      int n = SSL_read(ssl, buf, sizeof(buf));
      if (n > 0) client_got.assign(buf, static_cast<size_t>(n));
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  });
  // The server: our engine, shuttled by hand over the socket until established.
  bool established = false;
  for (int round = 0; round < 20 && !established; ++round) {
    char buf[16384];
    ssize_t n = recv(pair.server, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    engine->PutCiphertext(std::string_view(buf, static_cast<size_t>(n)));
    absl::StatusOr<tls::Progress> progress = engine->Handshake();
    ASSERT_TRUE(progress.ok()) << progress.status();
    const std::string out = engine->TakeCiphertext();
    ASSERT_EQ(send(pair.server, out.data(), out.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(out.size()));
    established = *progress == tls::Progress::kEstablished;
  }
  ASSERT_TRUE(established);
  absl::StatusOr<tls::KtlsHandoff> keys = engine->ExportForKernel();
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_TRUE(InstallKernelTls(pair.server, *keys).ok());
  // From here the socket carries plaintext; the kernel does the records.
  std::string got = keys->pending_plaintext;
  while (got.find("\r\n") == std::string::npos) {
    char buf[256];
    ssize_t n = recv(pair.server, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "hello kernel\r\n");
  ASSERT_EQ(send(pair.server, "from kernel", 11, MSG_NOSIGNAL), 11);
  client.join();
  EXPECT_EQ(client_got, "from kernel");
}

TEST(KernelTlsTest, TransportSendsDataThenItsGoodbyeThroughTheKernel) {
  const KernelTlsSupport support = ProbeKernelTls();
  if (!support.available) {
    GTEST_SKIP() << "kernel TLS is not available here (" << support.reason
                 << "); tests/net/transport_test covers what needs no kernel";
  }
  auto context = tls::testing::MustBuild(tls::testing::BaseConfig());
  ASSERT_NE(context, nullptr);
  auto engine = tls::testing::MustEngine(context);
  TcpPair pair;
  // The client reads our reply, then expects a clean close_notify (what a 221 ends with).
  std::string client_got;
  bool client_saw_close_notify = false;
  std::thread client([&] {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, pair.client);
    if (SSL_connect(ssl) == 1) {
      SSL_write(ssl, "QUIT\r\n", 6);
      char buf[64];
      for (int i = 0; i < 4 && client_got.find("\r\n") == std::string::npos; ++i) {
        const int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) break;
        client_got.append(buf, static_cast<size_t>(n));
      }
      const int n = SSL_read(ssl, buf, sizeof(buf));
      client_saw_close_notify = n == 0 && SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN;
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  });
  bool established = false;
  for (int round = 0; round < 20 && !established; ++round) {
    char buf[16384];
    ssize_t n = recv(pair.server, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    engine->PutCiphertext(std::string_view(buf, static_cast<size_t>(n)));
    absl::StatusOr<tls::Progress> progress = engine->Handshake();
    ASSERT_TRUE(progress.ok()) << progress.status();
    const std::string out = engine->TakeCiphertext();
    ASSERT_EQ(send(pair.server, out.data(), out.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(out.size()));
    established = *progress == tls::Progress::kEstablished;
  }
  ASSERT_TRUE(established);
  absl::StatusOr<tls::KtlsHandoff> keys = engine->ExportForKernel();
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_TRUE(InstallKernelTls(pair.server, *keys).ok());
  std::string got = keys->pending_plaintext;
  KernelTls transport(pair.server, *std::move(keys));
  while (got.find("\r\n") == std::string::npos) {
    char buf[256];
    ssize_t n = recv(pair.server, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "QUIT\r\n");
  EXPECT_EQ(transport.OnRecord(tls::kRecordApplicationData, got).action,
            KernelTls::RecordResult::Action::kData);
  std::string wire;
  ASSERT_TRUE(transport.Seal("221 2.0.0 Bye\r\n", wire).ok());
  ASSERT_EQ(send(pair.server, wire.data(), wire.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(wire.size()));
  transport.SendGoodbye();
  shutdown(pair.server, SHUT_WR);
  client.join();
  EXPECT_EQ(client_got, "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(client_saw_close_notify);
}

}  // namespace
}  // namespace ringmx::net
