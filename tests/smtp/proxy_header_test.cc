#include "smtp/proxy_header.h"

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace ringmx::smtp {
namespace {

constexpr std::string_view kSmtp = "EHLO client.example.org\r\n";
const std::string kV2Sig("\r\n\r\n\0\r\nQUIT\n", 12);

// What one parse came to, with the header's fields (when done) or the error.
struct Outcome {
  ProxyParseState state = ProxyParseState::kNeedMore;
  size_t consumed = 0;
  std::optional<ProxyHeader> header;
  std::optional<ProxyError> error;
};

// Feeds `pieces` in order, stopping at the first kDone/kError, and sums what was consumed.
Outcome FeedPieces(ProxyVersions versions, const std::vector<std::string_view>& pieces) {
  ProxyHeaderParser parser(versions);
  Outcome out;
  for (std::string_view piece : pieces) {
    const ProxyFeedResult r = parser.Feed(piece);
    EXPECT_LE(r.consumed, piece.size());
    out.consumed += r.consumed;
    out.state = r.state;
    EXPECT_EQ(parser.state(), r.state);
    if (r.state == ProxyParseState::kDone) {
      // Only header bytes are ever taken: the rest of this piece is the client's.
      EXPECT_EQ(out.consumed, parser.header().header_bytes);
      out.header = parser.header();
      // Once done, nothing more is consumed.
      EXPECT_EQ(parser.Feed("more").consumed, 0u);
      break;
    }
    if (r.state == ProxyParseState::kError) {
      out.error = parser.error();
      EXPECT_EQ(parser.Feed("more").state, ProxyParseState::kError);
      break;
    }
  }
  return out;
}

Outcome Parse(ProxyVersions versions, std::string_view bytes) {
  return FeedPieces(versions, {bytes});
}

bool SameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  auto same_endpoint = [](const std::optional<core::Endpoint>& x,
                          const std::optional<core::Endpoint>& y) {
    if (x.has_value() != y.has_value()) return false;
    return !x || (x->address == y->address && x->port == y->port);
  };
  if (a.tlvs.size() != b.tlvs.size()) return false;
  for (size_t i = 0; i < a.tlvs.size(); ++i) {
    if (a.tlvs[i].type != b.tlvs[i].type || a.tlvs[i].value != b.tlvs[i].value) return false;
  }
  return a.version == b.version && a.command == b.command && a.family == b.family &&
         same_endpoint(a.source, b.source) && same_endpoint(a.destination, b.destination) &&
         a.header_bytes == b.header_bytes;
}

// The outcome of `bytes` whole, checked to be the same for every split into two pieces and for
// a byte-by-byte feed (STYLE.md section 8: parser tests replay at every byte boundary).
Outcome ParseEverySplit(ProxyVersions versions, std::string_view bytes) {
  const Outcome whole = Parse(versions, bytes);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    const Outcome split = FeedPieces(versions, {bytes.substr(0, cut), bytes.substr(cut)});
    EXPECT_EQ(split.state, whole.state) << "cut at " << cut;
    EXPECT_EQ(split.error, whole.error) << "cut at " << cut;
    if (whole.header && split.header) {
      EXPECT_TRUE(SameHeader(*split.header, *whole.header)) << "cut at " << cut;
    }
    if (whole.state == ProxyParseState::kDone) {
      EXPECT_EQ(split.consumed, whole.consumed) << "cut at " << cut;
    }
  }
  std::vector<std::string_view> bytewise;
  for (size_t i = 0; i < bytes.size(); ++i) bytewise.push_back(bytes.substr(i, 1));
  const Outcome one_by_one = FeedPieces(versions, bytewise);
  EXPECT_EQ(one_by_one.state, whole.state);
  EXPECT_EQ(one_by_one.error, whole.error);
  if (whole.header && one_by_one.header) {
    EXPECT_TRUE(SameHeader(*one_by_one.header, *whole.header));
  }
  return whole;
}

std::string Be16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

// A v2 header: signature, version/command byte, family byte, then `payload` with its length.
std::string V2(uint8_t ver_cmd, uint8_t family, std::string_view payload) {
  std::string out = kV2Sig;
  out.push_back(static_cast<char>(ver_cmd));
  out.push_back(static_cast<char>(family));
  out += Be16(payload.size());
  out += payload;
  return out;
}

