// The immutable run-time view of configuration (DESIGN.md section 2). Built completely on the
// main thread, then published to every shard, which swaps its pointer between completion batches.
// A session keeps the Snapshot it started with until it ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"

#include "core/config.h"
#include "core/passwd_file.h"
#include "core/recipient_table.h"
#include "core/route_table.h"

namespace ringmx::core {

// Immutable; safe to share.
struct Snapshot {
  Config config;
  // config.policy.local_domains, lower-case, for O(1) lookups.
  absl::flat_hash_set<std::string> local_domains;
  // config.policy.relay_networks as text ("10.0.0.0/8"), same order: the reasons policy/ gives.
  std::vector<std::string> relay_network_names;
  // config.policy.relay_client_certs (lower-case hex, no separators), for O(1) lookups.
  absl::flat_hash_set<std::string> relay_client_certs;
  // The table of config.policy.recipients, loaded by whoever builds the Snapshot (net/runtime.cc);
  // nullptr when the key is not set (then every user of a local domain is valid).
  std::shared_ptr<const RecipientTable> recipients;
  // The table of config.auth.passwd (AUTH's users), loaded like `recipients`; nullptr if none.
  std::shared_ptr<const PasswdTable> passwd;
  // config.routes by recipient domain (docs/delivery.md), for the session (RCPT) and delivery.
  RouteTable routes;
  uint64_t generation = 0;

  // `recipients` must be the table of config.policy.recipients (nullptr if it is "").
  static std::shared_ptr<const Snapshot> Build(
      Config config, uint64_t generation,
      std::shared_ptr<const RecipientTable> recipients = nullptr,
      std::shared_ptr<const PasswdTable> passwd = nullptr);
};

}  // namespace ringmx::core
