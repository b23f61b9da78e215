#include "policy/verify_cache.h"

#include "gtest/gtest.h"

namespace ringmx::policy {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(VerifyCacheTest, KnownAndUnknownExpireAfterTheirTtl) {
  VerifyCache cache;
  cache.Put("Known@Example.test", true, "250 2.1.5 ok", kT0, absl::Hours(24));
  cache.Put("nobody@example.test", false, "550 5.1.1 unknown", kT0, absl::Hours(3));
  auto known = cache.Find("known@example.TEST", kT0 + absl::Hours(23));
  ASSERT_TRUE(known.has_value());
  EXPECT_TRUE(known->known);
  auto unknown = cache.Find("nobody@example.test", kT0 + absl::Hours(2));
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->known);
  EXPECT_EQ(unknown->reply, "550 5.1.1 unknown");
  EXPECT_FALSE(cache.Find("nobody@example.test", kT0 + absl::Hours(3)).has_value());
  EXPECT_FALSE(cache.Find("known@example.test", kT0 + absl::Hours(24)).has_value());
  EXPECT_FALSE(cache.Find("other@example.test", kT0).has_value());
}

TEST(VerifyCacheTest, LaterAnswerReplacesEarlier) {
  VerifyCache cache;
  cache.Put("u@example.test", false, "550 no", kT0, absl::Hours(3));
  cache.Put("u@example.test", true, "250 ok", kT0 + absl::Hours(1), absl::Hours(3));
  auto entry = cache.Find("u@example.test", kT0 + absl::Hours(3.5));
  ASSERT_TRUE(entry.has_value());
  EXPECT_TRUE(entry->known);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(VerifyCacheTest, EntryLearntElsewhereKeepsItsExpiry) {
  VerifyCache cache;
  cache.PutEntry("U@example.test", {true, "250 ok", kT0 + absl::Hours(2)}, kT0);
  EXPECT_TRUE(cache.Find("u@example.test", kT0 + absl::Hours(1)).has_value());
  EXPECT_FALSE(cache.Find("u@example.test", kT0 + absl::Hours(2)).has_value());
  cache.PutEntry("old@example.test", {false, "550", kT0}, kT0);  // already expired: not kept
  EXPECT_EQ(cache.size(), 1u);
}

TEST(VerifyCacheTest, ZeroTtlRecordsNothing) {
  VerifyCache cache;
  cache.Put("u@example.test", true, "250 ok", kT0, absl::ZeroDuration());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.Find("u@example.test", kT0).has_value());
}

TEST(VerifyCacheTest, BoundedDropsExpiredFirstThenSoonestToExpire) {
  VerifyCache cache(3);
  cache.Put("a@x.test", true, "", kT0, absl::Hours(1));  // expires first
  cache.Put("b@x.test", true, "", kT0, absl::Hours(10));
  cache.Put("c@x.test", true, "", kT0, absl::Hours(5));
  cache.Put("d@x.test", true, "", kT0, absl::Hours(7));  // full: a (soonest) goes
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.Find("a@x.test", kT0).has_value());
  EXPECT_TRUE(cache.Find("b@x.test", kT0).has_value());
  // At kT0 + 6h, c has expired: it goes before d (which expires sooner than b).
  cache.Put("e@x.test", true, "", kT0 + absl::Hours(6), absl::Hours(1));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_TRUE(cache.Find("d@x.test", kT0 + absl::Hours(6)).has_value());
  EXPECT_TRUE(cache.Find("b@x.test", kT0 + absl::Hours(6)).has_value());
  EXPECT_TRUE(cache.Find("e@x.test", kT0 + absl::Hours(6)).has_value());
}

}  // namespace
}  // namespace ringmx::policy
