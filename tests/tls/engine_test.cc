// tls::Engine against an OpenSSL client, in memory: versions, SNI, chains, key types, client
// certificates, refusals with their alerts and messages, and the record layer.
#include "tls/engine.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/tls/tls_test_util.h"
#include "tls/internal/state.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using testing::ClientOptions;
using testing::Handshake;
using testing::HandshakeOutcome;
using ::testing::HasSubstr;
using testing::Message;
using testing::MustBuild;
using testing::MustEngine;
using testing::Pki;
using ::testing::StartsWith;
using testing::TestClient;

std::string PeerCn(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  return cert == nullptr ? "" : internal::CommonName(X509_get_subject_name(cert));
}

int PeerChainLength(SSL* ssl) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  return chain == nullptr ? 0 : sk_X509_num(chain);
}

int PeerKeyType(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  return cert == nullptr ? 0 : EVP_PKEY_get_base_id(X509_get0_pubkey(cert));
}

// Runs a handshake of a client with `options` against listener 0 of `config`.
struct Conn {
  std::unique_ptr<TestClient> client;
  std::unique_ptr<Engine> engine;
  HandshakeOutcome outcome;
};

Conn Connect(const core::Config& config, const ClientOptions& options, bool implicit = false) {
  Conn run;
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  run.client = std::make_unique<TestClient>(options);
  run.engine = MustEngine(context, 0, implicit);
  if (run.engine != nullptr) run.outcome = Handshake(*run.client, *run.engine);
  return run;
}

