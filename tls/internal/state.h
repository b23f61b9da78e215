// Private to tls/: the state shared between the SSL_CTX callbacks (tls_context.cc), the Engine
// (engine.cc) and the kTLS key export (ktls_export.cc). Not included outside tls/.
//
// Two objects ride on OpenSSL's ex_data: a ListenerState on each listener's SSL_CTX (owned by the
// TlsContext, which every Engine keeps alive), and a SessionState on each SSL (owned by the Engine
// that created the SSL). Callbacks reach them through the SSL they are given; a callback that
// finds no SessionState (an SSL not made by Engine) does the default thing and records nothing.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/config.h"

namespace ringmx::tls::internal {

// One certificate + key, with the certificates that follow the leaf in the configured file.
// The pointers are owned by the CertTable that holds the pair.
struct CertPair {
  X509* leaf = nullptr;
  STACK_OF(X509) * chain = nullptr;  // intermediates (and root), in file order; may be empty
  EVP_PKEY* key = nullptr;
  int key_type = 0;  // EVP_PKEY_RSA, EVP_PKEY_EC, ...: at most one pair per type in an entry
};

// The certificates served for one set of names: the default (entry 0) or one `[[tls.sni]]`.
struct CertEntry {
  // For SNI entries: the configured names (exact or "*.domain", lower case). For the default:
  // the DNS names of its leaves (subjectAltName, or the CN when there is none), so a client that
  // asks for one of them is not counted as a fallback.
  std::vector<std::string> names;
  std::vector<CertPair> pairs;  // at least one
};

// Every loaded certificate. Immutable after TlsContext::Build.
struct CertTable {
  std::vector<CertEntry> entries;  // [0] is the default
  ~CertTable();

  // The entry serving `name` (lower case, no trailing dot): an exact name first (SNI entries
  // before the default), then a one-label wildcard ("*.example.test" matches "a.example.test",
  // not "example.test" nor "a.b.example.test"). -1 if none.
  int Find(const std::string& name) const;
};

// Per TLS listener; reached from its SSL_CTX.
struct ListenerState {
  std::string name;
  int min_version = TLS1_2_VERSION;
  bool sni_strict = false;
  core::ClientCertMode client_certs = core::ClientCertMode::kNone;
  const CertTable* certs = nullptr;
};

// Per client SSL_CTX (one `[[route]]` with tls, or the bounce hop: tls/client_context.h); reached
// from it. Owned by the ClientTlsContext, which every client Engine keeps alive.
struct ClientCtxState {
  std::string where;     // the config key it was built for: "route[2]", "delivery.bounce_next_hop"
  bool verify = false;   // tls = "verify": the hop's chain and name are checked
  std::string tls_name;  // tls = "verify": the name the hop's certificate must hold
};

// Per SSL (one connection); written by callbacks during the handshake, read by Engine.
struct SessionState {
  const ListenerState* listener = nullptr;  // server side
  const ClientCtxState* client = nullptr;   // client side (outbound delivery)

  // Highest version in the ClientHello (supported_versions, else legacy_version); 0 before it.
  int offered_version = 0;

  // SNI as the client sent it, lower-cased, trailing dot dropped; "" if absent.
  std::string sni;
  bool sni_fallback = false;  // absent or unknown SNI: the default certificate is served
  bool sni_rejected = false;  // unknown SNI on an sni_strict listener

  // First verification failure of the peer's chain (the client's, or on the client side the
  // hop's), recorded by VerifyCallback (OpenSSL's own verify result keeps the last one, which is
  // usually less telling).
  int verify_error = X509_V_OK;
  int verify_error_depth = -1;
  std::string verify_error_subject;  // RFC 2253 subject of the certificate that failed

  // Alerts seen on the wire (SSL3_AD_*), -1 if none: for error messages.
  int alert_sent = -1;
  int alert_received = -1;

  // TLS 1.3 traffic secrets 0, captured by the keylog callback for the kTLS hand-off.
  std::string client_traffic_secret;
  std::string server_traffic_secret;

  // Records read / written since the handshake completed (counted by the message callback once
  // `counting` is set), so the exported sequence numbers stay right even if records passed
  // through OpenSSL before the export.
  bool counting = false;
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  bool key_update_seen = false;  // a KeyUpdate in either direction: secrets_0 are stale

  ~SessionState();
};

int ListenerStateIndex();   // SSL_CTX ex_data (server contexts)
int ClientCtxStateIndex();  // SSL_CTX ex_data (client contexts)
int SessionStateIndex();    // SSL ex_data
SessionState* GetSessionState(const SSL* ssl);

// The verify callback of every context that verifies: records the first failure of the peer's
// chain in the SSL's SessionState. A server listener with client_certs = "optional" never aborts
// the handshake (the result goes into the facts); everywhere else OpenSSL's verdict stands, so an
// untrusted certificate fails the handshake with an alert (under SSL_VERIFY_NONE OpenSSL ignores
// the verdict, and the record still tells the facts why the chain did not verify).
int VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx);

// Empties OpenSSL's error queue (this thread's) into "error:...: reason; ..." text ("" if empty).
// `reasons`, if not null, receives ERR_GET_REASON of each error (lib SSL only).
std::string DrainErrors(std::vector<int>* ssl_reasons = nullptr);

// "TLSv1.2", "TLSv1.1", ..., or "0x0302"-style for unknown values.
std::string VersionName(int version);

// RFC 2253 form of `name`; "" on failure.
std::string NameRfc2253(const X509_NAME* name);
// commonName of `name` in UTF-8; "" if none.
std::string CommonName(const X509_NAME* name);
// Lower-case hex.
std::string Hex(const unsigned char* data, size_t len);
// Lower-case hex SHA-256 of the certificate's SubjectPublicKeyInfo (TLSA selector 1 type 1).
std::string SpkiSha256Hex(X509* cert);

}  // namespace ringmx::tls::internal
