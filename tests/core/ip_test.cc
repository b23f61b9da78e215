#include "core/ip.h"

#include <stdint.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(std::string_view text) {
  std::optional<IpAddress> address = IpAddress::Parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress());
}

Cidr Net(std::string_view text) {
  absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status();
  return cidr.ok() ? *cidr : Cidr();
}

TEST(IpAddressTest, ParsesAndFormatsIpv4) {
  const IpAddress a = Ip("192.0.2.1");
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.bytes()[0], 192);
  EXPECT_EQ(a.bytes()[3], 1);
  EXPECT_EQ(a.ToString(), "192.0.2.1");
  EXPECT_EQ(Ip("0.0.0.0").ToString(), "0.0.0.0");
  EXPECT_EQ(Ip("255.255.255.255").ToString(), "255.255.255.255");
}

TEST(IpAddressTest, ParsesAndFormatsIpv6InRfc5952Form) {
  const IpAddress a = Ip("2001:DB8:0:0:0:0:0:1");
  EXPECT_FALSE(a.is_v4());
  EXPECT_EQ(a.ToString(), "2001:db8::1");
  EXPECT_EQ(Ip("::1").ToString(), "::1");
  EXPECT_EQ(Ip("::").ToString(), "::");
  EXPECT_EQ(Ip("2001:db8:0:1:0:0:0:1").ToString(), "2001:db8:0:1::1");
  // RFC 5952 section 4.2.2: a single 16-bit zero field is not shortened to "::".
  EXPECT_EQ(Ip("2001:db8:0:1:1:1:1:1").ToString(), "2001:db8:0:1:1:1:1:1");
  // Section 4.2.3: the longest run of zeros is the one shortened.
  EXPECT_EQ(Ip("2001:0:0:1:0:0:0:1").ToString(), "2001:0:0:1::1");
}

TEST(IpAddressTest, V4MappedIsNormalisedToIpv4) {
  const IpAddress a = Ip("::ffff:192.0.2.1");
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.ToString(), "192.0.2.1");
  EXPECT_EQ(a, Ip("192.0.2.1"));
  EXPECT_EQ(Ip("::FFFF:c000:0201"), Ip("192.0.2.1"));

  uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  const IpAddress b = IpAddress::V6(mapped);
  EXPECT_TRUE(b.is_v4());
  EXPECT_EQ(b.ToString(), "10.1.2.3");
  // Only ::ffff:0:0/96 is mapped; ::a.b.c.d (IPv4-compatible) stays IPv6.
  uint8_t compatible[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2, 3};
  EXPECT_FALSE(IpAddress::V6(compatible).is_v4());
}

TEST(IpAddressTest, V4AndV6OfTheSameBytesDiffer) {
  EXPECT_FALSE(Ip("0.0.0.0") == Ip("::"));
  EXPECT_EQ(IpAddress(), Ip("0.0.0.0"));
}

TEST(IpAddressTest, ConstructsFromBytes) {
  const uint8_t v4[4] = {198, 51, 100, 7};
  EXPECT_EQ(IpAddress::V4(v4).ToString(), "198.51.100.7");
  uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 0x42;
  EXPECT_EQ(IpAddress::V6(v6).ToString(), "2001:db8::42");
}

TEST(IpAddressTest, RejectsInvalidText) {
  for (std::string_view bad : std::initializer_list<std::string_view>{
           "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4", "01.2.3.4", " 1.2.3.4", "1.2.3.4 ",
           "[::1]", "::1%eth0", "2001:db8::g", "1:2:3:4:5:6:7:8:9", "localhost",
           std::string_view("1.2.3.4\0junk", 12), std::string_view("::1\0", 4),
           "0000000000000000000000000000000000000000000000000000000000000000"}) {
    EXPECT_FALSE(IpAddress::Parse(bad).has_value()) << bad;
  }
}

