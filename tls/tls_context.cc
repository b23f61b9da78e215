#include "tls/tls_context.h"

#include <time.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/internal/config_files.h"
#include "tls/internal/state.h"
#include "tls/tls_floor.h"

namespace ringmx::tls {

using internal::CertEntry;
using internal::CertPair;
using internal::CertTable;
using internal::ConfigError;
using internal::kDefaultCiphers;
using internal::kDefaultCipherSuites;
using internal::ListenerState;
using internal::OpenFile;
using internal::SessionState;
using internal::WithErrors;

struct TlsContext::Impl {
  CertTable certs;
  X509_STORE* client_store = nullptr;  // tls.client_ca, shared by the listeners that verify
  // One SSL_CTX and the state its callbacks reach (through ex_data and the SNI callback arg).
  struct Variant {
    SSL_CTX* ctx = nullptr;
    std::unique_ptr<ListenerState> state;
  };
  struct Listener {
    SSL_CTX* ctx = nullptr;  // nullptr for a listener without TLS
    std::unique_ptr<ListenerState> state;
    // The contexts for tls_floor clients, one per distinct floor version other than the
    // listener's min_tls.
    std::vector<Variant> floor_variants;
    // Parallel to `floors`: the context for floor i's clients (`ctx` when the floor's version is
    // the listener's own). Empty for a listener without TLS.
    std::vector<SSL_CTX*> floor_ctx;
  };
  std::vector<Listener> listeners;           // parallel to config.listeners
  std::vector<core::TlsFloorConfig> floors;  // config.policy.tls_floor

