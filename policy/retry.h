// Delivery retries (docs/delivery.md), pure: the backoff schedule of a deferred recipient and the
// per-shard "hop down" tracker. Time is always passed in; nothing here reads a clock. Used by the
// delivery driver (net/delivery.h).
#pragma once

#include <stddef.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

#include "core/config.h"

namespace ringmx::policy {

// What to do with a recipient whose delivery attempt just failed temporarily (4xx, timeout,
// refused connection).
struct RetryDecision {
  // true: the lifetime is over; the recipient fails permanently and a DSN is due.
  bool expired = false;
  // When to try again (meaningful only when !expired).
  absl::Time next_attempt = absl::InfinitePast();
};

// The exponential backoff of Postfix's queue manager: after the n-th failed attempt wait
// retry_first * 2^(n-1), at most retry_max (defaults 300, 600, 1200, 2400, 4000, 4000, ... s); a
// recipient still undelivered max_lifetime after its message arrived fails. No jitter: the same
// inputs always give the same answer. Immutable value; safe to share.
class RetrySchedule {
 public:
  explicit RetrySchedule(const core::DeliveryConfig& delivery)
      : first_(delivery.retry_first), max_(delivery.retry_max), lifetime_(delivery.max_lifetime) {}
  RetrySchedule(absl::Duration first, absl::Duration max, absl::Duration lifetime)
      : first_(first), max_(max), lifetime_(lifetime) {}

  // The wait after the `failed_attempts`-th failure (1 for the first); <= 0 is taken as 1.
  absl::Duration Backoff(int failed_attempts) const;

  // After the `failed_attempts`-th failure at `now` of a message that arrived at `arrival`:
  // expired once now >= arrival + max_lifetime (Postfix also counts from arrival). Otherwise the
  // next attempt is now + Backoff(failed_attempts), but never later than the end of the lifetime,
  // so that the last try happens at the deadline and the DSN goes out on time.
  RetryDecision AfterFailure(int failed_attempts, absl::Time arrival, absl::Time now) const;

 private:
  absl::Duration first_;
  absl::Duration max_;
  absl::Duration lifetime_;
};

// Hops that failed recently (connection refused or timed out, a timeout in the dialogue, a 421),
// so that a shard does not hammer them: their messages wait, others flow. One per shard;
// Shard-local. Keys are NextHop::ToString() texts. Memory is bounded by `max_hops`: when full, an
// expired entry is dropped first, else the one that comes back up soonest.
class HopDownTracker {
 public:
  static constexpr size_t kDefaultMaxHops = 256;
  explicit HopDownTracker(size_t max_hops = kDefaultMaxHops) : max_hops_(max_hops) {}

  // Marks `hop` down until `until` (now + [delivery] hop_down_s); a later `until` extends an
  // earlier one, an earlier one never shortens it. `until <= now` (hop_down_s = 0) marks nothing.
  void MarkDown(std::string_view hop, absl::Time now, absl::Time until);
  // True if `hop` is marked down at `now`. Allocates nothing.
  bool IsDown(std::string_view hop, absl::Time now) const;
  // When `hop` comes back up, if it is down at `now`.
  std::optional<absl::Time> DownUntil(std::string_view hop, absl::Time now) const;
  // `hop` is up again (a delivery through it succeeded).
  void MarkUp(std::string_view hop);
  // Every hop up again (`ringmx queue flush`).
  void Clear() { down_.clear(); }
  size_t size() const { return down_.size(); }

 private:
  size_t max_hops_;
  absl::flat_hash_map<std::string, absl::Time> down_;  // hop -> down until; size <= max_hops_
};

}  // namespace ringmx::policy