TEST(IpAddressTest, AddressLiterals) {
  // RFC 5321 section 4.1.3.
  EXPECT_EQ(Ip("192.0.2.1").ToAddressLiteral(), "[192.0.2.1]");
  EXPECT_EQ(Ip("2001:db8::1").ToAddressLiteral(), "[IPv6:2001:db8::1]");
  EXPECT_EQ(Ip("::ffff:192.0.2.1").ToAddressLiteral(), "[192.0.2.1]");
}

TEST(CidrTest, ParsesAndFormats) {
  EXPECT_EQ(Net("10.0.0.0/8").ToString(), "10.0.0.0/8");
  EXPECT_EQ(Net("0.0.0.0/0").ToString(), "0.0.0.0/0");
  EXPECT_EQ(Net("2001:DB8::/32").ToString(), "2001:db8::/32");
  EXPECT_EQ(Net("::/0").ToString(), "::/0");
  // A bare address is a host route.
  EXPECT_EQ(Net("192.0.2.7").ToString(), "192.0.2.7/32");
  EXPECT_EQ(Net("2001:db8::7").ToString(), "2001:db8::7/128");
}

TEST(CidrTest, ParseErrors) {
  struct Case {
    std::string_view text;
    std::string_view message;
  };
  for (const Case& c : {
           Case{"10.0.0.1/8", "host bits set below the prefix in \"10.0.0.1/8\""},
           Case{"192.0.2.128/24", "host bits set below the prefix"},
           Case{"2001:db8::1/64", "host bits set below the prefix"},
           Case{"10.0.0.0/33", "prefix length out of range (0-32) in \"10.0.0.0/33\""},
           Case{"::/129", "prefix length out of range (0-128)"},
           Case{"10.0.0.0/-1", "bad prefix length"},
           Case{"10.0.0.0/", "bad prefix length"},
           Case{"10.0.0.0/x", "bad prefix length"},
           Case{"10.0.0.0/+8", "bad prefix length"},
           Case{"10.0.0.0/ 8", "bad prefix length"},
           Case{"10.0.0.0/8 ", "bad prefix length"},
           Case{"10.0.0.0/8/8", "bad prefix length"},
           Case{"/8", "bad address in \"/8\""},
           Case{"10.0.0/8", "bad address"},
           Case{"example.com/8", "bad address"},
           Case{"", "bad address"},
       }) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(c.text);
    ASSERT_FALSE(cidr.ok()) << c.text;
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(Sv(cidr.status().message())), HasSubstr(std::string(c.message)))
        << c.text;
  }
}

TEST(CidrTest, ContainsIpv4Boundaries) {
  const Cidr net = Net("192.0.2.0/24");
  EXPECT_TRUE(net.Contains(Ip("192.0.2.0")));
  EXPECT_TRUE(net.Contains(Ip("192.0.2.255")));
  EXPECT_FALSE(net.Contains(Ip("192.0.1.255")));
  EXPECT_FALSE(net.Contains(Ip("192.0.3.0")));
  // A v4-mapped client address matches IPv4 networks.
  EXPECT_TRUE(net.Contains(Ip("::ffff:192.0.2.9")));

  const Cidr odd = Net("10.0.0.0/13");  // prefix not on a byte boundary
  EXPECT_TRUE(odd.Contains(Ip("10.7.255.255")));
  EXPECT_FALSE(odd.Contains(Ip("10.8.0.0")));

  EXPECT_TRUE(Net("0.0.0.0/0").Contains(Ip("203.0.113.9")));
  EXPECT_TRUE(Net("192.0.2.7/32").Contains(Ip("192.0.2.7")));
  EXPECT_FALSE(Net("192.0.2.7/32").Contains(Ip("192.0.2.6")));
  EXPECT_FALSE(Net("192.0.2.7/32").Contains(Ip("192.0.2.8")));
  EXPECT_TRUE(Net("128.0.0.0/1").Contains(Ip("255.255.255.255")));
  EXPECT_FALSE(Net("128.0.0.0/1").Contains(Ip("127.255.255.255")));
}

