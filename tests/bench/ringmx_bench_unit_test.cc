// Unit tests of ringmx-bench's pieces that need no server: the option parser and the latency
// histogram.
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "bench/load/proxy_header.h"
#include "smtp/proxy_header.h"

namespace ringmx::bench {
namespace {

bool Parse(std::vector<std::string> args, Options& opt, std::string& error) {
  bool help = false;
  return ParseOptions(args, opt, error, help);
}

TEST(BenchOptionsTest, ParsesEveryOption) {
  Options opt;
  std::string error;
  ASSERT_TRUE(Parse({"--target",
                     "127.0.0.1:25",
                     "--threads",
                     "2",
                     "--concurrency=50",
                     "--messages-per-connection",
                     "20",
                     "--rcpts",
                     "3",
                     "--size",
                     "4096",
                     "--pipelining",
                     "off",
                     "--total-messages",
                     "1000",
                     "--duration",
                     "5",
                     "--rate",
                     "100",
                     "--tls",
                     "starttls",
                     "--sni",
                     "mx.example.test",
                     "--from",
                     "a@b.test",
                     "--to",
                     "example.test",
                     "--json",
                     "--server-pid",
                     "42",
                     "--timeout",
                     "2.5"},
                    opt, error))
      << error;
  EXPECT_EQ(opt.target, "127.0.0.1:25");
  EXPECT_EQ(opt.threads, 2);
  EXPECT_EQ(opt.concurrency, 50);
  EXPECT_EQ(opt.messages_per_connection, 20);
  EXPECT_EQ(opt.rcpts, 3);
  EXPECT_EQ(opt.size, 4096);
  EXPECT_FALSE(opt.pipelining);
  EXPECT_EQ(opt.total_messages, 1000);
  EXPECT_DOUBLE_EQ(opt.duration_s, 5);
  EXPECT_DOUBLE_EQ(opt.rate, 100);
  EXPECT_EQ(opt.tls, TlsMode::kStartTls);
  EXPECT_EQ(opt.sni, "mx.example.test");
  EXPECT_EQ(opt.from, "a@b.test");
  EXPECT_TRUE(opt.json);
  EXPECT_EQ(opt.server_pid, 42);
  EXPECT_DOUBLE_EQ(opt.timeout_s, 2.5);
}

TEST(BenchOptionsTest, TheRunMustBeBoundedAndValuesChecked) {
  std::string error;
  auto fails = [&error](std::vector<std::string> args) {
    Options fresh;
    return !Parse(args, fresh, error);
  };
  EXPECT_TRUE(fails({"--target", "127.0.0.1:25"}));
  EXPECT_NE(error.find("--total-messages"), std::string::npos) << error;
  EXPECT_TRUE(fails({"--total-messages", "5"}));                    // no target
  EXPECT_TRUE(fails({"--target", "x:1", "--duration", "100000"}));  // over the cap
  EXPECT_TRUE(fails({"--target", "x:1", "--duration", "1", "--tls", "ssl"}));
  EXPECT_TRUE(fails({"--target", "x:1", "--duration", "1", "--concurrency", "0"}));
  EXPECT_TRUE(fails({"--target", "x:1", "--duration", "1", "--cert", "c.pem"}));
  EXPECT_TRUE(fails({"--target", "x:1", "--duration", "1", "--bogus", "1"}));
  EXPECT_TRUE(fails({"--target", "x:1", "--duration"}));
  Options small;
  ASSERT_TRUE(Parse({"--target", "x:1", "--duration", "1", "--threads", "8", "--concurrency", "3"},
                    small, error));
  EXPECT_EQ(small.threads, 3) << "no more threads than connections";
}

TEST(BenchOptionsTest, AcceptedIdsNamesAFile) {
  Options opt;
  std::string error;
  EXPECT_TRUE(opt.accepted_ids.empty()) << "off unless asked for";
  ASSERT_TRUE(
      Parse({"--target", "x:1", "--duration", "1", "--accepted-ids", "/tmp/ids.txt"}, opt, error))
      << error;
  EXPECT_EQ(opt.accepted_ids, "/tmp/ids.txt");
  Options empty;
  EXPECT_FALSE(Parse({"--target", "x:1", "--duration", "1", "--accepted-ids="}, empty, error));
  EXPECT_NE(error.find("--accepted-ids"), std::string::npos) << error;
}

TEST(BenchHistogramTest, PercentilesWithinThreePercent) {
  Histogram h;
  for (int64_t v = 1; v <= 100000; ++v) h.Record(v * 1000);  // 1 us .. 100 ms, uniform
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), 100000000u);
  const std::pair<double, double> cases[] = {
      {0.5, 50e6}, {0.9, 90e6}, {0.99, 99e6}, {0.999, 99.9e6}};
  for (const auto& [q, want] : cases) {
    const double got = static_cast<double>(h.Percentile(q));
    EXPECT_NEAR(got, want, want * 0.03) << q;
  }
  Histogram other;
  other.Record(7);
  other.Record(-5);  // clamped to 0
  h.Merge(other);
  EXPECT_EQ(h.count(), 100002u);
  EXPECT_EQ(Histogram().Percentile(0.5), 0u);
  Histogram exact;
  exact.Record(42);
  EXPECT_EQ(exact.Percentile(0.5), 42u);
  EXPECT_EQ(exact.Percentile(1.0), 42u);
}

// --proxy: the header the bench sends is one the server's own parser reads back exactly.
TEST(BenchProxyHeaderTest, BothVersionsParseBackToTheAddressesGiven) {
  for (int version : {1, 2}) {
    const std::string bytes = ProxyHeaderBytes(version, 0xC6336407, 40001, 0x7f000001, 2525);
    smtp::ProxyHeaderParser parser(smtp::ProxyVersions::kAny);
    const smtp::ProxyFeedResult result = parser.Feed(bytes + "EHLO x\r\n");
    ASSERT_EQ(result.state, smtp::ProxyParseState::kDone) << version;
    EXPECT_EQ(result.consumed, bytes.size());
    const smtp::ProxyHeader& header = parser.header();
    EXPECT_EQ(header.version, version);
    EXPECT_EQ(header.family, smtp::ProxyFamily::kTcp4);
    ASSERT_TRUE(header.source.has_value());
    ASSERT_TRUE(header.destination.has_value());
    EXPECT_EQ(header.source->ToString(), "198.51.100.7:40001");
    EXPECT_EQ(header.destination->ToString(), "127.0.0.1:2525");
  }
  EXPECT_EQ(ProxyHeaderBytes(1, 0xC6336407, 40001, 0x7f000001, 2525),
            "PROXY TCP4 198.51.100.7 127.0.0.1 40001 2525\r\n");
}

TEST(BenchOptionsTest, ProxyTakesV1OrV2) {
  Options opt;
  std::string error;
  ASSERT_TRUE(
      Parse({"--target", "127.0.0.1:25", "--total-messages", "1", "--proxy", "v2"}, opt, error))
      << error;
  EXPECT_EQ(opt.proxy, 2);
  EXPECT_FALSE(
      Parse({"--target", "127.0.0.1:25", "--total-messages", "1", "--proxy", "v3"}, opt, error));
  EXPECT_NE(error.find("--proxy"), std::string::npos) << error;
}

}  // namespace
}  // namespace ringmx::bench
