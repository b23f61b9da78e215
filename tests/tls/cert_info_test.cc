// tls/cert_info.h: what `ringmx ctl certs` shows of each served chain, read from the chains the
// TlsContext loaded (the test PKI), and the expiry warnings.
#include "tls/cert_info.h"

#include <stdio.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/tls/tls_test_util.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MustBuild;
using testing::Pki;

// SHA-256 of the DER of the first certificate in the PEM file `path`, lower-case hex.
std::string FileLeafSha256(const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) return "";
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  X509_free(cert);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  std::string hex;
  for (unsigned int i = 0; i < md_len; ++i)
    absl::StrAppend(&hex, absl::Hex(md[i], absl::kZeroPad2));
  return hex;
}

std::vector<CertInfo> Describe(const TlsContext& context) {
  std::vector<CertInfo> out;
  for (const ChainInfo& chain : context.chains()) {
    absl::StatusOr<CertInfo> info = DescribeChain(chain);
    EXPECT_TRUE(info.ok()) << info.status();
    if (info.ok()) out.push_back(*info);
  }
  return out;
}

TEST(DescribeChainTest, DefaultAndSniCertificates) {
  std::shared_ptr<const TlsContext> context = MustBuild(BaseConfig());
  ASSERT_NE(context, nullptr);
  const std::vector<CertInfo> certs = Describe(*context);
  ASSERT_EQ(certs.size(), 2u);

  const CertInfo& mx = certs[0];
  EXPECT_EQ(mx.config_key, "tls.cert");
  EXPECT_EQ(mx.subject, "CN=mx.example.test,O=Ringmx Test");
  EXPECT_EQ(mx.issuer, "CN=Ringmx Test Intermediate CA,O=Ringmx Test");
  EXPECT_THAT(mx.sans, ElementsAre("DNS:mx.example.test", "DNS:mail.example.test",
                                   "DNS:other.example.test"));
  EXPECT_EQ(mx.chain_length, 2u);  // leaf + intermediate, as mx.pem holds them
  EXPECT_EQ(mx.key_type, "RSA");
  EXPECT_EQ(mx.key_bits, 2048);
  EXPECT_EQ(mx.key_curve, "");
  EXPECT_EQ(mx.sha256_fingerprint, FileLeafSha256(Pki().mx_cert));
  EXPECT_EQ(mx.sha256_fingerprint.size(), 64u);
  // The PKI's validity: from about a day ago to about a year from now.
  const absl::Time now = absl::Now();
  EXPECT_LT(mx.not_before, now);
  EXPECT_GT(mx.not_after, now + absl::Hours(24 * 360));
  EXPECT_LT(mx.not_after, now + absl::Hours(24 * 366));

  const CertInfo& sni = certs[1];
  EXPECT_EQ(sni.config_key, "tls.sni[0].cert");
  EXPECT_THAT(sni.names, ElementsAre("sni.example.test", "*.wild.example.test"));
  EXPECT_THAT(sni.sans, ElementsAre("DNS:sni.example.test", "DNS:*.wild.example.test"));
  EXPECT_EQ(sni.sha256_fingerprint, FileLeafSha256(Pki().sni_cert));
  EXPECT_NE(sni.sha256_fingerprint, mx.sha256_fingerprint);
}

TEST(DescribeChainTest, EcdsaKeyAndFullChainWithRoot) {
  core::Config config = BaseConfig();
  config.tls.pairs = {core::CertKeyPair{Pki().mx_fullchain_with_root, Pki().mx_key},
                      core::CertKeyPair{Pki().mx_ecdsa_cert, Pki().mx_ecdsa_key}};
  config.tls.cert = Pki().mx_fullchain_with_root;
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  ASSERT_NE(context, nullptr);
  const std::vector<CertInfo> certs = Describe(*context);
  ASSERT_GE(certs.size(), 2u);
  EXPECT_EQ(certs[0].chain_length, 3u);
  EXPECT_EQ(certs[1].key_type, "EC");
  EXPECT_EQ(certs[1].key_bits, 256);
  EXPECT_EQ(certs[1].key_curve, "prime256v1");
  EXPECT_EQ(certs[1].sha256_fingerprint, FileLeafSha256(Pki().mx_ecdsa_cert));
}

TEST(DescribeChainTest, UnparsableLeafIsAnError) {
  ChainInfo chain;
  chain.config_key = "tls.cert";
  chain.pem_chain = {"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"};
  absl::StatusOr<CertInfo> info = DescribeChain(chain);
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("tls.cert"));
  chain.pem_chain.clear();
  EXPECT_FALSE(DescribeChain(chain).ok());
}

TEST(ExpiryWarningTest, ExpiredSoonNotYetAndFine) {
  CertInfo info;
  info.config_key = "tls.cert";
  info.subject = "CN=mx.example.test";
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  info.not_before = now - absl::Hours(24);
  info.not_after = now + absl::Hours(24 * 30);
  EXPECT_EQ(ExpiryWarning(info, now), "");
  info.not_after = now + absl::Hours(24 * 14) + absl::Seconds(1);
  EXPECT_EQ(ExpiryWarning(info, now), "");
  info.not_after = now + absl::Hours(24 * 14);
  EXPECT_THAT(ExpiryWarning(info, now), HasSubstr("expires in 14 days"));
  info.not_after = now + absl::Hours(24 * 5 + 3);
  EXPECT_EQ(ExpiryWarning(info, now),
            "tls.cert (CN=mx.example.test): expires in 5 days, on 2027-01-20 11:00:00 UTC");
  info.not_after = now + absl::Hours(1);
  EXPECT_THAT(ExpiryWarning(info, now), HasSubstr("expires in 0 days"));
  info.not_after = now;
  EXPECT_THAT(ExpiryWarning(info, now), HasSubstr(": expired on "));
  info.not_after = now + absl::Hours(24 * 100);
  info.not_before = now + absl::Hours(1);
  EXPECT_THAT(ExpiryWarning(info, now), HasSubstr(": not valid before "));
}

TEST(ExpiryWarningTest, TheExpiredTestCertificate) {
  core::Config config = BaseConfig();
  config.tls.sni[0].pairs = {core::CertKeyPair{Pki().expired_cert, Pki().expired_key}};
  config.tls.sni[0].cert = Pki().expired_cert;
  config.tls.sni[0].key = Pki().expired_key;
  std::shared_ptr<const TlsContext> context = MustBuild(config);
  ASSERT_NE(context, nullptr);
  const std::vector<CertInfo> certs = Describe(*context);
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_EQ(ExpiryWarning(certs[0], absl::Now()), "");
  EXPECT_THAT(ExpiryWarning(certs[1], absl::Now()),
              HasSubstr("tls.sni[0].cert (CN=expired.example.test,O=Ringmx Test): expired on "));
}

TEST(OpenSslRuntimeVersionTest, NamesOpenSsl) {
  EXPECT_TRUE(absl::StartsWith(OpenSslRuntimeVersion(), "OpenSSL 3")) << OpenSslRuntimeVersion();
}

}  // namespace
}  // namespace ringmx::tls