TEST(EngineTest, HandshakesTls13ByDefault) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_TRUE(run.outcome.client_done) << run.outcome.client_error;
  const core::TlsFacts& facts = run.engine->facts();
  EXPECT_EQ(facts.version, "TLSv1.3");
  EXPECT_EQ(facts.cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(facts.cipher_bits, 256);
  EXPECT_EQ(facts.cipher_alg_bits, 256);
  EXPECT_FALSE(facts.ktls);
  EXPECT_FALSE(facts.implicit);
  EXPECT_EQ(facts.client_cert.result, core::ClientCertResult::kNone);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(EngineTest, HandshakesTls12WithEcdheAead) {
  ClientOptions options;
  options.max_version = TLS1_2_VERSION;
  Conn run = Connect(BaseConfig(), options);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_TRUE(run.outcome.client_done);
  EXPECT_EQ(run.engine->facts().version, "TLSv1.2");
  EXPECT_EQ(run.engine->facts().cipher, "ECDHE-RSA-AES256-GCM-SHA384");
  EXPECT_EQ(run.engine->facts().cipher_bits, 256);
}

TEST(EngineTest, RecordsImplicitFlag) {
  Conn run = Connect(BaseConfig(), {}, /*implicit=*/true);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_TRUE(run.engine->facts().implicit);
}

TEST(EngineTest, ClientVerifiesServedChainAndNames) {
  for (const char* name : {"mx.example.test", "mail.example.test", "other.example.test"}) {
    ClientOptions options;
    options.sni = name;
    options.trust = Pki().root;
    options.verify_host = name;
    Conn run = Connect(BaseConfig(), options);
    ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
    EXPECT_TRUE(run.outcome.client_done) << run.outcome.client_error;
    EXPECT_EQ(SSL_get_verify_result(run.client->ssl()), X509_V_OK) << name;
    EXPECT_FALSE(run.engine->facts().sni_fallback) << name;
    EXPECT_EQ(run.engine->facts().sni, name);
  }
}

// --- SNI ---

struct SniCase {
  std::string sni;
  std::string served_cn;
  bool fallback;
};

class SniSelectionTest : public ::testing::TestWithParam<SniCase> {};

TEST_P(SniSelectionTest, ServesTheRightCertificate) {
  const SniCase& c = GetParam();
  ClientOptions options;
  options.sni = c.sni;
  Conn run = Connect(BaseConfig(), options);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(PeerCn(run.client->ssl()), c.served_cn);
  EXPECT_EQ(run.engine->facts().sni_fallback, c.fallback);
  std::string lower = c.sni;
  for (char& ch : lower) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  EXPECT_EQ(run.engine->facts().sni, lower);
}

INSTANTIATE_TEST_SUITE_P(
    Names, SniSelectionTest,
    ::testing::Values(SniCase{"sni.example.test", "sni.example.test", false},
                      SniCase{"a.wild.example.test", "sni.example.test", false},
                      SniCase{"A.WILD.Example.TEST", "sni.example.test", false},
                      SniCase{"SNI.example.test", "sni.example.test", false},
                      SniCase{"mail.example.test", "mx.example.test", false},
                      // A wildcard covers exactly one label.
                      SniCase{"wild.example.test", "mx.example.test", true},
                      SniCase{"a.b.wild.example.test", "mx.example.test", true},
                      SniCase{"unknown.example.test", "mx.example.test", true},
                      SniCase{"", "mx.example.test", true}));

TEST(EngineTest, SniStrictRefusesUnknownNameWithUnrecognizedName) {
  core::Config config = BaseConfig();
  config.listeners[0].sni_strict = true;
  ClientOptions options;
  options.sni = "unknown.example.test";
  Conn run = Connect(config, options);
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 asked for unknown server name "
                         "\"unknown.example.test\" (sni_strict listener)"));
  EXPECT_THAT(Message(run.outcome.server), HasSubstr("sent alert unrecognized_name"));
  // A plaintext fatal alert record: 21, 0x0303, length 2, level 2, description 112.
  EXPECT_EQ(run.outcome.server_last_flight, std::string("\x15\x03\x03\x00\x02\x02\x70", 7));
  EXPECT_THAT(run.outcome.client_error, HasSubstr("unrecognized name"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(EngineTest, SniStrictStillServesKnownNamesAndAbsentSni) {
  core::Config config = BaseConfig();
  config.listeners[0].sni_strict = true;
  ClientOptions options;
  options.sni = "x.wild.example.test";
  Conn run = Connect(config, options);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(PeerCn(run.client->ssl()), "sni.example.test");

  Conn absent = Connect(config, {});
  ASSERT_TRUE(absent.outcome.server.ok()) << absent.outcome.server;
  EXPECT_EQ(PeerCn(absent.client->ssl()), "mx.example.test");
  EXPECT_TRUE(absent.engine->facts().sni_fallback);
}

// --- Chains and key types ---

TEST(EngineTest, ServesTheConfiguredChain) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(PeerChainLength(run.client->ssl()), 2);

  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_fullchain_with_root, Pki().mx_key}};
  Conn full = Connect(config, {});
  ASSERT_TRUE(full.outcome.server.ok()) << full.outcome.server;
  EXPECT_EQ(PeerChainLength(full.client->ssl()), 3);

  ClientOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  Conn full12 = Connect(config, tls12);
  ASSERT_TRUE(full12.outcome.server.ok()) << full12.outcome.server;
  EXPECT_EQ(PeerChainLength(full12.client->ssl()), 3);

  ClientOptions sni;
  sni.sni = "sni.example.test";
  Conn sni_run = Connect(config, sni);
  ASSERT_TRUE(sni_run.outcome.server.ok()) << sni_run.outcome.server;
  EXPECT_EQ(PeerChainLength(sni_run.client->ssl()), 2);
}

TEST(EngineTest, PicksRsaOrEcdsaByTheClientsSignatureAlgorithms) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_cert, Pki().mx_key},
                      core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key}};
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    ClientOptions ecdsa;
    ecdsa.max_version = version;
    ecdsa.sigalgs = "ECDSA+SHA256";
    Conn e = Connect(config, ecdsa);
    ASSERT_TRUE(e.outcome.server.ok()) << e.outcome.server;
    EXPECT_EQ(PeerKeyType(e.client->ssl()), EVP_PKEY_EC) << version;
    EXPECT_EQ(PeerChainLength(e.client->ssl()), 2);

    ClientOptions rsa;
    rsa.max_version = version;
    rsa.sigalgs = "rsa_pss_rsae_sha256:RSA+SHA256";
    Conn r = Connect(config, rsa);
    ASSERT_TRUE(r.outcome.server.ok()) << r.outcome.server;
    EXPECT_EQ(PeerKeyType(r.client->ssl()), EVP_PKEY_RSA) << version;
  }
  ClientOptions tls12_ecdsa;
  tls12_ecdsa.max_version = TLS1_2_VERSION;
  tls12_ecdsa.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
  Conn e12 = Connect(config, tls12_ecdsa);
  ASSERT_TRUE(e12.outcome.server.ok()) << e12.outcome.server;
  EXPECT_EQ(e12.engine->facts().cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
  EXPECT_EQ(PeerKeyType(e12.client->ssl()), EVP_PKEY_EC);
}

