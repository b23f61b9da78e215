#include "tls/chain_probe.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/internal/state.h"

namespace ringmx::tls {
absl::StatusOr<std::string> SpkiSha256Hex(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (cert == nullptr)
    return absl::InvalidArgumentError("not a DER certificate: " + internal::DrainErrors());
  unsigned char* spki = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
  X509_free(cert);
  if (len <= 0)
    return absl::InternalError("cannot encode the public key: " + internal::DrainErrors());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const int ok =
      EVP_Digest(spki, static_cast<size_t>(len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(spki);
  if (ok != 1) return absl::InternalError("sha256: " + internal::DrainErrors());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), digest_len));
}

struct ChainProbe::Impl {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // peer -> us (owned by ssl)
  BIO* out = nullptr;  // us -> peer (owned by ssl)
  ~Impl() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
  }
};

absl::StatusOr<std::unique_ptr<ChainProbe>> ChainProbe::Create(const std::string& sni) {
  std::unique_ptr<ChainProbe> probe(new ChainProbe());
  probe->impl_ = std::make_unique<Impl>();
  Impl& impl = *probe->impl_;
  impl.ctx = SSL_CTX_new(TLS_client_method());
  if (impl.ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + internal::DrainErrors());
  SSL_CTX_set_verify(impl.ctx, SSL_VERIFY_NONE, nullptr);
  impl.ssl = SSL_new(impl.ctx);
  if (impl.ssl == nullptr) return absl::InternalError("SSL_new: " + internal::DrainErrors());
  impl.in = BIO_new(BIO_s_mem());
  impl.out = BIO_new(BIO_s_mem());
  SSL_set_bio(impl.ssl, impl.in, impl.out);
  SSL_set_connect_state(impl.ssl);
  if (!sni.empty() && SSL_set_tlsext_host_name(impl.ssl, sni.c_str()) != 1) {
    return absl::InvalidArgumentError("bad SNI name: " + internal::DrainErrors());
  }
  return probe;
}

ChainProbe::~ChainProbe() = default;

void ChainProbe::PutCiphertext(std::string_view bytes) {
  BIO_write(impl_->in, bytes.data(), static_cast<int>(bytes.size()));
}

absl::StatusOr<bool> ChainProbe::Handshake() {
  const int rc = SSL_do_handshake(impl_->ssl);
  if (rc == 1) return true;
  const int err = SSL_get_error(impl_->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
  return absl::UnavailableError(absl::StrCat("TLS handshake failed: ", internal::DrainErrors()));
}

std::string ChainProbe::TakeCiphertext() {
  std::string out;
  char buf[16384];
  int n;
  while ((n = BIO_read(impl_->out, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::vector<std::string> ChainProbe::ServedChainDer() const {
  std::vector<std::string> chain;
  STACK_OF(X509)* certs = SSL_get_peer_cert_chain(impl_->ssl);
  if (certs == nullptr) return chain;
  for (int i = 0; i < sk_X509_num(certs); ++i) {
    unsigned char* der = nullptr;
    const int len = i2d_X509(sk_X509_value(certs, i), &der);
    if (len > 0) chain.emplace_back(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  return chain;
}

std::string ChainProbe::version() const { return SSL_get_version(impl_->ssl); }

}  // namespace ringmx::tls
