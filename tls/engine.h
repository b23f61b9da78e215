// One TLS session over memory BIOs (STYLE.md section 3): the server side of inbound connections,
// and the client side of outbound delivery (STARTTLS to a next hop). It never sees a file
// descriptor: net/ feeds it ciphertext from the socket and sends what it produces. Used for the
// handshake always, and for the record layer when the kernel has no TLS ULP (and always on the
// client side, whose record layer stays in userspace).
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "core/ip.h"
#include "core/tls_facts.h"
#include "tls/client_context.h"
#include "tls/ktls_keys.h"
#include "tls/tls_context.h"

namespace ringmx::tls {

enum class Progress { kNeedInput, kEstablished };

// Shard-local. Holds a reference on its TlsContext (or ClientTlsContext) for its whole life.
//
// Every call empties OpenSSL's (per-thread) error queue before it returns, into the message of the
// Status it returns or nowhere, so nothing is left for the shard's next connection.
//
// Error messages start with "client <ip:port>" and say why, then "; sent alert <name>" when an
// alert went out (RFC 8446 §6 names: protocol_version, unrecognized_name, unknown_ca,
// certificate_required, ...) and the OpenSSL errors in brackets, e.g.
//   client 127.0.0.1:4242 offered TLSv1.1, minimum is TLSv1.2; sent alert protocol_version
//     [error:0A000102:SSL routines::unsupported protocol]
//   client 127.0.0.1:4242 asked for unknown server name "x.test" (sni_strict listener); ...
//   client 127.0.0.1:4242 presented no client certificate (client_certs = required); ...
//   client 127.0.0.1:4242 presented an untrusted client certificate ("CN=...,O=..."): unable to
//     get local issuer certificate (client_certs = required); sent alert unknown_ca [...]
//   client 127.0.0.1:4242 sent TLS alert bad_certificate during the handshake [...]
//   client 127.0.0.1:4242: TLS handshake failed [...]
// Codes: kPermissionDenied for a refusal by configuration (version, SNI, client certificate),
// kInvalidArgument for anything else the peer got wrong during the handshake, kDataLoss for a bad
// record afterwards, kAborted for a fatal alert from the peer, kFailedPrecondition for a call out
// of order. Each is one line, ready to log.
//
// A client-side engine (ForClient) names the next hop instead, "hop <ip:port>", e.g.
//   hop 127.0.0.1:2525: certificate verify failed: hostname mismatch (certificate
//     "CN=mx.example.test,O=Ringmx Test" at depth 0) (tls = verify, tls_name = x.example.test)
//     [error:0A000086:SSL routines::certificate verify failed]
//   hop 127.0.0.1:2525: certificate verify failed: unable to get local issuer certificate (...)
//   hop 127.0.0.1:2525 offers no TLS version we accept (minimum is TLSv1.2); ...
//   hop 127.0.0.1:2525 sent TLS alert handshake_failure during the handshake [...]
// with kPermissionDenied for the first two kinds (the route's tls settings refuse the hop) and
// kInvalidArgument otherwise; after the handshake the codes are those above.
class Engine {
 public:
  // `listener_index` and `client` select the SSL_CTX (TlsContext::ContextFor: the listener's, or
  // the one of the client's `[[policy.tls_floor]]`); `client` is also used in error messages.
  // `implicit` is only recorded in facts(): STARTTLS and implicit TLS run the same code.
  // kFailedPrecondition if the listener has no TLS context.
  static absl::StatusOr<std::unique_ptr<Engine>> ForServer(
      std::shared_ptr<const TlsContext> context, size_t listener_index, bool implicit,
      const core::Endpoint& client);

  // The client side of a STARTTLS to next hop `hop` (used in error messages only), on `ctx`,
  // which must be one of `context`'s (ClientTlsContext::ForRoute or ForBounce); the engine keeps
  // `context` alive. `server_name` is sent as SNI (RFC 6066 §3) when it is a DNS name; "" or an
  // IP literal sends none. Pass ClientTlsContext::ServerNameForRoute (the route's tls_name for
  // tls = "verify"). The hop's certificate name is checked by `ctx` itself (tls_name), not
  // against `server_name`. The client speaks first: call Handshake() at once and send
  // TakeCiphertext() (the ClientHello). kFailedPrecondition when `ctx` is nullptr (tls = "none")
  // or not a client context.
  static absl::StatusOr<std::unique_ptr<Engine>> ForClient(
      std::shared_ptr<const ClientTlsContext> context, SSL_CTX* ctx, std::string_view server_name,
      const core::Endpoint& hop);

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Copies `bytes` (ciphertext from the peer) into the read BIO. Any split is fine: a partial
  // record waits for the rest.
  void PutCiphertext(std::string_view bytes);