TEST(EngineTest, SniEntryWithBothKeyTypes) {
  core::Config config = BaseConfig();
  config.tls.sni[0].pairs = {core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key},
                             core::CertKeyPair{Pki().sni_cert, Pki().sni_key}};
  ClientOptions ecdsa;
  ecdsa.sni = "sni.example.test";
  ecdsa.sigalgs = "ECDSA+SHA256";
  Conn e = Connect(config, ecdsa);
  ASSERT_TRUE(e.outcome.server.ok()) << e.outcome.server;
  EXPECT_EQ(PeerKeyType(e.client->ssl()), EVP_PKEY_EC);
  ClientOptions rsa;
  rsa.sni = "sni.example.test";
  rsa.sigalgs = "rsa_pss_rsae_sha256";
  Conn r = Connect(config, rsa);
  ASSERT_TRUE(r.outcome.server.ok()) << r.outcome.server;
  EXPECT_EQ(PeerCn(r.client->ssl()), "sni.example.test");
}

// --- Client certificates ---

class ClientCertTest : public ::testing::TestWithParam<int> {
 protected:
  ClientOptions Options(const std::string& cert, const std::string& key) {
    ClientOptions options;
    options.max_version = GetParam();
    options.cert = cert;
    options.key = key;
    return options;
  }
  core::Config Config(core::ClientCertMode mode) {
    core::Config config = BaseConfig();
    config.listeners[0].client_certs = mode;
    return config;
  }
};

TEST_P(ClientCertTest, OptionalVerifiesTrustedCertificate) {
  Conn run = Connect(Config(core::ClientCertMode::kOptional),
                     Options(Pki().client_cert, Pki().client_key));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  const core::ClientCertFacts& cc = run.engine->facts().client_cert;
  EXPECT_EQ(cc.result, core::ClientCertResult::kVerified);
  EXPECT_EQ(cc.subject, ringmx::testing::TestPki::kClientSubject);
  EXPECT_EQ(cc.issuer, ringmx::testing::TestPki::kClientIssuer);
  EXPECT_EQ(cc.subject_cn, "client.example.test");
  EXPECT_EQ(cc.issuer_cn, "Ringmx Test Client CA");
  EXPECT_EQ(cc.sha256_fingerprint, Pki().client_cert_sha256);
  EXPECT_EQ(cc.verify_error, "");
}

TEST_P(ClientCertTest, OptionalRecordsForeignCertificateAsNotVerified) {
  Conn run = Connect(Config(core::ClientCertMode::kOptional),
                     Options(Pki().foreign_client_cert, Pki().foreign_client_key));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_TRUE(run.outcome.client_done);
  const core::ClientCertFacts& cc = run.engine->facts().client_cert;
  EXPECT_EQ(cc.result, core::ClientCertResult::kNotVerified);
  EXPECT_EQ(cc.subject, ringmx::testing::TestPki::kForeignClientSubject);
  EXPECT_EQ(cc.issuer, ringmx::testing::TestPki::kForeignClientIssuer);
  EXPECT_EQ(cc.sha256_fingerprint, Pki().foreign_client_cert_sha256);
  EXPECT_EQ(cc.verify_error, "unable to get local issuer certificate");
  // The session works.
  run.client->Write("EHLO client\r\n");
  run.engine->PutCiphertext(run.client->Take());
  std::string plain;
  ASSERT_TRUE(run.engine->Decrypt(plain).ok());
  EXPECT_EQ(plain, "EHLO client\r\n");
}

