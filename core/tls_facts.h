// What is known about a connection's TLS session once the handshake is done. Produced by tls/,
// carried by net/ into policy::ConnectionFacts, read by policy/ and smtp/ (Received header,
// envelope JSON, log line). A plain value, so smtp/ and policy/ never see OpenSSL. The same value
// describes an outbound delivery connection (tls::Engine::ForClient), where ringmx is the client:
// then `sni` is the name ringmx sent and `server_cert` describes the hop's certificate.
#pragma once

#include <string>

namespace ringmx::core {

enum class ClientCertResult {
  kNone,         // the client presented no certificate (or none was requested)
  kVerified,     // chained to tls.client_ca and valid
  kNotVerified,  // presented but did not verify (untrusted, expired, ...): see verify_error
};

struct ClientCertFacts {
  ClientCertResult result = ClientCertResult::kNone;
  std::string subject;             // RFC 2253 form, e.g. "CN=client.example.test,O=Example"
  std::string issuer;              // RFC 2253 form
  std::string subject_cn;          // commonName of the subject, "" if none
  std::string issuer_cn;           // commonName of the issuer, "" if none
  std::string sha256_fingerprint;  // lower-case hex, no separators (64 characters)
  std::string verify_error;        // X509_verify_cert_error_string text; "" when verified
};

// The next hop's certificate, seen by ringmx as the client of an outbound delivery.
struct ServerCertFacts {
  bool presented = false;  // false only before a handshake (TLS servers always send one)
  // The chain ended at the route's tls_ca and the leaf holds tls_name (tls = "verify"). Always
  // false for tls = "opportunistic", which loads no trust anchors: `verify_error` then says why
  // the certificate is untrusted ("unable to get local issuer certificate", ...).
  bool verified = false;
  std::string subject;             // RFC 2253 form of the leaf's subject
  std::string issuer;              // RFC 2253 form
  std::string sha256_fingerprint;  // lower-case hex of the DER leaf, no separators
  std::string verify_error;        // X509_verify_cert_error_string text; "" when verified
};

struct TlsFacts {
  std::string version;          // "TLSv1.2", "TLSv1.3"
  std::string cipher;           // OpenSSL name, e.g. "TLS_AES_256_GCM_SHA384"
  int cipher_bits = 0;          // secret bits actually used (256)
  int cipher_alg_bits = 0;      // bits of the algorithm (256)
  std::string sni;              // server name the client asked for, "" if none
  bool sni_fallback = false;    // the SNI was absent or unknown and the default certificate served
  bool ktls = false;            // record layer in the kernel (false: OpenSSL in userspace)
  bool implicit = false;        // implicit TLS listener (RFC 8314), false for STARTTLS
  ClientCertFacts client_cert;  // server side (inbound) only
  ServerCertFacts server_cert;  // client side (outbound delivery) only
};

}  // namespace ringmx::core
