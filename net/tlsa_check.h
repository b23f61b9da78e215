// `ringmx tlsa --check`: connect to an SMTP server, optionally upgrade with STARTTLS, and return
// the certificate chain it serves, so configured TLSA records can be compared with reality.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "core/ip.h"

namespace ringmx::net {

struct ServedChain {
  std::string tls_version;
  std::vector<std::string> der;  // leaf first
};

// Blocking, bounded by `timeout` for the whole exchange. `sni` empty: none sent.
absl::StatusOr<ServedChain> FetchServedChain(const core::Endpoint& server, bool starttls,
                                             const std::string& sni, absl::Duration timeout);

}  // namespace ringmx::net
