#include "tls/internal/ktls_export.h"

#include <stdint.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

namespace ringmx::tls::internal {
namespace {

constexpr size_t kAeadIvLen = 12;        // TLS 1.3, and TLS 1.2 ChaCha20-Poly1305 (RFC 7905)
constexpr size_t kGcmFixedIvLen = 4;     // TLS 1.2 AES-GCM salt (RFC 5288 §3)
constexpr size_t kGcmExplicitIvLen = 8;  // TLS 1.2 AES-GCM per-record explicit nonce

// Runs the KDF `name` with `params` into `out_len` bytes.
absl::StatusOr<std::string> Derive(const char* name, OSSL_PARAM* params, size_t out_len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, name, nullptr);
  EVP_KDF_CTX* ctx = kdf != nullptr ? EVP_KDF_CTX_new(kdf) : nullptr;
  std::string out(out_len, '\0');
  const bool ok =
      ctx != nullptr &&
      EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), out_len, params) == 1;
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::InternalError(absl::StrCat("kTLS key derivation (", name, "): ", DrainErrors()));
  }
  return out;
}

// RFC 8446 §7.1 HKDF-Expand-Label(secret, label, "", length), with the label built by hand and
// HKDF in expand-only mode (the traffic secret is already a PRK).
absl::StatusOr<std::string> ExpandLabel(const EVP_MD* md, const std::string& secret,
                                        const std::string& label, size_t length) {
  const std::string full_label = "tls13 " + label;
  std::string info;
  info.push_back(static_cast<char>(length >> 8));
  info.push_back(static_cast<char>(length & 0xff));
  info.push_back(static_cast<char>(full_label.size()));
  info += full_label;
  info.push_back(0);  // empty context
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                       const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  return Derive(OSSL_KDF_NAME_HKDF, params, length);
}

// RFC 5246 §6.3: key_block = PRF(master_secret, "key expansion", server_random + client_random).
absl::StatusOr<std::string> KeyBlock(const EVP_MD* md, SSL* ssl, size_t length) {
  unsigned char master[SSL_MAX_MASTER_KEY_LENGTH];
  const size_t master_len =
      SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof(master));
  std::string seed = "key expansion";
  unsigned char random[SSL3_RANDOM_SIZE];
  size_t n = SSL_get_server_random(ssl, random, sizeof(random));
  seed.append(reinterpret_cast<const char*>(random), n);
  n = SSL_get_client_random(ssl, random, sizeof(random));
  seed.append(reinterpret_cast<const char*>(random), n);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                       const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, master_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed.data(), seed.size()),
      OSSL_PARAM_construct_end(),
  };
  absl::StatusOr<std::string> block = Derive(OSSL_KDF_NAME_TLS1_PRF, params, length);
  OPENSSL_cleanse(master, sizeof(master));
  return block;
}

std::string BigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

}  // namespace

