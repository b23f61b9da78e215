#include "core/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The smallest valid file; tests append to it. The listener is on lines 2-4.
constexpr std::string_view kMinimal =
    "hostname = \"mx.example.test\"\n"
    "[[listener]]\n"
    "name = \"mx\"\n"
    "address = \"127.0.0.1:2525\"\n";

// The message of the error ParseConfig gives for `text`; fails the test if there is none or it is
// not kInvalidArgument.
std::string ErrorOf(std::string_view text, std::string_view base_dir = "") {
  absl::StatusOr<Config> config = ParseConfig(text, "ringmx.toml", base_dir);
  if (config.ok()) {
    ADD_FAILURE() << "parsed without error:\n" << text;
    return "";
  }
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  return std::string(Sv(config.status().message()));
}

// `extra` appended to kMinimal: it starts on line 5, inside listener[0] unless it opens a table.
std::string WithMinimal(std::string_view extra) { return absl::StrCat(Av(kMinimal), Av(extra)); }

// `extra` as top-level keys on line 2, between the hostname and the listener.
std::string WithTopLevel(std::string_view extra) {
  return absl::StrCat("hostname = \"mx.example.test\"\n", Av(extra),
                      "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:2525\"\n");
}

// "cert1 + key1, cert2 + key2": pairs in one comparable string.
std::string PairsText(const std::vector<CertKeyPair>& pairs) {
  std::string out;
  for (const CertKeyPair& p : pairs) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", p.cert, " + ", p.key);
  }
  return out;
}

// A [tls] section with a default certificate, for listeners that turn TLS on.
constexpr std::string_view kTlsSection = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh directory under the test temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "ringmx_config_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, std::string_view text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Valid files.

