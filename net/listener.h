// Listening sockets: one SO_REUSEPORT socket per (listener, shard), so the kernel spreads new
// connections across shards with no shared accept queue.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::net {

// The sockets of one listener, one per shard, all bound to the same address.
struct ListenerSockets {
  core::Endpoint bound;  // the address actually bound (port 0 resolved)
  std::vector<int> fds;  // fds[i] belongs to shard i; owned by the caller
};

// Opens `count` listening sockets for `config.address` with SO_REUSEPORT (IPv6 sockets are
// V6ONLY, so "[::]:25" and "0.0.0.0:25" can both be configured). With port 0 the first socket
// picks the port and the others bind to the same one. TCP_NODELAY is set on the listening socket
// so accepted sockets inherit it. Errors name the listener and address (e.g. address in use).
absl::StatusOr<ListenerSockets> OpenListenerSockets(const core::ListenerConfig& config, int count);

// Fills `storage` with `endpoint` (AF_INET or AF_INET6) and returns its length.
socklen_t ToSockaddr(const core::Endpoint& endpoint, sockaddr_storage& storage);

// Where an outbound stream socket connects: an address and its length.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// For an outbound connection (a next hop, a milter): fills `address` with `unix_path` (when
// `is_unix`) or `inet`, and opens an unconnected stream socket of its family, close-on-exec, with
// TCP_NODELAY on TCP. The fd, or an error saying what failed ("socket path too long: PATH",
// "socket: ...").
absl::StatusOr<int> OpenOutboundSocket(bool is_unix, const std::string& unix_path,
                                       const core::Endpoint& inet, SocketAddress& address);

// Fills `out` from a sockaddr_storage returned by getpeername/getsockname. False if unsupported.
bool EndpointFromSockaddr(const void* sockaddr_storage, core::Endpoint& out);

}  // namespace ringmx::net