absl::StatusOr<KtlsHandoff> ExportKeys(SSL* ssl, const SessionState& state) {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher == nullptr) return absl::FailedPreconditionError("kTLS export: no cipher");
  KtlsHandoff h;
  size_t key_len = 0;
  switch (SSL_CIPHER_get_cipher_nid(cipher)) {
    case NID_aes_128_gcm:
      h.cipher = KtlsCipher::kAes128Gcm;
      key_len = 16;
      break;
    case NID_aes_256_gcm:
      h.cipher = KtlsCipher::kAes256Gcm;
      key_len = 32;
      break;
    case NID_chacha20_poly1305:
      h.cipher = KtlsCipher::kChaCha20Poly1305;
      key_len = 32;
      break;
    default:
      return absl::UnimplementedError(absl::StrCat(
          "kTLS export: cipher ", SSL_CIPHER_get_name(cipher), " cannot be handed to the kernel"));
  }
  const EVP_MD* md = SSL_CIPHER_get_handshake_digest(cipher);
  if (md == nullptr) return absl::InternalError("kTLS export: no digest for the cipher");
  const int version = SSL_version(ssl);

  if (version == TLS1_3_VERSION) {
    if (state.key_update_seen) {
      return absl::FailedPreconditionError(
          "kTLS export: a KeyUpdate happened; the first traffic secrets are stale");
    }
    if (state.client_traffic_secret.empty() || state.server_traffic_secret.empty()) {
      return absl::InternalError("kTLS export: the TLS 1.3 traffic secrets were not captured");
    }
    h.tls_version = TLS1_3_VERSION;
    // RFC 8446 §7.3: [sender]_write_key / _iv from [sender]_application_traffic_secret_0.
    absl::StatusOr<std::string> v = ExpandLabel(md, state.server_traffic_secret, "key", key_len);
    if (!v.ok()) return v.status();
    h.tx.key = std::move(*v);
    v = ExpandLabel(md, state.server_traffic_secret, "iv", kAeadIvLen);
    if (!v.ok()) return v.status();
    h.tx.iv = std::move(*v);
    v = ExpandLabel(md, state.client_traffic_secret, "key", key_len);
    if (!v.ok()) return v.status();
    h.rx.key = std::move(*v);
    v = ExpandLabel(md, state.client_traffic_secret, "iv", kAeadIvLen);
    if (!v.ok()) return v.status();
    h.rx.iv = std::move(*v);
    // Application keys start at 0 in each direction (RFC 8446 §5.3). No NewSessionTicket is
    // sent (num_tickets = 0); records that passed through OpenSSL since are counted.
    h.tx.rec_seq = state.records_out;
    h.rx.rec_seq = state.records_in;
    h.digest = EVP_MD_get0_name(md);
    h.tx_secret = state.server_traffic_secret;
    h.rx_secret = state.client_traffic_secret;
    return h;
  }

  if (version == TLS1_2_VERSION) {
    h.tls_version = TLS1_2_VERSION;
    const bool gcm = h.cipher != KtlsCipher::kChaCha20Poly1305;
    const size_t fixed_iv_len = gcm ? kGcmFixedIvLen : kAeadIvLen;
    // AEAD suites have no MAC keys: client_key, server_key, client_iv, server_iv.
    absl::StatusOr<std::string> block = KeyBlock(md, ssl, 2 * key_len + 2 * fixed_iv_len);
    if (!block.ok()) return block.status();
    h.rx.key = block->substr(0, key_len);
    h.tx.key = block->substr(key_len, key_len);
    h.rx.iv = block->substr(2 * key_len, fixed_iv_len);
    h.tx.iv = block->substr(2 * key_len + fixed_iv_len, fixed_iv_len);
    OPENSSL_cleanse(block->data(), block->size());
    // Each direction's Finished was record 0 under these keys.
    h.tx.rec_seq = 1 + state.records_out;
    h.rx.rec_seq = 1 + state.records_in;
    if (gcm) {
      // linux/tls.h splits the 12-byte GCM nonce into salt (the fixed IV) and an 8-byte explicit
      // part that the kernel sends in each record and increments. We seed it with the record
      // sequence number, so every nonce is unique under the key (RFC 5288 §3 lets the sender
      // choose; OpenSSL started its own count at a random point, far from these small values).
      // For RX the kernel reads the explicit nonce from each record; we fill it the same way.
      h.tx.iv += BigEndian64(h.tx.rec_seq);
      h.rx.iv += BigEndian64(h.rx.rec_seq);
      static_assert(kGcmFixedIvLen + kGcmExplicitIvLen == kAeadIvLen);
    }
    return h;
  }
  return absl::UnimplementedError(
      absl::StrCat("kTLS export: ", SSL_get_version(ssl), " cannot be handed to the kernel"));
}

}  // namespace ringmx::tls::internal

namespace ringmx::tls {

absl::Status AdvanceTrafficKeys(KtlsHandoff& keys, KtlsSide side) {
  if (keys.tls_version != TLS1_3_VERSION || keys.digest.empty()) {
    return absl::FailedPreconditionError("KeyUpdate exists only in TLS 1.3");
  }
  EVP_MD* md = EVP_MD_fetch(nullptr, keys.digest.c_str(), nullptr);
  if (md == nullptr) {
    return absl::InternalError(
        absl::StrCat("KeyUpdate: no digest ", keys.digest, ": ", internal::DrainErrors()));
  }
  std::string& secret = side == KtlsSide::kTx ? keys.tx_secret : keys.rx_secret;
  KtlsDirection& direction = side == KtlsSide::kTx ? keys.tx : keys.rx;
  absl::StatusOr<std::string> next =
      internal::ExpandLabel(md, secret, "traffic upd", static_cast<size_t>(EVP_MD_get_size(md)));
  absl::StatusOr<std::string> key;
  absl::StatusOr<std::string> iv;
  if (next.ok()) key = internal::ExpandLabel(md, *next, "key", direction.key.size());
  if (next.ok() && key.ok()) iv = internal::ExpandLabel(md, *next, "iv", internal::kAeadIvLen);
  EVP_MD_free(md);
  if (!next.ok()) return next.status();
  if (!key.ok()) return key.status();
  if (!iv.ok()) return iv.status();
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(direction.key.data(), direction.key.size());
  secret = std::move(*next);
  direction.key = std::move(*key);
  direction.iv = std::move(*iv);
  direction.rec_seq = 0;
  return absl::OkStatus();
}

}  // namespace ringmx::tls
