#include "tls/engine.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/strings.h"
#include "tls/internal/config_files.h"
#include "tls/internal/ktls_export.h"
#include "tls/internal/state.h"

namespace ringmx::tls {

using internal::SessionState;
using internal::WithErrors;

struct Engine::Impl {
  // Exactly one is set: it keeps the SSL_CTX and its ListenerState / ClientCtxState alive.
  std::shared_ptr<const TlsContext> context;               // server side
  std::shared_ptr<const ClientTlsContext> client_context;  // client side (outbound delivery)
  core::Endpoint peer;  // the client (server side) or the next hop (client side)
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // peer -> OpenSSL (owned by `ssl`)
  BIO* out = nullptr;  // OpenSSL -> peer (owned by `ssl`)
  SessionState state;
  bool established = false;
  bool failed = false;
  // Plaintext read by an ExportForKernel() that then could not hand over (a partial record was
  // buffered); Decrypt() returns it first.
  std::string stashed_plaintext;

  ~Impl() {
    if (ssl != nullptr) SSL_free(ssl);
  }

  bool client_side() const { return client_context != nullptr; }
  // How error messages name the peer: "client 127.0.0.1:4242" or "hop 127.0.0.1:2525".
  std::string Peer() const {
    return absl::StrCat(client_side() ? "hop " : "client ", peer.ToString());
  }
  // Creates the SSL and its memory BIOs on `ctx`; false (OpenSSL errors queued) when out of memory.
  bool Init(SSL_CTX* ctx);
};

bool Engine::Impl::Init(SSL_CTX* ctx) {
  ssl = SSL_new(ctx);
  in = BIO_new(BIO_s_mem());
  out = BIO_new(BIO_s_mem());
  if (ssl == nullptr || in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    in = out = nullptr;
    return false;
  }
  // An empty read BIO means "wait for more", not end of file.
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(ssl, in, out);
  SSL_set_ex_data(ssl, internal::SessionStateIndex(), &state);
  return true;
}

namespace {

// Counts records after the handshake and notes alerts and KeyUpdates (for error messages and
// for the kTLS sequence numbers). OpenSSL calls it for every record header and message.
void MessageCallback(int write_p, int /*version*/, int content_type, const void* buf, size_t len,
                     SSL* ssl, void* /*arg*/) {
  SessionState* state = internal::GetSessionState(ssl);
  if (state == nullptr) return;
  const auto* bytes = static_cast<const unsigned char*>(buf);
  switch (content_type) {
    case SSL3_RT_HEADER:
      if (state->counting) ++(write_p ? state->records_out : state->records_in);
      break;
    case SSL3_RT_ALERT:
      if (len >= 2) (write_p ? state->alert_sent : state->alert_received) = bytes[1];
      break;
    case SSL3_RT_HANDSHAKE:
      if (state->counting && len >= 1 && bytes[0] == SSL3_MT_KEY_UPDATE) {
        state->key_update_seen = true;
      }
      break;
    default:
      break;
  }
}

// RFC 8446 §6 names (OpenSSL 3.0's own table lacks the TLS 1.3 additions).
std::string AlertName(int description) {
  switch (description) {
    case 0:
      return "close_notify";
    case 10:
      return "unexpected_message";
    case 20:
      return "bad_record_mac";
    case 22:
      return "record_overflow";
    case 40:
      return "handshake_failure";
    case 42:
      return "bad_certificate";
    case 43:
      return "unsupported_certificate";
    case 44:
      return "certificate_revoked";
    case 45:
      return "certificate_expired";
    case 46:
      return "certificate_unknown";
    case 47:
      return "illegal_parameter";
    case 48:
      return "unknown_ca";
    case 49:
      return "access_denied";
    case 50:
      return "decode_error";
    case 51:
      return "decrypt_error";
    case 70:
      return "protocol_version";
    case 71:
      return "insufficient_security";
    case 80:
      return "internal_error";
    case 86:
      return "inappropriate_fallback";
    case 90:
      return "user_canceled";
    case 100:
      return "no_renegotiation";
    case 109:
      return "missing_extension";
    case 110:
      return "unsupported_extension";
    case 112:
      return "unrecognized_name";
    case 113:
      return "bad_certificate_status_response";
    case 115:
      return "unknown_psk_identity";
    case 116:
      return "certificate_required";
    case 120:
      return "no_application_protocol";
    default:
      return absl::StrCat("alert ", description);
  }
}

}  // namespace

Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::ForServer(std::shared_ptr<const TlsContext> context,
                                                          size_t listener_index, bool implicit,
                                                          const core::Endpoint& client) {
  // The client address is known before the handshake: a tls_floor client gets its floor's context.
  SSL_CTX* ctx = context != nullptr ? context->ContextFor(listener_index, client.address) : nullptr;
  if (ctx == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("listener ", listener_index, " has no TLS context"));
  }
  ERR_clear_error();  // nothing from an earlier connection may be blamed on this one
  std::unique_ptr<Engine> engine(new Engine());
  engine->impl_ = std::make_unique<Impl>();
  Impl& impl = *engine->impl_;
  impl.context = std::move(context);
  impl.peer = client;
  impl.state.listener = static_cast<const internal::ListenerState*>(
      SSL_CTX_get_ex_data(ctx, internal::ListenerStateIndex()));
  if (!impl.Init(ctx)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "TLS session for client ", impl.peer.ToString(), ": ", internal::DrainErrors()));
  }
  SSL_set_msg_callback(impl.ssl, MessageCallback);
  SSL_set_accept_state(impl.ssl);
  engine->facts_.implicit = implicit;
  return engine;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::ForClient(
    std::shared_ptr<const ClientTlsContext> context, SSL_CTX* ctx, std::string_view server_name,
    const core::Endpoint& hop) {
  const auto* ctx_state = ctx != nullptr
                              ? static_cast<const internal::ClientCtxState*>(
                                    SSL_CTX_get_ex_data(ctx, internal::ClientCtxStateIndex()))
                              : nullptr;
  if (context == nullptr || ctx_state == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("hop ", hop.ToString(), ": no client TLS context (tls = \"none\"?)"));
  }
  ERR_clear_error();  // nothing from an earlier connection may be blamed on this one
  std::unique_ptr<Engine> engine(new Engine());
  engine->impl_ = std::make_unique<Impl>();
  Impl& impl = *engine->impl_;
  impl.client_context = std::move(context);
  impl.peer = hop;
  impl.state.client = ctx_state;
  if (!impl.Init(ctx)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("TLS session for hop ", hop.ToString(), ": ", internal::DrainErrors()));
  }
  SSL_set_msg_callback(impl.ssl, MessageCallback);
  // RFC 6066 §3: a DNS name only, without the trailing dot; never an IP literal.
  std::string name = absl::AsciiStrToLower(core::Av(server_name));
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (!name.empty() && !core::IpAddress::Parse(name).has_value()) {
    if (SSL_set_tlsext_host_name(impl.ssl, name.c_str()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("hop ", hop.ToString(), ": server name \"",
                                                     name, "\" refused", WithErrors()));
    }
    engine->facts_.sni = name;
  }
  SSL_set_connect_state(impl.ssl);
  return engine;
}

