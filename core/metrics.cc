#include "core/metrics.h"

#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

enum class Type { kCounter, kGauge };

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
    {"ringmx_messages_accepted_total", Type::kCounter, "Messages accepted (250 after DATA/BDAT).",
     &ShardStats::messages_accepted},
    {"ringmx_messages_rejected_total", Type::kCounter, "Messages refused after their content.",
     &ShardStats::messages_rejected},
    {"ringmx_message_bytes_accepted_total", Type::kCounter, "Bytes of accepted messages.",
     &ShardStats::bytes_accepted},
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
                  type == Type::kCounter ? "counter" : "gauge", "\n");
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

std::string RenderPrometheus(const StatsSnapshot& stats) {
  std::string out;
  Header(out, "ringmx_config_generation", Type::kGauge,
         "Generation of the published config (1 at start, +1 per reload).");
  absl::StrAppend(&out, "ringmx_config_generation ", stats.generation, "\n");
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
