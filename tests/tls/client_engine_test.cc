// The client side of outbound TLS (issue 12): tls::ClientTlsContext built from [[route]]s, and a
// client tls::Engine (Engine::ForClient) handshaking with our server Engine, all in memory:
// opportunistic accepts any certificate, verify checks the chain against tls_ca and the name
// against tls_name, SNI reaches the server, and application data flows both ways.
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/next_hop.h"
#include "tests/tls/tls_test_util.h"
#include "tls/client_context.h"
#include "tls/engine.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using ::testing::HasSubstr;
using testing::Message;
using testing::MustBuild;
using testing::MustEngine;
using testing::Pki;
using ::testing::StartsWith;

// Route indexes of RouteConfig() below.
constexpr size_t kOpportunistic = 0;
constexpr size_t kVerify = 1;
constexpr size_t kVerifyForeignCa = 2;
constexpr size_t kVerifyWrongName = 3;
constexpr size_t kNone = 4;
constexpr size_t kVerifySni = 5;

core::RouteConfig Route(std::string domain, core::RouteTls tls, std::string ca = "",
                        std::string name = "") {
  core::RouteConfig route;
  route.domains = {std::move(domain)};
  route.next_hop = {*core::NextHop::Parse("smtp:[127.0.0.1]:2525")};
  route.tls = tls;
  route.tls_ca = std::move(ca);
  route.tls_name = std::move(name);
  return route;
}

core::Config RouteConfig() {
  core::Config config = BaseConfig();
  const ringmx::testing::TestPki& pki = Pki();
  config.routes.push_back(Route("a.test", core::RouteTls::kOpportunistic));
  config.routes.push_back(Route("b.test", core::RouteTls::kVerify, pki.root, "mx.example.test"));
  config.routes.push_back(
      Route("c.test", core::RouteTls::kVerify, pki.foreign_ca, "mx.example.test"));
  config.routes.push_back(Route("d.test", core::RouteTls::kVerify, pki.root, "wrong.example.test"));
  config.routes.push_back(Route("e.test", core::RouteTls::kNone));
  config.routes.push_back(Route("f.test", core::RouteTls::kVerify, pki.root, "sni.example.test"));
  config.delivery.bounce_next_hop = *core::NextHop::Parse("smtp:[127.0.0.1]:2525");
  return config;
}

std::shared_ptr<const ClientTlsContext> MustBuildClient(const core::Config& config) {
  absl::StatusOr<std::shared_ptr<const ClientTlsContext>> built = ClientTlsContext::Build(config);
  EXPECT_TRUE(built.ok()) << built.status();
  if (!built.ok()) return nullptr;
  EXPECT_NE(*built, nullptr);
  return *built;
}

core::Endpoint Hop() { return *core::Endpoint::Parse("127.0.0.1:2525"); }

std::unique_ptr<Engine> MustClient(std::shared_ptr<const ClientTlsContext> context, size_t route) {
  SSL_CTX* ctx = context->ForRoute(route);
  EXPECT_NE(ctx, nullptr);
  const std::string name(context->ServerNameForRoute(route));
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::ForClient(std::move(context), ctx, name, Hop());
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

struct Outcome {
  absl::Status client = absl::UnknownError("not run");
  absl::Status server = absl::UnknownError("not run");
};

// Moves bytes between two engines until both are established or one fails; a failing side's
// last flight (its alert) still reaches the other, which then fails too. Bounded.
Outcome Shuttle(Engine& client, Engine& server) {
  Outcome out;
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) {
      absl::StatusOr<Progress> p = client.Handshake();
      server.PutCiphertext(client.TakeCiphertext());
      if (!p.ok()) {
        out.client = p.status();
        out.server = server.Handshake().status();
        return out;
      }
      client_done = *p == Progress::kEstablished;
      if (client_done) out.client = absl::OkStatus();
    }
    if (!server_done) {
      absl::StatusOr<Progress> p = server.Handshake();
      client.PutCiphertext(server.TakeCiphertext());
      if (!p.ok()) {
        out.server = p.status();
        out.client = client.Handshake().status();
        return out;
      }
      server_done = *p == Progress::kEstablished;
      if (server_done) out.server = absl::OkStatus();
    }
  }
  return out;
}

