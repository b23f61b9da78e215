// Kernel TLS (TLS ULP): the start-up probe and the installation of traffic keys on a socket.
// The machines this is developed on have no TLS ULP, so connections stay on OpenSSL's record layer
// (tls::Engine); the key material itself is proven right by tests/tls (decrypting live records
// with the exported keys), and tests/net/ktls_test.cc runs the real installation where the kernel
// has it and reports itself skipped where it does not.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "tls/ktls_keys.h"

namespace ringmx::net {

struct KernelTlsSupport {
  bool available = false;
  // The kernel takes new keys on a socket that has them (Linux 6.14+), which following a
  // TLS 1.3 KeyUpdate needs. Without it only TLS 1.2 sessions can move to the kernel.
  bool rekey = false;
  std::string reason;  // why not, for the start-up log line ("TCP_ULP tls: No such file...")
};

// Asks the kernel once whether the "tls" ULP can be attached to a TCP socket and, if so, whether
// it can rekey (by installing keys twice on a loopback connection of its own).
KernelTlsSupport ProbeKernelTls();

// TLS record content types (RFC 8446 §5.1) as the kernel reports and takes them in the
// TLS_GET_RECORD_TYPE / TLS_SET_RECORD_TYPE control messages.
inline constexpr uint8_t kTlsRecordAlert = 21;
inline constexpr uint8_t kTlsRecordHandshake = 22;
inline constexpr uint8_t kTlsRecordData = 23;

// Attaches TLS ULP to the connected socket `fd` and installs both directions. After OK the
// socket carries plaintext for data records. Errors name the step (kUnimplemented when the
// kernel lacks the ULP or the cipher). `*tx_installed` (if given) says whether the transmit key
// took: until it does the socket is still plain TCP and the caller may go on in userspace; after
// it, a failure leaves the connection unusable.
absl::Status InstallKernelTls(int fd, const tls::KtlsHandoff& keys, bool* tx_installed = nullptr);

// Installs the new key of one direction after a TLS 1.3 KeyUpdate (the kernel takes a second
// TLS_TX/TLS_RX only when it supports rekeying, Linux 6.14 and later; older kernels refuse and
// the caller must close the connection).
absl::Status UpdateKernelTlsKey(int fd, const tls::KtlsHandoff& keys, tls::KtlsSide side);

// Sends one record of `record_type` (alert, handshake) holding `bytes` through the kernel's TLS
// layer without blocking. Call it only when no other send on `fd` is in flight, so records stay in
// order. OK when the whole record was taken; an error otherwise (EAGAIN: the socket buffer is
// full).
absl::Status SendKernelTlsRecord(int fd, uint8_t record_type, std::string_view bytes);

}  // namespace ringmx::net
