// Per-network TLS floors (`[[policy.tls_floor]]`, issue 11 item 5): which minimum TLS version a
// client gets. The client address is known before the handshake, so a connection chooses its
// SSL_CTX (TlsContext::ContextFor) before the engine exists. Pure functions, no OpenSSL: tested
// from tables of facts.
#pragma once

#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::tls {

// The index into `floors` of the first floor one of whose networks contains `client`; -1 if none
// does (the client keeps its listener's min_tls).
int FindTlsFloor(const std::vector<core::TlsFloorConfig>& floors, const core::IpAddress& client);

// The min_tls ("1.0" .. "1.3") that applies to `client` on a listener whose own min_tls is
// `listener_min_tls`: the first matching floor's, else the listener's. The view points into
// `floors` or is `listener_min_tls`: it lives as long as they do.
std::string_view EffectiveMinTls(const std::vector<core::TlsFloorConfig>& floors,
                                 const core::IpAddress& client, std::string_view listener_min_tls);

}  // namespace ringmx::tls