void Engine::PutCiphertext(std::string_view bytes) {
  // A memory BIO grows as needed; a write only fails when out of memory.
  size_t done = 0;
  while (done < bytes.size()) {
    size_t written = 0;
    if (BIO_write_ex(impl_->in, bytes.data() + done, bytes.size() - done, &written) != 1) break;
    done += written;
  }
}

std::string Engine::TakeCiphertext() {
  std::string out;
  const size_t pending = BIO_ctrl_pending(impl_->out);
  if (pending == 0) return out;
  out.resize(pending);
  size_t read = 0;
  if (BIO_read_ex(impl_->out, out.data(), pending, &read) != 1) read = 0;
  out.resize(read);
  return out;
}

absl::StatusOr<Progress> Engine::Handshake() {
  Impl& impl = *impl_;
  if (impl.established) return Progress::kEstablished;
  if (impl.failed) {
    return absl::FailedPreconditionError(
        absl::StrCat(impl.Peer(), ": TLS handshake already failed"));
  }
  const int r = SSL_do_handshake(impl.ssl);
  if (r == 1) {
    impl.established = true;
    impl.state.counting = true;
    FillFacts();
    ERR_clear_error();
    return Progress::kEstablished;
  }
  const int err = SSL_get_error(impl.ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return Progress::kNeedInput;
  }
  impl.failed = true;
  return impl.client_side() ? ClientHandshakeError(err) : HandshakeError(err);
}

