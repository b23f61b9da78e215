// core/metrics.h: the Prometheus text rendering of a stats snapshot and the metrics endpoint's
// request line and responses.
#include "core/metrics.h"

#include <string.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/json.h"

namespace ringmx::core {
namespace {

using ::testing::HasSubstr;

StatsSnapshot TwoShards() {
  StatsSnapshot stats;
  stats.generation = 3;
  stats.config_snapshots_live = 2;
  stats.draining = false;
  stats.shards.resize(2);
  stats.shards[0].messages_accepted = 5;
  stats.shards[0].bytes_accepted = 1234;
  stats.shards[0].queue_messages = 2;
  stats.shards[1].messages_accepted = 7;
  stats.shards[1].delivery_sent = 11;
  stats.shards[1].connections_open = 4;
  stats.shards[1].outbound_connections_open = 1;
  return stats;
}

// Every sample line, "name{labels}" -> value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    out[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
  }
  return out;
}

TEST(RenderPrometheusTest, SamplesCarryEachShardsValue) {
  const std::map<std::string, std::string> s = Samples(RenderPrometheus(TwoShards()));
  EXPECT_EQ(s.at("ringmx_messages_accepted_total{shard=\"0\"}"), "5");
  EXPECT_EQ(s.at("ringmx_messages_accepted_total{shard=\"1\"}"), "7");
  EXPECT_EQ(s.at("ringmx_message_bytes_accepted_total{shard=\"0\"}"), "1234");
  EXPECT_EQ(s.at("ringmx_queue_messages{shard=\"0\"}"), "2");
  EXPECT_EQ(s.at("ringmx_delivery_sent_total{shard=\"1\"}"), "11");
  EXPECT_EQ(s.at("ringmx_connections_open{shard=\"1\"}"), "4");
  EXPECT_EQ(s.at("ringmx_outbound_connections_open{shard=\"1\"}"), "1");
  EXPECT_EQ(s.at("ringmx_config_generation"), "3");
  EXPECT_EQ(s.at("ringmx_config_snapshots_live"), "2");
  EXPECT_EQ(s.at("ringmx_draining"), "0");
  EXPECT_EQ(s.at("ringmx_shards"), "2");
  // No unlabelled totals beside per-shard series.
  EXPECT_EQ(s.count("ringmx_messages_accepted_total"), 0u);
}

TEST(RenderPrometheusTest, EveryMetricHasHelpAndTypeBeforeItsSamples) {
  StatsSnapshot stats = TwoShards();
  stats.draining = true;
  const std::string text = RenderPrometheus(stats);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::map<std::string, std::string> types;  // name -> type
  std::string last_help;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words[0] == "#") {
      ASSERT_GE(words.size(), 4u) << line;
      if (words[1] == "HELP") last_help = words[2];
      if (words[1] == "TYPE") {
        EXPECT_EQ(words[2], last_help) << "TYPE without a HELP just before: " << line;
        EXPECT_EQ(types.count(words[2]), 0u) << "metric declared twice: " << words[2];
        types[words[2]] = words[3];
      }
      continue;
    }
    std::string name = words[0].substr(0, words[0].find('{'));
    // A histogram's samples carry its name with a suffix.
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix) &&
          types.count(name.substr(0, name.size() - strlen(suffix))) == 1) {
        name = name.substr(0, name.size() - strlen(suffix));
        break;
      }
    }
    ASSERT_EQ(types.count(name), 1u) << "sample before its TYPE: " << line;
    EXPECT_TRUE(absl::StartsWith(name, "ringmx_")) << name;
    if (types[name] == "histogram") {
      EXPECT_TRUE(absl::EndsWith(name, "_seconds")) << name;
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(words.back(), &value)) << line;
      continue;
    }
    // Counters end in _total, gauges do not.
    EXPECT_EQ(absl::EndsWith(name, "_total"), types[name] == "counter") << name;
    uint64_t value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(words.back(), &value)) << line;
  }
  EXPECT_EQ(types.at("ringmx_queue_messages"), "gauge");
  EXPECT_EQ(types.at("ringmx_delivery_sent_total"), "counter");
  EXPECT_EQ(types.at("ringmx_message_store_wait_seconds"), "histogram");
  EXPECT_EQ(types.at("ringmx_tls_handshake_seconds"), "histogram");
  EXPECT_EQ(Samples(text).at("ringmx_draining"), "1");
  // 23 per-shard metrics, 2 shards each, plus 4 process-wide ones (generation, live config
  // snapshots, draining, shards); replies by class (4 per shard) and record layer (2 per shard);
  // two merged histograms of 15 buckets, _sum and _count. The labelled families with no key yet
  // have no samples.
  EXPECT_EQ(Samples(text).size(), 23u * 2 + 4 + 4 * 2 + 2 * 2 + 2 * 17);
}

