#include "core/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/json.h"
#include "core/strings.h"

namespace ringmx::core {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

struct Metric {
  std::string_view name;
  Type type;
  std::string_view help;
  uint64_t ShardStats::*field;
};

// In the order `stats` shows them.
constexpr Metric kShardMetrics[] = {
    {"ringmx_connections_open", Type::kGauge, "SMTP sessions open now.",
     &ShardStats::connections_open},
    {"ringmx_connections_total", Type::kCounter, "SMTP connections accepted.",
     &ShardStats::connections_total},
    {"ringmx_connections_refused_total", Type::kCounter,
     "Connections refused for a [limits] limit.", &ShardStats::connections_refused},
    {"ringmx_proxy_refused_total", Type::kCounter,
     "Connections closed before their session by a proxy_protocol listener (untrusted peer, "
     "malformed or missing PROXY header).",
     &ShardStats::proxy_refused},
    {"ringmx_messages_accepted_total", Type::kCounter, "Messages accepted (250 after DATA/BDAT).",
     &ShardStats::messages_accepted},
    {"ringmx_messages_rejected_total", Type::kCounter, "Messages refused after their content.",
     &ShardStats::messages_rejected},
    {"ringmx_message_bytes_accepted_total", Type::kCounter, "Bytes of accepted messages.",
     &ShardStats::bytes_accepted},
    {"ringmx_input_held_in_place_bytes_total", Type::kCounter,
     "Client input bytes that waited for their session in the receive buffer they came in.",
     &ShardStats::input_held_in_place_bytes},
    {"ringmx_input_held_copied_bytes_total", Type::kCounter,
     "Client input bytes that waited for their session in a copy.",
     &ShardStats::input_held_copied_bytes},
    {"ringmx_recv_buffers_held", Type::kGauge,
     "Receive buffers kept out of the ring while their bytes wait for a session.",
     &ShardStats::recv_buffers_held},
    {"ringmx_store_errors_total", Type::kCounter, "Messages that could not be stored (4xx).",
     &ShardStats::store_errors},
    {"ringmx_queue_messages", Type::kGauge, "Messages in the queue.", &ShardStats::queue_messages},
    {"ringmx_queue_log_groups_total", Type::kCounter, "Group commits of the queue log.",
     &ShardStats::queue_groups},
    {"ringmx_queue_log_records_total", Type::kCounter, "Records written in queue log groups.",
     &ShardStats::queue_records},
    {"ringmx_queue_log_bytes_total", Type::kCounter, "Bytes written in queue log groups.",
     &ShardStats::queue_bytes},
    {"ringmx_queue_log_last_group_records", Type::kGauge, "Records in the latest queue log group.",
     &ShardStats::queue_last_group_records},
    {"ringmx_delivery_attempts_total", Type::kCounter,
     "Delivery transactions tried (one per message and hop).", &ShardStats::delivery_attempts},
    {"ringmx_delivery_sent_total", Type::kCounter, "Recipients delivered.",
     &ShardStats::delivery_sent},
    {"ringmx_delivery_deferred_total", Type::kCounter, "Recipient deliveries deferred.",
     &ShardStats::delivery_deferred},
    {"ringmx_delivery_bounced_total", Type::kCounter, "Recipients failed permanently.",
     &ShardStats::delivery_bounced},
    {"ringmx_dsns_queued_total", Type::kCounter, "Delivery status notifications queued.",
     &ShardStats::dsns_queued},
    {"ringmx_outbound_connections_total", Type::kCounter, "Connections opened to next hops.",
     &ShardStats::outbound_connections_total},
    {"ringmx_outbound_connections_open", Type::kGauge, "Connections to next hops open now.",
     &ShardStats::outbound_connections_open},
};

void Header(std::string& out, std::string_view name, Type type, std::string_view help) {
  absl::StrAppend(&out, "# HELP ", Av(name), " ", Av(help), "\n# TYPE ", Av(name), " ",
                  type == Type::kCounter ? "counter"
                  : type == Type::kGauge ? "gauge"
                                         : "histogram",
                  "\n");
}

void AddMap(std::map<std::string, uint64_t>& into, const std::map<std::string, uint64_t>& from) {
  for (const auto& [key, n] : from) into[key] += n;
}

// Microseconds as seconds, exactly ("0.00025", "5", "1.5").
std::string Seconds(uint64_t micros) {
  std::string text = absl::StrFormat("%d.%06d", micros / 1000000, micros % 1000000);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

struct HistogramMetric {
  std::string_view name;
  std::string_view help;
  const HistogramBounds& bounds;
  HistogramData ShardStats::*field;
};

const HistogramMetric kHistograms[] = {
    {"ringmx_message_store_wait_seconds",
     "End of message data to the 250 reply: the wait for the durable store (group commit).",
     kStoreLatencyBounds, &ShardStats::store_latency},
    {"ringmx_tls_handshake_seconds", "Inbound TLS handshakes, from start to done.",
     kHandshakeBounds, &ShardStats::handshake_time},
};

void RenderHistogram(std::string& out, const HistogramMetric& metric, const HistogramData& data) {
  Header(out, metric.name, Type::kHistogram, metric.help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kHistogramBounds; ++i) {
    cumulative += data.buckets[i];
    absl::StrAppend(&out, Av(metric.name), "_bucket{le=\"", Seconds(metric.bounds[i]), "\"} ",
                    cumulative, "\n");
  }
  cumulative += data.buckets[kHistogramBounds];
  absl::StrAppend(&out, Av(metric.name), "_bucket{le=\"+Inf\"} ", cumulative, "\n");
  absl::StrAppend(&out, Av(metric.name), "_sum ", Seconds(data.sum_us), "\n");
  absl::StrAppend(&out, Av(metric.name), "_count ", cumulative, "\n");
}

// A labelled family: one sample per shard and key of `field`.
void RenderLabelled(std::string& out, const StatsSnapshot& stats, std::string_view name,
                    std::string_view help, std::map<std::string, uint64_t> ShardStats::*field,
                    void (*labels)(std::string& out, const std::string& key)) {
  Header(out, name, Type::kCounter, help);
  for (size_t s = 0; s < stats.shards.size(); ++s) {
    for (const auto& [key, n] : stats.shards[s].*field) {
      absl::StrAppend(&out, Av(name), "{shard=\"", s, "\",");
      labels(out, key);
      absl::StrAppend(&out, "} ", n, "\n");
    }
  }
}

void AppendFields(JsonWriter& json, const ShardStats& s) {
  json.Key("connections_open")
      .Uint(s.connections_open)
      .Key("connections_total")
      .Uint(s.connections_total)
      .Key("connections_refused")
      .Uint(s.connections_refused)
      .Key("proxy_refused")
      .Uint(s.proxy_refused)
      .Key("messages_accepted")
      .Uint(s.messages_accepted)
      .Key("messages_rejected")
      .Uint(s.messages_rejected)
      .Key("bytes_accepted")
      .Uint(s.bytes_accepted)
      .Key("store_errors")
      .Uint(s.store_errors)
      .Key("input_held_in_place_bytes")
      .Uint(s.input_held_in_place_bytes)
      .Key("input_held_copied_bytes")
      .Uint(s.input_held_copied_bytes)
      .Key("recv_buffers_held")
      .Uint(s.recv_buffers_held)
      .Key("queue_messages")
      .Uint(s.queue_messages)
      .Key("queue_groups")
      .Uint(s.queue_groups)
      .Key("queue_records")
      .Uint(s.queue_records)
      .Key("queue_bytes")
      .Uint(s.queue_bytes)
      .Key("queue_last_group_records")
      .Uint(s.queue_last_group_records)
      .Key("delivery_attempts")
      .Uint(s.delivery_attempts)
      .Key("delivery_sent")
      .Uint(s.delivery_sent)
      .Key("delivery_deferred")
      .Uint(s.delivery_deferred)
      .Key("delivery_bounced")
      .Uint(s.delivery_bounced)
      .Key("dsns_queued")
      .Uint(s.dsns_queued)
      .Key("outbound_connections_total")
      .Uint(s.outbound_connections_total)
      .Key("outbound_connections_open")
      .Uint(s.outbound_connections_open);
}

void AppendMap(JsonWriter& json, const std::map<std::string, uint64_t>& map) {
  json.BeginObject();
  for (const auto& [key, n] : map) json.Key(key).Uint(n);
  json.EndObject();
}

void AppendHistogram(JsonWriter& json, const HistogramData& data) {
  json.BeginObject()
      .Key("count")
      .Uint(data.count())
      .Key("sum_us")
      .Uint(data.sum_us)
      .Key("mean_us")
      .Uint(data.count() == 0 ? 0 : data.sum_us / data.count())
      .EndObject();
}

// The fields added with issue 15: queue sizes (when known), replies, TLS, latency.
void AppendDetails(JsonWriter& json, const ShardStats& s, bool queue_sizes) {
  if (queue_sizes) {
    json.Key("queue")
        .BeginObject()
        .Key("messages")
        .Uint(s.queue_messages)
        .Key("held")
        .Uint(s.queue_held)
        .Key("recipients")
        .BeginObject()
        .Key("pending")
        .Uint(s.queue_recipients_pending)
        .Key("deferred")
        .Uint(s.queue_recipients_deferred)
        .Key("delivered")
        .Uint(s.queue_recipients_delivered)
        .Key("failed")
        .Uint(s.queue_recipients_failed)
        .EndObject()
        .EndObject();
  }
  json.Key("replies")
      .BeginObject()
      .Key("2xx")
      .Uint(s.replies_2xx)
      .Key("3xx")
      .Uint(s.replies_3xx)
      .Key("4xx")
      .Uint(s.replies_4xx)
      .Key("5xx")
      .Uint(s.replies_5xx)
      .Key("by_enhanced_code");
  AppendMap(json, s.replies_by_enhanced_code);
  json.EndObject();
  std::map<std::string, uint64_t> by_version, by_cipher;
  uint64_t handshakes = 0, failures = 0;
  for (const auto& [key, n] : s.tls_handshakes) {
    const size_t space = key.find(' ');
    by_version[key.substr(0, space)] += n;
    by_cipher[space == std::string::npos ? "other" : key.substr(space + 1)] += n;
    handshakes += n;
  }
  for (const auto& [key, n] : s.tls_failures) failures += n;
  json.Key("tls").BeginObject().Key("handshakes").Uint(handshakes).Key("by_version");
  AppendMap(json, by_version);
  json.Key("by_cipher");
  AppendMap(json, by_cipher);
  json.Key("record_layer")
      .BeginObject()
      .Key("kernel")
      .Uint(s.tls_kernel)
      .Key("userspace")
      .Uint(s.tls_userspace)
      .EndObject()
      .Key("handshake_failures")
      .Uint(failures)
      .Key("failures_by_reason");
  AppendMap(json, s.tls_failures);
  json.EndObject().Key("latency").BeginObject().Key("store_wait");
  AppendHistogram(json, s.store_latency);
  json.Key("tls_handshake");
  AppendHistogram(json, s.handshake_time);
  json.EndObject();
}

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Internal Server Error";
  }
}

}  // namespace