TEST(ConfigTest, FullFileRoundTripsIntoTheStruct) {
  const std::string text = ReadFile(RINGMX_CORE_TESTDATA "/full.toml");
  ASSERT_FALSE(text.empty());
  absl::StatusOr<Config> parsed = ParseConfig(text, "full.toml", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;

  EXPECT_EQ(c.hostname, "MX.Example.Test");  // as written, minus the trailing dot
  EXPECT_EQ(c.workers, 4);

  ASSERT_EQ(c.listeners.size(), 2u);
  const ListenerConfig& mx = c.listeners[0];
  EXPECT_EQ(mx.name, "mx");
  EXPECT_EQ(mx.address.ToString(), "0.0.0.0:25");
  EXPECT_EQ(mx.tls, TlsMode::kStartTls);
  EXPECT_TRUE(mx.tls_required);
  EXPECT_EQ(mx.min_tls, "1.3");
  EXPECT_EQ(mx.client_certs, ClientCertMode::kOptional);
  EXPECT_TRUE(mx.sni_strict);
  EXPECT_TRUE(mx.no_tls_hosts.empty());  // not with tls_required (RFC 3207 section 4)
  EXPECT_FALSE(mx.auth);

  const ListenerConfig& v6 = c.listeners[1];
  EXPECT_EQ(v6.name, "loopback-v6");
  EXPECT_FALSE(v6.address.address.is_v4());
  EXPECT_EQ(v6.address.address.ToString(), "::1");
  EXPECT_EQ(v6.address.port, 0);
  EXPECT_EQ(v6.address.ToString(), "[::1]:0");
  EXPECT_EQ(v6.tls, TlsMode::kNone);
  EXPECT_EQ(v6.client_certs, ClientCertMode::kNone);
  EXPECT_EQ(v6.min_tls, "1.2");
  EXPECT_FALSE(v6.sni_strict);
  ASSERT_EQ(v6.no_tls_hosts.size(), 2u);
  EXPECT_EQ(v6.no_tls_hosts[0].ToString(), "192.0.2.0/24");
  EXPECT_EQ(v6.no_tls_hosts[1].ToString(), "2001:db8::/32");
  EXPECT_EQ(mx.proxy_protocol, ProxyProtocol::kNone);
  EXPECT_EQ(v6.proxy_protocol, ProxyProtocol::kV2);
  ASSERT_EQ(v6.proxy_trusted.size(), 2u);
  EXPECT_EQ(v6.proxy_trusted[0].ToString(), "::1/128");
  EXPECT_EQ(v6.proxy_trusted[1].ToString(), "10.1.0.0/16");

  EXPECT_EQ(c.tls.cert, "/etc/ringmx/certs/mx.fullchain.pem");
  EXPECT_EQ(c.tls.key, "/etc/ssl/private/mx.key");
  EXPECT_EQ(PairsText(c.tls.pairs), "/etc/ringmx/certs/mx.fullchain.pem + /etc/ssl/private/mx.key");
  EXPECT_EQ(c.tls.client_ca, "/etc/ringmx/certs/ca.pem");
  EXPECT_EQ(c.tls.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
  EXPECT_EQ(c.tls.ciphersuites, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  EXPECT_FALSE(c.tls.ktls);
  ASSERT_EQ(c.tls.sni.size(), 2u);
  EXPECT_THAT(c.tls.sni[0].names, ElementsAre("other.example.test", "*.example.org"));
  EXPECT_EQ(c.tls.sni[0].cert, "/etc/ringmx/certs/other.fullchain.pem");
  EXPECT_EQ(c.tls.sni[0].key, "/etc/ringmx/certs/other.key");
  EXPECT_EQ(PairsText(c.tls.sni[0].pairs),
            "/etc/ringmx/certs/other.fullchain.pem + /etc/ringmx/certs/other.key");
  EXPECT_THAT(c.tls.sni[1].names, ElementsAre("third.example.test"));
  EXPECT_EQ(c.tls.sni[1].cert, "/abs/third.rsa.pem");
  EXPECT_EQ(c.tls.sni[1].key, "/abs/third.rsa.key");
  EXPECT_EQ(PairsText(c.tls.sni[1].pairs),
            "/abs/third.rsa.pem + /abs/third.rsa.key, "
            "/etc/ringmx/third.ecdsa.pem + /etc/ringmx/third.ecdsa.key");

  EXPECT_THAT(c.policy.local_domains, ElementsAre("example.test", "example.org"));
  ASSERT_EQ(c.policy.relay_networks.size(), 3u);
  EXPECT_EQ(c.policy.relay_networks[0].ToString(), "127.0.0.0/8");
  EXPECT_EQ(c.policy.relay_networks[1].ToString(), "::1/128");
  EXPECT_EQ(c.policy.relay_networks[2].ToString(), "10.0.0.0/8");
  EXPECT_THAT(c.policy.relay_client_certs,
              ElementsAre("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee"));
  EXPECT_EQ(c.policy.recipients, "/etc/ringmx/recipients");
  EXPECT_EQ(c.policy.max_recipients, 500);
  EXPECT_EQ(c.policy.max_message_size, 52428800u);

  EXPECT_EQ(c.auth.passwd, "/etc/ringmx/passwd");
  EXPECT_EQ(c.spool.path, "/etc/spool");
  EXPECT_EQ(c.spool.mode, SpoolMode::kDiscard);
  EXPECT_EQ(c.spool.segment_size, uint64_t{16} << 20);
  EXPECT_EQ(c.timeouts.idle, absl::Seconds(60));
  EXPECT_EQ(c.timeouts.data, absl::Seconds(120));
  EXPECT_EQ(c.timeouts.greet_pause, absl::Milliseconds(250));
  EXPECT_EQ(c.timeouts.shutdown_grace, absl::ZeroDuration());
  EXPECT_EQ(c.timeouts.proxy, absl::Seconds(7));
  EXPECT_EQ(c.control.socket, "/etc/ringmx/run/control.sock");
  ASSERT_TRUE(c.metrics.address.has_value());
  EXPECT_EQ(c.metrics.address->ToString(), "127.0.0.1:9325");
  EXPECT_EQ(c.log.file, "/var/log/ringmx.log");
}

TEST(ConfigTest, FullFileRoutesAndDelivery) {
  absl::StatusOr<Config> parsed =
      ParseConfig(ReadFile(RINGMX_CORE_TESTDATA "/full.toml"), "full.toml", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  ASSERT_EQ(c.routes.size(), 2u);
  const RouteConfig& r = c.routes[0];
  EXPECT_THAT(r.domains, ElementsAre("example.test", "*.example.test"));
  ASSERT_EQ(r.next_hop.size(), 3u);
  EXPECT_EQ(r.next_hop[0].ToString(), "lmtp:unix:/etc/ringmx/run/lmtp");
  EXPECT_EQ(r.next_hop[1].ToString(), "smtp:[10.0.0.5]:25");
  EXPECT_EQ(r.next_hop[2].ToString(), "smtp:[2001:db8::5]:2525");
  EXPECT_EQ(r.tls, RouteTls::kVerify);
  EXPECT_EQ(r.tls_ca, "/etc/ringmx/certs/relay-ca.pem");
  EXPECT_EQ(r.tls_name, "relay.example.test");
  EXPECT_EQ(r.max_connections, 5);
  EXPECT_TRUE(r.verify_recipients);
  EXPECT_EQ(r.verify_positive_ttl, absl::Seconds(86400));
  EXPECT_EQ(r.verify_negative_ttl, absl::Seconds(600));
  EXPECT_EQ(r.verify_unreachable, VerifyUnreachable::kAccept);
  EXPECT_THAT(c.routes[1].domains, ElementsAre("*"));
  EXPECT_EQ(c.routes[1].tls, RouteTls::kNone);
  ASSERT_TRUE(c.delivery.bounce_next_hop.has_value());
  EXPECT_EQ(c.delivery.bounce_next_hop->ToString(), "smtp:[192.0.2.6]:2525");
  EXPECT_EQ(c.delivery.retry_first, absl::Seconds(60));
  EXPECT_EQ(c.delivery.retry_max, absl::Seconds(600));
  EXPECT_EQ(c.delivery.max_lifetime, absl::Seconds(86400));
  EXPECT_EQ(c.delivery.hop_down, absl::Seconds(30));
  EXPECT_EQ(c.delivery.connect_timeout, absl::Seconds(10));
  EXPECT_EQ(c.delivery.command_timeout, absl::Seconds(120));
  EXPECT_EQ(c.delivery.data_timeout, absl::Seconds(900));
}

TEST(ConfigTest, DefaultsWhenSectionsAreAbsent) {
  absl::StatusOr<Config> parsed = ParseConfig(kMinimal, "ringmx.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  const Config defaults;
  EXPECT_EQ(c.hostname, "mx.example.test");
  EXPECT_EQ(c.workers, 0);
  EXPECT_TRUE(c.pin_threads);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].name, "mx");
  EXPECT_EQ(c.listeners[0].address.ToString(), "127.0.0.1:2525");
  EXPECT_EQ(c.listeners[0].tls, TlsMode::kNone);
  EXPECT_FALSE(c.listeners[0].tls_required);
  EXPECT_EQ(c.listeners[0].min_tls, "1.2");
  EXPECT_EQ(c.listeners[0].client_certs, ClientCertMode::kNone);
  EXPECT_FALSE(c.listeners[0].sni_strict);
  EXPECT_TRUE(c.listeners[0].no_tls_hosts.empty());
  EXPECT_FALSE(c.listeners[0].auth);
  EXPECT_EQ(c.tls.cert, "");
  EXPECT_EQ(c.tls.key, "");
  EXPECT_TRUE(c.tls.pairs.empty());
  EXPECT_EQ(c.tls.client_ca, "");
  EXPECT_EQ(c.tls.ciphers, "");
  EXPECT_EQ(c.tls.ciphersuites, "");
  EXPECT_TRUE(c.tls.ktls);
  EXPECT_TRUE(c.tls.sni.empty());
  EXPECT_TRUE(c.policy.local_domains.empty());
  EXPECT_TRUE(c.policy.relay_networks.empty());
  EXPECT_TRUE(c.policy.relay_client_certs.empty());
  EXPECT_EQ(c.policy.recipients, "");
  EXPECT_EQ(c.policy.max_recipients, 100);
  EXPECT_EQ(c.policy.max_message_size, 26214400u);
  EXPECT_EQ(c.auth.passwd, "");
  EXPECT_EQ(c.spool.path, "spool");
  EXPECT_EQ(c.spool.mode, SpoolMode::kDurable);
  EXPECT_EQ(c.timeouts.idle, absl::Seconds(300));
  EXPECT_EQ(c.timeouts.data, absl::Seconds(600));
  EXPECT_EQ(c.timeouts.greet_pause, absl::ZeroDuration());
  EXPECT_EQ(c.timeouts.shutdown_grace, absl::Seconds(30));
  EXPECT_EQ(c.control.socket, "");
  EXPECT_FALSE(c.metrics.address.has_value());
  EXPECT_EQ(c.log.file, "");
}

TEST(ConfigTest, EmptySectionsKeepDefaults) {
  absl::StatusOr<Config> parsed = ParseConfig(
      WithMinimal("[tls]\n[policy]\n[auth]\n[spool]\n[timeouts]\n[control]\n[log]\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->policy.max_recipients, 100);
  EXPECT_EQ(parsed->spool.path, "spool");
}

TEST(ConfigTest, Ipv6ListenerWithPortZero) {
  absl::StatusOr<Config> parsed = ParseConfig(
      "hostname = \"mx.example.test\"\n[[listener]]\nname = \"v6\"\naddress = \"[::1]:0\"\n", "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->listeners[0].address.address.is_v4());
  EXPECT_EQ(parsed->listeners[0].address.ToString(), "[::1]:0");
}

TEST(ConfigTest, InlineArrayOfListenerTablesIsAccepted) {
  absl::StatusOr<Config> parsed = ParseConfig(
      "hostname = \"mx.example.test\"\n"
      "listener = [{name = \"a\", address = \"127.0.0.1:25\"},\n"
      "            {name = \"b\", address = \"127.0.0.1:26\"}]\n",
      "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->listeners.size(), 2u);
  EXPECT_EQ(parsed->listeners[1].name, "b");
}

TEST(ConfigTest, DottedKeysAreTheSameAsTables) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithTopLevel("policy.max_recipients = 7\ntimeouts.idle_s = 9\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->policy.max_recipients, 7);
  EXPECT_EQ(parsed->timeouts.idle, absl::Seconds(9));
}

TEST(ConfigTest, EveryPrefixOfAFileGivesAnAnswer) {
  // Truncated files (a half-written edit) must give a Status, never a crash or an exception.
  const std::string text = ReadFile(RINGMX_CORE_TESTDATA "/full.toml");
  ASSERT_FALSE(text.empty());
  for (size_t n = 0; n <= text.size(); ++n) {
    absl::StatusOr<Config> parsed = ParseConfig(std::string_view(text).substr(0, n), "x", "/b");
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << n;
      EXPECT_THAT(std::string(Sv(parsed.status().message())), StartsWith("x")) << n;
    }
  }
}

TEST(ConfigTest, PortZeroListenersMayShareAnAddress) {
  absl::StatusOr<Config> parsed = ParseConfig(
      "hostname = \"mx.example.test\"\n"
      "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\n"
      "[[listener]]\nname = \"b\"\naddress = \"127.0.0.1:0\"\n",
      "x");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

TEST(ConfigTest, SameAddressInBothFamiliesIsNotADuplicate) {
  absl::StatusOr<Config> parsed = ParseConfig(
      "hostname = \"mx.example.test\"\n"
      "[[listener]]\nname = \"a\"\naddress = \"0.0.0.0:25\"\n"
      "[[listener]]\nname = \"b\"\naddress = \"[::]:25\"\n",
      "x");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

TEST(ConfigTest, SpoolModeDurable) {
  absl::StatusOr<Config> parsed = ParseConfig(WithMinimal("[spool]\nmode = \"durable\"\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.mode, SpoolMode::kDurable);
}

TEST(ConfigTest, SpoolSegmentSize) {
  absl::StatusOr<Config> parsed = ParseConfig(WithMinimal(""), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.segment_size, uint64_t{64} << 20);
  parsed = ParseConfig(WithMinimal("[spool]\nsegment_size = 8388608\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.segment_size, uint64_t{8} << 20);
  for (const char* bad : {"1000", "2147483648", "\"64M\"", "-1"}) {
    parsed = ParseConfig(WithMinimal(absl::StrCat("[spool]\nsegment_size = ", bad, "\n")), "x");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("segment_size")) << bad;
  }
}

TEST(ConfigTest, EmptyOptionalPathsStayEmpty) {
  absl::StatusOr<Config> parsed = ParseConfig(
      WithMinimal("[control]\nsocket = \"\"\n[log]\nfile = \"\"\n[auth]\npasswd = \"\"\n"), "x",
      "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->control.socket, "");
  EXPECT_EQ(parsed->log.file, "");
  EXPECT_EQ(parsed->auth.passwd, "");
}

// ---------------------------------------------------------------------------------------------
// Relative paths.

TEST(ConfigTest, RelativePathsResolveAgainstBaseDir) {
  absl::StatusOr<Config> parsed = ParseConfig(
      WithMinimal("[tls]\ncert = \"certs/a.pem\"\nkey = \"./certs/a.key\"\n"
                  "client_ca = \"/abs/ca.pem\"\n"
                  "[[tls.sni]]\nnames = [\"b.example\"]\ncert = \"b.pem\"\nkey = \"b.key\"\n"
                  "[auth]\npasswd = \"../passwd\"\n"
                  "[spool]\npath = \"spool/dir\"\n"
                  "[control]\nsocket = \"ctl.sock\"\n"
                  "[log]\nfile = \"log/ringmx.log\"\n"),
      "x", "/srv/ringmx/");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tls.cert, "/srv/ringmx/certs/a.pem");
  EXPECT_EQ(parsed->tls.key, "/srv/ringmx/certs/a.key");
  EXPECT_EQ(parsed->tls.client_ca, "/abs/ca.pem");
  EXPECT_EQ(parsed->tls.sni[0].cert, "/srv/ringmx/b.pem");
  EXPECT_EQ(parsed->tls.sni[0].key, "/srv/ringmx/b.key");
  EXPECT_EQ(parsed->auth.passwd, "/srv/passwd");
  EXPECT_EQ(parsed->spool.path, "/srv/ringmx/spool/dir");
  EXPECT_EQ(parsed->control.socket, "/srv/ringmx/ctl.sock");
  EXPECT_EQ(parsed->log.file, "/srv/ringmx/log/ringmx.log");
}

TEST(ConfigTest, RelativePathsStayRelativeWithoutBaseDir) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("[spool]\npath = \"q\"\n[log]\nfile = \"l.log\"\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.path, "q");
  EXPECT_EQ(parsed->log.file, "l.log");
}

TEST(ConfigTest, DefaultSpoolPathResolvesAgainstBaseDir) {
  absl::StatusOr<Config> parsed = ParseConfig(kMinimal, "x", "/srv/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.path, "/srv/ringmx/spool");
}

TEST(ConfigTest, LoadConfigFileResolvesAgainstTheFilesDirectory) {
  TempDir dir;
  const std::string file =
      dir.Write("ringmx.toml", WithMinimal("[spool]\npath = \"q\"\n[tls]\ncert = \"c.pem\"\n"
                                           "key = \"k.pem\"\n"));
  absl::StatusOr<Config> parsed = LoadConfigFile(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.path, dir.path() + "/q");
  EXPECT_EQ(parsed->tls.cert, dir.path() + "/c.pem");
  EXPECT_EQ(parsed->tls.key, dir.path() + "/k.pem");
}

TEST(ConfigTest, LoadConfigFileMakesARelativeFileNameAbsolute) {
  TempDir dir;
  dir.Write("ringmx.toml", kMinimal);
  char* old_cwd = getcwd(nullptr, 0);
  ASSERT_EQ(chdir(dir.path().c_str()), 0);
  absl::StatusOr<Config> parsed = LoadConfigFile("ringmx.toml");
  ASSERT_EQ(chdir(old_cwd), 0);
  free(old_cwd);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->spool.path,
            (std::filesystem::path(dir.path()).lexically_normal() / "spool").string());
}

TEST(ConfigTest, LoadConfigFileNamesTheFileInErrors) {
  TempDir dir;
  const std::string file = dir.Write("bad.toml", "hostname = \"mx.example.test\"\nworkers = -1\n");
  absl::StatusOr<Config> parsed = LoadConfigFile(file);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(),
            absl::StrCat(file, ":2: workers: must be between 0 and 1024, got -1"));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<Config> parsed = LoadConfigFile(dir.path() + "/nope.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(parsed.status().message(), HasSubstr("nope.toml"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("No such file or directory"));
}

TEST(ConfigTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  const std::string file = dir.Write("secret.toml", kMinimal);
  ASSERT_EQ(chmod(file.c_str(), 0), 0);
  absl::StatusOr<Config> parsed = LoadConfigFile(file);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(parsed.status().message(), HasSubstr("secret.toml"));
}

TEST(ConfigTest, DirectoryIsAnError) {
  TempDir dir;
  absl::StatusOr<Config> parsed = LoadConfigFile(dir.path());
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("Is a directory"));
}

// ---------------------------------------------------------------------------------------------
// Error messages: "<source>:<line>: <key path>: <what>".

TEST(ConfigErrorTest, TomlSyntaxErrorGivesTheLine) {
  EXPECT_THAT(ErrorOf("hostname = \"mx.example.test\"\nworkers = \n"),
              StartsWith("ringmx.toml:2: TOML syntax error: "));
  EXPECT_THAT(ErrorOf("hostname = \"a.b\"\n\n\nhostname = \"c.d\"\n"),
              StartsWith("ringmx.toml:4: TOML syntax error: "));
  EXPECT_THAT(ErrorOf("[policy\n"), StartsWith("ringmx.toml:1: TOML syntax error: "));
}

TEST(ConfigErrorTest, MissingHostnameNamesTheKey) {
  EXPECT_EQ(ErrorOf("[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml: missing required key \"hostname\"");
}

TEST(ConfigErrorTest, HostnameMustBeADomainName) {
  EXPECT_EQ(ErrorOf("hostname = \"localhost\"\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:1: hostname: expected a fully qualified domain name such as "
            "\"mx.example.com\", got \"localhost\"");
  for (std::string_view bad : {"192.0.2.1", "mx..example", "-mx.example", "mx_1.example", "",
                               "mx.example.test..", "m x.example"}) {
    EXPECT_THAT(ErrorOf(absl::StrCat("hostname = \"", Av(bad), "\"\n",
                                     "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n")),
                StartsWith("ringmx.toml:1: hostname: expected a fully qualified domain name"))
        << bad;
  }
}

TEST(ConfigErrorTest, WrongTypeNamesBothTypes) {
  EXPECT_EQ(ErrorOf(WithTopLevel("workers = \"two\"\n")),
            "ringmx.toml:2: workers: expected an integer, got a string");
  EXPECT_EQ(ErrorOf("hostname = 7\n[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:1: hostname: expected a string, got an integer");
  EXPECT_EQ(ErrorOf(WithMinimal("sni_strict = \"yes\"\n")),
            "ringmx.toml:5: listener[0].sni_strict: expected a boolean, got a string");
  EXPECT_EQ(ErrorOf(WithMinimal("min_tls = 1.2\n")),
            "ringmx.toml:5: listener[0].min_tls: expected a string (write the value in quotes), "
            "got a floating-point number");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\nidle_s = 1.5\n")),
            "ringmx.toml:6: timeouts.idle_s: expected an integer, got a floating-point number");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nlocal_domains = \"example.test\"\n")),
            "ringmx.toml:6: policy.local_domains: expected an array of strings, got a string");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrelay_networks = [\"10.0.0.0/8\", 7]\n")),
            "ringmx.toml:6: policy.relay_networks[1]: expected a string, got an integer");
  EXPECT_EQ(ErrorOf(WithTopLevel("policy = 3\n")),
            "ringmx.toml:2: policy: expected a table ([policy]), got an integer");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[listener]\nname = \"mx\"\n"),
            "ringmx.toml:2: listener: expected an array of tables ([[listener]]), got a table");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nlistener = [1]\n"),
            "ringmx.toml:2: listener[0]: expected a table, got an integer");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nlistener = [\n  \"mx\",\n"
                    "  {name = \"b\", address = \"nowhere\"},\n]\n"),
            "ringmx.toml:3: listener[0]: expected a table, got a string");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nlistener = [\n  {name = \"a\"},\n"
                    "  {name = \"b\", address = \"nowhere\"},\n]\n"),
            "ringmx.toml:4: listener[1].address: expected \"ip:port\" or \"[ipv6]:port\", got "
            "\"nowhere\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\nsni = \"x\"\n")),
            "ringmx.toml:6: tls.sni: expected an array of tables ([[tls.sni]]), got a string");
  EXPECT_EQ(ErrorOf(WithMinimal("[log]\nfile = 1979-05-27\n")),
            "ringmx.toml:6: log.file: expected a string, got a date");
}

TEST(ConfigTest, PinThreadsCanBeTurnedOff) {
  absl::StatusOr<Config> off = ParseConfig(WithTopLevel("pin_threads = false\n"), "ringmx.toml");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->pin_threads);
  absl::StatusOr<Config> on =
      ParseConfig(WithTopLevel("workers = 2\npin_threads = true\n"), "ringmx.toml");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->pin_threads);
  EXPECT_EQ(on->workers, 2);
}