  // Advances the handshake. kNeedInput: send TakeCiphertext() (maybe empty) and wait for more
  // bytes. kEstablished: the handshake is done (send TakeCiphertext() too); Facts() is valid.
  // An error (bad handshake, version below min_tls, unknown SNI on an sni_strict listener,
  // required client certificate missing or untrusted) has a message naming the client and the
  // reason (e.g. the version the client offered); TakeCiphertext() then holds the alert to send
  // (a 7-byte plaintext alert record before the keys are set, an encrypted one after), and every
  // later Handshake() fails. The engine never logs: the caller logs the message.
  absl::StatusOr<Progress> Handshake();

  // After kEstablished: decrypts everything available into `plaintext` (appended). Returns OK
  // with nothing appended when more ciphertext is needed. peer_closed() becomes true on a
  // close_notify. Errors: a bad record (an alert for the peer is then in TakeCiphertext()) or an
  // alert from the peer. Send TakeCiphertext() after every call, even an OK one.
  absl::Status Decrypt(std::string& plaintext);

  // After kEstablished: encrypts `plaintext`; the records are then in TakeCiphertext().
  absl::Status Encrypt(std::string_view plaintext);

  // Ciphertext the peer must be sent next (handshake messages, records, alerts); empties it.
  std::string TakeCiphertext();

  // After kEstablished: queues our close_notify (RFC 8446 §6.1) in TakeCiphertext(), e.g. after
  // the 221 reply to QUIT. Does nothing before the handshake is done or after it failed.
  void SendCloseNotify();

  bool peer_closed() const { return peer_closed_; }

  // Set when Handshake() failed because the highest version the client offered (its
  // supported_versions, else its legacy_version) is below the minimum of the context it got:
  // the versions by name, "TLSv1.0" and "TLSv1.2", for the caller's refusal log line.
  struct VersionRefusal {
    std::string offered;
    std::string minimum;
  };
  const std::optional<VersionRefusal>& version_refusal() const { return version_refusal_; }

  // After Handshake() failed: a short, stable reason for counting failures (the `stats` control
  // command): OpenSSL's reason string of the first SSL error ("unsupported protocol", "no shared
  // cipher", "wrong version number", "peer did not return a certificate", ...), or, without one,
  // "unrecognized name" (unknown SNI on an sni_strict listener), "alert <name>" (the client's
  // fatal alert), "eof" (the client went away) or "handshake failed". "" before a failure.
  const std::string& failure_reason() const { return failure_reason_; }

  // Valid after kEstablished: version, cipher and bits, SNI as sent (lower case, "" if none),
  // sni_fallback (absent or unknown SNI, default certificate served: the caller logs it),
  // implicit, and the client certificate (kNone when none was requested or presented). `ktls` is
  // always false here: the caller sets it in its copy once the kernel has the keys.
  // Client side: version, cipher and bits, `sni` as ringmx sent it ("" if none), and
  // `server_cert` (the hop's certificate and whether it verified: only ever under
  // tls = "verify"); `implicit`, `sni_fallback` and `client_cert` stay at their defaults.
  const core::TlsFacts& facts() const { return facts_; }

  // After kEstablished, before any Encrypt/Decrypt beyond the handshake: the traffic keys,
  // IVs and record sequence numbers to hand to the kernel (TLS_TX/TLS_RX), plus any application
  // bytes already decrypted that arrived with the client's Finished. Every record already put into
  // the engine is decrypted first and counted in rx.rec_seq, so the caller must not read more
  // from the socket between this call and setsockopt(TLS_RX). kUnimplemented for a version or
  // cipher the kernel cannot take (e.g. AES-CCM); kFailedPrecondition when part of a record is
  // buffered or a KeyUpdate already happened. After any error the engine is unchanged and stays
  // usable for the userspace path (plaintext it read is returned by the next Decrypt()). After
  // success the kernel owns the record layer: do not Encrypt/Decrypt for that connection any more
  // (the engine's state still matches the exported keys, which is how the tests make records).
  // Server side only: kUnimplemented on a client-side engine.
  absl::StatusOr<KtlsHandoff> ExportForKernel();

 private:
  Engine() = default;
  void FillFacts();
  void FillServerCertFacts();
  absl::Status HandshakeError(int ssl_error);
  absl::Status ClientHandshakeError(int ssl_error);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  core::TlsFacts facts_;
  bool peer_closed_ = false;
  std::optional<VersionRefusal> version_refusal_;
  std::string failure_reason_;
};

}  // namespace ringmx::tls