absl::Status Engine::HandshakeError(int ssl_error) {
  Impl& impl = *impl_;
  const SessionState& st = impl.state;
  std::vector<int> reasons;
  const std::string errors = internal::DrainErrors(&reasons);
  const std::string client = impl.peer.ToString();
  auto has_reason = [&](int reason) {
    for (int r : reasons) {
      if (r == reason) return true;
    }
    return false;
  };
  const int min_version = st.listener != nullptr ? st.listener->min_version : TLS1_2_VERSION;
  const char* openssl_reason =
      reasons.empty() ? nullptr : ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, reasons[0]));
  if (openssl_reason != nullptr) {
    failure_reason_ = openssl_reason;
  } else if (st.sni_rejected) {
    failure_reason_ = "unrecognized name";
  } else if (st.alert_received >= 0) {
    failure_reason_ = absl::StrCat("alert ", AlertName(st.alert_received));
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    failure_reason_ = "eof";
  } else {
    failure_reason_ = "handshake failed";
  }

  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  std::string what;
  if (st.offered_version != 0 && st.offered_version < min_version) {
    code = absl::StatusCode::kPermissionDenied;
    version_refusal_ = VersionRefusal{internal::VersionName(st.offered_version),
                                      internal::VersionName(min_version)};
    what = absl::StrCat("client ", client, " offered ", version_refusal_->offered, ", minimum is ",
                        version_refusal_->minimum);
  } else if (st.sni_rejected) {
    code = absl::StatusCode::kPermissionDenied;
    what = absl::StrCat("client ", client, " asked for unknown server name \"", st.sni,
                        "\" (sni_strict listener)");
  } else if (has_reason(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)) {
    code = absl::StatusCode::kPermissionDenied;
    what = absl::StrCat("client ", client,
                        " presented no client certificate (client_certs = required)");
  } else if (st.verify_error != X509_V_OK &&
             (has_reason(SSL_R_CERTIFICATE_VERIFY_FAILED) || st.listener == nullptr ||
              st.listener->client_certs == core::ClientCertMode::kRequired)) {
    code = absl::StatusCode::kPermissionDenied;
    what = absl::StrCat("client ", client, " presented an untrusted client certificate (\"",
                        st.verify_error_subject,
                        "\"): ", X509_verify_cert_error_string(st.verify_error),
                        " (client_certs = required)");
  } else if (st.alert_received >= 0) {
    what = absl::StrCat("client ", client, " sent TLS alert ", AlertName(st.alert_received),
                        " during the handshake");
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    what = absl::StrCat("client ", client, ": TLS handshake ended unexpectedly");
  } else {
    what = absl::StrCat("client ", client, ": TLS handshake failed");
  }
  if (st.alert_sent >= 0 && st.alert_sent != st.alert_received) {
    absl::StrAppend(&what, "; sent alert ", AlertName(st.alert_sent));
  }
  if (!errors.empty()) absl::StrAppend(&what, " [", errors, "]");
  return absl::Status(code, what);
}

