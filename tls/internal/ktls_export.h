// Private to tls/: derives the kernel TLS key material (tls/ktls_keys.h) of an established SSL.
#pragma once

#include "absl/status/statusor.h"
#include <openssl/ssl.h>

#include "tls/internal/state.h"
#include "tls/ktls_keys.h"

namespace ringmx::tls::internal {

// The keys, IVs and next sequence numbers of both directions of `ssl` (server side, handshake
// complete, every buffered record already read). TLS 1.3 uses the traffic secrets the keylog
// callback put in `state`; TLS 1.2 the master secret. `pending_plaintext` is left empty.
// kUnimplemented for a version or cipher the kernel cannot take; kFailedPrecondition after a
// KeyUpdate (the first secrets are stale); kInternal when OpenSSL's KDF fails.
absl::StatusOr<KtlsHandoff> ExportKeys(SSL* ssl, const SessionState& state);

}  // namespace ringmx::tls::internal
