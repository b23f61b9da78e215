#include "net/runtime.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/status_macros.h"

namespace ringmx::net {

absl::StatusOr<Runtime> BuildRuntime(core::Config config, uint64_t generation) {
  std::vector<std::string> warnings;
  RINGMX_ASSIGN_OR_RETURN(std::shared_ptr<const tls::TlsContext> tls,
                          tls::TlsContext::Build(config, &warnings));
  for (const std::string& warning : warnings) core::LogWarning(warning);
  Runtime runtime;
  runtime.snapshot = core::Snapshot::Build(std::move(config), generation);
  runtime.tls = std::move(tls);
  return runtime;
}

}  // namespace ringmx::net
