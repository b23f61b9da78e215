// TlsContext::Build: what it loads (chains(), TLSA digests), what it refuses (naming the config
// key and the file) and what it only warns about.
#include "tls/tls_context.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/err.h>

#include "tests/testing/temp_dir.h"
#include "tests/tls/tls_test_util.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::Message;
using testing::Pki;
using ::testing::StartsWith;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

absl::Status BuildError(const core::Config& config) {
  std::vector<std::string> warnings;
  absl::StatusOr<std::shared_ptr<const TlsContext>> built = TlsContext::Build(config, &warnings);
  EXPECT_EQ(ERR_peek_error(), 0u);
  return built.ok() ? absl::OkStatus() : built.status();
}

TEST(TlsContextTest, DescribesEveryChain) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_cert, Pki().mx_key},
                      core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key}};
  std::vector<std::string> warnings;
  absl::StatusOr<std::shared_ptr<const TlsContext>> built = TlsContext::Build(config, &warnings);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(warnings, ::testing::IsEmpty());
  const std::vector<ChainInfo>& chains = (*built)->chains();
  ASSERT_EQ(chains.size(), 3u);

  EXPECT_EQ(chains[0].config_key, "tls.cert[0]");
  EXPECT_EQ(chains[0].key_type, "RSA-2048");
  EXPECT_THAT(chains[0].names,
              ElementsAre("", "mx.example.test", "mail.example.test", "other.example.test"));
  EXPECT_EQ(chains[0].pem_chain.size(), 2u);
  EXPECT_THAT(chains[0].pem_chain[0], StartsWith("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(chains[0].not_after, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}"));
  EXPECT_EQ(chains[0].tlsa_311, Pki().mx_spki_sha256);
  EXPECT_EQ(chains[0].tlsa_211, Pki().intermediate_spki_sha256);

  EXPECT_EQ(chains[1].config_key, "tls.cert[1]");
  EXPECT_EQ(chains[1].key_type, "EC-P256");
  EXPECT_EQ(chains[1].tlsa_311, Pki().mx_ecdsa_spki_sha256);
  EXPECT_EQ(chains[1].tlsa_211, Pki().intermediate_spki_sha256);

  EXPECT_EQ(chains[2].config_key, "tls.sni[0].cert");
  EXPECT_THAT(chains[2].names, ElementsAre("sni.example.test", "*.wild.example.test"));
  EXPECT_EQ(chains[2].tlsa_311, Pki().sni_spki_sha256);

  EXPECT_NE((*built)->listener_ctx(0), nullptr);
}

TEST(TlsContextTest, ChainWithRootGivesRootForTlsa211) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_fullchain_with_root, Pki().mx_key}};
  std::vector<std::string> warnings;
  auto built = TlsContext::Build(config, &warnings);
  ASSERT_TRUE(built.ok()) << built.status();
  const ChainInfo& chain = (*built)->chains()[0];
  EXPECT_EQ(chain.config_key, "tls.cert");
  EXPECT_EQ(chain.pem_chain.size(), 3u);
  EXPECT_EQ(chain.tlsa_211, Pki().root_spki_sha256);
}

TEST(TlsContextTest, NoTlsListenerBuildsNothing) {
  core::Config config = BaseConfig();
  config.listeners[0].tls = core::TlsMode::kNone;
  std::vector<std::string> warnings;
  auto built = TlsContext::Build(config, &warnings);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(*built, nullptr);
}

TEST(TlsContextTest, ChainThatDoesNotLinkNamesKeyAndFile) {
  ringmx::testing::TempDir dir;
  // The mx leaf followed by an unrelated CA.
  const std::string broken = dir / "broken.pem";
  const std::string mx = ReadFile(Pki().mx_cert);
  const std::string leaf = mx.substr(0, mx.find("-----END CERTIFICATE-----") + 26);
  WriteFile(broken, leaf + ReadFile(Pki().client_ca));
  core::Config config = BaseConfig();
  config.tls.sni[0].pairs = {core::CertKeyPair{broken, Pki().mx_key}};
  absl::Status s = BuildError(config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), StartsWith("tls.sni[0].cert: " + broken +
                                     ": certificate 2 does not sign certificate 1"));

  // Right certificates, wrong order.
  const std::string reversed = dir / "reversed.pem";
  WriteFile(reversed, ReadFile(Pki().intermediate) + leaf);
  config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{reversed, Pki().mx_key}};
  s = BuildError(config);
  EXPECT_THAT(Message(s),
              StartsWith("tls.cert: " + reversed + ": certificate 2 does not sign certificate 1"));

  // Three certificates where only the last link is broken.
  const std::string three = dir / "three.pem";
  WriteFile(three, ReadFile(Pki().mx_cert) + ReadFile(Pki().foreign_ca));
  config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key},
                      core::CertKeyPair{three, Pki().mx_key}};
  s = BuildError(config);
  EXPECT_THAT(Message(s),
              StartsWith("tls.cert[1]: " + three + ": certificate 3 does not sign certificate 2"));
}

