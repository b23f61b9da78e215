#include "tests/tls/tls_test_util.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tests/testing/temp_dir.h"

namespace ringmx::tls::testing {

using ringmx::testing::OpenSslErrors;

const ringmx::testing::TestPki& Pki() {
  static ringmx::testing::TempDir* dir = new ringmx::testing::TempDir();
  static const ringmx::testing::TestPki* pki = [] {
    absl::StatusOr<ringmx::testing::TestPki> made = ringmx::testing::CreateTestPki(dir->path());
    if (!made.ok()) {
      ADD_FAILURE() << made.status();
      return new ringmx::testing::TestPki();
    }
    return new ringmx::testing::TestPki(std::move(*made));
  }();
  // Remove the files at exit; the objects themselves are deliberately leaked.
  static const int cleanup = atexit([] { delete dir; });
  (void)cleanup;
  return *pki;
}

core::Config BaseConfig() {
  const ringmx::testing::TestPki& pki = Pki();
  core::Config config;
  config.hostname = "mx.example.test";
  core::ListenerConfig listener;
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("127.0.0.1:0");
  listener.tls = core::TlsMode::kStartTls;
  config.listeners.push_back(listener);
  config.tls.pairs = {core::CertKeyPair{pki.mx_cert, pki.mx_key}};
  config.tls.cert = pki.mx_cert;
  config.tls.key = pki.mx_key;
  config.tls.client_ca = pki.client_ca;
  core::SniConfig sni;
  sni.names = {"sni.example.test", "*.wild.example.test"};
  sni.pairs = {core::CertKeyPair{pki.sni_cert, pki.sni_key}};
  sni.cert = pki.sni_cert;
  sni.key = pki.sni_key;
  config.tls.sni.push_back(sni);
  return config;
}

std::shared_ptr<const TlsContext> MustBuild(const core::Config& config) {
  std::vector<std::string> warnings;
  absl::StatusOr<std::shared_ptr<const TlsContext>> built = TlsContext::Build(config, &warnings);
  EXPECT_TRUE(built.ok()) << built.status();
  if (!built.ok()) return nullptr;
  EXPECT_NE(*built, nullptr);
  return *built;
}

core::Endpoint TestClientEndpoint() { return *core::Endpoint::Parse("127.0.0.1:4242"); }

std::unique_ptr<Engine> MustEngine(std::shared_ptr<const TlsContext> context, size_t listener,
                                   bool implicit) {
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::ForServer(std::move(context), listener, implicit, TestClientEndpoint());
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

TestClient::TestClient(const ClientOptions& options) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (options.legacy) {
    SSL_CTX_set_security_level(ctx_, 0);
    SSL_CTX_set_cipher_list(ctx_, "ALL:@SECLEVEL=0");
  }
  if (options.min_version != 0) SSL_CTX_set_min_proto_version(ctx_, options.min_version);
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx_, options.max_version);
  if (!options.ciphers.empty()) {
    EXPECT_EQ(SSL_CTX_set_cipher_list(ctx_, options.ciphers.c_str()), 1) << OpenSslErrors();
  }
  if (!options.ciphersuites.empty()) {
    EXPECT_EQ(SSL_CTX_set_ciphersuites(ctx_, options.ciphersuites.c_str()), 1) << OpenSslErrors();
  }
  if (!options.sigalgs.empty()) {
    EXPECT_EQ(SSL_CTX_set1_sigalgs_list(ctx_, options.sigalgs.c_str()), 1) << OpenSslErrors();
  }
  if (!options.cert.empty()) {
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, options.cert.c_str()), 1) << OpenSslErrors();
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, options.key.c_str(), SSL_FILETYPE_PEM), 1)
        << OpenSslErrors();
  }
  if (!options.trust.empty()) {
    EXPECT_EQ(SSL_CTX_load_verify_file(ctx_, options.trust.c_str()), 1) << OpenSslErrors();
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  }
  ssl_ = SSL_new(ctx_);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_connect_state(ssl_);
  if (!options.sni.empty()) SSL_set_tlsext_host_name(ssl_, options.sni.c_str());
  if (!options.verify_host.empty()) SSL_set1_host(ssl_, options.verify_host.c_str());
}

TestClient::~TestClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

void TestClient::Put(std::string_view ciphertext) {
  if (!ciphertext.empty()) BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

std::string TestClient::Take() {
  std::string out(BIO_ctrl_pending(out_), '\0');
  if (!out.empty()) out.resize(static_cast<size_t>(BIO_read(out_, out.data(), out.size())));
  return out;
}

int TestClient::Step() {
  if (done_) return 1;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    done_ = true;
    return 1;
  }
  const int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) return 0;
  error_ += OpenSslErrors();
  return -1;
}

void TestClient::Write(std::string_view plaintext) {
  ASSERT_EQ(SSL_write(ssl_, plaintext.data(), static_cast<int>(plaintext.size())),
            static_cast<int>(plaintext.size()))
      << OpenSslErrors();
}

bool TestClient::Read(std::string& plaintext) {
  char buf[16384];
  for (;;) {
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      plaintext.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_ZERO_RETURN) return true;
    error_ += OpenSslErrors();
    return false;
  }
}

HandshakeOutcome Handshake(TestClient& client, Engine& server) {
  HandshakeOutcome outcome;
  bool server_done = false;
  for (int round = 0; round < 20; ++round) {
    const int c = client.Step();
    if (c < 0) {
      outcome.client_error = client.error();
      // The client's alert still goes to the server, which must then fail too.
      server.PutCiphertext(client.Take());
      absl::StatusOr<Progress> p = server.Handshake();
      outcome.server = p.ok() ? absl::OkStatus() : p.status();
      outcome.server_last_flight = server.TakeCiphertext();
      return outcome;
    }
    server.PutCiphertext(client.Take());
    absl::StatusOr<Progress> p = server.Handshake();
    const std::string flight = server.TakeCiphertext();
    client.Put(flight);
    if (!p.ok()) {
      outcome.server = p.status();
      outcome.server_last_flight = flight;
      if (client.Step() >= 0) {
        std::string ignored;
        client.Read(ignored);
      }
      outcome.client_done = client.done();
      outcome.client_error = client.error();
      return outcome;
    }
    server_done = *p == Progress::kEstablished;
    if (server_done && client.done()) break;
  }
  if (!client.done()) client.Step();
  outcome.client_done = client.done();
  outcome.client_error = client.error();
  outcome.server =
      server_done ? absl::OkStatus() : absl::DeadlineExceededError("handshake did not finish");
  return outcome;
}

std::vector<Record> SplitRecords(const std::string& bytes) {
  std::vector<Record> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 5) {
      ADD_FAILURE() << "partial record header";
      break;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    const size_t len = static_cast<size_t>(p[3] << 8 | p[4]);
    if (bytes.size() - pos - 5 < len) {
      ADD_FAILURE() << "partial record body";
      break;
    }
    Record r;
    r.type = p[0];
    r.version = p[1] << 8 | p[2];
    r.header = bytes.substr(pos, 5);
    r.body = bytes.substr(pos + 5, len);
    out.push_back(std::move(r));
    pos += 5 + len;
  }
  return out;
}

}  // namespace ringmx::tls::testing
