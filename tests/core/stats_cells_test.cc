// core/stats_cells.h: the shard's histogram and labelled counter cells, and the reply scanner
// that feeds the reply counters.
#include "core/stats_cells.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ringmx::core {
namespace {

TEST(HistogramCellTest, BucketsAreInclusiveUpperBounds) {
  HistogramCell cell(kStoreLatencyBounds);
  cell.Observe(0);
  cell.Observe(kStoreLatencyBounds[0]);
  cell.Observe(kStoreLatencyBounds[0] + 1);
  cell.Observe(kStoreLatencyBounds.back());
  cell.Observe(kStoreLatencyBounds.back() + 1);
  const HistogramData data = cell.Read();
  EXPECT_EQ(data.buckets[0], 2u);
  EXPECT_EQ(data.buckets[1], 1u);
  EXPECT_EQ(data.buckets[kHistogramBounds - 1], 1u);
  EXPECT_EQ(data.buckets[kHistogramBounds], 1u);  // +Inf
  EXPECT_EQ(data.count(), 5u);
  EXPECT_EQ(data.sum_us, 0 + 250 + 251 + 2 * kStoreLatencyBounds.back() + 1);
}

TEST(HistogramCellTest, MergeAddsBucketsAndSums) {
  HistogramCell a(kHandshakeBounds), b(kHandshakeBounds);
  a.Observe(700);
  b.Observe(700);
  b.Observe(20000000);
  HistogramData merged = a.Read();
  merged.Merge(b.Read());
  EXPECT_EQ(merged.buckets[1], 2u);
  EXPECT_EQ(merged.buckets[kHistogramBounds], 1u);
  EXPECT_EQ(merged.count(), 3u);
  EXPECT_EQ(merged.sum_us, 20001400u);
}

TEST(HistogramBoundsTest, Ascending) {
  for (const HistogramBounds* bounds : {&kStoreLatencyBounds, &kHandshakeBounds}) {
    for (size_t i = 1; i < kHistogramBounds; ++i) EXPECT_LT((*bounds)[i - 1], (*bounds)[i]);
  }
}

TEST(LabeledCountersTest, CountsByKeyAndOverflowsIntoOther) {
  LabeledCounters<2> counters;
  counters.Add("a");
  counters.Add("b", 3);
  counters.Add("a");
  counters.Add("c");                                  // no slot left
  counters.Add(std::string(48, 'x'));                 // longer than kMaxKey
  counters.Add(std::string_view());                   // empty
  std::map<std::string, uint64_t> out = {{"a", 10}};  // ReadInto adds
  counters.ReadInto(out);
  EXPECT_EQ(out, (std::map<std::string, uint64_t>{{"a", 12}, {"b", 3}, {"other", 3}}));
}

TEST(LabeledCountersTest, NoOtherWhenEverythingFits) {
  LabeledCounters<4> counters;
  counters.Add(std::string(LabeledCounters<4>::kMaxKey, 'k'));
  std::map<std::string, uint64_t> out;
  counters.ReadInto(out);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(out.count("other"), 0u);
}

std::vector<std::pair<int, std::string>> Replies(std::string_view bytes) {
  std::vector<std::pair<int, std::string>> out;
  ForEachReply(bytes, [&](int code, std::string_view enhanced) {
    out.emplace_back(code, std::string(enhanced));
  });
  return out;
}

TEST(ForEachReplyTest, OneEntryPerReplyWithItsEnhancedCode) {
  using V = std::vector<std::pair<int, std::string>>;
  EXPECT_EQ(Replies("220 mx.example.test ESMTP ringmx\r\n"), (V{{220, ""}}));
  EXPECT_EQ(Replies("250-mx.example.test\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"), (V{{250, ""}}));
  EXPECT_EQ(Replies("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
            (V{{250, "2.1.0"}, {250, "2.1.5"}, {354, ""}}));
  EXPECT_EQ(Replies("550-5.7.1 Relay\r\n550 5.7.1 denied\r\n421 4.3.2 Shutting down\r\n"),
            (V{{550, "5.7.1"}, {421, "4.3.2"}}));
  EXPECT_EQ(Replies("221 2.0.0 Bye"), (V{{221, "2.0.0"}}));  // no line end
  EXPECT_EQ(Replies("500\r\n"), (V{{500, ""}}));
  EXPECT_EQ(Replies("hello\r\n\r\n25\r\n2500 x\r\n"), V{});
}

TEST(EnhancedCodeOfTest, ClassSubjectDetail) {
  EXPECT_EQ(EnhancedCodeOf("5.7.1 Relay denied"), "5.7.1");
  EXPECT_EQ(EnhancedCodeOf("4.7.0"), "4.7.0");
  EXPECT_EQ(EnhancedCodeOf("5.7.30 x"), "5.7.30");
  EXPECT_EQ(EnhancedCodeOf("2.123.456 x"), "2.123.456");
  EXPECT_EQ(EnhancedCodeOf("3.0.0 x"), "");  // class 2, 4 or 5 only
  EXPECT_EQ(EnhancedCodeOf("5.7.1x"), "");
  EXPECT_EQ(EnhancedCodeOf("5.1234.1 x"), "");
  EXPECT_EQ(EnhancedCodeOf("5..1 x"), "");
  EXPECT_EQ(EnhancedCodeOf("5.7. x"), "");
  EXPECT_EQ(EnhancedCodeOf("Ok"), "");
  EXPECT_EQ(EnhancedCodeOf(""), "");
}

}  // namespace
}  // namespace ringmx::core
