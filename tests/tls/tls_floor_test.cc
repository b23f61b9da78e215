// Per-network TLS floors (`[[policy.tls_floor]]`): which floor a client falls under (a pure
// function, from tables of facts), which SSL_CTX TlsContext hands it, and handshakes of old and new
// clients from inside and outside a floor's networks against tls::Engine, in memory.
#include "tls/tls_floor.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/tls/tls_test_util.h"
#include "tls/engine.h"
#include "tls/internal/state.h"
#include "tls/tls_context.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using testing::ClientOptions;
using testing::Handshake;
using testing::HandshakeOutcome;
using ::testing::HasSubstr;
using testing::Message;
using testing::MustBuild;
using testing::Pki;
using ::testing::StartsWith;
using testing::TestClient;

core::TlsFloorConfig Floor(std::vector<std::string> networks, std::string min_tls) {
  core::TlsFloorConfig floor;
  for (const std::string& n : networks) floor.networks.push_back(*core::Cidr::Parse(n));
  floor.min_tls = std::move(min_tls);
  return floor;
}

core::IpAddress Ip(const char* text) { return *core::IpAddress::Parse(text); }

// --- Selection: client address + floors + listener min -> effective min. ---

TEST(TlsFloorSelectionTest, FirstMatchingFloorWinsElseTheListenersMinimum) {
  const std::vector<core::TlsFloorConfig> floors = {
      Floor({"192.0.2.0/24", "2001:db8::/32"}, "1.0"),
      Floor({"192.0.2.128/25", "198.51.100.7"}, "1.1"),  // shadowed in part by the first
      Floor({"10.0.0.0/8"}, "1.3"),
  };
  struct Case {
    const char* client;
    const char* listener_min;
    int floor;
    const char* effective;
  };
  const Case cases[] = {
      {"192.0.2.1", "1.2", 0, "1.0"},
      {"192.0.2.200", "1.2", 0, "1.0"},  // in floors 0 and 1: the first wins
      {"198.51.100.7", "1.2", 1, "1.1"},
      {"198.51.100.8", "1.2", -1, "1.2"},  // a host route covers one address only
      {"2001:db8::25", "1.3", 0, "1.0"},
      {"2001:db9::25", "1.3", -1, "1.3"},
      {"10.1.2.3", "1.2", 2, "1.3"},          // a floor may also raise the minimum
      {"::ffff:192.0.2.9", "1.2", 0, "1.0"},  // a v4-mapped client is its IPv4 address
      {"127.0.0.1", "1.3", -1, "1.3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.client);
    EXPECT_EQ(FindTlsFloor(floors, Ip(c.client)), c.floor);
    EXPECT_EQ(EffectiveMinTls(floors, Ip(c.client), c.listener_min), c.effective);
  }
}

TEST(TlsFloorSelectionTest, NoFloorsMeansTheListenersMinimum) {
  EXPECT_EQ(FindTlsFloor({}, Ip("192.0.2.1")), -1);
  EXPECT_EQ(EffectiveMinTls({}, Ip("192.0.2.1"), "1.2"), "1.2");
}

// --- Contexts. ---

core::Config FloorConfig() {
  core::Config config = BaseConfig();
  config.policy.tls_floor = {
      Floor({"127.0.0.2/32"}, "1.0"),
      Floor({"127.0.0.4/32"}, "1.2"),  // the listener's own minimum: the listener's context
      Floor({"127.0.0.5/32"}, "1.0"),  // the same version as floor 0: the same context
      Floor({"127.0.0.6/32"}, "1.3"),
  };
  return config;
}

TEST(TlsFloorContextTest, OnlyFloorClientsGetTheFloorContext) {
  std::shared_ptr<const TlsContext> context = MustBuild(FloorConfig());
  ASSERT_NE(context, nullptr);
  SSL_CTX* normal = context->listener_ctx(0);
  ASSERT_NE(normal, nullptr);
  EXPECT_EQ(context->ContextFor(0, Ip("127.0.0.3")), normal);
  EXPECT_EQ(context->ContextFor(0, Ip("::1")), normal);
  EXPECT_EQ(context->ContextFor(0, Ip("127.0.0.4")), normal);

  SSL_CTX* legacy = context->ContextFor(0, Ip("127.0.0.2"));
  ASSERT_NE(legacy, nullptr);
  EXPECT_NE(legacy, normal);
  EXPECT_EQ(context->ContextFor(0, Ip("127.0.0.5")), legacy);
  SSL_CTX* strict = context->ContextFor(0, Ip("127.0.0.6"));
  EXPECT_NE(strict, normal);
  EXPECT_NE(strict, legacy);

  // The laxness is in the floor's context only.
  EXPECT_EQ(SSL_CTX_get_min_proto_version(normal), TLS1_2_VERSION);
  EXPECT_GE(SSL_CTX_get_security_level(normal), 1);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(legacy), TLS1_VERSION);
  EXPECT_EQ(SSL_CTX_get_security_level(legacy), 0);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(strict), TLS1_3_VERSION);
  EXPECT_GE(SSL_CTX_get_security_level(strict), 1);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(TlsFloorContextTest, FloorContextsFollowEachListenersTlsMode) {
  core::Config config = FloorConfig();
  core::ListenerConfig plain;
  plain.name = "plain";
  plain.address = *core::Endpoint::Parse("127.0.0.1:0");
  config.listeners.push_back(plain);
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  EXPECT_EQ(context->ContextFor(1, Ip("127.0.0.2")), nullptr);
  EXPECT_EQ(context->ContextFor(1, Ip("127.0.0.3")), nullptr);
  EXPECT_NE(context->ContextFor(0, Ip("127.0.0.2")), nullptr);
}