  ~Impl() {
    for (Listener& l : listeners) {
      SSL_CTX_free(l.ctx);
      for (Variant& v : l.floor_variants) SSL_CTX_free(v.ctx);
    }
    X509_STORE_free(client_store);
  }
};

namespace {

// Appended to the TLS 1.2 list in contexts of a tls_floor below TLS 1.2 only: TLS 1.0 and 1.1
// have no AEAD suite, so their clients (old Java, printers) need CBC suites with SHA-1 MACs,
// ECDHE first, then plain RSA key exchange for the oldest. No 3DES, RC4 or export suites.
constexpr char kLegacyCiphers[] =
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
    "AES256-SHA:AES128-SHA";

// "1.0" -> TLS1_VERSION, ...; 0 for anything else.
int ProtocolVersion(std::string_view min_tls) {
  if (min_tls == "1.0") return TLS1_VERSION;
  if (min_tls == "1.1") return TLS1_1_VERSION;
  if (min_tls == "1.2") return TLS1_2_VERSION;
  if (min_tls == "1.3") return TLS1_3_VERSION;
  return 0;
}

std::string DateOf(const ASN1_TIME* time) {
  struct tm tm = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return "(unknown date)";
  return absl::StrFormat("%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

std::string CertLabel(X509* cert) {
  const std::string cn = internal::CommonName(X509_get_subject_name(cert));
  return cn.empty() ? internal::NameRfc2253(X509_get_subject_name(cert)) : cn;
}

std::string KeyTypeName(EVP_PKEY* key) {
  const int bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      return absl::StrCat("RSA-", bits);
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) {
        const char* nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        std::string curve = nist != nullptr ? nist : group;
        curve.erase(std::remove(curve.begin(), curve.end(), '-'), curve.end());
        return "EC-" + curve;
      }
      return absl::StrCat("EC-", bits);
    }
    case EVP_PKEY_ED25519:
      return "ED25519";
    case EVP_PKEY_ED448:
      return "ED448";
    default:
      return absl::StrCat(OBJ_nid2sn(EVP_PKEY_get_base_id(key)), "-", bits);
  }
}

std::string Pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string out;
  if (bio != nullptr && PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

// DNS names of the leaf: subjectAltName dNSName entries, else the subject CN; lower case.
std::vector<std::string> LeafNames(X509* leaf) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      names.push_back(absl::AsciiStrToLower(
          absl::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                            static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    const std::string cn = internal::CommonName(X509_get_subject_name(leaf));
    if (!cn.empty()) names.push_back(absl::AsciiStrToLower(cn));
  }
  ERR_clear_error();  // X509_get_ext_d2i leaves nothing useful behind when the extension is absent
  return names;
}

// Loads one certificate chain file and its key into `pair` (owned by the table that holds it; on
// error what was loaded is freed by that table), checks it, appends warnings and fills `info`.
absl::Status LoadPair(const std::string& cert_key, const std::string& key_key,
                      const core::CertKeyPair& files, std::vector<std::string>* warnings,
                      CertPair& pair, ChainInfo& info) {
  ERR_clear_error();
  // The certificates, in file order. PEM blocks of other kinds (a key in the same file) are
  // skipped by PEM_read_bio_X509.
  std::vector<X509*> certs;
  {
    absl::StatusOr<BIO*> bio = OpenFile(cert_key, files.cert);
    if (!bio.ok()) return bio.status();
    while (X509* cert = PEM_read_bio_X509(*bio, nullptr, nullptr, nullptr)) certs.push_back(cert);
    BIO_free(*bio);
    const unsigned long last = ERR_peek_last_error();
    const bool clean_end = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM &&
                                         ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
    std::string errors = internal::DrainErrors();
    if (!clean_end) {
      for (X509* c : certs) X509_free(c);
      return ConfigError(
          cert_key, files.cert,
          absl::StrCat("certificate ", certs.size() + 1, " cannot be parsed: ", errors));
    }
  }
  if (certs.empty()) {
    return ConfigError(cert_key, files.cert, "no PEM certificate (BEGIN CERTIFICATE) in the file");
  }
  pair.leaf = certs[0];
  pair.chain = sk_X509_new_null();
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(pair.chain, certs[i]);

  {
    absl::StatusOr<BIO*> bio = OpenFile(key_key, files.key);
    if (!bio.ok()) return bio.status();
    pair.key = PEM_read_bio_PrivateKey(*bio, nullptr, nullptr, nullptr);
    BIO_free(*bio);
    if (pair.key == nullptr) {
      return ConfigError(
          key_key, files.key,
          "no readable private key (an unencrypted PEM key is expected)" + WithErrors());
    }
  }
  pair.key_type = EVP_PKEY_get_base_id(pair.key);

  // Each certificate must be issued and signed by the next one: the chain is served as it is
  // (DESIGN.md section 5: DANE 2 x x needs the whole chain), so a broken one is refused here
  // rather than by every client.
  for (size_t i = 0; i + 1 < certs.size(); ++i) {
    const bool issued = X509_check_issued(certs[i + 1], certs[i]) == X509_V_OK;
    const bool signs = issued && X509_verify(certs[i], X509_get0_pubkey(certs[i + 1])) == 1;
    ERR_clear_error();
    if (!signs) {
      return ConfigError(
          cert_key, files.cert,
          absl::StrCat("certificate ", i + 2, " does not sign certificate ", i + 1, " (", i + 1,
                       ": \"", CertLabel(certs[i]), "\" issued by \"",
                       internal::NameRfc2253(X509_get_issuer_name(certs[i])), "\"; ", i + 2, ": \"",
                       internal::NameRfc2253(X509_get_subject_name(certs[i + 1])), "\")"));
    }
  }
  if (X509_check_private_key(pair.leaf, pair.key) != 1) {
    ERR_clear_error();
    return ConfigError(key_key, files.key,
                       absl::StrCat("private key does not match the certificate in ", cert_key,
                                    " (", files.cert, ")"));
  }

  // Expired or not yet valid: a warning, so an operator can still start (and fix it).
  for (size_t i = 0; i < certs.size(); ++i) {
    if (X509_cmp_current_time(X509_get0_notAfter(certs[i])) < 0) {
      warnings->push_back(absl::StrCat(cert_key, ": ", files.cert, ": certificate ", i + 1, " (\"",
                                       CertLabel(certs[i]), "\") expired on ",
                                       DateOf(X509_get0_notAfter(certs[i]))));
    } else if (X509_cmp_current_time(X509_get0_notBefore(certs[i])) > 0) {
      warnings->push_back(absl::StrCat(cert_key, ": ", files.cert, ": certificate ", i + 1, " (\"",
                                       CertLabel(certs[i]), "\") is not valid before ",
                                       DateOf(X509_get0_notBefore(certs[i]))));
    }
  }
  ERR_clear_error();

  info.config_key = cert_key;
  info.key_type = KeyTypeName(pair.key);
  for (X509* c : certs) info.pem_chain.push_back(Pem(c));
  info.not_after = DateOf(X509_get0_notAfter(pair.leaf));
  info.tlsa_311 = internal::SpkiSha256Hex(pair.leaf);
  if (certs.size() > 1) info.tlsa_211 = internal::SpkiSha256Hex(certs.back());
  ERR_clear_error();
  return absl::OkStatus();
}

// Loads the pairs of one entry. `base` is "tls" or "tls.sni[3]".
absl::Status LoadEntry(const std::string& base, const std::vector<core::CertKeyPair>& pairs,
                       std::vector<std::string>* warnings, CertEntry& entry,
                       std::vector<ChainInfo>& chains) {
  for (size_t i = 0; i < pairs.size(); ++i) {
    const std::string suffix = pairs.size() == 1 ? "" : absl::StrCat("[", i, "]");
    const std::string cert_key = absl::StrCat(base, ".cert", suffix);
    const std::string key_key = absl::StrCat(base, ".key", suffix);
    entry.pairs.emplace_back();
    ChainInfo info;
    absl::Status s = LoadPair(cert_key, key_key, pairs[i], warnings, entry.pairs.back(), info);
    if (!s.ok()) return s;
    for (size_t j = 0; j + 1 < entry.pairs.size(); ++j) {
      if (entry.pairs[j].key_type == entry.pairs.back().key_type) {
        return ConfigError(cert_key, pairs[i].cert,
                           absl::StrCat("a second ", OBJ_nid2sn(entry.pairs[j].key_type),
                                        " certificate for the same names (one per key type: "
                                        "RSA and ECDSA may be paired)"));
      }
    }
    chains.push_back(std::move(info));
  }
  return absl::OkStatus();
}

std::vector<core::CertKeyPair> DefaultPairs(const core::TlsConfig& tls) {
  if (!tls.pairs.empty()) return tls.pairs;
  if (tls.cert.empty() && tls.key.empty()) return {};
  return {core::CertKeyPair{tls.cert, tls.key}};
}

std::vector<core::CertKeyPair> SniPairs(const core::SniConfig& sni) {
  if (!sni.pairs.empty()) return sni.pairs;
  return {core::CertKeyPair{sni.cert, sni.key}};
}

// --- Handshake callbacks. They run inside SSL_do_handshake on the connection's shard. ---

// Records the highest version the client offers, so a refusal can name it (an old Java client
// offering TLSv1.1 should be obvious from one log line). Runs before version negotiation.
int ClientHelloCallback(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  SessionState* state = internal::GetSessionState(ssl);
  if (state == nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  int best = 0;
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &ext, &len) == 1 && len >= 1) {
    // RFC 8446 §4.2.1: a one-byte length, then two bytes per version.
    const size_t list_len = std::min<size_t>(ext[0], len - 1);
    for (size_t i = 0; i + 1 < list_len; i += 2) {
      const int v = (ext[1 + i] << 8) | ext[2 + i];
      if ((v & 0x0f0f) == 0x0a0a) continue;  // GREASE (RFC 8701)
      if (v > best) best = v;
    }
  }
  if (best == 0) best = static_cast<int>(SSL_client_hello_get0_legacy_version(ssl));
  state->offered_version = best;
  return SSL_CLIENT_HELLO_SUCCESS;
}

// Chooses the certificate entry by SNI. Exact names, then one-label wildcards, case-insensitive.
// Absent or unknown: the default certificate (already on the SSL) and `sni_fallback`; unknown on
// an sni_strict listener: an unrecognized_name alert (RFC 6066 §3).
int ServerNameCallback(SSL* ssl, int* alert, void* arg) {
  const auto* listener = static_cast<const ListenerState*>(arg);
  SessionState* state = internal::GetSessionState(ssl);
  const char* raw = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string name = raw != nullptr ? absl::AsciiStrToLower(raw) : "";
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (state != nullptr) {
    state->sni = name;
    state->sni_fallback = false;
    state->sni_rejected = false;
  }
  if (name.empty()) {
    if (state != nullptr) state->sni_fallback = true;
    return SSL_TLSEXT_ERR_OK;
  }
  const int entry = listener->certs->Find(name);
  if (entry < 0) {
    if (listener->sni_strict) {
      if (state != nullptr) state->sni_rejected = true;
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (state != nullptr) state->sni_fallback = true;
    return SSL_TLSEXT_ERR_OK;
  }
  if (entry > 0) {
    // Replace the default pairs (copied from the SSL_CTX at SSL_new) with this entry's. OpenSSL
    // keeps one pair per key type and picks one later by the client's signature algorithms.
    SSL_certs_clear(ssl);
    for (const CertPair& pair : listener->certs->entries[static_cast<size_t>(entry)].pairs) {
      if (SSL_use_cert_and_key(ssl, pair.leaf, pair.key, pair.chain, 1) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      }
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

// TLS 1.3 only: keeps the first application traffic secrets for the kTLS hand-off. OpenSSL
// reports every secret as an NSS key log line ("LABEL <client_random> <secret>", hex); lines of
// other labels, and lines for another client random, are ignored.
void KeylogCallback(const SSL* ssl, const char* line) {
  SessionState* state = internal::GetSessionState(ssl);
  if (state == nullptr) return;
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3) return;
  std::string* target = nullptr;
  if (parts[0] == "CLIENT_TRAFFIC_SECRET_0") {
    target = &state->client_traffic_secret;
  } else if (parts[0] == "SERVER_TRAFFIC_SECRET_0") {
    target = &state->server_traffic_secret;
  } else {
    return;
  }
  unsigned char client_random[SSL3_RANDOM_SIZE];
  const size_t random_len = SSL_get_client_random(ssl, client_random, sizeof(client_random));
  if (parts[1] != internal::Hex(client_random, random_len)) return;
  OPENSSL_cleanse(target->data(), target->size());
  *target = absl::HexStringToBytes(parts[2]);
}

absl::StatusOr<SSL_CTX*> BuildListenerCtx(const core::Config& config, size_t index,
                                          const CertTable& certs, X509_STORE* client_store,
                                          ListenerState* state) {
  const core::ListenerConfig& listener = config.listeners[index];
  const std::string where = absl::StrCat("listener[", index, "]");
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr)
    return absl::InternalError(absl::StrCat(where, ": SSL_CTX_new", WithErrors()));
  auto fail = [&](absl::Status s) {
    SSL_CTX_free(ctx);
    return s;
  };

  // TLS 1.0 and 1.1 are never offered, except in the context of a tls_floor that names them
  // (only its clients ever get that context); 1.3 is preferred (highest common version).
  const bool legacy = state->min_version < TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, state->min_version) != 1) {
    return fail(absl::InternalError(absl::StrCat(where, ": set min_tls", WithErrors())));
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                               SSL_OP_NO_TICKET);
  // No session resumption: senders rarely resume an MX session, a full handshake always yields
  // freshly verified client-certificate facts, and nothing has to be shared between shards.
  // num_tickets = 0 also means no NewSessionTicket follows the TLS 1.3 handshake, so the
  // sequence numbers handed to the kernel after it are 0/0 (see Engine::ExportForKernel).
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // Serve exactly the configured chain (never one built from a trust store), and give buffers
  // back while a connection idles.
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_RELEASE_BUFFERS);

