// The client SSL_CTXs of outbound delivery (docs/delivery.md, issue 12): one per `[[route]]` whose
// `tls` is not "none", and one for `[delivery] bounce_next_hop`. Built from a Config like the
// server contexts (tls/tls_context.h) and published with them in net::Runtime, so a reload swaps
// CA bundles and names atomically and a delivery in progress keeps the context it started with.
// Used by tls::Engine::ForClient.
#pragma once

#include <stddef.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "core/config.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace ringmx::tls {

// Immutable once built; safe to share between shards (SSL_CTX is reference counted and OpenSSL
// allows concurrent SSL_new on one context).
//
// Every context: TLS 1.2 or 1.3 (never below), ringmx's default cipher lists (ECDHE + AEAD for
// TLS 1.2), no renegotiation, no compression, no session resumption.
//   tls = "opportunistic" (and the bounce hop): SSL_VERIFY_NONE, no trust anchors: any
//     certificate is accepted (self-signed, expired, any name). The hop's certificate is still
//     described in the facts, as untrusted.
//   tls = "verify": SSL_VERIFY_PEER against the route's tls_ca only (not the system store), and
//     the leaf must hold tls_name (X509_VERIFY_PARAM_set1_host, no partial wildcards): the
//     handshake fails otherwise.
class ClientTlsContext {
 public:
  // Builds the contexts of every route of `config` and of its bounce hop (when that is an smtp:
  // hop). Returns nullptr (OK) when the config has no `[[route]]` (nothing is delivered).
  // Errors: kInvalidArgument naming the key and the file, e.g.
  //   route[2].tls_ca: /x/ca.pem: No such file or directory
  //   route[2].tls_ca: /x/ca.pem: cannot load CA certificates: error:...
  static absl::StatusOr<std::shared_ptr<const ClientTlsContext>> Build(const core::Config& config);
  ~ClientTlsContext();
  ClientTlsContext(const ClientTlsContext&) = delete;
  ClientTlsContext& operator=(const ClientTlsContext&) = delete;

  // The context for route `route_index` (into config.routes); nullptr when its tls is "none" or
  // the index is out of range. Only for the route's smtp: hops (lmtp: hops are always plain).
  SSL_CTX* ForRoute(size_t route_index) const;
  // The server name to send (SNI) to the hops of route `route_index`: its tls_name for
  // tls = "verify", "" otherwise (hops are addresses, and RFC 6066 §3 allows no IP literal).
  std::string_view ServerNameForRoute(size_t route_index) const;

  // The context for `[delivery] bounce_next_hop` (opportunistic); nullptr when that hop is an
  // lmtp: hop or not configured.
  SSL_CTX* ForBounce() const;

 private:
  ClientTlsContext() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringmx::tls