std::string Tlv(uint8_t type, std::string_view value) {
  std::string out(1, static_cast<char>(type));
  out += Be16(value.size());
  out += value;
  return out;
}

// The IPv4 address block: 192.0.2.1:56324 -> 198.51.100.7:25.
std::string Inet4Block() {
  return std::string("\xC0\x00\x02\x01\xC6\x33\x64\x07", 8) + Be16(56324) + Be16(25);
}

// The IPv6 address block: 2001:db8::1:1234 -> 2001:db8::25:25.
std::string Inet6Block() {
  std::string out("\x20\x01\x0d\xb8", 4);
  out += std::string(10, '\0') + std::string("\x00\x01", 2);
  out += std::string("\x20\x01\x0d\xb8", 4) + std::string(10, '\0') + std::string("\x00\x25", 2);
  return out + Be16(1234) + Be16(25);
}

core::IpAddress Ip(std::string_view text) { return *core::IpAddress::Parse(text); }

// --- v1 ---------------------------------------------------------------------------------------

TEST(ProxyHeaderV1Test, ParsesTheSpecsTcp4Example) {
  // Spec section 2.1's example, followed by the client's first bytes.
  const std::string bytes =
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + std::string(kSmtp);
  const Outcome out = ParseEverySplit(ProxyVersions::kV1, bytes);
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  const ProxyHeader& h = *out.header;
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.command, ProxyCommand::kProxy);
  EXPECT_EQ(h.family, ProxyFamily::kTcp4);
  EXPECT_EQ(h.source->address, Ip("192.168.0.1"));
  EXPECT_EQ(h.source->port, 56324);
  EXPECT_EQ(h.destination->address, Ip("192.168.0.11"));
  EXPECT_EQ(h.destination->port, 443);
  EXPECT_EQ(h.header_bytes, bytes.size() - kSmtp.size());
  EXPECT_TRUE(h.tlvs.empty());
}

