// A delivery next hop as the configuration writes it ([[route]] next_hop, [delivery]
// bounce_next_hop; docs/delivery.md): "lmtp:127.0.0.1:24", "lmtp:unix:/run/dovecot/lmtp",
// "smtp:[10.0.0.5]:25". ringmx is the gateway in front of a site's own servers (DESIGN.md section
// 6a): a hop is an IP address or a Unix socket, never a name to look up (no MX, no A records).
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

#include "core/ip.h"

namespace ringmx::core {

enum class HopProtocol { kLmtp, kSmtp };

// Immutable value; safe to share.
struct NextHop {
  HopProtocol protocol = HopProtocol::kSmtp;
  // true: `unix_path` is set (LMTP only); false: `inet` is set (port never 0).
  bool is_unix = false;
  Endpoint inet;
  std::string unix_path;

  // Parses one hop. Accepted forms (the protocol name is lower-case):
  //   lmtp:ADDRESS:PORT      lmtp:127.0.0.1:24, lmtp:[127.0.0.1]:24, lmtp:[::1]:24 (port required)
  //   lmtp:unix:PATH         lmtp:unix:/run/dovecot/lmtp (a relative PATH is kept as written; the
  //                          config loader resolves it against the file's directory)
  //   smtp:[ADDRESS]         smtp:[10.0.0.5] (port 25), smtp:[2001:db8::5]:2525
  // SMTP addresses need the brackets, as in Postfix, where brackets mean "no MX lookup". Host
  // names are refused with a message saying that this version does no lookups; so are port 0 and
  // the unspecified addresses (0.0.0.0, ::). kInvalidArgument with a message that does not repeat
  // the input's key (the caller prefixes it).
  static absl::StatusOr<NextHop> Parse(std::string_view text);

  // The canonical text, also the hop's name in logs and in the hop-down tracker:
  // "lmtp:127.0.0.1:24", "lmtp:[::1]:24", "lmtp:unix:/run/dovecot/lmtp", "smtp:[10.0.0.5]:25",
  // "smtp:[2001:db8::5]:2525". Parse(ToString()) gives the same hop.
  std::string ToString() const;

  friend bool operator==(const NextHop& a, const NextHop& b) {
    return a.protocol == b.protocol && a.is_unix == b.is_unix && a.unix_path == b.unix_path &&
           (a.is_unix || (a.inet.address == b.inet.address && a.inet.port == b.inet.port));
  }
};

}  // namespace ringmx::core
