// The replies of the control commands `version` and `certs` (docs/operations.md): JSON objects
// built from what the server runs with. The builders take their inputs as arguments so that
// tests can call them without a server.
#pragma once

#include <string>

#include "absl/time/time.h"

#include "net/ktls.h"
#include "net/runtime.h"

namespace ringmx::net {

// What `version` reports; BuildFacts() fills it from the build and the running process.
struct VersionFacts {
  std::string version;      // project version, "0.1.0"
  std::string git_commit;   // "1a2b3c4d5e6f", "...-dirty", or "unknown"
  std::string build_type;   // CMAKE_BUILD_TYPE, "Release"
  std::string compiler;     // "GNU 12.2.0"
  std::string openssl;      // runtime: OpenSSL_version(OPENSSL_VERSION)
  std::string liburing;     // the version built against (pkg-config), "2.3"
  std::string liburing_so;  // runtime: the file of the loaded library, "liburing.so.2.3"
  KernelTlsSupport kernel_tls;
  bool ktls_configured = true;  // tls.ktls of the running config

  // From the build and this process (probes the kernel for TLS ULP; takes a few system calls).
  static VersionFacts ForThisProcess(bool ktls_configured);
};

// {"version":"0.1.0","git_commit":"...","build_type":"Release","compiler":"GNU 12.2.0",
//  "openssl":"OpenSSL 3.0.19 ...","liburing":"2.3","liburing_library":"liburing.so.2.3",
//  "kernel_tls":{"available":true,"rekey":false,"reason":"","enabled":true}}
std::string VersionJson(const VersionFacts& facts);

// {"generation":N,"now":"...","warnings":[...],
//  "listeners":[{"name","address","tls","min_tls","sni_strict","client_certs","certificates":[
//     config keys]}],
//  "certificates":[{"config_key","names","subject","sans","issuer","not_before","not_after",
//     "days_left","sha256_fingerprint","chain_length","key_type","key_bits"[,"key_curve"]
//     [,"warning"]}]}
// From the TLS context of `runtime` (what is being served). `now` decides the warnings (expired,
// or expiring within 14 days).
std::string CertsJson(const Runtime& runtime, absl::Time now);

}  // namespace ringmx::net