TEST(TlsFloorContextTest, RefusesAnUnknownFloorVersion) {
  core::Config config = BaseConfig();
  config.policy.tls_floor = {Floor({"127.0.0.2/32"}, "1.4")};
  std::vector<std::string> warnings;
  absl::StatusOr<std::shared_ptr<const TlsContext>> built = TlsContext::Build(config, &warnings);
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(Message(built.status()), StartsWith("policy.tls_floor[0].min_tls: \"1.4\""));
}

// --- Handshakes. ---

struct Conn {
  std::unique_ptr<TestClient> client;
  std::unique_ptr<Engine> engine;
  HandshakeOutcome outcome;
};

Conn Connect(const core::Config& config, const char* client_endpoint,
             const ClientOptions& options) {
  Conn run;
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  run.client = std::make_unique<TestClient>(options);
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::ForServer(context, 0, false, *core::Endpoint::Parse(client_endpoint));
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return run;
  run.engine = *std::move(engine);
  run.outcome = Handshake(*run.client, *run.engine);
  return run;
}

ClientOptions OnlyVersion(int version) {
  ClientOptions options;
  options.legacy = true;  // security level 0 and every cipher, as an old client would offer
  options.min_version = version;
  options.max_version = version;
  return options;
}

TEST(TlsFloorHandshakeTest, Tls10ClientInTheFloorIsServedWithASha1Suite) {
  Conn run = Connect(FloorConfig(), "127.0.0.2:4242", OnlyVersion(TLS1_VERSION));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_TRUE(run.outcome.client_done) << run.outcome.client_error;
  EXPECT_EQ(run.engine->facts().version, "TLSv1");
  EXPECT_EQ(run.engine->facts().cipher, "ECDHE-RSA-AES256-SHA");
  EXPECT_FALSE(run.engine->version_refusal().has_value());
  // The record layer works (userspace: the kernel does not take TLS 1.0).
  absl::StatusOr<KtlsHandoff> handoff = run.engine->ExportForKernel();
  EXPECT_FALSE(handoff.ok());
  run.client->Write("EHLO old.example.test\r\n");
  run.engine->PutCiphertext(run.client->Take());
  std::string plaintext;
  ASSERT_TRUE(run.engine->Decrypt(plaintext).ok());
  EXPECT_EQ(plaintext, "EHLO old.example.test\r\n");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(TlsFloorHandshakeTest, Tls11ClientInTheFloorIsServed) {
  Conn run = Connect(FloorConfig(), "127.0.0.5:4242", OnlyVersion(TLS1_1_VERSION));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().version, "TLSv1.1");
}