TEST(ConfigErrorTest, PinThreadsIsATopLevelBoolean) {
  EXPECT_EQ(ErrorOf(WithTopLevel("pin_threads = \"no\"\n")),
            "ringmx.toml:2: pin_threads: expected a boolean, got a string");
  EXPECT_EQ(ErrorOf(WithTopLevel("pin_threads = 0\n")),
            "ringmx.toml:2: pin_threads: expected a boolean, got an integer");
  EXPECT_EQ(ErrorOf(WithTopLevel("pin_thread = false\n")),
            "ringmx.toml:2: unknown key \"pin_thread\" (did you mean \"pin_threads\"?)");
  EXPECT_EQ(ErrorOf(WithMinimal("pin_threads = false\n")),
            "ringmx.toml:5: listener[0]: unknown key \"pin_threads\" (\"pin_threads\" is a "
            "top-level key: move it above the first [table] header)");
}

TEST(ConfigErrorTest, OutOfRangeValues) {
  EXPECT_EQ(ErrorOf(WithTopLevel("workers = -1\n")),
            "ringmx.toml:2: workers: must be between 0 and 1024, got -1");
  EXPECT_EQ(ErrorOf(WithTopLevel("workers = 1025\n")),
            "ringmx.toml:2: workers: must be between 0 and 1024, got 1025");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nmax_recipients = 0\n")),
            "ringmx.toml:6: policy.max_recipients: must be between 1 and 100000, got 0");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nmax_recipients = 100001\n")),
            "ringmx.toml:6: policy.max_recipients: must be between 1 and 100000, got 100001");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nmax_message_size = 1023\n")),
            "ringmx.toml:6: policy.max_message_size: must be at least 1024 bytes, got 1023");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\nidle_s = 0\n")),
            "ringmx.toml:6: timeouts.idle_s: must be at least 1, got 0");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\n\ndata_s = -5\n")),
            "ringmx.toml:7: timeouts.data_s: must be at least 1, got -5");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\ngreet_pause_ms = -1\n")),
            "ringmx.toml:6: timeouts.greet_pause_ms: must be at least 0, got -1");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\nshutdown_grace_s = -1\n")),
            "ringmx.toml:6: timeouts.shutdown_grace_s: must be at least 0, got -1");
}

