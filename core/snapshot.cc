#include "core/snapshot.h"

#include <utility>

#include "absl/strings/ascii.h"

namespace ringmx::core {

std::shared_ptr<const Snapshot> Snapshot::Build(Config config, uint64_t generation) {
  auto snapshot = std::make_shared<Snapshot>();
  for (const std::string& domain : config.policy.local_domains) {
    snapshot->local_domains.insert(absl::AsciiStrToLower(domain));
  }
  snapshot->config = std::move(config);
  snapshot->generation = generation;
  return snapshot;
}

}  // namespace ringmx::core
