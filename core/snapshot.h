// The immutable run-time view of configuration (DESIGN.md section 2). Built completely on the
// main thread, then published to every shard, which swaps its pointer between completion batches.
// A session keeps the Snapshot it started with until it ends.
#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"

#include "core/config.h"

namespace ringmx::core {

// Immutable; safe to share.
struct Snapshot {
  Config config;
  // config.policy.local_domains, lower-case, for O(1) lookups.
  absl::flat_hash_set<std::string> local_domains;
  uint64_t generation = 0;

  static std::shared_ptr<const Snapshot> Build(Config config, uint64_t generation);
};

}  // namespace ringmx::core