TEST(ConfigErrorTest, BoundaryValuesAreAccepted) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithTopLevel("workers = 1024\n") +
                      std::string("[policy]\nmax_recipients = 100000\nmax_message_size = 1024\n"
                                  "[timeouts]\nidle_s = 1\ndata_s = 1\ngreet_pause_ms = 0\n"),
                  "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->workers, 1024);
  EXPECT_EQ(parsed->policy.max_recipients, 100000);
  EXPECT_EQ(parsed->policy.max_message_size, 1024u);
  EXPECT_EQ(parsed->timeouts.idle, absl::Seconds(1));
}

TEST(ConfigErrorTest, BadEnumValuesListTheChoices) {
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"STARTTLS\"\n")),
            "ringmx.toml:5: listener[0].tls: expected one of \"none\", \"starttls\", "
            "\"implicit\", got \"STARTTLS\"");
  EXPECT_EQ(ErrorOf(WithMinimal("min_tls = \"1.1\"\n")),
            "ringmx.toml:5: listener[0].min_tls: expected one of \"1.2\", \"1.3\", got \"1.1\"");
  EXPECT_EQ(ErrorOf(WithMinimal("client_certs = \"yes\"\n")),
            "ringmx.toml:5: listener[0].client_certs: expected one of \"none\", \"optional\", "
            "\"required\", got \"yes\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[spool]\nmode = \"fast\"\n")),
            "ringmx.toml:6: spool.mode: expected one of \"durable\", \"discard\", got \"fast\"");
}

TEST(ConfigErrorTest, BadListenerAddress) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n\n[[listener]]\nname = \"mx\"\n\n\n"
                    "address = \"localhost\"\n"),
            "ringmx.toml:7: listener[0].address: expected \"ip:port\" or \"[ipv6]:port\", got "
            "\"localhost\"");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\n"
                    "address = \"localhost:25\"\n"),
            "ringmx.toml:4: listener[0].address: \"localhost\" is not an IP address (names are "
            "not resolved)");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\n"
                    "address = \"127.0.0.1:65536\"\n"),
            "ringmx.toml:4: listener[0].address: bad port \"65536\"");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\n"
                    "address = \"::1:25\"\n"),
            "ringmx.toml:4: listener[0].address: expected \"ip:port\" or \"[ipv6]:port\", got "
            "\"::1:25\"");
}

TEST(ConfigErrorTest, MissingListenerKeysNameTheKeyAndTheTable) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n\n[[listener]]\nname = \"mx\"\n"),
            "ringmx.toml:3: listener[0]: missing required key \"address\"");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:2: listener[0]: missing required key \"name\"");
}

TEST(ConfigErrorTest, AtLeastOneListener) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n"),
            "ringmx.toml: missing required key \"listener\" (at least one [[listener]])");
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nlistener = []\n"),
            "ringmx.toml:2: listener: at least one [[listener]] is required");
}

TEST(ConfigErrorTest, BadListenerName) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"\"\n"
                    "address = \"127.0.0.1:25\"\n"),
            "ringmx.toml:3: listener[0].name: expected 1-64 characters of letters, digits, '-', "
            "'_' or '.', got \"\"");
  EXPECT_THAT(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"my mx\"\n"
                      "address = \"127.0.0.1:25\"\n"),
              StartsWith("ringmx.toml:3: listener[0].name: expected 1-64 characters"));
}

TEST(ConfigErrorTest, DuplicateListenerName) {
  EXPECT_EQ(
      ErrorOf(WithMinimal("[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:2526\"\n")),
      "ringmx.toml:6: listener[1].name: duplicate listener name \"mx\" (also listener[0], line 3)");
}

TEST(ConfigErrorTest, DuplicateListenerAddress) {
  EXPECT_EQ(ErrorOf(WithMinimal("[[listener]]\nname = \"mx2\"\naddress = \"127.0.0.1:2525\"\n")),
            "ringmx.toml:7: listener[1].address: duplicate listener address "
            "\"127.0.0.1:2525\" (also listener[0], line 4)");
  // The same address spelt differently is still the same address.
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n"
                    "[[listener]]\nname = \"a\"\naddress = \"[::0]:25\"\n"
                    "[[listener]]\nname = \"b\"\naddress = \"[0:0::]:25\"\n"),
            "ringmx.toml:7: listener[1].address: duplicate listener address \"[::]:25\" "
            "(also listener[0], line 4)");
}

TEST(ConfigErrorTest, UnknownKeyAtTopLevel) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n\n[[listner]]\nname = \"mx\"\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:3: unknown key \"listner\" (did you mean \"listener\"?)");
  EXPECT_EQ(ErrorOf(WithTopLevel("colour = \"blue\"\n")), "ringmx.toml:2: unknown key \"colour\"");
}

TEST(ConfigErrorTest, UnknownKeyInAListener) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\n"
                    "adress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:4: listener[0]: unknown key \"adress\" (did you mean \"address\"?)");
  EXPECT_EQ(ErrorOf(WithMinimal("tls_requierd = true\n")),
            "ringmx.toml:5: listener[0]: unknown key \"tls_requierd\" (did you mean "
            "\"tls_required\"?)");
}

TEST(ConfigErrorTest, UnknownKeyInATable) {
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nmax_recipient = 5\n")),
            "ringmx.toml:6: policy: unknown key \"max_recipient\" (did you mean "
            "\"max_recipients\"?)");
  EXPECT_EQ(ErrorOf(WithMinimal("[spool]\npath = \"q\"\nfsync = true\n")),
            "ringmx.toml:7: spool: unknown key \"fsync\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\n[[tls.sni]]\nnames = [\"a.example\"]\ncert = \"c\"\n"
                                "key = \"k\"\nchain = \"x\"\n")),
            "ringmx.toml:10: tls.sni[0]: unknown key \"chain\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[timeouts]\nidle = 5\n")),
            "ringmx.toml:6: timeouts: unknown key \"idle\" (did you mean \"idle_s\"?)");
}

