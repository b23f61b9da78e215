// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1 and 2): what an L4
// balancer sends first on each connection it forwards, naming the client it accepted the
// connection from. Pure: bytes in, a parsed header or a reason out; no sockets, no clock.
//
// Section 9 of DESIGN.md: on a listener configured `proxy_protocol`, net/ feeds the first bytes
// of each connection from a trusted balancer to a ProxyHeaderParser before anything else (before
// the greeting, before a TLS ClientHello); the source it returns is the client for policy, logs
// and the envelope; the bytes after the header go to the transport as usual. The header is
// required on such a listener, never guessed (spec section 2: a receiver must not try to detect
// whether the header is present).
//
// Limits: a v1 line is at most 107 bytes with its CRLF (spec section 2.1); a v2 header is refused
// as soon as its length field says more than kMaxProxyV2PayloadBytes follow the fixed 16 bytes, so
// a parser never holds more than 16 + kMaxProxyV2PayloadBytes bytes.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ip.h"

namespace ringmx::smtp {

// Spec section 2.1: "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n", the longest line.
inline constexpr size_t kMaxProxyV1Bytes = 107;
// The v2 fixed part: 12-byte signature, version/command, family/transport, 16-bit length.
inline constexpr size_t kProxyV2FixedBytes = 16;
// What may follow the v2 fixed part: room for the largest address block (AF_UNIX, 2 x 108 bytes)
// and 4 KiB of TLVs. The length field allows 65535; no balancer we know sends more than a few
// hundred bytes, and a peer that claims more is refused before we buffer it.
inline constexpr size_t kMaxProxyV2PayloadBytes = 216 + 4096;

// Which versions a listener takes (`proxy_protocol` of its configuration, "none" excepted).
enum class ProxyVersions : uint8_t { kV1, kV2, kAny };

// Spec section 2.2, the low nibble of the 13th byte. A v1 header is always kProxy.
enum class ProxyCommand : uint8_t {
  kLocal,  // v2 LOCAL: the balancer's own connection (a health check); use the socket's addresses
  kProxy,  // relayed on behalf of the client the header names
};

// The address family and transport the header declares (v1: TCP4, TCP6, UNKNOWN; v2: the 14th
// byte). Only kTcp4 and kTcp6 carry endpoints we use; for the others the spec lets the receiver
// fall back to the connection's own addresses, which is what we do.
enum class ProxyFamily : uint8_t {
  kUnknown,     // v1 UNKNOWN, v2 0x00 (AF_UNSPEC), and every v2 LOCAL header
  kTcp4,        // v1 TCP4, v2 0x11
  kTcp6,        // v1 TCP6, v2 0x21
  kUdp4,        // v2 0x12
  kUdp6,        // v2 0x22
  kUnixStream,  // v2 0x31
  kUnixDgram,   // v2 0x32
};

// "TCP4", "UNKNOWN", "UNIX-STREAM", ... for logs.
std::string_view ProxyFamilyName(ProxyFamily family);

// Why a header was refused. Each is fatal: the connection must be closed (spec section 2.1: "any
// sequence which does not exactly match the protocol must be discarded").
enum class ProxyError : uint8_t {
  kBadSignature,        // neither "PROXY " (v1) nor the v2 signature, or a version not accepted
  kBadVersion,          // v2: the high nibble of byte 13 is not 2
  kBadCommand,          // v2: the command is neither LOCAL nor PROXY
  kBadFamily,           // v2 PROXY: the 14th byte is none of the seven the spec defines
  kTruncatedAddresses,  // v2 PROXY: the length is shorter than the family's address block
  kBadTlv,              // v2: a TLV runs past the end of the header
  kTooLong,             // v1: no CRLF within 107 bytes; v2: length over kMaxProxyV2PayloadBytes
  kV1BadFields,         // v1: not TCP4, TCP6 or UNKNOWN, or not five fields split by single spaces
  kV1BadAddress,        // v1: an address that is not its family's canonical text
  kV1BadPort,           // v1: a port that is not 0..65535 in decimal without leading zeros
  kV1MissingCrlf,       // v1: a CR not followed by LF, or an LF without CR before it
};

// A short English reason for logs ("bad v2 signature", ...). Never contains the peer's bytes.
std::string_view ProxyErrorText(ProxyError error);

// One v2 TLV (spec section 2.2), as sent. None is interpreted: PP2_TYPE_CRC32C is not verified
// and PP2_TYPE_SSL is not opened; they are checked for well-formedness (each fits in the header)
// and kept for logs. TLVs are walked on a PROXY header of a defined family, after its address
// block. A LOCAL header and a PROXY header of family AF_UNSPEC are discarded whole, unread, as the
// spec says ("discard the protocol block including the family"; "ignore address information"):
// the address block, if any, is of unknown length, so TLVs cannot be found in it.
struct ProxyTlv {
  uint8_t type = 0;
  std::string value;
};

// A complete, valid header.
struct ProxyHeader {
  int version = 1;  // 1 or 2
  ProxyCommand command = ProxyCommand::kProxy;
  ProxyFamily family = ProxyFamily::kUnknown;
  // Set only for a kProxy header of family kTcp4 or kTcp6: the client's address and port, and the
  // address and port the client connected to (the balancer's front end). Otherwise nullopt: use
  // the socket's own addresses. A TCP6 address that is IPv4-mapped comes out as IPv4 (core/ip.h).
  std::optional<core::Endpoint> source;
  std::optional<core::Endpoint> destination;
  std::vector<ProxyTlv> tlvs;  // v2 only, in the order sent
  // Bytes of the connection the header took; what follows is the client's (SMTP or TLS) data.
  size_t header_bytes = 0;
};

// Where a parser is.
enum class ProxyParseState : uint8_t { kNeedMore, kDone, kError };

struct ProxyFeedResult {
  ProxyParseState state = ProxyParseState::kNeedMore;
  // How many bytes at the start of the input given to Feed() belong to the header. Only bytes of
  // the header are ever consumed: on kDone, input.substr(consumed) is the client's first data.
  size_t consumed = 0;
};

// Incremental parser of the header at the start of one connection: feed it the bytes as they
// arrive, in any split, until it says kDone or kError. It buffers at most the header itself
// (kMaxProxyV1Bytes, or kProxyV2FixedBytes + kMaxProxyV2PayloadBytes) and refuses a malformed
// header as soon as a byte shows it (a wrong signature byte is refused at once, without waiting
// for the rest). Shard-local value: owned by one connection, used on its shard, dropped once done.
class ProxyHeaderParser {
 public:
  explicit ProxyHeaderParser(ProxyVersions versions) : versions_(versions) {}

  // Consumes the bytes of `input` that belong to the header (the view is read only during the
  // call). Once kDone or kError, further calls consume nothing and return the same state.
  ProxyFeedResult Feed(std::string_view input);

  ProxyParseState state() const { return state_; }
  // Valid once state() is kDone.
  const ProxyHeader& header() const { return header_; }
  // Valid once state() is kError.
  ProxyError error() const { return error_; }

 private:
  ProxyParseState Fail(ProxyError error);
  // Steps for the byte just appended to `buffer_`.
  ProxyParseState StepV1();
  ProxyParseState StepV2();
  ProxyParseState FinishV1();
  ProxyParseState FinishV2();

  ProxyVersions versions_;
  ProxyParseState state_ = ProxyParseState::kNeedMore;
  int version_ = 0;  // 0 until the first byte chose one
  // The header bytes received so far; never more than the limits above.
  std::string buffer_;
  // v2: the total header size, known once the fixed 16 bytes are in; 0 before.
  size_t v2_total_ = 0;
  ProxyHeader header_;
  ProxyError error_ = ProxyError::kBadSignature;
};

}  // namespace ringmx::smtp
