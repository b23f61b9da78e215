#include "policy/retry.h"

#include <algorithm>

#include "core/strings.h"

namespace ringmx::policy {

absl::Duration RetrySchedule::Backoff(int failed_attempts) const {
  absl::Duration wait = first_;
  // Doubling stops at the cap (or at once for a zero first wait), so the loop is short whatever
  // `failed_attempts` is.
  for (int i = 1; i < failed_attempts && wait < max_ && wait > absl::ZeroDuration(); ++i) {
    wait *= 2;
  }
  return std::min(wait, max_);
}

RetryDecision RetrySchedule::AfterFailure(int failed_attempts, absl::Time arrival,
                                          absl::Time now) const {
  const absl::Time deadline = arrival + lifetime_;
  if (now >= deadline) return RetryDecision{true, absl::InfinitePast()};
  return RetryDecision{false, std::min(now + Backoff(failed_attempts), deadline)};
}

void HopDownTracker::MarkDown(std::string_view hop, absl::Time now, absl::Time until) {
  if (until <= now || max_hops_ == 0) return;
  if (auto it = down_.find(core::Av(hop)); it != down_.end()) {
    it->second = std::max(it->second, until);
    return;
  }
  if (down_.size() >= max_hops_) {
    absl::erase_if(down_, [now](const auto& entry) { return entry.second <= now; });
  }
  if (down_.size() >= max_hops_) {
    auto soonest = std::min_element(down_.begin(), down_.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    down_.erase(soonest);
  }
  down_.emplace(std::string(hop), until);
}

bool HopDownTracker::IsDown(std::string_view hop, absl::Time now) const {
  return DownUntil(hop, now).has_value();
}

std::optional<absl::Time> HopDownTracker::DownUntil(std::string_view hop, absl::Time now) const {
  auto it = down_.find(core::Av(hop));
  if (it == down_.end() || it->second <= now) return std::nullopt;
  return it->second;
}

void HopDownTracker::MarkUp(std::string_view hop) {
  if (auto it = down_.find(core::Av(hop)); it != down_.end()) down_.erase(it);
}

}  // namespace ringmx::policy
