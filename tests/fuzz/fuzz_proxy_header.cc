// Fuzz target: the PROXY protocol header parser (smtp/proxy_header.h), the first bytes of a
// connection on a `proxy_protocol` listener. Never a crash; every promise of the header holds:
//  - the outcome is the same fed whole or in pieces of any size;
//  - only header bytes are consumed: on kDone exactly `header_bytes`, which is within the limits
//    (v1: a line of at most 107 bytes ending in CRLF; v2: 16 + length, length within the cap);
//  - endpoints are set only on a PROXY header of family TCP4/TCP6 and match that family (a TCP6
//    address may be IPv4-mapped and come out as IPv4); v2 TLVs fill the header exactly;
//  - a v1 TCP4/TCP6 header printed back in the spec's form parses to the same endpoints;
//  - once done or failed, the parser consumes nothing more.
//
// Input: [versions (mod 3: v1, v2, any)][piece size (0: whole)][connection bytes].
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/strings.h"
#include "smtp/proxy_header.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using smtp::ProxyFamily;
using smtp::ProxyHeader;
using smtp::ProxyHeaderParser;
using smtp::ProxyParseState;

bool SameEndpoint(const std::optional<core::Endpoint>& a, const std::optional<core::Endpoint>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->address == b->address && a->port == b->port);
}

bool SameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  if (a.tlvs.size() != b.tlvs.size()) return false;
  for (size_t i = 0; i < a.tlvs.size(); ++i) {
    if (a.tlvs[i].type != b.tlvs[i].type || a.tlvs[i].value != b.tlvs[i].value) return false;
  }
  return a.version == b.version && a.command == b.command && a.family == b.family &&
         SameEndpoint(a.source, b.source) && SameEndpoint(a.destination, b.destination) &&
         a.header_bytes == b.header_bytes;
}

void CheckHeader(const ProxyHeader& h, std::string_view data) {
  RINGMX_CHECK(h.header_bytes <= data.size());
  const std::string_view bytes = data.substr(0, h.header_bytes);
  const bool tcp = h.family == ProxyFamily::kTcp4 || h.family == ProxyFamily::kTcp6;
  RINGMX_CHECK(h.source.has_value() == (tcp && h.command == smtp::ProxyCommand::kProxy));
  RINGMX_CHECK(h.destination.has_value() == h.source.has_value());
  if (h.family == ProxyFamily::kTcp4) {
    RINGMX_CHECK(h.source->address.is_v4() && h.destination->address.is_v4());
  }
  if (h.version == 1) {
    RINGMX_CHECK(h.header_bytes <= smtp::kMaxProxyV1Bytes);
    RINGMX_CHECK(bytes.starts_with("PROXY ") && bytes.ends_with("\r\n"));
    RINGMX_CHECK(bytes.find('\n') == bytes.size() - 1);
    RINGMX_CHECK(h.tlvs.empty());
    RINGMX_CHECK(h.command == smtp::ProxyCommand::kProxy);
    if (tcp && !(h.family == ProxyFamily::kTcp6 &&
                 (h.source->address.is_v4() || h.destination->address.is_v4()))) {
      // Printed back in the spec's form, the line parses to the same endpoints.
      const std::string line =
          absl::StrCat("PROXY ", core::Av(smtp::ProxyFamilyName(h.family)), " ",
                       h.source->address.ToString(), " ", h.destination->address.ToString(), " ",
                       h.source->port, " ", h.destination->port, "\r\n");
      ProxyHeaderParser again(smtp::ProxyVersions::kV1);
      RINGMX_CHECK(again.Feed(line).state == ProxyParseState::kDone);
      RINGMX_CHECK(SameEndpoint(again.header().source, h.source));
      RINGMX_CHECK(SameEndpoint(again.header().destination, h.destination));
    }
  } else {
    RINGMX_CHECK(h.version == 2);
    RINGMX_CHECK(h.header_bytes >= smtp::kProxyV2FixedBytes);
    RINGMX_CHECK(h.header_bytes <= smtp::kProxyV2FixedBytes + smtp::kMaxProxyV2PayloadBytes);
    const size_t length = (static_cast<uint8_t>(bytes[14]) << 8) | static_cast<uint8_t>(bytes[15]);
    RINGMX_CHECK(h.header_bytes == smtp::kProxyV2FixedBytes + length);
    if (!h.tlvs.empty()) {
      size_t tlv_bytes = 0;
      for (const smtp::ProxyTlv& tlv : h.tlvs) tlv_bytes += 3 + tlv.value.size();
      RINGMX_CHECK(tlv_bytes <= length);
      // The TLVs end the header exactly (the address block is before them).
      const smtp::ProxyTlv& last = h.tlvs.back();
      RINGMX_CHECK(bytes.ends_with(last.value));
    }
  }
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;  // NOLINT: a fuzz entry point, not a header
  fuzz::FuzzInput in(data, size);
  const auto versions = static_cast<smtp::ProxyVersions>(in.Byte() % 3);
  const size_t piece = in.Byte();
  const std::string_view bytes = in.Rest();

  smtp::ProxyHeaderParser whole(versions);
  const smtp::ProxyFeedResult w = whole.Feed(bytes);
  RINGMX_CHECK(w.consumed <= bytes.size());
  RINGMX_CHECK(w.state == whole.state());
  if (w.state == smtp::ProxyParseState::kNeedMore) RINGMX_CHECK(w.consumed == bytes.size());
  if (w.state == smtp::ProxyParseState::kDone) {
    RINGMX_CHECK(w.consumed == whole.header().header_bytes);
    fuzz::CheckHeader(whole.header(), bytes);
  }
  if (w.state == smtp::ProxyParseState::kError) {
    RINGMX_CHECK(!smtp::ProxyErrorText(whole.error()).empty());
  }
  // Once finished, nothing more is taken.
  if (w.state != smtp::ProxyParseState::kNeedMore) {
    const smtp::ProxyFeedResult after = whole.Feed(bytes);
    RINGMX_CHECK(after.state == w.state && after.consumed == 0);
  }

  // The same bytes in pieces of `piece` bytes: the same outcome.
  if (piece == 0) return 0;
  smtp::ProxyHeaderParser split(versions);
  size_t consumed = 0;
  smtp::ProxyFeedResult r;
  for (size_t at = 0; at < bytes.size() && r.state == smtp::ProxyParseState::kNeedMore;
       at += piece) {
    const std::string_view chunk = bytes.substr(at, piece);
    r = split.Feed(chunk);
    RINGMX_CHECK(r.consumed <= chunk.size());
    consumed += r.consumed;
  }
  RINGMX_CHECK(r.state == w.state);
  if (r.state == smtp::ProxyParseState::kDone) {
    RINGMX_CHECK(consumed == w.consumed);
    RINGMX_CHECK(fuzz::SameHeader(split.header(), whole.header()));
  }
  if (r.state == smtp::ProxyParseState::kError) RINGMX_CHECK(split.error() == whole.error());
  return 0;
}