  const std::string& ciphers = config.tls.ciphers.empty() ? kDefaultCiphers : config.tls.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("tls.ciphers: \"", ciphers, "\": no usable TLS 1.2 cipher", WithErrors())));
  }
  if (legacy) {
    // OpenSSL 3 refuses TLS 1.0/1.1 (and their SHA-1 signatures) above security level 0. Set
    // after the cipher list, which may carry its own @SECLEVEL.
    const std::string legacy_ciphers = absl::StrCat(ciphers, ":", kLegacyCiphers);
    if (SSL_CTX_set_cipher_list(ctx, legacy_ciphers.c_str()) != 1) {
      return fail(absl::InternalError(
          absl::StrCat(where, ": TLS 1.0/1.1 cipher list for policy.tls_floor", WithErrors())));
    }
    SSL_CTX_set_security_level(ctx, 0);
  }
  const std::string& suites =
      config.tls.ciphersuites.empty() ? kDefaultCipherSuites : config.tls.ciphersuites;
  if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "tls.ciphersuites: \"", suites, "\": not a valid TLS 1.3 suite list", WithErrors())));
  }

  for (const CertPair& pair : certs.entries[0].pairs) {
    if (SSL_CTX_use_cert_and_key(ctx, pair.leaf, pair.key, pair.chain, 1) != 1) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("tls.cert: OpenSSL refuses the certificate", WithErrors())));
    }
  }
  for (size_t e = 1; e < certs.entries.size(); ++e) {
    // Refuse now what the SNI callback would refuse later (a key too small for the security
    // level, for example), naming the entry.
    SSL* probe = SSL_new(ctx);
    bool ok = probe != nullptr;
    for (const CertPair& pair : certs.entries[e].pairs) {
      ok = ok && SSL_use_cert_and_key(probe, pair.leaf, pair.key, pair.chain, 1) == 1;
    }
    SSL_free(probe);
    if (!ok) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "tls.sni[", e - 1, "].cert: OpenSSL refuses the certificate", WithErrors())));
    }
  }

  SSL_CTX_set_client_hello_cb(ctx, ClientHelloCallback, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx, ServerNameCallback);
  SSL_CTX_set_tlsext_servername_arg(ctx, state);
  SSL_CTX_set_keylog_callback(ctx, KeylogCallback);
  SSL_CTX_set_ex_data(ctx, internal::ListenerStateIndex(), state);

  if (listener.client_certs != core::ClientCertMode::kNone) {
    // The CA names sent in CertificateRequest, and the store the chain is verified against.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.tls.client_ca.c_str());
    if (names == nullptr) {
      return fail(ConfigError("tls.client_ca", config.tls.client_ca,
                              "no CA certificate could be read" + WithErrors()));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    if (SSL_CTX_set1_verify_cert_store(ctx, client_store) != 1) {
      return fail(absl::InternalError(absl::StrCat(where, ": set client CA store", WithErrors())));
    }
    int mode = SSL_VERIFY_PEER;
    if (listener.client_certs == core::ClientCertMode::kRequired) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, mode, internal::VerifyCallback);
    SSL_CTX_set_verify_depth(ctx, 8);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  ERR_clear_error();
  return ctx;
}

}  // namespace

