#include "smtp/proxy_header.h"

#include <algorithm>
#include <optional>

namespace ringmx::smtp {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
// Spec section 2.2: the 12-byte v2 signature (it holds a NUL, so never a C string).
constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
// Spec section 2.2: the address block of each family (2 x address + 2 x port, or 2 x 108 bytes).
constexpr size_t kInet4Block = 12;
constexpr size_t kInet6Block = 36;
constexpr size_t kUnixBlock = 216;

uint16_t Load16(const std::string& b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) |
                               static_cast<uint8_t>(b[at + 1]));
}

// The 14th byte of a v2 PROXY header: its family and the size of its address block. nullopt for a
// value the spec does not define (which it says must be rejected).
struct V2Family {
  ProxyFamily family;
  size_t block;
};
std::optional<V2Family> DecodeV2Family(uint8_t byte) {
  switch (byte) {
    case 0x00:
      return V2Family{ProxyFamily::kUnknown, 0};
    case 0x11:
      return V2Family{ProxyFamily::kTcp4, kInet4Block};
    case 0x12:
      return V2Family{ProxyFamily::kUdp4, kInet4Block};
    case 0x21:
      return V2Family{ProxyFamily::kTcp6, kInet6Block};
    case 0x22:
      return V2Family{ProxyFamily::kUdp6, kInet6Block};
    case 0x31:
      return V2Family{ProxyFamily::kUnixStream, kUnixBlock};
    case 0x32:
      return V2Family{ProxyFamily::kUnixDgram, kUnixBlock};
    default:
      return std::nullopt;
  }
}

// Spec section 2.1: a decimal number without leading zeros ("0" itself is fine), at most
// `max_value`. absl::SimpleAtoi would take signs, spaces and leading zeros.
std::optional<uint32_t> ParseV1Number(std::string_view text, uint32_t max_value) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > max_value) return std::nullopt;
  return value;
}

// Spec section 2.1: exactly four decimal numbers 0..255 separated by single dots, no leading
// zeros (which some parsers read as octal).
std::optional<core::IpAddress> ParseV1Inet4(std::string_view text) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) {
    const size_t dot = text.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return std::nullopt;
    const std::optional<uint32_t> part = ParseV1Number(text.substr(0, dot), 255);
    if (!part) return std::nullopt;
    bytes[i] = static_cast<uint8_t>(*part);
    text.remove_prefix(i < 3 ? dot + 1 : text.size());
  }
  return core::IpAddress::V4(bytes);
}

// Spec section 2.1: groups of hex digits and colons with at most one "::" (RFC 4291 text), 128
// bits, checked by core's parser. The embedded dotted-quad form ("::ffff:192.0.2.1") is taken as
// well: HAProxy prints addresses with inet_ntop, which writes IPv4-mapped and IPv4-compatible
// addresses that way, and parses them with inet_pton. No zone ("%eth0"), no brackets.
std::optional<core::IpAddress> ParseV1Inet6(std::string_view text) {
  if (text.find(':') == std::string_view::npos) return std::nullopt;
  for (char c : text) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != ':' && c != '.') return std::nullopt;
  }
  return core::IpAddress::Parse(text);
}

}  // namespace

std::string_view ProxyFamilyName(ProxyFamily family) {
  switch (family) {
    case ProxyFamily::kUnknown:
      return "UNKNOWN";
    case ProxyFamily::kTcp4:
      return "TCP4";
    case ProxyFamily::kTcp6:
      return "TCP6";
    case ProxyFamily::kUdp4:
      return "UDP4";
    case ProxyFamily::kUdp6:
      return "UDP6";
    case ProxyFamily::kUnixStream:
      return "UNIX-STREAM";
    case ProxyFamily::kUnixDgram:
      return "UNIX-DGRAM";
  }
  return "UNKNOWN";
}

std::string_view ProxyErrorText(ProxyError error) {
  switch (error) {
    case ProxyError::kBadSignature:
      return "no PROXY header of an accepted version (bad signature)";
    case ProxyError::kBadVersion:
      return "bad v2 version";
    case ProxyError::kBadCommand:
      return "bad v2 command";
    case ProxyError::kBadFamily:
      return "bad v2 address family";
    case ProxyError::kTruncatedAddresses:
      return "v2 address block shorter than its family needs";
    case ProxyError::kBadTlv:
      return "v2 TLV runs past the end of the header";
    case ProxyError::kTooLong:
      return "header over the size limit";
    case ProxyError::kV1BadFields:
      return "bad v1 protocol or fields";
    case ProxyError::kV1BadAddress:
      return "bad v1 address";
    case ProxyError::kV1BadPort:
      return "bad v1 port";
    case ProxyError::kV1MissingCrlf:
      return "v1 line not ended by CRLF";
  }
  return "bad header";
}

