// End-to-end per-network TLS floors (`[[policy.tls_floor]]`, issue 11 item 5) against the real
// server: a TLS 1.0-only client from a floor network (127.0.0.2) completes STARTTLS and implicit
// TLS and sends a message; the same client from elsewhere (127.0.0.3) gets a protocol_version
// alert and the server logs one line naming it and the version it offered; TLS 1.2 clients work
// from anywhere; a reload adds a floor; `ringmx check` refuses a bad floor.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/pki_server_test.h"
#include "tests/testing/test_pki.h"

namespace ringmx::testing {
namespace {

// A blocking SMTP client bound to a chosen source address on 127.0.0.0/8, plaintext first, then
// TLS on the same socket (OpenSSL, pinned to one protocol version). Reads are bounded by a socket
// timeout.
class BoundClient {
 public:
  // Connects from `source` (any port) to 127.0.0.1:`port`; nullptr on failure.
  static std::unique_ptr<BoundClient> Connect(const std::string& source, uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    std::unique_ptr<BoundClient> client(new BoundClient(fd));
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1) return nullptr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) return nullptr;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return nullptr;
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    client->endpoint_ = absl::StrCat(source, ":", ntohs(local.sin_port));
    return client;
  }

  ~BoundClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    close(fd_);
  }

  // "127.0.0.3:41234": how the server names this client.
  const std::string& endpoint() const { return endpoint_; }

  // Runs the client side of the handshake, offering exactly `version`. On failure false, with
  // the OpenSSL errors in `error` and the reason code of the last one in `reason`.
  bool Handshake(int version, std::string* error, int* reason) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (version < TLS1_2_VERSION) {
      // What an old client offers: OpenSSL 3 needs security level 0 for TLS 1.0/1.1 itself.
      SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
      SSL_CTX_set_security_level(ctx_, 0);
    }
    SSL_CTX_set_min_proto_version(ctx_, version);
    SSL_CTX_set_max_proto_version(ctx_, version);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ERR_clear_error();
    if (SSL_connect(ssl_) == 1) return true;
    unsigned long last = 0;
    std::string errors;
    while (unsigned long e = ERR_get_error()) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", buf);
      last = e;
    }
    if (error != nullptr) *error = errors;
    if (reason != nullptr) *reason = ERR_GET_REASON(last);
    return false;
  }

  bool Send(std::string_view bytes) {
    if (ssl_ != nullptr) {
      return SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
             static_cast<int>(bytes.size());
    }
    return write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  }

  // One whole reply, over TLS once Handshake() succeeded; code -1 on EOF, error or timeout.
  SmtpReply ReadReply() {
    SmtpReply reply;
    for (int reads = 0; reads < 1000 && !TakeReply(buffer_, reply); ++reads) {
      char buf[4096];
      const long n =
          ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof(buf)) : read(fd_, buf, sizeof(buf));
      if (n <= 0) return SmtpReply{};
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return reply;
  }

  SmtpReply Command(std::string_view line) {
    if (!Send(std::string(line) + "\r\n")) return {};
    return ReadReply();
  }

  std::string version() const { return ssl_ != nullptr ? SSL_get_version(ssl_) : ""; }

 private:
  explicit BoundClient(int fd) : fd_(fd) {}
  int fd_;
  std::string endpoint_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

class TlsFloorTest : public PkiServerTest {
 protected:
  // Listeners "mx" (STARTTLS) and "smtps" (implicit), both min_tls = "1.2"; `floors` is appended
  // to [policy]. The [tls] ktls key is left at its default (true): a TLS 1.0 session must stay
  // on the userspace record layer by itself.
  std::string Config(const std::string& floors) const {
    return absl::StrCat(
        "hostname = \"mx.example.test\"\nworkers = 2\n\n",
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n"
        "min_tls = \"1.2\"\n\n",
        "[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n"
        "min_tls = \"1.2\"\n\n",
        "[tls]\ncert = \"", pki_->mx_cert, "\"\nkey = \"", pki_->mx_key, "\"\n\n",
        "[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = []\n\n", floors,
        "\n[spool]\npath = \"", dir_.path(), "/spool\"\n\n[control]\nsocket = \"", dir_.path(),
        "/control.sock\"\n");
  }
  static constexpr char kFloor[] =
      "[[policy.tls_floor]]\nnetworks = [\"127.0.0.2/32\"]\nmin_tls = \"1.0\"\n";