TEST(ProxyHeaderV1Test, ParsesTcp6InShortAndFullForms) {
  const Outcome a = ParseEverySplit(ProxyVersions::kAny, "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
  ASSERT_EQ(a.state, ProxyParseState::kDone);
  EXPECT_EQ(a.header->family, ProxyFamily::kTcp6);
  EXPECT_EQ(a.header->source->address, Ip("2001:db8::1"));
  EXPECT_EQ(a.header->source->port, 1);
  EXPECT_EQ(a.header->destination->address, Ip("::1"));
  EXPECT_EQ(a.header->destination->port, 65535);

  const std::string full =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 0\r\n";
  const Outcome b = Parse(ProxyVersions::kV1, full);
  ASSERT_EQ(b.state, ProxyParseState::kDone);
  EXPECT_EQ(b.header->source->address, Ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
  EXPECT_EQ(b.header->destination->port, 0);
}

TEST(ProxyHeaderV1Test, TakesTheDottedFormsInetNtopWritesForTcp6) {
  // HAProxy prints v1 addresses with inet_ntop: an IPv4-mapped client comes as ::ffff:a.b.c.d
  // (and becomes IPv4, core/ip.h), an IPv4-compatible one as ::a.b.c.d.
  const Outcome out =
      ParseEverySplit(ProxyVersions::kV1, "PROXY TCP6 ::ffff:192.0.2.1 ::0.29.0.1 1 2\r\n");
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  EXPECT_EQ(out.header->family, ProxyFamily::kTcp6);
  EXPECT_EQ(out.header->source->address, Ip("192.0.2.1"));
  EXPECT_TRUE(out.header->source->address.is_v4());
  EXPECT_EQ(out.header->destination->address, Ip("::1d:1"));
}

TEST(ProxyHeaderV1Test, UnknownKeepsNoAddressesAndIgnoresTheRestOfTheLine) {
  const Outcome a = ParseEverySplit(ProxyVersions::kV1, "PROXY UNKNOWN\r\n");
  ASSERT_EQ(a.state, ProxyParseState::kDone);
  EXPECT_EQ(a.header->family, ProxyFamily::kUnknown);
  EXPECT_FALSE(a.header->source.has_value());
  EXPECT_FALSE(a.header->destination.has_value());
  EXPECT_EQ(a.header->header_bytes, 15u);

  // The spec's worst case: 107 bytes exactly, with whatever fields after UNKNOWN.
  const std::string worst =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(worst.size(), kMaxProxyV1Bytes);
  const Outcome b = ParseEverySplit(ProxyVersions::kV1, worst);
  ASSERT_EQ(b.state, ProxyParseState::kDone);
  EXPECT_EQ(b.header->family, ProxyFamily::kUnknown);
  EXPECT_EQ(b.header->header_bytes, kMaxProxyV1Bytes);

  EXPECT_EQ(Parse(ProxyVersions::kV1, "PROXY UNKNOWNX\r\n").error, ProxyError::kV1BadFields);
}

TEST(ProxyHeaderV1Test, NeedsMoreUntilTheCrlf) {
  ProxyHeaderParser parser(ProxyVersions::kV1);
  ProxyFeedResult r = parser.Feed("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r");
  EXPECT_EQ(r.state, ProxyParseState::kNeedMore);
  EXPECT_EQ(r.consumed, 35u);
  r = parser.Feed("\nQUIT");
  EXPECT_EQ(r.state, ProxyParseState::kDone);
  EXPECT_EQ(r.consumed, 1u);
  EXPECT_EQ(parser.header().header_bytes, 36u);
}

TEST(ProxyHeaderV1Test, RefusesEachMalformedShape) {
  struct Case {
    std::string bytes;
    ProxyError error;
  };
  const std::vector<Case> cases = {
      {"EHLO x\r\n", ProxyError::kBadSignature},
      {"PROXZ TCP4", ProxyError::kBadSignature},
      {"PROXY\tTCP4", ProxyError::kBadSignature},
      {"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n", ProxyError::kV1BadFields},
      {"PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n", ProxyError::kV1BadFields},
      {"PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n", ProxyError::kV1BadFields},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n", ProxyError::kV1BadFields},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", ProxyError::kV1BadFields},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", ProxyError::kV1BadFields},
      {"PROXY \r\n", ProxyError::kV1BadFields},
      {"PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP4 192.0.2.1.5 192.0.2.2 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP6 ::ffff:192.0.2.256 ::1 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP6 [2001:db8::1] ::1 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP6 2001:db8:::1 ::1 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP6 2001:db8::1%eth0 ::1 1 2\r\n", ProxyError::kV1BadAddress},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", ProxyError::kV1BadPort},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 025 2\r\n", ProxyError::kV1BadPort},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 +25 2\r\n", ProxyError::kV1BadPort},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 x\r\n", ProxyError::kV1BadPort},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", ProxyError::kV1MissingCrlf},
      {"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX\n", ProxyError::kV1MissingCrlf},
      {"PROXY TCP4 192.0.2.1\r192.0.2.2 1 2\r\n", ProxyError::kV1MissingCrlf},
      {"PROXY UNKNOWN " + std::string(200, 'x') + "\r\n", ProxyError::kTooLong},
  };
  for (const Case& c : cases) {
    const Outcome out = ParseEverySplit(ProxyVersions::kV1, c.bytes);
    EXPECT_EQ(out.state, ProxyParseState::kError) << c.bytes;
    EXPECT_EQ(out.error, c.error) << c.bytes;
  }
}

TEST(ProxyHeaderV1Test, RefusesAWrongSignatureAtItsFirstByte) {
  ProxyHeaderParser parser(ProxyVersions::kV1);
  EXPECT_EQ(parser.Feed("PRO").state, ProxyParseState::kNeedMore);
  const ProxyFeedResult r = parser.Feed("Xy");
  EXPECT_EQ(r.state, ProxyParseState::kError);
  EXPECT_EQ(parser.error(), ProxyError::kBadSignature);
}

TEST(ProxyHeaderV1Test, RefusesALineThatHasNoCrlfWithin107Bytes) {
  ProxyHeaderParser parser(ProxyVersions::kV1);
  const std::string line = "PROXY UNKNOWN " + std::string(kMaxProxyV1Bytes - 15, 'x');
  ASSERT_EQ(line.size(), kMaxProxyV1Bytes - 1);
  EXPECT_EQ(parser.Feed(line).state, ProxyParseState::kNeedMore);
  // The 107th byte is not LF: no CRLF can end within 107 bytes any more.
  EXPECT_EQ(parser.Feed("\r").state, ProxyParseState::kError);
  EXPECT_EQ(parser.error(), ProxyError::kTooLong);
}

// --- v2 ---------------------------------------------------------------------------------------