ProxyFeedResult ProxyHeaderParser::Feed(std::string_view input) {
  size_t used = 0;
  while (state_ == ProxyParseState::kNeedMore && used < input.size()) {
    if (version_ == 0) {
      // Spec section 2.2 (detecting the version): 'P' starts v1, CR starts v2; a v1 line can
      // never start with CR, so one byte decides.
      const char first = input[used];
      if (first == kV1Prefix[0] && versions_ != ProxyVersions::kV2) {
        version_ = 1;
        buffer_.reserve(kMaxProxyV1Bytes);
      } else if (first == static_cast<char>(kV2Signature[0]) && versions_ != ProxyVersions::kV1) {
        version_ = 2;
        buffer_.reserve(kProxyV2FixedBytes);
      } else {
        state_ = Fail(ProxyError::kBadSignature);
        break;
      }
    }
    if (version_ == 2 && v2_total_ != 0) {
      // The length is known: take what is missing in one piece.
      const size_t n = std::min(v2_total_ - buffer_.size(), input.size() - used);
      buffer_.append(input.substr(used, n));
      used += n;
      if (buffer_.size() == v2_total_) state_ = FinishV2();
      continue;
    }
    buffer_.push_back(input[used++]);
    state_ = version_ == 1 ? StepV1() : StepV2();
  }
  if (state_ == ProxyParseState::kDone && !buffer_.empty()) {
    buffer_.clear();  // the header is parsed; keep no copy of it
    buffer_.shrink_to_fit();
  }
  return {state_, used};
}

ProxyParseState ProxyHeaderParser::Fail(ProxyError error) {
  error_ = error;
  buffer_.clear();
  buffer_.shrink_to_fit();
  return ProxyParseState::kError;
}

ProxyParseState ProxyHeaderParser::StepV1() {
  const size_t i = buffer_.size() - 1;
  const char c = buffer_[i];
  if (i < kV1Prefix.size()) {
    return c == kV1Prefix[i] ? ProxyParseState::kNeedMore : Fail(ProxyError::kBadSignature);
  }
  const char prev = buffer_[i - 1];
  // Spec section 2.1: "The receiver must not tolerate a single CR or LF character to end the
  // line when a complete CRLF sequence is expected."
  if (prev == '\r' && c != '\n') return Fail(ProxyError::kV1MissingCrlf);
  if (c == '\n') return prev == '\r' ? FinishV1() : Fail(ProxyError::kV1MissingCrlf);
  // Spec section 2.1: no CRLF within the first 107 characters makes the line invalid.
  if (buffer_.size() >= kMaxProxyV1Bytes) return Fail(ProxyError::kTooLong);
  return ProxyParseState::kNeedMore;
}

ProxyParseState ProxyHeaderParser::FinishV1() {
  std::string_view line(buffer_);
  line.remove_prefix(kV1Prefix.size());
  line.remove_suffix(2);  // CRLF
  header_.version = 1;
  header_.command = ProxyCommand::kProxy;
  header_.header_bytes = buffer_.size();
  // Spec section 2.1: after "UNKNOWN" the receiver must ignore anything before the CRLF.
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) {
    header_.family = ProxyFamily::kUnknown;
    return ProxyParseState::kDone;
  }
  std::string_view fields[5];
  for (int i = 0; i < 5; ++i) {
    const size_t space = line.find(' ');
    if ((i < 4) != (space != std::string_view::npos)) return Fail(ProxyError::kV1BadFields);
    fields[i] = line.substr(0, space);
    if (fields[i].empty()) return Fail(ProxyError::kV1BadFields);
    line.remove_prefix(i < 4 ? space + 1 : line.size());
  }
  std::optional<core::IpAddress> source;
  std::optional<core::IpAddress> destination;
  if (fields[0] == "TCP4") {
    header_.family = ProxyFamily::kTcp4;
    source = ParseV1Inet4(fields[1]);
    destination = ParseV1Inet4(fields[2]);
  } else if (fields[0] == "TCP6") {
    header_.family = ProxyFamily::kTcp6;
    source = ParseV1Inet6(fields[1]);
    destination = ParseV1Inet6(fields[2]);
  } else {
    return Fail(ProxyError::kV1BadFields);
  }
  if (!source || !destination) return Fail(ProxyError::kV1BadAddress);
  const std::optional<uint32_t> source_port = ParseV1Number(fields[3], 65535);
  const std::optional<uint32_t> destination_port = ParseV1Number(fields[4], 65535);
  if (!source_port || !destination_port) return Fail(ProxyError::kV1BadPort);
  header_.source = core::Endpoint{*source, static_cast<uint16_t>(*source_port)};
  header_.destination = core::Endpoint{*destination, static_cast<uint16_t>(*destination_port)};
  return ProxyParseState::kDone;
}