StatsSnapshot WithTraffic() {
  StatsSnapshot stats = TwoShards();
  ShardStats& a = stats.shards[0];
  ShardStats& b = stats.shards[1];
  a.replies_2xx = 10;
  a.replies_5xx = 1;
  b.replies_2xx = 5;
  b.replies_4xx = 2;
  a.replies_by_enhanced_code = {{"2.0.0", 6}, {"5.7.1", 1}};
  b.replies_by_enhanced_code = {{"2.0.0", 3}, {"4.7.0", 2}};
  a.tls_handshakes = {{"TLSv1.3 TLS_AES_256_GCM_SHA384", 3}};
  b.tls_handshakes = {{"TLSv1.3 TLS_AES_256_GCM_SHA384", 1},
                      {"TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256", 2}};
  a.tls_kernel = 1;
  a.tls_userspace = 2;
  b.tls_userspace = 3;
  b.tls_failures = {{"unsupported protocol", 4}, {"quote\"back\\slash", 1}};
  HistogramCell store(kStoreLatencyBounds);
  store.Observe(100);      // <= 250 us
  store.Observe(250);      // <= 250 us (bounds are inclusive)
  store.Observe(3000);     // <= 5 ms
  store.Observe(9000000);  // > 5 s: +Inf only
  a.store_latency = store.Read();
  HistogramCell store_b(kStoreLatencyBounds);
  store_b.Observe(1500);  // <= 2 ms
  b.store_latency = store_b.Read();
  HistogramCell handshake(kHandshakeBounds);
  handshake.Observe(2000);  // <= 2.5 ms
  b.handshake_time = handshake.Read();
  return stats;
}

TEST(RenderPrometheusTest, HistogramsAreMergedCumulativeAndCounted) {
  const std::map<std::string, std::string> s = Samples(RenderPrometheus(WithTraffic()));
  const std::string h = "ringmx_message_store_wait_seconds";
  EXPECT_EQ(s.at(h + "_bucket{le=\"0.00025\"}"), "2");
  EXPECT_EQ(s.at(h + "_bucket{le=\"0.0005\"}"), "2");
  EXPECT_EQ(s.at(h + "_bucket{le=\"0.002\"}"), "3");  // shard 1's 1.5 ms merged in
  EXPECT_EQ(s.at(h + "_bucket{le=\"0.005\"}"), "4");
  EXPECT_EQ(s.at(h + "_bucket{le=\"5\"}"), "4");
  EXPECT_EQ(s.at(h + "_bucket{le=\"+Inf\"}"), "5");
  EXPECT_EQ(s.at(h + "_count"), "5");
  EXPECT_EQ(s.at(h + "_sum"), "9.00485");  // 100 + 250 + 3000 + 9000000 + 1500 us
  // No per-shard series of a histogram.
  EXPECT_EQ(s.count(h + "_bucket{shard=\"0\",le=\"+Inf\"}"), 0u);
  const std::string t = "ringmx_tls_handshake_seconds";
  EXPECT_EQ(s.at(t + "_bucket{le=\"0.001\"}"), "0");
  EXPECT_EQ(s.at(t + "_bucket{le=\"0.0025\"}"), "1");
  EXPECT_EQ(s.at(t + "_bucket{le=\"10\"}"), "1");
  EXPECT_EQ(s.at(t + "_count"), "1");
  EXPECT_EQ(s.at(t + "_sum"), "0.002");
}