void Engine::FillFacts() {
  Impl& impl = *impl_;
  SSL* ssl = impl.ssl;
  facts_.version = SSL_get_version(ssl);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (cipher != nullptr) {
    facts_.cipher = SSL_CIPHER_get_name(cipher);
    facts_.cipher_bits = SSL_CIPHER_get_bits(cipher, &facts_.cipher_alg_bits);
  }
  facts_.ktls = false;
  if (impl.client_side()) {
    FillServerCertFacts();
    return;
  }
  facts_.sni = impl.state.sni;
  facts_.sni_fallback = impl.state.sni_fallback;

  core::ClientCertFacts& cc = facts_.client_cert;
  cc = core::ClientCertFacts();
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return;
  cc.subject = internal::NameRfc2253(X509_get_subject_name(peer));
  cc.issuer = internal::NameRfc2253(X509_get_issuer_name(peer));
  cc.subject_cn = internal::CommonName(X509_get_subject_name(peer));
  cc.issuer_cn = internal::CommonName(X509_get_issuer_name(peer));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(peer, EVP_sha256(), md, &md_len) == 1) {
    cc.sha256_fingerprint = internal::Hex(md, md_len);
  }
  int verify = impl.state.verify_error;
  if (verify == X509_V_OK) verify = static_cast<int>(SSL_get_verify_result(ssl));
  if (verify == X509_V_OK) {
    cc.result = core::ClientCertResult::kVerified;
  } else {
    cc.result = core::ClientCertResult::kNotVerified;
    cc.verify_error = X509_verify_cert_error_string(verify);
  }
}

void Engine::FillServerCertFacts() {
  Impl& impl = *impl_;
  core::ServerCertFacts& sc = facts_.server_cert;
  sc = core::ServerCertFacts();
  X509* peer = SSL_get0_peer_certificate(impl.ssl);
  if (peer == nullptr) return;
  sc.presented = true;
  sc.subject = internal::NameRfc2253(X509_get_subject_name(peer));
  sc.issuer = internal::NameRfc2253(X509_get_issuer_name(peer));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(peer, EVP_sha256(), md, &md_len) == 1) {
    sc.sha256_fingerprint = internal::Hex(md, md_len);
  }
  int verify = impl.state.verify_error;
  if (verify == X509_V_OK) verify = static_cast<int>(SSL_get_verify_result(impl.ssl));
  // Only a verify context has trust anchors and a name to check; under SSL_VERIFY_NONE an OK
  // result could only mean an empty check, so it is never reported as verified.
  sc.verified = verify == X509_V_OK && impl.state.client != nullptr && impl.state.client->verify;
  if (!sc.verified) {
    sc.verify_error = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                          : "not checked (tls = opportunistic)";
  }
}

absl::Status Engine::ClientHandshakeError(int ssl_error) {
  Impl& impl = *impl_;
  const SessionState& st = impl.state;
  std::vector<int> reasons;
  const std::string errors = internal::DrainErrors(&reasons);
  const std::string hop = impl.Peer();
  auto has_reason = [&](int reason) {
    for (int r : reasons) {
      if (r == reason) return true;
    }
    return false;
  };
  int verify = st.verify_error;
  if (verify == X509_V_OK) verify = static_cast<int>(SSL_get_verify_result(impl.ssl));

  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  std::string what;
  if (has_reason(SSL_R_CERTIFICATE_VERIFY_FAILED) && verify != X509_V_OK) {
    // Refused by configuration (tls = "verify"): the hop's chain or name did not check out.
    code = absl::StatusCode::kPermissionDenied;
    what =
        absl::StrCat(hop, ": certificate verify failed: ", X509_verify_cert_error_string(verify));
    if (!st.verify_error_subject.empty()) {
      absl::StrAppend(&what, " (certificate \"", st.verify_error_subject, "\" at depth ",
                      st.verify_error_depth, ")");
    }
    absl::StrAppend(
        &what, " (tls = verify, tls_name = ", st.client != nullptr ? st.client->tls_name : "", ")");
  } else if (has_reason(SSL_R_UNSUPPORTED_PROTOCOL) ||
             st.alert_received == SSL_AD_PROTOCOL_VERSION) {
    code = absl::StatusCode::kPermissionDenied;
    what = absl::StrCat(hop, " offers no TLS version we accept (minimum is TLSv1.2)");
  } else if (st.alert_received >= 0) {
    what = absl::StrCat(hop, " sent TLS alert ", AlertName(st.alert_received),
                        " during the handshake");
  } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    what = absl::StrCat(hop, ": TLS handshake ended unexpectedly");
  } else {
    what = absl::StrCat(hop, ": TLS handshake failed");
  }
  if (st.alert_sent >= 0 && st.alert_sent != st.alert_received) {
    absl::StrAppend(&what, "; sent alert ", AlertName(st.alert_sent));
  }
  if (!errors.empty()) absl::StrAppend(&what, " [", errors, "]");
  return absl::Status(code, what);
}