void ShardStats::Merge(const ShardStats& o) {
  connections_open += o.connections_open;
  connections_total += o.connections_total;
  connections_refused += o.connections_refused;
  proxy_refused += o.proxy_refused;
  messages_accepted += o.messages_accepted;
  messages_rejected += o.messages_rejected;
  bytes_accepted += o.bytes_accepted;
  store_errors += o.store_errors;
  input_held_in_place_bytes += o.input_held_in_place_bytes;
  input_held_copied_bytes += o.input_held_copied_bytes;
  recv_buffers_held += o.recv_buffers_held;
  queue_messages += o.queue_messages;
  queue_groups += o.queue_groups;
  queue_records += o.queue_records;
  queue_bytes += o.queue_bytes;
  // The largest of the shards' latest groups.
  queue_last_group_records = std::max(queue_last_group_records, o.queue_last_group_records);
  delivery_attempts += o.delivery_attempts;
  delivery_sent += o.delivery_sent;
  delivery_deferred += o.delivery_deferred;
  delivery_bounced += o.delivery_bounced;
  dsns_queued += o.dsns_queued;
  outbound_connections_total += o.outbound_connections_total;
  outbound_connections_open += o.outbound_connections_open;
  replies_2xx += o.replies_2xx;
  replies_3xx += o.replies_3xx;
  replies_4xx += o.replies_4xx;
  replies_5xx += o.replies_5xx;
  AddMap(replies_by_enhanced_code, o.replies_by_enhanced_code);
  AddMap(tls_handshakes, o.tls_handshakes);
  tls_kernel += o.tls_kernel;
  tls_userspace += o.tls_userspace;
  AddMap(tls_failures, o.tls_failures);
  queue_held += o.queue_held;
  queue_recipients_pending += o.queue_recipients_pending;
  queue_recipients_deferred += o.queue_recipients_deferred;
  queue_recipients_delivered += o.queue_recipients_delivered;
  queue_recipients_failed += o.queue_recipients_failed;
  store_latency.Merge(o.store_latency);
  handshake_time.Merge(o.handshake_time);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string RenderStatsJson(const StatsSnapshot& stats) {
  ShardStats total;
  for (const ShardStats& s : stats.shards) total.Merge(s);
  std::string out;
  JsonWriter json(out);
  json.BeginObject()
      .Key("generation")
      .Uint(stats.generation)
      .Key("shards")
      .Uint(stats.shards.size())
      .Key("config_snapshots_live")
      .Uint(stats.config_snapshots_live);
  AppendFields(json, total);
  json.Key("draining").Bool(stats.draining);
  AppendDetails(json, total, stats.queue_sizes);
  json.Key("per_shard").BeginArray();
  for (size_t i = 0; i < stats.shards.size(); ++i) {
    json.BeginObject().Key("shard").Uint(i);
    AppendFields(json, stats.shards[i]);
    AppendDetails(json, stats.shards[i], stats.queue_sizes);
    json.EndObject();
  }
  json.EndArray().EndObject();
  return out;
}

std::string RenderPrometheus(const StatsSnapshot& stats) {
  std::string out;
  Header(out, "ringmx_config_generation", Type::kGauge,
         "Generation of the published config (1 at start, +1 per reload).");
  absl::StrAppend(&out, "ringmx_config_generation ", stats.generation, "\n");
  Header(out, "ringmx_config_snapshots_live", Type::kGauge,
         "Config generations alive: 1, plus each older one a session still holds.");
  absl::StrAppend(&out, "ringmx_config_snapshots_live ", stats.config_snapshots_live, "\n");
  Header(out, "ringmx_draining", Type::kGauge, "1 while the server drains for shutdown.");
  absl::StrAppend(&out, "ringmx_draining ", stats.draining ? 1 : 0, "\n");
  Header(out, "ringmx_shards", Type::kGauge, "Shards (worker threads) serving.");
  absl::StrAppend(&out, "ringmx_shards ", stats.shards.size(), "\n");
  for (const Metric& metric : kShardMetrics) {
    Header(out, metric.name, metric.type, metric.help);
    for (size_t s = 0; s < stats.shards.size(); ++s) {
      absl::StrAppend(&out, Av(metric.name), "{shard=\"", s, "\"} ", stats.shards[s].*metric.field,
                      "\n");
    }
  }
  Header(out, "ringmx_replies_total", Type::kCounter,
         "SMTP replies sent, by the class of their code.");
  for (size_t s = 0; s < stats.shards.size(); ++s) {
    const ShardStats& shard = stats.shards[s];
    const std::pair<std::string_view, uint64_t> classes[] = {{"2xx", shard.replies_2xx},
                                                             {"3xx", shard.replies_3xx},
                                                             {"4xx", shard.replies_4xx},
                                                             {"5xx", shard.replies_5xx}};
    for (const auto& [name, n] : classes) {
      absl::StrAppend(&out, "ringmx_replies_total{shard=\"", s, "\",class=\"", Av(name), "\"} ", n,
                      "\n");
    }
  }
  RenderLabelled(out, stats, "ringmx_replies_by_enhanced_code_total",
                 "SMTP replies sent, by their enhanced status code (RFC 3463).",
                 &ShardStats::replies_by_enhanced_code, [](std::string& o, const std::string& key) {
                   absl::StrAppend(&o, "code=\"", EscapeLabelValue(key), "\"");
                 });
  RenderLabelled(out, stats, "ringmx_tls_handshakes_total",
                 "Inbound TLS handshakes completed, by version and cipher.",
                 &ShardStats::tls_handshakes, [](std::string& o, const std::string& key) {
                   const size_t space = key.find(' ');
                   absl::StrAppend(
                       &o, "version=\"", EscapeLabelValue(key.substr(0, space)), "\",cipher=\"",
                       EscapeLabelValue(space == std::string::npos ? "" : key.substr(space + 1)),
                       "\"");
                 });
  Header(out, "ringmx_tls_record_layer_total", Type::kCounter,
         "Inbound TLS sessions by record layer: kernel (kTLS) or userspace (OpenSSL).");
  for (size_t s = 0; s < stats.shards.size(); ++s) {
    absl::StrAppend(&out, "ringmx_tls_record_layer_total{shard=\"", s, "\",layer=\"kernel\"} ",
                    stats.shards[s].tls_kernel, "\n");
    absl::StrAppend(&out, "ringmx_tls_record_layer_total{shard=\"", s, "\",layer=\"userspace\"} ",
                    stats.shards[s].tls_userspace, "\n");
  }
  RenderLabelled(out, stats, "ringmx_tls_handshake_failures_total",
                 "Inbound TLS handshakes that failed, by reason.", &ShardStats::tls_failures,
                 [](std::string& o, const std::string& key) {
                   absl::StrAppend(&o, "reason=\"", EscapeLabelValue(key), "\"");
                 });
  // Histograms: the shards' buckets merged (per-shard series would multiply the buckets).
  for (const HistogramMetric& metric : kHistograms) {
    HistogramData merged;
    for (const ShardStats& shard : stats.shards) merged.Merge(shard.*metric.field);
    RenderHistogram(out, metric, merged);
  }
  return out;
}

MetricsRequest ParseMetricsRequest(std::string_view head) {
  const size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // METHOD SP TARGET SP HTTP/1.x, single spaces (RFC 9112 section 3).
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return MetricsRequest::kBadRequest;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return MetricsRequest::kBadRequest;
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return MetricsRequest::kBadRequest;
  for (char c : method) {
    if (c < 'A' || c > 'Z') return MetricsRequest::kBadRequest;
  }
  if (target.empty() || target.front() != '/') return MetricsRequest::kBadRequest;
  for (char c : target) {
    if (c <= ' ' || c == 0x7f) return MetricsRequest::kBadRequest;
  }
  if (method != "GET") return MetricsRequest::kMethodNotAllowed;
  target = target.substr(0, target.find('?'));
  return target == "/metrics" ? MetricsRequest::kMetrics : MetricsRequest::kNotFound;
}

std::string HttpResponse(int code, std::string_view body) {
  return absl::StrCat(
      "HTTP/1.1 ", code, " ", Av(ReasonPhrase(code)), "\r\nContent-Type: ",
      code == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
      "\r\nContent-Length: ", body.size(), "\r\n", code == 405 ? "Allow: GET\r\n" : "",
      "Connection: close\r\n\r\n", Av(body));
}

}  // namespace ringmx::core