TEST_P(ClientCertTest, OptionalWithoutCertificateIsNone) {
  Conn run = Connect(Config(core::ClientCertMode::kOptional), Options("", ""));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().client_cert.result, core::ClientCertResult::kNone);
  EXPECT_EQ(run.engine->facts().client_cert.subject, "");
}

TEST_P(ClientCertTest, NoneDoesNotAskForCertificate) {
  Conn run =
      Connect(Config(core::ClientCertMode::kNone), Options(Pki().client_cert, Pki().client_key));
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().client_cert.result, core::ClientCertResult::kNone);
}

TEST_P(ClientCertTest, RequiredAcceptsTrustedCertificate) {
  Conn run = Connect(Config(core::ClientCertMode::kRequired),
                     Options(Pki().client_cert, Pki().client_key), /*implicit=*/true);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(run.engine->facts().client_cert.result, core::ClientCertResult::kVerified);
  EXPECT_TRUE(run.engine->facts().implicit);
}

TEST_P(ClientCertTest, VerifiesTheSameWayAfterSniSelection) {
  ClientOptions options = Options(Pki().client_cert, Pki().client_key);
  options.sni = "sni.example.test";
  Conn run = Connect(Config(core::ClientCertMode::kRequired), options);
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  EXPECT_EQ(PeerCn(run.client->ssl()), "sni.example.test");
  EXPECT_EQ(run.engine->facts().client_cert.result, core::ClientCertResult::kVerified);

  options = Options(Pki().foreign_client_cert, Pki().foreign_client_key);
  options.sni = "x.wild.example.test";
  Conn foreign = Connect(Config(core::ClientCertMode::kOptional), options);
  ASSERT_TRUE(foreign.outcome.server.ok()) << foreign.outcome.server;
  EXPECT_EQ(foreign.engine->facts().client_cert.result, core::ClientCertResult::kNotVerified);
}

TEST_P(ClientCertTest, RequiredRefusesForeignCertificate) {
  Conn run = Connect(Config(core::ClientCertMode::kRequired),
                     Options(Pki().foreign_client_cert, Pki().foreign_client_key));
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 presented an untrusted client certificate "
                         "(\"CN=foreign-client.example.test,O=Ringmx Test\"): unable to get "
                         "local issuer certificate"));
  EXPECT_THAT(Message(run.outcome.server), HasSubstr("sent alert unknown_ca"));
  EXPECT_FALSE(run.outcome.server_last_flight.empty());  // the alert
  EXPECT_THAT(run.outcome.client_error, HasSubstr("unknown ca"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(ClientCertTest, RequiredRefusesAbsentCertificate) {
  Conn run = Connect(Config(core::ClientCertMode::kRequired), Options("", ""));
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 presented no client certificate "
                         "(client_certs = required)"));
  EXPECT_FALSE(run.outcome.server_last_flight.empty());
  const bool tls13 = GetParam() == TLS1_3_VERSION;
  EXPECT_THAT(Message(run.outcome.server), HasSubstr(tls13 ? "sent alert certificate_required"
                                                           : "sent alert handshake_failure"));
  EXPECT_THAT(run.outcome.client_error,
              HasSubstr(tls13 ? "certificate required" : "handshake failure"));
}

INSTANTIATE_TEST_SUITE_P(Versions, ClientCertTest,
                         ::testing::Values(TLS1_3_VERSION, TLS1_2_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_3_VERSION ? "Tls13" : "Tls12";
                         });

// --- Versions ---