  // A session from `source` on `listener`, up to TLS with `version` (and the greeting of an
  // implicit listener). nullptr with the handshake's errors and reason on failure.
  std::unique_ptr<BoundClient> Session(const std::string& source, const std::string& listener,
                                       int version, std::string* error = nullptr,
                                       int* reason = nullptr, std::string* endpoint = nullptr) {
    std::unique_ptr<BoundClient> client = BoundClient::Connect(source, server_->port(listener));
    if (client == nullptr) {
      ADD_FAILURE() << "cannot connect from " << source;
      return nullptr;
    }
    if (endpoint != nullptr) *endpoint = client->endpoint();
    if (listener == "mx") {
      EXPECT_EQ(client->ReadReply().code, 220);
      EXPECT_EQ(client->Command("EHLO old.example.test").code, 250);
      EXPECT_EQ(client->Command("STARTTLS").code, 220);
    }
    if (!client->Handshake(version, error, reason)) return nullptr;
    if (listener != "mx") {
      const SmtpReply greeting = client->ReadReply();
      if (greeting.code != 220) {
        if (error != nullptr) *error = "no greeting over TLS: " + greeting.text;
        return nullptr;
      }
    }
    return client;
  }

  // EHLO and one message over `client`; the stored .eml, "" on failure (the envelope JSON goes
  // to last_json_).
  std::string Deliver(BoundClient& client) {
    EXPECT_EQ(client.Command("EHLO old.example.test").code, 250);
    EXPECT_EQ(client.Command("MAIL FROM:<printer@remote.test>").code, 250);
    EXPECT_EQ(client.Command("RCPT TO:<u@example.test>").code, 250);
    EXPECT_EQ(client.Command("DATA").code, 354);
    client.Send("Subject: scan\r\n\r\nfrom an old printer\r\n.\r\n");
    const SmtpReply stored = client.ReadReply();
    EXPECT_EQ(stored.code, 250) << stored.text;
    const std::string id = QueuedId(stored.text);
    if (id.empty()) return "";
    last_json_ = StoredJson(server_->spool(), id);
    return StoredEml(server_->spool(), id);
  }

  // Expects a TLS 1.0 client from 127.0.0.3 to be refused with protocol_version on `listener`,
  // and the refusal line in the server's log.
  void ExpectRefused(const std::string& listener) {
    std::string error, endpoint;
    int reason = 0;
    auto refused = Session("127.0.0.3", listener, TLS1_VERSION, &error, &reason, &endpoint);
    EXPECT_EQ(refused, nullptr);
    EXPECT_EQ(reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) << error;
    EXPECT_TRUE(server_->WaitForLog(
        absl::StrCat(" client=", endpoint, " listener=", listener,
                     " handshake refused: client offered TLSv1.0, minimum TLSv1.2")))
        << server_->Log();
  }

  std::string last_json_;
};

TEST_F(TlsFloorTest, Tls10ClientInTheFloorNetworkSendsMailOverStartTls) {
  StartServer(Config(kFloor));
  std::string error, endpoint;
  auto client = Session("127.0.0.2", "mx", TLS1_VERSION, &error, nullptr, &endpoint);
  ASSERT_NE(client, nullptr) << error;
  EXPECT_EQ(client->version(), "TLSv1");
  const std::string eml = Deliver(*client);
  EXPECT_NE(eml.find("(using TLSv1 with cipher "), std::string::npos) << eml.substr(0, 600);
  EXPECT_NE(eml.find("[127.0.0.2]"), std::string::npos) << eml.substr(0, 600);
  EXPECT_NE(last_json_.find("\"version\":\"TLSv1\""), std::string::npos) << last_json_;
  // OpenSSL's record layer carries the session: the kernel takes TLS 1.2 and 1.3 only.
  EXPECT_TRUE(server_->WaitForLog(
      absl::StrCat(" client=", endpoint, " listener=mx mode=starttls", " version=TLSv1 ")))
      << server_->Log();
  const std::string log = server_->Log();
  const size_t line = log.find(absl::StrCat(" client=", endpoint, " listener=mx mode=starttls"));
  ASSERT_NE(line, std::string::npos);
  EXPECT_NE(log.substr(line, log.find('\n', line) - line).find("record_layer=userspace"),
            std::string::npos)
      << log;
  EXPECT_EQ(client->Command("QUIT").code, 221);
}

