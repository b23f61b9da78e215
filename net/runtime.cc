#include "net/runtime.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/passwd_file.h"
#include "core/status_macros.h"

namespace ringmx::net {

absl::StatusOr<std::shared_ptr<const core::RecipientTable>> LoadRecipients(
    const core::Config& config, std::vector<std::string>* warnings) {
  const std::string& path = config.policy.recipients;
  if (path.empty()) return std::shared_ptr<const core::RecipientTable>();
  absl::StatusOr<std::shared_ptr<const core::RecipientTable>> table =
      core::RecipientTable::LoadFile(path);
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat("policy.recipients: ", table.status().message()));
  }
  if (warnings != nullptr) {
    for (const core::RecipientTable::DomainLine& d : (*table)->Domains()) {
      bool local = false;
      for (const std::string& domain : config.policy.local_domains) local |= domain == d.domain;
      if (!local) {
        warnings->push_back(absl::StrCat("policy.recipients: ", path, ":", d.line, ": domain \"",
                                         d.domain,
                                         "\" is not in policy.local_domains; its lines have no "
                                         "effect"));
      }
    }
  }
  return table;
}

absl::StatusOr<Runtime> BuildRuntime(core::Config config, uint64_t generation) {
  std::vector<std::string> warnings;
  RINGMX_ASSIGN_OR_RETURN(std::shared_ptr<const core::RecipientTable> recipients,
                          LoadRecipients(config, &warnings));
  RINGMX_ASSIGN_OR_RETURN(std::shared_ptr<const core::PasswdTable> passwd,
                          core::LoadAuthPasswd(config.auth));
  RINGMX_ASSIGN_OR_RETURN(std::shared_ptr<const tls::TlsContext> tls,
                          tls::TlsContext::Build(config, &warnings));
  RINGMX_ASSIGN_OR_RETURN(std::shared_ptr<const tls::ClientTlsContext> client_tls,
                          tls::ClientTlsContext::Build(config));
  for (const std::string& warning : warnings) core::LogWarning(warning);
  Runtime runtime;
  runtime.snapshot = core::Snapshot::Build(std::move(config), generation, std::move(recipients),
                                           std::move(passwd));
  runtime.tls = std::move(tls);
  runtime.client_tls = std::move(client_tls);
  return runtime;
}

}  // namespace ringmx::net
