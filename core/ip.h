// IP addresses and CIDR networks as plain values, so policy/ can match client addresses without
// any socket header. IPv4 addresses are kept as such; an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
// what a dual-stack socket reports for an IPv4 client) is normalised to IPv4 by every constructor.
#pragma once

#include <stdint.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace ringmx::core {

// Immutable value; safe to share.
class IpAddress {
 public:
  IpAddress() = default;  // 0.0.0.0
  static IpAddress V4(const uint8_t bytes[4]);
  // `bytes` in network order; a v4-mapped address becomes IPv4.
  static IpAddress V6(const uint8_t bytes[16]);
  // Accepts dotted quad or RFC 4291 text (no brackets, no zone). nullopt if invalid.
  static std::optional<IpAddress> Parse(std::string_view text);

  bool is_v4() const { return is_v4_; }
  // 4 meaningful bytes for IPv4, 16 for IPv6.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // "192.0.2.1" or "2001:db8::1" (RFC 5952 form).
  std::string ToString() const;
  // RFC 5321 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
  std::string ToAddressLiteral() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.is_v4_ == b.is_v4_ && a.bytes_ == b.bytes_;
  }
  // A key of absl hash tables (per-address counts).
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    return H::combine(std::move(h), a.bytes_, a.is_v4_);
  }

 private:
  bool is_v4_ = true;
  std::array<uint8_t, 16> bytes_{};
};

// A network such as "10.0.0.0/8" or "2001:db8::/32". Immutable value; safe to share.
class Cidr {
 public:
  // Accepts "addr/len" or a bare address (a host route). Bits set below the prefix are an error
  // ("10.0.0.1/8" is rejected: an operator who writes it almost always meant something else).
  static absl::StatusOr<Cidr> Parse(std::string_view text);
  bool Contains(const IpAddress& address) const;
  std::string ToString() const;

 private:
  IpAddress network_;
  int prefix_len_ = 0;
};

// A listening or peer endpoint. Immutable value; safe to share.
struct Endpoint {
  IpAddress address;
  uint16_t port = 0;
  // "127.0.0.1:25", "[::1]:25". Port 0 is allowed (the kernel picks one).
  static absl::StatusOr<Endpoint> Parse(std::string_view text);
  std::string ToString() const;
};

}  // namespace ringmx::core