TEST(ProxyHeaderV2Test, ParsesTcp4) {
  const std::string header = V2(0x21, 0x11, Inet4Block());
  const Outcome out = ParseEverySplit(ProxyVersions::kV2, header + std::string(kSmtp));
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  const ProxyHeader& h = *out.header;
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.command, ProxyCommand::kProxy);
  EXPECT_EQ(h.family, ProxyFamily::kTcp4);
  EXPECT_EQ(h.source->address, Ip("192.0.2.1"));
  EXPECT_EQ(h.source->port, 56324);
  EXPECT_EQ(h.destination->address, Ip("198.51.100.7"));
  EXPECT_EQ(h.destination->port, 25);
  EXPECT_EQ(h.header_bytes, 28u);
  EXPECT_EQ(out.consumed, 28u);
}

TEST(ProxyHeaderV2Test, ParsesTcp6) {
  const Outcome out = ParseEverySplit(ProxyVersions::kAny, V2(0x21, 0x21, Inet6Block()));
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  EXPECT_EQ(out.header->family, ProxyFamily::kTcp6);
  EXPECT_EQ(out.header->source->address, Ip("2001:db8::1"));
  EXPECT_EQ(out.header->source->port, 1234);
  EXPECT_EQ(out.header->destination->address, Ip("2001:db8::25"));
  EXPECT_EQ(out.header->destination->port, 25);
  EXPECT_EQ(out.header->header_bytes, 16u + 36u);
}

TEST(ProxyHeaderV2Test, AnIpv4MappedTcp6SourceComesOutAsIpv4) {
  std::string block(10, '\0');
  block += std::string("\xff\xff\xc0\x00\x02\x09", 6);
  block += std::string(15, '\0') + std::string("\x01", 1) + Be16(4000) + Be16(25);
  const Outcome out = Parse(ProxyVersions::kV2, V2(0x21, 0x21, block));
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  EXPECT_TRUE(out.header->source->address.is_v4());
  EXPECT_EQ(out.header->source->address, Ip("192.0.2.9"));
}

TEST(ProxyHeaderV2Test, LocalKeepsNoAddressesWhateverTheFamily) {
  // What HAProxy sends on its own health checks: LOCAL, AF_UNSPEC, no addresses.
  const Outcome a = ParseEverySplit(ProxyVersions::kV2, V2(0x20, 0x00, ""));
  ASSERT_EQ(a.state, ProxyParseState::kDone);
  EXPECT_EQ(a.header->command, ProxyCommand::kLocal);
  EXPECT_EQ(a.header->family, ProxyFamily::kUnknown);
  EXPECT_FALSE(a.header->source.has_value());
  EXPECT_EQ(a.header->header_bytes, 16u);

  // Spec section 2.2: the receiver must skip the length even for LOCAL, and ignore the family
  // (also one that would be refused on a PROXY header).
  const Outcome b = ParseEverySplit(ProxyVersions::kV2, V2(0x20, 0x11, Inet4Block()) + "QUIT");
  ASSERT_EQ(b.state, ProxyParseState::kDone);
  EXPECT_EQ(b.header->command, ProxyCommand::kLocal);
  EXPECT_FALSE(b.header->source.has_value());
  EXPECT_EQ(b.header->header_bytes, 28u);
  const Outcome c = Parse(ProxyVersions::kV2, V2(0x20, 0x99, "xyz"));
  ASSERT_EQ(c.state, ProxyParseState::kDone);
  EXPECT_EQ(c.header->header_bytes, 19u);
}

TEST(ProxyHeaderV2Test, UnspecAndOtherFamiliesFallBackToTheSocketsAddresses) {
  const Outcome unspec = ParseEverySplit(ProxyVersions::kV2, V2(0x21, 0x00, "anything"));
  ASSERT_EQ(unspec.state, ProxyParseState::kDone);
  EXPECT_EQ(unspec.header->command, ProxyCommand::kProxy);
  EXPECT_EQ(unspec.header->family, ProxyFamily::kUnknown);
  EXPECT_FALSE(unspec.header->source.has_value());

  const struct {
    uint8_t byte;
    ProxyFamily family;
    std::string block;
  } others[] = {
      {0x12, ProxyFamily::kUdp4, Inet4Block()},
      {0x22, ProxyFamily::kUdp6, Inet6Block()},
      {0x31, ProxyFamily::kUnixStream, std::string(216, '\0')},
      {0x32, ProxyFamily::kUnixDgram, std::string(216, 'a')},
  };
  for (const auto& o : others) {
    const Outcome out = ParseEverySplit(ProxyVersions::kV2, V2(0x21, o.byte, o.block));
    ASSERT_EQ(out.state, ProxyParseState::kDone) << int{o.byte};
    EXPECT_EQ(out.header->family, o.family);
    EXPECT_FALSE(out.header->source.has_value());
    EXPECT_FALSE(out.header->destination.has_value());
    EXPECT_EQ(out.header->header_bytes, 16u + o.block.size());
  }
  EXPECT_EQ(ProxyFamilyName(ProxyFamily::kUnixStream), "UNIX-STREAM");
}

