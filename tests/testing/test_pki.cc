#include "tests/testing/test_pki.h"

#include <stdio.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/status_macros.h"

namespace ringmx::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

constexpr long kDay = 24 * 60 * 60;

absl::Status Fail(const std::string& what) {
  return absl::InternalError(absl::StrCat("test PKI: ", what, ": ", OpenSslErrors()));
}

absl::StatusOr<Key> RsaKey() {
  Key key(EVP_RSA_gen(2048));
  if (!key) return Fail("RSA key generation");
  return key;
}

absl::StatusOr<Key> EcKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Fail("EC key generation");
  return key;
}

enum class Kind { kCa, kServer, kClient };

struct CertSpec {
  std::string cn;
  Kind kind = Kind::kServer;
  std::vector<std::string> dns;  // subjectAltName DNS entries
  long serial = 1;
  long not_before_s = -kDay;  // relative to now
  long not_after_s = 365 * kDay;
};

absl::Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) return Fail(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Fail("X509_add_ext");
  return absl::OkStatus();
}

// Issues a certificate for `key` signed by `issuer_key`; `issuer` nullptr means self-signed.
absl::StatusOr<Cert> Issue(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                           EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  if (!cert) return Fail("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_s);
  X509_NAME* name = X509_get_subject_name(cert.get());
  auto add_entry = [&](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                      0) == 1;
  };
  if (!add_entry("O", "Ringmx Test") || !add_entry("CN", spec.cn)) return Fail("subject name");
  if (X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name) !=
      1) {
    return Fail("issuer name");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return Fail("X509_set_pubkey");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  absl::Status s;
  switch (spec.kind) {
    case Kind::kCa:
      s = AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
      if (s.ok()) s = AddExt(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case Kind::kServer:
    case Kind::kClient: {
      const bool rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
      s = AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
      if (s.ok()) {
        s = AddExt(cert.get(), &ctx, NID_key_usage,
                   rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature");
      }
      if (s.ok()) {
        s = AddExt(cert.get(), &ctx, NID_ext_key_usage,
                   spec.kind == Kind::kServer ? "serverAuth" : "clientAuth");
      }
      break;
    }
  }
  if (s.ok()) s = AddExt(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (s.ok()) s = AddExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (s.ok() && !spec.dns.empty()) {
    std::vector<std::string> entries;
    for (const std::string& d : spec.dns) entries.push_back("DNS:" + d);
    s = AddExt(cert.get(), &ctx, NID_subject_alt_name, absl::StrJoin(entries, ","));
  }
  if (!s.ok()) return s;
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) return Fail("X509_sign " + spec.cn);
  return cert;
}

absl::Status WritePem(const std::string& path, const std::vector<X509*>& certs, EVP_PKEY* key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  if (bio == nullptr) return Fail("cannot write " + path);
  bool ok = true;
  for (X509* c : certs) ok = ok && PEM_write_bio_X509(bio, c) == 1;
  if (key != nullptr) {
    ok = ok && PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  }
  ok = BIO_free(bio) == 1 && ok;
  if (!ok) return Fail("writing " + path);
  return absl::OkStatus();
}

std::string Hex(const unsigned char* data, size_t len) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(data), len));
}

absl::StatusOr<std::string> SpkiSha256(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return Fail("i2d_X509_PUBKEY");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  const int ok = EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return Fail("EVP_Digest");
  return Hex(md, md_len);
}

absl::StatusOr<std::string> CertSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) return Fail("X509_digest");
  return Hex(md, md_len);
}

}  // namespace

