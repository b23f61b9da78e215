// core/metrics.h: the Prometheus text rendering of a stats snapshot and the metrics endpoint's
// request line and responses.
#include "core/metrics.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringmx::core {
namespace {

using ::testing::HasSubstr;

StatsSnapshot TwoShards() {
  StatsSnapshot stats;
  stats.generation = 3;
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
    const std::string name = words[0].substr(0, words[0].find('{'));
    ASSERT_EQ(types.count(name), 1u) << "sample before its TYPE: " << line;
    EXPECT_TRUE(absl::StartsWith(name, "ringmx_")) << name;
    // Counters end in _total, gauges do not.
    EXPECT_EQ(absl::EndsWith(name, "_total"), types[name] == "counter") << name;
    uint64_t value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(words.back(), &value)) << line;
  }
  EXPECT_EQ(types.at("ringmx_queue_messages"), "gauge");
  EXPECT_EQ(types.at("ringmx_delivery_sent_total"), "counter");
  EXPECT_EQ(Samples(text).at("ringmx_draining"), "1");
  // 19 per-shard metrics, 2 shards each, plus 3 process-wide ones.
  EXPECT_EQ(Samples(text).size(), 19u * 2 + 3);
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
