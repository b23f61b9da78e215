#include "core/ip.h"

#include <arpa/inet.h>
#include <string.h>

#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Parses 1 to `max_digits` ASCII digits. absl::SimpleAtoi would also take a sign and surrounding
// whitespace ("+25", " 8"), which have no place in an address.
bool ParseDigits(std::string_view text, size_t max_digits, int* out) {
  if (text.empty() || text.size() > max_digits) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

}  // namespace

IpAddress IpAddress::V4(const uint8_t bytes[4]) {
  IpAddress a;
  a.is_v4_ = true;
  memcpy(a.bytes_.data(), bytes, 4);
  return a;
}

IpAddress IpAddress::V6(const uint8_t bytes[16]) {
  if (memcmp(bytes, kV4MappedPrefix, sizeof(kV4MappedPrefix)) == 0) return V4(bytes + 12);
  IpAddress a;
  a.is_v4_ = false;
  memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  // inet_pton stops at a NUL: "1.2.3.4\0junk" must not pass as 1.2.3.4.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t bytes[16];
  if (inet_pton(AF_INET, buf, bytes) == 1) return V4(bytes);
  if (inet_pton(AF_INET6, buf, bytes) == 1) return V6(bytes);
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const char* s = inet_ntop(is_v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return s != nullptr ? std::string(s) : std::string();
}

std::string IpAddress::ToAddressLiteral() const {
  return is_v4_ ? absl::StrCat("[", ToString(), "]") : absl::StrCat("[IPv6:", ToString(), "]");
}

absl::StatusOr<Cidr> Cidr::Parse(std::string_view text) {
  std::string_view addr_text = text;
  std::optional<int> prefix;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    int len;
    if (!ParseDigits(text.substr(slash + 1), 3, &len)) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in \"", Av(text), "\""));
    }
    prefix = len;
  }
  std::optional<IpAddress> addr = IpAddress::Parse(addr_text);
  if (!addr) return absl::InvalidArgumentError(absl::StrCat("bad address in \"", Av(text), "\""));
  const int max_len = addr->is_v4() ? 32 : 128;
  const int len = prefix.value_or(max_len);
  if (len < 0 || len > max_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix length out of range (0-", max_len, ") in \"", Av(text), "\""));
  }
  const auto& bytes = addr->bytes();
  for (int bit = len; bit < max_len; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(
          absl::StrCat("host bits set below the prefix in \"", Av(text), "\""));
    }
  }
  Cidr cidr;
  cidr.network_ = *addr;
  cidr.prefix_len_ = len;
  return cidr;
}

bool Cidr::Contains(const IpAddress& address) const {
  if (address.is_v4() != network_.is_v4()) return false;
  const auto& a = address.bytes();
  const auto& n = network_.bytes();
  const int full = prefix_len_ / 8;
  if (memcmp(a.data(), n.data(), full) != 0) return false;
  const int rest = prefix_len_ % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xFF00 >> rest);
  return (a[full] & mask) == (n[full] & mask);
}

std::string Cidr::ToString() const { return absl::StrCat(network_.ToString(), "/", prefix_len_); }

absl::StatusOr<Endpoint> Endpoint::Parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("expected \"[ipv6]:port\", got \"", Av(text), "\""));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected \"ip:port\" or \"[ipv6]:port\", got \"", Av(text), "\""));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  std::optional<IpAddress> addr = IpAddress::Parse(host);
  if (!addr) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Av(host), "\" is not an IP address (names are not resolved)"));
  }
  int port;
  if (!ParseDigits(port_text, 5, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port \"", Av(port_text), "\""));
  }
  return Endpoint{*addr, static_cast<uint16_t>(port)};
}

std::string Endpoint::ToString() const {
  return address.is_v4() ? absl::StrCat(address.ToString(), ":", port)
                         : absl::StrCat("[", address.ToString(), "]:", port);
}

}  // namespace ringmx::core