TEST(ConfigErrorTest, UnknownTableWithSuggestion) {
  EXPECT_EQ(ErrorOf(WithMinimal("[polcy]\nmax_recipients = 5\n")),
            "ringmx.toml:5: unknown key \"polcy\" (did you mean \"policy\"?)");
}

TEST(ConfigErrorTest, TopLevelKeyAfterATableHeaderSaysSo) {
  EXPECT_EQ(ErrorOf(WithMinimal("workers = 2\n")),
            "ringmx.toml:5: listener[0]: unknown key \"workers\" (\"workers\" is a top-level key: "
            "move it above the first [table] header)");
}

TEST(ConfigErrorTest, KeyInTheWrongTableSaysWhereItBelongs) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nmax_recipients = 5\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:2: unknown key \"max_recipients\" (\"max_recipients\" belongs in "
            "[policy])");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nidle_s = 5\n")),
            "ringmx.toml:6: policy: unknown key \"idle_s\" (\"idle_s\" belongs in [timeouts])");
}

TEST(ConfigErrorTest, UnknownKeyIsReportedBeforeTheMissingKeyItCauses) {
  // The typo explains the missing "address"; it is the message the operator needs.
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\n[[listener]]\nname = \"mx\"\n"
                    "adress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:4: listener[0]: unknown key \"adress\" (did you mean \"address\"?)");
  EXPECT_EQ(ErrorOf("hostnmae = \"mx.example.test\"\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n"),
            "ringmx.toml:1: unknown key \"hostnmae\" (did you mean \"hostname\"?)");
}

TEST(ConfigErrorTest, FirstErrorInFileOrderWins) {
  EXPECT_EQ(ErrorOf("hostname = \"mx.example.test\"\nworkers = -3\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"nowhere\"\n"
                    "[policy]\nmax_recipients = 0\n"),
            "ringmx.toml:2: workers: must be between 0 and 1024, got -3");
  EXPECT_EQ(ErrorOf("[policy]\nmax_recipients = 0\n"
                    "[[listener]]\nname = \"mx\"\naddress = \"nowhere\"\n"),
            "ringmx.toml:2: policy.max_recipients: must be between 1 and 100000, got 0");
}

TEST(ConfigErrorTest, BadCidr) {
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrelay_networks = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n")),
            "ringmx.toml:6: policy.relay_networks[1]: host bits set below the prefix in "
            "\"10.0.0.1/8\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrelay_networks = [\n  \"10.0.0.0/8\",\n"
                                "  \"10.0.0.0/33\",\n]\n")),
            "ringmx.toml:8: policy.relay_networks[1]: prefix length out of range (0-32) in "
            "\"10.0.0.0/33\"");
  EXPECT_EQ(ErrorOf(WithMinimal("no_tls_hosts = [\"example.com/24\"]\n")),
            "ringmx.toml:5: listener[0].no_tls_hosts[0]: bad address in \"example.com/24\"");
  EXPECT_EQ(ErrorOf(WithMinimal("no_tls_hosts = [\"192.0.2.0/x\"]\n")),
            "ringmx.toml:5: listener[0].no_tls_hosts[0]: bad prefix length in \"192.0.2.0/x\"");
}

TEST(ConfigErrorTest, BadLocalDomain) {
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nlocal_domains = [\"ok.example\", \"not ok\"]\n")),
            "ringmx.toml:6: policy.local_domains[1]: expected a domain name, got \"not ok\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nlocal_domains = [\"192.0.2.1\"]\n")),
            "ringmx.toml:6: policy.local_domains[0]: expected a domain name, got \"192.0.2.1\"");
}

TEST(ConfigPolicyTest, RelayClientCertsAreNormalisedToLowerCaseHex) {
  std::string colons;  // "AB:AB:...:AB", as openssl x509 -fingerprint -sha256 prints it
  std::string ab;
  for (int i = 0; i < 32; ++i) {
    absl::StrAppend(&colons, i == 0 ? "" : ":", "AB");
    ab += "ab";
  }
  const std::string upper(64, 'A');
  const std::string lower(64, 'a');
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal(absl::StrCat("[policy]\nrelay_client_certs = [\"", upper, "\", \"",
                                           colons, "\", \"", lower, "\"]\n")),
                  "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->policy.relay_client_certs, ElementsAre(lower, ab, lower));
}

TEST(ConfigPolicyErrorTest, BadRelayClientCertNamesTheKey) {
  const std::string good(64, 'a');
  const std::string expected_tail =
      ": expected a SHA-256 certificate fingerprint (64 hex digits, optionally in pairs separated "
      "by ':'), got ";
  // Too short, too long, a non-hex digit, separators in the wrong place, SHA-1.
  const std::string bad[] = {std::string(63, 'a'), std::string(65, 'a'), std::string(63, 'a') + "g",
                             "a:" + std::string(62, 'a') + ":aa",
                             "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"};
  for (const std::string& b : bad) {
    SCOPED_TRACE(b);
    EXPECT_EQ(
        ErrorOf(WithMinimal(
            absl::StrCat("[policy]\nrelay_client_certs = [\"", good, "\",\n  \"", b, "\"]\n"))),
        absl::StrCat("ringmx.toml:7: policy.relay_client_certs[1]", expected_tail, "\"", b, "\""));
  }
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrelay_client_certs = \"aa\"\n")),
            "ringmx.toml:6: policy.relay_client_certs: expected an array of strings, got a string");
}

TEST(ConfigPolicyTest, RecipientsIsAPathResolvedLikeTheOthers) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("[policy]\nrecipients = \"maps/recipients\"\n"), "x", "/srv/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->policy.recipients, "/srv/ringmx/maps/recipients");
  parsed = ParseConfig(WithMinimal("[policy]\nrecipients = \"/etc/r\"\n"), "x", "/srv/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->policy.recipients, "/etc/r");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrecipients = [\"a\"]\n")),
            "ringmx.toml:6: policy.recipients: expected a string, got an array");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nrecipient = \"a\"\n")),
            "ringmx.toml:6: policy: unknown key \"recipient\" (did you mean \"recipients\"?)");
}

TEST(ConfigErrorTest, TlsCertAndKeyGoTogether) {
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = \"c.pem\"\n")),
            "ringmx.toml:6: tls.cert: tls.cert and tls.key go together; tls.key is missing");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\n\nkey = \"k.pem\"\n")),
            "ringmx.toml:7: tls.key: tls.key and tls.cert go together; tls.cert is missing");
}

TEST(ConfigErrorTest, SniEntries) {
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\ncert = \"c\"\nkey = \"k\"\n")),
            "ringmx.toml:5: tls.sni[0]: missing required key \"names\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\nkey = \"k\"\n")),
            "ringmx.toml:5: tls.sni[0]: missing required key \"cert\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = \"c\"\n")),
            "ringmx.toml:5: tls.sni[0]: missing required key \"key\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = []\ncert = \"c\"\nkey = \"k\"\n")),
            "ringmx.toml:6: tls.sni[0].names: must list at least one name");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.*.example\"]\ncert = \"c\"\n"
                                "key = \"k\"\n")),
            "ringmx.toml:6: tls.sni[0].names[0]: expected a domain name or \"*.domain\", got "
            "\"a.*.example\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = \"\"\n"
                                "key = \"k\"\n")),
            "ringmx.toml:7: tls.sni[0].cert: must not be empty");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = \"c\"\nkey = \"k\"\n"
                                "[[tls.sni]]\nnames = [\"b.example\", \"A.example\"]\n"
                                "cert = \"c\"\nkey = \"k\"\n")),
            "ringmx.toml:10: tls.sni[1].names[1]: \"a.example\" is already listed at "
            "tls.sni[0].names[0], line 6");
}

TEST(ConfigErrorTest, SpoolPathMustNotBeEmpty) {
  EXPECT_EQ(ErrorOf(WithMinimal("[spool]\npath = \"\"\n")),
            "ringmx.toml:6: spool.path: must not be empty");
}

TEST(ConfigErrorTest, ControlSocketPathMustFitSunPath) {
  const std::string long_name(100, 'x');
  EXPECT_THAT(ErrorOf(WithMinimal(absl::StrCat("[control]\nsocket = \"", long_name, "\"\n")),
                      "/var/lib/ringmx"),
              StartsWith("ringmx.toml:6: control.socket: a Unix socket path may have at most 107 "
                         "bytes, this one has 116: "));
}

