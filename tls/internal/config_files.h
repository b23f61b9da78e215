// Private to tls/: what the server contexts (tls_context.cc) and the client contexts
// (client_context.cc) share when they turn config keys into SSL_CTXs: the default cipher lists,
// and errors that name the config key and file and carry OpenSSL's reasons.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <openssl/bio.h>

namespace ringmx::tls::internal {

// TLS 1.2: forward secrecy (ECDHE) and AEAD only; AES-256 first, ChaCha20 for peers without AES
// hardware (a server context's SSL_OP_PRIORITIZE_CHACHA moves it up when the client prefers it).
inline constexpr char kDefaultCiphers[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
inline constexpr char kDefaultCipherSuites[] =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

// kInvalidArgument "<key>: <path>: <what>".
absl::Status ConfigError(std::string_view key, std::string_view path, std::string_view what);

// Empties OpenSSL's error queue into what a failure message gets appended: "" or ": <errors>".
std::string WithErrors();

// Opens `path` for reading as a file BIO (the caller frees it). kInvalidArgument naming `key`,
// the file and the errno text ("route[0].tls_ca: /x/ca.pem: No such file or directory").
absl::StatusOr<BIO*> OpenFile(std::string_view key, const std::string& path);

}  // namespace ringmx::tls::internal
