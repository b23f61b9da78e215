// Queue ids: the names of spool files and the id in "250 2.0.0 Ok: queued as <id>".
#pragma once

#include <stdint.h>

#include <string>

#include "absl/time/time.h"

namespace ringmx::core {

// Mints ids that are unique across the shards of one process and across restarts: 20 characters
// of [0-9A-V] (time in microseconds, shard index, per-shard sequence), so ids sort by time.
// Shard-local: each shard owns one, with its own index.
class QueueIdGenerator {
 public:
  explicit QueueIdGenerator(uint32_t shard_index) : shard_index_(shard_index) {}
  std::string Next(absl::Time now);

  // As if the last id had been minted at `now` and `sequence` were the next sequence number.
  void SetSequenceForTest(absl::Time now, uint32_t sequence);

 private:
  uint32_t shard_index_;
  uint32_t sequence_ = 0;
  int64_t last_usec_ = 0;
};

}  // namespace ringmx::core