TEST(ConfigErrorTest, MetricsAddressIsAnIpAndPort) {
  EXPECT_THAT(ErrorOf(WithMinimal("[metrics]\naddress = \"localhost:9325\"\n")),
              StartsWith("ringmx.toml:6: metrics.address: "));
  EXPECT_THAT(ErrorOf(WithMinimal("[metrics]\nport = 9325\n")),
              StartsWith("ringmx.toml:6: metrics: unknown key \"port\""));
  absl::StatusOr<Config> off = ParseConfig(WithMinimal("[metrics]\naddress = \"\"\n"), "x");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->metrics.address.has_value());
  absl::StatusOr<Config> v6 = ParseConfig(WithMinimal("[metrics]\naddress = \"[::1]:0\"\n"), "x");
  ASSERT_TRUE(v6.ok()) << v6.status();
  ASSERT_TRUE(v6->metrics.address.has_value());
  EXPECT_EQ(v6->metrics.address->ToString(), "[::1]:0");
}

TEST(ConfigErrorTest, ValuesInMessagesAreEscaped) {
  EXPECT_EQ(ErrorOf(WithMinimal("[spool]\nmode = \"a\\nb\\\"c\"\n")),
            "ringmx.toml:6: spool.mode: expected one of \"durable\", \"discard\", got "
            "\"a\\nb\\\"c\"");
}

// ---------------------------------------------------------------------------------------------
// TLS keys: certificate pairs, cipher lists, and the rules joining listeners to [tls].

TEST(ConfigTlsTest, StartTlsAndImplicitListenersWithADefaultCertificate) {
  absl::StatusOr<Config> parsed = ParseConfig(
      absl::StrCat(Av(kMinimal),
                   "tls = \"starttls\"\ntls_required = true\nclient_certs = \"required\"\n"
                   "[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:4650\"\n"
                   "tls = \"implicit\"\nclient_certs = \"optional\"\nsni_strict = true\n"
                   "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n"),
      "x", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->listeners.size(), 2u);
  EXPECT_EQ(parsed->listeners[0].tls, TlsMode::kStartTls);
  EXPECT_TRUE(parsed->listeners[0].tls_required);
  EXPECT_EQ(parsed->listeners[0].client_certs, ClientCertMode::kRequired);
  EXPECT_EQ(parsed->listeners[1].tls, TlsMode::kImplicit);
  EXPECT_EQ(parsed->listeners[1].client_certs, ClientCertMode::kOptional);
  EXPECT_TRUE(parsed->listeners[1].sni_strict);
  EXPECT_EQ(PairsText(parsed->tls.pairs), "/etc/ringmx/c.pem + /etc/ringmx/k.pem");
  EXPECT_EQ(parsed->tls.client_ca, "/etc/ringmx/ca.pem");
}

TEST(ConfigTlsTest, TlsRequiredOnAnImplicitListenerIsAllowed) {
  absl::StatusOr<Config> parsed = ParseConfig(
      WithMinimal(absl::StrCat("tls = \"implicit\"\ntls_required = true\n", Av(kTlsSection))), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->listeners[0].tls_required);
}

TEST(ConfigTlsTest, CertAndKeyArraysPairUpInOrder) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("tls = \"starttls\"\n[tls]\ncert = [\"rsa.pem\", \"ec.pem\"]\n"
                              "key = [\"rsa.key\", \"/k/ec.key\"]\n"
                              "[[tls.sni]]\nnames = [\"a.example\"]\n"
                              "cert = [\"a-ec.pem\", \"a-rsa.pem\"]\n"
                              "key = [\"a-ec.key\", \"a-rsa.key\"]\n"),
                  "x", "/b");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(PairsText(parsed->tls.pairs), "/b/rsa.pem + /b/rsa.key, /b/ec.pem + /k/ec.key");
  EXPECT_EQ(parsed->tls.cert, "/b/rsa.pem");  // the first pair, for code that wants one
  EXPECT_EQ(parsed->tls.key, "/b/rsa.key");
  ASSERT_EQ(parsed->tls.sni.size(), 1u);
  EXPECT_EQ(PairsText(parsed->tls.sni[0].pairs),
            "/b/a-ec.pem + /b/a-ec.key, /b/a-rsa.pem + /b/a-rsa.key");
  EXPECT_EQ(parsed->tls.sni[0].cert, "/b/a-ec.pem");
  EXPECT_EQ(parsed->tls.sni[0].key, "/b/a-ec.key");
}

TEST(ConfigTlsTest, AStringAndAnArrayOfOneAreTheSame) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("[tls]\ncert = [\"c.pem\"]\nkey = \"k.pem\"\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(PairsText(parsed->tls.pairs), "c.pem + k.pem");
}

TEST(ConfigTlsTest, EmptyDefaultCertificateMeansNone) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("[tls]\ncert = \"\"\nkey = \"\"\n"), "x", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->tls.pairs.empty());
  EXPECT_EQ(parsed->tls.cert, "");
  EXPECT_EQ(parsed->tls.key, "");
}

TEST(ConfigTlsTest, CipherListsAreKeptAsWritten) {
  absl::StatusOr<Config> parsed = ParseConfig(
      WithMinimal("[tls]\nciphers = \"ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL @STRENGTH\"\n"
                  "ciphersuites = \"TLS_AES_128_GCM_SHA256\"\n"),
      "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384:!aNULL @STRENGTH");
  EXPECT_EQ(parsed->tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
}

TEST(ConfigTlsErrorTest, TlsListenerNeedsADefaultCertificate) {
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"starttls\"\n")),
            "ringmx.toml:5: listener[0].tls: tls = \"starttls\" needs a default certificate: set "
            "tls.cert and tls.key");
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"implicit\"\n")),
            "ringmx.toml:5: listener[0].tls: tls = \"implicit\" needs a default certificate: set "
            "tls.cert and tls.key");
  // An SNI certificate is not a default one.
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"starttls\"\n[[tls.sni]]\nnames = [\"a.example\"]\n"
                                "cert = \"c\"\nkey = \"k\"\n")),
            "ringmx.toml:5: listener[0].tls: tls = \"starttls\" needs a default certificate: set "
            "tls.cert and tls.key");
}

TEST(ConfigTlsErrorTest, ATypoInTlsIsReportedBeforeTheMissingCertificate) {
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"starttls\"\n[tls]\ncrt = \"c.pem\"\nkey = \"k.pem\"\n")),
            "ringmx.toml:7: tls: unknown key \"crt\" (did you mean \"cert\"?)");
}

TEST(ConfigTlsErrorTest, ClientCertsNeedAClientCa) {
  EXPECT_EQ(ErrorOf(WithMinimal(absl::StrCat("tls = \"starttls\"\nclient_certs = \"optional\"\n",
                                             Av(kTlsSection)))),
            "ringmx.toml:6: listener[0].client_certs: client_certs = \"optional\" needs "
            "tls.client_ca, the CA bundle client certificates are verified against");
  EXPECT_EQ(ErrorOf(WithMinimal(absl::StrCat("tls = \"implicit\"\nclient_certs = \"required\"\n",
                                             Av(kTlsSection)))),
            "ringmx.toml:6: listener[0].client_certs: client_certs = \"required\" needs "
            "tls.client_ca, the CA bundle client certificates are verified against");
}

TEST(ConfigTlsErrorTest, TlsOptionsOnAPlaintextListener) {
  EXPECT_EQ(ErrorOf(WithMinimal("tls_required = true\n")),
            "ringmx.toml:5: listener[0].tls_required: tls_required = true needs tls = "
            "\"starttls\" or \"implicit\" on this listener (it has tls = \"none\")");
  EXPECT_EQ(ErrorOf(WithMinimal("tls = \"none\"\nclient_certs = \"optional\"\n"
                                "[tls]\nclient_ca = \"ca.pem\"\n")),
            "ringmx.toml:6: listener[0].client_certs: client_certs = \"optional\" needs tls = "
            "\"starttls\" or \"implicit\" on this listener (it has tls = \"none\")");
  // false and "none" are fine anywhere.
  EXPECT_TRUE(
      ParseConfig(WithMinimal("tls_required = false\nclient_certs = \"none\"\n"), "x").ok());
}

