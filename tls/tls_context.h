// The certificate store and the server SSL_CTXs (DESIGN.md section 5): one immutable object built
// from a Config, published inside the Snapshot, so a reload rotates certificates without a restart
// and live sessions keep the contexts they started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "core/config.h"
#include "core/ip.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace ringmx::tls {

// One configured certificate chain, for `ringmx tlsa` and the `certs` control command.
struct ChainInfo {
  std::string config_key;              // "tls.cert", "tls.sni[0].cert[1]"
  std::vector<std::string> names;      // SNI names it serves ("" entries: the default)
  std::string key_type;                // "RSA-2048", "EC-P256", ...
  std::vector<std::string> pem_chain;  // leaf first, as configured (root included if present)
  std::string not_after;               // leaf expiry, "YYYY-MM-DD"
  std::string tlsa_311;                // hex SHA-256 of the leaf's SubjectPublicKeyInfo
  std::string tlsa_211;                // hex SHA-256 of the last intermediate's (or root's) SPKI
};

// Immutable once built; safe to share between shards (SSL_CTX is reference counted and OpenSSL
// allows concurrent SSL_new on one context).
class TlsContext {
 public:
  // Loads every certificate and key of `config.tls`, checks each chain links, each key matches
  // its certificate, and builds one server SSL_CTX per TLS listener (min_tls, ciphers, client
  // certificate mode, SNI callback). For `[[policy.tls_floor]]` it also builds, per TLS listener,
  // one more SSL_CTX per distinct floor version that differs from the listener's min_tls: the
  // same certificates, SNI map, callbacks and client-certificate mode, only the minimum version
  // differs, and below TLS 1.2 also the security level (0, which OpenSSL 3 needs for TLS 1.0/1.1)
  // and the TLS 1.2 cipher list (SHA-1 CBC suites appended, as TLS 1.0/1.1 have no AEAD suite).
  // Those contexts are only ever handed to clients of their floor (ContextFor), so the laxness
  // never reaches anyone else. Errors: kInvalidArgument naming the config key and file.
  // An expired certificate is not an error: a warning with its date is appended to `warnings`.
  // Returns nullptr (OK) when no listener uses TLS.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Build(
      const core::Config& config, std::vector<std::string>* warnings);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // The server context for listener `index` (into config.listeners); nullptr if it has no TLS.
  SSL_CTX* listener_ctx(size_t index) const;
  // The server context for a connection from `client` on listener `index`: the context of the
  // first `[[policy.tls_floor]]` whose networks contain `client` (tls/tls_floor.h), else
  // listener_ctx(index). nullptr if the listener has no TLS.
  SSL_CTX* ContextFor(size_t index, const core::IpAddress& client) const;
  const std::vector<ChainInfo>& chains() const { return chains_; }

 private:
  TlsContext() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<ChainInfo> chains_;
};

}  // namespace ringmx::tls
