// The PROXY preamble stage alone (net/preamble.h): the trusted-peer check, v1, v2 and LOCAL
// headers split at every byte, the client's bytes after the header kept exactly, the deadline,
// and malformed headers. No socket: the stage is fed bytes as a connection's receives would.
#include "net/preamble.h"

#include <stddef.h>

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::net {
namespace {

using State = ProxyPreamble::Outcome::State;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
constexpr std::string_view kV1 = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
constexpr std::string_view kClientData = "EHLO client.example.org\r\nMAIL FROM:<a@b>\r\n";

core::Endpoint Ep(std::string_view text) { return *core::Endpoint::Parse(text); }

core::ListenerConfig Listener(core::ProxyProtocol protocol) {
  core::ListenerConfig listener;
  listener.name = "mx";
  listener.address = Ep("127.0.0.1:2525");
  listener.proxy_protocol = protocol;
  listener.proxy_trusted = {*core::Cidr::Parse("127.0.0.0/8"), *core::Cidr::Parse("::1")};
  return listener;
}

// A v2 PROXY header: TCP over IPv4 from 192.0.2.9:1234 to 198.51.100.2:25, with one TLV.
std::string V2Proxy() {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x21';  // version 2, PROXY
  h += '\x11';  // TCP over IPv4
  const std::string body = std::string("\xC0\x00\x02\x09", 4) + std::string("\xC6\x33\x64\x02", 4) +
                           std::string("\x04\xD2\x00\x19", 4) +
                           std::string("\x04\x00\x02xy", 5);  // TLV type 4, length 2 (skipped)
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xff);
  return h + body;
}

// A v2 LOCAL header (a balancer's health check), no addresses.
std::string V2Local() {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x20';  // version 2, LOCAL
  h += '\x00';
  h += '\x00';
  h += '\x00';
  return h;
}

// Feeds `stream` cut at `split` (two reads); returns the outcome of the read that finished the
// header (or the last one) and the leftover copied out of that read's buffer.
ProxyPreamble::Outcome FeedSplit(ProxyPreamble& preamble, std::string_view stream, size_t split,
                                 std::string& leftover) {
  const std::string first(stream.substr(0, split));
  ProxyPreamble::Outcome outcome = preamble.Feed(first);
  if (outcome.state != State::kNeedMore || split == stream.size()) {
    leftover = std::string(outcome.leftover);
    return outcome;
  }
  const std::string second(stream.substr(split));
  outcome = preamble.Feed(second);
  leftover = std::string(outcome.leftover);
  return outcome;
}

TEST(ProxyPreambleTest, TrustsOnlyProxyTrustedPeers) {
  const core::ListenerConfig listener = Listener(core::ProxyProtocol::kAny);
  EXPECT_TRUE(ProxyPreamble(listener, Ep("127.0.0.9:4000"), absl::Seconds(5), kStart).trusted());
  EXPECT_TRUE(ProxyPreamble(listener, Ep("[::1]:4000"), absl::Seconds(5), kStart).trusted());
  EXPECT_FALSE(ProxyPreamble(listener, Ep("192.0.2.1:4000"), absl::Seconds(5), kStart).trusted());
  EXPECT_FALSE(ProxyPreamble(listener, Ep("[::2]:4000"), absl::Seconds(5), kStart).trusted());
  core::ListenerConfig none = listener;
  none.proxy_trusted.clear();
  EXPECT_FALSE(ProxyPreamble(none, Ep("127.0.0.1:4000"), absl::Seconds(5), kStart).trusted());
}

TEST(ProxyPreambleTest, V1SplitAtEveryByteKeepsTheClientBytes) {
  const std::string stream = std::string(kV1) + std::string(kClientData);
  for (size_t split = 0; split <= stream.size(); ++split) {
    ProxyPreamble preamble(Listener(core::ProxyProtocol::kV1), Ep("127.0.0.1:5000"),
                           absl::Seconds(5), kStart);
    std::string leftover;
    const ProxyPreamble::Outcome outcome = FeedSplit(preamble, stream, split, leftover);
    ASSERT_EQ(outcome.state, State::kDone) << "split " << split;
    ASSERT_TRUE(outcome.client.has_value());
    EXPECT_EQ(outcome.client->ToString(), "192.0.2.7:40000");
    EXPECT_EQ(outcome.local->ToString(), "198.51.100.1:25");
    EXPECT_EQ(outcome.balancer.ToString(), "127.0.0.1:5000");
    // The bytes after the header, in the read that finished it: exactly the client's.
    // (A read that ends past the header finishes it: its tail is the leftover; the next read
    // is the connection's business, no longer the preamble's.)
    const std::string expected = split < kV1.size() ? std::string(kClientData)
                                                    : stream.substr(kV1.size(), split - kV1.size());
    EXPECT_EQ(leftover, expected) << "split " << split;
  }
}

TEST(ProxyPreambleTest, V2SplitAtEveryByteKeepsTheClientBytes) {
  const std::string header = V2Proxy();
  // A TLS ClientHello's first bytes (implicit TLS), with a NUL in them.
  const std::string client("\x16\x03\x01\x00\x05hello\x00tail", 15);
  const std::string stream = header + client;
  for (size_t split = 0; split <= stream.size(); ++split) {
    ProxyPreamble preamble(Listener(core::ProxyProtocol::kV2), Ep("[::1]:5000"), absl::Seconds(5),
                           kStart);
    std::string leftover;
    const ProxyPreamble::Outcome outcome = FeedSplit(preamble, stream, split, leftover);
    ASSERT_EQ(outcome.state, State::kDone) << "split " << split;
    ASSERT_TRUE(outcome.client.has_value());
    EXPECT_EQ(outcome.client->ToString(), "192.0.2.9:1234");
    EXPECT_EQ(outcome.local->ToString(), "198.51.100.2:25");
    EXPECT_EQ(outcome.balancer.ToString(), "[::1]:5000");
    EXPECT_EQ(leftover,
              split < header.size() ? client : stream.substr(header.size(), split - header.size()))
        << split;
  }
}

TEST(ProxyPreambleTest, V2LocalKeepsTheSocketAddresses) {
  const std::string stream = V2Local() + "QUIT\r\n";
  for (size_t split = 0; split <= stream.size(); ++split) {
    ProxyPreamble preamble(Listener(core::ProxyProtocol::kAny), Ep("127.0.0.1:5000"),
                           absl::Seconds(5), kStart);
    std::string leftover;
    const ProxyPreamble::Outcome outcome = FeedSplit(preamble, stream, split, leftover);
    ASSERT_EQ(outcome.state, State::kDone) << split;
    EXPECT_FALSE(outcome.client.has_value());
    EXPECT_FALSE(outcome.local.has_value());
    EXPECT_EQ(outcome.balancer.ToString(), "127.0.0.1:5000");
    EXPECT_EQ(leftover, split < V2Local().size()
                            ? std::string("QUIT\r\n")
                            : stream.substr(V2Local().size(), split - V2Local().size()));
  }
}

TEST(ProxyPreambleTest, V1UnknownKeepsTheSocketAddresses) {
  ProxyPreamble preamble(Listener(core::ProxyProtocol::kAny), Ep("127.0.0.1:5000"),
                         absl::Seconds(5), kStart);
  const ProxyPreamble::Outcome outcome = preamble.Feed("PROXY UNKNOWN\r\nEHLO x\r\n");
  ASSERT_EQ(outcome.state, State::kDone);
  EXPECT_FALSE(outcome.client.has_value());
  EXPECT_EQ(outcome.leftover, "EHLO x\r\n");
}

TEST(ProxyPreambleTest, NeedsMoreUntilTheHeaderEnds) {
  ProxyPreamble preamble(Listener(core::ProxyProtocol::kV1), Ep("127.0.0.1:5000"), absl::Seconds(5),
                         kStart);
  EXPECT_EQ(preamble.Feed("PROXY TCP4 192.0.2.7 ").state, State::kNeedMore);
  EXPECT_EQ(preamble.Feed("198.51.100.1 40000 25\r").state, State::kNeedMore);
  const ProxyPreamble::Outcome outcome = preamble.Feed("\n");
  EXPECT_EQ(outcome.state, State::kDone);
  EXPECT_TRUE(outcome.leftover.empty());
}

TEST(ProxyPreambleTest, DeadlineIsTheTimeoutAfterTheStart) {
  ProxyPreamble preamble(Listener(core::ProxyProtocol::kV1), Ep("127.0.0.1:5000"), absl::Seconds(7),
                         kStart);
  EXPECT_EQ(preamble.deadline(), kStart + absl::Seconds(7));
  EXPECT_FALSE(preamble.Expired(kStart));
  EXPECT_FALSE(preamble.Expired(kStart + absl::Seconds(7) - absl::Milliseconds(1)));
  EXPECT_TRUE(preamble.Expired(kStart + absl::Seconds(7)));
  EXPECT_EQ(preamble.TimeoutDetail(), "no header within 7 s");
  // Bytes that do not finish the header do not move the deadline.
  EXPECT_EQ(preamble.Feed("PROXY ").state, State::kNeedMore);
  EXPECT_TRUE(preamble.Expired(kStart + absl::Seconds(8)));
}

TEST(ProxyPreambleTest, MalformedHeadersFailWithTheParsersReason) {
  struct Case {
    core::ProxyProtocol protocol;
    std::string bytes;
  };
  const Case cases[] = {
      {core::ProxyProtocol::kV1, "EHLO client.example.org\r\n"},             // no header at all
      {core::ProxyProtocol::kV1, "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"},        // bad address
      {core::ProxyProtocol::kV1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"},  // bad port
      {core::ProxyProtocol::kV1, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"},        // LF without CR
      {core::ProxyProtocol::kV1, V2Local()},                                 // v2 on a v1 listener
      {core::ProxyProtocol::kV2, std::string(kV1)},                          // v1 on a v2 listener
      {core::ProxyProtocol::kAny, "PROXY " + std::string(200, 'x')},         // too long
  };
  for (const Case& c : cases) {
    ProxyPreamble preamble(Listener(c.protocol), Ep("127.0.0.1:5000"), absl::Seconds(5), kStart);
    const ProxyPreamble::Outcome outcome = preamble.Feed(c.bytes);
    EXPECT_EQ(outcome.state, State::kFailed) << c.bytes;
    EXPECT_EQ(outcome.reason, "malformed");
    EXPECT_FALSE(outcome.detail.empty());
    EXPECT_FALSE(outcome.client.has_value());
  }
  // A v2 header whose command nibble is neither LOCAL nor PROXY.
  std::string bad = V2Proxy();
  bad[12] = '\x23';
  ProxyPreamble preamble(Listener(core::ProxyProtocol::kV2), Ep("127.0.0.1:5000"), absl::Seconds(5),
                         kStart);
  const ProxyPreamble::Outcome outcome = preamble.Feed(bad);
  EXPECT_EQ(outcome.state, State::kFailed);
  EXPECT_EQ(outcome.detail, std::string(smtp::ProxyErrorText(smtp::ProxyError::kBadCommand)));
}

}  // namespace
}  // namespace ringmx::net
