// The client side used by `ringmx tlsa --check`: a TLS handshake over memory BIOs that records the
// certificate chain a server serves, and the TLSA digests (RFC 6698) of certificates.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ringmx::tls {

// Hex SHA-256 of the SubjectPublicKeyInfo of a DER certificate (TLSA selector 1, matching type 1).
absl::StatusOr<std::string> SpkiSha256Hex(std::string_view der);

// One client handshake. Like Engine, it never sees a socket: the caller moves the bytes.
// Not thread-safe; one per check.
class ChainProbe {
 public:
  // `sni` empty: no server_name extension. The server is not authenticated (the point is to
  // see what it serves, whatever it is).
  static absl::StatusOr<std::unique_ptr<ChainProbe>> Create(const std::string& sni);
  ~ChainProbe();

  void PutCiphertext(std::string_view bytes);
  // true once the handshake is complete; false: send TakeCiphertext() and read more.
  absl::StatusOr<bool> Handshake();
  std::string TakeCiphertext();
  // After the handshake: the served chain, leaf first, DER.
  std::vector<std::string> ServedChainDer() const;
  std::string version() const;

 private:
  ChainProbe() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringmx::tls
