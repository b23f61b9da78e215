// The control socket's listening end (DESIGN.md section 8): a Unix socket only its owner may use.
// Opening it refuses a path an attacker could have prepared: a symbolic link, something that is
// not a socket, a socket or a directory owned by another user, a directory others may write into
// without the sticky bit. A stale socket of ours from an earlier run (nobody answers on it) is
// replaced; a live one (another server answers) is an error.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace ringmx::net {

// Binds and listens on `path` (mode 0600) after the checks above. Errors name the config key
// "control.socket" and the path, e.g.
//   control.socket: /run/x/control.sock is a symbolic link; refusing to use it
//   control.socket: directory /run/x is owned by nobody (uid 65534), not by this user,
//     ringmx (uid 101), or root
// Returns the listening fd (SOCK_CLOEXEC).
absl::StatusOr<int> ListenControlSocket(const std::string& path);

}  // namespace ringmx::net
