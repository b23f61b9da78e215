#include "core/queue_id.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ringmx::core {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

bool IsQueueIdCharacter(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'V'); }

TEST(QueueIdTest, LengthAndAlphabet) {
  QueueIdGenerator gen(3);
  const std::string id = gen.Next(kT0);
  EXPECT_EQ(id.size(), 20u);
  for (char c : id) EXPECT_TRUE(IsQueueIdCharacter(c)) << id;
}

TEST(QueueIdTest, UniqueAndIncreasingAtTheSameTime) {
  QueueIdGenerator gen(0);
  absl::flat_hash_set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 100000; ++i) {
    std::string id = gen.Next(kT0);
    ASSERT_EQ(id.size(), 20u);
    ASSERT_GT(id, previous) << "call " << i;
    ASSERT_TRUE(seen.insert(id).second) << id;
    previous = std::move(id);
  }
}

TEST(QueueIdTest, UniqueAndIncreasingWhenTheClockStepsBack) {
  QueueIdGenerator gen(1);
  absl::flat_hash_set<std::string> seen;
  std::string previous;
  absl::Time now = kT0;
  for (int i = 0; i < 20000; ++i) {
    // Forward most of the time, a jump back of up to an hour now and then.
    now += (i % 7 == 3) ? -absl::Minutes(i % 61) : absl::Microseconds(i % 3);
    std::string id = gen.Next(now);
    ASSERT_GT(id, previous) << "call " << i;
    ASSERT_TRUE(seen.insert(id).second) << id;
    previous = std::move(id);
  }
}

TEST(QueueIdTest, IdsSortByTime) {
  QueueIdGenerator gen(0);
  const std::string a = gen.Next(kT0);
  const std::string b = gen.Next(kT0 + absl::Microseconds(1));
  const std::string c = gen.Next(kT0 + absl::Hours(24 * 365));
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  // Time fills the first 11 characters.
  EXPECT_NE(a.substr(0, 11), b.substr(0, 11));
}

TEST(QueueIdTest, DifferentShardsDiffer) {
  QueueIdGenerator a(0);
  QueueIdGenerator b(1);
  QueueIdGenerator c(1023);
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const absl::Time now = kT0 + absl::Microseconds(i / 10);
    ASSERT_TRUE(seen.insert(a.Next(now)).second);
    ASSERT_TRUE(seen.insert(b.Next(now)).second);
    ASSERT_TRUE(seen.insert(c.Next(now)).second);
  }
  EXPECT_NE(QueueIdGenerator(0).Next(kT0), QueueIdGenerator(1).Next(kT0));
}

TEST(QueueIdTest, SequenceOverflowBorrowsTheNextMicrosecond) {
  QueueIdGenerator gen(0);
  gen.SetSequenceForTest(kT0, (1u << 30) - 1);
  const std::string last = gen.Next(kT0);
  EXPECT_EQ(last.substr(14), "VVVVVV");
  const std::string next = gen.Next(kT0);
  EXPECT_GT(next, last);
  EXPECT_EQ(next.substr(14), "000000");
  EXPECT_EQ(next, QueueIdGenerator(0).Next(kT0 + absl::Microseconds(1)));
  // The real clock catching up continues after the borrowed microsecond, not on top of it.
  EXPECT_GT(gen.Next(kT0 + absl::Microseconds(1)), next);
}

}  // namespace
}  // namespace ringmx::core
