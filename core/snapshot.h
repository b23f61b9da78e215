// The immutable run-time view of configuration (DESIGN.md section 2). Built completely on the
// main thread, then published to every shard, which swaps its pointer between completion batches.
// A session keeps the Snapshot it started with until it ends.
#pragma once

#include <stdint.h>

#include <atomic>
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

  // How many Snapshots exist in the process right now (the published one and every older one a
  // session or a delivery still holds). A reload builds one and frees the previous once its last
  // user has ended; `stats` shows the count (`config_snapshots_live`), the reload tests check that
  // it returns to 1. Changed only when a Snapshot is made or freed (never per connection).
  static uint64_t LiveCount() { return live_count_.load(std::memory_order_relaxed); }

  // `recipients` must be the table of config.policy.recipients (nullptr if it is "").
  static std::shared_ptr<const Snapshot> Build(
      Config config, uint64_t generation,
      std::shared_ptr<const RecipientTable> recipients = nullptr,
      std::shared_ptr<const PasswdTable> passwd = nullptr);

 private:
  // Counts its Snapshot in live_count_ from construction to destruction.
  struct LiveToken {
    LiveToken() { live_count_.fetch_add(1, std::memory_order_relaxed); }
    LiveToken(const LiveToken&) : LiveToken() {}
    LiveToken& operator=(const LiveToken&) { return *this; }
    ~LiveToken() { live_count_.fetch_sub(1, std::memory_order_relaxed); }
  };
  static std::atomic<uint64_t> live_count_;
  LiveToken live_token_;
};

}  // namespace ringmx::core