TEST(TlsContextTest, KeyMismatchNamesKeyAndFile) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_cert, Pki().sni_key}};
  absl::Status s = BuildError(config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(s), "tls.key: " + Pki().sni_key +
                            ": private key does not match the certificate in tls.cert (" +
                            Pki().mx_cert + ")");

  config = BaseConfig();
  config.tls.sni[0].pairs = {core::CertKeyPair{Pki().sni_cert, Pki().sni_key},
                             core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_key}};
  s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.sni[0].key[1]: " + Pki().mx_key +
                                     ": private key does not match the certificate in "
                                     "tls.sni[0].cert[1]"));
}

TEST(TlsContextTest, MissingFilesNameKeyAndFile) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{"/nonexistent/mx.pem", Pki().mx_key}};
  absl::Status s = BuildError(config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(s), "tls.cert: /nonexistent/mx.pem: No such file or directory");

  config = BaseConfig();
  config.tls.sni[0].pairs = {core::CertKeyPair{Pki().sni_cert, "/nonexistent/sni.key"}};
  s = BuildError(config);
  EXPECT_EQ(Message(s), "tls.sni[0].key: /nonexistent/sni.key: No such file or directory");

  config = BaseConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kOptional;
  config.tls.client_ca = "/nonexistent/ca.pem";
  s = BuildError(config);
  EXPECT_EQ(Message(s), "tls.client_ca: /nonexistent/ca.pem: No such file or directory");
}

TEST(TlsContextTest, FilesWithoutPemNameKeyAndFile) {
  ringmx::testing::TempDir dir;
  const std::string junk = dir / "junk.pem";
  WriteFile(junk, "not a certificate\n");
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{junk, Pki().mx_key}};
  absl::Status s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.cert: " + junk + ": no PEM certificate"));

  config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_cert, junk}};
  s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.key: " + junk + ": no readable private key"));

  const std::string truncated = dir / "truncated.pem";
  const std::string mx = ReadFile(Pki().mx_cert);
  WriteFile(truncated, mx.substr(0, mx.size() - 200));
  config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{truncated, Pki().mx_key}};
  s = BuildError(config);
  EXPECT_THAT(Message(s),
              StartsWith("tls.cert: " + truncated + ": certificate 2 cannot be parsed"));
}

TEST(TlsContextTest, ExpiredCertificateIsAWarningWithTheDate) {
  core::Config config = BaseConfig();
  config.tls.sni[0].names = {"expired.example.test"};
  config.tls.sni[0].pairs = {core::CertKeyPair{Pki().expired_cert, Pki().expired_key}};
  std::vector<std::string> warnings;
  auto built = TlsContext::Build(config, &warnings);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0],
              MatchesRegex("tls\\.sni\\[0\\]\\.cert: .*/expired\\.pem: certificate 1 "
                           "\\(\"expired\\.example\\.test\"\\) expired on [0-9]{4}-[0-9]{2}-"
                           "[0-9]{2}"));
  EXPECT_EQ((*built)->chains()[1].not_after, warnings[0].substr(warnings[0].size() - 10));
}

TEST(TlsContextTest, WarnsWhenSniNameIsNotCovered) {
  core::Config config = BaseConfig();
  config.tls.sni[0].names = {"sni.example.test", "*.other.example.test"};
  std::vector<std::string> warnings;
  auto built = TlsContext::Build(config, &warnings);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(warnings, ElementsAre("tls.sni[0].cert: " + Pki().sni_cert +
                                    ": the certificate does not cover \"*.other.example.test\""));
}

TEST(TlsContextTest, RefusesTwoCertificatesOfOneKeyType) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_cert, Pki().mx_key},
                      core::CertKeyPair{Pki().mx_fullchain_with_root, Pki().mx_key}};
  absl::Status s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.cert[1]: " + Pki().mx_fullchain_with_root +
                                     ": a second rsaEncryption certificate"));
}

TEST(TlsContextTest, RefusesBadCipherLists) {
  core::Config config = BaseConfig();
  config.tls.ciphers = "NOT-A-CIPHER";
  absl::Status s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.ciphers: \"NOT-A-CIPHER\": no usable TLS 1.2 cipher"));

  config = BaseConfig();
  config.tls.ciphersuites = "TLS_NOPE";
  s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.ciphersuites: \"TLS_NOPE\""));
}

TEST(TlsContextTest, ClientCertsNeedClientCa) {
  core::Config config = BaseConfig();
  config.listeners[0].client_certs = core::ClientCertMode::kRequired;
  config.tls.client_ca = "";
  absl::Status s = BuildError(config);
  EXPECT_THAT(Message(s), StartsWith("tls.client_ca:"));
}

}  // namespace
}  // namespace ringmx::tls
