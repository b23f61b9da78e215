// A blocking TLS SMTP client for end-to-end tests (OpenSSL on the socket of an SmtpClient or of
// its own connection), with the knobs the TLS tests need: SNI, client certificate, versions,
// suites, signature algorithms. Every read is bounded by a socket timeout. Test-only.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"

#include "tests/testing/smtp_client.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace ringmx::testing {

struct TlsClientOptions {
  std::string sni;        // "" sends none
  std::string cert, key;  // client certificate, "" for none
  int min_version = 0;    // e.g. TLS1_2_VERSION; 0 = library default
  int max_version = 0;
  std::string ciphersuites;  // TLS 1.3 suites, "" = default
  std::string cipher_list;   // TLS 1.2 ciphers, "" = default
  std::string sigalgs;       // e.g. "ECDSA+SHA256", "" = default
};

class TlsSmtpClient {
 public:
  // Runs the handshake on `plain`'s socket (after the server's "220 Ready to start TLS" has been
  // read). nullptr and `error` on failure. `plain` must outlive the returned client.
  static std::unique_ptr<TlsSmtpClient> Handshake(SmtpClient& plain,
                                                  const TlsClientOptions& options,
                                                  std::string* error);
  ~TlsSmtpClient();

  bool Send(std::string_view bytes);
  SmtpReply ReadReply(absl::Duration timeout = absl::Seconds(10));
  SmtpReply Command(std::string_view line);
  // TLS 1.3: updates our sending keys with the next write (RFC 8446 §4.6.3), asking the server
  // to update its own when `ask_peer`. False if OpenSSL refuses (e.g. TLS 1.2).
  bool KeyUpdate(bool ask_peer);
  // Sends close_notify (the TLS-level goodbye) without closing the socket.
  void SendCloseNotify();
  // Reads until the server ends the session; true if it did so with a close_notify.
  bool ServerSentCloseNotify();

  std::string version() const;
  std::string cipher() const;
  int served_chain_length() const;
  std::string served_leaf_spki_sha256() const;  // hex
  std::string pending() const { return buffer_; }

 private:
  TlsSmtpClient() = default;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

// Connects, runs EHLO and STARTTLS, and hands over to TLS. nullptr and `error` on failure.
std::unique_ptr<TlsSmtpClient> StartTls(SmtpClient& plain, const TlsClientOptions& options,
                                        std::string* error);

}  // namespace ringmx::testing