TEST(EngineTest, MinTls12RefusesTls11ClientNamingTheOfferedVersion) {
  ClientOptions options;
  options.legacy = true;
  options.min_version = TLS1_1_VERSION;
  options.max_version = TLS1_1_VERSION;
  Conn run = Connect(BaseConfig(), options);
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 offered TLSv1.1, minimum is TLSv1.2"));
  EXPECT_THAT(Message(run.outcome.server), HasSubstr("sent alert protocol_version"));
  // A fatal protocol_version (70) alert.
  ASSERT_GE(run.outcome.server_last_flight.size(), 7u);
  EXPECT_EQ(run.outcome.server_last_flight[0], '\x15');
  EXPECT_EQ(run.outcome.server_last_flight.substr(5), std::string("\x02\x46", 2));
  EXPECT_FALSE(run.outcome.client_done);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(EngineTest, MinTls12RefusesTls10Client) {
  ClientOptions options;
  options.legacy = true;
  options.min_version = TLS1_VERSION;
  options.max_version = TLS1_VERSION;
  Conn run = Connect(BaseConfig(), options);
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 offered TLSv1.0, minimum is TLSv1.2"));
}

TEST(EngineTest, MinTls13RefusesTls12Client) {
  core::Config config = BaseConfig();
  config.listeners[0].min_tls = "1.3";
  ClientOptions options;
  options.max_version = TLS1_2_VERSION;
  Conn run = Connect(config, options);
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 offered TLSv1.2, minimum is TLSv1.3"));

  Conn ok = Connect(config, {});
  ASSERT_TRUE(ok.outcome.server.ok()) << ok.outcome.server;
  EXPECT_EQ(ok.engine->facts().version, "TLSv1.3");
}

TEST(EngineTest, GarbageIsRefusedWithAnAlertAndNamedClient) {
  std::shared_ptr<const TlsContext> context = MustBuild(BaseConfig());
  std::unique_ptr<Engine> engine = MustEngine(context);
  engine->PutCiphertext("GET / HTTP/1.0\r\n\r\n");
  absl::StatusOr<Progress> p = engine->Handshake();
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(Message(p.status()), StartsWith("client 127.0.0.1:4242: TLS handshake failed"));
  EXPECT_THAT(Message(p.status()), HasSubstr("http request"));
  EXPECT_EQ(ERR_peek_error(), 0u);
  // A failed engine stays failed.
  EXPECT_FALSE(engine->Handshake().ok());

  // A handshake record holding a malformed ClientHello gets a fatal alert.
  std::unique_ptr<Engine> other = MustEngine(context);
  other->PutCiphertext(std::string("\x16\x03\x01\x00\x09\x01\x00\x00\x05hello", 14));
  p = other->Handshake();
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(Message(p.status()), StartsWith("client 127.0.0.1:4242: TLS handshake failed"));
  const std::string alert = other->TakeCiphertext();
  ASSERT_EQ(alert.size(), 7u);
  EXPECT_EQ(alert[0], '\x15');
  EXPECT_EQ(alert[5], '\x02');  // fatal
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(EngineTest, AlertFromClientDuringHandshakeIsNamed) {
  ClientOptions options;
  options.trust = Pki().foreign_ca;  // the client will not trust our chain
  Conn run = Connect(BaseConfig(), options);
  ASSERT_FALSE(run.outcome.server.ok());
  EXPECT_FALSE(run.outcome.client_error.empty());
  EXPECT_EQ(run.outcome.server.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(run.outcome.server),
              StartsWith("client 127.0.0.1:4242 sent TLS alert unknown_ca during the handshake"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(EngineTest, HandshakeProgressesByteByByte) {
  std::shared_ptr<const TlsContext> context = MustBuild(BaseConfig());
  std::unique_ptr<Engine> engine = MustEngine(context);
  TestClient client({});
  bool established = false;
  for (int round = 0; round < 10 && !(established && client.done()); ++round) {
    ASSERT_GE(client.Step(), 0) << client.error();
    const std::string bytes = client.Take();
    for (char b : bytes) {
      engine->PutCiphertext(std::string_view(&b, 1));
      absl::StatusOr<Progress> p = engine->Handshake();
      ASSERT_TRUE(p.ok()) << p.status();
      established = *p == Progress::kEstablished;
      client.Put(engine->TakeCiphertext());
    }
  }
  EXPECT_TRUE(established);
  EXPECT_TRUE(client.done());
}

// --- Record layer ---

TEST(EngineTest, EncryptsAndDecryptsBothWays) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  run.client->Write(big);
  run.engine->PutCiphertext(run.client->Take());
  std::string got;
  ASSERT_TRUE(run.engine->Decrypt(got).ok());
  EXPECT_EQ(got, big);

  ASSERT_TRUE(run.engine->Encrypt("250 ok\r\n").ok());
  ASSERT_TRUE(run.engine->Encrypt(big).ok());
  run.client->Put(run.engine->TakeCiphertext());
  std::string back;
  ASSERT_TRUE(run.client->Read(back));
  EXPECT_EQ(back, "250 ok\r\n" + big);
}

TEST(EngineTest, DecryptWaitsForTheRestOfARecord) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  run.client->Write("MAIL FROM:<a@example.test>\r\n");
  const std::string record = run.client->Take();
  run.engine->PutCiphertext(record.substr(0, 10));
  std::string got;
  ASSERT_TRUE(run.engine->Decrypt(got).ok());
  EXPECT_EQ(got, "");
  run.engine->PutCiphertext(record.substr(10));
  ASSERT_TRUE(run.engine->Decrypt(got).ok());
  EXPECT_EQ(got, "MAIL FROM:<a@example.test>\r\n");
}

TEST(EngineTest, CloseNotifyMidStreamSetsPeerClosed) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  run.client->Write("DATA\r\nSubject: half a mess");
  SSL_shutdown(run.client->ssl());
  run.engine->PutCiphertext(run.client->Take());
  std::string got;
  ASSERT_TRUE(run.engine->Decrypt(got).ok());
  EXPECT_EQ(got, "DATA\r\nSubject: half a mess");
  EXPECT_TRUE(run.engine->peer_closed());
  // Our close_notify in return.
  run.engine->SendCloseNotify();
  run.client->Put(run.engine->TakeCiphertext());
  EXPECT_EQ(SSL_shutdown(run.client->ssl()), 1);
}

TEST(EngineTest, CorruptRecordIsAnError) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  run.client->Write("RCPT TO:<b@example.test>\r\n");
  std::string record = run.client->Take();
  record[record.size() - 3] ^= 0x40;
  run.engine->PutCiphertext(record);
  std::string got;
  absl::Status s = run.engine->Decrypt(got);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), StartsWith("client 127.0.0.1:4242: TLS read failed"));
  EXPECT_THAT(Message(s), HasSubstr("bad record mac"));
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_FALSE(run.engine->TakeCiphertext().empty());  // bad_record_mac alert for the client
}

