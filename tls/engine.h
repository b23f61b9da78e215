// The server side of one TLS session over memory BIOs (STYLE.md section 3). It never sees a file
// descriptor: net/ feeds it ciphertext from the socket and sends what it produces. Used for the
// handshake always, and for the record layer when the kernel has no TLS ULP.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "core/ip.h"
#include "core/tls_facts.h"
#include "tls/ktls_keys.h"
#include "tls/tls_context.h"

namespace ringmx::tls {

enum class Progress { kNeedInput, kEstablished };

// Shard-local. Holds a reference on its TlsContext for its whole life.
class Engine {
 public:
  // `listener_index` selects the listener's SSL_CTX; `client` is used in log lines.
  static absl::StatusOr<std::unique_ptr<Engine>> ForServer(
      std::shared_ptr<const TlsContext> context, size_t listener_index, bool implicit,
      const core::Endpoint& client);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Copies `bytes` (ciphertext from the peer) into the read BIO.
  void PutCiphertext(std::string_view bytes);

  // Advances the handshake. kNeedInput: send TakeCiphertext() (maybe empty) and wait for more
  // bytes. kEstablished: the handshake is done (send TakeCiphertext() too); Facts() is valid.
  // An error (bad handshake, version below min_tls, unknown SNI on an sni_strict listener,
  // required client certificate missing or untrusted) has a message naming the client and the
  // reason (e.g. the version the client offered); TakeCiphertext() then holds the alert to send.
  absl::StatusOr<Progress> Handshake();

  // After kEstablished: decrypts everything available into `plaintext` (appended). Returns OK
  // with nothing appended when more ciphertext is needed. peer_closed() becomes true on a
  // close_notify. Errors: a bad record or an alert from the peer.
  absl::Status Decrypt(std::string& plaintext);

  // After kEstablished: encrypts `plaintext`; the records are then in TakeCiphertext().
  absl::Status Encrypt(std::string_view plaintext);

  // Ciphertext the peer must be sent next (handshake messages, records, alerts); empties it.
  std::string TakeCiphertext();

  // After kEstablished: queues our close_notify (RFC 8446 §6.1) in TakeCiphertext(), e.g. after
  // the 221 reply to QUIT. Does nothing before the handshake is done or after it failed.
  void SendCloseNotify();

  bool peer_closed() const { return peer_closed_; }

  // Valid after kEstablished.
  const core::TlsFacts& facts() const { return facts_; }

  // After kEstablished, before any Encrypt/Decrypt beyond the handshake: the traffic keys,
  // IVs and record sequence numbers to hand to the kernel (TLS_TX/TLS_RX), plus any application
  // bytes already decrypted that arrived with the client's Finished. kUnimplemented for a cipher
  // the kernel cannot take.
  absl::StatusOr<KtlsHandoff> ExportForKernel();

 private:
  Engine() = default;
  void FillFacts();
  absl::Status HandshakeError(int ssl_error);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  core::TlsFacts facts_;
  bool peer_closed_ = false;
};

}  // namespace ringmx::tls
