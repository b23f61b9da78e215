#include "policy/auth_throttle.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <utility>

namespace ringmx::policy {

AuthThrottleOptions AuthThrottleOptions::FromConfig(const core::AuthConfig& auth) {
  AuthThrottleOptions options;
  options.slow_after = auth.slow_after;
  options.refuse_after = auth.refuse_after;
  options.window = auth.failure_window;
  return options;
}

AuthThrottle::AuthThrottle(AuthThrottleOptions options) : options_(std::move(options)) {}

void AuthThrottle::set_options(AuthThrottleOptions options) {
  options_ = std::move(options);
  // A smaller table takes effect now: drop the oldest records past the new bound.
  while (records_.size() > options_.max_entries) {
    index_.erase(records_.front().key);
    records_.pop_front();
  }
}

AuthThrottle::Key AuthThrottle::KeyOf(const core::IpAddress& client) {
  Key key{};
  const size_t n = client.is_v4() ? 4 : 8;  // IPv6: the /64
  std::copy_n(client.bytes().begin(), n, key.begin());
  key[16] = client.is_v4() ? 4 : 6;
  return key;
}

int AuthThrottle::Live(const Record& record, absl::Time now) const {
  return now - record.last_failure >= options_.window ? 0 : record.failures;
}

int AuthThrottle::failures(const core::IpAddress& client, absl::Time now) const {
  auto it = index_.find(KeyOf(client));
  return it == index_.end() ? 0 : Live(*it->second, now);
}

AuthThrottleDecision AuthThrottle::Before(const core::IpAddress& client, absl::Time now) const {
  const int f = failures(client, now);
  AuthThrottleDecision decision;
  if (f >= options_.refuse_after) {
    decision.refuse = true;
  } else if (f >= options_.slow_after) {
    decision.delay =
        std::min(options_.max_delay, options_.delay_step * (f - options_.slow_after + 1));
  }
  return decision;
}

void AuthThrottle::DropExpired(absl::Time now) {
  while (!records_.empty() && Live(records_.front(), now) == 0) {
    index_.erase(records_.front().key);
    records_.pop_front();
  }
}

void AuthThrottle::Failed(const core::IpAddress& client, absl::Time now) {
  DropExpired(now);
  const Key key = KeyOf(client);
  if (auto it = index_.find(key); it != index_.end()) {
    Record& record = *it->second;
    // A record past its window starts again at one; the count saturates (it only has to reach
    // refuse_after).
    const int live = Live(record, now);
    record.failures = live == std::numeric_limits<int>::max() ? live : live + 1;
    record.last_failure = now;
    records_.splice(records_.end(), records_, it->second);
    return;
  }
  if (options_.max_entries == 0) return;
  while (records_.size() >= options_.max_entries) {
    index_.erase(records_.front().key);
    records_.pop_front();
  }
  records_.push_back(Record{key, 1, now});
  index_.emplace(key, std::prev(records_.end()));
}

}  // namespace ringmx::policy
