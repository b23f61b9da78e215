// The Prometheus side of the counters the control command `stats` shows (docs/operations.md): a
// plain snapshot of them, its rendering in the Prometheus text exposition format (version 0.0.4),
// and the few lines of HTTP/1.x that the `[metrics]` endpoint speaks. Pure: no sockets, no clock;
// net/server.cc fills the snapshot from the shards' counters and serves the bytes.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/stats_cells.h"

namespace ringmx::core {

// One shard's counters at one moment (net::ShardCounters and net::DeliveryCounters, copied).
// Counters only grow; the ones marked "gauge" go up and down.
struct ShardStats {
  uint64_t connections_open = 0;  // gauge
  uint64_t connections_total = 0;
  uint64_t connections_refused = 0;  // refused for a [limits] limit
  uint64_t proxy_refused = 0;        // closed in the PROXY preamble (untrusted, malformed, timeout)
  uint64_t messages_accepted = 0;
  uint64_t messages_rejected = 0;
  uint64_t bytes_accepted = 0;
  uint64_t store_errors = 0;
  // Client input that waited for its session (net/held_input.h): bytes kept in their receive
  // buffer, bytes copied, and receive buffers kept out of the ring now (gauge).
  uint64_t input_held_in_place_bytes = 0;
  uint64_t input_held_copied_bytes = 0;
  uint64_t recv_buffers_held = 0;
  uint64_t queue_messages = 0;            // gauge: messages in the queue
  uint64_t queue_groups = 0;              // group commits of the queue log
  uint64_t queue_records = 0;             // records those groups held
  uint64_t queue_bytes = 0;               // bytes those groups wrote
  uint64_t queue_last_group_records = 0;  // gauge: records in the latest group
  uint64_t delivery_attempts = 0;
  uint64_t delivery_sent = 0;      // recipients
  uint64_t delivery_deferred = 0;  // recipients
  uint64_t delivery_bounced = 0;   // recipients
  uint64_t dsns_queued = 0;
  uint64_t outbound_connections_total = 0;
  uint64_t outbound_connections_open = 0;  // gauge

  // Replies sent, by class of their code (a multi-line reply counts once) and by enhanced code.
  uint64_t replies_2xx = 0;
  uint64_t replies_3xx = 0;
  uint64_t replies_4xx = 0;
  uint64_t replies_5xx = 0;
  std::map<std::string, uint64_t> replies_by_enhanced_code;  // "5.7.1" -> n
  // Inbound TLS: completed handshakes by "VERSION CIPHER" ("TLSv1.3 TLS_AES_256_GCM_SHA384"), the
  // record layer they went on with, and failed handshakes by reason ("unsupported protocol").
  std::map<std::string, uint64_t> tls_handshakes;
  uint64_t tls_kernel = 0;
  uint64_t tls_userspace = 0;
  std::map<std::string, uint64_t> tls_failures;
  // The queue by state, counted on request by walking the shard's queue index (not kept as
  // counters): held messages and recipients by state. Valid only when StatsSnapshot::queue_sizes.
  uint64_t queue_held = 0;
  uint64_t queue_recipients_pending = 0;
  uint64_t queue_recipients_deferred = 0;
  uint64_t queue_recipients_delivered = 0;  // of messages still queued for other recipients
  uint64_t queue_recipients_failed = 0;     // likewise
  HistogramData store_latency;              // end of data -> 250 (kStoreLatencyBounds)
  HistogramData handshake_time;             // TLS handshake (kHandshakeBounds)

  // Adds `other` into this: counters and gauges sum, except queue_last_group_records, which
  // becomes the larger of the two. The one place that knows how shards add up.
  void Merge(const ShardStats& other);
};

// The whole server at one moment. Stack-local.
struct StatsSnapshot {
  uint64_t generation = 0;  // of the published config
  // Config Snapshots alive in the process: 1, plus one per older generation some session still
  // holds (core::Snapshot::LiveCount()).
  uint64_t config_snapshots_live = 0;
  bool draining = false;
  // The queue_held and queue_recipients_* fields were filled (every shard answered; not while
  // draining, nor in discard mode).
  bool queue_sizes = false;
  std::vector<ShardStats> shards;  // index = shard number
};

// The snapshot in the Prometheus text format: for every metric a `# HELP` and a `# TYPE` line,
// then one sample per shard labelled `shard="N"` (no totals: sum() gives them, and a total beside
// its parts would be counted twice by any sum). Names follow Prometheus' conventions: a
// `ringmx_` prefix, counters end in `_total`, units in the name (`_bytes`). Ends with "\n".
std::string RenderPrometheus(const StatsSnapshot& stats);

// The control command `stats` (docs/operations.md): the totals over every shard at the top level
// (the keys the command always had, then "replies", "tls", "latency"), then "per_shard": the same
// fields for each shard.
std::string RenderStatsJson(const StatsSnapshot& stats);

// A Prometheus label value with `\`, `"` and line ends escaped.
std::string EscapeLabelValue(std::string_view value);

// What an HTTP request head asks of the metrics endpoint.
enum class MetricsRequest {
  kMetrics,           // GET /metrics (a query string is ignored)
  kNotFound,          // GET of any other path: 404
  kMethodNotAllowed,  // a well-formed request with another method: 405
  kBadRequest,        // not an HTTP/1.x request line: 400
};

// Reads the request line of `head` (the bytes up to the blank line, or as many as arrived): only
// the first line is looked at; headers are ignored.
MetricsRequest ParseMetricsRequest(std::string_view head);

// Upper bound on a request head; a client that sends more without a blank line gets a 400.
inline constexpr size_t kMaxMetricsRequestHead = 8192;

// A whole HTTP/1.1 response that closes the connection: status line, Content-Type (the
// Prometheus text format for 200, text/plain otherwise), Content-Length, `Connection: close`, and
// `body`; 405 also carries `Allow: GET`. `code` is 200, 400, 404 or 405.
std::string HttpResponse(int code, std::string_view body);

}  // namespace ringmx::core
