// A throw-away PKI for TLS tests (unit and e2e), generated at test time with the OpenSSL API into
// a directory the caller owns (usually a testing::TempDir). Nothing here is read from the source
// tree, and nothing is fixed in time: validity is relative to the moment of generation.
//
// Hierarchy and files (all PEM; every name below is fixed, so tests may also build paths by hand):
//
//   Ringmx Test Root CA (RSA-2048, self-signed)                         root.pem
//   └─ Ringmx Test Intermediate CA (RSA-2048)                           intermediate.pem
//      ├─ mx.example.test (RSA-2048)                                    mx.pem, mx.key
//      │    SAN: mx.example.test, mail.example.test, other.example.test
//      │    mx.pem = leaf, intermediate; mx.fullchain-with-root.pem = leaf, intermediate, root
//      ├─ mx.example.test (ECDSA P-256), same SAN                       mx-ecdsa.pem, mx-ecdsa.key
//      ├─ sni.example.test (RSA-2048)                                   sni.pem, sni.key
//      │    SAN: sni.example.test, *.wild.example.test
//      └─ expired.example.test (RSA, same key as mx.key),               expired.pem, expired.key
//           valid from now-60d to now-1d
//   Ringmx Test Client CA (ECDSA P-256, self-signed; configure as tls.client_ca)   client-ca.pem
//   └─ client.example.test (ECDSA P-256, clientAuth)                    client.pem, client.key
//   Ringmx Test Foreign CA (ECDSA P-256, self-signed; trusted by nobody)           foreign-ca.pem
//   └─ foreign-client.example.test (ECDSA P-256, clientAuth)   foreign-client.pem,
//   foreign-client.key
//
// Chain files hold the leaf first, then the intermediate (client.pem and foreign-client.pem hold
// only their leaf). Every certificate other than `expired` is valid from now-1d to now+365d.
// Subjects are "CN=<name>,O=Ringmx Test" in RFC 2253 form (O first in the DER, so RFC 2253, which
// prints the last RDN first, starts with CN).
//
// Cost: four RSA-2048 key generations (a few hundred milliseconds); generate once per test binary
// (e.g. in SetUpTestSuite) and share it.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ringmx::testing {

struct TestPki {
  std::string dir;  // where the files are

  // CA certificates, one certificate per file.
  std::string root;          // root.pem
  std::string intermediate;  // intermediate.pem
  std::string client_ca;     // client-ca.pem
  std::string foreign_ca;    // foreign-ca.pem

  // Server chains (leaf, intermediate) and their keys.
  std::string mx_cert;                 // mx.pem
  std::string mx_key;                  // mx.key
  std::string mx_fullchain_with_root;  // mx.fullchain-with-root.pem (key: mx.key)
  std::string mx_ecdsa_cert;           // mx-ecdsa.pem
  std::string mx_ecdsa_key;            // mx-ecdsa.key
  std::string sni_cert;                // sni.pem
  std::string sni_key;                 // sni.key
  std::string expired_cert;            // expired.pem
  std::string expired_key;             // expired.key (the same key as mx.key)

  // Client certificates (leaf only) and their keys.
  std::string client_cert;          // client.pem, issued by client-ca.pem
  std::string client_key;           // client.key
  std::string foreign_client_cert;  // foreign-client.pem, issued by foreign-ca.pem
  std::string foreign_client_key;   // foreign-client.key

  // TLSA material: lower-case hex SHA-256 of each certificate's SubjectPublicKeyInfo
  // (TLSA 3 1 1 for leaves, 2 1 1 for the CAs).
  std::string mx_spki_sha256;
  std::string mx_ecdsa_spki_sha256;
  std::string sni_spki_sha256;
  std::string intermediate_spki_sha256;
  std::string root_spki_sha256;

  // Lower-case hex SHA-256 of the DER client certificates (what TlsFacts reports).
  std::string client_cert_sha256;
  std::string foreign_client_cert_sha256;

  // RFC 2253 subjects, as TlsFacts reports them.
  static constexpr const char* kClientSubject = "CN=client.example.test,O=Ringmx Test";
  static constexpr const char* kClientIssuer = "CN=Ringmx Test Client CA,O=Ringmx Test";
  static constexpr const char* kForeignClientSubject =
      "CN=foreign-client.example.test,O=Ringmx Test";
  static constexpr const char* kForeignClientIssuer = "CN=Ringmx Test Foreign CA,O=Ringmx Test";
};

// Empties OpenSSL's error queue into one "error:...; error:..." line ("" if empty). For tests
// that talk to OpenSSL directly.
std::string OpenSslErrors();

// Generates the whole PKI into `dir` (which must exist; files are overwritten). Errors carry the
// OpenSSL error queue (kInternal) or the file that could not be written.
absl::StatusOr<TestPki> CreateTestPki(const std::string& dir);

}  // namespace ringmx::testing