TEST_F(TlsFloorTest, Tls10ClientOutsideTheFloorIsRefusedOverStartTls) {
  StartServer(Config(kFloor));
  ExpectRefused("mx");
  // A TLS 1.2 client from the same address is served as always.
  std::string error;
  auto modern = Session("127.0.0.3", "mx", TLS1_2_VERSION, &error);
  ASSERT_NE(modern, nullptr) << error;
  EXPECT_EQ(modern->version(), "TLSv1.2");
  EXPECT_NE(Deliver(*modern).find("(using TLSv1.2 with cipher "), std::string::npos);
}

TEST_F(TlsFloorTest, TheFloorAppliesToImplicitTlsToo) {
  StartServer(Config(kFloor));
  std::string error;
  auto old = Session("127.0.0.2", "smtps", TLS1_VERSION, &error);
  ASSERT_NE(old, nullptr) << error;
  EXPECT_EQ(old->version(), "TLSv1");
  EXPECT_NE(Deliver(*old).find("(using TLSv1 with cipher "), std::string::npos);

  ExpectRefused("smtps");
  auto modern = Session("127.0.0.3", "smtps", TLS1_2_VERSION, &error);
  ASSERT_NE(modern, nullptr) << error;
  EXPECT_EQ(modern->Command("EHLO new.example.test").code, 250);
}

TEST_F(TlsFloorTest, AReloadAddsTheFloor) {
  StartServer(Config(""));
  std::string error;
  int reason = 0;
  EXPECT_EQ(Session("127.0.0.2", "mx", TLS1_VERSION, &error, &reason), nullptr);
  EXPECT_EQ(reason, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) << error;

  { std::ofstream(server_->config_path()) << Config(kFloor); }
  CommandResult reload = RunCommand({RingmxBinary(), "ctl", "-c", server_->config_path(), "reload"},
                                    absl::Seconds(10));
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  // Shards swap snapshots between completion batches: retry a few connections until one is
  // served (bounded; each attempt is a full connection).
  std::unique_ptr<BoundClient> old;
  for (int attempt = 0; attempt < 20 && old == nullptr; ++attempt) {
    old = Session("127.0.0.2", "mx", TLS1_VERSION, &error);
  }
  ASSERT_NE(old, nullptr) << error;
  EXPECT_EQ(old->Command("EHLO old.example.test").code, 250);
}

TEST_F(TlsFloorTest, CheckRefusesABadFloorNamingTheKey) {
  { std::ofstream(dir_ / "good.toml") << Config(kFloor); }
  CommandResult good =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "good.toml"}, absl::Seconds(10));
  EXPECT_EQ(good.exit_code, 0) << good.output;
  {
    std::ofstream(dir_ / "bad.toml")
        << Config("[[policy.tls_floor]]\nnetworks = [\"127.0.0.2/32\"]\nmin_tls = \"0.9\"\n");
  }
  CommandResult bad =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "bad.toml"}, absl::Seconds(10));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("policy.tls_floor[0].min_tls"), std::string::npos) << bad.output;
  {
    std::ofstream(dir_ / "empty.toml")
        << Config("[[policy.tls_floor]]\nnetworks = []\nmin_tls = \"1.0\"\n");
  }
  CommandResult empty =
      RunCommand({RingmxBinary(), "check", "-c", dir_ / "empty.toml"}, absl::Seconds(10));
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_NE(empty.output.find("policy.tls_floor[0].networks"), std::string::npos) << empty.output;
}

}  // namespace
}  // namespace ringmx::testing
