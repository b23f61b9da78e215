#include "policy/connection_limits.h"

#include <algorithm>
#include <limits>

namespace ringmx::policy {
namespace {

constexpr int64_t kWindowMillis = 60 * 1000;
static_assert(absl::Milliseconds(kWindowMillis) == ConnectionLimiter::kRateWindow);

}  // namespace

std::string_view LimitKey(LimitVerdict verdict) {
  switch (verdict) {
    case LimitVerdict::kAdmit:
      return "";
    case LimitVerdict::kTooManySessions:
      return "max_sessions";
    case LimitVerdict::kTooManyFromClient:
      return "max_sessions_per_client";
    case LimitVerdict::kRateExceeded:
      return "max_connection_rate_per_client";
  }
  return "";
}

uint32_t ShardShare(int limit, uint32_t shards) {
  if (limit <= 0) return 0;
  shards = std::max<uint32_t>(shards, 1);
  const uint64_t n = static_cast<uint64_t>(limit);
  return static_cast<uint32_t>((n + shards - 1) / shards);
}

bool LimitsExempt(const core::LimitsConfig& limits, const core::IpAddress& client) {
  return std::any_of(limits.exempt.begin(), limits.exempt.end(),
                     [&](const core::Cidr& cidr) { return cidr.Contains(client); });
}

ConnectionLimiter::ConnectionLimiter(size_t max_idle_entries)
    : max_idle_entries_(max_idle_entries) {}

int64_t ConnectionLimiter::WindowOf(absl::Time now) {
  const int64_t millis = absl::ToUnixMillis(now);
  // Floor division, so that times before 1970 (a test clock) still fall into whole minutes.
  return millis >= 0 ? millis / kWindowMillis : -((-millis + kWindowMillis - 1) / kWindowMillis);
}

void ConnectionLimiter::Roll(Entry& entry, int64_t window) {
  // A clock that stepped back keeps counting into the newest minute seen.
  if (window <= entry.window) return;
  entry.previous = window == entry.window + 1 ? entry.current : 0;
  entry.current = 0;
  entry.window = window;
}

LimitVerdict ConnectionLimiter::Admit(const core::LimitsConfig& limits, uint32_t shards,
                                      const core::IpAddress& client, absl::Time now) {
  const int64_t window = WindowOf(now);
  auto [it, inserted] = entries_.try_emplace(client);
  Entry& entry = it->second;
  if (inserted) entry.window = window;
  Roll(entry, window);
  // The estimate before this attempt: current + previous * (1 - elapsed / window), compared in
  // whole milliseconds so that no rounding lets one more in.
  const int64_t elapsed = absl::ToUnixMillis(now) - entry.window * kWindowMillis;
  const uint64_t remaining = static_cast<uint64_t>(std::clamp<int64_t>(
      entry.window == window ? kWindowMillis - elapsed : kWindowMillis, 0, kWindowMillis));
  const uint64_t recent_scaled =
      uint64_t{entry.current} * kWindowMillis + uint64_t{entry.previous} * remaining;
  if (entry.current < std::numeric_limits<uint32_t>::max()) ++entry.current;

  LimitVerdict verdict = LimitVerdict::kAdmit;
  const uint32_t total_share = ShardShare(limits.max_sessions, shards);
  if (total_share > 0 && sessions_ >= total_share) {
    verdict = LimitVerdict::kTooManySessions;
  } else if (!LimitsExempt(limits, client)) {
    const uint32_t client_share = ShardShare(limits.max_sessions_per_client, shards);
    const uint32_t rate_share = ShardShare(limits.max_connection_rate_per_client, shards);
    if (client_share > 0 && entry.sessions >= client_share) {
      verdict = LimitVerdict::kTooManyFromClient;
    } else if (rate_share > 0 && recent_scaled >= uint64_t{rate_share} * kWindowMillis) {
      verdict = LimitVerdict::kRateExceeded;
    }
  }
  if (verdict == LimitVerdict::kAdmit) {
    if (entry.sessions++ == 0) ++active_entries_;
    ++sessions_;
  }
  // `entry` is not used past this point: DropIdle may erase it.
  if (inserted && entries_.size() - active_entries_ > max_idle_entries_) {
    // Over the bound: drop the idle entries of earlier minutes, and if that leaves more than half
    // the bound, every idle entry. Either way the next scan is at least max_idle_entries_ / 2 new
    // addresses away, so the cost per connection stays constant.
    DropIdle(window);
    if (entries_.size() - active_entries_ > max_idle_entries_ / 2) {
      DropIdle(std::numeric_limits<int64_t>::max());
    }
  }
  return verdict;
}

void ConnectionLimiter::Release(const core::IpAddress& client) {
  auto it = entries_.find(client);
  if (it == entries_.end() || it->second.sessions == 0) return;  // not ours: nothing to undo
  --sessions_;
  if (--it->second.sessions == 0) --active_entries_;
  // The entry stays while its connections are recent (the rate); Expire drops it later.
}

void ConnectionLimiter::Expire(absl::Time now) {
  const int64_t window = WindowOf(now);
  if (window == expired_window_) return;
  expired_window_ = window;
  // Kept: entries with a connection in this minute or the previous one (the rate still counts it).
  DropIdle(window - 1);
}

void ConnectionLimiter::DropIdle(int64_t keep_from) {
  absl::erase_if(entries_, [keep_from](const auto& item) {
    const Entry& entry = item.second;
    return entry.sessions == 0 && entry.window < keep_from;
  });
}

uint32_t ConnectionLimiter::SessionsOf(const core::IpAddress& client) const {
  auto it = entries_.find(client);
  return it == entries_.end() ? 0 : it->second.sessions;
}

}  // namespace ringmx::policy