TEST(ProxyHeaderV2Test, WalksTlvsAndKeepsThemUnparsed) {
  const std::string crc = Tlv(0x03, std::string("\x12\x34\x56\x78", 4));
  // PP2_TYPE_SSL: client flags, verify, then sub-TLVs; not opened.
  const std::string ssl = Tlv(0x20, std::string("\x05\x00\x00\x00\x00", 5) + Tlv(0x21, "TLSv1.3"));
  const std::string empty_noop = Tlv(0x04, "");
  const std::string unique = Tlv(0x05, "conn-42");
  const std::string header = V2(0x21, 0x11, Inet4Block() + crc + ssl + empty_noop + unique);
  const Outcome out = ParseEverySplit(ProxyVersions::kV2, header + std::string(kSmtp));
  ASSERT_EQ(out.state, ProxyParseState::kDone);
  const ProxyHeader& h = *out.header;
  EXPECT_EQ(h.header_bytes, header.size());
  ASSERT_EQ(h.tlvs.size(), 4u);
  EXPECT_EQ(h.tlvs[0].type, 0x03);
  EXPECT_EQ(h.tlvs[0].value, std::string("\x12\x34\x56\x78", 4));
  EXPECT_EQ(h.tlvs[1].type, 0x20);
  EXPECT_EQ(h.tlvs[1].value.size(), 5u + 3u + 7u);
  EXPECT_EQ(h.tlvs[2].type, 0x04);
  EXPECT_EQ(h.tlvs[2].value, "");
  EXPECT_EQ(h.tlvs[3].value, "conn-42");
  EXPECT_EQ(h.source->address, Ip("192.0.2.1"));

  const Outcome v6 = Parse(ProxyVersions::kV2, V2(0x21, 0x21, Inet6Block() + unique));
  ASSERT_EQ(v6.state, ProxyParseState::kDone);
  ASSERT_EQ(v6.header->tlvs.size(), 1u);
  EXPECT_EQ(v6.header->tlvs[0].value, "conn-42");
}

TEST(ProxyHeaderV2Test, TakesTheLargestHeaderAllowedAndRefusesOneByteMore) {
  const size_t room = kMaxProxyV2PayloadBytes - 12 - 3;
  const std::string largest = V2(0x21, 0x11, Inet4Block() + Tlv(0x04, std::string(room, 'n')));
  const Outcome ok = Parse(ProxyVersions::kV2, largest);
  ASSERT_EQ(ok.state, ProxyParseState::kDone);
  EXPECT_EQ(ok.header->header_bytes, kProxyV2FixedBytes + kMaxProxyV2PayloadBytes);

  // Refused on the length field alone, before the payload arrives.
  std::string fixed = kV2Sig + "\x21\x11" + Be16(kMaxProxyV2PayloadBytes + 1);
  const Outcome over = Parse(ProxyVersions::kV2, fixed);
  EXPECT_EQ(over.error, ProxyError::kTooLong);
  EXPECT_EQ(Parse(ProxyVersions::kV2, kV2Sig + std::string("\x20\x00\xff\xff", 4)).error,
            ProxyError::kTooLong);
}

