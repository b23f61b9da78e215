// Connection limits (`[limits]`): how many sessions a shard holds in total and per client address,
// and how many new connections per client address per minute it takes. Pure: the time is passed
// in, nothing here reads a clock or touches a socket.
//
// Each shard owns one ConnectionLimiter and enforces its share of each limit, ceil(limit /
// shards): the kernel's SO_REUSEPORT hash spreads a client's connections evenly over the shards,
// so the shares add up to the configured limit with no lock and no message between shards
// (docs/architecture.md, "Connection limits", says why and what precision that gives).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::policy {

enum class LimitVerdict {
  kAdmit,
  kTooManySessions,    // limits.max_sessions
  kTooManyFromClient,  // limits.max_sessions_per_client
  kRateExceeded,       // limits.max_connection_rate_per_client
};

// The config key of the limit a verdict names ("max_sessions", ...); "" for kAdmit.
std::string_view LimitKey(LimitVerdict verdict);

// This shard's share of a configured limit: ceil(limit / shards); 0 (no limit) stays 0.
uint32_t ShardShare(int limit, uint32_t shards);

// True if the per-client limits do not apply to `client` (it is in limits.exempt).
bool LimitsExempt(const core::LimitsConfig& limits, const core::IpAddress& client);

// Counts the sessions and recent connections of one shard. Shard-local; owned by the shard and
// kept across reloads (the limits it enforces come with each call, so a reload changes them at
// once for new connections while the counts stay right).
//
// Memory: one small entry per client address that has a session on this shard or connected in
// the last two minutes. Entries of addresses with no session are dropped once their connections
// are older than that (Expire), and never more than `max_idle_entries` of them are kept: past
// that the oldest are dropped at once, which forgets those addresses' recent connection counts
// (the rate limit errs on the side of letting a client in, never of refusing one wrongly).
class ConnectionLimiter {
 public:
  static constexpr size_t kDefaultMaxIdleEntries = 65536;
  // The rate limit's unit: connections per minute.
  static constexpr absl::Duration kRateWindow = absl::Minutes(1);

  explicit ConnectionLimiter(size_t max_idle_entries = kDefaultMaxIdleEntries);

  // A new connection from `client` at `now`, on one of `shards` shards (at least 1). Counts the
  // attempt for the rate (whatever the verdict, as Postfix counts connection attempts) and decides
  // against this shard's share of each limit, in this order: max_sessions (every client),
  // max_sessions_per_client and max_connection_rate_per_client (not for clients in
  // limits.exempt). kAdmit also counts the session: the caller must call Release(client) exactly
  // once when it ends. Any other verdict counts no session; the caller refuses the connection.
  LimitVerdict Admit(const core::LimitsConfig& limits, uint32_t shards,
                     const core::IpAddress& client, absl::Time now);

  // A session Admit() let in has ended.
  void Release(const core::IpAddress& client);

  // Drops the entries of addresses with no session and no connection in the current or previous
  // minute. Does the work at most once per minute, so it can be called at every tick.
  void Expire(absl::Time now);

  // Sessions of this shard (admitted, not released).
  uint32_t sessions() const { return sessions_; }
  // Sessions of `client` on this shard.
  uint32_t SessionsOf(const core::IpAddress& client) const;
  // Addresses tracked (for tests of the memory bound).
  size_t entries() const { return entries_.size(); }

 private:
  // Two-bucket sliding window for the rate: `current` connections in minute `window`, `previous`
  // in the minute before. The rate at a time t in minute `window` is estimated as current +
  // previous * (the part of minute `window` not yet passed), which is what a minute-long sliding
  // window holds when the previous minute's connections were evenly spread.
  struct Entry {
    uint32_t sessions = 0;
    uint32_t current = 0;
    uint32_t previous = 0;
    int64_t window = 0;
  };

  static int64_t WindowOf(absl::Time now);
  // Moves `entry`'s buckets to minute `window`.
  static void Roll(Entry& entry, int64_t window);
  // Drops idle entries (no session) last seen before minute `keep_from`.
  void DropIdle(int64_t keep_from);

  const size_t max_idle_entries_;
  absl::flat_hash_map<core::IpAddress, Entry> entries_;
  uint32_t sessions_ = 0;        // sum of entries_[*].sessions
  size_t active_entries_ = 0;    // entries with sessions > 0
  int64_t expired_window_ = -1;  // the minute Expire() last did its work in
};

}  // namespace ringmx::policy
