// net/control_commands.h: the JSON replies of `ringmx ctl version` and `ringmx ctl certs`.
#include "net/control_commands.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <liburing.h>

#include "core/json.h"
#include "tests/tls/tls_test_util.h"

namespace ringmx::net {
namespace {

using ::testing::HasSubstr;

core::JsonValue Parse(const std::string& text) {
  absl::StatusOr<core::JsonValue> json = core::ParseJson(text);
  EXPECT_TRUE(json.ok()) << json.status() << "\n" << text;
  return json.ok() ? *json : core::JsonValue();
}

TEST(VersionJsonTest, EveryField) {
  VersionFacts facts;
  facts.version = "0.1.0";
  facts.git_commit = "abc";
  facts.build_type = "Release";
  facts.compiler = "GNU 12.2.0";
  facts.openssl = "OpenSSL 3.0.19";
  facts.liburing = "2.3";
  facts.liburing_so = "liburing.so.2.3";
  facts.kernel_tls.available = false;
  facts.kernel_tls.reason = "TCP_ULP tls: No such file or directory";
  facts.ktls_configured = true;
  const core::JsonValue json = Parse(VersionJson(facts));
  EXPECT_EQ(json.Find("version")->text(), "0.1.0");
  EXPECT_EQ(json.Find("git_commit")->text(), "abc");
  EXPECT_EQ(json.Find("build_type")->text(), "Release");
  EXPECT_EQ(json.Find("compiler")->text(), "GNU 12.2.0");
  EXPECT_EQ(json.Find("openssl")->text(), "OpenSSL 3.0.19");
  EXPECT_EQ(json.Find("liburing")->text(), "2.3");
  EXPECT_EQ(json.Find("liburing_library")->text(), "liburing.so.2.3");
  const core::JsonValue* ktls = json.Find("kernel_tls");
  ASSERT_NE(ktls, nullptr);
  EXPECT_FALSE(ktls->Find("available")->bool_value());
  EXPECT_THAT(ktls->Find("reason")->text(), HasSubstr("TCP_ULP"));
  EXPECT_TRUE(ktls->Find("enabled")->bool_value());
}

TEST(VersionJsonTest, ThisProcess) {
  // The server uses liburing; this test binary would not load it without a call of its own.
  io_uring_free_probe(io_uring_get_probe());
  const VersionFacts facts = VersionFacts::ForThisProcess(true);
  EXPECT_FALSE(facts.version.empty());
  EXPECT_FALSE(facts.git_commit.empty());  // a commit, or "unknown"
  EXPECT_THAT(facts.openssl, ::testing::StartsWith("OpenSSL 3"));
  EXPECT_THAT(facts.liburing_so, ::testing::StartsWith("liburing.so"));
  // Either the kernel has TLS ULP or the probe says why not.
  EXPECT_TRUE(facts.kernel_tls.available || !facts.kernel_tls.reason.empty());
}

Runtime MakeRuntime(const core::Config& config) {
  Runtime runtime;
  auto snapshot = std::make_shared<core::Snapshot>();
  snapshot->config = config;
  snapshot->generation = 4;
  runtime.snapshot = snapshot;
  runtime.tls = tls::testing::MustBuild(config);
  return runtime;
}

TEST(CertsJsonTest, ListenersAndCertificates) {
  core::Config config = tls::testing::BaseConfig();
  core::ListenerConfig plain;
  plain.name = "plain";
  plain.address = *core::Endpoint::Parse("127.0.0.1:2526");
  config.listeners.push_back(plain);
  const Runtime runtime = MakeRuntime(config);
  ASSERT_NE(runtime.tls, nullptr);
  const core::JsonValue json = Parse(CertsJson(runtime, absl::Now()));
  EXPECT_EQ(json.Find("generation")->AsUint64(), 4u);
  const core::JsonValue* listeners = json.Find("listeners");
  ASSERT_NE(listeners, nullptr);
  ASSERT_EQ(listeners->elements().size(), 2u);
  const core::JsonValue& mx = listeners->elements()[0];
  EXPECT_EQ(mx.Find("name")->text(), "mx");
  EXPECT_EQ(mx.Find("tls")->text(), "starttls");
  ASSERT_EQ(mx.Find("certificates")->elements().size(), 2u);
  EXPECT_EQ(mx.Find("certificates")->elements()[0].text(), "tls.cert");
  EXPECT_EQ(mx.Find("certificates")->elements()[1].text(), "tls.sni[0].cert");
  const core::JsonValue& p = listeners->elements()[1];
  EXPECT_EQ(p.Find("tls")->text(), "none");
  EXPECT_TRUE(p.Find("certificates")->elements().empty());
  EXPECT_EQ(p.Find("min_tls"), nullptr);

  const core::JsonValue* certs = json.Find("certificates");
  ASSERT_NE(certs, nullptr);
  ASSERT_EQ(certs->elements().size(), 2u);
  const core::JsonValue& leaf = certs->elements()[0];
  EXPECT_EQ(leaf.Find("subject")->text(), "CN=mx.example.test,O=Ringmx Test");
  EXPECT_EQ(leaf.Find("issuer")->text(), "CN=Ringmx Test Intermediate CA,O=Ringmx Test");
  EXPECT_EQ(leaf.Find("sans")->elements().size(), 3u);
  EXPECT_EQ(leaf.Find("chain_length")->AsUint64(), 2u);
  EXPECT_EQ(leaf.Find("key_type")->text(), "RSA");
  EXPECT_EQ(leaf.Find("key_bits")->AsUint64(), 2048u);
  EXPECT_EQ(leaf.Find("sha256_fingerprint")->text().size(), 64u);
  EXPECT_GE(leaf.Find("days_left")->AsInt64(), 360);
  EXPECT_EQ(leaf.Find("warning"), nullptr);
  EXPECT_EQ(certs->elements()[1].Find("names")->elements()[0].text(), "sni.example.test");
  EXPECT_TRUE(json.Find("warnings")->elements().empty());
}

TEST(CertsJsonTest, WarnsWithinFourteenDaysOfExpiry) {
  const Runtime runtime = MakeRuntime(tls::testing::BaseConfig());
  // The PKI's certificates run out about 365 days from now.
  const absl::Time later = absl::Now() + absl::Hours(24 * 358);
  const core::JsonValue json = Parse(CertsJson(runtime, later));
  const core::JsonValue* certs = json.Find("certificates");
  ASSERT_NE(certs, nullptr);
  for (const core::JsonValue& cert : certs->elements()) {
    ASSERT_NE(cert.Find("warning"), nullptr);
    EXPECT_THAT(cert.Find("warning")->text(), HasSubstr(": expires in "));
    EXPECT_LE(cert.Find("days_left")->AsInt64(), 14);
  }
  EXPECT_EQ(json.Find("warnings")->elements().size(), 2u);
  const core::JsonValue expired = Parse(CertsJson(runtime, absl::Now() + absl::Hours(24 * 400)));
  EXPECT_THAT(expired.Find("warnings")->elements()[0].text(), HasSubstr(": expired on "));
}

TEST(CertsJsonTest, NoTls) {
  core::Config config = tls::testing::BaseConfig();
  config.listeners[0].tls = core::TlsMode::kNone;
  Runtime runtime;
  auto snapshot = std::make_shared<core::Snapshot>();
  snapshot->config = config;
  runtime.snapshot = snapshot;
  const core::JsonValue json = Parse(CertsJson(runtime, absl::Now()));
  EXPECT_TRUE(json.Find("certificates")->elements().empty());
  EXPECT_TRUE(json.Find("listeners")->elements()[0].Find("certificates")->elements().empty());
}

}  // namespace
}  // namespace ringmx::net