TEST(CidrTest, ContainsIpv6Boundaries) {
  const Cidr net = Net("2001:db8::/32");
  EXPECT_TRUE(net.Contains(Ip("2001:db8::")));
  EXPECT_TRUE(net.Contains(Ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(net.Contains(Ip("2001:db9::")));
  EXPECT_FALSE(net.Contains(Ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));

  const Cidr odd = Net("2001:db8:8000::/33");
  EXPECT_TRUE(odd.Contains(Ip("2001:db8:ffff::1")));
  EXPECT_FALSE(odd.Contains(Ip("2001:db8:7fff::1")));

  EXPECT_TRUE(Net("::/0").Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(Net("::1/128").Contains(Ip("::1")));
  EXPECT_FALSE(Net("::1/128").Contains(Ip("::2")));
  EXPECT_FALSE(Net("::1/128").Contains(Ip("::")));
}

TEST(CidrTest, FamiliesNeverMatchEachOther) {
  EXPECT_FALSE(Net("::/0").Contains(Ip("192.0.2.1")));
  EXPECT_FALSE(Net("0.0.0.0/0").Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(Net("0.0.0.0/0").Contains(Ip("::")));
}

TEST(EndpointTest, ParsesIpv4AndBracketedIpv6) {
  absl::StatusOr<Endpoint> v4 = Endpoint::Parse("127.0.0.1:25");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->address, Ip("127.0.0.1"));
  EXPECT_EQ(v4->port, 25);
  EXPECT_EQ(v4->ToString(), "127.0.0.1:25");

  absl::StatusOr<Endpoint> v6 = Endpoint::Parse("[2001:DB8::1]:587");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_FALSE(v6->address.is_v4());
  EXPECT_EQ(v6->port, 587);
  EXPECT_EQ(v6->ToString(), "[2001:db8::1]:587");

  absl::StatusOr<Endpoint> any6 = Endpoint::Parse("[::]:0");
  ASSERT_TRUE(any6.ok()) << any6.status();
  EXPECT_EQ(any6->ToString(), "[::]:0");

  absl::StatusOr<Endpoint> max = Endpoint::Parse("0.0.0.0:65535");
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->port, 65535);

  absl::StatusOr<Endpoint> mapped = Endpoint::Parse("[::ffff:127.0.0.1]:25");
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->ToString(), "127.0.0.1:25");
}

TEST(EndpointTest, RejectsBadPorts) {
  for (std::string_view bad : {"127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:x",
                               "127.0.0.1:+25", "127.0.0.1: 25", "127.0.0.1:25 ", "[::1]:",
                               "[::1]:99999", "127.0.0.1:0x19", "127.0.0.1:100000000000000000"}) {
    absl::StatusOr<Endpoint> e = Endpoint::Parse(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(Sv(e.status().message())), HasSubstr("bad port")) << bad;
  }
}

TEST(EndpointTest, RejectsMalformedText) {
  struct Case {
    std::string_view text;
    std::string_view message;
  };
  for (const Case& c : {
           Case{"localhost", "expected \"ip:port\" or \"[ipv6]:port\", got \"localhost\""},
           Case{"", "expected \"ip:port\""},
           Case{"127.0.0.1", "expected \"ip:port\""},
           Case{"::1:25", "expected \"ip:port\" or \"[ipv6]:port\", got \"::1:25\""},
           Case{"[::1]", "expected \"[ipv6]:port\", got \"[::1]\""},
           Case{"[::1]25", "expected \"[ipv6]:port\""},
           Case{"[::1:25", "expected \"[ipv6]:port\""},
           Case{"localhost:25", "\"localhost\" is not an IP address (names are not resolved)"},
           Case{"[fe80::1%eth0]:25", "is not an IP address"},
           Case{":25", "\"\" is not an IP address"},
       }) {
    absl::StatusOr<Endpoint> e = Endpoint::Parse(c.text);
    ASSERT_FALSE(e.ok()) << c.text;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(Sv(e.status().message())), HasSubstr(std::string(c.message))) << c.text;
  }
}

}  // namespace
}  // namespace ringmx::core
