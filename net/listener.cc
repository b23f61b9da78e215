#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

#include "core/status.h"

namespace ringmx::net {

socklen_t ToSockaddr(const core::Endpoint& endpoint, sockaddr_storage& storage) {
  memset(&storage, 0, sizeof(storage));
  if (endpoint.address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(endpoint.port);
    memcpy(&sin->sin_addr, endpoint.address.bytes().data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(endpoint.port);
  memcpy(&sin6->sin6_addr, endpoint.address.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

absl::StatusOr<int> OpenOutboundSocket(bool is_unix, const std::string& unix_path,
                                       const core::Endpoint& inet, SocketAddress& address) {
  int family = AF_UNIX;
  if (is_unix) {
    memset(&address.storage, 0, sizeof(address.storage));
    auto* sun = reinterpret_cast<sockaddr_un*>(&address.storage);
    sun->sun_family = AF_UNIX;
    if (unix_path.size() >= sizeof(sun->sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", unix_path));
    }
    memcpy(sun->sun_path, unix_path.data(), unix_path.size());
    address.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + unix_path.size() + 1);
  } else {
    address.length = ToSockaddr(inet, address.storage);
    family = address.storage.ss_family;
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  if (!is_unix) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

namespace {

// With `probe`, binds without SO_REUSEPORT and does not listen: the bind fails with EADDRINUSE if
// anything (another ringmx included) already listens on the address, which SO_REUSEPORT alone
// would silently allow, splitting connections between two servers.
absl::StatusOr<int> OpenOne(const core::ListenerConfig& config, const core::Endpoint& endpoint,
                            bool probe = false) {
  const std::string what = absl::StrCat("listener \"", config.name, "\" ", endpoint.ToString());
  const int family = endpoint.address.is_v4() ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::ErrnoStatus(errno, absl::StrCat("socket for ", what));
  const int one = 1;
  auto fail = [&](const char* op) {
    const int err = errno;
    close(fd);
    return core::ErrnoStatus(err, absl::StrCat(op, " for ", what));
  };
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) return fail("SO_REUSEADDR");
  if (!probe && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    return fail("SO_REUSEPORT");
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) return fail("TCP_NODELAY");
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
    return fail("IPV6_V6ONLY");
  }
  sockaddr_storage storage;
  socklen_t len = ToSockaddr(endpoint, storage);
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), len) < 0) return fail("bind");
  if (!probe && listen(fd, 4096) < 0) return fail("listen");
  return fd;
}

}  // namespace

bool EndpointFromSockaddr(const void* sockaddr_storage_ptr, core::Endpoint& out) {
  const auto* storage = static_cast<const sockaddr_storage*>(sockaddr_storage_ptr);
  if (storage->ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(storage);
    out.address = core::IpAddress::V4(reinterpret_cast<const uint8_t*>(&sin->sin_addr));
    out.port = ntohs(sin->sin_port);
    return true;
  }
  if (storage->ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(storage);
    out.address = core::IpAddress::V6(reinterpret_cast<const uint8_t*>(&sin6->sin6_addr));
    out.port = ntohs(sin6->sin6_port);
    return true;
  }
  return false;
}

absl::StatusOr<ListenerSockets> OpenListenerSockets(const core::ListenerConfig& config, int count) {
  ListenerSockets sockets;
  sockets.bound = config.address;
  if (sockets.bound.port != 0) {
    absl::StatusOr<int> probe = OpenOne(config, sockets.bound, /*probe=*/true);
    if (!probe.ok()) return probe.status();
    close(*probe);
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<int> fd = OpenOne(config, sockets.bound);
    if (!fd.ok()) {
      for (int open_fd : sockets.fds) close(open_fd);
      return fd.status();
    }
    sockets.fds.push_back(*fd);
    if (i == 0 && sockets.bound.port == 0) {
      sockaddr_storage storage;
      socklen_t len = sizeof(storage);
      if (getsockname(*fd, reinterpret_cast<sockaddr*>(&storage), &len) < 0) {
        const int err = errno;
        close(*fd);
        return core::ErrnoStatus(err, "getsockname");
      }
      core::Endpoint bound;
      EndpointFromSockaddr(&storage, bound);
      sockets.bound.port = bound.port;
    }
  }
  return sockets;
}

}  // namespace ringmx::net
