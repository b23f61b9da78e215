#include "tests/testing/tls_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tests/testing/test_pki.h"

namespace ringmx::testing {
std::unique_ptr<TlsSmtpClient> TlsSmtpClient::Handshake(SmtpClient& plain,
                                                        const TlsClientOptions& options,
                                                        std::string* error) {
  std::unique_ptr<TlsSmtpClient> client(new TlsSmtpClient());
  client->ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX* ctx = client->ctx_;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  if (options.min_version != 0) {
    // Old versions are refused by OpenSSL's default security level on the client too.
    if (options.min_version < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, options.min_version);
  }
  if (options.max_version != 0) {
    if (options.max_version < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_max_proto_version(ctx, options.max_version);
  }
  if (!options.ciphersuites.empty()) SSL_CTX_set_ciphersuites(ctx, options.ciphersuites.c_str());
  if (!options.cipher_list.empty()) SSL_CTX_set_cipher_list(ctx, options.cipher_list.c_str());
  if (!options.sigalgs.empty()) SSL_CTX_set1_sigalgs_list(ctx, options.sigalgs.c_str());
  if (!options.cert.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx, options.cert.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), SSL_FILETYPE_PEM) != 1)) {
    if (error) *error = "client certificate: " + OpenSslErrors();
    return nullptr;
  }
  client->ssl_ = SSL_new(ctx);
  timeval tv{10, 0};
  setsockopt(plain.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SSL_set_fd(client->ssl_, plain.fd());
  if (!options.sni.empty()) SSL_set_tlsext_host_name(client->ssl_, options.sni.c_str());
  if (SSL_connect(client->ssl_) != 1) {
    if (error) *error = "handshake failed: " + OpenSslErrors();
    return nullptr;
  }
  return client;
}

TlsSmtpClient::~TlsSmtpClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

bool TlsSmtpClient::Send(std::string_view bytes) {
  return bytes.empty() || SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
                              static_cast<int>(bytes.size());
}

SmtpReply TlsSmtpClient::ReadReply(absl::Duration timeout) {
  timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)), 0};
  setsockopt(SSL_get_fd(ssl_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SmtpReply reply;
  while (!TakeReply(buffer_, reply)) {
    char buf[16384];
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n <= 0) return SmtpReply{};  // code -1
    buffer_.append(buf, static_cast<size_t>(n));
  }
  return reply;
}

SmtpReply TlsSmtpClient::Command(std::string_view line) {
  if (!Send(absl::StrCat(absl::string_view(line.data(), line.size()), "\r\n"))) return {};
  return ReadReply();
}

bool TlsSmtpClient::KeyUpdate(bool ask_peer) {
  return SSL_key_update(ssl_, ask_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) ==
         1;
}

void TlsSmtpClient::SendCloseNotify() { SSL_shutdown(ssl_); }

bool TlsSmtpClient::ServerSentCloseNotify() {
  char buf[4096];
  while (SSL_read(ssl_, buf, sizeof(buf)) > 0) {
  }
  return (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
}

std::string TlsSmtpClient::version() const { return SSL_get_version(ssl_); }
std::string TlsSmtpClient::cipher() const { return SSL_get_cipher_name(ssl_); }

int TlsSmtpClient::served_chain_length() const {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_);
  return chain == nullptr ? 0 : sk_X509_num(chain);
}

std::string TlsSmtpClient::served_leaf_spki_sha256() const {
  X509* leaf = SSL_get1_peer_certificate(ssl_);
  if (leaf == nullptr) return "";
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der);
  X509_free(leaf);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), md_len));
}

std::unique_ptr<TlsSmtpClient> StartTls(SmtpClient& plain, const TlsClientOptions& options,
                                        std::string* error) {
  SmtpReply ehlo = plain.Command("EHLO tls-client.example.test");
  if (ehlo.code != 250 || ehlo.text.find("STARTTLS") == std::string::npos) {
    if (error) *error = "STARTTLS not offered: " + ehlo.text;
    return nullptr;
  }
  SmtpReply ready = plain.Command("STARTTLS");
  if (ready.code != 220) {
    if (error) *error = "STARTTLS refused: " + ready.text;
    return nullptr;
  }
  return TlsSmtpClient::Handshake(plain, options, error);
}

}  // namespace ringmx::testing