// A handshake of route `route` of RouteConfig() against listener 0 of `server_config`.
struct Conn {
  std::unique_ptr<Engine> client;
  std::unique_ptr<Engine> server;
  Outcome outcome;
};

Conn Connect(size_t route, const core::Config& server_config = BaseConfig()) {
  Conn conn;
  conn.client = MustClient(MustBuildClient(RouteConfig()), route);
  conn.server = MustEngine(MustBuild(server_config));
  if (conn.client != nullptr && conn.server != nullptr) {
    conn.outcome = Shuttle(*conn.client, *conn.server);
  }
  return conn;
}

TEST(ClientEngineTest, ClientSpeaksFirstWithAClientHello) {
  std::unique_ptr<Engine> client = MustClient(MustBuildClient(RouteConfig()), kOpportunistic);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<Progress> p = client->Handshake();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, Progress::kNeedInput);
  const std::string hello = client->TakeCiphertext();
  ASSERT_GT(hello.size(), 6u);
  EXPECT_EQ(hello[0], 0x16);  // handshake record
  EXPECT_EQ(hello[5], 0x01);  // ClientHello
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, OpportunisticAcceptsAnUntrustedCertificate) {
  Conn conn = Connect(kOpportunistic);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  ASSERT_TRUE(conn.outcome.server.ok()) << conn.outcome.server;
  const core::TlsFacts& facts = conn.client->facts();
  EXPECT_EQ(facts.version, "TLSv1.3");
  EXPECT_EQ(facts.cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(facts.cipher_bits, 256);
  EXPECT_EQ(facts.sni, "");  // no tls_name: nothing to send
  EXPECT_TRUE(facts.server_cert.presented);
  EXPECT_FALSE(facts.server_cert.verified);
  EXPECT_EQ(facts.server_cert.verify_error, "unable to get local issuer certificate");
  EXPECT_EQ(facts.server_cert.subject, "CN=mx.example.test,O=Ringmx Test");
  EXPECT_EQ(facts.server_cert.issuer, "CN=Ringmx Test Intermediate CA,O=Ringmx Test");
  EXPECT_EQ(facts.server_cert.sha256_fingerprint.size(), 64u);
  EXPECT_EQ(facts.client_cert.result, core::ClientCertResult::kNone);
  EXPECT_EQ(conn.server->facts().sni, "");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, OpportunisticAcceptsAnExpiredCertificate) {
  core::Config server = BaseConfig();
  server.tls.pairs = {core::CertKeyPair{Pki().expired_cert, Pki().expired_key}};
  server.tls.cert = Pki().expired_cert;
  server.tls.key = Pki().expired_key;
  Conn conn = Connect(kOpportunistic, server);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  ASSERT_TRUE(conn.outcome.server.ok()) << conn.outcome.server;
  EXPECT_EQ(conn.client->facts().server_cert.subject, "CN=expired.example.test,O=Ringmx Test");
  EXPECT_FALSE(conn.client->facts().server_cert.verified);
}

// A hop that is not ringmx: a plain OpenSSL server over memory BIOs, capped at `max_version`
// (our server Engine never goes below TLS 1.2 nor caps 1.3 away).
class CappedServer {
 public:
  explicit CappedServer(int max_version) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_security_level(ctx_, 0);  // OpenSSL 3 needs level 0 for TLS 1.0/1.1
    SSL_CTX_set_cipher_list(ctx_, "ALL:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, max_version);
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, Pki().mx_cert.c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, Pki().mx_key.c_str(), SSL_FILETYPE_PEM), 1);
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_accept_state(ssl_);
  }
  ~CappedServer() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  CappedServer(const CappedServer&) = delete;
  CappedServer& operator=(const CappedServer&) = delete;

  // Runs the handshake with `client` to its end (bounded); true when both sides established.
  bool Handshake(Engine& client, absl::Status& client_status) {
    client_status = absl::UnknownError("not run");
    for (int round = 0; round < 20; ++round) {
      absl::StatusOr<Progress> p = client.Handshake();
      const std::string to_server = client.TakeCiphertext();
      if (!to_server.empty()) BIO_write(in_, to_server.data(), static_cast<int>(to_server.size()));
      if (!p.ok()) {
        client_status = p.status();
        ERR_clear_error();
        return false;
      }
      const int r = SSL_do_handshake(ssl_);
      std::string to_client(BIO_ctrl_pending(out_), '\0');
      if (!to_client.empty()) {
        to_client.resize(static_cast<size_t>(BIO_read(out_, to_client.data(), to_client.size())));
        client.PutCiphertext(to_client);
      }
      if (*p == Progress::kEstablished && r == 1) {
        client_status = absl::OkStatus();
        return true;
      }
      if (r != 1 && SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
        ERR_clear_error();  // the server's own failure; the client's view is what is tested
        client_status = client.Handshake().status();
        return false;
      }
    }
    return false;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

TEST(ClientEngineTest, NegotiatesTls12WithAHopThatStopsThere) {
  std::unique_ptr<Engine> client = MustClient(MustBuildClient(RouteConfig()), kVerify);
  ASSERT_NE(client, nullptr);
  CappedServer server(TLS1_2_VERSION);
  absl::Status status;
  ASSERT_TRUE(server.Handshake(*client, status)) << status;
  const core::TlsFacts& facts = client->facts();
  EXPECT_EQ(facts.version, "TLSv1.2");
  EXPECT_THAT(facts.cipher, StartsWith("ECDHE-RSA-"));  // ECDHE + AEAD only
  EXPECT_THAT(facts.cipher, ::testing::AnyOf(HasSubstr("GCM"), HasSubstr("CHACHA20")));
  EXPECT_TRUE(facts.server_cert.verified);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, RefusesAHopBelowTls12) {
  std::unique_ptr<Engine> client = MustClient(MustBuildClient(RouteConfig()), kOpportunistic);
  ASSERT_NE(client, nullptr);
  CappedServer server(TLS1_1_VERSION);
  absl::Status status;
  ASSERT_FALSE(server.Handshake(*client, status));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(Message(status),
              StartsWith("hop 127.0.0.1:2525 offers no TLS version we accept (minimum is "
                         "TLSv1.2)"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, VerifySucceedsWithTheRightCaAndName) {
  Conn conn = Connect(kVerify);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  ASSERT_TRUE(conn.outcome.server.ok()) << conn.outcome.server;
  const core::TlsFacts& facts = conn.client->facts();
  EXPECT_TRUE(facts.server_cert.verified);
  EXPECT_EQ(facts.server_cert.verify_error, "");
  EXPECT_EQ(facts.sni, "mx.example.test");
  // SNI arrives at the server.
  EXPECT_EQ(conn.server->facts().sni, "mx.example.test");
  EXPECT_FALSE(conn.server->facts().sni_fallback);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, SniSelectsTheHopsCertificateForTlsName) {
  Conn conn = Connect(kVerifySni);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  ASSERT_TRUE(conn.outcome.server.ok()) << conn.outcome.server;
  EXPECT_EQ(conn.server->facts().sni, "sni.example.test");
  EXPECT_EQ(conn.client->facts().server_cert.subject, "CN=sni.example.test,O=Ringmx Test");
  EXPECT_TRUE(conn.client->facts().server_cert.verified);
}

TEST(ClientEngineTest, VerifyFailsWithTheWrongCa) {
  Conn conn = Connect(kVerifyForeignCa);
  ASSERT_FALSE(conn.outcome.client.ok());
  EXPECT_EQ(conn.outcome.client.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(conn.outcome.client),
              StartsWith("hop 127.0.0.1:2525: certificate verify failed: unable to get local "
                         "issuer certificate"));
  EXPECT_THAT(Message(conn.outcome.client),
              HasSubstr("(tls = verify, tls_name = mx.example.test)"));
  // The server is told why (RFC 8446 §6.2: unknown_ca).
  ASSERT_FALSE(conn.outcome.server.ok());
  EXPECT_THAT(Message(conn.outcome.server), HasSubstr("sent TLS alert unknown_ca"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, VerifyFailsWithTheWrongName) {
  Conn conn = Connect(kVerifyWrongName);
  ASSERT_FALSE(conn.outcome.client.ok());
  EXPECT_EQ(conn.outcome.client.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(conn.outcome.client),
              StartsWith("hop 127.0.0.1:2525: certificate verify failed: hostname mismatch"));
  EXPECT_THAT(Message(conn.outcome.client),
              HasSubstr("(tls = verify, tls_name = wrong.example.test)"));
  EXPECT_THAT(Message(conn.outcome.client), HasSubstr("CN=mx.example.test,O=Ringmx Test"));
  // Every later step fails the same way, without touching OpenSSL.
  absl::StatusOr<Progress> again = conn.client->Handshake();
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, VerifyFailsOnAnExpiredCertificate) {
  core::Config server = BaseConfig();
  server.tls.pairs = {core::CertKeyPair{Pki().expired_cert, Pki().expired_key}};
  server.tls.cert = Pki().expired_cert;
  server.tls.key = Pki().expired_key;
  core::Config routes = RouteConfig();
  std::unique_ptr<Engine> client = MustClient(MustBuildClient(routes), kVerify);
  std::unique_ptr<Engine> engine = MustEngine(MustBuild(server));
  ASSERT_NE(client, nullptr);
  ASSERT_NE(engine, nullptr);
  Outcome outcome = Shuttle(*client, *engine);
  ASSERT_FALSE(outcome.client.ok());
  // expired.example.test does not hold mx.example.test either; the first failure is reported.
  EXPECT_THAT(Message(outcome.client), HasSubstr("certificate verify failed: "));
  EXPECT_THAT(Message(outcome.client), HasSubstr("CN=expired.example.test"));
}

TEST(ClientEngineTest, ApplicationDataFlowsBothWays) {
  Conn conn = Connect(kVerify);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  ASSERT_TRUE(conn.outcome.server.ok()) << conn.outcome.server;
  ASSERT_TRUE(conn.client->Encrypt("EHLO relay.example.test\r\n").ok());
  conn.server->PutCiphertext(conn.client->TakeCiphertext());
  std::string at_server;
  ASSERT_TRUE(conn.server->Decrypt(at_server).ok());
  EXPECT_EQ(at_server, "EHLO relay.example.test\r\n");

  // A reply larger than one record (16 KiB), fed back one byte at a time.
  const std::string reply = "250-" + std::string(40000, 'x') + "\r\n250 OK\r\n";
  ASSERT_TRUE(conn.server->Encrypt(reply).ok());
  const std::string records = conn.server->TakeCiphertext();
  std::string at_client;
  for (char c : records) {
    conn.client->PutCiphertext(std::string_view(&c, 1));
    ASSERT_TRUE(conn.client->Decrypt(at_client).ok());
  }
  EXPECT_EQ(at_client, reply);

  conn.client->SendCloseNotify();
  conn.server->PutCiphertext(conn.client->TakeCiphertext());
  std::string rest;
  ASSERT_TRUE(conn.server->Decrypt(rest).ok());
  EXPECT_TRUE(conn.server->peer_closed());
  EXPECT_EQ(rest, "");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientEngineTest, NoKernelExportOnTheClientSide) {
  Conn conn = Connect(kOpportunistic);
  ASSERT_TRUE(conn.outcome.client.ok()) << conn.outcome.client;
  absl::StatusOr<KtlsHandoff> handoff = conn.client->ExportForKernel();
  EXPECT_EQ(handoff.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ClientEngineTest, ForClientSendsNoSniForAnIpLiteral) {
  std::shared_ptr<const ClientTlsContext> context = MustBuildClient(RouteConfig());
  absl::StatusOr<std::unique_ptr<Engine>> client =
      Engine::ForClient(context, context->ForRoute(kOpportunistic), "127.0.0.1", Hop());
  ASSERT_TRUE(client.ok()) << client.status();
  std::unique_ptr<Engine> server = MustEngine(MustBuild(BaseConfig()));
  Outcome outcome = Shuttle(**client, *server);
  ASSERT_TRUE(outcome.client.ok()) << outcome.client;
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  EXPECT_EQ(server->facts().sni, "");
  EXPECT_TRUE(server->facts().sni_fallback);
  EXPECT_EQ((*client)->facts().sni, "");
}

TEST(ClientEngineTest, ForClientSendsAGivenDnsName) {
  std::shared_ptr<const ClientTlsContext> context = MustBuildClient(RouteConfig());
  absl::StatusOr<std::unique_ptr<Engine>> client =
      Engine::ForClient(context, context->ForBounce(), "Other.Example.Test.", Hop());
  ASSERT_TRUE(client.ok()) << client.status();
  std::unique_ptr<Engine> server = MustEngine(MustBuild(BaseConfig()));
  Outcome outcome = Shuttle(**client, *server);
  ASSERT_TRUE(outcome.client.ok()) << outcome.client;
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  EXPECT_EQ(server->facts().sni, "other.example.test");
  EXPECT_EQ((*client)->facts().sni, "other.example.test");
}

TEST(ClientEngineTest, ForClientRefusesAMissingContext) {
  std::shared_ptr<const ClientTlsContext> context = MustBuildClient(RouteConfig());
  absl::StatusOr<std::unique_ptr<Engine>> client =
      Engine::ForClient(context, context->ForRoute(kNone), "", Hop());
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(client.status()), StartsWith("hop 127.0.0.1:2525: "));
  // A server context is not a client context.
  std::shared_ptr<const TlsContext> server = MustBuild(BaseConfig());
  client = Engine::ForClient(context, server->listener_ctx(0), "", Hop());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- ClientTlsContext::Build ---

TEST(ClientTlsContextTest, NoRoutesNoContext) {
  absl::StatusOr<std::shared_ptr<const ClientTlsContext>> built =
      ClientTlsContext::Build(BaseConfig());
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(*built, nullptr);
}

TEST(ClientTlsContextTest, OneContextPerRouteWithTls) {
  std::shared_ptr<const ClientTlsContext> context = MustBuildClient(RouteConfig());
  ASSERT_NE(context, nullptr);
  EXPECT_NE(context->ForRoute(kOpportunistic), nullptr);
  EXPECT_NE(context->ForRoute(kVerify), nullptr);
  EXPECT_NE(context->ForRoute(kVerify), context->ForRoute(kVerifyWrongName));
  EXPECT_EQ(context->ForRoute(kNone), nullptr);
  EXPECT_EQ(context->ForRoute(99), nullptr);
  EXPECT_NE(context->ForBounce(), nullptr);
  EXPECT_EQ(context->ServerNameForRoute(kVerify), "mx.example.test");
  EXPECT_EQ(context->ServerNameForRoute(kOpportunistic), "");
  EXPECT_EQ(context->ServerNameForRoute(kNone), "");
  EXPECT_EQ(context->ServerNameForRoute(99), "");
}

TEST(ClientTlsContextTest, AnLmtpBounceHopGetsNoContext) {
  core::Config config = RouteConfig();
  config.delivery.bounce_next_hop = *core::NextHop::Parse("lmtp:127.0.0.1:24");
  std::shared_ptr<const ClientTlsContext> context = MustBuildClient(config);
  ASSERT_NE(context, nullptr);
  EXPECT_EQ(context->ForBounce(), nullptr);
}

TEST(ClientTlsContextTest, MissingCaFileNamesTheKey) {
  core::Config config = RouteConfig();
  const std::string missing = Pki().dir + "/no-such-ca.pem";
  config.routes[kVerifyWrongName].tls_ca = missing;
  absl::StatusOr<std::shared_ptr<const ClientTlsContext>> built = ClientTlsContext::Build(config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(built.status()), "route[3].tls_ca: " + missing + ": No such file or directory");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ClientTlsContextTest, CaFileWithoutCertificatesNamesTheKey) {
  core::Config config = RouteConfig();
  config.routes[kVerify].tls_ca = Pki().mx_key;  // a PEM file, but a key
  absl::StatusOr<std::shared_ptr<const ClientTlsContext>> built = ClientTlsContext::Build(config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(built.status()),
              StartsWith("route[1].tls_ca: " + Pki().mx_key + ": cannot load CA certificates: "));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace ringmx::tls
