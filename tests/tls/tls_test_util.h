// Helpers for the tls/ unit tests: the shared test PKI, configs, an OpenSSL client over memory
// BIOs, and a byte shuttle between that client and a tls::Engine. Everything stays in memory.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include <openssl/ssl.h>

#include "core/config.h"
#include "tests/testing/test_pki.h"
#include "tls/engine.h"
#include "tls/tls_context.h"

namespace ringmx::tls::testing {

// A Status message as std::string (Debian's abseil has its own string_view, which gMock's string
// matchers do not take).
inline std::string Message(const absl::Status& status) { return std::string(status.message()); }

// Generated once per test binary, in a temporary directory removed at exit.
const ringmx::testing::TestPki& Pki();

// A config with one listener ("mx", STARTTLS, min_tls 1.2, no client certs) serving mx.pem /
// mx.key as the default, plus one SNI entry (sni.pem for sni.example.test and
// *.wild.example.test) and tls.client_ca = client-ca.pem.
core::Config BaseConfig();

// Builds `config`; fails the test (and returns nullptr) on error.
std::shared_ptr<const TlsContext> MustBuild(const core::Config& config);

// The client endpoint every test engine is created with.
core::Endpoint TestClientEndpoint();  // 127.0.0.1:4242

std::unique_ptr<Engine> MustEngine(std::shared_ptr<const TlsContext> context, size_t listener = 0,
                                   bool implicit = false);

struct ClientOptions {
  int min_version = 0;       // 0: OpenSSL's default
  int max_version = 0;       // 0: highest
  std::string sni;           // "" : no server_name extension
  std::string ciphers;       // TLS 1.2 list, "" default
  std::string ciphersuites;  // TLS 1.3 suites, "" default
  std::string sigalgs;       // "" default
  std::string cert;          // client certificate chain file, "" none
  std::string key;
  std::string trust;  // CA file: verify the server chain (and `verify_host`) when set
  std::string verify_host;
  bool legacy = false;  // security level 0, for TLS 1.0/1.1 clients
};

// The client side of one TLS connection, OpenSSL over memory BIOs.
class TestClient {
 public:
  explicit TestClient(const ClientOptions& options);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  SSL* ssl() const { return ssl_; }
  void Put(std::string_view ciphertext);
  std::string Take();
  // One SSL_do_handshake step: 1 done, 0 in progress, -1 failed (`error()` says why).
  int Step();
  bool done() const { return done_; }
  // Writes plaintext; the records are then in Take().
  void Write(std::string_view plaintext);
  // Reads all available plaintext; false on a fatal error (see error()).
  bool Read(std::string& plaintext);
  const std::string& error() const { return error_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
  bool done_ = false;
  std::string error_;
};

struct HandshakeOutcome {
  absl::Status server = absl::UnknownError("not run");  // OK when the engine established
  bool client_done = false;
  std::string client_error;        // OpenSSL errors seen by the client (handshake or first read)
  std::string server_last_flight;  // what the engine produced in its last step (the alert)
};

// Moves bytes between `client` and `server` until both are done or one fails. On a server error
// the last server flight (holding the alert) is given to the client, which then reads once so
// that `client_error` says what the client saw.
HandshakeOutcome Handshake(TestClient& client, Engine& server);

// One TLS record parsed from a byte string.
struct Record {
  int type = 0;
  int version = 0;
  std::string body;  // after the 5-byte header
  std::string header;
};
// Splits `bytes` into whole records; a trailing partial record fails the test.
std::vector<Record> SplitRecords(const std::string& bytes);

}  // namespace ringmx::tls::testing
