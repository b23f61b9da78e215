#include "tests/testing/test_pki.h"

#include <stdio.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "tests/testing/temp_dir.h"

namespace ringmx::testing {
namespace {

std::vector<X509*> ReadCerts(const std::string& path) {
  std::vector<X509*> out;
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return out;
  while (X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr)) out.push_back(c);
  fclose(f);
  ERR_clear_error();
  return out;
}

void FreeCerts(std::vector<X509*>& certs) {
  for (X509* c : certs) X509_free(c);
  certs.clear();
}

// Verifies the chain in `chain_file` against `trust_file`; returns the X509 verify error.
int Verify(const std::string& chain_file, const std::string& trust_file) {
  std::vector<X509*> chain = ReadCerts(chain_file);
  std::vector<X509*> trust = ReadCerts(trust_file);
  X509_STORE* store = X509_STORE_new();
  for (X509* c : trust) X509_STORE_add_cert(store, c);
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i]);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain.empty() ? nullptr : chain[0], untrusted);
  const int ok = X509_verify_cert(ctx);
  const int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  FreeCerts(chain);
  FreeCerts(trust);
  return err;
}

TEST(TestPkiTest, ChainsVerifyAgainstTheirRoots) {
  TempDir dir;
  absl::StatusOr<TestPki> pki = CreateTestPki(dir.path());
  ASSERT_TRUE(pki.ok()) << pki.status();

  EXPECT_EQ(Verify(pki->mx_cert, pki->root), X509_V_OK);
  EXPECT_EQ(Verify(pki->mx_fullchain_with_root, pki->root), X509_V_OK);
  EXPECT_EQ(Verify(pki->mx_ecdsa_cert, pki->root), X509_V_OK);
  EXPECT_EQ(Verify(pki->sni_cert, pki->root), X509_V_OK);
  EXPECT_EQ(Verify(pki->expired_cert, pki->root), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(Verify(pki->client_cert, pki->client_ca), X509_V_OK);
  EXPECT_NE(Verify(pki->foreign_client_cert, pki->client_ca), X509_V_OK);
  EXPECT_EQ(Verify(pki->foreign_client_cert, pki->foreign_ca), X509_V_OK);

  std::vector<X509*> chain = ReadCerts(pki->mx_cert);
  EXPECT_EQ(chain.size(), 2u);
  FreeCerts(chain);
  chain = ReadCerts(pki->mx_fullchain_with_root);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(X509_check_host(chain[0], "other.example.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(chain[0], "mail.example.test", 0, 0, nullptr), 1);
  FreeCerts(chain);
  chain = ReadCerts(pki->sni_cert);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(X509_check_host(chain[0], "x.wild.example.test", 0, 0, nullptr), 1);
  FreeCerts(chain);

  EXPECT_EQ(pki->mx_spki_sha256.size(), 64u);
  EXPECT_NE(pki->mx_spki_sha256, pki->mx_ecdsa_spki_sha256);
  EXPECT_NE(pki->mx_spki_sha256, pki->sni_spki_sha256);
  EXPECT_EQ(pki->client_cert_sha256.size(), 64u);
}

}  // namespace
}  // namespace ringmx::testing
