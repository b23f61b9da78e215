#include "core/secret.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace ringmx::core {
namespace {

TEST(SecretTest, WipeStringZeroesTheWholeCapacity) {
  std::string s(100, 'x');
  s.resize(3);  // the tail still holds 'x's
  const size_t capacity = s.capacity();
  WipeString(s);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.capacity(), capacity);
  s.resize(capacity);
  EXPECT_EQ(s, std::string(capacity, '\0'));
}

TEST(SecretTest, SecretStringHoldsBytesAndANul) {
  const SecretString secret(std::string_view("pass\0word", 9));
  EXPECT_EQ(secret.size(), 9u);
  EXPECT_EQ(secret.view(), std::string_view("pass\0word", 9));
  EXPECT_EQ(std::string_view(secret.c_str()), "pass");
  const SecretString empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(std::string_view(empty.c_str()), "");
  EXPECT_TRUE(SecretString("").empty());
}

TEST(SecretTest, MovesHandOverTheBlock) {
  SecretString a("hunter2");
  const char* block = a.c_str();
  SecretString b(std::move(a));
  EXPECT_EQ(b.c_str(), block);
  EXPECT_EQ(b.view(), "hunter2");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract says so
  SecretString c("other");
  c = std::move(b);
  EXPECT_EQ(c.c_str(), block);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  c.Wipe();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.view(), "");
}

}  // namespace
}  // namespace ringmx::core