TEST(EngineTest, AlertFromPeerIsNamed) {
  Conn run = Connect(BaseConfig(), {});
  ASSERT_TRUE(run.outcome.server.ok()) << run.outcome.server;
  // A fatal alert from the client: encrypt it by hand through the client's SSL.
  SSL_set_quiet_shutdown(run.client->ssl(), 0);
  // OpenSSL has no public "send alert"; corrupting the server's record makes the client send
  // bad_record_mac.
  ASSERT_TRUE(run.engine->Encrypt("250 ok\r\n").ok());
  std::string record = run.engine->TakeCiphertext();
  record[record.size() - 2] ^= 0x01;
  run.client->Put(record);
  std::string ignored;
  EXPECT_FALSE(run.client->Read(ignored));
  run.engine->PutCiphertext(run.client->Take());
  std::string got;
  absl::Status s = run.engine->Decrypt(got);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(Message(s), HasSubstr("client sent alert bad_record_mac"));
}

TEST(EngineTest, ForServerRefusesListenerWithoutTls) {
  core::Config config = BaseConfig();
  core::ListenerConfig plain;
  plain.name = "plain";
  config.listeners.push_back(plain);
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  EXPECT_EQ(context->listener_ctx(1), nullptr);
  EXPECT_EQ(context->listener_ctx(7), nullptr);
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::ForServer(context, 1, false, testing::TestClientEndpoint());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EngineTest, EngineKeepsContextAlive) {
  std::unique_ptr<Engine> engine = MustEngine(MustBuild(BaseConfig()));
  ClientOptions options;
  options.sni = "a.wild.example.test";
  TestClient client(options);
  HandshakeOutcome outcome = Handshake(client, *engine);
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  EXPECT_EQ(PeerCn(client.ssl()), "sni.example.test");
}

}  // namespace
}  // namespace ringmx::tls