TEST(TlsFloorHandshakeTest, Tls10ClientOutsideTheFloorIsRefusedNamingBothVersions) {
  Conn run = Connect(FloorConfig(), "127.0.0.3:4242", OnlyVersion(TLS1_VERSION));
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.3:4242 offered TLSv1.0, minimum is TLSv1.2"));
  EXPECT_THAT(Message(run.outcome.server), HasSubstr("sent alert protocol_version"));
  ASSERT_TRUE(run.engine->version_refusal().has_value());
  EXPECT_EQ(run.engine->version_refusal()->offered, "TLSv1.0");
  EXPECT_EQ(run.engine->version_refusal()->minimum, "TLSv1.2");
  EXPECT_FALSE(run.outcome.client_done);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(TlsFloorHandshakeTest, ModernClientsInTheFloorStillGetTheBestVersion) {
  Conn tls13 = Connect(FloorConfig(), "127.0.0.2:4242", {});
  ASSERT_TRUE(tls13.outcome.server.ok()) << tls13.outcome.server;
  EXPECT_EQ(tls13.engine->facts().version, "TLSv1.3");
  ClientOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  Conn run = Connect(FloorConfig(), "127.0.0.2:4242", tls12);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().version, "TLSv1.2");
  EXPECT_EQ(run.engine->facts().cipher, "ECDHE-RSA-AES256-GCM-SHA384");
}

TEST(TlsFloorHandshakeTest, AFloorAboveTheListenerRefusesOlderClientsOfItsNetwork) {
  ClientOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  Conn refused = Connect(FloorConfig(), "127.0.0.6:4242", tls12);
  ASSERT_FALSE(refused.outcome.server.ok());
  EXPECT_THAT(Message(refused.outcome.server),
              StartsWith("client 127.0.0.6:4242 offered TLSv1.2, minimum is TLSv1.3"));
  Conn other = Connect(FloorConfig(), "127.0.0.3:4242", tls12);
  EXPECT_TRUE(other.outcome.server.ok()) << other.outcome.server;
}

TEST(TlsFloorHandshakeTest, FloorContextServesSniAndEcdsaCertificates) {
  core::Config config = FloorConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key}};
  config.tls.cert = Pki().mx_ecdsa_cert;
  config.tls.key = Pki().mx_ecdsa_key;
  Conn ecdsa = Connect(config, "127.0.0.2:4242", OnlyVersion(TLS1_VERSION));
  ASSERT_TRUE(ecdsa.outcome.server.ok()) << ecdsa.outcome.server;
  EXPECT_EQ(ecdsa.engine->facts().cipher, "ECDHE-ECDSA-AES256-SHA");

  ClientOptions sni = OnlyVersion(TLS1_VERSION);
  sni.sni = "sni.example.test";
  Conn run = Connect(FloorConfig(), "127.0.0.2:4242", sni);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().sni, "sni.example.test");
  EXPECT_FALSE(run.engine->facts().sni_fallback);
  X509* served = SSL_get0_peer_certificate(run.client->ssl());
  ASSERT_NE(served, nullptr);
  EXPECT_EQ(internal::CommonName(X509_get_subject_name(served)), "sni.example.test");
}

TEST(TlsFloorHandshakeTest, FloorContextKeepsTheClientCertificateMode) {
  core::Config config = FloorConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kRequired;
  Conn absent = Connect(config, "127.0.0.2:4242", OnlyVersion(TLS1_VERSION));
  ASSERT_FALSE(absent.outcome.server.ok());
  EXPECT_THAT(Message(absent.outcome.server), HasSubstr("presented no client certificate"));

  ClientOptions with_cert = OnlyVersion(TLS1_VERSION);
  with_cert.cert = Pki().client_cert;
  with_cert.key = Pki().client_key;
  Conn verified = Connect(config, "127.0.0.2:4242", with_cert);
  ASSERT_TRUE(verified.outcome.server.ok()) << verified.outcome.server;
  EXPECT_EQ(verified.engine->facts().client_cert.result, core::ClientCertResult::kVerified);
}

}  // namespace
}  // namespace ringmx::tls
