#include "net/control_commands.h"

#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/json.h"
#include "net/build_info.h"
#include "tls/cert_info.h"

namespace ringmx::net {
namespace {

// The file name of the loaded liburing (symbolic links resolved), "" if it is not found.
std::string LoadedLiburing() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        if (info->dlpi_name == nullptr || strstr(info->dlpi_name, "liburing") == nullptr) return 0;
        char resolved[PATH_MAX];
        const char* path =
            realpath(info->dlpi_name, resolved) != nullptr ? resolved : info->dlpi_name;
        const char* slash = strrchr(path, '/');
        *static_cast<std::string*>(data) = slash != nullptr ? slash + 1 : path;
        return 1;
      },
      &found);
  return found;
}

std::string_view TlsModeName(core::TlsMode mode) {
  switch (mode) {
    case core::TlsMode::kNone:
      return "none";
    case core::TlsMode::kStartTls:
      return "starttls";
    case core::TlsMode::kImplicit:
      return "implicit";
  }
  return "?";
}

std::string_view ClientCertsName(core::ClientCertMode mode) {
  switch (mode) {
    case core::ClientCertMode::kNone:
      return "none";
    case core::ClientCertMode::kOptional:
      return "optional";
    case core::ClientCertMode::kRequired:
      return "required";
  }
  return "?";
}

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace

VersionFacts VersionFacts::ForThisProcess(bool ktls_configured) {
  VersionFacts facts;
  facts.version = RINGMX_BUILD_VERSION;
  facts.git_commit = RINGMX_BUILD_GIT_COMMIT;
  facts.build_type = RINGMX_BUILD_TYPE;
  facts.compiler = RINGMX_BUILD_COMPILER;
  facts.openssl = tls::OpenSslRuntimeVersion();
  facts.liburing = RINGMX_BUILD_LIBURING;
  facts.liburing_so = LoadedLiburing();
  facts.kernel_tls = ProbeKernelTls();
  facts.ktls_configured = ktls_configured;
  if (facts.git_commit.empty()) facts.git_commit = "unknown";
  if (facts.build_type.empty()) facts.build_type = "unknown";
  return facts;
}

std::string VersionJson(const VersionFacts& facts) {
  std::string out;
  core::JsonWriter json(out);
  json.BeginObject()
      .Key("version")
      .String(facts.version)
      .Key("git_commit")
      .String(facts.git_commit)
      .Key("build_type")
      .String(facts.build_type)
      .Key("compiler")
      .String(facts.compiler)
      .Key("openssl")
      .String(facts.openssl)
      .Key("liburing")
      .String(facts.liburing)
      .Key("liburing_library")
      .String(facts.liburing_so)
      .Key("kernel_tls")
      .BeginObject()
      .Key("available")
      .Bool(facts.kernel_tls.available)
      .Key("rekey")
      .Bool(facts.kernel_tls.rekey)
      .Key("reason")
      .String(facts.kernel_tls.reason)
      .Key("enabled")
      .Bool(facts.ktls_configured)
      .EndObject()
      .EndObject();
  return out;
}

std::string CertsJson(const Runtime& runtime, absl::Time now) {
  const core::Config& config = runtime.snapshot->config;
  std::vector<tls::CertInfo> certs;
  std::vector<std::string> warnings;
  if (runtime.tls != nullptr) {
    for (const tls::ChainInfo& chain : runtime.tls->chains()) {
      absl::StatusOr<tls::CertInfo> info = tls::DescribeChain(chain);
      if (!info.ok()) {
        warnings.emplace_back(info.status().message());
        continue;
      }
      certs.push_back(*std::move(info));
    }
  }
  std::string out;
  core::JsonWriter json(out);
  json.BeginObject()
      .Key("generation")
      .Uint(runtime.snapshot->generation)
      .Key("now")
      .String(Utc(now));
  json.Key("listeners").BeginArray();
  for (const core::ListenerConfig& listener : config.listeners) {
    const bool tls = listener.tls != core::TlsMode::kNone && runtime.tls != nullptr;
    json.BeginObject()
        .Key("name")
        .String(listener.name)
        .Key("address")
        .String(listener.address.ToString())
        .Key("tls")
        .String(TlsModeName(listener.tls));
    if (tls) {
      json.Key("min_tls")
          .String(listener.min_tls)
          .Key("sni_strict")
          .Bool(listener.sni_strict)
          .Key("client_certs")
          .String(ClientCertsName(listener.client_certs));
    }
    // Every TLS listener serves the whole certificate table (default and SNI entries).
    json.Key("certificates").BeginArray();
    if (tls) {
      for (const tls::CertInfo& cert : certs) json.String(cert.config_key);
    }
    json.EndArray().EndObject();
  }
  json.EndArray();
  json.Key("certificates").BeginArray();
  for (const tls::CertInfo& cert : certs) {
    json.BeginObject().Key("config_key").String(cert.config_key).Key("names").BeginArray();
    if (cert.names.empty()) json.String("(default)");
    for (const std::string& name : cert.names) json.String(name);
    json.EndArray().Key("subject").String(cert.subject).Key("sans").BeginArray();
    for (const std::string& san : cert.sans) json.String(san);
    const int64_t days_left = absl::ToInt64Hours(cert.not_after - now) / 24;
    json.EndArray()
        .Key("issuer")
        .String(cert.issuer)
        .Key("not_before")
        .String(Utc(cert.not_before))
        .Key("not_after")
        .String(Utc(cert.not_after))
        .Key("days_left")
        .Int(days_left)
        .Key("sha256_fingerprint")
        .String(cert.sha256_fingerprint)
        .Key("chain_length")
        .Uint(cert.chain_length)
        .Key("key_type")
        .String(cert.key_type)
        .Key("key_bits")
        .Int(cert.key_bits);
    if (!cert.key_curve.empty()) json.Key("key_curve").String(cert.key_curve);
    const std::string warning = tls::ExpiryWarning(cert, now);
    if (!warning.empty()) {
      json.Key("warning").String(warning);
      warnings.push_back(warning);
    }
    json.EndObject();
  }
  json.EndArray().Key("warnings").BeginArray();
  for (const std::string& warning : warnings) json.String(warning);
  json.EndArray().EndObject();
  return out;
}

}  // namespace ringmx::net
