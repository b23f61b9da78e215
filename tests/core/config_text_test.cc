#include "core/internal/config_text.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace ringmx::core::internal {
namespace {

TEST(EditDistanceTest, CountsEditsCaseInsensitively) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("listner", "listener"), 1u);
  EXPECT_EQ(EditDistance("hostnmae", "hostname"), 1u);  // transposition
  EXPECT_EQ(EditDistance("Workers", "workers"), 0u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(DomainNameTest, AcceptsPreferredNameSyntax) {
  EXPECT_TRUE(IsDomainName("mx.example.test", 2));
  EXPECT_TRUE(IsDomainName("a-b.c0.example", 2));
  EXPECT_TRUE(IsDomainName("localhost", 1));
  EXPECT_TRUE(IsDomainName("xn--bcher-kva.example", 2));
  EXPECT_TRUE(IsDomainName("1.example", 2));
  EXPECT_TRUE(IsDomainName(std::string(63, 'a') + ".example", 2));
}

TEST(DomainNameTest, RejectsEverythingElse) {
  EXPECT_FALSE(IsDomainName("", 1));
  EXPECT_FALSE(IsDomainName("localhost", 2));
  EXPECT_FALSE(IsDomainName("192.0.2.1", 1));
  EXPECT_FALSE(IsDomainName("example.", 1));
  EXPECT_FALSE(IsDomainName(".example", 1));
  EXPECT_FALSE(IsDomainName("a..example", 1));
  EXPECT_FALSE(IsDomainName("-a.example", 1));
  EXPECT_FALSE(IsDomainName("a-.example", 1));
  EXPECT_FALSE(IsDomainName("a_b.example", 1));
  EXPECT_FALSE(IsDomainName("*.example", 1));
  EXPECT_FALSE(IsDomainName("caf\xc3\xa9.example", 1));
  EXPECT_FALSE(IsDomainName(std::string(64, 'a') + ".example", 1));
  std::string long_name;
  for (int i = 0; i < 64; ++i) long_name += "abc.";
  long_name += "example";  // 263 characters
  EXPECT_FALSE(IsDomainName(long_name, 1));
}

TEST(CanonicalDomainTest, LowerCasesAndDropsOneTrailingDot) {
  EXPECT_EQ(CanonicalDomain("Example.TEST."), "example.test");
  EXPECT_EQ(CanonicalDomain("example.test"), "example.test");
  EXPECT_EQ(CanonicalDomain("example.."), "example.");
  EXPECT_EQ(CanonicalDomain(""), "");
}

TEST(ResolvePathTest, JoinsRelativePathsOnly) {
  EXPECT_EQ(ResolvePath("/etc/ringmx", "certs/a.pem"), "/etc/ringmx/certs/a.pem");
  EXPECT_EQ(ResolvePath("/etc/ringmx/", "./a.pem"), "/etc/ringmx/a.pem");
  EXPECT_EQ(ResolvePath("/etc/ringmx", "../spool"), "/etc/spool");
  EXPECT_EQ(ResolvePath("/etc/ringmx", "/abs/a.pem"), "/abs/a.pem");
  EXPECT_EQ(ResolvePath("", "rel/a.pem"), "rel/a.pem");
  EXPECT_EQ(ResolvePath("/etc/ringmx", ""), "");
  EXPECT_EQ(ResolvePath("conf", "a.pem"), "conf/a.pem");
}

}  // namespace
}  // namespace ringmx::core::internal