TEST(RenderPrometheusTest, LabelledFamilies) {
  const std::map<std::string, std::string> s = Samples(RenderPrometheus(WithTraffic()));
  EXPECT_EQ(s.at("ringmx_replies_total{shard=\"0\",class=\"2xx\"}"), "10");
  EXPECT_EQ(s.at("ringmx_replies_total{shard=\"1\",class=\"4xx\"}"), "2");
  EXPECT_EQ(s.at("ringmx_replies_total{shard=\"0\",class=\"3xx\"}"), "0");
  EXPECT_EQ(s.at("ringmx_replies_by_enhanced_code_total{shard=\"0\",code=\"5.7.1\"}"), "1");
  EXPECT_EQ(s.at("ringmx_replies_by_enhanced_code_total{shard=\"1\",code=\"4.7.0\"}"), "2");
  EXPECT_EQ(s.at("ringmx_tls_handshakes_total{shard=\"1\",version=\"TLSv1.2\",cipher=\"ECDHE-"
                 "RSA-AES128-GCM-SHA256\"}"),
            "2");
  EXPECT_EQ(s.at("ringmx_tls_record_layer_total{shard=\"0\",layer=\"kernel\"}"), "1");
  EXPECT_EQ(s.at("ringmx_tls_record_layer_total{shard=\"1\",layer=\"userspace\"}"), "3");
  EXPECT_EQ(
      s.at("ringmx_tls_handshake_failures_total{shard=\"1\",reason=\"unsupported protocol\"}"),
      "4");
  // Label values are escaped.
  EXPECT_EQ(s.at("ringmx_tls_handshake_failures_total{shard=\"1\",reason=\"quote\\\"back\\\\"
                 "slash\"}"),
            "1");
}

TEST(ShardStatsTest, MergeSumsEverythingButTheLatestGroup) {
  ShardStats a, b;
  a.messages_accepted = 2;
  b.messages_accepted = 3;
  a.queue_last_group_records = 7;
  b.queue_last_group_records = 4;
  a.replies_by_enhanced_code = {{"2.0.0", 1}};
  b.replies_by_enhanced_code = {{"2.0.0", 2}, {"5.1.1", 1}};
  a.tls_kernel = 1;
  b.tls_kernel = 2;
  a.Merge(b);
  EXPECT_EQ(a.messages_accepted, 5u);
  EXPECT_EQ(a.queue_last_group_records, 7u);
  EXPECT_EQ(a.replies_by_enhanced_code.at("2.0.0"), 3u);
  EXPECT_EQ(a.replies_by_enhanced_code.at("5.1.1"), 1u);
  EXPECT_EQ(a.tls_kernel, 3u);
}

TEST(RenderStatsJsonTest, TotalsThenPerShard) {
  const std::string text = RenderStatsJson(WithTraffic());
  absl::StatusOr<JsonValue> json = ParseJson(text);
  ASSERT_TRUE(json.ok()) << json.status() << "\n" << text;
  EXPECT_EQ(json->Find("generation")->AsUint64(), 3u);
  EXPECT_EQ(json->Find("shards")->AsUint64(), 2u);
  EXPECT_EQ(json->Find("messages_accepted")->AsUint64(), 12u);
  const JsonValue* replies = json->Find("replies");
  ASSERT_NE(replies, nullptr);
  EXPECT_EQ(replies->Find("2xx")->AsUint64(), 15u);
  EXPECT_EQ(replies->Find("by_enhanced_code")->Find("2.0.0")->AsUint64(), 9u);
  const JsonValue* tls = json->Find("tls");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->Find("handshakes")->AsUint64(), 6u);
  EXPECT_EQ(tls->Find("by_version")->Find("TLSv1.3")->AsUint64(), 4u);
  EXPECT_EQ(tls->Find("by_version")->Find("TLSv1.2")->AsUint64(), 2u);
  EXPECT_EQ(tls->Find("by_cipher")->Find("TLS_AES_256_GCM_SHA384")->AsUint64(), 4u);
  EXPECT_EQ(tls->Find("record_layer")->Find("kernel")->AsUint64(), 1u);
  EXPECT_EQ(tls->Find("record_layer")->Find("userspace")->AsUint64(), 5u);
  EXPECT_EQ(tls->Find("handshake_failures")->AsUint64(), 5u);
  EXPECT_EQ(tls->Find("failures_by_reason")->Find("unsupported protocol")->AsUint64(), 4u);
  const JsonValue* latency = json->Find("latency");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->Find("store_wait")->Find("count")->AsUint64(), 5u);
  EXPECT_EQ(latency->Find("store_wait")->Find("sum_us")->AsUint64(), 9004850u);
  EXPECT_EQ(latency->Find("tls_handshake")->Find("count")->AsUint64(), 1u);
  const JsonValue* per_shard = json->Find("per_shard");
  ASSERT_NE(per_shard, nullptr);
  ASSERT_EQ(per_shard->elements().size(), 2u);
  EXPECT_EQ(per_shard->elements()[1].Find("shard")->AsUint64(), 1u);
  EXPECT_EQ(per_shard->elements()[1].Find("messages_accepted")->AsUint64(), 7u);
  EXPECT_EQ(per_shard->elements()[0].Find("replies")->Find("5xx")->AsUint64(), 1u);
  // Queue sizes only when they were counted.
  EXPECT_EQ(json->Find("queue"), nullptr);
  StatsSnapshot with_queue = WithTraffic();
  with_queue.queue_sizes = true;
  with_queue.shards[0].queue_held = 1;
  with_queue.shards[0].queue_recipients_pending = 3;
  with_queue.shards[1].queue_recipients_pending = 2;
  with_queue.shards[1].queue_recipients_deferred = 4;
  absl::StatusOr<JsonValue> queued = ParseJson(RenderStatsJson(with_queue));
  ASSERT_TRUE(queued.ok()) << queued.status();
  const JsonValue* queue = queued->Find("queue");
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->Find("messages")->AsUint64(), 2u);
  EXPECT_EQ(queue->Find("held")->AsUint64(), 1u);
  EXPECT_EQ(queue->Find("recipients")->Find("pending")->AsUint64(), 5u);
  EXPECT_EQ(queue->Find("recipients")->Find("deferred")->AsUint64(), 4u);
  EXPECT_EQ(queued->Find("per_shard")
                ->elements()[1]
                .Find("queue")
                ->Find("recipients")
                ->Find("deferred")
                ->AsUint64(),
            4u);
  // The totals come first: a reader that takes the first "messages_accepted" gets the total.
  EXPECT_LT(text.find("\"messages_accepted\":12"), text.find("\"per_shard\""));
}