TlsContext::~TlsContext() = default;

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Build(
    const core::Config& config, std::vector<std::string>* warnings) {
  std::vector<std::string> ignored;
  if (warnings == nullptr) warnings = &ignored;
  bool any_tls = false;
  for (const core::ListenerConfig& l : config.listeners) any_tls |= l.tls != core::TlsMode::kNone;
  if (!any_tls) return std::shared_ptr<const TlsContext>();
  ERR_clear_error();

  std::shared_ptr<TlsContext> context(new TlsContext());
  context->impl_ = std::make_unique<Impl>();
  Impl& impl = *context->impl_;

  // Entry 0: the default certificate(s).
  const std::vector<core::CertKeyPair> default_pairs = DefaultPairs(config.tls);
  if (default_pairs.empty()) {
    return absl::InvalidArgumentError(
        "tls.cert: a TLS listener needs a default certificate (tls.cert and tls.key)");
  }
  impl.certs.entries.emplace_back();
  absl::Status s =
      LoadEntry("tls", default_pairs, warnings, impl.certs.entries[0], context->chains_);
  if (!s.ok()) return s;
  for (const CertPair& pair : impl.certs.entries[0].pairs) {
    std::vector<std::string>& names = impl.certs.entries[0].names;
    for (std::string& n : LeafNames(pair.leaf)) {
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
    }
  }
  for (ChainInfo& info : context->chains_) {
    info.names.push_back("");
    for (const std::string& n : impl.certs.entries[0].names) info.names.push_back(n);
  }

  for (size_t i = 0; i < config.tls.sni.size(); ++i) {
    const core::SniConfig& sni = config.tls.sni[i];
    const std::string base = absl::StrCat("tls.sni[", i, "]");
    impl.certs.entries.emplace_back();
    CertEntry& entry = impl.certs.entries.back();
    for (const std::string& n : sni.names) {
      std::string name = absl::AsciiStrToLower(n);
      if (!name.empty() && name.back() == '.') name.pop_back();
      entry.names.push_back(std::move(name));
    }
    const size_t first_chain = context->chains_.size();
    s = LoadEntry(base, SniPairs(sni), warnings, entry, context->chains_);
    if (!s.ok()) return s;
    for (size_t c = first_chain; c < context->chains_.size(); ++c) {
      context->chains_[c].names = entry.names;
    }
    // A name the certificate does not cover is served anyway (the operator asked for it), but
    // clients that check names will fail: say so.
    for (const std::string& name : entry.names) {
      const std::string probe = name.rfind("*.", 0) == 0 ? "ringmx-probe" + name.substr(1) : name;
      for (size_t p = 0; p < entry.pairs.size(); ++p) {
        if (X509_check_host(entry.pairs[p].leaf, probe.c_str(), probe.size(), 0, nullptr) != 1) {
          warnings->push_back(absl::StrCat(context->chains_[first_chain + p].config_key, ": ",
                                           SniPairs(sni)[p].cert,
                                           ": the certificate does not cover \"", name, "\""));
        }
      }
    }
    ERR_clear_error();
  }

  bool verifies = false;
  for (const core::ListenerConfig& l : config.listeners) {
    verifies |= l.tls != core::TlsMode::kNone && l.client_certs != core::ClientCertMode::kNone;
  }
  if (verifies) {
    if (config.tls.client_ca.empty()) {
      return absl::InvalidArgumentError(
          "tls.client_ca: client_certs is set on a listener but tls.client_ca is not");
    }
    absl::StatusOr<BIO*> bio = OpenFile("tls.client_ca", config.tls.client_ca);
    if (!bio.ok()) return bio.status();
    BIO_free(*bio);
    impl.client_store = X509_STORE_new();
    if (impl.client_store == nullptr ||
        X509_STORE_load_file(impl.client_store, config.tls.client_ca.c_str()) != 1) {
      return ConfigError("tls.client_ca", config.tls.client_ca,
                         "cannot load CA certificates" + WithErrors());
    }
  }

  impl.floors = config.policy.tls_floor;
  impl.listeners.resize(config.listeners.size());
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const core::ListenerConfig& l = config.listeners[i];
    if (l.tls == core::TlsMode::kNone) continue;
    auto state = std::make_unique<ListenerState>();
    state->name = l.name;
    if (l.min_tls == "1.2") {
      state->min_version = TLS1_2_VERSION;
    } else if (l.min_tls == "1.3") {
      state->min_version = TLS1_3_VERSION;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("listener[", i, "].min_tls: \"", l.min_tls,
                                                     "\": expected \"1.2\" or \"1.3\""));
    }
    state->sni_strict = l.sni_strict;
    state->client_certs = l.client_certs;
    state->certs = &impl.certs;
    absl::StatusOr<SSL_CTX*> ctx =
        BuildListenerCtx(config, i, impl.certs, impl.client_store, state.get());
    if (!ctx.ok()) return ctx.status();
    Impl::Listener& built = impl.listeners[i];
    built.ctx = *ctx;
    built.state = std::move(state);

    // tls_floor: one more context per distinct floor version other than the listener's own, the
    // listener's state copied but for the minimum version.
    for (size_t f = 0; f < impl.floors.size(); ++f) {
      const int version = ProtocolVersion(impl.floors[f].min_tls);
      if (version == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy.tls_floor[", f, "].min_tls: \"", impl.floors[f].min_tls,
                         "\": expected \"1.0\", \"1.1\", \"1.2\" or \"1.3\""));
      }
      SSL_CTX* floor_ctx = version == built.state->min_version ? built.ctx : nullptr;
      for (const Impl::Variant& v : built.floor_variants) {
        if (v.state->min_version == version) floor_ctx = v.ctx;
      }
      if (floor_ctx == nullptr) {
        Impl::Variant variant;
        variant.state = std::make_unique<ListenerState>(*built.state);
        variant.state->min_version = version;
        absl::StatusOr<SSL_CTX*> vctx =
            BuildListenerCtx(config, i, impl.certs, impl.client_store, variant.state.get());
        if (!vctx.ok()) return vctx.status();
        variant.ctx = *vctx;
        floor_ctx = variant.ctx;
        built.floor_variants.push_back(std::move(variant));
      }
      built.floor_ctx.push_back(floor_ctx);
    }
  }
  ERR_clear_error();
  return std::shared_ptr<const TlsContext>(std::move(context));
}

SSL_CTX* TlsContext::listener_ctx(size_t index) const {
  if (impl_ == nullptr || index >= impl_->listeners.size()) return nullptr;
  return impl_->listeners[index].ctx;
}

SSL_CTX* TlsContext::ContextFor(size_t index, const core::IpAddress& client) const {
  if (impl_ == nullptr || index >= impl_->listeners.size()) return nullptr;
  const Impl::Listener& listener = impl_->listeners[index];
  if (listener.ctx == nullptr) return nullptr;
  const int floor = FindTlsFloor(impl_->floors, client);
  if (floor < 0) return listener.ctx;
  return listener.floor_ctx[static_cast<size_t>(floor)];
}

}  // namespace ringmx::tls
