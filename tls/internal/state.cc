#include "tls/internal/state.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace ringmx::tls::internal {

CertTable::~CertTable() {
  for (CertEntry& entry : entries) {
    for (CertPair& pair : entry.pairs) {
      X509_free(pair.leaf);
      sk_X509_pop_free(pair.chain, X509_free);
      EVP_PKEY_free(pair.key);
    }
  }
}

namespace {

bool WildcardMatches(const std::string& pattern, const std::string& name) {
  // "*.d" matches exactly one extra label: "x.d" with no dot in "x" and "x" not empty.
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string::npos) return false;
  return name.compare(dot + 1, std::string::npos, pattern, 2, std::string::npos) == 0;
}

}  // namespace

int CertTable::Find(const std::string& name) const {
  if (name.empty()) return -1;
  // Exact names: SNI entries first, then the default (entry 0).
  for (size_t i = 1; i <= entries.size(); ++i) {
    const size_t e = i % entries.size();
    for (const std::string& n : entries[e].names) {
      if (n == name) return static_cast<int>(e);
    }
  }
  for (size_t i = 1; i <= entries.size(); ++i) {
    const size_t e = i % entries.size();
    for (const std::string& n : entries[e].names) {
      if (WildcardMatches(n, name)) return static_cast<int>(e);
    }
  }
  return -1;
}

SessionState::~SessionState() {
  OPENSSL_cleanse(client_traffic_secret.data(), client_traffic_secret.size());
  OPENSSL_cleanse(server_traffic_secret.data(), server_traffic_secret.size());
}

int ListenerStateIndex() {
  // Process-wide constant, allocated once (thread-safe static initialisation).
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int SessionStateIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int ClientCtxStateIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

SessionState* GetSessionState(const SSL* ssl) {
  return static_cast<SessionState*>(SSL_get_ex_data(ssl, SessionStateIndex()));
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  SessionState* state = ssl != nullptr ? GetSessionState(ssl) : nullptr;
  if (state == nullptr) return preverify_ok;
  if (preverify_ok != 1 && state->verify_error == X509_V_OK) {
    state->verify_error = X509_STORE_CTX_get_error(store_ctx);
    state->verify_error_depth = X509_STORE_CTX_get_error_depth(store_ctx);
    X509* cert = X509_STORE_CTX_get_current_cert(store_ctx);
    if (cert != nullptr) state->verify_error_subject = NameRfc2253(X509_get_subject_name(cert));
  }
  if (state->listener != nullptr &&
      state->listener->client_certs == core::ClientCertMode::kOptional) {
    return 1;
  }
  return preverify_ok;
}

std::string DrainErrors(std::vector<int>* ssl_reasons) {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  unsigned long err;
  while ((err = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
    if (ssl_reasons != nullptr && ERR_GET_LIB(err) == ERR_LIB_SSL) {
      ssl_reasons->push_back(ERR_GET_REASON(err));
    }
  }
  return out;
}

std::string VersionName(int version) {
  switch (version) {
    case SSL3_VERSION:
      return "SSLv3";
    case TLS1_VERSION:
      return "TLSv1.0";
    case TLS1_1_VERSION:
      return "TLSv1.1";
    case TLS1_2_VERSION:
      return "TLSv1.2";
    case TLS1_3_VERSION:
      return "TLSv1.3";
    default:
      return absl::StrFormat("0x%04x", version);
  }
}

std::string NameRfc2253(const X509_NAME* name) {
  if (name == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  std::string out;
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return "";
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0) return "";
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string Hex(const unsigned char* data, size_t len) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(data), len));
}

std::string SpkiSha256Hex(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  const int ok = EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return ok == 1 ? Hex(md, md_len) : "";
}

}  // namespace ringmx::tls::internal
