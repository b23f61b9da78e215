// The PROXY protocol header ringmx-bench sends first on each connection (--proxy v1|v2), as a
// balancer would (HAProxy's send-proxy and send-proxy-v2): TCP over IPv4, the given client
// address and port, connected to `destination`. Bench-only; the server's parser is
// smtp/proxy_header.h.
#pragma once

#include <stdint.h>

#include <string>

namespace ringmx::bench {

// `version` 1 ("PROXY TCP4 a.b.c.d e.f.g.h sport dport\r\n") or 2 (the binary header, command
// PROXY, family TCP over IPv4, no TLVs). Addresses are host-order IPv4 (0xC0000201 = 192.0.2.1).
std::string ProxyHeaderBytes(int version, uint32_t source, uint16_t source_port,
                             uint32_t destination, uint16_t destination_port);

}  // namespace ringmx::bench