std::string OpenSslErrors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::StatusOr<TestPki> CreateTestPki(const std::string& dir) {
  TestPki pki;
  pki.dir = dir;
  auto path = [&](const char* name) { return dir + "/" + name; };

  RINGMX_ASSIGN_OR_RETURN(Key root_key, RsaKey());
  RINGMX_ASSIGN_OR_RETURN(Key intermediate_key, RsaKey());
  RINGMX_ASSIGN_OR_RETURN(Key mx_key, RsaKey());
  RINGMX_ASSIGN_OR_RETURN(Key sni_key, RsaKey());
  RINGMX_ASSIGN_OR_RETURN(Key mx_ecdsa_key, EcKey());
  RINGMX_ASSIGN_OR_RETURN(Key client_ca_key, EcKey());
  RINGMX_ASSIGN_OR_RETURN(Key foreign_ca_key, EcKey());
  RINGMX_ASSIGN_OR_RETURN(Key client_key, EcKey());

  const std::vector<std::string> mx_names = {"mx.example.test", "mail.example.test",
                                             "other.example.test"};
  RINGMX_ASSIGN_OR_RETURN(Cert root,
                          Issue({"Ringmx Test Root CA", Kind::kCa, {}, 1, -kDay, 3650 * kDay},
                                root_key.get(), nullptr, root_key.get()));
  RINGMX_ASSIGN_OR_RETURN(
      Cert intermediate,
      Issue({"Ringmx Test Intermediate CA", Kind::kCa, {}, 2, -kDay, 1825 * kDay},
            intermediate_key.get(), root.get(), root_key.get()));
  RINGMX_ASSIGN_OR_RETURN(Cert mx, Issue({"mx.example.test", Kind::kServer, mx_names, 10},
                                         mx_key.get(), intermediate.get(), intermediate_key.get()));
  RINGMX_ASSIGN_OR_RETURN(
      Cert mx_ecdsa, Issue({"mx.example.test", Kind::kServer, mx_names, 11}, mx_ecdsa_key.get(),
                           intermediate.get(), intermediate_key.get()));
  RINGMX_ASSIGN_OR_RETURN(
      Cert sni,
      Issue({"sni.example.test", Kind::kServer, {"sni.example.test", "*.wild.example.test"}, 12},
            sni_key.get(), intermediate.get(), intermediate_key.get()));
  RINGMX_ASSIGN_OR_RETURN(
      Cert expired,
      Issue(
          {"expired.example.test", Kind::kServer, {"expired.example.test"}, 13, -60 * kDay, -kDay},
          mx_key.get(), intermediate.get(), intermediate_key.get()));
  RINGMX_ASSIGN_OR_RETURN(Cert client_ca,
                          Issue({"Ringmx Test Client CA", Kind::kCa, {}, 20, -kDay, 3650 * kDay},
                                client_ca_key.get(), nullptr, client_ca_key.get()));
  RINGMX_ASSIGN_OR_RETURN(Cert client,
                          Issue({"client.example.test", Kind::kClient, {"client.example.test"}, 21},
                                client_key.get(), client_ca.get(), client_ca_key.get()));
  RINGMX_ASSIGN_OR_RETURN(Cert foreign_ca,
                          Issue({"Ringmx Test Foreign CA", Kind::kCa, {}, 30, -kDay, 3650 * kDay},
                                foreign_ca_key.get(), nullptr, foreign_ca_key.get()));
  RINGMX_ASSIGN_OR_RETURN(
      Cert foreign_client,
      Issue({"foreign-client.example.test", Kind::kClient, {"foreign-client.example.test"}, 31},
            client_key.get(), foreign_ca.get(), foreign_ca_key.get()));

  pki.root = path("root.pem");
  pki.intermediate = path("intermediate.pem");
  pki.client_ca = path("client-ca.pem");
  pki.foreign_ca = path("foreign-ca.pem");
  pki.mx_cert = path("mx.pem");
  pki.mx_key = path("mx.key");
  pki.mx_fullchain_with_root = path("mx.fullchain-with-root.pem");
  pki.mx_ecdsa_cert = path("mx-ecdsa.pem");
  pki.mx_ecdsa_key = path("mx-ecdsa.key");
  pki.sni_cert = path("sni.pem");
  pki.sni_key = path("sni.key");
  pki.expired_cert = path("expired.pem");
  pki.expired_key = path("expired.key");
  pki.client_cert = path("client.pem");
  pki.client_key = path("client.key");
  pki.foreign_client_cert = path("foreign-client.pem");
  pki.foreign_client_key = path("foreign-client.key");

  RINGMX_RETURN_IF_ERROR(WritePem(pki.root, {root.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.intermediate, {intermediate.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.client_ca, {client_ca.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.foreign_ca, {foreign_ca.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.mx_cert, {mx.get(), intermediate.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.mx_key, {}, mx_key.get()));
  RINGMX_RETURN_IF_ERROR(
      WritePem(pki.mx_fullchain_with_root, {mx.get(), intermediate.get(), root.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(
      WritePem(pki.mx_ecdsa_cert, {mx_ecdsa.get(), intermediate.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.mx_ecdsa_key, {}, mx_ecdsa_key.get()));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.sni_cert, {sni.get(), intermediate.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.sni_key, {}, sni_key.get()));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.expired_cert, {expired.get(), intermediate.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.expired_key, {}, mx_key.get()));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.client_cert, {client.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.client_key, {}, client_key.get()));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.foreign_client_cert, {foreign_client.get()}, nullptr));
  RINGMX_RETURN_IF_ERROR(WritePem(pki.foreign_client_key, {}, client_key.get()));

  RINGMX_ASSIGN_OR_RETURN(pki.mx_spki_sha256, SpkiSha256(mx.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.mx_ecdsa_spki_sha256, SpkiSha256(mx_ecdsa.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.sni_spki_sha256, SpkiSha256(sni.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.intermediate_spki_sha256, SpkiSha256(intermediate.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.root_spki_sha256, SpkiSha256(root.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.client_cert_sha256, CertSha256(client.get()));
  RINGMX_ASSIGN_OR_RETURN(pki.foreign_client_cert_sha256, CertSha256(foreign_client.get()));
  return pki;
}

}  // namespace ringmx::testing
