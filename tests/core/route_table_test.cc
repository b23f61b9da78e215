#include "core/route_table.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

#include "core/snapshot.h"

namespace ringmx::core {
namespace {

RouteConfig Route(std::vector<std::string> domains) {
  RouteConfig route;
  route.domains = std::move(domains);
  return route;
}

// Routes 0-3; Index() answers with the route's position, -1 for none.
class RouteTableTest : public ::testing::Test {
 protected:
  RouteTableTest()
      : table_({Route({"example.test", "*.example.test"}), Route({"*.sub.example.test"}),
                Route({"exact.sub.example.test", "other.test"}), Route({"*"})}) {}

  int Index(std::string_view domain) const {
    const RouteConfig* route = table_.Lookup(domain);
    if (route == nullptr) return -1;
    return static_cast<int>(route - table_.routes().data());
  }

  RouteTable table_;
};

TEST_F(RouteTableTest, LooksUpFromATable) {
  const struct {
    std::string_view domain;
    int route;
  } kCases[] = {
      {"example.test", 0},            // exact
      {"a.example.test", 0},          // wildcard
      {"a.b.example.test", 0},        // wildcard, any depth
      {"sub.example.test", 0},        // "*.sub..." does not match sub.example.test itself
      {"x.sub.example.test", 1},      // the longest wildcard wins
      {"x.y.sub.example.test", 1},    //
      {"exact.sub.example.test", 2},  // exact beats a wildcard
      {"other.test", 2},              //
      {"a.other.test", 3},            // no wildcard for other.test: default
      {"unknown.example", 3},         // default
      {"EXAMPLE.Test", 0},            // case-insensitive
      {"X.SUB.Example.TEST", 1},      //
      {"example.test.", 0},           // one trailing dot ignored
      {"a.example.test.", 0},         //
      {"example.test..", 3},          // not two
      {"", 3},                        //
      {"test", 3},                    //
      {"xexample.test", 3},           // a suffix must start at a dot
      {"[192.0.2.1]", 3},             // address literal: only the default
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(Index(c.domain), c.route) << c.domain;
  }
}

TEST_F(RouteTableTest, OverlongNamesGetTheDefault) {
  const std::string long_name = std::string(300, 'a') + ".example.test";
  EXPECT_EQ(Index(long_name), 3);
}

TEST(RouteTableNoDefaultTest, UnroutedDomainsGetNothing) {
  const RouteTable table({Route({"example.test"}), Route({"*.example.org"})});
  EXPECT_NE(table.Lookup("example.test"), nullptr);
  EXPECT_NE(table.Lookup("a.example.org"), nullptr);
  EXPECT_EQ(table.Lookup("example.org"), nullptr);
  EXPECT_EQ(table.Lookup("other.test"), nullptr);
  EXPECT_EQ(table.Lookup(""), nullptr);
}

TEST(RouteTableNoDefaultTest, EmptyTableFindsNothing) {
  const RouteTable table;
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.Lookup("example.test"), nullptr);
}

TEST(RouteTableNoDefaultTest, FirstRouteWinsOnARepeat) {
  const RouteTable table({Route({"a.test", "*"}), Route({"a.test", "*"})});
  EXPECT_EQ(table.Lookup("a.test"), &table.routes()[0]);
  EXPECT_EQ(table.Lookup("b.test"), &table.routes()[0]);
}

TEST(RouteTableNoDefaultTest, CopiesPointIntoTheirOwnRoutes) {
  const RouteTable original({Route({"a.test"}), Route({"*"})});
  const RouteTable copy = original;
  EXPECT_EQ(copy.Lookup("b.test"), &copy.routes()[1]);
  EXPECT_EQ(copy.Lookup("a.test"), &copy.routes()[0]);
}

TEST(RouteTableSnapshotTest, SnapshotCarriesTheRoutes) {
  absl::StatusOr<Config> config = ParseConfig(
      "hostname = \"mx.example.test\"\n"
      "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:2525\"\n"
      "[policy]\nlocal_domains = [\"example.test\"]\n"
      "[[route]]\ndomains = [\"Example.Test\"]\nnext_hop = [\"lmtp:127.0.0.1:24\"]\n"
      "[[route]]\ndomains = [\"*\"]\nnext_hop = [\"smtp:[192.0.2.5]\"]\n"
      "[delivery]\nbounce_next_hop = \"smtp:[192.0.2.6]:25\"\n",
      "ringmx.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto snapshot = Snapshot::Build(*config, 1);
  const RouteConfig* local = snapshot->routes.Lookup("EXAMPLE.test");
  ASSERT_NE(local, nullptr);
  ASSERT_EQ(local->next_hop.size(), 1u);
  EXPECT_EQ(local->next_hop[0].ToString(), "lmtp:127.0.0.1:24");
  const RouteConfig* other = snapshot->routes.Lookup("elsewhere.example");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->next_hop[0].ToString(), "smtp:[192.0.2.5]:25");
}

}  // namespace
}  // namespace ringmx::core
