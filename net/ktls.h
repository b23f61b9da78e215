// Kernel TLS (TLS ULP): the start-up probe and the installation of traffic keys on a socket.
// The machines this is developed on have no TLS ULP, so connections stay on OpenSSL's record layer
// (tls::Engine); the key material itself is proven right by tests/tls (decrypting live records
// with the exported keys), and tests/net/ktls_test.cc runs the real installation where the kernel
// has it and reports itself skipped where it does not.
#pragma once

#include <string>

#include "absl/status/status.h"

#include "tls/ktls_keys.h"

namespace ringmx::net {

struct KernelTlsSupport {
  bool available = false;
  std::string reason;  // why not, for the start-up log line ("TCP_ULP tls: No such file...")
};

// Asks the kernel once whether the "tls" ULP can be attached to a TCP socket.
KernelTlsSupport ProbeKernelTls();

// Attaches TLS ULP to the connected socket `fd` and installs both directions. After OK the
// socket carries plaintext for data records. Errors name the step (kUnimplemented when the
// kernel lacks the ULP or the cipher).
absl::Status InstallKernelTls(int fd, const tls::KtlsHandoff& keys);

}  // namespace ringmx::net