ProxyParseState ProxyHeaderParser::StepV2() {
  const size_t i = buffer_.size() - 1;
  const uint8_t c = static_cast<uint8_t>(buffer_[i]);
  if (i < sizeof(kV2Signature)) {
    return c == kV2Signature[i] ? ProxyParseState::kNeedMore : Fail(ProxyError::kBadSignature);
  }
  if (i == 12) {
    if ((c >> 4) != 2) return Fail(ProxyError::kBadVersion);
    if ((c & 0x0F) > 1) return Fail(ProxyError::kBadCommand);
    return ProxyParseState::kNeedMore;
  }
  const bool is_proxy = (static_cast<uint8_t>(buffer_[12]) & 0x0F) == 1;
  if (i == 13) {
    // Spec section 2.2: a LOCAL header's family is ignored.
    if (is_proxy && !DecodeV2Family(c)) return Fail(ProxyError::kBadFamily);
    return ProxyParseState::kNeedMore;
  }
  if (i == 14) return ProxyParseState::kNeedMore;
  // i == 15: the length is complete.
  const size_t length = Load16(buffer_, 14);
  if (length > kMaxProxyV2PayloadBytes) return Fail(ProxyError::kTooLong);
  if (is_proxy && length < DecodeV2Family(static_cast<uint8_t>(buffer_[13]))->block) {
    return Fail(ProxyError::kTruncatedAddresses);
  }
  v2_total_ = kProxyV2FixedBytes + length;
  buffer_.reserve(v2_total_);
  return buffer_.size() == v2_total_ ? FinishV2() : ProxyParseState::kNeedMore;
}

ProxyParseState ProxyHeaderParser::FinishV2() {
  header_.version = 2;
  header_.header_bytes = v2_total_;
  header_.family = ProxyFamily::kUnknown;
  if ((static_cast<uint8_t>(buffer_[12]) & 0x0F) == 0) {
    header_.command = ProxyCommand::kLocal;
    return ProxyParseState::kDone;
  }
  header_.command = ProxyCommand::kProxy;
  const V2Family family = *DecodeV2Family(static_cast<uint8_t>(buffer_[13]));
  header_.family = family.family;
  if (family.family == ProxyFamily::kUnknown) return ProxyParseState::kDone;
  const auto* block = reinterpret_cast<const uint8_t*>(buffer_.data()) + kProxyV2FixedBytes;
  if (family.family == ProxyFamily::kTcp4) {
    header_.source = core::Endpoint{core::IpAddress::V4(block), Load16(buffer_, 16 + 8)};
    header_.destination = core::Endpoint{core::IpAddress::V4(block + 4), Load16(buffer_, 16 + 10)};
  } else if (family.family == ProxyFamily::kTcp6) {
    header_.source = core::Endpoint{core::IpAddress::V6(block), Load16(buffer_, 16 + 32)};
    header_.destination = core::Endpoint{core::IpAddress::V6(block + 16), Load16(buffer_, 16 + 34)};
  }
  // TLVs: type (1 byte), length (2 bytes, big-endian), value.
  size_t at = kProxyV2FixedBytes + family.block;
  while (at < v2_total_) {
    if (v2_total_ - at < 3) return Fail(ProxyError::kBadTlv);
    const size_t length = Load16(buffer_, at + 1);
    if (v2_total_ - at - 3 < length) return Fail(ProxyError::kBadTlv);
    header_.tlvs.push_back(
        ProxyTlv{static_cast<uint8_t>(buffer_[at]), buffer_.substr(at + 3, length)});
    at += 3 + length;
  }
  return ProxyParseState::kDone;
}

}  // namespace ringmx::smtp