TEST(ConfigTlsErrorTest, NoTlsHostsAndTlsRequiredDoNotGoTogether) {
  // RFC 3207 section 4: the listed clients would never be offered STARTTLS, yet need it.
  for (std::string_view mode : {"starttls", "implicit"}) {
    SCOPED_TRACE(mode);
    EXPECT_EQ(ErrorOf(WithMinimal(absl::StrCat("tls = \"", Av(mode),
                                               "\"\ntls_required = true\n"
                                               "no_tls_hosts = [\"192.0.2.0/24\"]\n",
                                               Av(kTlsSection)))),
              "ringmx.toml:7: listener[0].no_tls_hosts: no_tls_hosts cannot be used with "
              "tls_required = true (those clients would never be offered STARTTLS, yet need it to "
              "send mail); put them on a listener without tls_required");
  }
  // Either alone, or an empty list, is fine.
  EXPECT_TRUE(ParseConfig(WithMinimal(absl::StrCat("tls = \"starttls\"\ntls_required = true\n"
                                                   "no_tls_hosts = []\n",
                                                   Av(kTlsSection))),
                          "x")
                  .ok());
  EXPECT_TRUE(ParseConfig(WithMinimal(absl::StrCat("tls = \"starttls\"\n"
                                                   "no_tls_hosts = [\"192.0.2.0/24\"]\n",
                                                   Av(kTlsSection))),
                          "x")
                  .ok());
}

TEST(ConfigTlsErrorTest, CertAndKeyCountsMustMatch) {
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = [\"a.pem\", \"b.pem\"]\nkey = \"a.key\"\n")),
            "ringmx.toml:7: tls.key: 1 key for 2 certificates in tls.cert; each key pairs with "
            "the certificate at the same position");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = \"c\"\n"
                                "key = [\"k1\", \"k2\"]\n")),
            "ringmx.toml:8: tls.sni[0].key: 2 keys for 1 certificate in tls.sni[0].cert; each key "
            "pairs with the certificate at the same position");
}

TEST(ConfigTlsErrorTest, CertAndKeyArrayShapes) {
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = []\nkey = []\n")),
            "ringmx.toml:6: tls.cert: must list at least one file");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = [\"a.pem\", \"\"]\nkey = [\"a\", \"b\"]\n")),
            "ringmx.toml:6: tls.cert[1]: must not be empty");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = [\"a.pem\", 3]\nkey = [\"a\", \"b\"]\n")),
            "ringmx.toml:6: tls.cert[1]: expected a string, got an integer");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\ncert = 3\nkey = \"k\"\n")),
            "ringmx.toml:6: tls.cert: expected a string or an array of strings, got an integer");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = [\"c\"]\n"
                                "key = [\"\"]\n")),
            "ringmx.toml:8: tls.sni[0].key[0]: must not be empty");
  EXPECT_EQ(ErrorOf(WithMinimal("[[tls.sni]]\nnames = [\"a.example\"]\ncert = []\n"
                                "key = \"k\"\n")),
            "ringmx.toml:7: tls.sni[0].cert: must list at least one file");
}

TEST(ConfigTlsErrorTest, CipherListsMustBePrintable) {
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\nciphers = \"HIGH\\n\"\n")),
            "ringmx.toml:6: tls.ciphers: expected an OpenSSL cipher list in printable ASCII, got "
            "\"HIGH\\n\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\nciphersuites = 1\n")),
            "ringmx.toml:6: tls.ciphersuites: expected a string, got an integer");
  EXPECT_EQ(ErrorOf(WithMinimal("[tls]\nktls = \"yes\"\n")),
            "ringmx.toml:6: tls.ktls: expected a boolean, got a string");
}

// ---------------------------------------------------------------------------------------------
// [[policy.tls_floor]] (issue 11, item 5).

TEST(ConfigTlsFloorTest, FloorsParseInFileOrder) {
  absl::StatusOr<Config> config = ParseConfig(
      WithMinimal("[policy]\nrelay_networks = []\n"
                  "[[policy.tls_floor]]\nnetworks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"
                  "min_tls = \"1.0\"\n"
                  "[[policy.tls_floor]]\nnetworks = [\"198.51.100.7\"]\nmin_tls = \"1.1\"\n"
                  "[[policy.tls_floor]]\nnetworks = [\"10.0.0.0/8\"]\nmin_tls = \"1.3\"\n"),
      "ringmx.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<TlsFloorConfig>& floors = config->policy.tls_floor;
  ASSERT_EQ(floors.size(), 3u);
  ASSERT_EQ(floors[0].networks.size(), 2u);
  EXPECT_EQ(floors[0].networks[0].ToString(), "192.0.2.0/24");
  EXPECT_EQ(floors[0].networks[1].ToString(), "2001:db8::/32");
  EXPECT_EQ(floors[0].min_tls, "1.0");
  EXPECT_EQ(floors[1].networks[0].ToString(), "198.51.100.7/32");
  EXPECT_EQ(floors[1].min_tls, "1.1");
  EXPECT_EQ(floors[2].min_tls, "1.3");
}

TEST(ConfigTlsFloorTest, NoFloorsByDefault) {
  absl::StatusOr<Config> config = ParseConfig(WithMinimal(""), "ringmx.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->policy.tls_floor.empty());
}

TEST(ConfigTlsFloorErrorTest, EachKeyIsCheckedAndNamed) {
  // Lines: [policy] 5, [[policy.tls_floor]] 6, then the floor's keys from 7.
  const auto floor = [](std::string_view keys) {
    return WithMinimal(absl::StrCat("[policy]\n[[policy.tls_floor]]\n", Av(keys)));
  };
  EXPECT_EQ(ErrorOf(floor("networks = [\"192.0.2.0/24\"]\nmin_tls = \"1.4\"\n")),
            "ringmx.toml:8: policy.tls_floor[0].min_tls: expected one of \"1.0\", \"1.1\", "
            "\"1.2\", \"1.3\", got \"1.4\"");
  EXPECT_EQ(ErrorOf(floor("networks = [\"192.0.2.0/24\"]\nmin_tls = 1.0\n")),
            "ringmx.toml:8: policy.tls_floor[0].min_tls: expected a string (write the value in "
            "quotes), got a floating-point number");
  EXPECT_EQ(ErrorOf(floor("networks = [\"192.0.2.0/24\"]\n")),
            "ringmx.toml:6: policy.tls_floor[0]: missing required key \"min_tls\"");
  EXPECT_EQ(ErrorOf(floor("min_tls = \"1.0\"\n")),
            "ringmx.toml:6: policy.tls_floor[0]: missing required key \"networks\"");
  EXPECT_EQ(ErrorOf(floor("networks = []\nmin_tls = \"1.0\"\n")),
            "ringmx.toml:7: policy.tls_floor[0].networks: must list at least one network "
            "(\"192.0.2.0/24\", \"2001:db8::/32\")");
  EXPECT_EQ(ErrorOf(floor("networks = \"192.0.2.0/24\"\nmin_tls = \"1.0\"\n")),
            "ringmx.toml:7: policy.tls_floor[0].networks: expected an array of strings, got a "
            "string");
  EXPECT_THAT(ErrorOf(floor("networks = [\"192.0.2.1/24\"]\nmin_tls = \"1.0\"\n")),
              StartsWith("ringmx.toml:7: policy.tls_floor[0].networks[0]: "));
  EXPECT_EQ(ErrorOf(floor("networks = [\"192.0.2.0/24\"]\nmin_tls = \"1.0\"\nmin_tsl = \"1.0\"\n")),
            "ringmx.toml:9: policy.tls_floor[0]: unknown key \"min_tsl\" (did you mean "
            "\"min_tls\"?)");
  // The second floor is named by its index.
  EXPECT_EQ(ErrorOf(floor("networks = [\"192.0.2.0/24\"]\nmin_tls = \"1.0\"\n"
                          "[[policy.tls_floor]]\nnetworks = [\"10.0.0.0/8\"]\nmin_tls = \"1\"\n")),
            "ringmx.toml:11: policy.tls_floor[1].min_tls: expected one of \"1.0\", \"1.1\", "
            "\"1.2\", \"1.3\", got \"1\"");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\ntls_floor = [\"192.0.2.0/24\"]\n")),
            "ringmx.toml:6: policy.tls_floor[0]: expected a table, got a string");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\ntls_floor = 1\n")),
            "ringmx.toml:6: policy.tls_floor: expected an array of tables "
            "([[policy.tls_floor]]), got an integer");
}