TEST(ParseMetricsRequestTest, OnlyGetOfMetrics) {
  EXPECT_EQ(ParseMetricsRequest("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            MetricsRequest::kMetrics);
  EXPECT_EQ(ParseMetricsRequest("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), MetricsRequest::kMetrics);
  EXPECT_EQ(ParseMetricsRequest("GET /metrics HTTP/1.1\n\n"), MetricsRequest::kMetrics);
  EXPECT_EQ(ParseMetricsRequest("GET / HTTP/1.1\r\n\r\n"), MetricsRequest::kNotFound);
  EXPECT_EQ(ParseMetricsRequest("GET /metricsx HTTP/1.1\r\n\r\n"), MetricsRequest::kNotFound);
  EXPECT_EQ(ParseMetricsRequest("POST /metrics HTTP/1.1\r\n\r\n"),
            MetricsRequest::kMethodNotAllowed);
  EXPECT_EQ(ParseMetricsRequest("HEAD /metrics HTTP/1.1\r\n\r\n"),
            MetricsRequest::kMethodNotAllowed);
  EXPECT_EQ(ParseMetricsRequest(""), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("GET /metrics\r\n\r\n"), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("GET  /metrics HTTP/1.1\r\n"), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("GET /metrics HTTP/2\r\n"), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("get /metrics HTTP/1.1\r\n"), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("GET metrics HTTP/1.1\r\n"), MetricsRequest::kBadRequest);
  EXPECT_EQ(ParseMetricsRequest("EHLO x\r\n"), MetricsRequest::kBadRequest);
}

TEST(HttpResponseTest, StatusLengthAndBody) {
  const std::string ok = HttpResponse(200, "a 1\n");
  EXPECT_TRUE(absl::StartsWith(ok, "HTTP/1.1 200 OK\r\n")) << ok;
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Length: 4\r\n"));
  EXPECT_THAT(ok, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(absl::EndsWith(ok, "\r\n\r\na 1\n")) << ok;
  const std::string not_allowed = HttpResponse(405, "");
  EXPECT_TRUE(absl::StartsWith(not_allowed, "HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(not_allowed, HasSubstr("Allow: GET\r\n"));
  EXPECT_TRUE(absl::StartsWith(HttpResponse(404, "x"), "HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(HttpResponse(404, "x"), ::testing::Not(HasSubstr("Allow:")));
}

}  // namespace
}  // namespace ringmx::core