TEST(ProxyHeaderV2Test, RefusesEachMalformedShape) {
  struct Case {
    std::string name;
    std::string bytes;
    ProxyError error;
  };
  std::string bad_sig = V2(0x21, 0x11, Inet4Block());
  bad_sig[4] = 'X';  // the NUL of the signature
  const std::vector<Case> cases = {
      {"signature", bad_sig, ProxyError::kBadSignature},
      {"version 1", V2(0x11, 0x11, Inet4Block()), ProxyError::kBadVersion},
      {"version 3", V2(0x31, 0x11, Inet4Block()), ProxyError::kBadVersion},
      {"command 2", V2(0x22, 0x11, Inet4Block()), ProxyError::kBadCommand},
      {"command F", V2(0x2F, 0x11, Inet4Block()), ProxyError::kBadCommand},
      {"family 4", V2(0x21, 0x41, Inet4Block()), ProxyError::kBadFamily},
      {"transport 3", V2(0x21, 0x13, Inet4Block()), ProxyError::kBadFamily},
      {"unspec+stream", V2(0x21, 0x01, Inet4Block()), ProxyError::kBadFamily},
      {"inet4 short", V2(0x21, 0x11, Inet4Block().substr(0, 11)), ProxyError::kTruncatedAddresses},
      {"inet6 short", V2(0x21, 0x21, Inet4Block()), ProxyError::kTruncatedAddresses},
      {"unix short", V2(0x21, 0x31, std::string(215, 'u')), ProxyError::kTruncatedAddresses},
      {"tlv header cut", V2(0x21, 0x11, Inet4Block() + "\x04\x00"), ProxyError::kBadTlv},
      {"tlv value cut", V2(0x21, 0x11, Inet4Block() + Tlv(0x05, "abc").substr(0, 5)),
       ProxyError::kBadTlv},
      {"tlv after good", V2(0x21, 0x11, Inet4Block() + Tlv(0x04, "") + "\x05"),
       ProxyError::kBadTlv},
      {"tlv in inet6", V2(0x21, 0x21, Inet6Block() + std::string("\x05\x00\x09xy", 5)),
       ProxyError::kBadTlv},
  };
  for (const Case& c : cases) {
    const Outcome out = ParseEverySplit(ProxyVersions::kV2, c.bytes);
    EXPECT_EQ(out.state, ProxyParseState::kError) << c.name;
    EXPECT_EQ(out.error, c.error) << c.name;
    EXPECT_FALSE(ProxyErrorText(c.error).empty());
  }
}

TEST(ProxyHeaderV2Test, RefusesABadCommandBeforeTheRestArrives) {
  ProxyHeaderParser parser(ProxyVersions::kAny);
  const ProxyFeedResult r = parser.Feed(kV2Sig + "\x23");
  EXPECT_EQ(r.state, ProxyParseState::kError);
  EXPECT_EQ(parser.error(), ProxyError::kBadCommand);
}

TEST(ProxyHeaderV2Test, WaitsForTheWholeLength) {
  ProxyHeaderParser parser(ProxyVersions::kV2);
  const std::string header = V2(0x21, 0x11, Inet4Block() + Tlv(0x05, "id"));
  ProxyFeedResult r = parser.Feed(header.substr(0, header.size() - 1));
  EXPECT_EQ(r.state, ProxyParseState::kNeedMore);
  EXPECT_EQ(r.consumed, header.size() - 1);
  r = parser.Feed(header.substr(header.size() - 1) + "\x16\x03\x01");  // a TLS ClientHello next
  EXPECT_EQ(r.state, ProxyParseState::kDone);
  EXPECT_EQ(r.consumed, 1u);
}

// --- versions accepted --------------------------------------------------------------------------

TEST(ProxyHeaderVersionsTest, EachListenerModeTakesOnlyItsVersions) {
  const std::string v1 = "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n";
  const std::string v2 = V2(0x21, 0x11, Inet4Block());
  EXPECT_EQ(Parse(ProxyVersions::kV1, v1).state, ProxyParseState::kDone);
  EXPECT_EQ(Parse(ProxyVersions::kV1, v2).error, ProxyError::kBadSignature);
  EXPECT_EQ(Parse(ProxyVersions::kV2, v2).state, ProxyParseState::kDone);
  EXPECT_EQ(Parse(ProxyVersions::kV2, v1).error, ProxyError::kBadSignature);
  EXPECT_EQ(Parse(ProxyVersions::kAny, v1).header->version, 1);
  EXPECT_EQ(Parse(ProxyVersions::kAny, v2).header->version, 2);
  // Never guessed: plain SMTP or a TLS ClientHello on a PROXY listener is refused at once.
  EXPECT_EQ(Parse(ProxyVersions::kAny, "EHLO x\r\n").error, ProxyError::kBadSignature);
  EXPECT_EQ(Parse(ProxyVersions::kAny, "\x16\x03\x01").error, ProxyError::kBadSignature);
  EXPECT_EQ(Parse(ProxyVersions::kAny, "").state, ProxyParseState::kNeedMore);
}

}  // namespace
}  // namespace ringmx::smtp
