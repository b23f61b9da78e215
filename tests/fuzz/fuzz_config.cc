// Fuzz target: the configuration loader (core/config.h). Any text must give either a Config that
// keeps every promise of the header, or one error message that starts with the source name; never
// a crash, an exception or a different answer for the same text.
//
// Input: the TOML text itself (so that real configuration files are seeds as they are).
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "core/check.h"
#include "core/config.h"
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
  // A valid config makes a snapshot.
  RINGMX_CHECK(core::Snapshot::Build(c, 1) != nullptr);
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
