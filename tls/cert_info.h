// What the `certs` control command shows of a served certificate chain (docs/operations.md), read
// from the chain as it was loaded into the live TlsContext (ChainInfo::pem_chain), not from disk
// again; and the runtime OpenSSL version for `version`.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "tls/tls_context.h"

namespace ringmx::tls {

// The leaf of one configured chain, described. Stack-local value.
struct CertInfo {
  std::string config_key;          // "tls.cert", "tls.sni[0].cert"
  std::vector<std::string> names;  // SNI names it is served for; empty: the default certificate
  std::string subject;             // RFC 2253, "CN=mx.example.test,O=Ringmx Test"
  std::string issuer;              // RFC 2253
  // subjectAltName entries, "DNS:mx.example.test", "IP:192.0.2.1", "email:a@b"
  std::vector<std::string> sans;
  absl::Time not_before;
  absl::Time not_after;
  std::string sha256_fingerprint;  // lower-case hex of the DER leaf, no separators (64 digits)
  size_t chain_length = 0;         // certificates served: leaf + intermediates (+ root if given)
  std::string key_type;            // "RSA", "EC", "Ed25519", "Ed448"
  int key_bits = 0;                // 2048, 256, ...
  std::string key_curve;           // EC only: "prime256v1", ...
};

// Parses `chain.pem_chain` (leaf first). kInvalidArgument if there is no parsable leaf.
absl::StatusOr<CertInfo> DescribeChain(const ChainInfo& chain);

// "" when `info`'s leaf is valid for more than `soon` after `now`; otherwise a one-line warning:
//   "tls.cert (CN=...): expires in 5 days, on 2026-12-12 11:00:00 UTC"
//   "tls.cert (CN=...): expired on 2026-12-06 11:00:00 UTC"
//   "tls.cert (CN=...): not valid before 2027-01-01 00:00:00 UTC"
std::string ExpiryWarning(const CertInfo& info, absl::Time now,
                          absl::Duration soon = absl::Hours(14 * 24));

// OpenSSL_version(OPENSSL_VERSION) of the library the process runs with ("OpenSSL 3.0.19 ...").
std::string OpenSslRuntimeVersion();

}  // namespace ringmx::tls