// ---------------------------------------------------------------------------------------------
// AUTH on a listener.

TEST(ConfigAuthListenerTest, AuthNeedsATlsListener) {
  EXPECT_EQ(ErrorOf(WithMinimal("auth = true\n")),
            "ringmx.toml:5: listener[0].auth: AUTH is only offered over TLS: the listener needs "
            "tls = \"starttls\" or \"implicit\"");
}

TEST(ConfigAuthListenerTest, AuthNeedsUsers) {
  const std::string tls =
      "tls = \"implicit\"\nauth = true\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
  EXPECT_EQ(ErrorOf(WithMinimal(tls)),
            "ringmx.toml:6: listener[0].auth: AUTH needs users: set [auth] passwd");
  absl::StatusOr<Config> config =
      ParseConfig(WithMinimal(tls + "[auth]\npasswd = \"/etc/ringmx/passwd\"\n"), "ringmx.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->listeners[0].auth);
  EXPECT_EQ(config->auth.passwd, "/etc/ringmx/passwd");
}

TEST(ConfigAuthListenerTest, OtherErrorsComeFirst) {
  // A file with a mistake earlier in the file reports that mistake first.
  EXPECT_EQ(ErrorOf(WithMinimal("auth = true\n[policy]\nmax_recipients = 0\n")),
            "ringmx.toml:5: listener[0].auth: AUTH is only offered over TLS: the listener needs "
            "tls = \"starttls\" or \"implicit\"");
}

TEST(ConfigTest, TheDesignSketchParses) {
  // DESIGN.md section 7, verbatim apart from the comments.
  constexpr std::string_view kSketch = R"(hostname = "mx.example.test"
workers = 0

[[listener]]
name = "mx"
address = "0.0.0.0:25"
tls = "starttls"
tls_required = false
min_tls = "1.2"
client_certs = "optional"
sni_strict = false
no_tls_hosts = []
auth = false

[tls]
cert = "certs/mx.fullchain.pem"
key = "certs/mx.key"
client_ca = "certs/ca.pem"
[[tls.sni]]
names = ["other.example.test"]
cert = "certs/other.fullchain.pem"
key = "certs/other.key"

[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
max_recipients = 100
max_message_size = 26214400

[auth]
passwd = "/etc/ringmx/passwd"

[spool]
path = "/var/spool/ringmx"

[timeouts]
idle_s = 300
data_s = 600

[control]
socket = "/run/ringmx/control.sock"
)";
  absl::StatusOr<Config> parsed = ParseConfig(kSketch, "ringmx.toml", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->listeners[0].tls, TlsMode::kStartTls);
  EXPECT_EQ(parsed->listeners[0].client_certs, ClientCertMode::kOptional);
  EXPECT_EQ(PairsText(parsed->tls.pairs),
            "/etc/ringmx/certs/mx.fullchain.pem + /etc/ringmx/certs/mx.key");
  EXPECT_EQ(PairsText(parsed->tls.sni[0].pairs),
            "/etc/ringmx/certs/other.fullchain.pem + /etc/ringmx/certs/other.key");
}

// ---- [limits] ------------------------------------------------------------------------------

TEST(ConfigLimitsTest, DefaultsAndExemptFollowsRelayNetworks) {
  absl::StatusOr<Config> parsed = ParseConfig(kMinimal, "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->limits.max_sessions, 0);
  EXPECT_EQ(parsed->limits.max_sessions_per_client, 50);
  EXPECT_EQ(parsed->limits.max_connection_rate_per_client, 0);
  EXPECT_EQ(parsed->limits.max_errors, 20);
  EXPECT_TRUE(parsed->limits.exempt.empty());

  // Without `exempt`, the relay networks are exempt (with or without a [limits] table).
  for (const char* limits : {"", "[limits]\nmax_errors = 5\n"}) {
    parsed = ParseConfig(
        WithMinimal(absl::StrCat("[policy]\nrelay_networks = [\"10.0.0.0/8\", \"::1\"]\n", limits)),
        "x");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->limits.exempt.size(), 2u) << limits;
    EXPECT_EQ(parsed->limits.exempt[0].ToString(), "10.0.0.0/8");
    EXPECT_EQ(parsed->limits.exempt[1].ToString(), "::1/128");
  }
  // [limits] before [policy] in the file changes nothing.
  parsed = ParseConfig(
      WithMinimal("[limits]\nmax_errors = 5\n[policy]\nrelay_networks = [\"10.0.0.0/8\"]\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->limits.exempt.size(), 1u);
}

TEST(ConfigLimitsTest, ExplicitValues) {
  absl::StatusOr<Config> parsed =
      ParseConfig(WithMinimal("[policy]\nrelay_networks = [\"10.0.0.0/8\"]\n"
                              "[limits]\nmax_sessions = 1000\nmax_sessions_per_client = 0\n"
                              "max_connection_rate_per_client = 60\nmax_errors = 1\n"
                              "exempt = [\"192.0.2.0/24\"]\n"),
                  "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->limits.max_sessions, 1000);
  EXPECT_EQ(parsed->limits.max_sessions_per_client, 0);
  EXPECT_EQ(parsed->limits.max_connection_rate_per_client, 60);
  EXPECT_EQ(parsed->limits.max_errors, 1);
  ASSERT_EQ(parsed->limits.exempt.size(), 1u);
  EXPECT_EQ(parsed->limits.exempt[0].ToString(), "192.0.2.0/24");
  // An empty list exempts nobody, relay networks included.
  parsed = ParseConfig(
      WithMinimal("[policy]\nrelay_networks = [\"10.0.0.0/8\"]\n[limits]\nexempt = []\n"), "x");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->limits.exempt.empty());
}

TEST(ConfigLimitsTest, FullFileSetsEveryLimit) {
  absl::StatusOr<Config> parsed =
      ParseConfig(ReadFile(RINGMX_CORE_TESTDATA "/full.toml"), "full.toml", "/etc/ringmx");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->limits.max_sessions, 10000);
  EXPECT_EQ(parsed->limits.max_sessions_per_client, 20);
  EXPECT_EQ(parsed->limits.max_connection_rate_per_client, 120);
  EXPECT_EQ(parsed->limits.max_errors, 10);
  ASSERT_EQ(parsed->limits.exempt.size(), 2u);
  EXPECT_EQ(parsed->limits.exempt[1].ToString(), "2001:db8::/32");
}

TEST(ConfigLimitsTest, BadValuesNameTheKey) {
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_sessions = -1\n")),
            "ringmx.toml:6: limits.max_sessions: must be between 0 and 10000000 (0 = no limit), "
            "got -1");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_sessions = 10000001\n")),
            "ringmx.toml:6: limits.max_sessions: must be between 0 and 10000000 (0 = no limit), "
            "got 10000001");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_sessions_per_client = -5\n")),
            "ringmx.toml:6: limits.max_sessions_per_client: must be between 0 and 10000000 (0 = no "
            "limit), got -5");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_connection_rate_per_client = -1\n")),
            "ringmx.toml:6: limits.max_connection_rate_per_client: must be between 0 and 10000000 "
            "per minute (0 = no limit), got -1");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_errors = 0\n")),
            "ringmx.toml:6: limits.max_errors: must be between 1 and 100000, got 0");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_errors = \"20\"\n")),
            "ringmx.toml:6: limits.max_errors: expected an integer, got a string");
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nexempt = \"10.0.0.0/8\"\n")),
            "ringmx.toml:6: limits.exempt: expected an array of strings, got a string");
  EXPECT_THAT(ErrorOf(WithMinimal("[limits]\nexempt = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n")),
              StartsWith("ringmx.toml:6: limits.exempt[1]: "));
  EXPECT_EQ(ErrorOf(WithMinimal("[limits]\nmax_session = 5\n")),
            "ringmx.toml:6: limits: unknown key \"max_session\" (did you mean \"max_sessions\"?)");
  EXPECT_EQ(ErrorOf(WithMinimal("[policy]\nmax_errors = 5\n")),
            "ringmx.toml:6: policy: unknown key \"max_errors\" (\"max_errors\" belongs in "
            "[limits])");
  EXPECT_EQ(ErrorOf(WithMinimal("limits = 5\n")),
            "ringmx.toml:5: listener[0]: unknown key \"limits\" (\"limits\" is a top-level key: "
            "move it above the first [table] header)");
}

}  // namespace
}  // namespace ringmx::core
