// Key material for kernel TLS (linux/tls.h crypto_info), as plain bytes so it can be tested
// without a kernel that has TLS ULP: a test decrypts real records with these keys independently.
#pragma once

#include <stdint.h>

#include <string>

#include "absl/status/status.h"

namespace ringmx::tls {

enum class KtlsCipher { kAes128Gcm, kAes256Gcm, kChaCha20Poly1305 };

// One direction. For AES-GCM under TLS 1.2 `iv` is the 4-byte salt followed by the 8-byte
// explicit-nonce seed, as linux/tls.h splits them (salt + iv); for TLS 1.3 and ChaCha20 it is the
// 12-byte static IV. `rec_seq` is the sequence number of the next record in that direction.
// ringmx seeds the TLS 1.2 GCM explicit nonce with `rec_seq` (big-endian): unique under the key,
// which is all RFC 5288 §3 asks; the kernel sends it in each TX record and increments it. For RX
// the kernel reads the explicit nonce from each record, so those 8 bytes do not matter there.
struct KtlsDirection {
  std::string key;  // 16 or 32 bytes
  std::string iv;   // 12 bytes (salt included)
  uint64_t rec_seq = 0;
};

struct KtlsHandoff {
  uint16_t tls_version = 0;  // 0x0303 or 0x0304
  KtlsCipher cipher = KtlsCipher::kAes256Gcm;
  KtlsDirection tx;  // server -> client
  KtlsDirection rx;  // client -> server
  // Application bytes already decrypted by OpenSSL (sent with or right after the client's
  // Finished); the session must get them before anything read from the kernel.
  std::string pending_plaintext;
  // TLS 1.3 only: the current application traffic secrets and the suite's hash name
  // ("SHA256", "SHA384"), kept so that a KeyUpdate can be followed once OpenSSL is out of the
  // picture (AdvanceTrafficKeys). Empty for TLS 1.2, which has no KeyUpdate.
  std::string digest;
  std::string tx_secret;
  std::string rx_secret;
};

enum class KtlsSide { kTx, kRx };

// RFC 8446 §7.2: after a KeyUpdate in direction `side`, replaces that direction's traffic secret
// with HKDF-Expand-Label(secret, "traffic upd", "", Hash.length) and its key and IV with the ones
// derived from the new secret; the record sequence number restarts at 0 (§5.3). kFailedPrecondition
// for a TLS 1.2 hand-off; kInternal if OpenSSL's KDF fails (then nothing is changed).
absl::Status AdvanceTrafficKeys(KtlsHandoff& keys, KtlsSide side);

}  // namespace ringmx::tls