absl::Status Engine::Decrypt(std::string& plaintext) {
  Impl& impl = *impl_;
  if (!impl.established) {
    return absl::FailedPreconditionError("TLS Decrypt before the handshake is done");
  }
  if (!impl.stashed_plaintext.empty()) {
    plaintext += impl.stashed_plaintext;
    impl.stashed_plaintext.clear();
  }
  if (peer_closed_) return absl::OkStatus();
  char buf[16384];
  for (;;) {
    size_t n = 0;
    const int r = SSL_read_ex(impl.ssl, buf, sizeof(buf), &n);
    if (r == 1) {
      plaintext.append(buf, n);
      continue;
    }
    const int err = SSL_get_error(impl.ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      return absl::OkStatus();
    }
    if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify
      peer_closed_ = true;
      ERR_clear_error();
      return absl::OkStatus();
    }
    const std::string errors = internal::DrainErrors();
    std::string what = absl::StrCat(impl.Peer(), ": TLS read failed");
    absl::StatusCode code = absl::StatusCode::kDataLoss;
    if (impl.state.alert_received >= 0) {
      code = absl::StatusCode::kAborted;
      absl::StrAppend(&what, ": ", impl.client_side() ? "hop" : "client", " sent alert ",
                      AlertName(impl.state.alert_received));
    }
    if (!errors.empty()) absl::StrAppend(&what, " [", errors, "]");
    return absl::Status(code, what);
  }
}

absl::Status Engine::Encrypt(std::string_view plaintext) {
  Impl& impl = *impl_;
  if (!impl.established) {
    return absl::FailedPreconditionError("TLS Encrypt before the handshake is done");
  }
  size_t done = 0;
  while (done < plaintext.size()) {
    size_t n = 0;
    const int r = SSL_write_ex(impl.ssl, plaintext.data() + done, plaintext.size() - done, &n);
    if (r != 1) {
      return absl::InternalError(
          absl::StrCat(impl.Peer(), ": TLS write failed [", internal::DrainErrors(), "]"));
    }
    done += n;
  }
  return absl::OkStatus();
}

void Engine::SendCloseNotify() {
  if (!impl_->established || impl_->failed) return;
  SSL_shutdown(impl_->ssl);  // 0: our close_notify is queued; the peer's may come later
  ERR_clear_error();
}

absl::StatusOr<KtlsHandoff> Engine::ExportForKernel() {
  Impl& impl = *impl_;
  if (!impl.established) {
    return absl::FailedPreconditionError("kTLS export before the handshake is done");
  }
  if (impl.client_side()) {
    // The key export knows the server's point of view only; outbound stays in userspace.
    return absl::UnimplementedError(
        absl::StrCat(impl.Peer(), ": kTLS export is for server-side sessions only"));
  }
  // Application records that arrived with (or after) the client's Finished are already in our
  // read BIO, out of the socket: decrypt them here and hand the plaintext over with the keys.
  std::string pending = std::move(impl.stashed_plaintext);
  impl.stashed_plaintext.clear();
  absl::Status read = Decrypt(pending);
  if (!read.ok()) return read;
  if (SSL_has_pending(impl.ssl) == 1 || BIO_ctrl_pending(impl.in) > 0) {
    // Part of a record is buffered: the kernel would see the rest of it without its start.
    impl.stashed_plaintext = std::move(pending);
    ERR_clear_error();
    return absl::FailedPreconditionError(absl::StrCat(
        impl.Peer(), ": a partial TLS record is buffered; the connection stays on userspace TLS"));
  }
  absl::StatusOr<KtlsHandoff> handoff = internal::ExportKeys(impl.ssl, impl.state);
  if (!handoff.ok()) {
    impl.stashed_plaintext = std::move(pending);
    return handoff.status();
  }
  handoff->pending_plaintext = std::move(pending);
  return handoff;
}

}  // namespace ringmx::tls
