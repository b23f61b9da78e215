// Fuzz target: the configuration loader (core/config.h). Any text must give either a Config that
// keeps every promise of the header, or one error message that starts with the source name; never
// a crash, an exception or a different answer for the same text.
//
// Input: the TOML text itself (so that real configuration files are seeds as they are).
#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "core/check.h"
#include "core/config.h"
#include "core/next_hop.h"
#include "core/snapshot.h"

namespace ringmx::fuzz {
namespace {

bool IsLowerCanonicalDomain(std::string_view name) {
  if (name.empty() || name.back() == '.') return false;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

bool Absolute(std::string_view path) { return path.empty() || path[0] == '/'; }

void CheckConfig(const core::Config& c) {
  RINGMX_CHECK(!c.hostname.empty() && c.hostname.back() != '.' &&
               c.hostname.find('.') != std::string::npos);
  RINGMX_CHECK(c.workers >= 0 && c.workers <= 1024);
  RINGMX_CHECK(!c.listeners.empty());
  for (size_t i = 0; i < c.listeners.size(); ++i) {
    const core::ListenerConfig& l = c.listeners[i];
    for (size_t j = 0; j < i; ++j) RINGMX_CHECK(c.listeners[j].name != l.name);
    RINGMX_CHECK(l.min_tls == "1.2" || l.min_tls == "1.3");
    if (l.tls != core::TlsMode::kNone) RINGMX_CHECK(!c.tls.cert.empty() && !c.tls.key.empty());
    if (l.tls_required || l.client_certs != core::ClientCertMode::kNone) {
      RINGMX_CHECK(l.tls != core::TlsMode::kNone);
    }
    if (l.client_certs != core::ClientCertMode::kNone) RINGMX_CHECK(!c.tls.client_ca.empty());
  }
  const core::TlsConfig& tls = c.tls;
  if (tls.pairs.empty()) {
    RINGMX_CHECK(tls.cert.empty() && tls.key.empty());
  } else {
    RINGMX_CHECK(tls.pairs[0].cert == tls.cert && tls.pairs[0].key == tls.key);
  }
  for (const core::CertKeyPair& p : tls.pairs) RINGMX_CHECK(Absolute(p.cert) && Absolute(p.key));
  RINGMX_CHECK(Absolute(tls.client_ca));
  for (std::string_view list :
       {std::string_view(tls.ciphers), std::string_view(tls.ciphersuites)}) {
    for (char ch : list) RINGMX_CHECK(ch >= 0x20 && ch < 0x7F);
  }
  for (const core::SniConfig& sni : tls.sni) {
    RINGMX_CHECK(!sni.pairs.empty() && !sni.names.empty());
    RINGMX_CHECK(sni.pairs[0].cert == sni.cert && sni.pairs[0].key == sni.key);
    for (const std::string& name : sni.names) RINGMX_CHECK(IsLowerCanonicalDomain(name));
    for (const core::CertKeyPair& p : sni.pairs) {
      RINGMX_CHECK(!p.cert.empty() && !p.key.empty() && Absolute(p.cert) && Absolute(p.key));
    }
  }
  for (const std::string& d : c.policy.local_domains) RINGMX_CHECK(IsLowerCanonicalDomain(d));
  RINGMX_CHECK(c.policy.max_recipients > 0);
  RINGMX_CHECK(!c.spool.path.empty() && Absolute(c.spool.path));
  RINGMX_CHECK(Absolute(c.auth.passwd) && Absolute(c.control.socket) && Absolute(c.log.file));
  RINGMX_CHECK(c.auth.slow_after >= 1 && c.auth.slow_after <= c.auth.refuse_after);
  RINGMX_CHECK(c.auth.failure_window >= absl::Seconds(1));
  RINGMX_CHECK(c.timeouts.idle > absl::ZeroDuration() && c.timeouts.data > absl::ZeroDuration());
  RINGMX_CHECK(c.timeouts.greet_pause >= absl::ZeroDuration());
  RINGMX_CHECK(c.timeouts.shutdown_grace >= absl::ZeroDuration());
  // [[route]] and [delivery] (docs/delivery.md).
  if (!c.routes.empty()) RINGMX_CHECK(c.delivery.bounce_next_hop.has_value());
  RINGMX_CHECK(c.delivery.retry_first >= absl::Seconds(1));
  RINGMX_CHECK(c.delivery.retry_first <= c.delivery.retry_max);
  RINGMX_CHECK(c.delivery.max_lifetime >= absl::ZeroDuration());
  for (const core::RouteConfig& r : c.routes) {
    RINGMX_CHECK(!r.domains.empty() && !r.next_hop.empty());
    bool has_smtp = false;
    for (const core::NextHop& hop : r.next_hop) {
      has_smtp = has_smtp || hop.protocol == core::HopProtocol::kSmtp;
      if (hop.is_unix) RINGMX_CHECK(Absolute(hop.unix_path) && !hop.unix_path.empty());
      if (!hop.is_unix) RINGMX_CHECK(hop.inet.port != 0);
      const absl::StatusOr<core::NextHop> again = core::NextHop::Parse(hop.ToString());
      RINGMX_CHECK(again.ok() && *again == hop);
    }
    if (!has_smtp) RINGMX_CHECK(r.tls == core::RouteTls::kNone);
    if (r.tls == core::RouteTls::kVerify) {
      RINGMX_CHECK(!r.tls_ca.empty() && !r.tls_name.empty() && Absolute(r.tls_ca));
    } else {
      RINGMX_CHECK(r.tls_ca.empty() && r.tls_name.empty());
    }
    RINGMX_CHECK(r.max_connections >= 1 && r.max_connections <= 1000);
  }
  // A valid config makes a snapshot, and its route table finds each route by its own names.
  const std::shared_ptr<const core::Snapshot> snapshot = core::Snapshot::Build(c, 1);
  RINGMX_CHECK(snapshot != nullptr);
  for (size_t i = 0; i < c.routes.size(); ++i) {
    for (const std::string& d : c.routes[i].domains) {
      RINGMX_CHECK(d == "*" || IsLowerCanonicalDomain(d));
      const std::string probe = d == "*" ? std::string("unrouted.invalid.")
                                         : (d.starts_with("*.") ? "x" + d.substr(1) : d);
      const core::RouteConfig* found = snapshot->routes.Lookup(probe);
      RINGMX_CHECK(found != nullptr);
      // "*" may be beaten by a more specific route for the probe; names never are.
      if (d != "*" && !d.starts_with("*.")) RINGMX_CHECK(found == &snapshot->routes.routes()[i]);
    }
  }
}

void CheckError(const absl::Status& status) {
  RINGMX_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  const std::string_view message(status.message().data(), status.message().size());
  // "<source>:<line>: ..." or "<source>: ..."; one line.
  RINGMX_CHECK(message.substr(0, 10) == "fuzz.toml:");
  RINGMX_CHECK(message.find('\n') == std::string_view::npos);
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  if (size > 64 * 1024) return 0;  // a configuration file, not a data set
  const std::string text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<core::Config> config = core::ParseConfig(text, "fuzz.toml", "/etc/ringmx");
  if (config.ok()) {
    CheckConfig(*config);
  } else {
    CheckError(config.status());
  }
  // Same text, same answer.
  const absl::StatusOr<core::Config> again = core::ParseConfig(text, "fuzz.toml", "/etc/ringmx");
  RINGMX_CHECK(again.ok() == config.ok());
  if (!config.ok()) RINGMX_CHECK(again.status() == config.status());
  return 0;
}
