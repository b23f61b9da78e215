// The counters of issue 15's `stats` that a shard keeps beside ShardCounters (replies by code,
// inbound TLS by version, cipher, record layer and failure reason, the 250-latency and handshake
// histograms), and the one place that reads a shard's counters into a core::ShardStats.
// Written only by the shard's thread (core/stats_cells.h explains why they are atomics anyway).
#pragma once

#include <stdint.h>

#include <atomic>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

#include "core/metrics.h"
#include "core/stats_cells.h"
#include "core/tls_facts.h"

namespace ringmx::net {

class Shard;

// Shard-local writer; read by the control plane and the metrics thread (ReadShardStats).
struct TrafficCells {
  std::atomic<uint64_t> replies_2xx{0};
  std::atomic<uint64_t> replies_3xx{0};
  std::atomic<uint64_t> replies_4xx{0};
  std::atomic<uint64_t> replies_5xx{0};
  core::LabeledCounters<48> replies_by_enhanced_code;
  core::LabeledCounters<24> tls_handshakes;  // "VERSION CIPHER"
  std::atomic<uint64_t> tls_kernel{0};
  std::atomic<uint64_t> tls_userspace{0};
  core::LabeledCounters<24> tls_failures;  // by reason
  core::HistogramCell store_latency{core::kStoreLatencyBounds};
  core::HistogramCell handshake_time{core::kHandshakeBounds};

  // Every complete reply in `replies` (the bytes about to be sent to a client).
  void CountReplies(std::string_view replies);
  // A completed inbound handshake and the record layer it continues on.
  void CountHandshake(const core::TlsFacts& facts, bool kernel);
  // A failed inbound handshake; `reason` is short and stable (tls::Engine::failure_reason()).
  void CountHandshakeFailure(std::string_view reason) { tls_failures.Add(reason); }
  static void Observe(core::HistogramCell& cell, absl::Duration elapsed);
};

// Every counter of `shard`, read now (relaxed loads: each value is one the shard wrote).
// Thread-safe.
core::ShardStats ReadShardStats(const Shard& shard);

// Fills the queue_held and queue_recipients_* fields of `stats` (whose shards must be `shards`,
// in order) by asking each shard to count its queue index on its own thread, and sets
// stats.queue_sizes. Waits at most `wait` for each shard; leaves queue_sizes false if one does not
// answer (a draining shard no longer reads its mailbox) or has no queue (discard mode). Main
// thread (control plane); O(messages queued) on each shard.
void CollectQueueSizes(const std::vector<std::unique_ptr<Shard>>& shards, absl::Duration wait,
                       core::StatsSnapshot& stats);

}  // namespace ringmx::net
